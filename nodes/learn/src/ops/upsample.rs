//! Upsampling for U-Net decoders, 2-D and 3-D with per-axis factors, with gradients:
//! nearest-neighbour repetition (candle has no 3-D upsampling, and no backward for bilinear),
//! and the transposed convolution with kernel = stride (non-overlapping, so a matrix product
//! followed by a pixel shuffle, built from candle ops that all have gradients).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_contiguous, spatial3};

fn up_shape(dims: &[usize], f: [usize; 3]) -> Result<(Shape, [usize; 3], [usize; 3])> {
    let inp = spatial3(dims)?;
    let o = [0, 1, 2].map(|a| inp[a] * f[a]);
    let shape = if dims.len() == 4 {
        Shape::from((dims[0], dims[1], o[1], o[2]))
    } else {
        Shape::from((dims[0], dims[1], o[0], o[1], o[2]))
    };
    Ok((shape, inp, o))
}

struct Upsample {
    f: [usize; 3],
}

impl CustomOp1 for Upsample {
    fn name(&self) -> &'static str {
        "petri-upsample-nearest"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (shape, inp, o) = up_shape(l.dims(), self.f)?;
        let x = f32_contiguous(s, l)?;
        let (vin, vout) = (inp.iter().product::<usize>(), o.iter().product::<usize>());
        let mut out = vec![0f32; shape.elem_count()];
        let f = self.f;
        out.par_chunks_mut(vout).zip(x.par_chunks(vin)).for_each(|(oc, xc)| {
            for z in 0..o[0] {
                for y in 0..o[1] {
                    let src = &xc[((z / f[0]) * inp[1] + y / f[1]) * inp[2]..][..inp[2]];
                    let dst = &mut oc[(z * o[1] + y) * o[2]..][..o[2]];
                    for (x, d) in dst.iter_mut().enumerate() {
                        *d = src[x / f[2]];
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), shape))
    }
    fn bwd(&self, _x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(dy.apply_op1_no_bwd(&SumPool { f: self.f })?))
    }
}

/// Sum over non-overlapping blocks of `f`: the adjoint of nearest upsampling.
struct SumPool {
    f: [usize; 3],
}

impl CustomOp1 for SumPool {
    fn name(&self) -> &'static str {
        "petri-sum-pool"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        let inp = spatial3(dims)?;
        let f = self.f;
        let o = [0, 1, 2].map(|a| inp[a] / f[a]);
        let shape = if dims.len() == 4 {
            Shape::from((dims[0], dims[1], o[1], o[2]))
        } else {
            Shape::from((dims[0], dims[1], o[0], o[1], o[2]))
        };
        let x = f32_contiguous(s, l)?;
        let (vin, vout) = (inp.iter().product::<usize>(), o.iter().product::<usize>());
        let mut out = vec![0f32; shape.elem_count()];
        out.par_chunks_mut(vout).zip(x.par_chunks(vin)).for_each(|(oc, xc)| {
            for z in 0..o[0] * f[0] {
                for y in 0..o[1] * f[1] {
                    let src = &xc[(z * inp[1] + y) * inp[2]..][..o[2] * f[2]];
                    let dst = &mut oc[((z / f[0]) * o[1] + y / f[1]) * o[2]..][..o[2]];
                    for (x, v) in src.iter().enumerate() {
                        dst[x / f[2]] += v;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), shape))
    }
}

/// Nearest-neighbour upsampling of (N,C,H,W) or (N,C,D,H,W) by `f` (fd ignored in 2-D).
pub fn upsample_nearest(x: &Tensor, f: [usize; 3]) -> Result<Tensor> {
    let f = if x.rank() == 4 { [1, f[1], f[2]] } else { f };
    if x.device().is_cpu() { x.apply_op1(Upsample { f }) } else { upsample_composed(x, f) }
}

/// Broadcast-based upsampling (the non-CPU path; broadcast's backward is a sum).
pub fn upsample_composed(x: &Tensor, f: [usize; 3]) -> Result<Tensor> {
    if x.rank() == 4 {
        let (n, c, h, w) = x.dims4()?;
        return x.reshape((n, c, h, 1, w, 1))?.broadcast_as((n, c, h, f[1], w, f[2]))?.contiguous()?.reshape((
            n,
            c,
            h * f[1],
            w * f[2],
        ));
    }
    let (n, c, d, h, w) = x.dims5()?;
    x.reshape(vec![n * c, d, 1, h, 1, w, 1])?
        .broadcast_as(vec![n * c, d, f[0], h, f[1], w, f[2]])?
        .contiguous()?
        .reshape((n, c, d * f[0], h * f[1], w * f[2]))
}

/// Transposed convolution with kernel = stride = `f`: `x` (N,Cin,S...) and `w` (Cin,Cout,f...)
/// (PyTorch's ConvTranspose layout) → (N,Cout,S·f...). Each input voxel writes its own f-block,
/// so this is `wᵀ · x` per batch item followed by a pixel shuffle; all candle ops, any device.
pub fn conv_transpose_k_eq_s(x: &Tensor, w: &Tensor, f: [usize; 3]) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (n, cin) = (dims[0], dims[1]);
    let cout = w.dim(1)?;
    let inp = spatial3(&dims)?;
    let f = if dims.len() == 4 { [1, f[1], f[2]] } else { f };
    let kvol = f[0] * f[1] * f[2];
    let p = inp[0] * inp[1] * inp[2];
    let wt = w.reshape((cin, cout * kvol))?.t()?.contiguous()?; // (Cout·kvol, Cin)
    let y = wt.broadcast_left(n)?.matmul(&x.reshape((n, cin, p))?)?; // (N, Cout·kvol, P)
    let y = y.reshape(vec![n, cout, f[0], f[1], f[2], inp[0], inp[1], inp[2]])?;
    let y = y.permute(vec![0, 1, 5, 2, 6, 3, 7, 4])?.contiguous()?;
    if dims.len() == 4 {
        y.reshape((n, cout, inp[1] * f[1], inp[2] * f[2]))
    } else {
        y.reshape((n, cout, inp[0] * f[0], inp[1] * f[1], inp[2] * f[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn upsample_matches_composition_with_gradients() {
        let dev = Device::Cpu;
        for (dims, f) in [
            (vec![2usize, 3, 4, 5], [1usize, 2, 2]),
            (vec![1, 2, 3, 4, 5], [2, 2, 2]),
            (vec![1, 2, 3, 4, 5], [1, 2, 2]),
        ] {
            let n: usize = dims.iter().product();
            let x = Var::from_vec((0..n).map(|i| (i as f32 * 0.37).sin()).collect(), dims.as_slice(), &dev).unwrap();
            let a = upsample_nearest(&x, f).unwrap();
            let b = upsample_composed(&x, f).unwrap();
            assert_eq!(a.dims(), b.dims());
            assert_eq!(
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
            let r = Tensor::arange(0f32, a.elem_count() as f32, &dev).unwrap().reshape(a.shape()).unwrap();
            let ga = (&a * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&b * &r).unwrap().sum_all().unwrap().backward().unwrap();
            assert_eq!(
                ga.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                gb.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
        }
    }

    #[test]
    fn transposed_conv_matches_candle_conv_transpose2d() {
        let dev = Device::Cpu;
        let x = Tensor::new((0..2 * 3 * 4 * 5).map(|i| (i as f32 * 0.11).cos()).collect::<Vec<_>>(), &dev)
            .unwrap()
            .reshape((2, 3, 4, 5))
            .unwrap();
        let w = Tensor::new((0..3 * 2 * 2 * 2).map(|i| (i as f32 * 0.7).sin()).collect::<Vec<_>>(), &dev)
            .unwrap()
            .reshape((3, 2, 2, 2))
            .unwrap();
        let a = conv_transpose_k_eq_s(&x, &w, [1, 2, 2]).unwrap();
        let b = x.conv_transpose2d(&w, 0, 0, 2, 1).unwrap();
        assert_eq!(a.dims(), b.dims());
        let d = (&a - &b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "{d}");
    }
}
