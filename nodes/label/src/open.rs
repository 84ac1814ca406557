//! `morph.open` (masks) and `morph.open_labels` (labels). The algorithms are in
//! [`crate::morphology`]; masks and labels get separate nodes because ports are typed: one node
//! with a generic stack output could not feed a mask or labels input downstream.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, Params};

use crate::morphology::{morph_spec, open_labels, open_mask, run_morph};

pub struct Open;

impl Node for Open {
    fn spec(&self) -> NodeSpec {
        morph_spec(
            "morph.open",
            "Erosion then dilation: removes specks and thin protrusions smaller than the footprint, keeping object size.",
            false,
        )
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        run_morph(p, inputs, false, open_mask, open_labels)
    }
}

pub struct OpenLabels;

impl Node for OpenLabels {
    fn spec(&self) -> NodeSpec {
        morph_spec(
            "morph.open_labels",
            "Erosion then dilation of each labelled object: smooths outlines and removes thin protrusions.",
            true,
        )
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        run_morph(p, inputs, true, open_mask, open_labels)
    }
}
