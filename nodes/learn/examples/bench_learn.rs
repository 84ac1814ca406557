//! Benchmarks for docs/benchmarks/learn.md, run side by side with ../shared/peers/torch_unet.py:
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p petri-learn --example bench_learn -- all
//! ```
//! `conv`: one 3×3 convolution layer, forward + backward, ours vs candle's built-in conv2d;
//! `step`: training step of the peer U-Net (4 levels, base 32, BN, 1.93 M parameters) on
//! 4×1×256×256 with cross-entropy and Adam; `infer`: inference megapixels/s;
//! `conv3d`: 3-D convolution GFLOP/s (ours vs the conv2d composition).
use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use petri_learn::loss::{LossKind, loss, one_hot};
use petri_learn::nn::init_weights;
use petri_learn::ops::conv::{conv, conv_composed};
use petri_learn::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use petri_learn::unet::{Decoder, Dims, Padding, UNet, UNetConfig};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn time<F: FnMut()>(warm: usize, n: usize, mut f: F) -> f64 {
    for _ in 0..warm {
        f();
    }
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Forward 3×3 convolution, Winograd F(4×4, 3×3) against im2col + gemm, on the U-Net's layers.
fn bench_wino() {
    use petri_learn::ops::conv::{Geo, conv_forward_im2col};
    use petri_learn::ops::winograd;
    println!("## forward 3x3 pad 1: im2col + gemm vs Winograd F(4x4,3x3), median of 5");
    for (n, cin, cout, hw) in
        [(4usize, 32usize, 32usize, 256usize), (4, 64, 64, 128), (4, 128, 128, 64), (4, 256, 256, 32), (4, 96, 32, 256)]
    {
        let g = Geo { n, cin, cout, inp: [1, hw, hw], k: [1, 3, 3], pad: [0, 1, 1] };
        let x: Vec<f32> = randn(&[n, cin, hw, hw], 1).flatten_all().unwrap().to_vec1().unwrap();
        let w: Vec<f32> = (randn(&[cout, cin, 3, 3], 2) * 0.05).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let flops = 2.0 * g.macs() as f64;
        let d = time(1, 5, || {
            std::hint::black_box(conv_forward_im2col(&x, &w, &g, None));
        });
        let wi = time(1, 5, || {
            std::hint::black_box(winograd::conv_forward(&x, &w, &g, None));
        });
        petri_learn::ops::take_profile();
        winograd::conv_forward(&x, &w, &g, None);
        for (n, t) in petri_learn::ops::take_profile().iter().filter(|p| p.1 > 0.0) {
            println!("    {n:16} {:.2} ms (thread-summed)", t * 1e3);
        }
        println!(
            "{n}x{cin}x{hw}x{hw} c{cin}->{cout}: im2col {:.1} ms ({:.1} GFLOP/s) | winograd {:.1} ms ({:.1} direct-equivalent GFLOP/s) | {:.2}x",
            d * 1e3,
            flops / d / 1e9,
            wi * 1e3,
            flops / wi / 1e9,
            d / wi
        );
    }
}

fn bench_conv() {
    println!("## conv layer fwd+bwd (3x3, pad 1), median of 5");
    for (n, c, hw) in [(4usize, 32usize, 256usize), (4, 64, 128), (4, 128, 64), (4, 256, 32)] {
        let x = Var::from_tensor(&randn(&[n, c, hw, hw], 1)).unwrap();
        let w = Var::from_tensor(&(randn(&[c, c, 3, 3], 2) * 0.05).unwrap()).unwrap();
        let flops = 2.0 * (n * c * c * 9 * hw * hw) as f64;
        let ours_f = time(1, 5, || {
            conv(&x, &w, [0, 1, 1]).unwrap();
        });
        let ours_fb = time(1, 5, || {
            conv(&x, &w, [0, 1, 1]).unwrap().sum_all().unwrap().backward().unwrap();
        });
        let cand_f = time(1, 3, || {
            x.conv2d(&w, 1, 1, 1, 1).unwrap();
        });
        let cand_fb = time(0, 1, || {
            x.conv2d(&w, 1, 1, 1, 1).unwrap().sum_all().unwrap().backward().unwrap();
        });
        println!(
            "{n}x{c}x{hw}x{hw} c{c}->{c}: ours fwd {:.1} ms ({:.1} GFLOP/s), fwd+bwd {:.1} ms ({:.1} GFLOP/s) | candle fwd {:.1} ms ({:.1} GFLOP/s), fwd+bwd {:.1} ms ({:.1} GFLOP/s)",
            ours_f * 1e3,
            flops / ours_f / 1e9,
            ours_fb * 1e3,
            3.0 * flops / ours_fb / 1e9,
            cand_f * 1e3,
            flops / cand_f / 1e9,
            cand_fb * 1e3,
            3.0 * flops / cand_fb / 1e9
        );
    }
}

fn peer() -> UNetConfig {
    UNetConfig {
        dims: Dims::Two,
        in_channels: 1,
        classes: 2,
        depth: 4,
        base_filters: 32,
        batch_norm: true,
        dropout: 0.0,
        padding: Padding::Same,
        decoder: Decoder::TransposedConv,
    }
}

fn build(cfg: &UNetConfig) -> (VarMap, UNet) {
    let vm = VarMap::new();
    let net = UNet::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    init_weights(&vm, 0).unwrap();
    (vm, net)
}

fn bench_step() {
    let cfg = peer();
    let (vm, net) = build(&cfg);
    let vars: BTreeMap<String, Var> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.contains("running"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut opt = Optimizer::new(
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        vars,
    );
    let x = randn(&[4, 1, 256, 256], 3);
    let t: Vec<u32> = (0..4 * 256 * 256).map(|i| ((i * 7) % 3 == 0) as u32).collect();
    let (oh, valid) = one_hot(&t, 4, 2, &[256, 256], &Device::Cpu).unwrap();
    let mut prof = std::env::var("PETRI_PROFILE").is_ok();
    let dt = time(2, 5, || {
        let t0 = Instant::now();
        let logits = net.forward_t(&x, true).unwrap();
        let l = loss(LossKind::CrossEntropy, &logits, &oh, &valid, None).unwrap();
        let t1 = Instant::now();
        let g = l.backward().unwrap();
        let t2 = Instant::now();
        opt.step(&g).unwrap();
        if prof {
            println!(
                "  forward {:.2} s, backward {:.2} s, optimiser {:.3} s",
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                t2.elapsed().as_secs_f64()
            );
            prof = false;
        }
    });
    let prof = petri_learn::ops::take_profile();
    println!("  per step, custom kernels (7 steps averaged):");
    for (n, t) in prof.iter().filter(|p| p.1 > 0.0) {
        println!("    {n:16} {:.3} s", t / 7.0);
    }
    let fl = 3.0 * 4.0 * fwd_flops(&cfg, 256);
    println!(
        "train step 4x1x256x256 (peer U-Net, Adam): median {dt:.3} s, {:.1} GFLOP/s (3x forward conv FLOPs)",
        fl / dt / 1e9
    );
}

/// Forward conv FLOPs per image (as torch_unet.py counts them).
fn fwd_flops(cfg: &UNetConfig, s: usize) -> f64 {
    let mut f = 0.0;
    let ch = |l: usize| (cfg.base_filters << l) as f64;
    let px = |l: usize| ((s >> l) * (s >> l)) as f64;
    let mut cin = cfg.in_channels as f64;
    for l in 0..cfg.depth {
        f += px(l) * ch(l) * 9.0 * (cin + ch(l));
        cin = ch(l);
    }
    for l in 0..cfg.depth - 1 {
        f += px(l + 1) * ch(l + 1) * ch(l) * 4.0; // transposed conv
        f += px(l) * ch(l) * 9.0 * (2.0 * ch(l) + ch(l));
    }
    f += px(0) * ch(0) * cfg.classes as f64;
    2.0 * f
}

fn bench_infer() {
    let cfg = peer();
    let (_vm, net) = build(&cfg);
    let x = randn(&[4, 1, 256, 256], 4);
    petri_learn::ops::take_profile();
    let dt = time(1, 5, || {
        net.forward_t(&x, false).unwrap();
    });
    println!("  per 4x256² inference, custom kernels (6 runs averaged):");
    for (n, t) in petri_learn::ops::take_profile().iter().filter(|p| p.1 > 0.0) {
        println!("    {n:16} {:.3} s", t / 6.0);
    }
    let x5 = randn(&[1, 1, 512, 512], 5);
    let dt5 = time(1, 5, || {
        net.forward_t(&x5, false).unwrap();
    });
    println!(
        "inference 4x1x256x256: {dt:.3} s, {:.2} Mpx/s, {:.1} GFLOP/s; 1x512x512: {dt5:.3} s, {:.2} Mpx/s",
        4.0 * 65536.0 / dt / 1e6,
        4.0 * fwd_flops(&cfg, 256) / dt / 1e9,
        0.262144 / dt5
    );
}

fn bench_conv3d() {
    println!("## 3-D conv 3x3x3 pad 1, fwd and fwd+bwd");
    for (n, c, d, hw) in [(1usize, 16usize, 32usize, 64usize), (1, 32, 16, 64), (2, 8, 32, 128)] {
        let x = Var::from_tensor(&randn(&[n, c, d, hw, hw], 6)).unwrap();
        let w = Var::from_tensor(&(randn(&[c, c, 3, 3, 3], 7) * 0.05).unwrap()).unwrap();
        let flops = 2.0 * (n * c * c * 27 * d * hw * hw) as f64;
        let f = time(1, 5, || {
            conv(&x, &w, [1, 1, 1]).unwrap();
        });
        let fb = time(1, 3, || {
            conv(&x, &w, [1, 1, 1]).unwrap().sum_all().unwrap().backward().unwrap();
        });
        let cf = time(0, 1, || {
            conv_composed(&x, &w, [1, 1, 1]).unwrap();
        });
        println!(
            "{n}x{c}x{d}x{hw}x{hw}: ours fwd {:.1} ms ({:.1} GFLOP/s), fwd+bwd {:.1} ms ({:.1} GFLOP/s) | conv2d composition fwd {:.1} ms ({:.1} GFLOP/s)",
            f * 1e3,
            flops / f / 1e9,
            fb * 1e3,
            3.0 * flops / fb / 1e9,
            cf * 1e3,
            flops / cf / 1e9
        );
    }
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    // As the `petri` binary does (PETRI_NO_TUNE=1 measures glibc's defaults).
    if std::env::var_os("PETRI_NO_TUNE").is_none() {
        petri_api::mem::tune_allocator();
    }
    println!("rayon threads: {}", rayon::current_num_threads());
    if what == "wino" {
        bench_wino();
    }
    if what == "conv" || what == "all" {
        bench_conv();
    }
    if what == "step" || what == "all" {
        bench_step();
    }
    if what == "infer" || what == "all" {
        bench_infer();
    }
    if what == "conv3d" || what == "all" {
        bench_conv3d();
    }
}
