//! `morph.close` (masks) and `morph.close_labels` (labels). The algorithms are in
//! [`crate::morphology`]; masks and labels get separate nodes because ports are typed: one node
//! with a generic stack output could not feed a mask or labels input downstream.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, Params};

use crate::morphology::{close_labels, close_mask, morph_spec, run_morph};

pub struct Close;

impl Node for Close {
    fn spec(&self) -> NodeSpec {
        morph_spec(
            "morph.close",
            "Dilation then erosion: fills small gaps and dents smaller than the footprint, keeping object size.",
            false,
        )
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        run_morph(p, inputs, false, close_mask, close_labels)
    }
}

pub struct CloseLabels;

impl Node for CloseLabels {
    fn spec(&self) -> NodeSpec {
        morph_spec(
            "morph.close_labels",
            "Dilation then erosion of labelled objects: fills small dents and gaps in each object.",
            true,
        )
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        run_morph(p, inputs, true, close_mask, close_labels)
    }
}
