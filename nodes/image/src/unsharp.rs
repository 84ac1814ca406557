//! `image.unsharp`: unsharp masking, scikit-image's `filters.unsharp_mask(float64(img), radius,
//! amount, preserve_range=True)`: `img + amount·(img − gaussian(img, σ = radius, mode='reflect'))`.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value};

use crate::util::{self, Border};

/// Sharpens every (t, c) volume; `radius` is the blur σ in pixels (all axes). Computed in f64,
/// returned as f32 in the input's intensity units, not clipped (values may leave the input range).
pub fn unsharp(s: &Stack, radius: f64, amount: f64) -> Result<Stack, NodeError> {
    if !(radius > 0.0 && radius.is_finite()) {
        return Err(NodeError::param("radius", format!("must be greater than 0, got {radius}")));
    }
    if !amount.is_finite() {
        return Err(NodeError::param("amount", "must be a finite number"));
    }
    util::check_finite(s, "image")?;
    let k = util::gaussian_kernel(radius, 4.0);
    let kernels = [(s.z() > 1).then(|| k.clone()), Some(k.clone()), Some(k)];
    let out = crate::sep::filter_stack(s, &kernels, Border::Reflect, true, move |src, blur, o: &mut [f32]| {
        for ((o, &v), &b) in o.iter_mut().zip(src).zip(blur) {
            *o = (v + (v - b) * amount) as f32;
        }
    });
    s.with_pixels(out).map_err(|e| NodeError::failed(e.to_string()))
}

pub struct Unsharp;

impl Node for Unsharp {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "image.unsharp",
            1,
            "image",
            "Sharpens edges by adding back the difference between the image and a blurred copy.",
        )
        .input("image", PortType::Image, "Image to sharpen (2-D or 3-D; time points and channels separately).")
        .output("image", PortType::Image, "Sharpened image, 32-bit float in the input's intensity units (not clipped).")
        .param(
            ParamSpec::float("radius", 1.0, "Size (Gaussian sigma, in pixels) of the details to enhance.")
                .greater_than(0.0),
        )
        .param(ParamSpec::float(
            "amount",
            1.0,
            "Strength of the sharpening: 0 changes nothing, 1 doubles the fine detail, higher values sharpen more.",
        ))
    }

    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (radius, amount) = (p.f64("radius")?, p.f64("amount")?);
        let out = util::by_frames1(ctx, inputs.image("image")?, "unsharp", |f| unsharp(f, radius, amount))?;
        Ok(Outputs::new().with("image", Value::Image(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::{diff_fixture, fixture};
    use petri_testkit::{read_stack, sample};

    #[test]
    fn matches_skimage_unsharp_mask() {
        let crop = read_stack::<u16>(&fixture("nuclei2d_crop.tif"));
        let n3d = read_stack::<u16>(&sample("nuclei3d_synthetic.tif"));
        for (img, r, a, file) in
            [(&crop, 2.0, 1.5, "unsharp_r2_a1.5_crop.tif"), (&n3d, 1.0, 1.0, "unsharp_r1_a1_3d.tif")]
        {
            let (_, d) = diff_fixture(&unsharp(img, r, a).unwrap(), file);
            assert!(d < 1e-3, "{file}: max abs diff {d}");
        }
    }

    #[test]
    fn rejects_bad_radius() {
        let s = Stack::from_2d(1, 2, vec![1u8, 2]).unwrap();
        assert!(unsharp(&s, 0.0, 1.0).unwrap_err().to_string().contains("radius"));
        let z = unsharp(&s, 1.0, 0.0).unwrap();
        assert_eq!(z.pixels::<f32>().unwrap(), &[1.0, 2.0]);
    }
}
