//! `learn.dataset`: pairs images with label masks, turns labels into classes, splits training
//! from validation, and records how patches are sampled.
//!
//! The `Dataset` value keeps the images as they are and, per image, a two-channel u32 target:
//! channel 0 the class of every voxel, channel 1 the instance labels (for the border weights of
//! Ronneberger et al.). Everything else (classes, patch size, split, normalisation,
//! augmentation) is the RON [`DatasetSpec`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use petri_api::{
    Axis, Buffer, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentSpec, Geometry, draw_geometry, intensity};
use crate::loss::IGNORE;
use crate::model::Normalisation;

pub const FORMAT: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClassMode {
    /// Label ≠ 0 is foreground: classes background, foreground.
    Foreground,
    /// Label values are class numbers (0 = background).
    Semantic,
    /// Instance labels become background / cell / cell border (MIA's trick for touching cells).
    InstanceBorders,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetSpec {
    pub format: u32,
    pub mode: ClassMode,
    pub classes: usize,
    pub class_names: Vec<String>,
    /// Patch size (D, H, W); D = 1 for 2-D data.
    pub patch: [usize; 3],
    pub three_d: bool,
    /// Fraction of training patches centred on a foreground voxel.
    pub foreground_oversample: f64,
    /// Training patches per epoch.
    pub patches_per_epoch: usize,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub seed: u64,
    pub normalisation: Normalisation,
    pub augment: Option<AugmentSpec>,
}

impl DatasetSpec {
    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default()).unwrap_or_else(|e| format!("error: {e}"))
    }
    pub fn from_ron(s: &str) -> Result<DatasetSpec, String> {
        let d: DatasetSpec = ron::from_str(s).map_err(|e| format!("not a Petri dataset: {e}"))?;
        if d.format > FORMAT {
            return Err(format!("dataset format {} is newer than this Petri understands", d.format));
        }
        Ok(d)
    }
}

/// The dataset on an input port, with its parsed spec.
pub fn dataset_input(inputs: &Inputs, port: &str) -> Result<(Arc<petri_api::Dataset>, DatasetSpec), NodeError> {
    match inputs.get(port) {
        Some(Value::Dataset(d)) => {
            let spec = DatasetSpec::from_ron(&d.spec).map_err(|e| NodeError::input(port, e))?;
            if d.images.len() != d.targets.len() {
                return Err(NodeError::input(port, "images and targets differ in number"));
            }
            Ok((d.clone(), spec))
        }
        Some(v) => Err(NodeError::input(port, format!("expected a dataset, got {}", v.summary()))),
        None => Err(NodeError::input(port, "not connected")),
    }
}

/// One training image ready for sampling: normalised intensities and per-voxel targets.
pub struct Item {
    pub channels: usize,
    /// (D, H, W).
    pub dims: [usize; 3],
    /// Channel-major normalised image, `channels × D·H·W`.
    pub image: Vec<f32>,
    pub classes: Vec<u32>,
    pub instances: Vec<u32>,
    /// Linear indices of foreground voxels (for oversampling).
    pub foreground: Vec<u32>,
    /// Per-voxel loss weights (class × border), filled by the trainer when needed.
    pub weights: Option<Vec<f32>>,
}

/// Per-image, per-channel normalisation of a (C, D·H·W) block.
pub fn normalise(px: &[f32], c: usize, norm: &Normalisation) -> Vec<f32> {
    let vol = px.len() / c.max(1);
    let mut out = px.to_vec();
    for ch in 0..c {
        let s = &mut out[ch * vol..(ch + 1) * vol];
        let (off, scale) = match norm {
            Normalisation::None => (0.0, 1.0),
            Normalisation::Fixed { offset, scale } => {
                (offset.get(ch).copied().unwrap_or(0.0), scale.get(ch).copied().unwrap_or(1.0))
            }
            Normalisation::Percentile { low, high } => {
                let (lo, hi) = percentiles(s, *low, *high);
                (lo, if hi > lo { 1.0 / (hi - lo) } else { 1.0 })
            }
        };
        s.iter_mut().for_each(|v| *v = ((*v as f64 - off) * scale) as f32);
    }
    out
}

/// The `lo` and `hi` percentiles (linear interpolation, as numpy's default).
pub fn percentiles(v: &[f32], lo: f64, hi: f64) -> (f64, f64) {
    let mut s: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return (0.0, 1.0);
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        let pos = (p / 100.0).clamp(0.0, 1.0) * (s.len() - 1) as f64;
        let i = pos.floor() as usize;
        let f = pos - i as f64;
        let a = s[i] as f64;
        let b = s[(i + 1).min(s.len() - 1)] as f64;
        a + (b - a) * f
    };
    (q(lo), q(hi))
}

/// Builds the sampling items of a dataset value.
pub fn items(images: &[Stack], targets: &[Stack], spec: &DatasetSpec) -> Result<Vec<Item>, NodeError> {
    images
        .iter()
        .zip(targets)
        .enumerate()
        .map(|(i, (im, t))| {
            let c = im.c();
            let dims = [im.z(), im.y(), im.x()];
            let px = im.buffer().to_f32();
            let image = normalise(&px[..c * im.volume_len()], c, &spec.normalisation);
            let tp = t.pixels::<u32>().ok_or_else(|| NodeError::input("dataset", format!("target {i} is not u32")))?;
            let vol = im.volume_len();
            if tp.len() < 2 * vol || [t.z(), t.y(), t.x()] != dims {
                return Err(NodeError::input("dataset", format!("target {i} does not match its image")));
            }
            let classes = tp[..vol].to_vec();
            let instances = tp[vol..2 * vol].to_vec();
            let foreground =
                classes.iter().enumerate().filter(|(_, c)| **c != 0 && **c != IGNORE).map(|(i, _)| i as u32).collect();
            Ok(Item { channels: c, dims, image, classes, instances, foreground, weights: None })
        })
        .collect()
}

/// One sampled patch: image (`channels × vol`), classes, weights.
pub struct Patch {
    pub image: Vec<f32>,
    pub classes: Vec<u32>,
    pub weights: Vec<f32>,
}

/// Draws one training patch from `item` (random position, foreground oversampling, and the
/// spec's augmentation when `augment`).
pub fn sample_patch(item: &Item, spec: &DatasetSpec, rng: &mut ChaCha8Rng, augment: bool) -> Patch {
    let d = item.dims;
    let centre: [f64; 3] = if !item.foreground.is_empty() && rng.random::<f64>() < spec.foreground_oversample {
        let i = item.foreground[rng.random_range(0..item.foreground.len())] as usize;
        [(i / (d[1] * d[2])) as f64, ((i / d[2]) % d[1]) as f64, (i % d[2]) as f64]
    } else {
        // Uniform over positions where the patch fits (centre anywhere if it does not).
        let mut c = [0.0; 3];
        for a in 0..3 {
            let p = spec.patch[a];
            c[a] = if d[a] >= p {
                (rng.random_range(0..=d[a] - p) as f64) + (p as f64 - 1.0) / 2.0
            } else {
                (d[a] as f64 - 1.0) / 2.0
            };
        }
        c
    };
    let geo = match (&spec.augment, augment) {
        (Some(a), true) => Some((a, draw_geometry(a, rng, spec.patch, spec.three_d))),
        _ => None,
    };
    let mut p = extract(item, spec.patch, centre, geo.as_ref().map(|g| &g.1));
    if let Some((a, _)) = geo {
        intensity(a, rng, &mut p.image, item.channels, spec.patch);
    }
    p
}

/// The patch of size `patch` around `centre` under `geo` (None = identity, an exact copy).
/// Outside the image: intensity 0, class [`IGNORE`], weight 0.
pub fn extract(item: &Item, patch: [usize; 3], centre: [f64; 3], geo: Option<&Geometry>) -> Patch {
    let d = item.dims;
    let pv = patch[0] * patch[1] * patch[2];
    let iv = d[0] * d[1] * d[2];
    let c = item.channels;
    let mut image = vec![0f32; c * pv];
    let mut classes = vec![IGNORE; pv];
    let mut weights = vec![0f32; pv];
    let half = patch.map(|p| (p as f64 - 1.0) / 2.0);
    let mut o = 0;
    for z in 0..patch[0] {
        for y in 0..patch[1] {
            for x in 0..patch[2] {
                let off = [z as f64 - half[0], y as f64 - half[1], x as f64 - half[2]];
                let q = match geo {
                    Some(g) => g.apply(off, [z as f64, y as f64, x as f64]),
                    None => off,
                };
                let pos = [centre[0] + q[0], centre[1] + q[1], centre[2] + q[2]];
                // Nearest voxel for labels.
                let n: Vec<isize> = pos.iter().map(|v| v.round() as isize).collect();
                if (0..3).all(|a| n[a] >= 0 && n[a] < d[a] as isize) {
                    let li = (n[0] as usize * d[1] + n[1] as usize) * d[2] + n[2] as usize;
                    classes[o] = item.classes[li];
                    weights[o] = item.weights.as_ref().map_or(1.0, |w| w[li]);
                    if geo.is_none() {
                        for ch in 0..c {
                            image[ch * pv + o] = item.image[ch * iv + li];
                        }
                    }
                }
                if geo.is_some() {
                    // Trilinear for intensities, with clamped borders inside the image.
                    let inside = (0..3).all(|a| pos[a] > -0.5 && pos[a] < d[a] as f64 - 0.5);
                    if inside {
                        let p0: Vec<usize> = (0..3).map(|a| (pos[a].floor().max(0.0) as usize).min(d[a] - 1)).collect();
                        let fr: Vec<f64> = (0..3).map(|a| (pos[a] - p0[a] as f64).clamp(0.0, 1.0)).collect();
                        for ch in 0..c {
                            let im = &item.image[ch * iv..(ch + 1) * iv];
                            let mut acc = 0.0;
                            for dz in 0..2 {
                                let zz = (p0[0] + dz).min(d[0] - 1);
                                let wz = if dz == 1 { fr[0] } else { 1.0 - fr[0] };
                                if wz == 0.0 {
                                    continue;
                                }
                                for dy in 0..2 {
                                    let yy = (p0[1] + dy).min(d[1] - 1);
                                    let wy = if dy == 1 { fr[1] } else { 1.0 - fr[1] };
                                    for dx in 0..2 {
                                        let xx = (p0[2] + dx).min(d[2] - 1);
                                        let wx = if dx == 1 { fr[2] } else { 1.0 - fr[2] };
                                        acc += wz * wy * wx * im[(zz * d[1] + yy) * d[2] + xx] as f64;
                                    }
                                }
                            }
                            image[ch * pv + o] = acc as f32;
                        }
                    }
                }
                o += 1;
            }
        }
    }
    Patch { image, classes, weights }
}

/// Classes from labels. Instance borders: a labelled voxel with a face neighbour of another
/// value (another cell or background) within `border` voxels is class 2, other labelled voxels 1.
pub fn to_classes(labels: &[u32], dims: [usize; 3], mode: ClassMode, border: usize) -> Vec<u32> {
    match mode {
        ClassMode::Foreground => labels.iter().map(|&l| (l != 0) as u32).collect(),
        ClassMode::Semantic => labels.to_vec(),
        ClassMode::InstanceBorders => {
            let [d, h, w] = dims;
            let mut out: Vec<u32> = labels.iter().map(|&l| (l != 0) as u32).collect();
            let mut edge: Vec<bool> = vec![false; labels.len()];
            for z in 0..d {
                for y in 0..h {
                    for x in 0..w {
                        let i = (z * h + y) * w + x;
                        let l = labels[i];
                        if l == 0 {
                            continue;
                        }
                        let nb = |zz: isize, yy: isize, xx: isize| {
                            if zz < 0 || yy < 0 || xx < 0 || zz >= d as isize || yy >= h as isize || xx >= w as isize {
                                return false;
                            }
                            labels[(zz as usize * h + yy as usize) * w + xx as usize] != l
                        };
                        let (zi, yi, xi) = (z as isize, y as isize, x as isize);
                        if nb(zi, yi - 1, xi)
                            || nb(zi, yi + 1, xi)
                            || nb(zi, yi, xi - 1)
                            || nb(zi, yi, xi + 1)
                            || (d > 1 && (nb(zi - 1, yi, xi) || nb(zi + 1, yi, xi)))
                        {
                            edge[i] = true;
                        }
                    }
                }
            }
            // Thicken the border inwards to `border` voxels (city-block), staying in the cell.
            let mut front: Vec<usize> = (0..labels.len()).filter(|&i| edge[i]).collect();
            for _ in 1..border.max(1) {
                let mut next = Vec::new();
                for &i in &front {
                    let (z, y, x) = (i / (h * w), (i / w) % h, i % w);
                    let mut push = |zz: usize, yy: usize, xx: usize| {
                        let j = (zz * h + yy) * w + xx;
                        if !edge[j] && labels[j] == labels[i] {
                            edge[j] = true;
                            next.push(j);
                        }
                    };
                    if y > 0 {
                        push(z, y - 1, x)
                    }
                    if y + 1 < h {
                        push(z, y + 1, x)
                    }
                    if x > 0 {
                        push(z, y, x - 1)
                    }
                    if x + 1 < w {
                        push(z, y, x + 1)
                    }
                    if d > 1 && z > 0 {
                        push(z - 1, y, x)
                    }
                    if d > 1 && z + 1 < d {
                        push(z + 1, y, x)
                    }
                }
                front = next;
            }
            for (o, e) in out.iter_mut().zip(&edge) {
                if *e {
                    *o = 2;
                }
            }
            out
        }
    }
}

/// How images and labels are split into training and validation.
#[derive(Clone, Debug, PartialEq)]
pub enum Split {
    /// A seeded random fraction of the images goes to validation.
    Fraction(f64),
    /// These image numbers (0-based) are the validation set.
    Indices(Vec<usize>),
    /// Every image is cut into `n` blocks per spatial axis first (DeepMIB's chopping), then a
    /// fraction of the blocks goes to validation.
    Chop(usize, f64),
}

/// Settings of [`build_dataset`].
#[derive(Clone, Debug)]
pub struct DatasetOptions {
    pub mode: ClassMode,
    /// 0 = infer from the labels.
    pub classes: usize,
    pub border: usize,
    pub patch: [usize; 3],
    pub foreground_oversample: f64,
    pub patches_per_epoch: usize,
    pub split: Split,
    pub seed: u64,
    pub normalisation: Normalisation,
}

/// Pairs images and labels (one item per time point), converts labels to classes, splits.
pub fn build_dataset(images: &[Stack], labels: &[Stack], o: &DatasetOptions) -> Result<petri_api::Dataset, NodeError> {
    if images.is_empty() {
        return Err(NodeError::input("images", "no images"));
    }
    if images.len() != labels.len() {
        return Err(NodeError::input("labels", format!("{} images but {} label images", images.len(), labels.len())));
    }
    let mut ims = Vec::new();
    let mut tgs = Vec::new();
    let mut max_class = 0u32;
    for (k, (im, lb)) in images.iter().zip(labels).enumerate() {
        if [im.z(), im.y(), im.x()] != [lb.z(), lb.y(), lb.x()] || lb.t() != im.t() {
            return Err(NodeError::input(
                "labels",
                format!("label image {k} is {} but its image is {}", lb.describe(), im.describe()),
            ));
        }
        if lb.c() != 1 {
            return Err(NodeError::input("labels", format!("label image {k} has {} channels; expected 1", lb.c())));
        }
        let lp: Vec<u32> = lb.buffer().to_f64_vec().iter().map(|&v| v.max(0.0) as u32).collect();
        let ip = im.buffer().to_f32();
        let vol = im.volume_len();
        let c = im.c();
        let dims = [im.z(), im.y(), im.x()];
        for t in 0..im.t() {
            let l = &lp[t * vol..(t + 1) * vol];
            let classes = to_classes(l, dims, o.mode, o.border);
            max_class = max_class.max(classes.iter().copied().max().unwrap_or(0));
            let mut tv = classes;
            tv.extend_from_slice(l);
            let image = ip[t * c * vol..(t + 1) * c * vol].to_vec();
            let axes: Vec<Axis> = if dims[0] > 1 { vec![Axis::C, Axis::Z] } else { vec![Axis::C] };
            ims.push(
                Stack::new([1, c, dims[0], dims[1], dims[2]], &axes, Buffer::F32(Arc::new(image)))
                    .map_err(|e| NodeError::failed(e.to_string()))?
                    .with_voxel_size(im.voxel_size().clone()),
            );
            tgs.push(
                Stack::new([1, 2, dims[0], dims[1], dims[2]], &axes, Buffer::U32(Arc::new(tv)))
                    .map_err(|e| NodeError::failed(e.to_string()))?,
            );
        }
    }
    let channels = ims[0].c();
    if ims.iter().any(|s| s.c() != channels) {
        return Err(NodeError::input("images", "all images must have the same number of channels"));
    }
    let three_d = ims.iter().any(|s| s.z() > 1);
    let classes = match o.mode {
        ClassMode::Foreground => 2,
        ClassMode::InstanceBorders => 3,
        ClassMode::Semantic if o.classes > 0 => {
            if max_class as usize >= o.classes {
                return Err(NodeError::param(
                    "classes",
                    format!("labels contain class {max_class} but only {} classes were declared", o.classes),
                ));
            }
            o.classes
        }
        ClassMode::Semantic => (max_class as usize + 1).max(2),
    };
    let mut patch = o.patch;
    if !three_d {
        patch[0] = 1;
    }
    // Split.
    let (ims, tgs, train, val) = split(ims, tgs, &o.split, o.seed, three_d)?;
    let spec = DatasetSpec {
        format: FORMAT,
        mode: o.mode,
        classes,
        class_names: crate::model::default_class_names(classes),
        patch,
        three_d,
        foreground_oversample: o.foreground_oversample,
        patches_per_epoch: o.patches_per_epoch,
        train,
        val,
        seed: o.seed,
        normalisation: o.normalisation.clone(),
        augment: None,
    };
    Ok(petri_api::Dataset { spec: spec.to_ron(), images: ims, targets: tgs })
}

/// A block of a stack (all channels), as a new stack.
fn crop(s: &Stack, z: (usize, usize), y: (usize, usize), x: (usize, usize)) -> Result<Stack, NodeError> {
    let [_, c, d, h, w] = s.dims();
    let _ = d;
    let (dz, dy, dx) = (z.1 - z.0, y.1 - y.0, x.1 - x.0);
    let axes: Vec<Axis> = if dz > 1 { vec![Axis::C, Axis::Z] } else { vec![Axis::C] };
    let pick = |v: &[f32]| {
        let mut out = Vec::with_capacity(c * dz * dy * dx);
        for ch in 0..c {
            for zz in z.0..z.1 {
                for yy in y.0..y.1 {
                    let o = ((ch * s.z() + zz) * h + yy) * w;
                    out.extend_from_slice(&v[o + x.0..o + x.1]);
                }
            }
        }
        out
    };
    let buf = match s.buffer() {
        Buffer::U32(v) => {
            let f: Vec<f32> = Vec::new();
            let _ = f;
            let mut out = Vec::with_capacity(c * dz * dy * dx);
            for ch in 0..c {
                for zz in z.0..z.1 {
                    for yy in y.0..y.1 {
                        let o = ((ch * s.z() + zz) * h + yy) * w;
                        out.extend_from_slice(&v[o + x.0..o + x.1]);
                    }
                }
            }
            Buffer::U32(Arc::new(out))
        }
        b => Buffer::F32(Arc::new(pick(&b.to_f32()))),
    };
    Ok(Stack::new([1, c, dz, dy, dx], &axes, buf)
        .map_err(|e| NodeError::failed(e.to_string()))?
        .with_voxel_size(s.voxel_size().clone()))
}

type SplitResult = (Vec<Stack>, Vec<Stack>, Vec<usize>, Vec<usize>);

fn split(ims: Vec<Stack>, tgs: Vec<Stack>, s: &Split, seed: u64, three_d: bool) -> Result<SplitResult, NodeError> {
    let frac_split = |n: usize, f: f64| -> (Vec<usize>, Vec<usize>) {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let nv = if f <= 0.0 { 0 } else { ((n as f64 * f).round() as usize).clamp(1, n.saturating_sub(1)) };
        let mut val: Vec<usize> = idx[..nv].to_vec();
        let mut train: Vec<usize> = idx[nv..].to_vec();
        val.sort();
        train.sort();
        (train, val)
    };
    match s {
        Split::Indices(v) => {
            for &i in v {
                if i >= ims.len() {
                    return Err(NodeError::param(
                        "validation_indices",
                        format!("image {i} does not exist (there are {} images, numbered from 0)", ims.len()),
                    ));
                }
            }
            let train: Vec<usize> = (0..ims.len()).filter(|i| !v.contains(i)).collect();
            if train.is_empty() {
                return Err(NodeError::param("validation_indices", "no image left for training"));
            }
            let mut val = v.clone();
            val.sort();
            val.dedup();
            Ok((ims, tgs, train, val))
        }
        Split::Fraction(f) if ims.len() >= 2 || *f <= 0.0 => {
            let (train, val) = frac_split(ims.len(), *f);
            Ok((ims, tgs, train, val))
        }
        Split::Fraction(f) => split(ims, tgs, &Split::Chop(2, *f), seed, three_d),
        Split::Chop(n, f) => {
            let n = (*n).max(1);
            let mut ci = Vec::new();
            let mut ct = Vec::new();
            for (im, tg) in ims.iter().zip(&tgs) {
                let nz = if three_d && im.z() >= n { n } else { 1 };
                let (ny, nx) = (n.min(im.y()), n.min(im.x()));
                let cut = |len: usize, k: usize, i: usize| (i * len / k, (i + 1) * len / k);
                for bz in 0..nz {
                    for by in 0..ny {
                        for bx in 0..nx {
                            let (z, y, x) = (cut(im.z(), nz, bz), cut(im.y(), ny, by), cut(im.x(), nx, bx));
                            ci.push(crop(im, z, y, x)?);
                            ct.push(crop(tg, z, y, x)?);
                        }
                    }
                }
            }
            let (train, val) = frac_split(ci.len(), *f);
            Ok((ci, ct, train, val))
        }
    }
}

/// Reads every TIFF in a folder, sorted by name (a minimal reader for the folder mode: the
/// images are matched with their labels by file name).
fn read_folder(dir: &Path, param: &str) -> Result<Vec<(String, Stack)>, NodeError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| NodeError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(NodeError::param(param, format!("no .tif files in {}", dir.display())));
    }
    files
        .iter()
        .map(|f| {
            let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            Ok((name, read_tiff(f)?))
        })
        .collect()
}

/// A grayscale TIFF (one or more pages → Z) as an f32 or u32 stack.
pub fn read_tiff(path: &Path) -> Result<Stack, NodeError> {
    use tiff::decoder::{Decoder, DecodingResult};
    let f = std::fs::File::open(path).map_err(|e| NodeError::io(path, e))?;
    let mut dec = Decoder::new(std::io::BufReader::new(f)).map_err(|e| NodeError::io(path, e))?;
    let (w, h) = dec.dimensions().map_err(|e| NodeError::io(path, e))?;
    let mut data: Vec<f64> = Vec::new();
    let mut pages = 0;
    loop {
        let page: Vec<f64> = match dec.read_image().map_err(|e| NodeError::io(path, e))? {
            DecodingResult::U8(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U16(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::I32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::F32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::F64(v) => v,
            _ => return Err(NodeError::io(path, "unsupported TIFF sample type")),
        };
        if page.len() != (w * h) as usize {
            return Err(NodeError::io(path, "only single-channel TIFFs are supported in folder mode"));
        }
        data.extend(page);
        pages += 1;
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| NodeError::io(path, e))?;
    }
    let axes: Vec<Axis> = if pages > 1 { vec![Axis::Z] } else { vec![] };
    Stack::new(
        [1, 1, pages, h as usize, w as usize],
        &axes,
        Buffer::F32(Arc::new(data.iter().map(|&v| v as f32).collect())),
    )
    .map_err(|e| NodeError::io(path, e))
}

pub struct DatasetNode;

impl Node for DatasetNode {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "learn.dataset",
            1,
            "learn",
            "Pairs images with their label masks for training a network, and sets aside some of them for validation.",
        )
        .optional_input("images", PortType::Image, "Training images (each time point is one training image).")
        .optional_input("labels", PortType::Labels, "Label masks drawn on those images, same size.")
        .output("dataset", PortType::Dataset, "Training data for learn.augment / learn.train.")
        .param(
            ParamSpec::input_path("image_folder", "", &[], "Instead of the inputs: a folder of TIFF images.")
                .folder_ok()
                .default_null(),
        )
        .param(
            ParamSpec::input_path("label_folder", "", &[], "Folder of label TIFFs with the same file names as the images.")
                .folder_ok()
                .default_null(),
        )
        .param(ParamSpec::choice(
            "classes_from",
            &["foreground", "semantic", "instance_borders"],
            "foreground",
            "How labels become classes: foreground (any label vs background), semantic (label value = class), or instance_borders (background / cell / cell border, which separates touching cells).",
        ))
        .param(ParamSpec::int("classes", 0, "Number of classes for semantic labels (0 = highest label + 1).").range(0.0, 255.0))
        .param(ParamSpec::int("border_width", 2, "Width in pixels of the cell-border class.").range(1.0, 20.0))
        .param(
            ParamSpec::floats("patch_size", 256.0, 3, "Size of training patches in pixels (one number, or Z, Y, X).")
                .range(4.0, 4096.0),
        )
        .param(
            ParamSpec::float("foreground_oversample", 0.5, "Fraction of patches centred on labelled pixels (helps with sparse objects).")
                .range(0.0, 1.0),
        )
        .param(ParamSpec::int("patches_per_epoch", 64, "Training patches drawn per epoch.").range(1.0, 1e7))
        .param(ParamSpec::choice(
            "split",
            &["fraction", "indices", "chop"],
            "fraction",
            "How validation data is chosen: a random fraction of the images, a list of image numbers, or cutting each image into blocks first (for a single large image or volume).",
        ))
        .param(ParamSpec::float("validation_fraction", 0.15, "Fraction held out for validation (DeepMIB uses 10–20 %).").range(0.0, 0.9))
        .param(ParamSpec::string("validation_indices", "", "Image numbers for validation, from 0, separated by commas (split = indices)."))
        .param(ParamSpec::int("chop", 2, "Blocks per axis when split = chop.").range(1.0, 64.0))
        .param(ParamSpec::int("seed", 0, "Random seed for the split and for patch sampling.").min(0.0))
        .param(ParamSpec::choice(
            "normalisation",
            &["percentile", "none"],
            "percentile",
            "Intensity normalisation, stored with the model and reapplied when predicting: percentile maps the low/high percentiles of every image to 0/1.",
        ))
        .param(ParamSpec::float("percentile_low", 1.0, "Low percentile for normalisation.").range(0.0, 100.0))
        .param(ParamSpec::float("percentile_high", 99.8, "High percentile for normalisation.").range(0.0, 100.0))
    }

    fn fingerprint(&self, p: &Params) -> Result<Option<petri_api::Fingerprint>, NodeError> {
        if p.is_null("image_folder") {
            return Ok(None);
        }
        let mut h = blake3::Hasher::new();
        for key in ["image_folder", "label_folder"] {
            if p.is_null(key) {
                continue;
            }
            let dir = p.path(key)?;
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| NodeError::io(&dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
            for f in files {
                if let Ok((hash, _)) = petri_api::hash_file(&f) {
                    h.update(f.to_string_lossy().as_bytes());
                    h.update(hash.as_bytes());
                }
            }
        }
        Ok(Some(*h.finalize().as_bytes()))
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (images, labels): (Vec<Stack>, Vec<Stack>) = if !p.is_null("image_folder") {
            if p.is_null("label_folder") {
                return Err(NodeError::param("label_folder", "an image folder needs a label folder"));
            }
            let ims = read_folder(&p.path("image_folder")?, "image_folder")?;
            let lbs = read_folder(&p.path("label_folder")?, "label_folder")?;
            let mut pi = Vec::new();
            let mut pl = Vec::new();
            for (name, im) in ims {
                let Some((_, lb)) = lbs.iter().find(|(n, _)| *n == name) else {
                    return Err(NodeError::param("label_folder", format!("no label file named {name}")));
                };
                pi.push(im);
                pl.push(lb.clone());
            }
            (pi, pl)
        } else {
            (vec![inputs.image("images")?.clone()], vec![inputs.labels("labels")?.clone()])
        };
        let mode = match p.str("classes_from")? {
            "semantic" => ClassMode::Semantic,
            "instance_borders" => ClassMode::InstanceBorders,
            _ => ClassMode::Foreground,
        };
        let ps: Vec<usize> = p.floats("patch_size")?.iter().map(|&v| v.round().max(1.0) as usize).collect();
        let patch = match ps.len() {
            1 => [ps[0]; 3],
            2 => [1, ps[0], ps[1]],
            _ => [ps[0], ps[1], ps[2]],
        };
        let f = p.f64("validation_fraction")?;
        let split = match p.str("split")? {
            "indices" => {
                let s = p.str("validation_indices")?;
                let v: Result<Vec<usize>, _> =
                    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::parse::<usize>).collect();
                Split::Indices(
                    v.map_err(|_| NodeError::param("validation_indices", format!("not a list of numbers: {s:?}")))?,
                )
            }
            "chop" => Split::Chop(p.usize("chop")?, f),
            _ => Split::Fraction(f),
        };
        let normalisation = match p.str("normalisation")? {
            "none" => Normalisation::None,
            _ => {
                let (low, high) = (p.f64("percentile_low")?, p.f64("percentile_high")?);
                if low >= high {
                    return Err(NodeError::param("percentile_high", "must be above percentile_low"));
                }
                Normalisation::Percentile { low, high }
            }
        };
        let o = DatasetOptions {
            mode,
            classes: p.usize("classes")?,
            border: p.usize("border_width")?,
            patch,
            foreground_oversample: p.f64("foreground_oversample")?,
            patches_per_epoch: p.usize("patches_per_epoch")?,
            split,
            seed: p.i64("seed")? as u64,
            normalisation,
        };
        let ds = build_dataset(&images, &labels, &o)?;
        Ok(Outputs::new().with("dataset", Value::Dataset(Arc::new(ds))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_borders_separate_touching_cells() {
        // Two touching 3×2 cells in a 4×6 image.
        #[rustfmt::skip]
        let l = vec![
            0, 0, 0, 0, 0, 0,
            0, 1, 1, 2, 2, 0,
            0, 1, 1, 2, 2, 0,
            0, 1, 1, 2, 2, 0,
        ];
        let c = to_classes(&l, [1, 4, 6], ClassMode::InstanceBorders, 1);
        // Every cell voxel here touches background or the other cell except none: all border.
        assert!(c.iter().zip(&l).all(|(c, l)| (*l == 0) == (*c == 0)));
        assert_eq!(c[6 + 2], 2); // touches cell 2
        let big: Vec<u32> =
            (0..49).map(|i| if (1..6).contains(&(i / 7)) && (1..6).contains(&(i % 7)) { 5 } else { 0 }).collect();
        let c = to_classes(&big, [1, 7, 7], ClassMode::InstanceBorders, 1);
        assert_eq!(c[3 * 7 + 3], 1);
        assert_eq!(c[7 + 1], 2);
        let c2 = to_classes(&big, [1, 7, 7], ClassMode::InstanceBorders, 2);
        assert_eq!(c2[2 * 7 + 2], 2);
        assert_eq!(c2[3 * 7 + 3], 1);
    }

    #[test]
    fn splits_are_seeded_and_complete() {
        let im = Stack::from_2d(8, 8, vec![1f32; 64]).unwrap();
        let lb = Stack::from_2d(8, 8, (0..64).map(|i| (i % 3 == 0) as u32).collect::<Vec<_>>()).unwrap();
        let o = DatasetOptions {
            mode: ClassMode::Foreground,
            classes: 0,
            border: 1,
            patch: [1, 4, 4],
            foreground_oversample: 0.5,
            patches_per_epoch: 4,
            split: Split::Chop(2, 0.25),
            seed: 3,
            normalisation: Normalisation::None,
        };
        let ds = build_dataset(&[im.clone()], &[lb.clone()], &o).unwrap();
        let s = DatasetSpec::from_ron(&ds.spec).unwrap();
        assert_eq!(ds.images.len(), 4);
        assert_eq!(s.val.len(), 1);
        assert_eq!(s.train.len(), 3);
        assert_eq!(ds.images[0].y(), 4);
        let ds2 = build_dataset(&[im], &[lb], &o).unwrap();
        assert_eq!(ds.spec, ds2.spec);
    }

    #[test]
    fn identity_patch_is_an_exact_copy_and_pads_with_ignore() {
        let item = Item {
            channels: 1,
            dims: [1, 4, 4],
            image: (0..16).map(|v| v as f32).collect(),
            classes: (0..16).map(|v| v % 2).collect(),
            instances: vec![0; 16],
            foreground: vec![],
            weights: None,
        };
        let p = extract(&item, [1, 2, 2], [0.0, 1.5, 1.5], None);
        assert_eq!(p.image, vec![5.0, 6.0, 9.0, 10.0]);
        let p = extract(&item, [1, 2, 2], [0.0, -0.5, -0.5], None);
        assert_eq!(p.classes, vec![IGNORE, IGNORE, IGNORE, 0]);
        assert_eq!(p.image[3], 0.0);
    }
}
