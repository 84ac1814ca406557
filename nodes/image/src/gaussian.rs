//! `image.gaussian`: Gaussian smoothing, scikit-image's convention.

use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value};

use crate::sep;
use crate::util::{self, Border};

/// Smooths every (t, c) volume with a Gaussian of standard deviation `sigma` pixels per axis
/// (Z, Y, X order; Z ignored for 2-D stacks), like
/// `skimage.filters.gaussian(float64(img), sigma, mode='nearest', truncate, preserve_range=True)`:
/// a separable kernel of radius `int(truncate·σ + 0.5)`, normalised, edge pixels repeated.
/// Computed in f64, returned as f32 in the input's intensity range.
pub fn gaussian(s: &Stack, sigma_zyx: [f64; 3], truncate: f64) -> Result<Stack, NodeError> {
    for (i, &sg) in sigma_zyx.iter().enumerate() {
        if !(sg > 0.0 && sg.is_finite()) {
            return Err(NodeError::param(
                "sigma",
                format!("must be a finite number greater than 0, got {sg} (axis {i})"),
            ));
        }
    }
    if !(truncate > 0.0 && truncate.is_finite()) {
        return Err(NodeError::param("truncate", format!("must be greater than 0, got {truncate}")));
    }
    util::check_finite(s, "image")?;
    let kernels = [
        (s.z() > 1).then(|| util::gaussian_kernel(sigma_zyx[0], truncate)),
        Some(util::gaussian_kernel(sigma_zyx[1], truncate)),
        Some(util::gaussian_kernel(sigma_zyx[2], truncate)),
    ];
    let out = sep::filter_stack(s, &kernels, Border::Nearest, false, |_, f, o: &mut [f32]| {
        for (o, &v) in o.iter_mut().zip(f) {
            *o = v as f32;
        }
    });
    s.with_pixels(out).map_err(|e| NodeError::failed(e.to_string()))
}

pub struct Gaussian;

impl Node for Gaussian {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "image.gaussian",
            1,
            "image",
            "Blurs the image with a Gaussian to reduce noise before thresholding.",
        )
        .input(
            "image",
            PortType::Image,
            "Image to smooth (2-D or 3-D; time points and channels are smoothed separately).",
        )
        .output("image", PortType::Image, "Smoothed image, 32-bit float, same intensity range as the input.")
        .param(
            ParamSpec::floats(
                "sigma",
                1.0,
                3,
                "Blur width (standard deviation) in pixels: one value for all axes, or one per axis \
                     (Z, Y, X for 3-D, Y, X for 2-D). Larger values smooth more.",
            )
            .greater_than(0.0),
        )
        .param(
            ParamSpec::float(
                "truncate",
                4.0,
                "How far the blur reaches, in multiples of sigma (the kernel radius is truncate × sigma). \
                     The default 4 is scikit-image's.",
            )
            .greater_than(0.0),
        )
    }

    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let s = inputs.image("image")?;
        let nd = util::spatial_ndim(s);
        let sig = util::per_axis("sigma", &p.floats("sigma")?, nd)?;
        let (sigma, truncate) = (util::zyx_from(&sig, nd, 1.0), p.f64("truncate")?);
        let out = util::by_frames1(ctx, s, "gaussian", |f| gaussian(f, sigma, truncate))?;
        Ok(Outputs::new().with("image", Value::Image(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_testkit::{max_abs_diff, read_stack, read_tiff_f64, reference, sample};

    fn check(dataset: &str, input: &str) {
        let img = read_stack::<u16>(&sample(input));
        let sigma = crate::util::read_results(dataset)["sigma"].as_f64().unwrap();
        let out = gaussian(&img, [sigma; 3], 4.0).unwrap();
        assert_eq!(out.dtype(), petri_api::DType::F32);
        let (shape, want) = read_tiff_f64(&reference(dataset, "gaussian.tif"));
        assert_eq!(shape, vec![img.z(), img.y(), img.x()]);
        let got: Vec<f64> = out.pixels::<f32>().unwrap().iter().map(|&v| v as f64).collect();
        let d = max_abs_diff(&got, &want);
        assert!(d < 1e-3, "{dataset}: max abs diff {d}");
    }

    #[test]
    fn matches_skimage_2d() {
        check("nuclei2d_dsb2018", "nuclei2d.tif");
    }

    #[test]
    fn matches_skimage_3d() {
        check("nuclei3d_synthetic_stardist", "nuclei3d_synthetic.tif");
    }

    #[test]
    fn rejects_bad_input() {
        let s = Stack::from_2d(2, 2, vec![1.0f32, f32::NAN, 0.0, 0.0]).unwrap();
        let e = gaussian(&s, [1.0; 3], 4.0).unwrap_err().to_string();
        assert!(e.contains("input 'image'") && e.contains("NaN"), "{e}");
        let s = Stack::from_2d(2, 2, vec![1u8, 2, 3, 4]).unwrap();
        assert!(gaussian(&s, [0.0; 3], 4.0).unwrap_err().to_string().contains("sigma"));
        let e = util::per_axis("sigma", &[1.0, 2.0, 3.0], 2).unwrap_err().to_string();
        assert!(e.contains("sigma") && e.contains("2 spatial axes"), "{e}");
    }

    #[test]
    fn keeps_constant_images_and_per_axis_sigma() {
        let s = Stack::from_3d(3, 4, 5, vec![7u16; 60]).unwrap();
        let out = gaussian(&s, [0.5, 1.0, 2.0], 4.0).unwrap();
        assert!(out.pixels::<f32>().unwrap().iter().all(|&v| (v - 7.0).abs() < 1e-5));
        // An impulse spreads more along X (σ 2) than along Z (σ 0.5).
        let mut v = vec![0u16; 9 * 9 * 9];
        v[4 * 81 + 4 * 9 + 4] = 1000;
        let s = Stack::from_3d(9, 9, 9, v).unwrap();
        let out = gaussian(&s, [0.5, 1.0, 2.0], 4.0).unwrap();
        let px = out.pixels::<f32>().unwrap();
        assert!(px[4 * 81 + 4 * 9 + 6] > px[6 * 81 + 4 * 9 + 4]);
    }
}
