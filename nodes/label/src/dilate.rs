//! `morph.dilate` (masks) and `morph.dilate_labels` (labels). The algorithms are in
//! [`crate::morphology`]; masks and labels get separate nodes because ports are typed: one node
//! with a generic stack output could not feed a mask or labels input downstream.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, Params};

use crate::morphology::{dilate_labels, dilate_mask, morph_spec, run_morph};

pub struct Dilate;

impl Node for Dilate {
    fn spec(&self) -> NodeSpec {
        morph_spec("morph.dilate", "Grows the mask by the footprint: objects get thicker and small gaps close.", false)
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        run_morph(p, inputs, false, dilate_mask, dilate_labels)
    }
}

pub struct DilateLabels;

impl Node for DilateLabels {
    fn spec(&self) -> NodeSpec {
        morph_spec(
            "morph.dilate_labels",
            "Grows each labelled object into the background by the footprint (where two objects meet, the larger id wins).",
            true,
        )
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        run_morph(p, inputs, true, dilate_mask, dilate_labels)
    }
}
