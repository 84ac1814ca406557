//! `learn.train`: trains a network on a dataset — seeded patch sampling and augmentation,
//! losses, optimisers and schedules, validation loss / IoU / Dice every epoch, an atomic
//! checkpoint every epoch (weights + optimiser state + RON state), resume, keep-best, early
//! stopping, progress and metric events, cancellation between steps.
//!
//! Determinism: every epoch's patches come from a generator seeded by (seed, epoch), dropout
//! masks by (seed, epoch, step), and all CPU kernels reduce in a fixed order; so a run is
//! repeatable bit for bit on the CPU, and a run resumed from a checkpoint continues exactly as
//! the uninterrupted run would have.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use petri_api::{
    CachePolicy, ColumnData, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Table,
    Value,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetSpec, Item, Patch, dataset_input, extract, items, sample_patch};
use crate::loss::{IGNORE, LossKind, loss, one_hot};
use crate::model::{EpochRecord, ModelConfig, Net, candle_device, net_input, serialize_tensors, write_atomic};
use crate::optim::{Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use crate::unet::Padding;
use crate::weights::{balanced_class_weights, border_weights};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClassWeights {
    None,
    /// Inverse class frequency in the training images.
    Balanced,
    Given(Vec<f64>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub loss: LossKind,
    pub class_weights: ClassWeights,
    /// U-Net border weight w0 (0 = off) and σ in pixels.
    pub border_w0: f64,
    pub border_sigma: f64,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    /// Stop after this many epochs without a better validation loss (0 = never).
    pub early_stopping: usize,
    /// Return the weights of the epoch with the best validation loss (else the last).
    pub keep_best: bool,
    pub seed: u64,
}

/// What a checkpoint's RON file holds besides the model configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub format: u32,
    pub model: ModelConfig,
    pub options: TrainOptions,
    /// Epochs completed.
    pub epochs_done: usize,
    pub optimizer_step: u64,
    pub lr: f64,
    pub best_val_loss: Option<f64>,
    pub best_epoch: Option<usize>,
    pub since_best: usize,
    /// blake3 of the checkpoint's safetensors file, so a RON never pairs with other weights.
    pub weights_blake3: String,
}

fn cerr(e: candle_core::Error) -> NodeError {
    NodeError::failed(e.to_string())
}

fn seed_mix(a: u64, b: u64, c: u64) -> u64 {
    let h = blake3::hash(&[a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes()].concat());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// A batch of patches as tensors: input (B, C, [D,] H, W), one-hot, valid mask, weights.
struct Batch {
    x: Tensor,
    oh: Tensor,
    valid: Tensor,
    w: Tensor,
    classes: Vec<u32>,
}

fn centre_crop(v: &[u32], from: [usize; 3], to: [usize; 3]) -> Vec<u32> {
    let off = [0, 1, 2].map(|a| (from[a] - to[a]) / 2);
    let mut out = Vec::with_capacity(to.iter().product());
    for z in 0..to[0] {
        for y in 0..to[1] {
            let o = ((z + off[0]) * from[1] + y + off[1]) * from[2] + off[2];
            out.extend_from_slice(&v[o..o + to[2]]);
        }
    }
    out
}

fn make_batch(
    patches: Vec<Patch>,
    c: usize,
    inp: [usize; 3],
    out: [usize; 3],
    classes: usize,
    three_d: bool,
    dev: &Device,
) -> Result<Batch, NodeError> {
    let b = patches.len();
    let mut xs = Vec::with_capacity(b * c * inp.iter().product::<usize>());
    let mut ts = Vec::new();
    let mut ws = Vec::new();
    for p in patches {
        xs.extend_from_slice(&p.image);
        if inp == out {
            ts.extend_from_slice(&p.classes);
            ws.extend_from_slice(&p.weights);
        } else {
            ts.extend(centre_crop(&p.classes, inp, out));
            let wu: Vec<u32> = p.weights.iter().map(|w| w.to_bits()).collect();
            ws.extend(centre_crop(&wu, inp, out).into_iter().map(f32::from_bits));
        }
    }
    let shape =
        |ch: usize, s: [usize; 3]| if three_d { vec![b, ch, s[0], s[1], s[2]] } else { vec![b, ch, s[1], s[2]] };
    let x = Tensor::from_vec(xs, shape(c, inp), dev).map_err(cerr)?;
    let sp: Vec<usize> = if three_d { out.to_vec() } else { out[1..].to_vec() };
    let (oh, valid) = one_hot(&ts, b, classes, &sp, dev).map_err(cerr)?;
    let w = Tensor::from_vec(ws, shape(1, out), dev).map_err(cerr)?;
    Ok(Batch { x, oh, valid, w, classes: ts })
}

/// Confusion counts → (IoU, Dice): foreground for 2 classes, else the mean over classes ≥ 1.
pub fn iou_dice(pred: &[u32], truth: &[u32], classes: usize) -> (f64, f64) {
    let mut tp = vec![0u64; classes];
    let mut fp = vec![0u64; classes];
    let mut fneg = vec![0u64; classes];
    for (&p, &t) in pred.iter().zip(truth) {
        if t == IGNORE {
            continue;
        }
        if p == t {
            tp[p as usize] += 1;
        } else {
            if (p as usize) < classes {
                fp[p as usize] += 1;
            }
            if (t as usize) < classes {
                fneg[t as usize] += 1;
            }
        }
    }
    let (mut iou, mut dice, mut n) = (0.0, 0.0, 0);
    for k in 1..classes {
        let u = tp[k] + fp[k] + fneg[k];
        if u == 0 {
            continue;
        }
        iou += tp[k] as f64 / u as f64;
        dice += 2.0 * tp[k] as f64 / (2 * tp[k] + fp[k] + fneg[k]) as f64;
        n += 1;
    }
    if n == 0 { (1.0, 1.0) } else { (iou / n as f64, dice / n as f64) }
}

/// Argmax over the class axis of logits (B, K, ...) → (B·spatial) labels.
pub fn argmax_classes(logits: &Tensor) -> Result<Vec<u32>, NodeError> {
    logits.argmax(1).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<u32>()).map_err(cerr)
}

/// Trains `net` in place. Returns the history (also stored in `net.cfg.history`).
pub fn train(
    net: &mut Net,
    ds: &petri_api::Dataset,
    spec: &DatasetSpec,
    o: &TrainOptions,
    checkpoint_dir: Option<&Path>,
    resume_from: Option<&Path>,
    ctx: &NodeCtx,
) -> Result<Vec<EpochRecord>, NodeError> {
    let arch = net.cfg.architecture.clone();
    if arch.classes != spec.classes {
        return Err(NodeError::input(
            "model",
            format!("the network has {} output classes but the dataset has {}", arch.classes, spec.classes),
        ));
    }
    if arch.three_d() != spec.three_d {
        return Err(NodeError::input(
            "model",
            if spec.three_d {
                "the dataset is 3-D but the network is 2-D"
            } else {
                "the dataset is 2-D but the network is 3-D"
            },
        ));
    }
    let mut its = items(&ds.images, &ds.targets, spec)?;
    if its.is_empty() || spec.train.is_empty() {
        return Err(NodeError::input("dataset", "no training images"));
    }
    let channels = its[0].channels;
    if channels != arch.in_channels {
        return Err(NodeError::input(
            "model",
            format!("the network takes {} channel(s) but the images have {channels}", arch.in_channels),
        ));
    }
    let inp = spec.patch;
    let out = arch.output_size(inp).ok_or_else(|| {
        let ok = arch
            .input_size_for(inp)
            .map(|v| format!(" (try {:?})", if spec.three_d { v.to_vec() } else { v[1..].to_vec() }));
        NodeError::input(
            "dataset",
            format!(
                "patch size {:?} does not fit this network: with same padding every side must be divisible by {}{}",
                if spec.three_d { inp.to_vec() } else { inp[1..].to_vec() },
                1usize << (arch.depth - 1),
                ok.unwrap_or_default()
            ),
        )
    })?;
    let _ = Padding::Same;
    // Loss weights per voxel: class weights × 1 + border term.
    let needs_weights =
        matches!(o.loss, LossKind::WeightedCrossEntropy | LossKind::Focal { .. } | LossKind::CrossEntropyDice)
            && (o.border_w0 > 0.0 || o.class_weights != ClassWeights::None);
    if needs_weights {
        let mut counts = vec![0u64; spec.classes];
        for &i in &spec.train {
            for &c in &its[i].classes {
                if (c as usize) < spec.classes {
                    counts[c as usize] += 1;
                }
            }
        }
        let cw = match &o.class_weights {
            ClassWeights::None => vec![1.0; spec.classes],
            ClassWeights::Balanced => balanced_class_weights(&counts),
            ClassWeights::Given(v) => {
                if v.len() != spec.classes {
                    return Err(NodeError::param(
                        "class_weights",
                        format!("{} weights for {} classes", v.len(), spec.classes),
                    ));
                }
                v.clone()
            }
        };
        for it in its.iter_mut() {
            let bw = if o.border_w0 > 0.0 {
                border_weights(&it.instances, it.dims, o.border_w0, o.border_sigma)
            } else {
                vec![0.0; it.classes.len()]
            };
            it.weights = Some(
                it.classes
                    .iter()
                    .zip(&bw)
                    .map(|(&c, &b)| cw.get(c as usize).copied().unwrap_or(1.0) as f32 + b)
                    .collect(),
            );
        }
    }
    let dev = net.vars.all_vars().first().map(|v| v.device().clone()).unwrap_or(Device::Cpu);
    let trainable: BTreeMap<String, Var> = net
        .vars
        .data()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(k, _)| !k.contains("running_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut opt = Optimizer::new(o.optimizer.clone(), trainable);
    let mut history: Vec<EpochRecord> = Vec::new();
    let (mut best_val, mut best_epoch, mut since_best) = (None::<f64>, None::<usize>, 0usize);
    let mut best_weights: Option<HashMap<String, Tensor>> = None;
    let mut start = 0;
    if let Some(path) = resume_from {
        let st = load_checkpoint(net, &mut opt, path)?;
        if st.options != *o {
            ctx.log("resuming with changed training options: the run will differ from an uninterrupted one");
        }
        start = st.epochs_done;
        history = st.model.history.clone();
        best_val = st.best_val_loss;
        best_epoch = st.best_epoch;
        since_best = st.since_best;
        if let (Some(dir), Some(_)) = (path.parent(), best_epoch) {
            let bp = dir.join("best.safetensors");
            if let Ok(bytes) = std::fs::read(&bp) {
                best_weights = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
                    .ok()
                    .map(|m| m.into_iter().filter(|(k, _)| !k.starts_with("optim.")).collect::<HashMap<_, _>>());
            }
        }
    }
    net.cfg.normalisation = spec.normalisation.clone();
    net.cfg.class_names = spec.class_names.clone();
    net.cfg.patch_size = Some(inp);
    let train_items: Vec<&Item> = spec.train.iter().filter_map(|&i| its.get(i)).collect();
    let sizes: Vec<usize> = train_items.iter().map(|i| i.classes.len()).collect();
    let total: usize = sizes.iter().sum();
    let bs = o.batch_size.max(1);
    let steps = spec.patches_per_epoch.div_ceil(bs);
    // Fixed validation tiles (no augmentation).
    let val_tiles: Vec<Patch> = spec
        .val
        .iter()
        .filter_map(|&i| its.get(i))
        .flat_map(|it| {
            let cs = tile_centres(it.dims, inp);
            cs.into_iter().map(|c| extract(it, inp, c, None)).collect::<Vec<_>>()
        })
        .collect();
    let lk = o.loss;
    for epoch in start..o.epochs {
        let t0 = Instant::now();
        let lr = o.schedule.lr(o.optimizer.lr, epoch, o.epochs);
        opt.lr = lr;
        let mut rng = ChaCha8Rng::seed_from_u64(seed_mix(o.seed, epoch as u64, 0));
        let mut sum_loss = 0.0;
        for step in 0..steps {
            ctx.check_cancel()?;
            let n = bs.min(spec.patches_per_epoch - step * bs);
            let patches: Vec<Patch> = (0..n)
                .map(|_| {
                    // Items drawn in proportion to their size.
                    let mut r = rng.random_range(0..total);
                    let mut k = 0;
                    while r >= sizes[k] {
                        r -= sizes[k];
                        k += 1;
                    }
                    sample_patch(train_items[k], spec, &mut rng, true)
                })
                .collect();
            let b = make_batch(patches, channels, inp, out, spec.classes, spec.three_d, &dev)?;
            net.unet.reseed_dropout(seed_mix(o.seed, epoch as u64, step as u64 + 1));
            let logits = net.unet.forward_t(&b.x, true).map_err(cerr)?;
            let l = loss(lk, &logits, &b.oh, &b.valid, Some(&b.w)).map_err(cerr)?;
            let lv = l.to_scalar::<f32>().map_err(cerr)? as f64;
            if !lv.is_finite() {
                return Err(NodeError::failed(format!(
                    "training diverged at epoch {} step {} (loss {lv}); lower the learning rate",
                    epoch + 1,
                    step + 1
                )));
            }
            let grads = l.backward().map_err(cerr)?;
            opt.step(&grads).map_err(cerr)?;
            sum_loss += lv;
            let gstep = (epoch * steps + step + 1) as u64;
            ctx.metric("train_loss_step", gstep, lv);
            ctx.progress(
                (epoch * steps + step + 1) as f64 / (o.epochs * steps) as f64,
                format!("epoch {}/{} step {}/{} loss {lv:.4}", epoch + 1, o.epochs, step + 1, steps),
            );
        }
        let train_loss = sum_loss / steps as f64;
        // Validation.
        let (val_loss, val_iou, val_dice) = if val_tiles.is_empty() {
            (None, None, None)
        } else {
            let (vl, vi, vd) = validate(net, &val_tiles, channels, inp, out, spec, lk, &dev, ctx)?;
            (Some(vl), Some(vi), Some(vd))
        };
        let rec = EpochRecord {
            epoch: epoch + 1,
            train_loss,
            val_loss,
            val_iou,
            val_dice,
            lr,
            seconds: t0.elapsed().as_secs_f64(),
        };
        ctx.metric("train_loss", (epoch + 1) as u64, train_loss);
        if let (Some(a), Some(b), Some(c)) = (val_loss, val_iou, val_dice) {
            ctx.metric("val_loss", (epoch + 1) as u64, a);
            ctx.metric("val_iou", (epoch + 1) as u64, b);
            ctx.metric("val_dice", (epoch + 1) as u64, c);
        }
        history.push(rec);
        net.cfg.history = history.clone();
        let improved = match (val_loss, best_val) {
            (Some(v), Some(b)) => v < b,
            (Some(_), None) => true,
            _ => false,
        };
        if improved {
            best_val = val_loss;
            best_epoch = Some(epoch + 1);
            since_best = 0;
            best_weights = Some(net.tensors("")?);
        } else {
            since_best += 1;
        }
        if let Some(dir) = checkpoint_dir {
            let st = TrainState {
                format: 1,
                model: net.cfg.clone(),
                options: o.clone(),
                epochs_done: epoch + 1,
                optimizer_step: opt.step,
                lr,
                best_val_loss: best_val,
                best_epoch,
                since_best,
                weights_blake3: String::new(),
            };
            save_checkpoint(net, &opt, st, dir, improved)?;
        }
        if o.early_stopping > 0 && since_best >= o.early_stopping && best_val.is_some() {
            ctx.log(format!(
                "early stopping after epoch {}: no better validation loss for {since_best} epochs",
                epoch + 1
            ));
            break;
        }
    }
    if o.keep_best {
        if let Some(bw) = &best_weights {
            net.load_tensors(bw, "")?;
        }
    }
    net.cfg.history = history.clone();
    Ok(history)
}

/// Tile centres covering a volume with patches of `patch` (last tile flush with the border).
pub fn tile_centres(dims: [usize; 3], patch: [usize; 3]) -> Vec<[f64; 3]> {
    let starts = |n: usize, p: usize| -> Vec<usize> {
        if n <= p {
            return vec![0];
        }
        let mut v: Vec<usize> = (0..n - p).step_by(p).collect();
        v.push(n - p);
        v.dedup();
        v
    };
    let mut out = Vec::new();
    for z in starts(dims[0], patch[0]) {
        for y in starts(dims[1], patch[1]) {
            for x in starts(dims[2], patch[2]) {
                let c = |s: usize, p: usize, n: usize| {
                    if n <= p { (n as f64 - 1.0) / 2.0 } else { s as f64 + (p as f64 - 1.0) / 2.0 }
                };
                out.push([c(z, patch[0], dims[0]), c(y, patch[1], dims[1]), c(x, patch[2], dims[2])]);
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn validate(
    net: &Net,
    tiles: &[Patch],
    channels: usize,
    inp: [usize; 3],
    out: [usize; 3],
    spec: &DatasetSpec,
    lk: LossKind,
    dev: &Device,
    ctx: &NodeCtx,
) -> Result<(f64, f64, f64), NodeError> {
    let mut preds = Vec::new();
    let mut truth = Vec::new();
    let mut lsum = 0.0;
    let mut nb = 0;
    for chunk in tiles.chunks(4) {
        ctx.check_cancel()?;
        let ps: Vec<Patch> = chunk
            .iter()
            .map(|p| Patch { image: p.image.clone(), classes: p.classes.clone(), weights: vec![1.0; p.classes.len()] })
            .collect();
        let b = make_batch(ps, channels, inp, out, spec.classes, spec.three_d, dev)?;
        let logits = net.unet.forward_t(&b.x, false).map_err(cerr)?;
        // Validation loss without per-voxel weights, comparable across settings.
        let l = loss(lk, &logits, &b.oh, &b.valid, None).map_err(cerr)?;
        lsum += l.to_scalar::<f32>().map_err(cerr)? as f64;
        nb += 1;
        preds.extend(argmax_classes(&logits)?);
        truth.extend(b.classes);
    }
    let (iou, dice) = iou_dice(&preds, &truth, spec.classes);
    Ok((lsum / nb.max(1) as f64, iou, dice))
}

/// Writes `last.safetensors` + `last.ron` (and `best.*` when `best`) atomically: weights
/// first, then the RON that names the weights' digest, so a cancelled or crashed run always
/// leaves a consistent pair.
pub fn save_checkpoint(
    net: &Net,
    opt: &Optimizer,
    mut st: TrainState,
    dir: &Path,
    best: bool,
) -> Result<(), NodeError> {
    let mut t = net.tensors("")?;
    t.extend(opt.state_tensors().map_err(cerr)?);
    let bytes = serialize_tensors(&t, None)?;
    st.weights_blake3 = blake3::hash(&bytes).to_hex().to_string();
    let ron = ron::ser::to_string_pretty(&st, ron::ser::PrettyConfig::default())
        .map_err(|e| NodeError::failed(format!("cannot write the checkpoint state: {e}")))?;
    let mut names = vec!["last".to_string(), format!("epoch-{:04}", st.epochs_done)];
    if best {
        names.push("best".into());
    }
    for n in names {
        write_atomic(&dir.join(format!("{n}.safetensors")), &bytes)?;
        write_atomic(&dir.join(format!("{n}.ron")), ron.as_bytes())?;
    }
    Ok(())
}

/// The RON path of a checkpoint given either of its two files (or its stem).
fn checkpoint_paths(p: &Path) -> (PathBuf, PathBuf) {
    let stem = if p.extension().is_some_and(|e| e == "ron" || e == "safetensors") {
        p.with_extension("")
    } else {
        p.to_path_buf()
    };
    (stem.with_extension("ron"), stem.with_extension("safetensors"))
}

/// Restores weights and optimiser state from a checkpoint; returns its state.
pub fn load_checkpoint(net: &mut Net, opt: &mut Optimizer, path: &Path) -> Result<TrainState, NodeError> {
    let (ronp, stp) = checkpoint_paths(path);
    let text = std::fs::read_to_string(&ronp).map_err(|e| NodeError::io(&ronp, e))?;
    let st: TrainState =
        ron::from_str(&text).map_err(|e| NodeError::io(&ronp, format!("not a Petri training checkpoint: {e}")))?;
    let bytes = std::fs::read(&stp).map_err(|e| NodeError::io(&stp, e))?;
    if blake3::hash(&bytes).to_hex().to_string() != st.weights_blake3 {
        return Err(NodeError::io(&stp, "these weights do not belong to the checkpoint's state file (digest differs)"));
    }
    if st.model.architecture != net.cfg.architecture {
        return Err(NodeError::param("resume_from", "the checkpoint is of a different network architecture"));
    }
    let t = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| NodeError::io(&stp, format!("corrupt checkpoint weights: {e}")))?;
    net.load_tensors(&t, "")?;
    opt.load_state(&t, st.optimizer_step, st.lr).map_err(|e| NodeError::io(&stp, e))?;
    net.cfg.history = st.model.history.clone();
    Ok(st)
}

/// The history as a table: epoch, train_loss, val_loss, val_iou, val_dice, lr, seconds.
pub fn history_table(h: &[EpochRecord]) -> Result<Table, NodeError> {
    let f = |g: &dyn Fn(&EpochRecord) -> f64| -> Vec<f64> { h.iter().map(g).collect() };
    let mut t = Table::new();
    for (name, v) in [
        ("epoch", f(&|r| r.epoch as f64)),
        ("train_loss", f(&|r| r.train_loss)),
        ("val_loss", f(&|r| r.val_loss.unwrap_or(f64::NAN))),
        ("val_iou", f(&|r| r.val_iou.unwrap_or(f64::NAN))),
        ("val_dice", f(&|r| r.val_dice.unwrap_or(f64::NAN))),
        ("lr", f(&|r| r.lr)),
        ("seconds", f(&|r| r.seconds)),
    ] {
        t.push(name, ColumnData::F64(v)).map_err(NodeError::failed)?;
    }
    Ok(t)
}

pub struct Train;

impl Node for Train {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("learn.train", 1, "learn", "Trains a network on labelled images; saves a checkpoint every epoch.")
            .input("model", PortType::Model, "Network to train (from a model.* node or io.load_model).")
            .input("dataset", PortType::Dataset, "Training data (learn.dataset, optionally through learn.augment).")
            .output("model", PortType::Model, "The trained network.")
            .output("history", PortType::Table, "One row per epoch: epoch, train_loss, val_loss, val_iou, val_dice, lr, seconds.")
            .param(ParamSpec::int("epochs", 50, "Passes over the training data.").range(1.0, 100000.0))
            .param(ParamSpec::int("batch_size", 4, "Patches per training step.").range(1.0, 1024.0))
            .param(ParamSpec::choice(
                "loss",
                &["cross_entropy", "weighted_cross_entropy", "dice", "cross_entropy_dice", "focal"],
                "cross_entropy",
                "What training minimises. weighted_cross_entropy uses class weights and the U-Net border weights; focal concentrates on hard pixels.",
            ))
            .param(ParamSpec::float("focal_gamma", 2.0, "Focusing strength of the focal loss.").min(0.0))
            .param(ParamSpec::string(
                "class_weights",
                "none",
                "Class weights for the weighted losses: none, balanced (inverse frequency) or numbers separated by commas, one per class.",
            ))
            .param(ParamSpec::float("border_w0", 0.0, "Extra weight on background between nearby cells (U-Net paper: 10; 0 = off).").min(0.0))
            .param(ParamSpec::float("border_sigma", 5.0, "Width of that border weighting, in pixels (U-Net paper: 5).").greater_than(0.0))
            .param(ParamSpec::choice("optimizer", &["adam", "adamw", "sgd"], "adam", "The update rule."))
            .param(ParamSpec::float("learning_rate", 1e-3, "Step size of the optimiser.").greater_than(0.0))
            .param(ParamSpec::float("weight_decay", 0.0, "Weight decay (regularisation).").min(0.0))
            .param(ParamSpec::float("momentum", 0.9, "Momentum of SGD.").range(0.0, 0.999))
            .param(ParamSpec::choice(
                "schedule",
                &["constant", "step", "cosine"],
                "constant",
                "Learning-rate schedule: constant, step (halve every few epochs) or cosine decay.",
            ))
            .param(ParamSpec::int("schedule_every", 10, "Epochs between halvings for the step schedule.").range(1.0, 100000.0))
            .param(ParamSpec::int("early_stopping", 0, "Stop after this many epochs without a better validation loss (0 = never).").min(0.0))
            .param(ParamSpec::bool("keep_best", true, "Return the weights of the epoch with the best validation loss."))
            .param(ParamSpec::int("seed", 0, "Random seed: the same seed gives the same training on the CPU.").min(0.0))
            .param(ParamSpec::output_path(
                "checkpoint_dir",
                "checkpoints",
                &[],
                "Folder for the checkpoints (last, best and every epoch; safetensors + RON).",
            ))
            .param(
                ParamSpec::input_path("resume_from", "", &["ron", "safetensors"], "Checkpoint to continue from (its .ron or .safetensors file).")
                    .default_null(),
            )
            .param(ParamSpec::string("device", "", "Run on this device instead of the run's (cpu, cuda, cuda:N); empty = the run's."))
            .cache(CachePolicy::Disk)
    }

    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let dev = node_device(ctx, p)?;
        let Some(Value::Model(m)) = inputs.get("model") else {
            return Err(NodeError::input("model", "not connected"));
        };
        let mut net = net_input(m, &dev, "model")?;
        let (ds, spec) = dataset_input(inputs, "dataset")?;
        let o = options(p)?;
        let ckpt = if p.is_null("checkpoint_dir") || p.str("checkpoint_dir")?.is_empty() {
            None
        } else {
            Some(p.path("checkpoint_dir")?)
        };
        let resume = if p.is_null("resume_from") { None } else { Some(p.path("resume_from")?) };
        let hist = train(&mut net, &ds, &spec, &o, ckpt.as_deref(), resume.as_deref(), ctx)?;
        Ok(Outputs::new()
            .with("model", Value::Model(Arc::new(net.to_model()?)))
            .with("history", Value::Table(Arc::new(history_table(&hist)?))))
    }
}

/// The device for a node: its own `device` parameter if set, else the run's.
pub fn node_device(ctx: &NodeCtx, p: &Params) -> Result<Device, NodeError> {
    let d = match p.str("device") {
        Ok(s) if !s.trim().is_empty() => s.parse::<petri_api::Device>().map_err(|e| NodeError::param("device", e))?,
        _ => ctx.device,
    };
    candle_device(d)
}

pub fn options(p: &Params) -> Result<TrainOptions, NodeError> {
    let loss = match p.str("loss")? {
        "weighted_cross_entropy" => LossKind::WeightedCrossEntropy,
        "dice" => LossKind::Dice,
        "cross_entropy_dice" => LossKind::CrossEntropyDice,
        "focal" => LossKind::Focal { gamma: p.f64("focal_gamma")? },
        _ => LossKind::CrossEntropy,
    };
    let cw = p.str("class_weights")?.trim().to_ascii_lowercase();
    let class_weights = match cw.as_str() {
        "" | "none" => ClassWeights::None,
        "balanced" | "auto" => ClassWeights::Balanced,
        s => ClassWeights::Given(
            s.split(',')
                .map(|t| t.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    NodeError::param("class_weights", format!("expected none, balanced or numbers, got {s:?}"))
                })?,
        ),
    };
    let kind = match p.str("optimizer")? {
        "adamw" => OptimizerKind::AdamW,
        "sgd" => OptimizerKind::Sgd,
        _ => OptimizerKind::Adam,
    };
    let schedule = match p.str("schedule")? {
        "step" => Schedule::Step { every: p.usize("schedule_every")?, factor: 0.5 },
        "cosine" => Schedule::Cosine { min_lr: p.f64("learning_rate")? * 0.01 },
        _ => Schedule::Constant,
    };
    Ok(TrainOptions {
        epochs: p.usize("epochs")?,
        batch_size: p.usize("batch_size")?,
        loss,
        class_weights,
        border_w0: p.f64("border_w0")?,
        border_sigma: p.f64("border_sigma")?,
        optimizer: OptimizerConfig {
            kind,
            lr: p.f64("learning_rate")?,
            weight_decay: p.f64("weight_decay")?,
            momentum: p.f64("momentum")?,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        schedule,
        early_stopping: p.usize("early_stopping")?,
        keep_best: p.bool("keep_best")?,
        seed: p.i64("seed")? as u64,
    })
}
