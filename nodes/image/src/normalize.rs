//! `image.normalize`: percentile normalisation to [0, 1], as csbdeep's `normalize(x, pmin, pmax,
//! clip)` (the preprocessing of StarDist/CARE): `(x − p_low) / (p_high − p_low + 1e-20)`.

use petri_api::{
    Buffer, DType, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, Pixel, PortType, Stack,
    Value,
};

use crate::util;

/// numpy's `percentile(v, q)` with the default 'linear' method, for values already in order
/// statistics form: `kth(i)` returns the i-th smallest value.
pub fn np_percentile(n: usize, q: f64, mut kth: impl FnMut(usize) -> f64) -> f64 {
    let q = q / 100.0;
    // numpy: virtual index = n·q + (1 + q·(1 − 1 − 1)) − 1 (alpha = beta = 1), clipped to [0, n − 1].
    let vi = (n as f64 * q + (1.0 - q) - 1.0).clamp(0.0, (n - 1) as f64);
    let lo = vi.floor();
    let gamma = vi - lo;
    let lo = lo as usize;
    let hi = (lo + 1).min(n - 1);
    let (a, b) = (kth(lo), kth(hi));
    // numpy's _lerp: a + (b − a)·t, or b − (b − a)·(1 − t) for t ≥ 0.5.
    let d = b - a;
    if gamma >= 0.5 { b - d * (1.0 - gamma) } else { a + d * gamma }
}

/// The `low` and `high` percentiles of the pixel values.
pub fn percentiles<P: Pixel>(px: &[P], low: f64, high: f64) -> (f64, f64) {
    let n = px.len();
    if matches!(P::DTYPE, DType::U8 | DType::U16) {
        // Counting: the k-th smallest from the cumulative histogram.
        let mut h = vec![0usize; 65536];
        for c in px.chunks(1 << 20) {
            for &v in c {
                h[v.to_f64() as usize] += 1;
            }
        }
        let mut cum = Vec::with_capacity(65536);
        let mut s = 0;
        for &c in &h {
            s += c;
            cum.push(s);
        }
        let kth = |i: usize| cum.partition_point(|&c| c <= i) as f64;
        return (np_percentile(n, low, kth), np_percentile(n, high, kth));
    }
    let mut v: Vec<f64> = px.iter().map(|x| x.to_f64()).collect();
    let mut kth = |i: usize| *v.select_nth_unstable_by(i, f64::total_cmp).1;
    let lo = np_percentile(n, low, &mut kth);
    let hi = np_percentile(n, high, &mut kth);
    (lo, hi)
}

/// Normalises each channel (over all its time points and slices) so that its `low` percentile
/// maps to 0 and its `high` percentile to 1; optionally clipped to [0, 1]. If both percentiles
/// are equal the channel becomes 0 where `x ≤ p_low` and 1 above.
pub fn normalize(s: &Stack, low: f64, high: f64, clip: bool) -> Result<Stack, NodeError> {
    if !(0.0..=100.0).contains(&low) || !(0.0..=100.0).contains(&high) {
        return Err(NodeError::param("low", format!("percentiles must be between 0 and 100, got {low} and {high}")));
    }
    if low >= high {
        return Err(NodeError::param("high", format!("must be above 'low' ({low}), got {high}")));
    }
    util::check_finite(s, "image")?;
    let (nt, nc, n) = (s.t(), s.c(), s.volume_len());
    let mut out = vec![0f32; s.len()];
    for c in 0..nc {
        let (lo, hi) = petri_api::with_pixels!(s.buffer(), px => {
            if nt == 1 {
                percentiles(&px[c * n..(c + 1) * n], low, high)
            } else {
                let v: Vec<_> = (0..nt).flat_map(|t| px[(t * nc + c) * n..(t * nc + c + 1) * n].iter().copied()).collect();
                percentiles(&v, low, high)
            }
        });
        let den = hi - lo + 1e-20;
        for t in 0..nt {
            let o = (t * nc + c) * n;
            let f = move |v: f64| -> f32 {
                let y = if hi > lo {
                    (v - lo) / den
                } else if v > lo {
                    1.0
                } else {
                    0.0
                };
                (if clip { y.clamp(0.0, 1.0) } else { y }) as f32
            };
            match s.buffer() {
                Buffer::U8(p) => util::par_map_into(&p[o..o + n], &mut out[o..o + n], move |&v| f(v as f64)),
                Buffer::U16(p) => util::par_map_into(&p[o..o + n], &mut out[o..o + n], move |&v| f(v as f64)),
                Buffer::U32(p) => util::par_map_into(&p[o..o + n], &mut out[o..o + n], move |&v| f(v as f64)),
                Buffer::F32(p) => util::par_map_into(&p[o..o + n], &mut out[o..o + n], move |&v| f(v as f64)),
            }
        }
    }
    s.with_pixels(out).map_err(|e| NodeError::failed(e.to_string()))
}

pub struct Normalize;

impl Node for Normalize {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "image.normalize",
            1,
            "image",
            "Rescales intensities to 0..1 between two percentiles (the usual preparation for deep-learning models).",
        )
        .input("image", PortType::Image, "Image to normalise; each channel is normalised on its own.")
        .output("image", PortType::Image, "Normalised image, 32-bit float (low percentile → 0, high percentile → 1).")
        .param(
            ParamSpec::float(
                "low",
                1.0,
                "Percentile (0–100) of the intensities that becomes 0, e.g. 1 ignores the darkest 1 %.",
            )
            .range(0.0, 100.0),
        )
        .param(
            ParamSpec::float(
                "high",
                99.8,
                "Percentile (0–100) of the intensities that becomes 1, e.g. 99.8 ignores the brightest 0.2 %.",
            )
            .range(0.0, 100.0),
        )
        .param(ParamSpec::bool(
            "clip",
            false,
            "Clip the result to 0..1 (values outside the percentiles are cut off).",
        ))
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let out = normalize(inputs.image("image")?, p.f64("low")?, p.f64("high")?, p.bool("clip")?)?;
        Ok(Outputs::new().with("image", Value::Image(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::{expected, fixture};
    use petri_testkit::{read_stack, reference, sample};

    #[test]
    fn percentiles_match_numpy() {
        let exp = expected();
        let imgs = [
            ("nuclei2d", read_stack::<u16>(&sample("nuclei2d.tif"))),
            ("nuclei2d_gaussian", read_stack::<f32>(&reference("nuclei2d_dsb2018", "gaussian.tif"))),
            ("em_crop", read_stack::<u8>(&fixture("em_crop_u8.tif"))),
        ];
        for (name, img) in imgs {
            for q in ["0", "1", "3", "50", "99.8", "100"] {
                let want = exp["percentiles"][name][q].as_f64().unwrap();
                let p: f64 = q.parse().unwrap();
                let got = petri_api::with_pixels!(img.buffer(), px => percentiles(px, p, p).0);
                assert!((got - want).abs() <= 1e-12 * want.abs(), "{name} p{q}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn maps_percentiles_to_unit_range() {
        let img = read_stack::<u16>(&sample("nuclei2d.tif"));
        let out = normalize(&img, 1.0, 99.8, false).unwrap();
        let px = img.pixels::<u16>().unwrap();
        let o = out.pixels::<f32>().unwrap();
        // nuclei2d: p1 = 8, p99.8 = 206 (numpy).
        for (&v, &y) in px.iter().zip(o).take(5000) {
            assert!((y as f64 - (v as f64 - 8.0) / 198.0).abs() < 1e-6);
        }
        let c = normalize(&img, 1.0, 99.8, true).unwrap();
        assert!(c.pixels::<f32>().unwrap().iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(normalize(&img, 50.0, 10.0, false).unwrap_err().to_string().contains("high"));
        let flat = Stack::from_2d(1, 3, vec![4u8, 4, 9]).unwrap();
        assert_eq!(normalize(&flat, 0.0, 50.0, false).unwrap().pixels::<f32>().unwrap(), &[0.0, 0.0, 1.0]);
    }
}
