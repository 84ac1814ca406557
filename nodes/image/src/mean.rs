//! `image.mean`: box (uniform) mean filter, scipy's `uniform_filter(float64(img), size,
//! mode='nearest')`, computed in f64 and returned as f32.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value};

use crate::util::{self, Border};

/// Mean over a `size`-wide box (odd, ≥ 3) per axis, edges replicated, per (t, c) volume (3-D box
/// when the stack has several slices).
pub fn mean(s: &Stack, size: usize) -> Result<Stack, NodeError> {
    if size < 3 || size.is_multiple_of(2) {
        return Err(NodeError::param("size", format!("must be an odd number of at least 3, got {size}")));
    }
    util::check_finite(s, "image")?;
    let k = util::box_kernel(size);
    let kernels = [(s.z() > 1).then(|| k.clone()), Some(k.clone()), Some(k)];
    let out = crate::sep::filter_stack(s, &kernels, Border::Nearest, false, |_, f, o: &mut [f32]| {
        for (o, &v) in o.iter_mut().zip(f) {
            *o = v as f32;
        }
    });
    s.with_pixels(out).map_err(|e| NodeError::failed(e.to_string()))
}

pub struct Mean;

impl Node for Mean {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "image.mean",
            1,
            "image",
            "Smooths the image by averaging each pixel with its neighbours in a box.",
        )
        .input("image", PortType::Image, "Image to smooth (2-D or 3-D; time points and channels separately).")
        .output("image", PortType::Image, "Smoothed image, 32-bit float, same intensity range.")
        .param(
            ParamSpec::int(
                "size",
                3,
                "Width of the averaging box in pixels (odd: 3, 5, 7...); 3-D stacks use a size×size×size box.",
            )
            .min(3.0),
        )
    }

    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let size = p.usize("size")?;
        let out = util::by_frames1(ctx, inputs.image("image")?, "mean", |f| mean(f, size))?;
        Ok(Outputs::new().with("image", Value::Image(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scipy_uniform_filter() {
        use crate::util::{diff_fixture, fixture};
        use petri_testkit::{read_stack, sample};
        let crop = read_stack::<u16>(&fixture("nuclei2d_crop.tif"));
        let n3d = read_stack::<u16>(&sample("nuclei3d_synthetic.tif"));
        for (img, k, file) in [(&crop, 5, "mean5_crop.tif"), (&n3d, 3, "mean3_3d.tif")] {
            let (_, d) = diff_fixture(&mean(img, k).unwrap(), file);
            assert!(d < 1e-4, "{file}: max abs diff {d}");
        }
    }

    #[test]
    fn averages_boxes_with_replicated_edges() {
        let s = Stack::from_2d(1, 4, vec![0u8, 3, 6, 9]).unwrap();
        let out = mean(&s, 3).unwrap();
        let got = out.pixels::<f32>().unwrap();
        assert_eq!(got, &[1.0, 3.0, 6.0, 8.0]);
        assert!(mean(&s, 4).unwrap_err().to_string().contains("size"));
    }
}
