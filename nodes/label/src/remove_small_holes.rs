//! `morph.remove_small_holes`: fill background regions with fewer than `min_size` pixels
//! (skimage `remove_small_holes` with `max_size = min_size − 1`; like skimage, a small background
//! region touching the image border is filled too). Algorithm in [`crate::morphology`].

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Value};

use crate::morphology::{apply_mask, remove_small_holes_mask};
use crate::remove_small_objects::connectivity_param;
use crate::util::Connectivity;

pub struct RemoveSmallHoles;

impl Node for RemoveSmallHoles {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("morph.remove_small_holes", 1, "morphology", "Fills holes smaller than a size in a mask.")
            .input("mask", PortType::Mask, "Mask with holes.")
            .output("mask", PortType::Mask, "Mask with the small holes filled.")
            .param(
                ParamSpec::int(
                    "min_size",
                    64,
                    "Background regions with fewer pixels (voxels in 3-D) than this are filled.",
                )
                .min(1.0),
            )
            .param(connectivity_param("face"))
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (min, conn) = (p.usize("min_size")?, Connectivity::from_param(p, "connectivity")?);
        let out = apply_mask(inputs.mask("mask")?, "mask", |v, sh| remove_small_holes_mask(v, sh, min, conn))?;
        Ok(Outputs::new().with("mask", Value::Mask(out)))
    }
}
