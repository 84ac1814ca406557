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
//! synthetic nuclei, trained on the first two thirds of X, the last third held out and
//! predicted. cells3d: the anisotropic 3-D U-Net on the Allen cells3d nuclei (same split).
//! `PETRI_ACC_{EPOCHS,BASE,PATCHES,PATCH_Z,PATCH_XY,LR,TRAIN_FRACTION}` override the 3-D
//! settings for tuning runs.
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
    let (d, h, w) = (s.z(), s.y(), s.x());
    let px = s.buffer().to_f64_vec();
    let v: Vec<f64> = (0..d * h).flat_map(|r| (x0..x1).map(move |x| (r, x))).map(|(r, x)| px[r * w + x]).collect();
    let nw = x1 - x0;
    if labels {
        let v: Vec<u32> = v.iter().map(|&x| x as u32).collect();
        if d > 1 { Stack::from_3d(d, h, nw, v).unwrap() } else { Stack::from_2d(h, nw, v).unwrap() }
    } else {
        let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        if d > 1 { Stack::from_3d(d, h, nw, v).unwrap() } else { Stack::from_2d(h, nw, v).unwrap() }
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
    let o = TrainOptions {
        epochs,
        batch_size: batch,
        loss: LossKind::CrossEntropyDice,
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
        seed: 0,
    };
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

fn main() {
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
        "nuclei3d" | "cells3d" => {
            // Defaults are the recorded runs (docs/benchmarks/learn.md); PETRI_ACC_* variables
            // override them for tuning.
            let (img, lab, dims, patch, tile, base, epochs, patches) = if what == "nuclei3d" {
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
        other => eprintln!("unknown run {other}: dsb2018, nuclei3d or cells3d"),
    }
}
