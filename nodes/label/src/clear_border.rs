//! `label.clear_border`: removes objects touching the image border (skimage
//! `segmentation.clear_border`). As in skimage, "object" means a connected piece of one id
//! (full connectivity): if an id has several separate pieces, only those touching the border go.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Value};

use crate::connected_components::label_regions;
use crate::morphology::apply_labels;
use crate::util::{Connectivity, Shape3, par_fill};

/// Clears the objects with a pixel within `buffer` pixels of the border (`z_edges`: the first
/// and last z slices count as border in 3-D).
pub fn clear_border(lab: &[u32], shape: Shape3, buffer: usize, z_edges: bool) -> Vec<u32> {
    let [d, h, w] = shape;
    let (regions, count) = label_regions(lab, shape, Connectivity::Full);
    let ext = buffer + 1;
    let near = |c: usize, n: usize| c < ext || c + ext >= n;
    let mut touch = vec![false; count as usize + 1];
    for z in 0..d {
        for y in 0..h {
            let zy = (d > 1 && z_edges && near(z, d)) || near(y, h);
            let row = (z * h + y) * w;
            for x in 0..w {
                if zy || near(x, w) {
                    touch[regions[row + x] as usize] = true;
                }
            }
        }
    }
    touch[0] = false;
    par_fill(lab.len(), |i| if touch[regions[i] as usize] { 0 } else { lab[i] })
}

pub struct ClearBorder;

impl Node for ClearBorder {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "label.clear_border",
            1,
            "label",
            "Removes objects that touch the image edge (cut-off cells that would bias measurements).",
        )
        .input("labels", PortType::Labels, "Labelled objects.")
        .output("labels", PortType::Labels, "Labels without the objects touching the edge; other ids kept.")
        .param(
            ParamSpec::int("buffer", 0, "Also remove objects closer than this many pixels to the edge.").min(0.0),
        )
        .param(ParamSpec::bool(
            "z_edges",
            true,
            "In 3-D, also treat the first and last slices as edges (turn off when the stack does not cover whole cells in z).",
        ))
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (buffer, z) = (p.usize("buffer")?, p.bool("z_edges")?);
        let out = apply_labels(inputs.labels("labels")?, "labels", |v, sh| clear_border(v, sh, buffer, z))?;
        Ok(Outputs::new().with("labels", Value::Labels(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_edge_objects_and_pieces() {
        #[rustfmt::skip]
        let l: Vec<u32> = vec![
            1, 0, 0, 0, 0,
            0, 0, 2, 0, 0,
            0, 0, 0, 0, 3,
            4, 0, 0, 0, 0,
            0, 0, 0, 0, 0,
        ];
        let out = clear_border(&l, [1, 5, 5], 0, true);
        assert_eq!(out.iter().filter(|&&v| v != 0).count(), 1);
        assert_eq!(out[7], 2);
        assert!(clear_border(&l, [1, 5, 5], 1, true).iter().all(|&v| v == 0));
        // 3-D: an object on the first slice goes only with z_edges.
        let mut v = vec![0u32; 27];
        v[13 - 9] = 5; // z=0, y=1, x=1
        assert!(clear_border(&v, [3, 3, 3], 0, true).iter().all(|&x| x == 0));
        assert_eq!(clear_border(&v, [3, 3, 3], 0, false)[4], 5);
    }
}
