//! `morph.fill_holes` (masks) and `morph.fill_holes_labels` (labels): fill background regions
//! enclosed by an object (not connected to the image border, face connectivity like scipy's
//! `binary_fill_holes`). Algorithms in [`crate::morphology`].

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, Params, PortType, Value};

use crate::morphology::{apply_labels, apply_mask, fill_holes_labels, fill_holes_mask};

pub struct FillHoles;

impl Node for FillHoles {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "morph.fill_holes",
            1,
            "morphology",
            "Fills holes inside objects: background completely surrounded by foreground becomes foreground.",
        )
        .input("mask", PortType::Mask, "Mask with holes.")
        .output("mask", PortType::Mask, "Mask with enclosed background filled.")
    }

    fn run(&self, _ctx: &NodeCtx, _p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let out = apply_mask(inputs.mask("mask")?, "mask", fill_holes_mask)?;
        Ok(Outputs::new().with("mask", Value::Mask(out)))
    }
}

pub struct FillHolesLabels;

impl Node for FillHolesLabels {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "morph.fill_holes_labels",
            1,
            "morphology",
            "Fills holes inside labelled objects: background surrounded by a single object takes its id \
             (holes between several objects stay background).",
        )
        .input("labels", PortType::Labels, "Labelled objects with holes.")
        .output("labels", PortType::Labels, "Labels with enclosed holes filled.")
    }

    fn run(&self, _ctx: &NodeCtx, _p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let out = apply_labels(inputs.labels("labels")?, "labels", fill_holes_labels)?;
        Ok(Outputs::new().with("labels", Value::Labels(out)))
    }
}
