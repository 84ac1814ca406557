//! Layers in candle's shape (`new(.., vb)` + `forward_t`), built on the ops in [`crate::ops`].

use std::sync::Mutex;

use candle_core::{DType, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ops;

/// A convolution (stride 1) with optional bias. Weight (Cout, Cin, k...) as in PyTorch.
#[derive(Clone, Debug)]
pub struct Conv {
    w: Tensor,
    b: Option<Tensor>,
    pad: [usize; 3],
}

impl Conv {
    /// `k` = (kd, kh, kw); `three_d` false makes a 2-D layer (kd ignored).
    pub fn new(
        cin: usize,
        cout: usize,
        k: [usize; 3],
        pad: [usize; 3],
        bias: bool,
        three_d: bool,
        vb: VarBuilder,
    ) -> Result<Conv> {
        let w = if three_d {
            vb.get_with_hints((cout, cin, k[0], k[1], k[2]), "weight", Init::Const(0.0))?
        } else {
            vb.get_with_hints((cout, cin, k[1], k[2]), "weight", Init::Const(0.0))?
        };
        let b = if bias { Some(vb.get_with_hints(cout, "bias", Init::Const(0.0))?) } else { None };
        Ok(Conv { w, b, pad })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = ops::conv::conv(x, &self.w, self.pad)?;
        match &self.b {
            None => Ok(y),
            Some(b) => {
                let mut s = vec![1; y.rank()];
                s[1] = b.dim(0)?;
                y.broadcast_add(&b.reshape(s)?)
            }
        }
    }
}

impl Conv {
    /// Evaluation mode `bn(conv(x))` with the batch norm (+ ReLU) folded into the convolution's
    /// output tiles: same arithmetic as the separate ops, one pass less. `None` off the CPU or
    /// with a bias (the caller then runs the separate ops).
    pub fn forward_bn_eval(&self, x: &Tensor, bn: &BnRelu) -> Result<Option<Tensor>> {
        if self.b.is_some() {
            return Ok(None);
        }
        let (scale, shift) = bn.eval_affine()?;
        ops::conv::conv_affine_eval(x, &self.w, self.pad, ops::conv::Epilogue { scale, shift, relu: true })
    }

    /// Training mode `bn(conv(x))` (+ ReLU) as one fused node, updating `bn`'s running
    /// statistics; bit-for-bit the separate ops. `None` off the CPU or with a bias.
    pub fn forward_bn_train(&self, x: &Tensor, bn: &BnRelu) -> Result<Option<Tensor>> {
        if self.b.is_some() {
            return Ok(None);
        }
        let Some((y, stats)) = ops::fused::conv_bn_relu_train(x, &self.w, self.pad, &bn.gamma, &bn.beta)? else {
            return Ok(None);
        };
        // The batch statistics are those of the convolution's output (same element count as y).
        bn.update_running(&y, &stats)?;
        Ok(Some(y))
    }
}

/// Batch normalisation + ReLU with running statistics (momentum 0.1, unbiased running
/// variance, as PyTorch).
#[derive(Clone, Debug)]
pub struct BnRelu {
    gamma: Tensor,
    beta: Tensor,
    running_mean: Var,
    running_var: Var,
}

pub const BN_MOMENTUM: f64 = 0.1;

impl BnRelu {
    pub fn new(c: usize, vb: VarBuilder) -> Result<BnRelu> {
        let gamma = vb.get_with_hints(c, "weight", Init::Const(1.0))?;
        let beta = vb.get_with_hints(c, "bias", Init::Const(0.0))?;
        let rm = vb.get_with_hints(c, "running_mean", Init::Const(0.0))?;
        let rv = vb.get_with_hints(c, "running_var", Init::Const(1.0))?;
        Ok(BnRelu { gamma, beta, running_mean: Var::from_tensor(&rm)?, running_var: Var::from_tensor(&rv)? })
    }

    /// Evaluation mode as a per-channel affine map `x·scale + shift` (computed exactly as the
    /// evaluation op does: f64, rounded to f32 once).
    pub fn eval_affine(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        let g = self.gamma.to_vec1::<f32>()?;
        let b = self.beta.to_vec1::<f32>()?;
        let m = self.running_mean.as_tensor().to_vec1::<f32>()?;
        let v = self.running_var.as_tensor().to_vec1::<f32>()?;
        let mut sc = Vec::with_capacity(g.len());
        let mut sh = Vec::with_capacity(g.len());
        for i in 0..g.len() {
            let scale = g[i] as f64 / (v[i] as f64 + ops::norm::EPS).sqrt();
            sc.push(scale as f32);
            sh.push((b[i] as f64 - m[i] as f64 * scale) as f32);
        }
        Ok((sc, sh))
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            return ops::norm::batch_norm_eval(
                x,
                &self.gamma,
                &self.beta,
                self.running_mean.as_tensor(),
                self.running_var.as_tensor(),
                true,
            );
        }
        let (y, stats) = ops::norm::batch_norm_train(x, &self.gamma, &self.beta, true)?;
        self.update_running(x, &stats)?;
        Ok(y)
    }

    /// Running averages updated with a batch's (mean, biased variance) of `x`'s channels.
    fn update_running(&self, x: &Tensor, stats: &[(f64, f64)]) -> Result<()> {
        let cnt = (x.elem_count() / x.dim(1)?) as f64;
        let corr = if cnt > 1.0 { cnt / (cnt - 1.0) } else { 1.0 };
        let rm = self.running_mean.as_tensor().to_vec1::<f32>()?;
        let rv = self.running_var.as_tensor().to_vec1::<f32>()?;
        let nm: Vec<f32> =
            rm.iter().zip(stats).map(|(&r, s)| ((1.0 - BN_MOMENTUM) * r as f64 + BN_MOMENTUM * s.0) as f32).collect();
        let nv: Vec<f32> = rv
            .iter()
            .zip(stats)
            .map(|(&r, s)| ((1.0 - BN_MOMENTUM) * r as f64 + BN_MOMENTUM * s.1 * corr) as f32)
            .collect();
        let dev = x.device();
        self.running_mean.set(&Tensor::from_vec(nm, rm.len(), dev)?)?;
        self.running_var.set(&Tensor::from_vec(nv, rv.len(), dev)?)?;
        Ok(())
    }
}

/// Dropout with its own seeded generator (candle's CPU dropout cannot be seeded, and training
/// must be reproducible bit for bit).
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    rng: Mutex<ChaCha8Rng>,
}

impl Dropout {
    pub fn new(p: f64) -> Dropout {
        Dropout { p, rng: Mutex::new(ChaCha8Rng::seed_from_u64(0)) }
    }

    /// Restarts the mask sequence (called by the trainer before every step).
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = ChaCha8Rng::seed_from_u64(seed);
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.p;
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mask: Vec<f32> =
            (0..x.elem_count()).map(|_| if rng.random::<f64>() < keep { (1.0 / keep) as f32 } else { 0.0 }).collect();
        x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
    }
}

/// Deterministic initialisation of every variable of `vm` from `seed`: convolution kernels
/// (rank ≥ 3, named `*weight`) He-uniform, U(±√(6/fan_in)) with fan_in = Cin·k...; other
/// variables keep their constant initial values (biases 0, batch-norm γ 1, β 0, statistics).
/// candle's own random initialisation uses an unseedable generator on the CPU.
pub fn init_weights(vm: &VarMap, seed: u64) -> Result<()> {
    let data = vm.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        if dims.len() < 3 || !name.ends_with("weight") {
            continue;
        }
        // Each variable gets its own stream, so adding a layer does not change the others.
        let h = blake3::hash(name.as_bytes());
        let sub = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ sub);
        // Transposed convolutions store (Cin, Cout, k...): their fan-in is Cin·k too, i.e. dims[0].
        let kvol: usize = dims[2..].iter().product();
        let fan_in = if name.starts_with("upt.") { dims[0] * kvol } else { dims[1] * kvol };
        let bound = (6.0 / fan_in as f64).sqrt();
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32).collect();
        var.set(&Tensor::from_vec(v, dims.as_slice(), var.device())?.to_dtype(DType::F32)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn folded_eval_batch_norm_equals_separate_ops_bit_for_bit() {
        let dev = Device::Cpu;
        for three_d in [false, true] {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
            let k = if three_d { [3, 3, 3] } else { [1, 3, 3] };
            let conv = Conv::new(3, 5, k, [k[0] / 2, 1, 1], false, three_d, vb.pp("c")).unwrap();
            let bn = BnRelu::new(5, vb.pp("bn")).unwrap();
            init_weights(&vm, 4).unwrap();
            let x = if three_d {
                Tensor::arange(0f32, 2.0 * 3.0 * 4.0 * 6.0 * 7.0, &dev).unwrap().reshape((2, 3, 4, 6, 7)).unwrap()
            } else {
                Tensor::arange(0f32, 2.0 * 3.0 * 6.0 * 7.0, &dev).unwrap().reshape((2, 3, 6, 7)).unwrap()
            };
            let x = (x * 0.37).unwrap().sin().unwrap();
            // Non-trivial running statistics (two training passes).
            bn.forward_t(&conv.forward(&x).unwrap(), true).unwrap();
            bn.forward_t(&conv.forward(&(&x * 1.5).unwrap()).unwrap(), true).unwrap();
            let a = bn.forward_t(&conv.forward(&x).unwrap(), false).unwrap();
            let b = conv.forward_bn_eval(&x, &bn).unwrap().unwrap();
            let (a, b) = (
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "three_d {three_d}");
            assert!(a.iter().any(|&v| v > 0.0) && a.contains(&0.0));
        }
    }

    #[test]
    fn fused_training_conv_bn_relu_equals_separate_ops_bit_for_bit() {
        let dev = Device::Cpu;
        for three_d in [false, true] {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
            let k = if three_d { [3, 3, 3] } else { [1, 3, 3] };
            let c1 = Conv::new(3, 4, k, [k[0] / 2, 1, 1], false, three_d, vb.pp("c1")).unwrap();
            let b1 = BnRelu::new(4, vb.pp("b1")).unwrap();
            let c2 = Conv::new(4, 5, k, [k[0] / 2, 1, 1], false, three_d, vb.pp("c2")).unwrap();
            let b2 = BnRelu::new(5, vb.pp("b2")).unwrap();
            init_weights(&vm, 9).unwrap();
            let shape: Vec<usize> = if three_d { vec![2, 3, 4, 6, 7] } else { vec![2, 3, 6, 7] };
            let n: usize = shape.iter().product();
            let x =
                candle_core::Var::from_vec((0..n).map(|i| (i as f32 * 0.37).sin()).collect(), shape.as_slice(), &dev)
                    .unwrap();
            let r = |t: &Tensor| Tensor::arange(0f32, t.elem_count() as f32, &dev).unwrap().reshape(t.shape()).unwrap();
            let sep = {
                let h = b1.forward_t(&c1.forward(&x).unwrap(), true).unwrap();
                b2.forward_t(&c2.forward(&h).unwrap(), true).unwrap()
            };
            let stats_sep = (b2.running_mean.to_vec1::<f32>().unwrap(), b2.running_var.to_vec1::<f32>().unwrap());
            let fused = {
                let h = c1.forward_bn_train(&x, &b1).unwrap().unwrap();
                c2.forward_bn_train(&h, &b2).unwrap().unwrap()
            };
            let g1 = (&sep * r(&sep).cos().unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&fused * r(&fused).cos().unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
            let bits = |t: &Tensor| {
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(bits(&sep), bits(&fused));
            for (name, var) in vm.data().lock().unwrap().iter() {
                if name.contains("running") {
                    continue;
                }
                assert_eq!(bits(g1.get(var).unwrap()), bits(g2.get(var).unwrap()), "{name} three_d {three_d}");
            }
            assert_eq!(bits(g1.get(&x).unwrap()), bits(g2.get(&x).unwrap()));
            // Both passes saw the same batch statistics s: running mean 0.1·s, then 0.9·0.1·s + 0.1·s.
            let rm = b2.running_mean.to_vec1::<f32>().unwrap();
            for (a, b) in rm.iter().zip(&stats_sep.0) {
                assert!((a - 1.9 * b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs 1.9 × {b}");
            }
            assert!(stats_sep.1.iter().all(|v| v.is_finite() && *v != 1.0));
        }
    }
}
