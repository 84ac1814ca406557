//! `label.expand`: grows labels into the background by up to a distance without overlap, each
//! background pixel taking the id of the nearest object (skimage `segmentation.expand_labels`).
//!
//! Uses the exact feature transform of [`crate::edt`]: a background pixel within `distance`
//! (Euclidean, with the voxel size when `use_spacing`) of an object takes the id of its nearest
//! object pixel. Where two objects are exactly equally near, the tie rule of the feature transform
//! decides (see [`crate::edt`]); scipy's differs, so such pixels may get the other id.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Value};

use crate::edt::{NO_SITE, edt_sq_features};
use crate::morphology::apply_labels;
use crate::util::{Shape3, par_fill, spacing_of};

/// Expanded labels of one volume. Without any object the output is all 0.
pub fn expand_labels(lab: &[u32], shape: Shape3, distance: f64, spacing: [f64; 3]) -> Vec<u32> {
    // Only distances up to `distance` matter: capping makes the transform cheap far from objects.
    let cap = distance * distance * (1.0 + 1e-9) + 1e-9;
    let (d2, feat) = edt_sq_features(shape, spacing, cap, |i| lab[i] != 0);
    par_fill(lab.len(), |i| {
        let f = feat[i];
        if f == NO_SITE || d2[i].sqrt() > distance { 0 } else { lab[f as usize] }
    })
}

pub struct Expand;

impl Node for Expand {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "label.expand",
            1,
            "label",
            "Grows each object outwards by a distance without letting objects overlap (e.g. nuclei → \
             approximate cell regions).",
        )
        .input("labels", PortType::Labels, "Labelled objects.")
        .output("labels", PortType::Labels, "Expanded labels, same ids.")
        .param(
            ParamSpec::float(
                "distance",
                1.0,
                "How far to grow, in pixels (or physical units with 'use_spacing'); background \
                 pixels within this distance take the id of the nearest object.",
            )
            .min(0.0),
        )
        .param(ParamSpec::bool(
            "use_spacing",
            true,
            "Measure the distance in the image's physical units (voxel size), so growth is even in \
             3-D stacks with a larger z step.",
        ))
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let s = inputs.labels("labels")?;
        let sp = spacing_of(s, p.bool("use_spacing")?, "use_spacing")?;
        let dist = p.f64("distance")?;
        let out = apply_labels(s, "labels", |v, sh| expand_labels(v, sh, dist, sp))?;
        Ok(Outputs::new().with("labels", Value::Labels(out)))
    }
}
