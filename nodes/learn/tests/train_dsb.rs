//! Short CPU training on DSB2018 nuclei (assets/samples/nuclei2d*.tif, CC0): loss decreases,
//! the prediction on the held-out right half beats a floor, a resumed run equals an
//! uninterrupted one bit for bit, models survive save/load and corrupt files are refused.
//! The full-size accuracy run is `examples/dsb2018.rs` (numbers in docs/learn.md).
use petri_api::{NodeCtx, Stack};
use petri_learn::dataset::{ClassMode, DatasetOptions, DatasetSpec, Split, build_dataset};
use petri_learn::loss::LossKind;
use petri_learn::model::{ModelConfig, Net, Normalisation};
use petri_learn::optim::{OptimizerConfig, OptimizerKind, Schedule};
use petri_learn::predict::{PredictOptions, predict};
use petri_learn::train::{ClassWeights, TrainOptions, train};
use petri_learn::unet::{Decoder, Dims, Padding, UNetConfig};

fn half(s: &Stack, right: bool) -> Stack {
    let (h, w) = (s.y(), s.x());
    let px = s.buffer().to_f32();
    let v: Vec<f32> = (0..h)
        .flat_map(|y| (0..w / 2).map(move |x| (y, x)))
        .map(|(y, x)| px[y * w + x + if right { w / 2 } else { 0 }])
        .collect();
    Stack::from_2d(h, w / 2, v).unwrap()
}

fn labels_half(s: &Stack, right: bool) -> Stack {
    let h = half(s, right);
    Stack::from_2d(h.y(), h.x(), h.buffer().to_f32().iter().map(|&v| v as u32).collect::<Vec<u32>>()).unwrap()
}

fn data() -> (Stack, Stack, Stack, Stack) {
    let img = petri_testkit::read_stack::<f32>(&petri_testkit::sample("nuclei2d.tif"));
    let lab = petri_testkit::read_stack::<u32>(&petri_testkit::sample("nuclei2d_labels.tif"));
    (half(&img, false), labels_half(&lab, false), half(&img, true), labels_half(&lab, true))
}

fn tiny(classes: usize) -> UNetConfig {
    UNetConfig {
        dims: Dims::Two,
        in_channels: 1,
        classes,
        depth: 3,
        base_filters: 8,
        batch_norm: true,
        dropout: 0.1,
        padding: Padding::Same,
        decoder: Decoder::TransposedConv,
    }
}

fn opts(epochs: usize) -> TrainOptions {
    TrainOptions {
        epochs,
        batch_size: 4,
        loss: LossKind::CrossEntropy,
        class_weights: ClassWeights::None,
        border_w0: 0.0,
        border_sigma: 5.0,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 3e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        schedule: Schedule::Constant,
        early_stopping: 0,
        keep_best: false,
        seed: 7,
    }
}

fn dataset(mode: ClassMode, patches: usize) -> petri_api::Dataset {
    let (im, lb, _, _) = data();
    build_dataset(
        &[im],
        &[lb],
        &DatasetOptions {
            mode,
            classes: 0,
            border: 1,
            patch: [1, 64, 64],
            foreground_oversample: 0.5,
            patches_per_epoch: patches,
            split: Split::Chop(2, 0.25),
            seed: 1,
            normalisation: Normalisation::Percentile { low: 1.0, high: 99.8 },
        },
    )
    .unwrap()
}

fn fg_iou(pred: &[u32], truth: &[u32]) -> f64 {
    let (mut i, mut u) = (0, 0);
    for (&p, &t) in pred.iter().zip(truth) {
        let (p, t) = (p != 0, t != 0);
        i += (p && t) as usize;
        u += (p || t) as usize;
    }
    i as f64 / u as f64
}

#[test]
fn short_training_learns_nuclei() {
    let ds = dataset(ClassMode::Foreground, 32);
    let spec = DatasetSpec::from_ron(&ds.spec).unwrap();
    let mut net = Net::init(ModelConfig::new(tiny(2), 3), &candle_core::Device::Cpu).unwrap();
    let hist = train(&mut net, &ds, &spec, &opts(6), None, None, &NodeCtx::detached()).unwrap();
    assert_eq!(hist.len(), 6);
    assert!(hist[5].train_loss < 0.7 * hist[0].train_loss, "{hist:?}");
    assert!(hist[5].val_iou.unwrap() > 0.5, "{hist:?}");
    // Through the model value (safetensors + RON) and tiled prediction with TTA.
    let m = net.to_model().unwrap();
    let net2 = Net::from_model(&m, &candle_core::Device::Cpu).unwrap();
    let (_, _, rim, rlb) = data();
    let o = PredictOptions { tile: Some([1, 64, 64]), overlap: 0.25, tta: true, batch: 4 };
    let (probs, labels) = predict(&net2, &rim, &o, &candle_core::Device::Cpu, &NodeCtx::detached()).unwrap();
    assert_eq!(probs.c(), 2);
    let pl = labels.pixels::<u32>().unwrap();
    let iou = fg_iou(pl, rlb.pixels::<u32>().unwrap());
    eprintln!("held-out foreground IoU after 6 short epochs: {iou:.3}; history {hist:?}");
    assert!(iou > 0.6, "IoU {iou}");
    // Probabilities sum to 1.
    let p = probs.pixels::<f32>().unwrap();
    let n = rim.volume_len();
    assert!((0..n).step_by(97).all(|i| (p[i] + p[n + i] - 1.0).abs() < 1e-4));
}

#[test]
fn resumed_run_equals_uninterrupted_bit_for_bit() {
    let ds = dataset(ClassMode::InstanceBorders, 8);
    let spec = DatasetSpec::from_ron(&ds.spec).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(2);
    o.loss = LossKind::WeightedCrossEntropy;
    o.border_w0 = 10.0;
    o.class_weights = ClassWeights::Balanced;
    let mut cfg = tiny(3);
    cfg.base_filters = 4;
    let mut a = Net::init(ModelConfig::new(cfg.clone(), 5), &candle_core::Device::Cpu).unwrap();
    train(&mut a, &ds, &spec, &o, Some(dir.path()), None, &NodeCtx::detached()).unwrap();
    let mut b = Net::init(ModelConfig::new(cfg, 5), &candle_core::Device::Cpu).unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    train(&mut b, &ds, &spec, &o, Some(dir_b.path()), Some(&dir.path().join("epoch-0001.ron")), &NodeCtx::detached())
        .unwrap();
    let (ta, tb) = (a.tensors("").unwrap(), b.tensors("").unwrap());
    assert_eq!(ta.len(), tb.len());
    for (k, v) in &ta {
        let x = v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let y = tb[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()), "{k} differs");
    }
    assert_eq!(a.cfg.history.len(), 2);
    assert_eq!(b.cfg.history.len(), 2);
    assert_eq!(a.cfg.history[1].train_loss, b.cfg.history[1].train_loss);
    assert!(dir.path().join("best.safetensors").exists() && dir.path().join("last.ron").exists());
}

#[test]
fn model_files_round_trip_and_corruption_is_reported() {
    let net = Net::init(ModelConfig::new(tiny(2), 1), &candle_core::Device::Cpu).unwrap();
    let m = net.to_model().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    petri_learn::model_io::save_model(&m, &p).unwrap();
    let back = petri_learn::model_io::load_model(&p).unwrap();
    assert_eq!(*back.weights, *m.weights);
    assert_eq!(back.config, m.config);
    // Truncated weights.
    std::fs::write(&p, &m.weights[..m.weights.len() / 2]).unwrap();
    let e = petri_learn::model_io::load_model(&p).unwrap_err().to_string();
    assert!(e.contains("safetensors"), "{e}");
    // Weights of another architecture.
    let other =
        Net::init(ModelConfig::new(UNetConfig { base_filters: 4, ..tiny(2) }, 1), &candle_core::Device::Cpu).unwrap();
    std::fs::write(&p, &*other.to_model().unwrap().weights).unwrap();
    let e = petri_learn::model_io::load_model(&p).unwrap_err().to_string();
    assert!(e.contains("shape"), "{e}");
    // A config that is not RON.
    std::fs::write(dir.path().join("m.ron"), "hello").unwrap();
    let e = petri_learn::model_io::load_model(&p).unwrap_err().to_string();
    assert!(e.contains("configuration"), "{e}");
}

/// Foreground/background 8×16×16 patches of the synthetic 3-D nuclei, as both 3-D tests use them.
fn synthetic_3d_options(patches: usize, split: Split, seed: u64) -> DatasetOptions {
    DatasetOptions {
        mode: ClassMode::Foreground,
        classes: 0,
        border: 1,
        patch: [8, 16, 16],
        foreground_oversample: 0.5,
        patches_per_epoch: patches,
        split,
        seed,
        normalisation: Normalisation::Percentile { low: 1.0, high: 99.8 },
    }
}

#[test]
fn short_3d_training_runs_for_both_3d_networks() {
    let img = petri_testkit::read_stack::<f32>(&petri_testkit::sample("nuclei3d_synthetic.tif"));
    let lab = petri_testkit::read_stack::<u32>(&petri_testkit::sample("nuclei3d_synthetic_labels.tif"));
    assert!(img.z() > 1);
    let ds = build_dataset(&[img.clone()], &[lab.clone()], &synthetic_3d_options(8, Split::Chop(2, 0.25), 2)).unwrap();
    let spec = DatasetSpec::from_ron(&ds.spec).unwrap();
    assert!(spec.three_d);
    for dims in [Dims::Three, Dims::Anisotropic] {
        let cfg = UNetConfig { dims, depth: 2, base_filters: 4, ..tiny(2) };
        let mut net = Net::init(ModelConfig::new(cfg, 1), &candle_core::Device::Cpu).unwrap();
        let mut o = opts(4);
        o.batch_size = 2;
        let hist = train(&mut net, &ds, &spec, &o, None, None, &NodeCtx::detached()).unwrap();
        assert!(hist[3].train_loss < hist[0].train_loss, "{dims:?}: {hist:?}");
        let po = PredictOptions { tile: Some([8, 32, 32]), overlap: 0.25, tta: false, batch: 2 };
        let (p, l) = predict(&net, &img, &po, &candle_core::Device::Cpu, &NodeCtx::detached()).unwrap();
        assert_eq!([p.c(), p.z(), p.y(), p.x()], [2, img.z(), img.y(), img.x()]);
        let iou = fg_iou(l.pixels::<u32>().unwrap(), lab.pixels::<u32>().unwrap());
        eprintln!("{dims:?}: 4 tiny epochs, whole-volume foreground IoU {iou:.3}");
        assert!(iou > 0.3, "{dims:?}: IoU {iou}");
    }
}

/// The block x ∈ [x0, x1) of a 3-D stack.
fn xblock<P: petri_api::Pixel + Copy>(s: &Stack, x0: usize, x1: usize) -> Vec<P> {
    let px = s.pixels::<P>().unwrap();
    let w = s.x();
    (0..s.z() * s.y()).flat_map(|r| px[r * w + x0..r * w + x1].iter().copied()).collect()
}

#[test]
fn held_out_3d_block_beats_a_floor() {
    // CI version of `examples/accuracy.rs nuclei3d`: train on x < 38, predict the held-out x ≥ 38.
    let img = petri_testkit::read_stack::<f32>(&petri_testkit::sample("nuclei3d_synthetic.tif"));
    let lab = petri_testkit::read_stack::<u32>(&petri_testkit::sample("nuclei3d_synthetic_labels.tif"));
    let (d, h, w) = (img.z(), img.y(), img.x());
    let cut = 38;
    let ti = Stack::from_3d(d, h, cut, xblock::<f32>(&img, 0, cut)).unwrap();
    let tl = Stack::from_3d(d, h, cut, xblock::<u32>(&lab, 0, cut)).unwrap();
    let pi = Stack::from_3d(d, h, w - cut, xblock::<f32>(&img, cut, w)).unwrap();
    let truth = xblock::<u32>(&lab, cut, w);
    let ds = build_dataset(&[ti], &[tl], &synthetic_3d_options(16, Split::Fraction(0.0), 3)).unwrap();
    let spec = DatasetSpec::from_ron(&ds.spec).unwrap();
    let cfg = UNetConfig { dims: Dims::Three, depth: 2, base_filters: 8, dropout: 0.0, ..tiny(2) };
    let mut net = Net::init(ModelConfig::new(cfg, 2), &candle_core::Device::Cpu).unwrap();
    let mut o = opts(6);
    o.loss = LossKind::CrossEntropyDice;
    let hist = train(&mut net, &ds, &spec, &o, None, None, &NodeCtx::detached()).unwrap();
    let po = PredictOptions { tile: Some([16, 32, 16]), overlap: 0.25, tta: false, batch: 2 };
    let (_, l) = predict(&net, &pi, &po, &candle_core::Device::Cpu, &NodeCtx::detached()).unwrap();
    let iou = fg_iou(l.pixels::<u32>().unwrap(), &truth);
    eprintln!("3-D held-out block after 6 short epochs: foreground IoU {iou:.3}; {hist:?}");
    assert!(iou > FLOOR_3D, "held-out IoU {iou}");
}

/// Floor of [`held_out_3d_block_beats_a_floor`] (it measured 0.679; the full run reaches 0.82, the best global
/// threshold of the smoothed image 0.65).
const FLOOR_3D: f64 = 0.6;
