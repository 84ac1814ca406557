//! `label.boundaries`: the outlines of labelled objects as a mask (skimage
//! `segmentation.find_boundaries`, modes thick / inner / outer).
//!
//! A pixel is on a boundary ("thick") when its neighbourhood (itself plus its face or full
//! neighbours; pixels outside the image are ignored) holds more than one value, background
//! included. "inner" keeps the boundary pixels inside objects; "outer" keeps those in the
//! background plus object pixels that touch another object (full neighbourhood), as in skimage.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Value};
use rayon::prelude::*;

use crate::remove_small_objects::connectivity_param;
use crate::util::{Connectivity, Shape3, join_volumes, neighbour_offsets, zeroed_vec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundaryMode {
    Thick,
    Inner,
    Outer,
}

/// Receives a neighbour row, the x range of the current row it covers, and the x shift.
type RowVisitor<'a> = dyn FnMut(&[u32], std::ops::Range<usize>, isize) + 'a;

/// Boundary mask (0/1) of one label volume. Rows are processed in parallel, each neighbour
/// offset as one vectorisable pass over the row (instead of a neighbour loop per pixel).
pub fn boundaries(lab: &[u32], shape: Shape3, conn: Connectivity, mode: BoundaryMode) -> Vec<u8> {
    let [d, h, w] = shape;
    let offs = neighbour_offsets(shape, conn);
    let full = neighbour_offsets(shape, Connectivity::Full);
    let mut out = zeroed_vec::<u8>(lab.len());
    // Calls f(neighbour row, x range of this row, dx) for every offset whose row exists.
    let rows_of = |z: usize, y: usize, offsets: &[[isize; 3]], f: &mut RowVisitor| {
        for o in offsets {
            let (nz, ny) = (z as isize + o[0], y as isize + o[1]);
            if nz < 0 || ny < 0 || nz >= d as isize || ny >= h as isize {
                continue;
            }
            let nr = &lab[(nz as usize * h + ny as usize) * w..][..w];
            let xs = if o[2] < 0 {
                1..w
            } else if o[2] > 0 {
                0..w.saturating_sub(1)
            } else {
                0..w
            };
            f(nr, xs, o[2]);
        }
    };
    out.par_chunks_mut(w).enumerate().for_each(|(r, o)| {
        let (z, y) = (r / h, r % h);
        let row = &lab[r * w..][..w];
        rows_of(z, y, &offs, &mut |nr, xs, dx| {
            for x in xs {
                o[x] |= (nr[(x as isize + dx) as usize] != row[x]) as u8;
            }
        });
        match mode {
            BoundaryMode::Thick => {}
            BoundaryMode::Inner => o.iter_mut().zip(row).for_each(|(b, &l)| *b &= (l != 0) as u8),
            BoundaryMode::Outer => {
                // Object pixels stay only where they touch another object (full neighbourhood).
                let mut other = vec![0u8; w];
                rows_of(z, y, &full, &mut |nr, xs, dx| {
                    for x in xs {
                        let n = nr[(x as isize + dx) as usize];
                        other[x] |= (n != 0 && n != row[x]) as u8;
                    }
                });
                for x in 0..w {
                    if row[x] != 0 {
                        o[x] &= other[x];
                    }
                }
            }
        }
    });
    out
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
        let px = s.pixels::<u32>().ok_or_else(|| NodeError::input("labels", "expected u32 labels"))?;
        let vols = px.chunks(s.volume_len()).map(|v| boundaries(v, s.zyx(), conn, mode)).collect();
        let out = s.with_pixels(join_volumes(vols)).map_err(|e| NodeError::failed(e.to_string()))?;
        Ok(Outputs::new().with("mask", Value::Mask(out)))
    }
}
