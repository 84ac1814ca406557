//! `label.seeds`: one marker per object centre, from the peaks of an image (typically the
//! distance transform), for the watershed.
//!
//! `local_max` follows `skimage.feature.peak_local_max(image, min_distance, threshold_abs,
//! labels, exclude_border=False)` step by step:
//! 1. objects: each label of `labels` (restricted to `mask`), or the mask as one object, or
//!    the whole image; each object is handled inside its bounding box, pixels of other objects
//!    counting as −∞;
//! 2. candidates: pixels equal to the maximum of the (2·min_distance+1)-wide box around them
//!    (box clipped at the bounding box) and above the threshold (`threshold_abs`, or else the
//!    image minimum). If every pixel of an object is a candidate (a flat object), skimage keeps
//!    only its "isolated" pixels (those removed by a binary opening with the cross), and so do we;
//!    for the whole image without objects, a flat image has no peak;
//! 3. candidates are sorted by value, highest first, ties in raster order; a candidate is kept
//!    unless a kept one of the same object lies at Chebyshev distance < min_distance.
//!
//! Seeds are numbered 1, 2, … in that order (objects by increasing id), exactly like the
//! reference's `markers.tif`. The rule is fully deterministic, so plateaus (several equal
//! maxima) resolve the same way as skimage: the first in raster order wins.
//!
//! `h_maxima` marks the regional maxima at least `h` high (`skimage.morphology.h_maxima`, via
//! grey reconstruction by dilation with Vincent's hybrid algorithm, full connectivity), keeps
//! those inside the objects and above the threshold, and numbers each connected (full
//! connectivity) maximum region as one seed, in raster order.

use std::collections::HashMap;

use petri_api::{
    DType, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, ParamValue, Params, PortType, Stack, Value,
};
use rayon::prelude::*;

use crate::connected_components::label_volume_by;
use crate::util::{
    BBox, Connectivity, Neighbourhood, Shape3, bboxes, check_same_shape, finite_f64, max_filter_box, volumes,
};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SeedMethod {
    LocalMax,
    HMaxima { h: f64 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeedOpts {
    pub min_distance: usize,
    pub threshold_abs: Option<f64>,
    pub method: SeedMethod,
}

/// Flat indices of the peaks of one object (`member(i)` for crop index i), in seed order.
fn object_peaks(
    image: &[f64],
    shape: Shape3,
    bbox: &BBox,
    member: &dyn Fn(usize) -> bool,
    md: usize,
    threshold: f64,
    isolated_rule: bool,
) -> Vec<usize> {
    let cs = bbox.shape();
    let n = cs.iter().product::<usize>();
    let mut vals = vec![f64::NEG_INFINITY; n];
    let mut flat = vec![0usize; n];
    let mut inside = vec![false; n];
    bbox.for_each(shape, |k, i| {
        flat[k] = i;
        if member(i) {
            inside[k] = true;
            vals[k] = image[i];
        }
    });
    let mut maxf = vals.clone();
    let r = [if shape[0] > 1 { md } else { 0 }, md, md];
    max_filter_box(&mut maxf, cs, r);
    let mut cand: Vec<usize> = (0..n).filter(|&k| inside[k] && vals[k] == maxf[k]).collect();
    let members = inside.iter().filter(|&&b| b).count();
    if cand.len() == members {
        // A flat object (or image): no peak, except skimage's "isolated pixels" for objects.
        cand = if isolated_rule { isolated_pixels(&inside, cs) } else { Vec::new() };
    }
    cand.retain(|&k| vals[k] > threshold);
    // Highest first; the sort is stable so equal values stay in raster order.
    cand.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
    let coords = |k: usize| [k / (cs[1] * cs[2]), (k / cs[2]) % cs[1], k % cs[2]];
    let cell = md.max(1);
    let mut grid: HashMap<[usize; 3], Vec<[usize; 3]>> = HashMap::new();
    let mut kept = Vec::new();
    for k in cand {
        let c = coords(k);
        let g = [c[0] / cell, c[1] / cell, c[2] / cell];
        let mut close = false;
        'search: for dz in 0..3 {
            for dy in 0..3 {
                for dx in 0..3 {
                    let Some(key) = (|| {
                        Some([(g[0] + dz).checked_sub(1)?, (g[1] + dy).checked_sub(1)?, (g[2] + dx).checked_sub(1)?])
                    })() else {
                        continue;
                    };
                    let near = |p: &[usize; 3]| (0..3).map(|a| p[a].abs_diff(c[a])).max().unwrap_or(0) < md;
                    if grid.get(&key).is_some_and(|pts| pts.iter().any(near)) {
                        close = true;
                        break 'search;
                    }
                }
            }
        }
        if !close {
            grid.entry(g).or_default().push(c);
            kept.push(flat[k]);
        }
    }
    kept
}

/// Pixels of `inside` removed by a binary opening with the face-connected cross (outside the
/// box counts as background), as scipy `binary_opening` does: skimage's peaks of flat objects.
fn isolated_pixels(inside: &[bool], cs: Shape3) -> Vec<usize> {
    let nb = Neighbourhood::new(cs, Connectivity::Face);
    let [d, h, w] = cs;
    let on_edge = |k: usize| {
        let (z, y, x) = (k / (h * w), (k / w) % h, k % w);
        x == 0 || x + 1 == w || y == 0 || y + 1 == h || (d > 1 && (z == 0 || z + 1 == d))
    };
    let eroded: Vec<bool> = (0..inside.len())
        .map(|k| {
            if !inside[k] || on_edge(k) {
                return false;
            }
            let mut all = true;
            nb.for_each(k, |j| all &= inside[j]);
            all
        })
        .collect();
    (0..inside.len())
        .filter(|&k| {
            if !inside[k] || eroded[k] {
                return false;
            }
            let mut any = false;
            nb.for_each(k, |j| any |= eroded[j]);
            !any
        })
        .collect()
}

/// Grey reconstruction by dilation of `marker` under `mask` (marker ≤ mask), full
/// connectivity, in place (Vincent 1993, hybrid raster scans + FIFO queue).
pub fn reconstruct_dilation(marker: &mut [f64], mask: &[f64], shape: Shape3) {
    let nb = Neighbourhood::new(shape, Connectivity::Full);
    let n = marker.len();
    for p in 0..n {
        let mut m = marker[p];
        nb.for_each(p, |q| {
            if q < p {
                m = m.max(marker[q]);
            }
        });
        marker[p] = m.min(mask[p]);
    }
    let mut fifo = std::collections::VecDeque::new();
    for p in (0..n).rev() {
        let mut m = marker[p];
        nb.for_each(p, |q| {
            if q > p {
                m = m.max(marker[q]);
            }
        });
        marker[p] = m.min(mask[p]);
        let mp = marker[p];
        let mut push = false;
        nb.for_each(p, |q| {
            if q > p && marker[q] < mp && marker[q] < mask[q] {
                push = true;
            }
        });
        if push {
            fifo.push_back(p);
        }
    }
    while let Some(p) = fifo.pop_front() {
        let mp = marker[p];
        nb.for_each(p, |q| {
            if marker[q] < mp && mask[q] != marker[q] {
                marker[q] = mp.min(mask[q]);
                fifo.push_back(q);
            }
        });
    }
}

/// `skimage.morphology.h_maxima` of one volume: 1 where a regional maximum is at least `h` high.
/// `float_input`: the image was f32 (skimage then lowers the marker by a relative 2e-6 so
/// maxima of exactly height h survive rounding).
pub fn h_maxima(image: &[f64], shape: Shape3, h: f64, float_input: bool) -> Vec<bool> {
    let (lo, hi) = image.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if h > hi - lo {
        return vec![false; image.len()];
    }
    let mut marker: Vec<f64> = if float_input {
        image.iter().map(|&v| v - h - 2e-6 * v.abs()).collect()
    } else if h.fract() != 0.0 {
        // skimage converts an integer image to float64 for a fractional h.
        image.iter().map(|&v| v - h - 2e-15 * v.abs()).collect()
    } else {
        // Integer image: subtract, clipping at 0 (unsigned types).
        image.iter().map(|&v| if v < h { 0.0 } else { v - h }).collect()
    };
    reconstruct_dilation(&mut marker, image, shape);
    image.iter().zip(&marker).map(|(&v, &r)| v - r >= h).collect()
}

/// Seeds of one volume. `objects` are the labels to search per object (0 = ignore), or `None`
/// for the whole image. `float_input` tells h-maxima the image was f32.
pub fn seeds_volume(
    image: &[f64],
    objects: Option<&[u32]>,
    shape: Shape3,
    opts: &SeedOpts,
    float_input: bool,
) -> Vec<u32> {
    let n = image.len();
    let threshold = opts.threshold_abs.unwrap_or_else(|| image.iter().copied().fold(f64::INFINITY, f64::min));
    let mut out = vec![0u32; n];
    match opts.method {
        SeedMethod::LocalMax => {
            let peaks: Vec<Vec<usize>> = match objects {
                Some(lab) => bboxes(lab, shape)
                    .par_iter()
                    .map(|(id, b)| {
                        let id = *id;
                        object_peaks(image, shape, b, &|i| lab[i] == id, opts.min_distance, threshold, true)
                    })
                    .collect(),
                None => {
                    let all = BBox { lo: [0; 3], hi: shape };
                    vec![object_peaks(image, shape, &all, &|_| true, opts.min_distance, threshold, false)]
                }
            };
            for (k, &i) in peaks.iter().flatten().enumerate() {
                out[i] = k as u32 + 1;
            }
        }
        SeedMethod::HMaxima { h } => {
            let hm = h_maxima(image, shape, h, float_input);
            let keep = |i: usize| hm[i] && image[i] > threshold && objects.is_none_or(|l| l[i] != 0);
            let flags: Vec<u8> = (0..n).map(|i| keep(i) as u8).collect();
            out = label_volume_by(&flags, shape, Connectivity::Full, |v| v != 0).0;
        }
    }
    out
}

/// Seeds of every (t, c) volume of `image`, optionally per object of `labels` and inside `mask`.
pub fn seeds(
    ctx: &NodeCtx,
    image: &Stack,
    labels: Option<&Stack>,
    mask: Option<&Stack>,
    opts: &SeedOpts,
) -> Result<Stack, NodeError> {
    if let Some(l) = labels {
        check_same_shape(image, "image", l, "labels")?;
    }
    if let Some(m) = mask {
        check_same_shape(image, "image", m, "mask")?;
    }
    let px = finite_f64(image, "image")?;
    let lab = match labels {
        Some(l) => Some(l.pixels::<u32>().ok_or_else(|| NodeError::input("labels", "expected u32 labels"))?),
        None => None,
    };
    let msk = match mask {
        Some(m) => Some(m.pixels::<u8>().ok_or_else(|| NodeError::input("mask", "expected a u8 mask"))?),
        None => None,
    };
    let n = image.volume_len();
    let float_input = image.dtype() == DType::F32;
    let mut out = Vec::with_capacity(image.len());
    let total = image.t() * image.c();
    for (k, _) in volumes(image).enumerate() {
        ctx.check_cancel()?;
        let r = k * n..(k + 1) * n;
        // Objects: labels inside the mask, or the mask as one object, or none.
        let objects: Option<Vec<u32>> = match (lab, msk) {
            (Some(l), Some(m)) => {
                Some(l[r.clone()].iter().zip(&m[r.clone()]).map(|(&a, &b)| if b != 0 { a } else { 0 }).collect())
            }
            (Some(l), None) => Some(l[r.clone()].to_vec()),
            (None, Some(m)) => Some(m[r.clone()].iter().map(|&b| (b != 0) as u32).collect()),
            (None, None) => None,
        };
        out.extend(seeds_volume(&px[r], objects.as_deref(), image.zyx(), opts, float_input));
        ctx.progress((k + 1) as f64 / total as f64, "seeds");
    }
    image.with_pixels::<u32>(out).map_err(|e| NodeError::failed(e.to_string()))
}

pub struct Seeds;

impl Node for Seeds {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "label.seeds",
            1,
            "label",
            "Places one marker on each bright peak of an image (e.g. the centres of a distance map), \
             to seed a watershed.",
        )
        .input("image", PortType::Image, "Image whose peaks become seeds, e.g. the distance transform of a mask.")
        .optional_input(
            "labels",
            PortType::Labels,
            "Objects: peaks are searched in each object separately, so every object gets at least one seed.",
        )
        .optional_input("mask", PortType::Mask, "Only peaks inside the mask are kept.")
        .output("markers", PortType::Labels, "Seed k has value k (1, 2, …); 0 elsewhere.")
        .param(
            ParamSpec::int(
                "min_distance",
                5,
                "Smallest distance, in pixels, between two seeds of the same object; \
                 a peak is also only a peak if it is the highest within this distance. \
                 Roughly the radius of the smallest nucleus.",
            )
            .min(1.0),
        )
        .param(
            ParamSpec::float(
                "threshold_abs",
                0.0,
                "Ignore peaks not higher than this value. Empty = the image minimum.",
            )
            .nullable()
            .default_null(),
        )
        .param(ParamSpec::choice(
            "method",
            &["local_max", "h_maxima"],
            "local_max",
            "'local_max': the highest point of each neighbourhood (min_distance); \
             'h_maxima': every summit that rises at least h above its surroundings (one seed per summit).",
        ))
        .param(
            ParamSpec::float(
                "h",
                1.0,
                "For h_maxima: how far a summit must rise above the saddle to its neighbours to get \
                 its own seed (in image units; for a distance map, in pixels or microns).",
            )
            .greater_than(0.0),
        )
    }

    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let method = match p.str("method")? {
            "local_max" => SeedMethod::LocalMax,
            "h_maxima" => SeedMethod::HMaxima { h: p.f64("h")? },
            m => return Err(NodeError::param("method", format!("unknown method '{m}'"))),
        };
        let threshold_abs = match p.get("threshold_abs")? {
            ParamValue::Null => None,
            _ => Some(p.f64("threshold_abs")?),
        };
        let opts = SeedOpts { min_distance: p.usize("min_distance")?.max(1), threshold_abs, method };
        let labels = inputs.opt("labels", Inputs::labels)?;
        let mask = inputs.opt("mask", Inputs::mask)?;
        let out = seeds(ctx, inputs.image("image")?, labels, mask, &opts)?;
        Ok(Outputs::new().with("markers", Value::Labels(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_testkit::{read_stack, reference};

    fn local(md: usize) -> SeedOpts {
        SeedOpts { min_distance: md, threshold_abs: None, method: SeedMethod::LocalMax }
    }

    #[test]
    fn equals_peak_local_max_reference() {
        for ds in ["nuclei2d_dsb2018", "nuclei3d_synthetic_stardist"] {
            // min_distance of reference.py's DATASETS (results.json holds NaN, not strict JSON).
            let md = if ds == "nuclei2d_dsb2018" { 4 } else { 3 };
            let edt = read_stack::<f32>(&reference(ds, "edt.tif"));
            let cc_file = if edt.z() > 1 { "cc_conn26.tif" } else { "cc_conn8.tif" };
            let cc = read_stack::<u32>(&reference(ds, cc_file));
            let want = read_stack::<u32>(&reference(ds, "markers.tif"));
            let got = seeds(&NodeCtx::detached(), &edt, Some(&cc), None, &local(md)).unwrap();
            let (g, w) = (got.pixels::<u32>().unwrap(), want.pixels::<u32>().unwrap());
            let nw = w.iter().filter(|&&v| v != 0).count();
            assert!(nw > 10);
            let differ = g.iter().zip(w).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{ds}: {differ} pixels differ from skimage's markers ({nw} seeds)");
        }
    }

    #[test]
    fn spacing_plateaus_and_flat_objects() {
        // Expected values from skimage 0.26 peak_local_max(img, min_distance, exclude_border=False):
        // md=3 → [[0 6] [0 1]] (2.9 is within 3 of the higher 3.0; the 5.0 plateau keeps its
        // first pixel); md=1 → [[0 6] [0 7] [0 1] [0 3]] (plateau pixels 1 apart both survive).
        let img = [0.0, 3.0, 0.0, 2.9, 0.0, 0.0, 5.0, 5.0, 0.0];
        let out = seeds_volume(&img, None, [1, 1, 9], &local(3), false);
        assert_eq!(out, vec![0, 2, 0, 0, 0, 0, 1, 0, 0]);
        let out = seeds_volume(&img, None, [1, 1, 9], &local(1), false);
        assert_eq!(out, vec![0, 3, 0, 4, 0, 0, 1, 2, 0]);
        // A flat single-pixel object is its own seed (skimage's isolated-pixel rule).
        let lab = [1u32, 0, 0, 0, 0, 0, 0, 0, 0];
        let img1 = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(seeds_volume(&img1, Some(&lab), [1, 3, 3], &local(1), false)[0], 1);
        // A flat image without objects has no peak.
        assert!(seeds_volume(&[2.0; 9], None, [1, 3, 3], &local(1), false).iter().all(|&v| v == 0));
        // Threshold: peaks must be strictly above.
        let t = SeedOpts { threshold_abs: Some(3.0), ..local(1) };
        assert_eq!(seeds_volume(&img, None, [1, 1, 9], &t, false), vec![0, 0, 0, 0, 0, 0, 1, 2, 0]);
    }

    #[test]
    fn h_maxima_keeps_only_high_summits() {
        // The summit at 6 rises 2 above its saddle (1 at index 3); skimage h_maxima gives
        // [0 0 1 0 0 0 1 0] for h = 1 and 2.
        let img = [0.0, 1.0, 4.0, 1.0, 2.0, 2.0, 3.0, 0.0];
        let both = vec![false, false, true, false, false, false, true, false];
        assert_eq!(h_maxima(&img, [1, 1, 8], 2.0, false), both);
        assert_eq!(h_maxima(&img, [1, 1, 8], 1.0, false), both);
        let hm = h_maxima(&img, [1, 1, 8], 2.5, false);
        assert_eq!(hm, vec![false, false, true, false, false, false, false, false]);
        let o = SeedOpts { method: SeedMethod::HMaxima { h: 1.0 }, ..local(1) };
        assert_eq!(seeds_volume(&img, None, [1, 1, 8], &o, false), vec![0, 0, 1, 0, 0, 0, 2, 0]);
    }

    #[test]
    fn refuses_bad_inputs() {
        let ctx = NodeCtx::detached();
        let img = Stack::from_2d(1, 3, vec![0.0f32, f32::INFINITY, 0.0]).unwrap();
        assert!(seeds(&ctx, &img, None, None, &local(1)).unwrap_err().to_string().contains("non-finite"));
        let img = Stack::from_2d(1, 3, vec![0.0f32, 1.0, 0.0]).unwrap();
        let lab = Stack::from_2d(3, 1, vec![1u32, 1, 1]).unwrap();
        assert!(seeds(&ctx, &img, Some(&lab), None, &local(1)).unwrap_err().to_string().contains("labels"));
        let zero = Stack::from_2d(1, 3, vec![0u32; 3]).unwrap();
        let out = seeds(&ctx, &img, Some(&zero), None, &local(1)).unwrap();
        assert!(out.pixels::<u32>().unwrap().iter().all(|&v| v == 0));
    }
}
