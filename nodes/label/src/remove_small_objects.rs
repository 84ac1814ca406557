//! `morph.remove_small_objects` (masks) and `morph.remove_small_objects_labels` (labels):
//! drop objects with fewer than `min_size` pixels (skimage `remove_small_objects` with
//! `max_size = min_size − 1`). Algorithms in [`crate::morphology`].

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Value};

use crate::morphology::{apply_labels, apply_mask, remove_small_objects_labels, remove_small_objects_mask};
use crate::util::Connectivity;

fn min_size_param() -> ParamSpec {
    ParamSpec::int(
        "min_size",
        64,
        "Objects with fewer pixels (voxels in 3-D) than this are removed, e.g. debris and noise.",
    )
    .min(1.0)
}

pub(crate) fn connectivity_param(default: &str) -> ParamSpec {
    ParamSpec::choice(
        "connectivity",
        &["face", "full"],
        default,
        "Which pixels touch: 'face' (4 in 2-D, 6 in 3-D) or 'full' (also diagonal: 8 / 26).",
    )
}

pub struct RemoveSmallObjects;

impl Node for RemoveSmallObjects {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("morph.remove_small_objects", 1, "morphology", "Removes objects smaller than a size from a mask.")
            .input("mask", PortType::Mask, "Mask to clean.")
            .output("mask", PortType::Mask, "Mask without the small objects.")
            .param(min_size_param())
            .param(connectivity_param("face"))
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (min, conn) = (p.usize("min_size")?, Connectivity::from_param(p, "connectivity")?);
        let out = apply_mask(inputs.mask("mask")?, "mask", |v, sh| remove_small_objects_mask(v, sh, min, conn))?;
        Ok(Outputs::new().with("mask", Value::Mask(out)))
    }
}

pub struct RemoveSmallObjectsLabels;

impl Node for RemoveSmallObjectsLabels {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "morph.remove_small_objects_labels",
            1,
            "morphology",
            "Removes labelled objects smaller than a size (the other ids are kept).",
        )
        .input("labels", PortType::Labels, "Labels to clean.")
        .output("labels", PortType::Labels, "Labels without the small objects.")
        .param(min_size_param())
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let min = p.usize("min_size")?;
        let out = apply_labels(inputs.labels("labels")?, "labels", |v, _| remove_small_objects_labels(v, min))?;
        Ok(Outputs::new().with("labels", Value::Labels(out)))
    }
}
