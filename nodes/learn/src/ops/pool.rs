//! Max pooling with kernel = stride (2×2, 2×2×2, anisotropic 1×2×2), forward and backward.
//!
//! Hand-written because candle 0.11.1's `max_pool2d` backward scales gradients by 1/(k·k)
//! and candle has no `max_pool3d`. Like PyTorch, the gradient goes to the first maximum of
//! each window (in row-major order), and trailing voxels that do not fill a window are dropped.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_contiguous, spatial3};

fn out_dims(inp: [usize; 3], f: [usize; 3]) -> [usize; 3] {
    [0, 1, 2].map(|a| inp[a] / f[a])
}

/// Index (within the channel volume) of the first maximum of every window, per (n, c).
fn for_each_window(inp: [usize; 3], f: [usize; 3], xc: &[f32], mut visit: impl FnMut(usize, usize, f32)) {
    let [_, h, w] = inp;
    let o = out_dims(inp, f);
    let mut oi = 0;
    for z in 0..o[0] {
        for y in 0..o[1] {
            for x in 0..o[2] {
                let mut best = f32::NEG_INFINITY;
                let mut bi = usize::MAX;
                for dz in 0..f[0] {
                    for dy in 0..f[1] {
                        let row = ((z * f[0] + dz) * h + y * f[1] + dy) * w + x * f[2];
                        for dx in 0..f[2] {
                            let v = xc[row + dx];
                            // `>` keeps the first maximum; NaN propagates like PyTorch.
                            if v > best || v.is_nan() || bi == usize::MAX {
                                best = v;
                                bi = row + dx;
                                if v.is_nan() {
                                    break;
                                }
                            }
                        }
                    }
                }
                visit(oi, bi, best);
                oi += 1;
            }
        }
    }
}

fn pooled_shape(dims: &[usize], f: [usize; 3]) -> Result<(Shape, [usize; 3], [usize; 3])> {
    let inp = spatial3(dims)?;
    let o = out_dims(inp, f);
    if o.contains(&0) {
        candle_core::bail!("max pooling by {f:?} needs a spatial size of at least that, got {inp:?}");
    }
    let shape = if dims.len() == 4 {
        Shape::from((dims[0], dims[1], o[1], o[2]))
    } else {
        Shape::from((dims[0], dims[1], o[0], o[1], o[2]))
    };
    Ok((shape, inp, o))
}

struct MaxPool {
    f: [usize; 3],
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "petri-max-pool"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (shape, inp, o) = pooled_shape(l.dims(), self.f)?;
        let x = f32_contiguous(s, l)?;
        let vin = inp.iter().product::<usize>();
        let vout = o.iter().product::<usize>();
        let mut out = petri_api::mem::zeroed_vec::<f32>(shape.elem_count());
        out.par_chunks_mut(vout).zip(x.par_chunks(vin)).for_each(|(oc, xc)| {
            for_each_window(inp, self.f, xc, |oi, _, v| oc[oi] = v);
        });
        Ok((CpuStorage::F32(out), shape))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(dy, &MaxPoolBwd { f: self.f })?))
    }
}

struct MaxPoolBwd {
    f: [usize; 3],
}

impl CustomOp2 for MaxPoolBwd {
    fn name(&self) -> &'static str {
        "petri-max-pool-bwd"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, inp, o) = pooled_shape(l1.dims(), self.f)?;
        let x = f32_contiguous(s1, l1)?;
        let dy = f32_contiguous(s2, l2)?;
        let vin = inp.iter().product::<usize>();
        let vout = o.iter().product::<usize>();
        let mut dx = petri_api::mem::zeroed_vec::<f32>(x.len());
        dx.par_chunks_mut(vin).zip(x.par_chunks(vin)).zip(dy.par_chunks(vout)).for_each(|((dxc, xc), dyc)| {
            for_each_window(inp, self.f, xc, |oi, bi, _| dxc[bi] += dyc[oi]);
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Max pooling of an (N,C,H,W) or (N,C,D,H,W) tensor by `f` = (fd, fh, fw) (fd ignored in
/// 2-D). The custom op on the CPU; a reshape + max elsewhere (also correct, slower).
pub fn max_pool(x: &Tensor, f: [usize; 3]) -> Result<Tensor> {
    let f = if x.rank() == 4 { [1, f[1], f[2]] } else { f };
    if x.device().is_cpu() { x.apply_op1(MaxPool { f }) } else { max_pool_composed(x, f) }
}

/// Reshape + max (requires sizes divisible by `f`), the non-CPU path.
pub fn max_pool_composed(x: &Tensor, f: [usize; 3]) -> Result<Tensor> {
    if x.rank() == 4 {
        let (n, c, h, w) = x.dims4()?;
        let x = x.narrow(2, 0, h / f[1] * f[1])?.narrow(3, 0, w / f[2] * f[2])?;
        return x.reshape((n, c, h / f[1], f[1], w / f[2], f[2]))?.max(5)?.max(3);
    }
    let (n, c, d, h, w) = x.dims5()?;
    let x = x.narrow(2, 0, d / f[0] * f[0])?.narrow(3, 0, h / f[1] * f[1])?.narrow(4, 0, w / f[2] * f[2])?;
    // Pool H and W on (N, C·D', fd, H, W) first, then the depth pairs.
    let x = x.reshape((n, c * (d / f[0]) * f[0], h / f[1], f[1], w / f[2], f[2]))?.max(5)?.max(3)?;
    x.reshape((n, c, d / f[0], f[0], h / f[1], w / f[2]))?.max(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn gradient_goes_to_the_maximum_unscaled() {
        let dev = Device::Cpu;
        let x = Var::from_vec(vec![1f32, 4., 2., 3.], (1, 1, 2, 2), &dev).unwrap();
        let y = max_pool(&x, [1, 2, 2]).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![4.0]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0., 1., 0., 0.]);
    }

    /// Documents the candle 0.11.1 bug we work around: if this starts failing, candle fixed it.
    #[test]
    fn candle_max_pool2d_backward_is_scaled() {
        let dev = Device::Cpu;
        let x = Var::from_vec(vec![1f32, 4., 2., 3.], (1, 1, 2, 2), &dev).unwrap();
        let g = x.max_pool2d(2).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(gx, vec![0., 0.25, 0., 0.]);
    }

    #[test]
    fn custom_op_matches_composition_2d_3d_aniso() {
        let dev = Device::Cpu;
        let v: Vec<f32> = (0..2 * 3 * 4 * 6 * 8).map(|i| ((i * 7919) % 97) as f32 * 0.1).collect();
        for (dims, f) in
            [(vec![2, 3, 24, 8], [1, 2, 2]), (vec![2, 3, 4, 6, 8], [2, 2, 2]), (vec![2, 3, 4, 6, 8], [1, 2, 2])]
        {
            let x = Var::from_vec(v.clone(), dims.as_slice(), &dev).unwrap();
            let a = max_pool(&x, f).unwrap();
            let b = max_pool_composed(&x, f).unwrap();
            assert_eq!(a.dims(), b.dims());
            let d =
                (&a - &b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(d, 0.0);
            let r = Tensor::arange(0f32, a.elem_count() as f32, &dev).unwrap().reshape(a.shape()).unwrap();
            let ga = (&a * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gx = ga.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            // Every window's gradient lands once, on a maximum.
            let total: f32 = gx.iter().sum();
            assert_eq!(total, r.sum_all().unwrap().to_scalar::<f32>().unwrap());
        }
    }
}
