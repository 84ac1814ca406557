//! `image.clahe`: contrast-limited adaptive histogram equalisation, a port of scikit-image's
//! `exposure.equalize_adapthist` (0.26) step for step, so results match it to float32 rounding.
//!
//! Steps (per (t, c) volume, 2-D or 3-D): convert to 16-bit (u8 × 257, u32 >> 16, floats see
//! below), rescale min..max to 0..16383 with round-half-even, mirror-pad (numpy `reflect`) so
//! the volume is a whole number of kernels, quantise to `nbins` bins, build one histogram per
//! kernel-sized block, clip it at `clip_limit × kernel voxels` redistributing the excess exactly
//! as scikit-image's `clip_histogram`, turn it into a 0..16383 mapping, and map each voxel by
//! (bi/tri)linear interpolation between the 2^d neighbouring blocks' mappings (float32
//! accumulation, truncated to an integer), then rescale the volume's min..max to [0, 1].

use petri_api::{
    Buffer, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, Pixel, PortType, Stack, Value,
};
use rayon::prelude::*;

use crate::util;

const NR_OF_GRAY: usize = 1 << 14;

/// numpy's `reflect` padding: index `j` (may be outside `0..n`) mirrored without repeating the
/// edge, periodically.
#[inline]
fn np_reflect(j: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let p = 2 * (n as isize - 1);
    let m = j.rem_euclid(p);
    (if m >= n as isize { p - m } else { m }) as usize
}

/// scikit-image's `clip_histogram`, integer for integer (including its odd redistribution loop).
pub fn clip_histogram(hist: &mut [i64], clip: i64) {
    let size = hist.len() as i64;
    let mut n_excess: i64 = hist.iter().filter(|&&h| h > clip).map(|&h| h - clip).sum();
    for h in hist.iter_mut() {
        if *h > clip {
            *h = clip;
        }
    }
    let bin_incr = n_excess / size;
    let upper = clip - bin_incr;
    for h in hist.iter_mut() {
        if *h < upper {
            *h += bin_incr;
            n_excess -= bin_incr;
        }
    }
    for h in hist.iter_mut() {
        if *h >= upper && *h < clip {
            n_excess += *h - clip;
            *h = clip;
        }
    }
    while n_excess > 0 {
        let prev = n_excess;
        for index in 0..hist.len() {
            let under = hist.iter().filter(|&&h| h < clip).count() as i64;
            let step = (under / n_excess).max(1) as usize;
            let mut added = 0;
            for h in hist[index..].iter_mut().step_by(step) {
                if *h < clip {
                    *h += 1;
                    added += 1;
                }
            }
            n_excess -= added;
            if n_excess <= 0 {
                break;
            }
        }
        if prev == n_excess {
            break;
        }
    }
}

/// The 14-bit image scikit-image equalises: `round(rescale(img_as_uint(v), 0..16383))`.
/// Floats (which `img_as_uint` only accepts in [−1, 1]) are rescaled from their min..max directly.
fn to_14bit<P: Pixel>(vol: &[P]) -> Vec<u16> {
    let to16 = |v: P| -> f64 {
        match P::DTYPE {
            petri_api::DType::U8 => v.to_f64() * 257.0,
            petri_api::DType::U32 => ((v.to_f64() as u64) >> 16) as f64,
            _ => v.to_f64(),
        }
    };
    let (lo, hi) = crate::hist::min_max(vol);
    let (lo, hi) = (to16(P::from_f64(lo)), to16(P::from_f64(hi)));
    let mut out = vec![0u16; vol.len()];
    util::par_map_into(vol, &mut out, move |&v| {
        let x = to16(v);
        let r = if hi != lo {
            (x - lo) / (hi - lo) * (NR_OF_GRAY - 1) as f64
        } else {
            x.clamp(0.0, (NR_OF_GRAY - 1) as f64)
        };
        r.round_ties_even() as u16
    });
    out
}

/// CLAHE of one Z×Y×X volume (`dims[0] == 1` for 2-D) with `kernel` voxels per axis (Z, Y, X).
pub fn clahe_volume<P: Pixel>(
    vol: &[P],
    dims: [usize; 3],
    kernel: [usize; 3],
    clip_limit: f64,
    nbins: usize,
) -> Vec<f32> {
    let img = to_14bit(vol);
    let bin_size = 1 + NR_OF_GRAY / nbins;
    let k = kernel;
    let pad_start: [usize; 3] = std::array::from_fn(|d| k[d] / 2);
    let pad_end: [usize; 3] = std::array::from_fn(|d| (k[d] - dims[d] % k[d]) % k[d] + k[d].div_ceil(2));
    let padded: [usize; 3] = std::array::from_fn(|d| dims[d] + pad_start[d] + pad_end[d]);
    let ns_hist: [usize; 3] = std::array::from_fn(|d| padded[d] / k[d] - 1);
    let kernel_elements = k[0] * k[1] * k[2];
    let clim =
        if clip_limit > 0.0 { ((clip_limit * kernel_elements as f64) as i64).max(1) } else { kernel_elements as i64 };
    // Original index of each padded coordinate, per axis, and the quantised image.
    let src: [Vec<usize>; 3] = std::array::from_fn(|d| {
        (0..padded[d]).map(|p| np_reflect(p as isize - pad_start[d] as isize, dims[d])).collect()
    });
    let mut q = vec![0u16; img.len()];
    util::par_map_into(&img, &mut q, move |&v| (v as usize / bin_size) as u16);

    // One clipped mapping (0..16383) per histogram block, stored flat: maps[block·nbins + bin].
    let n_blocks = ns_hist[0] * ns_hist[1] * ns_hist[2];
    let scale = (NR_OF_GRAY - 1) as f64 / kernel_elements as f64;
    let mut maps = vec![0f64; n_blocks * nbins];
    maps.par_chunks_mut(nbins).enumerate().for_each(|(b, map)| {
        let (bz, by, bx) = (b / (ns_hist[1] * ns_hist[2]), (b / ns_hist[2]) % ns_hist[1], b % ns_hist[2]);
        let mut h = vec![0i64; nbins.max(NR_OF_GRAY / bin_size + 1)];
        for z in k[0] / 2 + bz * k[0]..k[0] / 2 + (bz + 1) * k[0] {
            for y in k[1] / 2 + by * k[1]..k[1] / 2 + (by + 1) * k[1] {
                let row = (src[0][z] * dims[1] + src[1][y]) * dims[2];
                for x in k[2] / 2 + bx * k[2]..k[2] / 2 + (bx + 1) * k[2] {
                    h[q[row + src[2][x]] as usize] += 1;
                }
            }
        }
        h.truncate(nbins);
        clip_histogram(&mut h, clim);
        let mut cum = 0i64;
        for (m, &c) in map.iter_mut().zip(&h) {
            cum += c;
            *m = ((cum as f64 * scale).min((NR_OF_GRAY - 1) as f64)) as i64 as f64;
        }
    });

    // Interpolate between the 2^d surrounding blocks' mappings for every original voxel: the
    // two blocks and weights along each axis, as scikit-image forms them.
    let axis = |d: usize, i: usize| {
        let p = i + pad_start[d];
        let (b, o) = (p / k[d], p % k[d]);
        let c = o as f64 / k[d] as f64;
        let m = |e: usize| (b + e).saturating_sub(1).min(ns_hist[d] - 1);
        ([m(0), m(1)], [1.0 - c, c])
    };
    let [_, ny, nx] = dims;
    let xs: Vec<([usize; 2], [f64; 2])> = (0..nx).map(|x| axis(2, x)).collect();
    let mut res = vec![0u16; vol.len()];
    res.par_chunks_mut(nx).enumerate().for_each(|(row, out)| {
        let (z, y) = (row / ny, row % ny);
        let (mz, wz) = axis(0, z);
        let (my, wy) = axis(1, y);
        let qrow = &q[row * nx..(row + 1) * nx];
        for ((o, &v), (mx, wx)) in out.iter_mut().zip(qrow).zip(&xs) {
            let v = v as usize;
            let mut acc = 0f32;
            // Terms in scikit-image's order (z, y, x edge bits); a zero weight adds +0.0 to a
            // non-negative sum, so skipping it changes nothing.
            for ez in 0..2 {
                for ey in 0..2 {
                    for ex in 0..2 {
                        let w = wx[ex] * wy[ey] * wz[ez];
                        if w != 0.0 {
                            let blk = (mz[ez] * ns_hist[1] + my[ey]) * ns_hist[2] + mx[ex];
                            acc += (maps[blk * nbins + v] * w) as f32;
                        }
                    }
                }
            }
            *o = acc as u16;
        }
    });
    // rescale_intensity to [0, 1] (a constant result is clipped to [0, 1] instead).
    let lo = *res.par_iter().min().unwrap_or(&0) as f64;
    let hi = *res.par_iter().max().unwrap_or(&0) as f64;
    let mut out = vec![0f32; res.len()];
    util::par_map_into(&res, &mut out, move |&v| {
        let v = v as f64;
        (if hi != lo { (v - lo) / (hi - lo) } else { v.clamp(0.0, 1.0) }) as f32
    });
    out
}

/// The kernel size scikit-image uses by default: a eighth of each axis (at least 1).
pub fn default_kernel(dims: [usize; 3]) -> [usize; 3] {
    dims.map(|s| (s / 8).max(1))
}

/// CLAHE of every (t, c) volume; `kernel` in Z, Y, X order (Z ignored in 2-D).
pub fn clahe(s: &Stack, kernel: Option<[usize; 3]>, clip_limit: f64, nbins: usize) -> Result<Stack, NodeError> {
    util::check_finite(s, "image")?;
    if !(0.0..=1.0).contains(&clip_limit) {
        return Err(NodeError::param("clip_limit", format!("must be between 0 and 1, got {clip_limit}")));
    }
    if !(2..=NR_OF_GRAY).contains(&nbins) {
        return Err(NodeError::param("nbins", format!("must be between 2 and {NR_OF_GRAY}, got {nbins}")));
    }
    let dims = s.zyx();
    let mut kernel = kernel.unwrap_or_else(|| default_kernel(dims));
    if dims[0] == 1 {
        kernel[0] = 1;
    }
    if kernel.contains(&0) {
        return Err(NodeError::param("kernel_size", "every size must be at least 1 pixel"));
    }
    let n = s.volume_len();
    let mut out = Vec::with_capacity(s.len());
    for t in 0..s.t() {
        for c in 0..s.c() {
            let v = match s.buffer() {
                Buffer::U8(_) => clahe_volume(s.volume::<u8>(t, c).unwrap_or(&[]), dims, kernel, clip_limit, nbins),
                Buffer::U16(_) => clahe_volume(s.volume::<u16>(t, c).unwrap_or(&[]), dims, kernel, clip_limit, nbins),
                Buffer::U32(_) => clahe_volume(s.volume::<u32>(t, c).unwrap_or(&[]), dims, kernel, clip_limit, nbins),
                Buffer::F32(_) => clahe_volume(s.volume::<f32>(t, c).unwrap_or(&[]), dims, kernel, clip_limit, nbins),
            };
            debug_assert_eq!(v.len(), n);
            out.extend(v);
        }
    }
    s.with_pixels(out).map_err(|e| NodeError::failed(e.to_string()))
}

pub struct Clahe;

impl Node for Clahe {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "image.clahe",
            1,
            "image",
            "Evens out contrast across the image (CLAHE), so dim and bright regions both show detail.",
        )
        .input("image", PortType::Image, "Image to equalise (2-D or 3-D; time points and channels separately).")
        .output("image", PortType::Image, "Equalised image, 32-bit float scaled to 0..1.")
        .param(
            ParamSpec::floats(
                "kernel_size",
                8.0,
                3,
                "Size in pixels of the regions whose contrast is equalised separately: one value, or one per axis \
                 (Z, Y, X). Empty = one eighth of the image along each axis (scikit-image's default).",
            )
            .min(1.0)
            .default_null(),
        )
        .param(
            ParamSpec::float(
                "clip_limit",
                0.01,
                "Limits how much contrast is boosted (0 to 1): higher values give stronger contrast and more \
                 amplified noise.",
            )
            .range(0.0, 1.0),
        )
        .param(
            ParamSpec::int("nbins", 256, "Number of grey-level bins of the local histograms.")
                .range(2.0, NR_OF_GRAY as f64),
        )
    }

    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let s = inputs.image("image")?;
        let nd = util::spatial_ndim(s);
        let kernel = if p.is_null("kernel_size") {
            None
        } else {
            let v = util::per_axis("kernel_size", &p.floats("kernel_size")?, nd)?;
            if v.iter().any(|x| x.fract() != 0.0 || *x < 1.0) {
                return Err(NodeError::param("kernel_size", format!("must be whole numbers of pixels ≥ 1, got {v:?}")));
            }
            let z = util::zyx_from(&v, nd, 1.0);
            Some(z.map(|x| x as usize))
        };
        let (clip, nbins) = (p.f64("clip_limit")?, p.usize("nbins")?);
        let out = util::by_frames1(ctx, s, "CLAHE", |f| clahe(f, kernel, clip, nbins))?;
        Ok(Outputs::new().with("image", Value::Image(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_testkit::{max_abs_diff, read_stack, read_tiff_f64, reference, sample};

    fn check(dataset: &str, input: &str) -> f64 {
        let img = read_stack::<u16>(&sample(input));
        let res = crate::util::read_results(dataset);
        let ks: Vec<usize> =
            res["clahe_kernel"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let kernel = if ks.len() == 3 { [ks[0], ks[1], ks[2]] } else { [1, ks[0], ks[1]] };
        assert_eq!(kernel, {
            let mut d = default_kernel(img.zyx());
            if img.z() == 1 {
                d[0] = 1
            }
            d
        });
        let out = clahe(&img, None, 0.01, 256).unwrap();
        let (_, want) = read_tiff_f64(&reference(dataset, "clahe.tif"));
        let got: Vec<f64> = out.pixels::<f32>().unwrap().iter().map(|&v| v as f64).collect();
        max_abs_diff(&got, &want)
    }

    #[test]
    fn matches_skimage_2d() {
        let d = check("nuclei2d_dsb2018", "nuclei2d.tif");
        eprintln!("clahe max abs diff {d}");
        assert!(d < 1e-6, "max abs diff {d}");
    }

    #[test]
    fn matches_skimage_3d() {
        let d = check("nuclei3d_synthetic_stardist", "nuclei3d_synthetic.tif");
        eprintln!("clahe max abs diff {d}");
        assert!(d < 1e-6, "max abs diff {d}");
    }

    #[test]
    fn matches_skimage_with_other_parameters_and_u8() {
        use crate::util::{diff_fixture, fixture};
        let crop = read_stack::<u16>(&fixture("nuclei2d_crop.tif"));
        let em = read_stack::<u8>(&fixture("em_crop_u8.tif"));
        let n3d = read_stack::<u16>(&sample("nuclei3d_synthetic.tif"));
        for (out, file) in [
            (clahe(&crop, Some([1, 16, 16]), 0.02, 128).unwrap(), "clahe_k16_c0.02_b128_crop.tif"),
            (clahe(&em, None, 0.01, 256).unwrap(), "clahe_default_em.tif"),
            (clahe(&n3d, Some([5, 9, 11]), 0.0, 256).unwrap(), "clahe_k5x9x11_c0_3d.tif"),
        ] {
            let (_, d) = diff_fixture(&out, file);
            assert!(d < 1e-6, "{file}: max abs diff {d}");
        }
    }

    #[test]
    fn reflect_padding_like_numpy() {
        // np.pad([1, 2, 3], 7, mode='reflect') -> 2 3 2 1 2 3 2 1 2 3 2 1 2 3 2 1 2
        let got: Vec<usize> = (-7..10).map(|j| np_reflect(j, 3) + 1).collect();
        assert_eq!(got, vec![2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2]);
        assert_eq!(np_reflect(-3, 1), 0);
    }

    #[test]
    fn rejects_bad_params_and_handles_constant_images() {
        let s = Stack::from_2d(4, 4, vec![5u16; 16]).unwrap();
        let out = clahe(&s, None, 0.01, 256).unwrap();
        assert!(out.pixels::<f32>().unwrap().iter().all(|v| v.is_finite()));
        assert!(clahe(&s, None, 2.0, 256).unwrap_err().to_string().contains("clip_limit"));
        assert!(clahe(&s, Some([1, 0, 2]), 0.01, 256).unwrap_err().to_string().contains("kernel_size"));
    }
}
