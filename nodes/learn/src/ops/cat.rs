//! Concatenation of two (N, C, ...) tensors along the channel axis (the U-Net skip
//! connection), forward and backward as parallel block copies.
//!
//! Hand-written because candle's `Tensor::cat` copies on one thread and its backward hands each
//! input a strided `narrow` view of the gradient, which candle's autograd then adds element by
//! element through its slow strided path. Here both gradients come back contiguous.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::f32_contiguous;

/// (N, Ca·V, Cb·V) of two layouts that agree except on axis 1.
fn geometry(a: &[usize], b: &[usize]) -> Result<(usize, usize, usize)> {
    if a.len() != b.len() || a.len() < 2 || a[0] != b[0] || a[2..] != b[2..] {
        candle_core::bail!("channel concatenation of mismatched shapes {a:?} and {b:?}");
    }
    let v: usize = a[2..].iter().product();
    Ok((a[0], a[1] * v, b[1] * v))
}

struct Cat2;

impl CustomOp2 for Cat2 {
    fn name(&self) -> &'static str {
        "petri-cat-channels"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, la, lb) = geometry(l1.dims(), l2.dims())?;
        let a = f32_contiguous(s1, l1)?;
        let b = f32_contiguous(s2, l2)?;
        let mut out = petri_api::mem::zeroed_vec::<f32>(n * (la + lb));
        out.par_chunks_mut(la + lb).enumerate().for_each(|(i, o)| {
            o[..la].copy_from_slice(&a[i * la..(i + 1) * la]);
            o[la..].copy_from_slice(&b[i * lb..(i + 1) * lb]);
        });
        let mut dims = l1.dims().to_vec();
        dims[1] += l2.dims()[1];
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let flat = dy.apply_op1_no_bwd(&Split { ca: a.dim(1)?, cb: b.dim(1)? })?;
        let (na, nb) = (a.elem_count(), b.elem_count());
        let da = flat.narrow(0, 0, na)?.reshape(a.shape())?;
        let db = flat.narrow(0, na, nb)?.reshape(b.shape())?;
        Ok((Some(da), Some(db)))
    }
}

/// The gradient of [`Cat2`]: dy (N, Ca + Cb, ...) → flat `[da | db]`.
struct Split {
    ca: usize,
    cb: usize,
}

impl candle_core::CustomOp1 for Split {
    fn name(&self) -> &'static str {
        "petri-split-channels"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        if dims.len() < 2 || dims[1] != self.ca + self.cb {
            candle_core::bail!("channel split of {dims:?} into {} + {}", self.ca, self.cb);
        }
        let v: usize = dims[2..].iter().product();
        let (n, la, lb) = (dims[0], self.ca * v, self.cb * v);
        let dy = f32_contiguous(s, l)?;
        let mut out = petri_api::mem::zeroed_vec::<f32>(n * (la + lb));
        let (oa, ob) = out.split_at_mut(n * la);
        rayon::join(
            || oa.par_chunks_mut(la).enumerate().for_each(|(i, o)| o.copy_from_slice(&dy[i * (la + lb)..][..la])),
            || ob.par_chunks_mut(lb).enumerate().for_each(|(i, o)| o.copy_from_slice(&dy[i * (la + lb) + la..][..lb])),
        );
        Ok((CpuStorage::F32(out), Shape::from(n * (la + lb))))
    }
}

/// `cat([a, b], 1)`: the parallel op on the CPU, candle's `Tensor::cat` elsewhere.
pub fn cat_channels(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.device().is_cpu() { a.apply_op2(b, Cat2) } else { Tensor::cat(&[a, b], 1) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_cat_with_gradients() {
        let dev = Device::Cpu;
        for (da, db) in [(vec![2usize, 3, 4, 5], vec![2usize, 2, 4, 5]), (vec![1, 1, 2, 3, 4], vec![1, 4, 2, 3, 4])] {
            let na: usize = da.iter().product();
            let nb: usize = db.iter().product();
            let a = Var::from_vec((0..na).map(|i| i as f32).collect(), da.as_slice(), &dev).unwrap();
            let b = Var::from_vec((0..nb).map(|i| -(i as f32)).collect(), db.as_slice(), &dev).unwrap();
            let x = cat_channels(&a, &b).unwrap();
            let y = Tensor::cat(&[a.as_tensor(), b.as_tensor()], 1).unwrap();
            assert_eq!(x.dims(), y.dims());
            let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(v(&x), v(&y));
            let r = Tensor::arange(0f32, x.elem_count() as f32, &dev).unwrap().reshape(x.shape()).unwrap();
            let gx = (&x * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gy = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            assert_eq!(v(gx.get(&a).unwrap()), v(gy.get(&a).unwrap()));
            assert_eq!(v(gx.get(&b).unwrap()), v(gy.get(&b).unwrap()));
        }
    }
}
