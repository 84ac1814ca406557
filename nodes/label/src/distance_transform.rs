//! `image.distance_transform`: exact Euclidean distance from each foreground pixel to the
//! nearest background pixel (scipy `distance_transform_edt` semantics), in physical units.
//! The algorithm is in [`crate::edt`].

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value};

use crate::edt::edt;
use crate::util::{join_volumes, spacing_of, volume_name, volumes};

/// Distance transform of every (t, c) volume of a mask (non-zero = foreground), 3-D when z > 1.
/// Background pixels get 0. A volume without any background pixel is an error (the distance
/// would be infinite; scipy returns meaningless numbers there).
pub fn distance_transform(ctx: &NodeCtx, mask: &Stack, use_spacing: bool) -> Result<Stack, NodeError> {
    let sp = spacing_of(mask, use_spacing, "use_spacing")?;
    let shape = mask.zyx();
    let m = mask
        .pixels::<u8>()
        .ok_or_else(|| NodeError::input("mask", format!("expected a u8 mask, got {}", mask.dtype())))?;
    let n = mask.volume_len();
    let mut out = Vec::new();
    let total = mask.t() * mask.c();
    for (k, (t, c)) in volumes(mask).enumerate() {
        ctx.check_cancel()?;
        let vol = &m[k * n..(k + 1) * n];
        let d = edt(shape, sp, |i| vol[i] != 0).ok_or_else(|| {
            NodeError::input(
                "mask",
                format!(
                    "the mask{} has no background pixel, so the distance to background is undefined",
                    volume_name(mask, t, c)
                ),
            )
        })?;
        out.push(d);
        ctx.progress((k + 1) as f64 / total as f64, "distance transform");
    }
    mask.with_pixels::<f32>(join_volumes(out)).map_err(|e| NodeError::failed(e.to_string()))
}

pub struct DistanceTransform;

impl Node for DistanceTransform {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "image.distance_transform",
            1,
            "image",
            "Distance from each object pixel to the nearest background pixel (0 on background); \
             peaks mark object centres, useful for splitting touching nuclei.",
        )
        .input("mask", PortType::Mask, "Objects (foreground) and background.")
        .output("image", PortType::Image, "Distances as 32-bit floats, same shape as the mask.")
        .param(ParamSpec::bool(
            "use_spacing",
            true,
            "Measure in physical units using the image's voxel size (so a thick z step counts \
             for more); off = count pixels.",
        ))
    }

    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let out = distance_transform(ctx, inputs.mask("mask")?, p.bool("use_spacing")?)?;
        Ok(Outputs::new().with("image", Value::Image(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_api::VoxelSize;
    use petri_testkit::{max_abs_diff, read_stack, reference};

    fn check(dataset: &str) {
        let mask = read_stack::<u8>(&reference(dataset, "otsu_mask_gaussian.tif"));
        let want = read_stack::<f32>(&reference(dataset, "edt.tif"));
        let got = distance_transform(&NodeCtx::detached(), &mask, false).unwrap();
        let f = |s: &Stack| s.pixels::<f32>().unwrap().iter().map(|&v| v as f64).collect::<Vec<_>>();
        let d = max_abs_diff(&f(&got), &f(&want));
        assert!(f(&want).iter().any(|&v| v > 3.0));
        assert!(d < 1e-4, "{dataset}: max abs diff {d}");
    }

    #[test]
    fn equals_scipy_2d_and_3d() {
        check("nuclei2d_dsb2018");
        check("nuclei3d_synthetic_stardist");
    }

    #[test]
    fn uses_voxel_size_and_refuses_no_background() {
        let mut v = vec![1u8; 3];
        v[0] = 0;
        let s = Stack::from_3d(3, 1, 1, v).unwrap().with_voxel_size(VoxelSize { z: 2.5, ..VoxelSize::default() });
        let ctx = NodeCtx::detached();
        assert_eq!(distance_transform(&ctx, &s, true).unwrap().pixels::<f32>().unwrap(), &[0.0, 2.5, 5.0]);
        assert_eq!(distance_transform(&ctx, &s, false).unwrap().pixels::<f32>().unwrap(), &[0.0, 1.0, 2.0]);
        let full = Stack::from_2d(2, 2, vec![1u8; 4]).unwrap();
        let e = distance_transform(&ctx, &full, true).unwrap_err().to_string();
        assert!(e.contains("no background"), "{e}");
        let bad = Stack::from_3d(3, 1, 1, vec![0u8, 1, 1])
            .unwrap()
            .with_voxel_size(VoxelSize { z: 0.0, ..VoxelSize::default() });
        assert!(distance_transform(&ctx, &bad, true).unwrap_err().to_string().contains("use_spacing"));
    }
}
