//! `image.threshold`: a binary mask from a global threshold (Otsu, Li, triangle, manual) or a
//! local one (scikit-image's `threshold_local`), computed the way scikit-image computes it.
//!
//! Global thresholds are computed once over the whole stack (every time point, channel and
//! slice), so one intensity cut applies to the whole series. Foreground is `value > threshold`.

use std::sync::Arc;

use petri_api::{
    Buffer, ColumnData, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, Pixel, PortType, Stack,
    Table, Value,
};
use rayon::prelude::*;

use crate::hist::{self, Histogram};
use crate::util::{self, Border};

/// How the local threshold surface is computed from each pixel's neighbourhood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalMethod {
    /// Gaussian-weighted mean, σ = (block_size − 1)/6 (scikit-image's default).
    Gaussian,
    /// Plain mean over the block.
    Mean,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Otsu,
    Li,
    Triangle,
    Manual(f64),
    Local { block_size: usize, offset: f64, method: LocalMethod },
}

/// Otsu's threshold as `skimage.filters.threshold_otsu` computes it from `h`: the centre of the
/// first bin that maximises the between-class variance.
pub fn otsu_from_hist(h: &Histogram) -> f64 {
    if h.counts.len() < 2 {
        return h.centers[0];
    }
    // Only non-empty bins matter: across an empty bin the cumulative weights and sums (hence both
    // class means) are bit-for-bit unchanged, so its variance equals the previous bin's and can
    // never be the *first* maximum. The first and last bins are never empty (min and max).
    let (counts, centers): (Vec<u64>, Vec<f64>) =
        h.counts.iter().zip(&h.centers).filter(|(c, _)| **c > 0).map(|(&c, &x)| (c, x)).unzip();
    let n = counts.len();
    if n < 2 {
        return centers[0];
    }
    let total: u64 = counts.iter().sum();
    let top = centers[n - 1].abs().max(centers[0].abs());
    // numpy's arithmetic: integer histograms form counts·centers and all cumulative sums exactly
    // (int64), float histograms in f64, summed in order.
    let class_means = |rev: bool| -> Vec<f64> {
        let idx: Box<dyn Iterator<Item = usize>> = if rev { Box::new((0..n).rev()) } else { Box::new(0..n) };
        let mut m = vec![0f64; n];
        if h.integer && (total as f64) * top < 9.0e15 {
            // Every partial sum is below 2⁵³: f64 sums are the exact integers.
            let (mut s, mut w) = (0f64, 0u64);
            for i in idx {
                s += counts[i] as f64 * centers[i];
                w += counts[i];
                m[i] = s / w as f64;
            }
        } else if h.integer {
            let (mut s, mut w) = (0i128, 0i128);
            for i in idx {
                s += counts[i] as i128 * centers[i] as i128;
                w += counts[i] as i128;
                m[i] = s as f64 / w as f64;
            }
        } else {
            let (mut s, mut w) = (0f64, 0u64);
            for i in idx {
                s += counts[i] as f64 * centers[i];
                w += counts[i];
                m[i] = s / w as f64;
            }
        }
        m
    };
    let (m1, m2) = (class_means(false), class_means(true));
    let mut w1 = 0u64;
    let mut best = f64::NEG_INFINITY;
    let mut idx = 0;
    for i in 0..n - 1 {
        w1 += counts[i];
        let w2 = total - w1;
        let d = m1[i] - m2[i + 1];
        // numpy forms w1·w2 in int64 (exact), then converts it to float.
        let v = (w1 as u128 * w2 as u128) as f64 * (d * d);
        // `>`: the first maximum wins, as numpy's argmax.
        if v > best {
            best = v;
            idx = i;
        }
    }
    centers[idx]
}

/// `threshold_otsu` over all pixels of the stack (a constant image gives its value).
pub fn threshold_otsu(s: &Stack) -> f64 {
    let (h, lo, hi) = hist::stack_histogram(s, 256);
    if lo == hi {
        return lo;
    }
    otsu_from_hist(&h)
}

/// `threshold_triangle` (nbins 256; integer images one bin per integer) over the whole stack.
pub fn threshold_triangle(s: &Stack) -> f64 {
    let (h, lo, _) = hist::stack_histogram(s, 256);
    let nbins = h.counts.len();
    let counts: Vec<i64> = h.counts.iter().map(|&c| c as i64).collect();
    let mut arg_peak = 0;
    for (i, &c) in counts.iter().enumerate() {
        if c > counts[arg_peak] {
            arg_peak = i;
        }
    }
    let peak = counts[arg_peak];
    let low = counts.iter().position(|&c| c > 0).unwrap_or(0);
    let high = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    if low == high {
        return lo;
    }
    let flip = (arg_peak as i64 - low as i64) < (high as i64 - arg_peak as i64);
    let (hv, low, arg_peak): (Vec<i64>, usize, usize) = if flip {
        (counts.iter().rev().copied().collect(), nbins - high - 1, nbins - arg_peak - 1)
    } else {
        (counts, low, arg_peak)
    };
    let width = arg_peak - low;
    let norm = ((peak * peak + (width * width) as i64) as f64).sqrt();
    let ph = peak as f64 / norm;
    let wd = width as f64 / norm;
    let mut best = f64::NEG_INFINITY;
    let mut arg = 0;
    for x in 0..width {
        let len = ph * x as f64 - wd * hv[x + low] as f64;
        if len > best {
            best = len;
            arg = x;
        }
    }
    let mut level = arg + low;
    if flip {
        level = nbins - level - 1;
    }
    h.centers[level]
}

/// `threshold_li` (default tolerance and initial guess) over the whole stack. Float images are
/// treated as float64, so the result is scikit-image's on `float64(image)`.
pub fn threshold_li(s: &Stack) -> f64 {
    let n = s.len() as f64;
    let li_step = |mb: f64, mf: f64| (mb - mf) / (mb.ln() - mf.ln());
    if s.dtype().is_integer() {
        let (h, lo, hi) = hist::stack_histogram(s, 256);
        if lo == hi {
            return lo;
        }
        // numpy's mean of (image − min): exact integer sum (from the histogram), one division.
        let sum: u128 = h.counts.iter().zip(&h.centers).map(|(&c, &x)| c as u128 * (x - lo) as u128).sum();
        let mean = sum as f64 / n;
        // Iterate on the histogram of (image − min), with counts as float32 like scikit-image.
        let counts: Vec<f64> = h.counts.iter().map(|&c| c as f32 as f64).collect();
        let centers: Vec<f64> = h.centers.iter().map(|&c| c - lo).collect();
        let tol = 0.5;
        let (mut t_next, mut t_curr) = (mean, -2.0 * tol);
        while (t_next - t_curr).abs() > tol {
            t_curr = t_next;
            let (mut sf, mut wf, mut sb, mut wb) = (0.0, 0.0, 0.0, 0.0);
            for (&x, &c) in centers.iter().zip(&counts) {
                if x > t_curr {
                    sf += x * c;
                    wf += c;
                } else {
                    sb += x * c;
                    wb += c;
                }
            }
            if wf == 0.0 || wb == 0.0 {
                break;
            }
            let (mf, mb) = (sf / wf, sb / wb);
            if mb == 0.0 {
                break;
            }
            t_next = li_step(mb, mf);
        }
        return t_next + lo;
    }
    let (lo, hi) = petri_api::with_pixels!(s.buffer(), px => hist::min_max(px));
    if lo == hi {
        return lo;
    }
    let mean = petri_api::with_pixels!(s.buffer(), px => px.par_chunks(1 << 16)
        .map(|c| c.iter().map(|v| v.to_f64() - lo).sum::<f64>()).sum::<f64>())
        / n;
    // Float images: tolerance is half the smallest gap between distinct values.
    let mut vals: Vec<f64> = s.buffer().to_f64_vec().into_iter().map(|v| v - lo).collect();
    let mut sorted = vals.clone();
    sorted.par_sort_unstable_by(f64::total_cmp);
    sorted.dedup();
    let tol = sorted.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min) / 2.0;
    drop(sorted);
    let (mut t_next, mut t_curr) = (mean, -2.0 * tol);
    while (t_next - t_curr).abs() > tol {
        t_curr = t_next;
        let (sf, nf, sb, nb) = vals
            .par_chunks(1 << 16)
            .map(|c| {
                let mut r = (0.0, 0usize, 0.0, 0usize);
                for &v in c {
                    if v > t_curr {
                        r.0 += v;
                        r.1 += 1;
                    } else {
                        r.2 += v;
                        r.3 += 1;
                    }
                }
                r
            })
            .reduce(|| (0.0, 0, 0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3));
        if nf == 0 || nb == 0 {
            break;
        }
        let (mf, mb) = (sf / nf as f64, sb / nb as f64);
        if mb == 0.0 {
            break;
        }
        t_next = li_step(mb, mf);
    }
    vals.clear();
    t_next + lo
}

/// `value > t` for every pixel, as a 0/1 mask with the input's geometry.
pub fn apply_threshold(s: &Stack, t: f64) -> Result<Stack, NodeError> {
    let mut out = vec![0u8; s.len()];
    // Integers compare against ⌊t⌋ in their own type (same answer, a vectorisable loop).
    let k = t.floor();
    match s.buffer() {
        _ if t.is_nan() => {}
        Buffer::U8(v) if k < 255.0 => {
            let kk = k.max(-1.0) as i16;
            util::par_map_into(v, &mut out, move |&x| (x as i16 > kk) as u8)
        }
        Buffer::U16(v) if k < 65535.0 => {
            let kk = k.max(-1.0) as i32;
            util::par_map_into(v, &mut out, move |&x| (x as i32 > kk) as u8)
        }
        Buffer::U32(v) => util::par_map_into(v, &mut out, move |&x| (x as f64 > t) as u8),
        Buffer::F32(v) => util::par_map_into(v, &mut out, move |&x| (x as f64 > t) as u8),
        _ => {} // above the type's maximum: nothing is foreground
    }
    s.with_pixels(out).map_err(|e| NodeError::failed(e.to_string()))
}

/// `threshold_local(volume, block_size, method, offset, mode='reflect')` per (t, c) volume (3-D
/// blocks when the stack has several slices), then `value > local threshold`.
pub fn threshold_local(s: &Stack, block_size: usize, offset: f64, method: LocalMethod) -> Result<Stack, NodeError> {
    if block_size < 3 || block_size.is_multiple_of(2) {
        return Err(NodeError::param("block_size", format!("must be an odd number of at least 3, got {block_size}")));
    }
    let kernel = match method {
        LocalMethod::Gaussian => util::gaussian_kernel((block_size as f64 - 1.0) / 6.0, 4.0),
        LocalMethod::Mean => util::box_kernel(block_size),
    };
    let kernels = [(s.z() > 1).then(|| kernel.clone()), Some(kernel.clone()), Some(kernel)];
    let out = crate::sep::filter_stack(s, &kernels, Border::Reflect, true, move |src, th, o: &mut [u8]| {
        for ((o, &v), &t) in o.iter_mut().zip(src).zip(th) {
            *o = (v > t - offset) as u8;
        }
    });
    s.with_pixels(out).map_err(|e| NodeError::failed(e.to_string()))
}

/// The threshold (global methods) and the mask.
pub fn threshold(s: &Stack, method: Method) -> Result<(Stack, Option<f64>), NodeError> {
    util::check_finite(s, "image")?;
    let t = match method {
        Method::Otsu => threshold_otsu(s),
        Method::Li => threshold_li(s),
        Method::Triangle => threshold_triangle(s),
        Method::Manual(v) => v,
        Method::Local { block_size, offset, method } => {
            return Ok((threshold_local(s, block_size, offset, method)?, None));
        }
    };
    Ok((apply_threshold(s, t)?, Some(t)))
}

pub struct Threshold;

impl Node for Threshold {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "image.threshold",
            1,
            "image",
            "Separates bright objects from background: pixels brighter than a threshold become foreground.",
        )
        .input("image", PortType::Image, "Image to threshold (often a smoothed image).")
        .output("mask", PortType::Mask, "Foreground mask: 1 where the pixel is brighter than the threshold, else 0.")
        .output(
            "table",
            PortType::Table,
            "The threshold that was used (one row: method, threshold; empty threshold for 'local').",
        )
        .param(ParamSpec::choice(
            "method",
            &["otsu", "li", "triangle", "manual", "local"],
            "otsu",
            "How the threshold is chosen. otsu: best split of the histogram into two classes (good for \
             bright nuclei on dark background); li: minimum cross-entropy (keeps more dim objects); \
             triangle: for a small bright population on a large dark background; manual: the 'value' \
             below; local: a threshold that follows local brightness, for uneven illumination. \
             Global methods use one threshold for the whole stack (all time points, channels, slices).",
        ))
        .param(ParamSpec::float("value", 0.0, "The threshold for method 'manual', in the image's intensity units."))
        .param(
            ParamSpec::int(
                "block_size",
                35,
                "For method 'local': width in pixels (odd) of the neighbourhood whose mean gives each pixel's \
                 threshold. Use roughly the size of a few objects.",
            )
            .min(3.0),
        )
        .param(ParamSpec::float(
            "offset",
            0.0,
            "For method 'local': subtracted from the local mean; positive values make more pixels foreground.",
        ))
        .param(ParamSpec::choice(
            "local_method",
            &["gaussian", "mean"],
            "gaussian",
            "For method 'local': weight the neighbourhood with a Gaussian (σ = (block_size − 1)/6, \
             scikit-image's default) or average it evenly.",
        ))
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let s = inputs.image("image")?;
        let name = p.str("method")?.to_string();
        let method = match name.as_str() {
            "otsu" => Method::Otsu,
            "li" => Method::Li,
            "triangle" => Method::Triangle,
            "manual" => Method::Manual(p.f64("value")?),
            "local" => Method::Local {
                block_size: p.usize("block_size")?,
                offset: p.f64("offset")?,
                method: match p.str("local_method")? {
                    "mean" => LocalMethod::Mean,
                    _ => LocalMethod::Gaussian,
                },
            },
            other => return Err(NodeError::param("method", format!("unknown method '{other}'"))),
        };
        let (mask, t) = threshold(s, method)?;
        let table = Table::new()
            .with("method", ColumnData::Str(vec![name]))
            .and_then(|tb| tb.with("threshold", ColumnData::F64(vec![t.unwrap_or(f64::NAN)])))
            .map_err(NodeError::failed)?;
        Ok(Outputs::new().with("mask", Value::Mask(mask)).with("table", Value::Table(Arc::new(table))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_testkit::{read_stack, read_tiff_f64, reference, sample};

    fn mask_equals(mask: &Stack, path: &std::path::Path) -> usize {
        let (_, want) = read_tiff_f64(path);
        mask.pixels::<u8>().unwrap().iter().zip(&want).filter(|(a, b)| **a as f64 != **b).count()
    }

    fn check(dataset: &str, input: &str) {
        let res = crate::util::read_results(dataset);
        let img = read_stack::<u16>(&sample(input));
        let (mask, t) = threshold(&img, Method::Otsu).unwrap();
        assert_eq!(t, res["otsu_raw"].as_f64(), "{dataset}: otsu on the raw image");
        assert_eq!(mask_equals(&mask, &reference(dataset, "otsu_mask_raw.tif")), 0);

        let g = read_stack::<f32>(&reference(dataset, "gaussian.tif"));
        let (mask, t) = threshold(&g, Method::Otsu).unwrap();
        let t = t.unwrap();
        let want = res["otsu_gaussian"].as_f64().unwrap();
        let (lo, hi) = g.min_max().unwrap();
        let bin = (hi - lo) / 256.0;
        assert!((t - want).abs() < bin, "{dataset}: otsu on gaussian {t} vs {want} (bin {bin})");
        assert_eq!(mask_equals(&mask, &reference(dataset, "otsu_mask_gaussian.tif")), 0);
    }

    #[test]
    fn otsu_matches_skimage_2d() {
        check("nuclei2d_dsb2018", "nuclei2d.tif");
    }

    #[test]
    fn otsu_matches_skimage_3d() {
        check("nuclei3d_synthetic_stardist", "nuclei3d_synthetic.tif");
    }

    #[test]
    fn otsu_on_our_own_gaussian_gives_the_reference_mask() {
        for (dataset, input) in
            [("nuclei2d_dsb2018", "nuclei2d.tif"), ("nuclei3d_synthetic_stardist", "nuclei3d_synthetic.tif")]
        {
            let img = read_stack::<u16>(&sample(input));
            let g = crate::gaussian::gaussian(&img, [1.0; 3], 4.0).unwrap();
            let (mask, _) = threshold(&g, Method::Otsu).unwrap();
            assert_eq!(mask_equals(&mask, &reference(dataset, "otsu_mask_gaussian.tif")), 0, "{dataset}");
        }
    }

    #[test]
    fn node_outputs_mask_and_threshold_table() {
        use petri_api::ParamValue;
        let img = read_stack::<u16>(&sample("nuclei2d.tif"));
        let spec = Threshold.spec();
        let mut params = Params::default();
        for p in &spec.params {
            params.set(&p.name, p.default.clone());
        }
        let inputs = Inputs::new([("image".to_string(), Value::Image(img))].into());
        let out = Threshold.run(&NodeCtx::detached(), &params, &inputs).unwrap();
        let Some(Value::Table(t)) = out.get("table") else { panic!("no table") };
        assert_eq!(t.column("threshold").unwrap().number(0), Some(47.0));
        assert!(matches!(out.get("mask"), Some(Value::Mask(m)) if m.dtype() == petri_api::DType::U8));
        params.set("method", ParamValue::Str("local".into()));
        params.set("block_size", ParamValue::Int(4));
        let e = Threshold.run(&NodeCtx::detached(), &params, &inputs).unwrap_err().to_string();
        assert!(e.contains("block_size"), "{e}");
    }

    fn inputs() -> Vec<(&'static str, Stack)> {
        use crate::util::fixture;
        vec![
            ("nuclei2d", read_stack::<u16>(&sample("nuclei2d.tif"))),
            ("nuclei3d", read_stack::<u16>(&sample("nuclei3d_synthetic.tif"))),
            ("nuclei2d_gaussian", read_stack::<f32>(&reference("nuclei2d_dsb2018", "gaussian.tif"))),
            ("em_crop", read_stack::<u8>(&fixture("em_crop_u8.tif"))),
            ("nuclei2d_crop", read_stack::<u16>(&fixture("nuclei2d_crop.tif"))),
        ]
    }

    /// numpy's formula over every bin, zeros included (what `otsu_from_hist` must equal).
    fn otsu_all_bins(h: &Histogram) -> f64 {
        let n = h.counts.len();
        let c: Vec<f64> = h.counts.iter().map(|&c| c as f64).collect();
        let (mut w1, mut s1, mut m1) = (vec![0.0; n], 0.0, vec![0.0; n]);
        let mut acc = 0.0;
        for i in 0..n {
            acc += c[i];
            s1 += c[i] * h.centers[i];
            w1[i] = acc;
            m1[i] = s1 / acc;
        }
        let (mut w2, mut m2) = (vec![0.0; n], vec![0.0; n]);
        let (mut acc, mut s2) = (0.0, 0.0);
        for i in (0..n).rev() {
            acc += c[i];
            s2 += c[i] * h.centers[i];
            w2[i] = acc;
            m2[i] = s2 / acc;
        }
        let mut best = (f64::NEG_INFINITY, 0);
        for i in 0..n - 1 {
            let v = w1[i] * w2[i + 1] * (m1[i] - m2[i + 1]).powi(2);
            if v > best.0 {
                best = (v, i);
            }
        }
        h.centers[best.1]
    }

    #[test]
    fn otsu_skipping_empty_bins_is_exact() {
        let mut seed = 7u64;
        let mut rnd = |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for trial in 0..200 {
            let n = 2 + rnd(60) as usize;
            let mut counts: Vec<u64> = (0..n).map(|_| if rnd(3) == 0 { rnd(50) } else { 0 }).collect();
            counts[0] = 1 + rnd(9);
            counts[n - 1] = 1 + rnd(9);
            if trial % 3 == 0 {
                // Symmetric histograms produce exact ties.
                for i in 0..n / 2 {
                    counts[n - 1 - i] = counts[i];
                }
            }
            let centers: Vec<f64> = (0..n).map(|i| 100.0 + i as f64).collect();
            let h = Histogram { counts, centers, integer: true };
            assert_eq!(otsu_from_hist(&h), otsu_all_bins(&h), "{h:?}");
        }
    }

    #[test]
    fn global_methods_match_skimage() {
        let exp = crate::util::expected();
        for (name, img) in inputs() {
            let e = &exp["thresholds"][name];
            let otsu = threshold_otsu(&img);
            assert_eq!(otsu, e["otsu"].as_f64().unwrap(), "{name} otsu");
            let tri = threshold_triangle(&img);
            assert_eq!(tri, e["triangle"].as_f64().unwrap(), "{name} triangle");
            let li = threshold_li(&img);
            let want = e["li"].as_f64().unwrap();
            assert!((li - want).abs() < 1e-9 * want.abs().max(1.0), "{name} li {li} vs {want}");
        }
    }

    #[test]
    fn local_matches_skimage() {
        use crate::util::{diff_fixture, fixture};
        let crop = read_stack::<u16>(&fixture("nuclei2d_crop.tif"));
        let n3d = read_stack::<u16>(&sample("nuclei3d_synthetic.tif"));
        for (img, block, method, offset, file) in [
            (&crop, 35, LocalMethod::Gaussian, 0.0, "local_crop_b35_gaussian.tif"),
            (&crop, 15, LocalMethod::Mean, -2.0, "local_crop_b15_mean_off-2.tif"),
            (&n3d, 7, LocalMethod::Gaussian, 0.0, "local_3d_b7_gaussian.tif"),
        ] {
            let m = threshold_local(img, block, offset, method).unwrap();
            let (n, _) = diff_fixture(&m, file);
            assert_eq!(n, 0, "{file}: {n} pixels differ");
        }
    }

    #[test]
    fn manual_and_constant_images() {
        let s = Stack::from_2d(1, 4, vec![1u8, 5, 9, 5]).unwrap();
        let (m, t) = threshold(&s, Method::Manual(5.0)).unwrap();
        assert_eq!(t, Some(5.0));
        assert_eq!(m.pixels::<u8>().unwrap(), &[0, 0, 1, 0]);
        let c = Stack::from_2d(2, 2, vec![3u16; 4]).unwrap();
        for m in [Method::Otsu, Method::Li, Method::Triangle] {
            let (mask, t) = threshold(&c, m).unwrap();
            assert_eq!(t, Some(3.0));
            assert!(mask.pixels::<u8>().unwrap().iter().all(|&v| v == 0));
        }
        let bad = Stack::from_2d(1, 2, vec![1.0f32, f32::INFINITY]).unwrap();
        assert!(threshold(&bad, Method::Otsu).unwrap_err().to_string().contains("input 'image'"));
        assert!(threshold_local(&s, 4, 0.0, LocalMethod::Mean).unwrap_err().to_string().contains("block_size"));
    }
}
