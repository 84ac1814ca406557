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
        let cnt = (x.elem_count() / x.dim(1)?) as f64;
        let corr = if cnt > 1.0 { cnt / (cnt - 1.0) } else { 1.0 };
        let rm = self.running_mean.as_tensor().to_vec1::<f32>()?;
        let rv = self.running_var.as_tensor().to_vec1::<f32>()?;
        let nm: Vec<f32> =
            rm.iter().zip(&stats).map(|(&r, s)| ((1.0 - BN_MOMENTUM) * r as f64 + BN_MOMENTUM * s.0) as f32).collect();
        let nv: Vec<f32> = rv
            .iter()
            .zip(&stats)
            .map(|(&r, s)| ((1.0 - BN_MOMENTUM) * r as f64 + BN_MOMENTUM * s.1 * corr) as f32)
            .collect();
        let dev = x.device();
        self.running_mean.set(&Tensor::from_vec(nm, rm.len(), dev)?)?;
        self.running_var.set(&Tensor::from_vec(nv, rv.len(), dev)?)?;
        Ok(y)
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
