//! `learn.augment`: random, seeded augmentation applied on the fly while training.
//!
//! The settings are stored in the dataset's spec; `learn.train` draws a new transform for every
//! patch. Geometry (flips, rot90, rotation, scaling, shear, elastic deformation) is one mapping
//! from patch coordinates to image coordinates, applied identically to the image (linear
//! interpolation) and the labels (nearest neighbour); intensity transforms (blur, noise,
//! brightness, contrast, gamma, dropout) touch the image only. 3-D rotations and shears turn
//! the Y–X plane (microscopy volumes are rarely isotropic); flips apply to every axis.

use petri_api::{Axis, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetSpec, Item, Patch, dataset_input, sample_patch};

/// Each transform with its own probability (0 = off) and range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentSpec {
    pub flip: f64,
    pub rot90: f64,
    pub rotate: f64,
    /// Maximum rotation angle in degrees (uniform in ±).
    pub rotate_degrees: f64,
    pub scale: f64,
    /// Scale factor range (uniform in [1 − s, 1 + s]).
    pub scale_range: f64,
    pub shear: f64,
    pub shear_range: f64,
    pub elastic: f64,
    /// Elastic displacement magnitude (pixels) and smoothness (grid spacing in pixels).
    pub elastic_alpha: f64,
    pub elastic_spacing: f64,
    pub blur: f64,
    pub blur_sigma: f64,
    pub noise: f64,
    /// Noise standard deviation, in normalised intensity units.
    pub noise_std: f64,
    pub brightness: f64,
    pub brightness_range: f64,
    pub contrast: f64,
    pub contrast_range: f64,
    pub gamma: f64,
    pub gamma_range: f64,
    pub dropout: f64,
    /// Fraction of pixels set to 0 by dropout.
    pub dropout_fraction: f64,
}

impl AugmentSpec {
    pub fn none() -> AugmentSpec {
        AugmentSpec {
            flip: 0.0,
            rot90: 0.0,
            rotate: 0.0,
            rotate_degrees: 0.0,
            scale: 0.0,
            scale_range: 0.0,
            shear: 0.0,
            shear_range: 0.0,
            elastic: 0.0,
            elastic_alpha: 0.0,
            elastic_spacing: 16.0,
            blur: 0.0,
            blur_sigma: 1.0,
            noise: 0.0,
            noise_std: 0.0,
            brightness: 0.0,
            brightness_range: 0.0,
            contrast: 0.0,
            contrast_range: 0.0,
            gamma: 0.0,
            gamma_range: 0.0,
            dropout: 0.0,
            dropout_fraction: 0.0,
        }
    }
}

/// A geometric transform drawn for one patch: patch offset (from the patch centre, in voxels,
/// D/H/W) ↦ image offset.
#[derive(Clone, Debug)]
pub struct Geometry {
    /// Row-major 3×3 matrix acting on (z, y, x).
    pub m: [[f64; 3]; 3],
    /// Elastic displacement on a coarse grid (gd, gh, gw, 3), interpolated linearly.
    pub elastic: Option<(usize, usize, usize, Vec<f64>, f64)>,
}

impl Geometry {
    pub fn identity() -> Geometry {
        Geometry { m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], elastic: None }
    }

    /// Image offset for patch offset `p`; `pz` etc. the patch position for the elastic field.
    pub fn apply(&self, p: [f64; 3], grid_pos: [f64; 3]) -> [f64; 3] {
        let mut q = [0.0; 3];
        for (r, qr) in q.iter_mut().enumerate() {
            *qr = self.m[r][0] * p[0] + self.m[r][1] * p[1] + self.m[r][2] * p[2];
        }
        if let Some((gd, gh, gw, field, spacing)) = &self.elastic {
            let g = [grid_pos[0] / spacing, grid_pos[1] / spacing, grid_pos[2] / spacing];
            let dims = [*gd, *gh, *gw];
            let i0: Vec<usize> = (0..3).map(|a| (g[a].floor().max(0.0) as usize).min(dims[a] - 1)).collect();
            let fr: Vec<f64> = (0..3).map(|a| (g[a] - i0[a] as f64).clamp(0.0, 1.0)).collect();
            for dz in 0..2 {
                for dy in 0..2 {
                    for dx in 0..2 {
                        let iz = (i0[0] + dz).min(gd - 1);
                        let iy = (i0[1] + dy).min(gh - 1);
                        let ix = (i0[2] + dx).min(gw - 1);
                        let w = (if dz == 1 { fr[0] } else { 1.0 - fr[0] })
                            * (if dy == 1 { fr[1] } else { 1.0 - fr[1] })
                            * (if dx == 1 { fr[2] } else { 1.0 - fr[2] });
                        let o = ((iz * gh + iy) * gw + ix) * 3;
                        for a in 0..3 {
                            q[a] += w * field[o + a];
                        }
                    }
                }
            }
        }
        q
    }
}

fn matmul(a: [[f64; 3]; 3], b: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

/// Draws the geometry for one patch of size `patch` (D, H, W); `three_d` enables Z flips.
pub fn draw_geometry(a: &AugmentSpec, rng: &mut ChaCha8Rng, patch: [usize; 3], three_d: bool) -> Geometry {
    let mut m = Geometry::identity().m;
    let hit = |p: f64, rng: &mut ChaCha8Rng| p > 0.0 && rng.random::<f64>() < p;
    if hit(a.flip, rng) {
        for (ax, row) in m.iter_mut().enumerate() {
            if (ax > 0 || three_d) && rng.random::<bool>() {
                row[ax] = -row[ax];
            }
        }
    }
    if hit(a.rot90, rng) && patch[1] == patch[2] {
        let k = rng.random_range(0..4);
        for _ in 0..k {
            m = matmul(m, [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]);
        }
    }
    if hit(a.rotate, rng) {
        let t = (rng.random::<f64>() * 2.0 - 1.0) * a.rotate_degrees.to_radians();
        m = matmul(m, [[1.0, 0.0, 0.0], [0.0, t.cos(), -t.sin()], [0.0, t.sin(), t.cos()]]);
    }
    if hit(a.scale, rng) {
        // Output pixel steps of 1/s in the image: s > 1 zooms in.
        let s = 1.0 + (rng.random::<f64>() * 2.0 - 1.0) * a.scale_range;
        let s = 1.0 / s.max(0.05);
        m = matmul(m, [[if three_d { s } else { 1.0 }, 0.0, 0.0], [0.0, s, 0.0], [0.0, 0.0, s]]);
    }
    if hit(a.shear, rng) {
        let sh = (rng.random::<f64>() * 2.0 - 1.0) * a.shear_range;
        m = matmul(m, [[1.0, 0.0, 0.0], [0.0, 1.0, sh], [0.0, 0.0, 1.0]]);
    }
    let elastic = if hit(a.elastic, rng) && a.elastic_alpha > 0.0 {
        let sp = a.elastic_spacing.max(2.0);
        let g = |n: usize| (n as f64 / sp).ceil() as usize + 2;
        let (gd, gh, gw) = (if three_d { g(patch[0]) } else { 1 }, g(patch[1]), g(patch[2]));
        let normal = Normal::new(0.0, a.elastic_alpha).expect("finite std");
        let field: Vec<f64> =
            (0..gd * gh * gw * 3).map(|i| if i % 3 == 0 && !three_d { 0.0 } else { normal.sample(rng) }).collect();
        Some((gd, gh, gw, field, sp))
    } else {
        None
    };
    Geometry { m, elastic }
}

/// Intensity transforms of one (normalised) patch, channel-major `c × vol`, in place.
pub fn intensity(a: &AugmentSpec, rng: &mut ChaCha8Rng, img: &mut [f32], c: usize, dims: [usize; 3]) {
    let vol = dims[0] * dims[1] * dims[2];
    let hit = |p: f64, rng: &mut ChaCha8Rng| p > 0.0 && rng.random::<f64>() < p;
    if hit(a.blur, rng) && a.blur_sigma > 0.0 {
        let s = rng.random::<f64>() * a.blur_sigma;
        for ch in 0..c {
            gaussian_yx(&mut img[ch * vol..(ch + 1) * vol], dims, s);
        }
    }
    if hit(a.contrast, rng) {
        let f = 1.0 + (rng.random::<f64>() * 2.0 - 1.0) * a.contrast_range;
        for ch in 0..c {
            let s = &mut img[ch * vol..(ch + 1) * vol];
            let mean = s.iter().map(|&v| v as f64).sum::<f64>() / vol as f64;
            s.iter_mut().for_each(|v| *v = ((*v as f64 - mean) * f + mean) as f32);
        }
    }
    if hit(a.brightness, rng) {
        let b = ((rng.random::<f64>() * 2.0 - 1.0) * a.brightness_range) as f32;
        img.iter_mut().for_each(|v| *v += b);
    }
    if hit(a.gamma, rng) {
        let g = (1.0 + (rng.random::<f64>() * 2.0 - 1.0) * a.gamma_range).max(0.05) as f32;
        img.iter_mut().for_each(|v| *v = v.max(0.0).powf(g));
    }
    if hit(a.noise, rng) && a.noise_std > 0.0 {
        let normal = Normal::new(0.0, rng.random::<f64>() * a.noise_std).expect("finite std");
        img.iter_mut().for_each(|v| *v += normal.sample(rng) as f32);
    }
    if hit(a.dropout, rng) {
        let f = a.dropout_fraction;
        img.iter_mut().for_each(|v| {
            if rng.random::<f64>() < f {
                *v = 0.0
            }
        });
    }
}

/// Separable Gaussian blur of a D×H×W block along Y and X (reflect borders).
fn gaussian_yx(v: &mut [f32], dims: [usize; 3], sigma: f64) {
    if sigma < 0.3 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f64> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let ks: f64 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|x| (x / ks) as f32).collect();
    let [d, h, w] = dims;
    let refl = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let mut i = i;
        while i < 0 || i >= n {
            i = if i < 0 { -i - 1 } else { 2 * n - i - 1 };
        }
        i as usize
    };
    let mut tmp = vec![0f32; h.max(w)];
    for z in 0..d {
        let pl = &mut v[z * h * w..(z + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                tmp[x] =
                    k.iter().enumerate().map(|(j, kv)| kv * pl[y * w + refl(x as isize + j as isize - r, w)]).sum();
            }
            pl[y * w..(y + 1) * w].copy_from_slice(&tmp[..w]);
        }
        for x in 0..w {
            for y in 0..h {
                tmp[y] =
                    k.iter().enumerate().map(|(j, kv)| kv * pl[refl(y as isize + j as isize - r, h) * w + x]).sum();
            }
            for y in 0..h {
                pl[y * w + x] = tmp[y];
            }
        }
    }
}

pub struct Augment;

fn prob(name: &str, default: f64, doc: &str) -> ParamSpec {
    ParamSpec::float(name, default, doc).range(0.0, 1.0)
}

impl Node for Augment {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "learn.augment",
            1,
            "learn",
            "Random changes applied to every training patch (never to validation), so a network trained on few images generalises.",
        )
        .input("dataset", PortType::Dataset, "Training data from learn.dataset.")
        .output("dataset", PortType::Dataset, "The same data with these augmentation settings attached.")
        .output("preview", PortType::Image, "A few augmented patches (T = sample; channels = image channels, then the labels).")
        .param(prob("flip", 0.5, "Chance of mirroring a patch (each axis at random)."))
        .param(prob("rot90", 0.5, "Chance of turning a patch by a multiple of 90° in the Y–X plane."))
        .param(prob("rotate", 0.0, "Chance of turning a patch by a random angle."))
        .param(ParamSpec::float("rotate_degrees", 180.0, "Largest angle for random rotation, in degrees.").range(0.0, 180.0))
        .param(prob("scale", 0.0, "Chance of zooming a patch in or out."))
        .param(ParamSpec::float("scale_range", 0.2, "Zoom range: 0.2 means 80 % to 120 %.").range(0.0, 0.9))
        .param(prob("shear", 0.0, "Chance of shearing a patch."))
        .param(ParamSpec::float("shear_range", 0.2, "Largest shear (pixels of shift per pixel).").range(0.0, 1.0))
        .param(prob("elastic", 0.0, "Chance of a smooth random (elastic) deformation."))
        .param(ParamSpec::float("elastic_alpha", 4.0, "Typical displacement of the elastic deformation, in pixels.").min(0.0))
        .param(
            ParamSpec::float("elastic_spacing", 16.0, "Distance in pixels over which the elastic deformation changes.")
                .range(2.0, 1000.0),
        )
        .param(prob("blur", 0.0, "Chance of blurring a patch."))
        .param(ParamSpec::float("blur_sigma", 1.0, "Largest blur radius (Gaussian sigma, pixels).").min(0.0))
        .param(prob("noise", 0.0, "Chance of adding Gaussian noise."))
        .param(ParamSpec::float("noise_std", 0.05, "Largest noise level (fraction of the normalised intensity range).").min(0.0))
        .param(prob("brightness", 0.0, "Chance of shifting intensities."))
        .param(ParamSpec::float("brightness_range", 0.1, "Largest intensity shift (normalised units).").min(0.0))
        .param(prob("contrast", 0.0, "Chance of stretching or compressing contrast."))
        .param(ParamSpec::float("contrast_range", 0.2, "Contrast change range: 0.2 means 80 % to 120 %.").range(0.0, 0.9))
        .param(prob("gamma", 0.0, "Chance of a gamma change."))
        .param(ParamSpec::float("gamma_range", 0.2, "Gamma range: 0.2 means 0.8 to 1.2.").range(0.0, 0.9))
        .param(prob("dropout", 0.0, "Chance of setting random pixels to zero."))
        .param(ParamSpec::float("dropout_fraction", 0.05, "Fraction of pixels dropout sets to zero.").range(0.0, 1.0))
        .param(ParamSpec::int("preview_samples", 8, "Number of augmented patches in the preview output.").range(1.0, 256.0))
    }

    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (ds, mut spec) = dataset_input(inputs, "dataset")?;
        let a = AugmentSpec {
            flip: p.f64("flip")?,
            rot90: p.f64("rot90")?,
            rotate: p.f64("rotate")?,
            rotate_degrees: p.f64("rotate_degrees")?,
            scale: p.f64("scale")?,
            scale_range: p.f64("scale_range")?,
            shear: p.f64("shear")?,
            shear_range: p.f64("shear_range")?,
            elastic: p.f64("elastic")?,
            elastic_alpha: p.f64("elastic_alpha")?,
            elastic_spacing: p.f64("elastic_spacing")?,
            blur: p.f64("blur")?,
            blur_sigma: p.f64("blur_sigma")?,
            noise: p.f64("noise")?,
            noise_std: p.f64("noise_std")?,
            brightness: p.f64("brightness")?,
            brightness_range: p.f64("brightness_range")?,
            contrast: p.f64("contrast")?,
            contrast_range: p.f64("contrast_range")?,
            gamma: p.f64("gamma")?,
            gamma_range: p.f64("gamma_range")?,
            dropout: p.f64("dropout")?,
            dropout_fraction: p.f64("dropout_fraction")?,
        };
        spec.augment = Some(a);
        let n = p.usize("preview_samples")?;
        let preview = preview(&ds.images, &ds.targets, &spec, n)?;
        let out = petri_api::Dataset { spec: spec.to_ron(), images: ds.images.clone(), targets: ds.targets.clone() };
        Ok(Outputs::new()
            .with("dataset", Value::Dataset(std::sync::Arc::new(out)))
            .with("preview", Value::Image(preview)))
    }
}

/// `n` augmented training patches as an f32 stack: T = sample, C = image channels + labels.
pub fn preview(images: &[Stack], targets: &[Stack], spec: &DatasetSpec, n: usize) -> Result<Stack, NodeError> {
    let items = crate::dataset::items(images, targets, spec)?;
    let train: Vec<&Item> = spec.train.iter().filter_map(|&i| items.get(i)).collect();
    if train.is_empty() {
        return Err(NodeError::input("dataset", "no training images"));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x9e37_79b9);
    let patch = spec.patch;
    let c = train[0].channels;
    let vol = patch[0] * patch[1] * patch[2];
    let mut data = Vec::with_capacity(n * (c + 1) * vol);
    for _ in 0..n {
        let item = train[rng.random_range(0..train.len())];
        let Patch { image, classes, .. } = sample_patch(item, spec, &mut rng, true);
        data.extend_from_slice(&image);
        data.extend(classes.iter().map(|&t| if t == crate::loss::IGNORE { -1.0 } else { t as f32 }));
    }
    let axes = if patch[0] > 1 { vec![Axis::T, Axis::C, Axis::Z] } else { vec![Axis::T, Axis::C] };
    Stack::new([n, c + 1, patch[0], patch[1], patch[2]], &axes, petri_api::Buffer::F32(std::sync::Arc::new(data)))
        .map_err(|e| NodeError::failed(e.to_string()))
}
