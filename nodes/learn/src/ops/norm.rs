//! Batch normalisation (per channel over N and the spatial axes) fused with an optional ReLU.
//!
//! Hand-written because candle-nn's BatchNorm is ~10 single-threaded element-wise passes (a
//! transpose, a copy, means, broadcasts) plus a separate ReLU, each with its own backward; in a
//! U-Net training step that costs as much as the convolutions. Here forward and backward are one
//! parallel pass each (channels in parallel, sums in f64 in a fixed order: deterministic).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{SendPtr, f32_contiguous};

pub const EPS: f64 = 1e-5;

/// (N, C, spatial volume) of an (N, C, ...) layout.
fn ncv(dims: &[usize]) -> Result<(usize, usize, usize)> {
    if dims.len() < 3 {
        candle_core::bail!("batch norm expects (N, C, spatial...), got {dims:?}");
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

/// Per-channel mean and biased variance, in f64.
pub(crate) fn channel_stats(x: &[f32], n: usize, c: usize, v: usize) -> Vec<(f64, f64)> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut s = 0f64;
            let mut s2 = 0f64;
            for b in 0..n {
                let sl = &x[(b * c + ch) * v..][..v];
                // Chunked partial sums keep f64 accuracy while vectorising the f32 inner loop.
                for chunk in sl.chunks(256) {
                    let (mut a, mut a2) = (0f32, 0f32);
                    for &t in chunk {
                        a += t;
                        a2 += t * t;
                    }
                    s += a as f64;
                    s2 += a2 as f64;
                }
            }
            let cnt = (n * v) as f64;
            let mean = s / cnt;
            (mean, (s2 / cnt - mean * mean).max(0.0))
        })
        .collect()
}

/// `act(γ·(x − μ)/√(σ² + ε) + β)` per channel with the given (μ, σ²), one parallel pass.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bn_apply(
    x: &[f32],
    n: usize,
    c: usize,
    v: usize,
    stats: &[(f64, f64)],
    g: &[f32],
    b: &[f32],
    relu: bool,
) -> Vec<f32> {
    let mut y = petri_api::mem::zeroed_vec::<f32>(x.len());
    let yp = SendPtr(y.as_mut_ptr());
    (0..n * c).into_par_iter().for_each(|i| {
        let ch = i % c;
        let (m, var) = stats[ch];
        let scale = g[ch] as f64 / (var + EPS).sqrt();
        let (sc, sh) = (scale as f32, (b[ch] as f64 - m * scale) as f32);
        let yp = yp;
        // SAFETY: task i alone writes the slice of (batch, channel) i.
        let out = unsafe { std::slice::from_raw_parts_mut(yp.0.add(i * v), v) };
        let src = &x[i * v..][..v];
        if relu {
            out.iter_mut().zip(src).for_each(|(o, &t)| *o = (t * sc + sh).max(0.0));
        } else {
            out.iter_mut().zip(src).for_each(|(o, &t)| *o = t * sc + sh);
        }
    });
    y
}

/// y = act(γ·(x − μ)/√(σ² + ε) + β); μ, σ² from the batch (training) or given (evaluation).
struct BnAct {
    relu: bool,
    /// Evaluation: the running mean and variance to use.
    fixed: Option<(Vec<f32>, Vec<f32>)>,
    /// Training: the batch mean and (biased) variance, for the running averages.
    stats: Arc<Mutex<Vec<(f64, f64)>>>,
}

impl CustomOp3 for BnAct {
    fn name(&self) -> &'static str {
        "petri-batch-norm-act"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let t0 = std::time::Instant::now();
        let (n, c, v) = ncv(l1.dims())?;
        let x = f32_contiguous(s1, l1)?;
        let g = f32_contiguous(s2, l2)?;
        let b = f32_contiguous(s3, l3)?;
        if g.len() != c || b.len() != c {
            candle_core::bail!("batch norm: {c} channels but {} weights and {} biases", g.len(), b.len());
        }
        let stats: Vec<(f64, f64)> = match &self.fixed {
            Some((m, var)) => m.iter().zip(var).map(|(&m, &v)| (m as f64, v as f64)).collect(),
            None => channel_stats(&x, n, c, v),
        };
        let y = bn_apply(&x, n, c, v, &stats, &g, &b, self.relu);
        if self.fixed.is_none() {
            *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        }
        super::prof(3, t0);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.fixed.is_some() {
            candle_core::bail!("batch norm in evaluation mode has no backward pass");
        }
        let t0 = std::time::Instant::now();
        let (n, c, v) = ncv(x.dims())?;
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let gamma = g.to_vec1::<f32>()?;
        // One op over the storages (no copies of x, y, dy): a flat [dx | dγ | dβ].
        let flat = x.apply_op3_no_bwd(res, dy, &BnBwd { relu: self.relu, stats, gamma })?;
        let m = n * c * v;
        let dx = flat.narrow(0, 0, m)?.reshape(x.shape())?;
        let dg = flat.narrow(0, m, c)?;
        let db = flat.narrow(0, m + c, c)?;
        super::prof(4, t0);
        Ok((Some(dx), Some(dg), Some(db)))
    }
}

/// The backward pass of [`BnAct`] on (x, y, dy) → flat `[dx (N·C·V) | dγ (C) | dβ (C)]`.
pub(crate) struct BnBwd {
    pub(crate) relu: bool,
    pub(crate) stats: Vec<(f64, f64)>,
    pub(crate) gamma: Vec<f32>,
}

impl CustomOp3 for BnBwd {
    fn name(&self) -> &'static str {
        "petri-batch-norm-act-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, v) = ncv(l1.dims())?;
        let xs = f32_contiguous(s1, l1)?;
        let ys = f32_contiguous(s2, l2)?;
        let dys = f32_contiguous(s3, l3)?;
        let (stats, gs) = (&self.stats, &self.gamma);
        if stats.len() != c || gs.len() != c {
            candle_core::bail!("batch norm backward: statistics for {} channels, input has {c}", stats.len());
        }
        // Per channel: dz = dy·[y > 0]; dβ = Σ dz; dγ = Σ dz·x̂ = (Σ dz·x − μ·Σ dz)/σ;
        // dx = γ/σ · (dz − dβ/m − x̂·dγ/m) = a·dz + b·x + c. Branch-free f32 inner loops
        // (partial sums per 256 values, accumulated in f64) so they vectorise.
        let relu = self.relu;
        let dz_of = |y: f32, d: f32| if !relu || y > 0.0 { d } else { 0.0 };
        let per: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (m, var) = stats[ch];
                let inv = 1.0 / (var + EPS).sqrt();
                let (mut sdz, mut sdzx) = (0f64, 0f64);
                for bi in 0..n {
                    let o = (bi * c + ch) * v;
                    let (xs, ys, ds) = (&xs[o..o + v], &ys[o..o + v], &dys[o..o + v]);
                    for ((xc, yc), dc) in xs.chunks(256).zip(ys.chunks(256)).zip(ds.chunks(256)) {
                        let (mut a, mut a2) = (0f32, 0f32);
                        for ((&xv, &yv), &dv) in xc.iter().zip(yc).zip(dc) {
                            let dz = dz_of(yv, dv);
                            a += dz;
                            a2 += dz * xv;
                        }
                        sdz += a as f64;
                        sdzx += a2 as f64;
                    }
                }
                (sdz, (sdzx - m * sdz) * inv)
            })
            .collect();
        let total = n * c * v;
        let mut out = petri_api::mem::zeroed_vec::<f32>(total + 2 * c);
        let dxp = SendPtr(out.as_mut_ptr());
        let cnt = (n * v) as f64;
        (0..n * c).into_par_iter().for_each(|i| {
            let ch = i % c;
            let (m, var) = stats[ch];
            let inv = 1.0 / (var + EPS).sqrt();
            let (db, dg) = per[ch];
            let k = gs[ch] as f64 * inv;
            let a = k as f32;
            let b = (-k * inv * dg / cnt) as f32;
            let cc = (-k * db / cnt + k * inv * dg / cnt * m) as f32;
            let dxp = dxp;
            // SAFETY: task i alone writes the slice of (batch, channel) i.
            let o = unsafe { std::slice::from_raw_parts_mut(dxp.0.add(i * v), v) };
            let (xs, ys, ds) = (&xs[i * v..(i + 1) * v], &ys[i * v..(i + 1) * v], &dys[i * v..(i + 1) * v]);
            for (((o, &xv), &yv), &dv) in o.iter_mut().zip(xs).zip(ys).zip(ds) {
                *o = a * dz_of(yv, dv) + b * xv + cc;
            }
        });
        for (ch, p) in per.iter().enumerate() {
            out[total + ch] = p.1 as f32;
            out[total + c + ch] = p.0 as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from(total + 2 * c)))
    }
}

/// Training-mode batch norm (+ ReLU if `relu`): returns the output and the batch's per-channel
/// (mean, biased variance) for the running averages.
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, relu: bool) -> Result<(Tensor, Vec<(f64, f64)>)> {
    if !x.device().is_cpu() {
        return batch_norm_train_composed(x, gamma, beta, relu);
    }
    let stats = Arc::new(Mutex::new(Vec::new()));
    let y = x.apply_op3(gamma, beta, BnAct { relu, fixed: None, stats: stats.clone() })?;
    let s = stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok((y, s))
}

/// Evaluation-mode batch norm (+ ReLU) with the running statistics.
pub fn batch_norm_eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    if !x.device().is_cpu() {
        let shape = bshape(x.rank(), x.dim(1)?);
        let inv = (var.reshape(shape.clone())? + EPS)?.sqrt()?.recip()?;
        let y = x
            .broadcast_sub(&mean.reshape(shape.clone())?)?
            .broadcast_mul(&(inv.broadcast_mul(&gamma.reshape(shape.clone())?))?)?
            .broadcast_add(&beta.reshape(shape)?)?;
        return if relu { y.relu() } else { Ok(y) };
    }
    let fixed = Some((mean.to_vec1::<f32>()?, var.to_vec1::<f32>()?));
    x.apply_op3_no_bwd(gamma, beta, &BnAct { relu, fixed, stats: Arc::new(Mutex::new(Vec::new())) })
}

fn bshape(rank: usize, c: usize) -> Vec<usize> {
    let mut s = vec![1; rank];
    s[1] = c;
    s
}

/// The same from candle ops (non-CPU path; tested on the CPU against the custom op).
pub fn batch_norm_train_composed(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    relu: bool,
) -> Result<(Tensor, Vec<(f64, f64)>)> {
    let c = x.dim(1)?;
    let shape = bshape(x.rank(), c);
    let xt = x.transpose(0, 1)?.flatten_from(1)?.contiguous()?; // (C, N·V)
    let mean = xt.mean_keepdim(1)?;
    let xc = xt.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(1)?;
    let mean_v = mean.flatten_all()?.to_vec1::<f32>()?;
    let var_v = var.flatten_all()?.to_vec1::<f32>()?;
    let inv = (var.reshape(shape.clone())? + EPS)?.sqrt()?.recip()?;
    let y = x
        .broadcast_sub(&mean.reshape(shape.clone())?)?
        .broadcast_mul(&inv)?
        .broadcast_mul(&gamma.reshape(shape.clone())?)?
        .broadcast_add(&beta.reshape(shape)?)?;
    let y = if relu { y.relu()? } else { y };
    Ok((y, mean_v.iter().zip(&var_v).map(|(&m, &v)| (m as f64, v as f64)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_batch_norm_matches_composition() {
        let dev = Device::Cpu;
        let n = 3 * 4 * 5 * 6;
        let x =
            Var::from_vec((0..n).map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.3).collect(), (3, 4, 5, 6), &dev).unwrap();
        let g = Var::from_vec(vec![1.0f32, 0.5, -0.7, 2.0], 4, &dev).unwrap();
        let b = Var::from_vec(vec![0.1f32, -0.2, 0.3, 0.0], 4, &dev).unwrap();
        for relu in [false, true] {
            let (y1, s1) = batch_norm_train(&x, &g, &b, relu).unwrap();
            let (y2, s2) = batch_norm_train_composed(&x, &g, &b, relu).unwrap();
            for (a, b) in s1.iter().zip(&s2) {
                assert!((a.0 - b.0).abs() < 1e-5 && (a.1 - b.1).abs() < 1e-4);
            }
            let d =
                (&y1 - &y2).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-4, "{d}");
            let r = Tensor::arange(0f32, n as f32, &dev).unwrap().reshape((3, 4, 5, 6)).unwrap().sin().unwrap();
            let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &g, &b] {
                let a = g1.get(v).unwrap();
                let bb = g2.get(v).unwrap();
                let d =
                    (a - bb).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
                assert!(d < 2e-4, "relu {relu}: gradient differs by {d}");
            }
        }
    }
}
