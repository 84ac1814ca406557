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

use std::borrow::Cow;
use std::collections::HashMap;

use petri_api::{
    DType, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, ParamValue, Params, Pixel, PortType, Stack,
    Value,
};
use rayon::prelude::*;

use crate::connected_components::label_volume_by;
use crate::util::{
    BBox, Connectivity, Neighbourhood, Shape3, bboxes, check_same_shape, join_volumes, max_filter_box, volumes,
    zeroed_vec,
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

/// Candidate peaks of one object by the separable maximum filter on its bounding box (crop
/// indices of member pixels equal to the maximum of their box), and the crop values.
fn crop_candidates<P: Pixel>(
    image: &[P],
    shape: Shape3,
    bbox: &BBox,
    member: &(dyn Fn(usize) -> bool + Sync),
    md: usize,
) -> Vec<usize> {
    let cs = bbox.shape();
    let n = cs.iter().product::<usize>();
    // Crop values, −∞ outside the object (member pixels are finite: NaN/Inf are refused).
    let mut vals = vec![f64::NEG_INFINITY; n];
    bbox.for_each(shape, |k, i| {
        if member(i) {
            vals[k] = image[i].to_f64();
        }
    });
    let mut maxf = vals.clone();
    // A window wider than the box is the whole box.
    let r = [if shape[0] > 1 { md.min(cs[0]) } else { 0 }, md.min(cs[1]), md.min(cs[2])];
    max_filter_box(&mut maxf, cs, r);
    let [_, h, w] = shape;
    (0..n)
        .filter(|&k| vals[k] > f64::NEG_INFINITY && vals[k] == maxf[k])
        .map(|k| {
            let (z, y, x) = (k / (cs[1] * cs[2]), (k / cs[2]) % cs[1], k % cs[2]);
            ((bbox.lo[0] + z) * h + bbox.lo[1] + y) * w + bbox.lo[2] + x
        })
        .collect()
}

/// What [`scan_candidates`] finds: candidate peaks in raster order, and the (sorted) ids of the
/// objects that have at least one voxel that is not a candidate — the others are flat.
struct Scan {
    cands: Vec<usize>,
    not_flat: Vec<u32>,
}

/// Candidate peaks of all objects at once, in two steps. First every object voxel is compared
/// with its 26 (8 in 2-D) neighbours: on a distance map almost every voxel has a higher one,
/// which settles it. The few left (ridges, plateaus, summits) are then checked against their
/// whole window, skipping every block of the volume whose maximum is not above them — a
/// summit's window is mostly lower, so most of its blocks are never looked into. Past a work
/// budget (huge windows over large plateaus) this gives up (`None`) and the caller uses
/// [`crop_candidates`]. Same result either way. Indices in raster order.
fn scan_candidates<P: Pixel>(
    image: &[P],
    obj: &(impl Fn(usize) -> u32 + Sync),
    shape: Shape3,
    md: usize,
) -> Option<Scan> {
    let [d, h, w] = shape;
    let rz = if d > 1 { md } else { 0 };
    // Step 1: the ring of direct neighbours.
    let mut ring: Vec<[isize; 3]> = Vec::new();
    for dz in -(rz.min(1) as isize)..=rz.min(1) as isize {
        for dy in -1..=1isize {
            for dx in -1..=1isize {
                if (dz, dy, dx) != (0, 0, 0) {
                    ring.push([dz, dy, dx]);
                }
            }
        }
    }
    let flat: Vec<isize> = ring.iter().map(|o| (o[0] * h as isize + o[1]) * w as isize + o[2]).collect();
    type Row = (Vec<usize>, Vec<u32>);
    let rows: Vec<Row> = (0..d * h)
        .into_par_iter()
        .map(|r| {
            let (z, y) = (r / h, r % h);
            let mut left = Vec::new();
            // Objects with a non-peak voxel in this row (runs of one object add it once).
            let mut not_flat: Vec<u32> = Vec::new();
            let inner_zy = y >= 1 && y + 1 < h && (d == 1 || (z >= 1 && z + 1 < d));
            for x in 0..w {
                let p = r * w + x;
                let l = obj(p);
                if l == 0 {
                    continue;
                }
                let v = image[p];
                let interior = inner_zy && x >= 1 && x + 1 < w;
                let mut higher = false;
                for (k, o) in ring.iter().enumerate() {
                    if !interior {
                        let (nz, ny, nx) = (z as isize + o[0], y as isize + o[1], x as isize + o[2]);
                        if nz < 0 || ny < 0 || nx < 0 || nz >= d as isize || ny >= h as isize || nx >= w as isize {
                            continue;
                        }
                    }
                    let q = (p as isize + flat[k]) as usize;
                    if image[q] > v && obj(q) == l {
                        higher = true;
                        break;
                    }
                }
                if !higher {
                    left.push(p);
                } else if not_flat.last() != Some(&l) {
                    not_flat.push(l);
                }
            }
            (left, not_flat)
        })
        .collect();
    let mut not_flat: Vec<u32> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
    let left: Vec<usize> = rows.into_iter().flat_map(|r| r.0).collect();
    if md <= 1 {
        not_flat.sort_unstable();
        not_flat.dedup();
        return Some(Scan { cands: left, not_flat });
    }
    // Step 2: the whole window of each voxel left, block by block.
    let bs = [if d > 1 { 4 } else { 1 }, 8, 8];
    let nb = [d.div_ceil(bs[0]), h.div_ceil(bs[1]), w.div_ceil(bs[2])];
    let r = [rz, md, md];
    let blocks_per_window: usize = (0..3).map(|a| ((2 * r[a] + 1).min(shape[a])).div_ceil(bs[a]) + 1).product();
    if left.len().saturating_mul(blocks_per_window) > 24 * image.len() + 1_000_000 {
        return None; // e.g. a huge window over a large plateau: the separable filter is cheaper
    }
    let mut bmax = vec![f64::NEG_INFINITY; nb.iter().product()];
    bmax.par_chunks_mut(nb[2]).enumerate().for_each(|(k, out)| {
        let (bz, by) = (k / nb[1], k % nb[1]);
        for z in bz * bs[0]..((bz + 1) * bs[0]).min(d) {
            for y in by * bs[1]..((by + 1) * bs[1]).min(h) {
                let row = &image[(z * h + y) * w..(z * h + y + 1) * w];
                for (bx, chunk) in row.chunks(bs[2]).enumerate() {
                    for &v in chunk {
                        let v = v.to_f64();
                        if v > out[bx] {
                            out[bx] = v;
                        }
                    }
                }
            }
        }
    });
    let judged: Vec<(usize, Option<u32>)> = left
        .par_iter()
        .map(|&p| {
            let c = [p / (h * w), (p / w) % h, p % w];
            let (l, v) = (obj(p), image[p]);
            let vf = v.to_f64();
            let lo = [0, 1, 2].map(|a| c[a].saturating_sub(r[a]));
            let hi = [0, 1, 2].map(|a| (c[a] + r[a] + 1).min(shape[a]));
            for bz in lo[0] / bs[0]..=(hi[0] - 1) / bs[0] {
                for by in lo[1] / bs[1]..=(hi[1] - 1) / bs[1] {
                    for bx in lo[2] / bs[2]..=(hi[2] - 1) / bs[2] {
                        if bmax[(bz * nb[1] + by) * nb[2] + bx] <= vf {
                            continue;
                        }
                        for z in (bz * bs[0]).max(lo[0])..((bz + 1) * bs[0]).min(hi[0]) {
                            for y in (by * bs[1]).max(lo[1])..((by + 1) * bs[1]).min(hi[1]) {
                                let row = (z * h + y) * w;
                                for q in row + (bx * bs[2]).max(lo[2])..row + ((bx + 1) * bs[2]).min(hi[2]) {
                                    if image[q] > v && obj(q) == l {
                                        return (p, Some(l));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (p, None)
        })
        .collect();
    let mut cands = Vec::new();
    for (p, beaten) in judged {
        match beaten {
            Some(l) => not_flat.push(l),
            None => cands.push(p),
        }
    }
    not_flat.sort_unstable();
    not_flat.dedup();
    Some(Scan { cands, not_flat })
}

/// `peak_local_max` seeds of one volume (see the module docs), as flat indices in seed order.
fn local_max_peaks<P: Pixel>(
    image: &[P],
    objects: Option<&[u32]>,
    shape: Shape3,
    md: usize,
    threshold: f64,
) -> Vec<usize> {
    let obj = |i: usize| objects.map_or(1, |l| l[i]);
    let [_, h, w] = shape;
    let coords = |i: usize| [i / (h * w), (i / w) % h, i % w];
    // Candidates per object, objects by increasing id. An object's maximum is always a
    // candidate, so the objects with candidates are all the objects. `flat`: every voxel of
    // the object is a candidate; its box is then the box of its candidates.
    // One monomorphised scan per case: the hot loop then has no `Option` test per voxel.
    let scanned = match objects {
        Some(l) => scan_candidates(image, &|i: usize| l[i], shape, md),
        None => scan_candidates(image, &|_: usize| 1, shape, md),
    };
    let per_object: Vec<(u32, Vec<usize>, Option<BBox>)> = match scanned {
        Some(Scan { cands, not_flat }) => {
            let mut keyed: Vec<(u32, usize)> = cands.into_iter().map(|p| (obj(p), p)).collect();
            keyed.sort_unstable();
            let mut out: Vec<(u32, Vec<usize>, Option<BBox>)> = Vec::new();
            for (id, p) in keyed {
                match out.last_mut() {
                    Some(last) if last.0 == id => last.1.push(p),
                    _ => out.push((id, vec![p], None)),
                }
            }
            for (id, cand, flat) in &mut out {
                if not_flat.binary_search(id).is_err() {
                    let mut b = BBox { lo: [usize::MAX; 3], hi: [0; 3], count: cand.len() };
                    for &p in cand.iter() {
                        let c = coords(p);
                        for a in 0..3 {
                            b.lo[a] = b.lo[a].min(c[a]);
                            b.hi[a] = b.hi[a].max(c[a] + 1);
                        }
                    }
                    *flat = Some(b);
                }
            }
            out
        }
        // Large plateaus: the separable maximum filter per object box.
        None => {
            let boxes = match objects {
                Some(l) => bboxes(l, shape),
                None => vec![(1, BBox { lo: [0; 3], hi: shape, count: image.len() })],
            };
            boxes
                .par_iter()
                .map(|&(id, b)| {
                    let cand = crop_candidates(image, shape, &b, &|i| obj(i) == id, md);
                    let flat = (cand.len() == b.count).then_some(b);
                    (id, cand, flat)
                })
                .collect()
        }
    };
    per_object
        .into_par_iter()
        .map(|(id, mut cand, flat)| {
            if let Some(b) = flat {
                // A flat object (or image): no peak, except skimage's "isolated pixels" of objects.
                cand = if objects.is_some() {
                    let cs = b.shape();
                    let mut inside = vec![false; cs.iter().product()];
                    let mut flat = vec![0usize; inside.len()];
                    b.for_each(shape, |k, i| {
                        inside[k] = obj(i) == id;
                        flat[k] = i;
                    });
                    isolated_pixels(&inside, cs).into_iter().map(|k| flat[k]).collect()
                } else {
                    Vec::new()
                };
            }
            cand.retain(|&i| image[i].to_f64() > threshold);
            // Highest first; the sort is stable so equal values stay in raster order.
            cand.sort_by(|&a, &c| image[c].to_f64().total_cmp(&image[a].to_f64()));
            let cell = md.max(1);
            let mut grid: HashMap<[usize; 3], Vec<[usize; 3]>> = HashMap::new();
            let mut kept = Vec::new();
            for i in cand {
                let c = coords(i);
                let g = [c[0] / cell, c[1] / cell, c[2] / cell];
                let near = |p: &[usize; 3]| (0..3).map(|a| p[a].abs_diff(c[a])).max().unwrap_or(0) < md;
                let mut close = false;
                for gz in g[0].saturating_sub(1)..=g[0] + 1 {
                    for gy in g[1].saturating_sub(1)..=g[1] + 1 {
                        for gx in g[2].saturating_sub(1)..=g[2] + 1 {
                            close |= grid.get(&[gz, gy, gx]).is_some_and(|pts| pts.iter().any(near));
                        }
                    }
                }
                if !close {
                    grid.entry(g).or_default().push(c);
                    kept.push(i);
                }
            }
            kept
        })
        .flatten()
        .collect()
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
/// for the whole image.
pub fn seeds_volume<P: Pixel>(image: &[P], objects: Option<&[u32]>, shape: Shape3, opts: &SeedOpts) -> Vec<u32> {
    let n = image.len();
    let threshold =
        opts.threshold_abs.unwrap_or_else(|| image.par_iter().map(|v| v.to_f64()).reduce(|| f64::INFINITY, f64::min));
    let mut out = zeroed_vec::<u32>(n);
    match opts.method {
        SeedMethod::LocalMax => {
            for (k, i) in local_max_peaks(image, objects, shape, opts.min_distance, threshold).into_iter().enumerate() {
                out[i] = k as u32 + 1;
            }
        }
        SeedMethod::HMaxima { h } => {
            let vals: Vec<f64> = image.par_iter().map(|v| v.to_f64()).collect();
            let hm = h_maxima(&vals, shape, h, P::DTYPE == DType::F32);
            let keep = |i: usize| hm[i] && vals[i] > threshold && objects.is_none_or(|l| l[i] != 0);
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
    image.check_finite().map_err(|m| NodeError::input("image", m))?;
    let lab = match labels {
        Some(l) => Some(l.pixels::<u32>().ok_or_else(|| NodeError::input("labels", "expected u32 labels"))?),
        None => None,
    };
    let msk = match mask {
        Some(m) => Some(m.pixels::<u8>().ok_or_else(|| NodeError::input("mask", "expected a u8 mask"))?),
        None => None,
    };
    let n = image.volume_len();
    let mut out = Vec::new();
    let total = image.t() * image.c();
    for (k, _) in volumes(image).enumerate() {
        ctx.check_cancel()?;
        let r = k * n..(k + 1) * n;
        // Objects: labels inside the mask, or the mask as one object, or none.
        let objects: Option<Cow<[u32]>> = match (lab, msk) {
            (Some(l), Some(m)) => Some(Cow::Owned(
                l[r.clone()].iter().zip(&m[r.clone()]).map(|(&a, &b)| if b != 0 { a } else { 0 }).collect(),
            )),
            (Some(l), None) => Some(Cow::Borrowed(&l[r.clone()])),
            (None, Some(m)) => Some(Cow::Owned(m[r.clone()].iter().map(|&b| (b != 0) as u32).collect())),
            (None, None) => None,
        };
        let obj = objects.as_deref();
        let sh = image.zyx();
        let v = petri_api::with_pixels!(image.buffer(), px => seeds_volume(&px[r.clone()], obj, sh, opts));
        out.push(v);
        ctx.progress((k + 1) as f64 / total as f64, "seeds");
    }
    image.with_pixels::<u32>(join_volumes(out)).map_err(|e| NodeError::failed(e.to_string()))
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
        let img = [0.0f32, 3.0, 0.0, 2.9, 0.0, 0.0, 5.0, 5.0, 0.0];
        let out = seeds_volume(&img, None, [1, 1, 9], &local(3));
        assert_eq!(out, vec![0, 2, 0, 0, 0, 0, 1, 0, 0]);
        let out = seeds_volume(&img, None, [1, 1, 9], &local(1));
        assert_eq!(out, vec![0, 3, 0, 4, 0, 0, 1, 2, 0]);
        // A flat single-pixel object is its own seed (skimage's isolated-pixel rule).
        let lab = [1u32, 0, 0, 0, 0, 0, 0, 0, 0];
        let img1 = [1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(seeds_volume(&img1, Some(&lab), [1, 3, 3], &local(1))[0], 1);
        // A flat image without objects has no peak.
        assert!(seeds_volume(&[2.0f32; 9], None, [1, 3, 3], &local(1)).iter().all(|&v| v == 0));
        // Threshold: peaks must be strictly above.
        let t = SeedOpts { threshold_abs: Some(3.0), ..local(1) };
        assert_eq!(seeds_volume(&img, None, [1, 1, 9], &t), vec![0, 0, 0, 0, 0, 0, 1, 2, 0]);
    }

    #[test]
    fn scan_and_separable_candidates_agree() {
        // Quantised noise (many ties and plateaus) in two objects, 2-D and 3-D.
        let mut x = 5u64;
        for shape in [[1, 30, 41], [6, 13, 17], [9, 20, 30]] {
            let n: usize = shape.iter().product();
            let img: Vec<f32> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((x >> 33) % 4) as f32
                })
                .collect();
            let lab: Vec<u32> =
                (0..n).map(|i| if i % shape[2] < 3 { 0 } else { 1 + (i % shape[2] > 9) as u32 }).collect();
            for md in [1, 2, 3, 5] {
                let obj = |i: usize| lab[i];
                let scan = scan_candidates(&img, &obj, shape, md).unwrap().cands;
                let mut crop: Vec<usize> = bboxes(&lab, shape)
                    .iter()
                    .flat_map(|&(id, b)| crop_candidates(&img, shape, &b, &|i| lab[i] == id, md))
                    .collect();
                crop.sort_unstable();
                assert_eq!(scan, crop, "{shape:?} md={md}");
            }
        }
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
        let img32: Vec<f32> = img.iter().map(|&v| v as f32).collect();
        assert_eq!(seeds_volume(&img32, None, [1, 1, 8], &o), vec![0, 0, 1, 0, 0, 0, 2, 0]);
    }

    #[test]
    fn huge_min_distance_is_cheap() {
        let img: Vec<f32> = (0..400).map(|i| ((i * 37) % 11) as f32).collect();
        let out = seeds_volume(&img, None, [1, 20, 20], &local(1_000_000));
        assert_eq!(out.iter().filter(|&&v| v != 0).count(), 1);
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
