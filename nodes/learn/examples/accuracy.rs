//! Full-size accuracy runs recorded in docs/learn.md (release build, 2 threads):
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p petri-learn --example accuracy -- dsb2018
//! RAYON_NUM_THREADS=2 cargo run --release -p petri-learn --example accuracy -- nuclei3d
//! RAYON_NUM_THREADS=2 cargo run --release -p petri-learn --example accuracy -- cells3d ../shared/data/nuclei3d_cells3d
//! ```
//! dsb2018: train a 2-D U-Net (instance borders: background / nucleus / border) on the left
//! half of assets/samples/nuclei2d.tif, predict the right half: foreground IoU, and object F1 at
//! IoU 0.5 after growing nucleus seeds into the border class. nuclei3d: a 3-D U-Net on the
//! synthetic nuclei; the last third of X is the held-out test block; the first two thirds are
//! split into training rows and a validation block that chooses the post-processing
//! (TTA 8/16, smoothing, probability threshold), then the network is retrained on the whole
//! training part and the held-out block predicted once (see [`nuclei3d`]). nuclei3d-v1: the
//! previous protocol (no validation block, argmax). cells3d: the anisotropic 3-D U-Net on the
//! Allen cells3d nuclei (train on two thirds of X, the last third held out).
//! `PETRI_ACC_{EPOCHS,BASE,PATCHES,PATCH_Z,PATCH_XY,LR,TRAIN_FRACTION}` override the 3-D
//! settings for tuning runs; nuclei3d also reads `PETRI_ACC_{DEPTH,BATCH,LOSS,AUG,SEEDS,VAL_Y,
//! STAGE,POST,CONTEXT,FIT}` (see [`Nuclei3d::from_env`], [`nuclei3d`] and [`block_prob`]).
use std::path::Path;
use std::time::Instant;

use petri_api::{NodeCtx, NodeEvent, Stack};
use petri_learn::dataset::{ClassMode, DatasetOptions, DatasetSpec, Split, build_dataset, read_tiff};
use petri_learn::instances::{instances_from_classes, object_f1};
use petri_learn::loss::LossKind;
use petri_learn::model::{ModelConfig, Net, Normalisation};
use petri_learn::optim::{OptimizerConfig, OptimizerKind, Schedule};
use petri_learn::predict::{PredictOptions, predict};
use petri_learn::train::{ClassWeights, TrainOptions, train};
use petri_learn::unet::{Decoder, Dims, Padding, UNetConfig};

/// The block x ∈ [x0, x1) of a stack (all Z), as f32 or u32.
fn xcrop(s: &Stack, x0: usize, x1: usize, labels: bool) -> Stack {
    crop3(s, (0, s.z()), (0, s.y()), (x0, x1), labels)
}

/// Training options of every protocol here: Adam with a cosine schedule, no class weights.
fn adam_cosine(epochs: usize, batch: usize, loss: LossKind, lr: f64, keep_best: bool, seed: u64) -> TrainOptions {
    TrainOptions {
        epochs,
        batch_size: batch,
        loss,
        class_weights: ClassWeights::None,
        border_w0: 0.0,
        border_sigma: 5.0,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr,
            weight_decay: 0.0,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        schedule: Schedule::Cosine { min_lr: 2e-5 },
        early_stopping: 0,
        keep_best,
        seed,
    }
}

fn fg_iou(pred: &[u32], truth: &[u32]) -> f64 {
    let (mut i, mut u) = (0usize, 0usize);
    for (&p, &t) in pred.iter().zip(truth) {
        i += (p != 0 && t != 0) as usize;
        u += (p != 0 || t != 0) as usize;
    }
    i as f64 / u as f64
}

fn ctx() -> NodeCtx {
    NodeCtx::new(
        Default::default(),
        std::sync::Arc::new(|e| {
            if let NodeEvent::Metric { name, step, value } = e {
                if name.starts_with("val") || name == "train_loss" {
                    eprintln!("  epoch {step} {name} {value:.4}");
                }
            }
        }),
        petri_api::Device::Cpu,
        std::env::temp_dir(),
    )
}

/// How the image is divided: the last part of X is always the held-out test block.
#[derive(Clone, Copy)]
enum Protocol {
    /// Train on x < w/2 chopped 2×2(×2) with a quarter of the blocks for validation (model
    /// selection by validation loss); test on x ≥ w/2.
    HalfChopped,
    /// Train on x < `frac`·w as one block, test on the rest. No validation split: the final
    /// epoch's weights are kept (`keep_best` off, no early stopping). The test block is given
    /// to the trainer as its validation image only so that its IoU is printed every epoch;
    /// it never influences the weights.
    Holdout(f64),
}

/// A number from the environment (for tuning runs without recompiling), else `default`.
fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[allow(clippy::too_many_arguments)]
fn run(
    name: &str,
    img: Stack,
    lab: Stack,
    arch: UNetConfig,
    patch: [usize; 3],
    patches: usize,
    epochs: usize,
    batch: usize,
    tile: [usize; 3],
    mode: ClassMode,
    lr: f64,
    protocol: Protocol,
) {
    let t0 = Instant::now();
    let w = img.x();
    let cut = match protocol {
        Protocol::HalfChopped => w / 2,
        Protocol::Holdout(f) => ((w as f64 * f).round() as usize).clamp(1, w - 1),
    };
    let (ti, tl) = (xcrop(&img, 0, cut, false), xcrop(&lab, 0, cut, true));
    let (pi, pl) = (xcrop(&img, cut, w, false), xcrop(&lab, cut, w, true));
    println!(
        "{name}: train on x < {cut} ({}×{}×{}), test on x ≥ {cut} ({}×{}×{}); {arch:?}; patch {patch:?}, {patches} patches × {epochs} epochs, batch {batch}, lr {lr}",
        ti.z(),
        ti.y(),
        ti.x(),
        pi.z(),
        pi.y(),
        pi.x()
    );
    let (images, labels, split, keep_best) = match protocol {
        Protocol::HalfChopped => (vec![ti], vec![tl], Split::Chop(2, 0.25), true),
        Protocol::Holdout(_) => (vec![ti, pi.clone()], vec![tl, pl.clone()], Split::Indices(vec![1]), false),
    };
    let ds = build_dataset(
        &images,
        &labels,
        &DatasetOptions {
            mode,
            classes: 0,
            border: 2,
            patch,
            foreground_oversample: 0.5,
            patches_per_epoch: patches,
            split,
            seed: 0,
            normalisation: Normalisation::Percentile { low: 1.0, high: 99.8 },
        },
    )
    .unwrap();
    let mut ds = ds;
    let mut spec = DatasetSpec::from_ron(&ds.spec).unwrap();
    let mut aug = petri_learn::augment::AugmentSpec::none();
    aug.flip = 0.5;
    aug.rot90 = if patch[1] == patch[2] { 0.5 } else { 0.0 };
    aug.contrast = 0.3;
    aug.contrast_range = 0.2;
    aug.brightness = 0.3;
    aug.brightness_range = 0.1;
    spec.augment = Some(aug);
    ds.spec = spec.to_ron();
    let o = adam_cosine(epochs, batch, LossKind::CrossEntropyDice, lr, keep_best, 0);
    let mut net = Net::init(ModelConfig::new(arch, 0), &candle_core::Device::Cpu).unwrap();
    let hist = train(&mut net, &ds, &spec, &o, None, None, &ctx()).unwrap();
    let t_train = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let po = PredictOptions { tile: Some(tile), overlap: 0.25, tta: true, batch: 2 };
    let (_, cls) = predict(&net, &pi, &po, &candle_core::Device::Cpu, &NodeCtx::detached()).unwrap();
    let t_pred = t1.elapsed().as_secs_f64();
    let c = cls.pixels::<u32>().unwrap();
    let truth = pl.pixels::<u32>().unwrap();
    let iou = fg_iou(c, truth);
    let dims = [pi.z(), pi.y(), pi.x()];
    let inst = instances_from_classes(c, dims, 8);
    let f1 = object_f1(&inst, truth, 0.5);
    let best = hist
        .iter()
        .filter_map(|h| h.val_loss.map(|v| (v, h.epoch)))
        .fold((f64::INFINITY, 0), |a, b| if b.0 < a.0 { b } else { a });
    let kept =
        if keep_best { format!("best val loss {:.4} at epoch {}", best.0, best.1) } else { "final epoch kept".into() };
    println!(
        "{name}: held-out foreground IoU {iou:.3}, object F1@0.5 {f1:.3} ({} predicted, {} true objects); train {t_train:.0} s ({} epochs, {kept}), predict with TTA {t_pred:.1} s",
        inst.iter().copied().filter(|&v| v != 0).collect::<std::collections::BTreeSet<_>>().len(),
        truth.iter().copied().filter(|&v| v != 0).collect::<std::collections::BTreeSet<_>>().len(),
        hist.len(),
    );
}

/// The box z ∈ [z0, z1), y ∈ [y0, y1), x ∈ [x0, x1) of a stack, as f32 or u32 (2-D stays 2-D).
fn crop3(s: &Stack, z: (usize, usize), y: (usize, usize), x: (usize, usize), labels: bool) -> Stack {
    let (h, w) = (s.y(), s.x());
    let px = s.buffer().to_f64_vec();
    let mut v = Vec::with_capacity((z.1 - z.0) * (y.1 - y.0) * (x.1 - x.0));
    for zz in z.0..z.1 {
        for yy in y.0..y.1 {
            for xx in x.0..x.1 {
                v.push(px[(zz * h + yy) * w + xx]);
            }
        }
    }
    let (d, h, w) = (z.1 - z.0, y.1 - y.0, x.1 - x.0);
    let three = s.z() > 1;
    if labels {
        let v: Vec<u32> = v.iter().map(|&x| x as u32).collect();
        if three { Stack::from_3d(d, h, w, v).unwrap() } else { Stack::from_2d(h, w, v).unwrap() }
    } else {
        let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        if three { Stack::from_3d(d, h, w, v).unwrap() } else { Stack::from_2d(h, w, v).unwrap() }
    }
}

/// Y and X swapped (a Z×Y×X volume becomes Z×X×Y).
fn transpose_yx(v: &[f32], dims: [usize; 3]) -> Vec<f32> {
    let [d, h, w] = dims;
    let mut out = vec![0f32; v.len()];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                out[(z * w + x) * h + y] = v[(z * h + y) * w + x];
            }
        }
    }
    out
}

/// Separable Gaussian smoothing (σ in voxels, reflecting borders) of a Z×Y×X volume.
fn smooth(v: &[f32], dims: [usize; 3], sigma: f64) -> Vec<f32> {
    if sigma <= 0.0 {
        return v.to_vec();
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f64> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let ks: f64 = k.iter().sum();
    let k: Vec<f64> = k.iter().map(|x| x / ks).collect();
    let strides = [dims[1] * dims[2], dims[2], 1];
    let mut cur = v.to_vec();
    for a in 0..3 {
        let n = dims[a] as isize;
        let mut out = vec![0f32; cur.len()];
        for (i, o) in out.iter_mut().enumerate() {
            let pos = (i / strides[a]) as isize % n;
            let base = i as isize - pos * strides[a] as isize;
            let mut acc = 0.0;
            for (j, kk) in k.iter().enumerate() {
                let mut q = pos + j as isize - r;
                if n > 1 {
                    while q < 0 || q >= n {
                        q = if q < 0 { -q } else { 2 * (n - 1) - q };
                    }
                } else {
                    q = 0;
                }
                acc += kk * cur[(base + q * strides[a] as isize) as usize] as f64;
            }
            *o = acc as f32;
        }
        cur = out;
    }
    cur
}

fn iou_at(p: &[f32], truth: &[u32], t: f32) -> f64 {
    let (mut i, mut u) = (0usize, 0usize);
    for (&p, &l) in p.iter().zip(truth) {
        let f = p > t;
        i += (f && l != 0) as usize;
        u += (f || l != 0) as usize;
    }
    i as f64 / u as f64
}

/// The 3-D settings of the synthetic-nuclei protocol (defaults = the recorded run; the
/// `PETRI_ACC_*` variables override them).
#[derive(Clone, Debug)]
struct Nuclei3d {
    depth: usize,
    base: usize,
    patch: [usize; 3],
    patches: usize,
    epochs: usize,
    batch: usize,
    lr: f64,
    loss: LossKind,
    /// basic: flips, rot90, brightness, contrast; geo: + rotation by any angle, scaling,
    /// elastic; strong: geo + gamma + noise.
    aug: String,
    tile: [usize; 3],
    seeds: usize,
}

impl Nuclei3d {
    fn from_env() -> Nuclei3d {
        let pz = env("PETRI_ACC_PATCH_Z", 16);
        let pxy = env("PETRI_ACC_PATCH_XY", 32);
        let loss = match env("PETRI_ACC_LOSS", "ce_dice".to_string()).as_str() {
            "ce" => LossKind::CrossEntropy,
            "dice" => LossKind::Dice,
            "focal" => LossKind::Focal { gamma: 2.0 },
            _ => LossKind::CrossEntropyDice,
        };
        Nuclei3d {
            depth: env("PETRI_ACC_DEPTH", 3),
            base: env("PETRI_ACC_BASE", 16),
            patch: [pz, pxy, pxy],
            patches: env("PETRI_ACC_PATCHES", 64),
            epochs: env("PETRI_ACC_EPOCHS", 60),
            batch: env("PETRI_ACC_BATCH", 4),
            lr: env("PETRI_ACC_LR", 3e-3),
            loss,
            aug: env("PETRI_ACC_AUG", "geo".to_string()),
            tile: [32, 64, 32],
            seeds: env("PETRI_ACC_SEEDS", 1),
        }
    }

    fn augment(&self) -> petri_learn::augment::AugmentSpec {
        let mut a = petri_learn::augment::AugmentSpec::none();
        a.flip = 0.5;
        a.rot90 = 0.5;
        a.contrast = 0.3;
        a.contrast_range = 0.2;
        a.brightness = 0.3;
        a.brightness_range = 0.1;
        if self.aug == "geo" || self.aug == "strong" {
            a.rotate = 0.5;
            a.rotate_degrees = 180.0;
            a.scale = 0.3;
            a.scale_range = 0.15;
            a.elastic = 0.3;
            a.elastic_alpha = 2.0;
            a.elastic_spacing = 8.0;
        }
        if self.aug == "strong" {
            a.gamma = 0.3;
            a.gamma_range = 0.2;
            a.noise = 0.3;
            a.noise_std = 0.05;
        }
        a
    }

    /// Trains one network (seed `seed`) on `images[train]`; `images[1]`, if there, is the
    /// validation block (its IoU printed every epoch; it never changes the weights).
    fn train(&self, images: Vec<Stack>, labels: Vec<Stack>, seed: u64) -> Net {
        let split = Split::Indices(if images.len() > 1 { vec![1] } else { vec![] });
        let mut ds = build_dataset(
            &images,
            &labels,
            &DatasetOptions {
                mode: ClassMode::Foreground,
                classes: 0,
                border: 2,
                patch: self.patch,
                foreground_oversample: 0.5,
                patches_per_epoch: self.patches,
                split,
                seed,
                normalisation: Normalisation::Percentile { low: 1.0, high: 99.8 },
            },
        )
        .unwrap();
        let mut spec = DatasetSpec::from_ron(&ds.spec).unwrap();
        spec.augment = Some(self.augment());
        ds.spec = spec.to_ron();
        let o = adam_cosine(self.epochs, self.batch, self.loss, self.lr, false, seed);
        let arch = UNetConfig {
            dims: Dims::Three,
            in_channels: 1,
            classes: 2,
            depth: self.depth,
            base_filters: self.base,
            batch_norm: true,
            dropout: 0.0,
            padding: Padding::Same,
            decoder: Decoder::TransposedConv,
        };
        let mut net = Net::init(ModelConfig::new(arch, seed), &candle_core::Device::Cpu).unwrap();
        train(&mut net, &ds, &spec, &o, None, None, &ctx()).unwrap();
        net
    }

    /// Foreground probability of `img` with the 8 axis flips averaged (TTA), plus — when
    /// `transpose` — the 8 flips of the Y–X-transposed volume (16-fold).
    fn fg_prob(&self, net: &Net, img: &Stack, transpose: bool) -> Vec<f32> {
        let po = PredictOptions { tile: Some(self.tile), overlap: 0.25, tta: true, batch: 2 };
        let dev = candle_core::Device::Cpu;
        let (p, _) = predict(net, img, &po, &dev, &NodeCtx::detached()).unwrap();
        let vol = img.volume_len();
        let mut fg = p.pixels::<f32>().unwrap()[vol..2 * vol].to_vec();
        if transpose {
            let dims = [img.z(), img.y(), img.x()];
            let px = img.buffer().to_f32();
            let t = Stack::from_3d(dims[0], dims[2], dims[1], transpose_yx(&px, dims)).unwrap();
            let tile = [self.tile[0], self.tile[2], self.tile[1]];
            let po = PredictOptions { tile: Some(tile), ..po };
            let (pt, _) = predict(net, &t, &po, &dev, &NodeCtx::detached()).unwrap();
            let back = transpose_yx(&pt.pixels::<f32>().unwrap()[vol..2 * vol], [dims[0], dims[2], dims[1]]);
            for (a, b) in fg.iter_mut().zip(back) {
                *a = (*a + b) / 2.0;
            }
        }
        fg
    }
}

/// Foreground probability of the block `y0..y1` × `x0..x1` (all z) of `img`: predicted on the
/// whole of `img` when `PETRI_ACC_CONTEXT` is `full` (the default), so that the voxels near the
/// block's cut edges see their real neighbourhood, as when a lab predicts a whole image (only the
/// block's labels are held out, never the image); on the cropped block alone when it is `block`
/// (the protocol of the 0.8275 run).
fn block_prob(s: &Nuclei3d, net: &Net, img: &Stack, y: (usize, usize), x: (usize, usize), transpose: bool) -> Vec<f32> {
    let d = img.z();
    if env("PETRI_ACC_CONTEXT", "full".to_string()) == "block" {
        return s.fg_prob(net, &crop3(img, (0, d), y, x, false), transpose);
    }
    let (h, w) = (img.y(), img.x());
    let p = s.fg_prob(net, img, transpose);
    let mut out = Vec::with_capacity(d * (y.1 - y.0) * (x.1 - x.0));
    for zz in 0..d {
        for yy in y.0..y.1 {
            out.extend_from_slice(&p[(zz * h + yy) * w + x.0..(zz * h + yy) * w + x.1]);
        }
    }
    out
}

/// Post-processing chosen on the validation block: 16-fold TTA or 8, Gaussian σ on the
/// probabilities, threshold.
#[derive(Clone, Copy, Debug)]
struct Post {
    transpose: bool,
    sigma: f64,
    threshold: f32,
}

/// Synthetic 3-D nuclei. The volume is cut at x = 38: x ≥ 38 is the held-out test block,
/// never used for training or for choosing anything. Stage 1 (validation): train on the
/// training part without its last rows (y < 45), predict the validation block (x < 38,
/// y ≥ 45) and choose the post-processing (TTA 8/16, smoothing σ, threshold) that maximises
/// its foreground IoU. Stage 2 (final): retrain with the same settings on the whole training
/// part (x < 38), predict the held-out block once with the chosen post-processing.
/// `PETRI_ACC_STAGE=val` stops after stage 1; `PETRI_ACC_POST=transpose,sigma,threshold`
/// skips it.
fn nuclei3d(samples: &Path) {
    let img = read_tiff(&samples.join("nuclei3d_synthetic.tif")).unwrap();
    let lab = read_tiff(&samples.join("nuclei3d_synthetic_labels.tif")).unwrap();
    let (d, h, w) = (img.z(), img.y(), img.x());
    let cut = ((w as f64 * 2.0 / 3.0).round() as usize).clamp(1, w - 1);
    let vy = env("PETRI_ACC_VAL_Y", 45usize);
    let s = Nuclei3d::from_env();
    let stage = env("PETRI_ACC_STAGE", "all".to_string());
    println!(
        "nuclei3d: training part x < {cut} (validation block y ≥ {vy} of it), held-out test block x ≥ {cut}; {s:?}"
    );
    let t0 = Instant::now();
    let post = match std::env::var("PETRI_ACC_POST").ok() {
        Some(v) => {
            let f: Vec<&str> = v.split(',').collect();
            Post { transpose: f[0] == "true", sigma: f[1].parse().unwrap(), threshold: f[2].parse().unwrap() }
        }
        None => {
            let tr = crop3(&img, (0, d), (0, vy), (0, cut), false);
            let trl = crop3(&lab, (0, d), (0, vy), (0, cut), true);
            let va = crop3(&img, (0, d), (vy, h), (0, cut), false);
            let val = crop3(&lab, (0, d), (vy, h), (0, cut), true);
            let truth = val.pixels::<u32>().unwrap().to_vec();
            let vdims = [va.z(), va.y(), va.x()];
            let (mut p8, mut p16) = (vec![0f32; truth.len()], vec![0f32; truth.len()]);
            // The training part's image (training rows + validation block): the context in
            // which the validation block is predicted.
            let part = crop3(&img, (0, d), (0, h), (0, cut), false);
            for seed in 0..s.seeds as u64 {
                let net = s.train(vec![tr.clone(), va.clone()], vec![trl.clone(), val.clone()], seed);
                let a = block_prob(&s, &net, &part, (vy, h), (0, cut), false);
                let b = block_prob(&s, &net, &part, (vy, h), (0, cut), true);
                if env("PETRI_ACC_FIT", false) {
                    // How well the network fits its own training rows: if this is not far above
                    // the validation IoU, the limit is the data (noise at the boundaries), not
                    // overfitting.
                    let f = block_prob(&s, &net, &part, (0, vy), (0, cut), true);
                    let t = trl.pixels::<u32>().unwrap();
                    println!(
                        "seed {seed}: training rows (fit) foreground IoU {:.4} (16-fold TTA, threshold 0.5)",
                        iou_at(&f, t, 0.5)
                    );
                }
                for i in 0..truth.len() {
                    p8[i] += a[i] / s.seeds as f32;
                    p16[i] += b[i] / s.seeds as f32;
                }
            }
            let mut best = (Post { transpose: false, sigma: 0.0, threshold: 0.5 }, iou_at(&p8, &truth, 0.5));
            println!(
                "validation block: foreground IoU {:.4} (8-fold TTA, threshold 0.5 = argmax), {:.4} (16-fold)",
                best.1,
                iou_at(&p16, &truth, 0.5)
            );
            for transpose in [false, true] {
                for sigma in [0.0, 0.5, 1.0] {
                    let p = smooth(if transpose { &p16 } else { &p8 }, vdims, sigma);
                    for ti in 10..=90 {
                        let t = ti as f32 / 100.0;
                        let v = iou_at(&p, &truth, t);
                        if v > best.1 + 1e-9 {
                            best = (Post { transpose, sigma, threshold: t }, v);
                        }
                    }
                }
            }
            println!(
                "validation block: best post-processing {:?}: foreground IoU {:.4} ({:.0} s)",
                best.0,
                best.1,
                t0.elapsed().as_secs_f64()
            );
            best.0
        }
    };
    if stage == "val" {
        return;
    }
    let t1 = Instant::now();
    let ti = crop3(&img, (0, d), (0, h), (0, cut), false);
    let tl = crop3(&lab, (0, d), (0, h), (0, cut), true);
    let pi = crop3(&img, (0, d), (0, h), (cut, w), false);
    let pl = crop3(&lab, (0, d), (0, h), (cut, w), true);
    let truth = pl.pixels::<u32>().unwrap().to_vec();
    let mut p = vec![0f32; truth.len()];
    for seed in 0..s.seeds as u64 {
        let net = s.train(vec![ti.clone()], vec![tl.clone()], seed);
        let a = block_prob(&s, &net, &img, (0, h), (cut, w), post.transpose);
        for i in 0..truth.len() {
            p[i] += a[i] / s.seeds as f32;
        }
    }
    let p = smooth(&p, [pi.z(), pi.y(), pi.x()], post.sigma);
    let iou = iou_at(&p, &truth, post.threshold);
    println!(
        "nuclei3d: held-out foreground IoU {iou:.4} with {post:?} (final training + prediction {:.0} s, total {:.0} s)",
        t1.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

fn main() {
    petri_api::mem::tune_allocator();
    let what = std::env::args().nth(1).unwrap_or_else(|| "dsb2018".into());
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/samples");
    match what.as_str() {
        "dsb2018" => {
            let img = read_tiff(&samples.join("nuclei2d.tif")).unwrap();
            let lab = read_tiff(&samples.join("nuclei2d_labels.tif")).unwrap();
            let arch = UNetConfig {
                dims: Dims::Two,
                in_channels: 1,
                classes: 3,
                depth: 4,
                base_filters: 16,
                batch_norm: true,
                dropout: 0.0,
                padding: Padding::Same,
                decoder: Decoder::TransposedConv,
            };
            run(
                "dsb2018",
                img,
                lab,
                arch,
                [1, 128, 128],
                64,
                40,
                8,
                [1, 256, 256],
                ClassMode::InstanceBorders,
                2e-3,
                Protocol::HalfChopped,
            );
        }
        "nuclei3d" => nuclei3d(&samples),
        "nuclei3d-v1" | "cells3d" => {
            // Defaults are the recorded runs (docs/benchmarks/learn.md); PETRI_ACC_* variables
            // override them for tuning.
            let (img, lab, dims, patch, tile, base, epochs, patches) = if what == "nuclei3d-v1" {
                (
                    read_tiff(&samples.join("nuclei3d_synthetic.tif")).unwrap(),
                    read_tiff(&samples.join("nuclei3d_synthetic_labels.tif")).unwrap(),
                    Dims::Three,
                    [16, 32, 32],
                    [32, 64, 32],
                    16,
                    60,
                    64,
                )
            } else {
                let dir = std::env::args().nth(2).expect("path to nuclei3d_cells3d");
                (
                    read_tiff(&Path::new(&dir).join("image.tif")).unwrap(),
                    read_tiff(&Path::new(&dir).join("labels.tif")).unwrap(),
                    Dims::Anisotropic,
                    [16, 64, 64],
                    [32, 128, 128],
                    16,
                    30,
                    48,
                )
            };
            let pz = env("PETRI_ACC_PATCH_Z", patch[0]);
            let pxy = env("PETRI_ACC_PATCH_XY", patch[1]);
            let arch = UNetConfig {
                dims,
                in_channels: 1,
                classes: 2,
                depth: 3,
                base_filters: env("PETRI_ACC_BASE", base),
                batch_norm: true,
                dropout: 0.0,
                padding: Padding::Same,
                decoder: Decoder::TransposedConv,
            };
            // Foreground / background: the targets are foreground IoU. Train on the first two
            // thirds of X, test on the last third.
            run(
                &what,
                img,
                lab,
                arch,
                [pz, pxy, pxy],
                env("PETRI_ACC_PATCHES", patches),
                env("PETRI_ACC_EPOCHS", epochs),
                4,
                tile,
                ClassMode::Foreground,
                env("PETRI_ACC_LR", 3e-3),
                Protocol::Holdout(env("PETRI_ACC_TRAIN_FRACTION", 2.0 / 3.0)),
            );
        }
        other => eprintln!("unknown run {other}: dsb2018, nuclei3d, nuclei3d-v1 or cells3d"),
    }
}
