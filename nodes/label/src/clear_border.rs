//! `label.clear_border`: removes objects touching the image border (skimage
//! `segmentation.clear_border`). As in skimage, "object" means a connected piece of one id
//! (full connectivity): if an id has several separate pieces, only those touching the border go.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Value};

use crate::connected_components::components;
use crate::morphology::apply_labels;
use crate::util::{Connectivity, Shape3, par_fill};

/// Clears the objects with a pixel within `buffer` pixels of the border (`z_edges`: the first
/// and last z slices count as border in 3-D).
pub fn clear_border(lab: &[u32], shape: Shape3, buffer: usize, z_edges: bool) -> Vec<u32> {
    let pieces = components(lab, shape, Connectivity::Full, |v| v);
    let touch = pieces.touches_border(shape, buffer, z_edges);
    let mut out = par_fill(lab.len(), |i| lab[i]);
    pieces.paint(&mut out, shape, |id, _| touch[id as usize].then_some(0));
    out
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
