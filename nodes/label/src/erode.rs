//! `morph.erode` (masks) and `morph.erode_labels` (labels). The algorithms are in
//! [`crate::morphology`]; masks and labels get separate nodes because ports are typed: one node
//! with a generic stack output could not feed a mask or labels input downstream.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, Params};

use crate::morphology::{erode_labels, erode_mask, morph_spec, run_morph};

pub struct Erode;

impl Node for Erode {
    fn spec(&self) -> NodeSpec {
        morph_spec(
            "morph.erode",
            "Shrinks the mask: removes a layer of pixels (the footprint) from every object's edge; thin bridges and specks disappear.",
            false,
        )
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        run_morph(p, inputs, false, erode_mask, erode_labels)
    }
}

pub struct ErodeLabels;

impl Node for ErodeLabels {
    fn spec(&self) -> NodeSpec {
        morph_spec(
            "morph.erode_labels",
            "Shrinks each labelled object by the footprint, also away from touching neighbours.",
            true,
        )
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        run_morph(p, inputs, true, erode_mask, erode_labels)
    }
}
