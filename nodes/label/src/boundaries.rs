//! `label.boundaries`: the outlines of labelled objects as a mask (skimage
//! `segmentation.find_boundaries`, modes thick / inner / outer).
//!
//! A pixel is on a boundary ("thick") when its neighbourhood (itself plus its face or full
//! neighbours; pixels outside the image are ignored) holds more than one value, background
//! included. "inner" keeps the boundary pixels inside objects; "outer" keeps those in the
//! background plus object pixels that touch another object (full neighbourhood), as in skimage.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Value};
use rayon::prelude::*;

use crate::morphology::apply_labels;
use crate::remove_small_objects::connectivity_param;
use crate::util::{Connectivity, Neighbourhood, Shape3};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundaryMode {
    Thick,
    Inner,
    Outer,
}

/// Boundary mask (0/1) of one label volume.
pub fn boundaries(lab: &[u32], shape: Shape3, conn: Connectivity, mode: BoundaryMode) -> Vec<u8> {
    let nb = Neighbourhood::new(shape, conn);
    let full = Neighbourhood::new(shape, Connectivity::Full);
    (0..lab.len())
        .into_par_iter()
        .map(|i| {
            let l = lab[i];
            let mut differs = false;
            nb.for_each(i, |j| differs |= lab[j] != l);
            let keep = match mode {
                BoundaryMode::Thick => differs,
                BoundaryMode::Inner => differs && l != 0,
                BoundaryMode::Outer => {
                    differs
                        && (l == 0 || {
                            let mut other = false;
                            full.for_each(i, |j| other |= lab[j] != 0 && lab[j] != l);
                            other
                        })
                }
            };
            keep as u8
        })
        .collect()
}

pub struct Boundaries;

impl Node for Boundaries {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("label.boundaries", 1, "label", "Outlines of labelled objects, as a mask.")
            .input("labels", PortType::Labels, "Labelled objects.")
            .output("mask", PortType::Mask, "1 on object boundaries.")
            .param(ParamSpec::choice(
                "mode",
                &["thick", "inner", "outer"],
                "thick",
                "'inner': the outermost pixels of each object; 'outer': the background pixels just \
                 outside (plus contacts between objects); 'thick': both.",
            ))
            .param(connectivity_param("face"))
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let mode = match p.str("mode")? {
            "thick" => BoundaryMode::Thick,
            "inner" => BoundaryMode::Inner,
            "outer" => BoundaryMode::Outer,
            m => return Err(NodeError::param("mode", format!("unknown mode '{m}'"))),
        };
        let conn = Connectivity::from_param(p, "connectivity")?;
        let s = inputs.labels("labels")?;
        // Computed per volume as u32 then narrowed: the mask shares the labels' geometry.
        let wide =
            apply_labels(s, "labels", |v, sh| boundaries(v, sh, conn, mode).into_iter().map(u32::from).collect())?;
        let px: Vec<u8> = wide.pixels::<u32>().unwrap_or_default().iter().map(|&v| v as u8).collect();
        let out = s.with_pixels(px).map_err(|e| NodeError::failed(e.to_string()))?;
        Ok(Outputs::new().with("mask", Value::Mask(out)))
    }
}
