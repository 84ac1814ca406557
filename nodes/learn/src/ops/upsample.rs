//! Upsampling for U-Net decoders, 2-D and 3-D with per-axis factors, with gradients:
//! nearest-neighbour repetition (candle has no 3-D upsampling, and no backward for bilinear),
//! and the transposed convolution with kernel = stride (non-overlapping, so a matrix product
//! followed by a pixel shuffle, built from candle ops that all have gradients).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{SendPtr, f32_contiguous, spatial3};

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
        let mut out = petri_api::mem::zeroed_vec::<f32>(shape.elem_count());
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
        let mut out = petri_api::mem::zeroed_vec::<f32>(shape.elem_count());
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

/// Transposed convolution k = s with bias, as one CPU op: per batch item `Y'[Cout·kvol, P] =
/// Wᵀ[Cout·kvol, Cin] · X[Cin, P]` by `gemm` over tiles of input voxels, scattered straight
/// into the output blocks with the bias added. Hand-written because the candle composition
/// ([`conv_transpose_k_eq_s`] + a broadcast bias) runs an 8-axis strided copy and half a dozen
/// single-threaded autograd nodes of full output size, forward and backward.
struct ConvTransposeKs {
    f: [usize; 3],
}

/// Geometry of a k = s transposed convolution.
#[derive(Clone, Copy)]
struct TGeo {
    n: usize,
    cin: usize,
    cout: usize,
    inp: [usize; 3],
    f: [usize; 3],
}

impl TGeo {
    fn p(&self) -> usize {
        self.inp[0] * self.inp[1] * self.inp[2]
    }
    fn kvol(&self) -> usize {
        self.f[0] * self.f[1] * self.f[2]
    }
    fn ck(&self) -> usize {
        self.cout * self.kvol()
    }
    fn out(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.inp[a] * self.f[a])
    }
    /// (batch item, first input voxel, end) tiles of about 1 MB of `Y'`, in whole input rows.
    fn tiles(&self) -> Vec<(usize, usize, usize)> {
        let w = self.inp[2];
        let rows = self.inp[0] * self.inp[1];
        let per = ((1usize << 18) / self.ck().max(1)).clamp(64, 1 << 16);
        let per_rows = (per / w.max(1)).max(1);
        let mut t = Vec::new();
        for b in 0..self.n {
            let mut r = 0;
            while r < rows {
                t.push((b, r * w, (r + per_rows).min(rows) * w));
                r += per_rows;
            }
        }
        t
    }
    /// Calls `f(j0, t, oi)` for every output row segment of the tile of input voxels `p0..p1`
    /// (whole input rows): rows `j0 + kx` (kx < fx) of `Y'` (c_out·kvol), at tile columns
    /// `t..t + w`, go to the values `oi + x·fx + kx` (x < w) of item b's output (Cout·Do·Ho·Wo).
    /// Row by row, so that the copies are plain vector loops.
    fn for_each_row(&self, p0: usize, p1: usize, mut f: impl FnMut(usize, usize, usize)) {
        let [_, h, w] = self.inp;
        let o = self.out();
        let [f0, f1, f2] = self.f;
        let vo = o[0] * o[1] * o[2];
        for co in 0..self.cout {
            for kz in 0..f0 {
                for ky in 0..f1 {
                    let j0 = ((co * f0 + kz) * f1 + ky) * f2;
                    for row in p0 / w..p1 / w {
                        let (z, y) = (row / h, row % h);
                        f(j0, row * w - p0, co * vo + ((z * f0 + kz) * o[1] + y * f1 + ky) * o[2]);
                    }
                }
            }
        }
    }
}

fn tgeo(x: &Layout, w: &Layout, f: [usize; 3]) -> Result<TGeo> {
    let xd = x.dims();
    let wd = w.dims();
    let inp = spatial3(xd)?;
    if wd.len() != xd.len() || wd[0] != xd[1] {
        candle_core::bail!("transposed convolution: input {xd:?} does not match kernel {wd:?}");
    }
    let ks = spatial3(wd)?;
    if ks != f {
        candle_core::bail!("transposed convolution: kernel {ks:?} must equal the stride {f:?}");
    }
    Ok(TGeo { n: xd[0], cin: xd[1], cout: wd[1], inp, f })
}

impl candle_core::CustomOp3 for ConvTransposeKs {
    fn name(&self) -> &'static str {
        "petri-conv-transpose-k-eq-s"
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
        let g = tgeo(l1, l2, self.f)?;
        let x = f32_contiguous(s1, l1)?;
        let w = f32_contiguous(s2, l2)?;
        let bias = f32_contiguous(s3, l3)?;
        if bias.len() != g.cout {
            candle_core::bail!("transposed convolution: {} biases for {} channels", bias.len(), g.cout);
        }
        let (p, ck, o) = (g.p(), g.ck(), g.out());
        let vo = o[0] * o[1] * o[2];
        let mut out = petri_api::mem::zeroed_vec::<f32>(g.n * g.cout * vo);
        let dst = SendPtr(out.as_mut_ptr());
        let kvol = g.kvol();
        g.tiles().into_par_iter().for_each_init(Vec::new, |yt: &mut Vec<f32>, (b, p0, p1)| {
            let tp = p1 - p0;
            yt.resize(ck * tp, 0.0);
            // Y'[j, t] = Σ_ci W[ci, j] · X[ci, p0 + t]
            unsafe {
                crate::ops::conv::sgemm(
                    ck,
                    tp,
                    g.cin,
                    yt.as_mut_ptr(),
                    tp,
                    false,
                    w.as_ptr(),
                    1,
                    ck as isize,
                    x.as_ptr().add(b * g.cin * p + p0),
                    p as isize,
                    1,
                );
            }
            let dst = dst;
            let ob = b * g.cout * vo;
            let (w_in, fx) = (g.inp[2], g.f[2]);
            g.for_each_row(p0, p1, |j0, t, oi| {
                let bv = bias[j0 / kvol];
                // SAFETY: the output blocks of input voxels p0..p1 of item b belong to this task.
                let orow = unsafe { std::slice::from_raw_parts_mut(dst.0.add(ob + oi), w_in * fx) };
                if fx == 2 {
                    let (a, c) = (&yt[j0 * tp + t..][..w_in], &yt[(j0 + 1) * tp + t..][..w_in]);
                    for (x, o2) in orow.chunks_exact_mut(2).enumerate() {
                        o2[0] = a[x] + bv;
                        o2[1] = c[x] + bv;
                    }
                } else {
                    for kx in 0..fx {
                        let a = &yt[(j0 + kx) * tp + t..][..w_in];
                        for (x, v) in a.iter().enumerate() {
                            orow[x * fx + kx] = v + bv;
                        }
                    }
                }
            });
        });
        let shape = if l1.dims().len() == 4 {
            Shape::from((g.n, g.cout, o[1], o[2]))
        } else {
            Shape::from((g.n, g.cout, o[0], o[1], o[2]))
        };
        super::prof(6, t0);
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (nx, nw, nb) = (x.elem_count(), w.elem_count(), b.elem_count());
        let flat = x.apply_op3_no_bwd(w, dy, &ConvTransposeKsBwd { f: self.f })?;
        let dx = flat.narrow(0, 0, nx)?.reshape(x.shape())?;
        let dw = flat.narrow(0, nx, nw)?.reshape(w.shape())?;
        let db = flat.narrow(0, nx + nw, nb)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Backward of [`ConvTransposeKs`] on (x, w, dy) → flat `[dx | dw | db]`. Tiles are processed in
/// a fixed number of groups whose weight-gradient partial sums are added in group order, and
/// the bias gradient is summed per channel in a fixed order: independent of the thread count.
struct ConvTransposeKsBwd {
    f: [usize; 3],
}

impl candle_core::CustomOp3 for ConvTransposeKsBwd {
    fn name(&self) -> &'static str {
        "petri-conv-transpose-k-eq-s-bwd"
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
        let g = tgeo(l1, l2, self.f)?;
        let x = f32_contiguous(s1, l1)?;
        let w = f32_contiguous(s2, l2)?;
        let dy = f32_contiguous(s3, l3)?;
        let (p, ck, o) = (g.p(), g.ck(), g.out());
        let vo = o[0] * o[1] * o[2];
        if dy.len() != g.n * g.cout * vo {
            candle_core::bail!("transposed convolution backward: gradient of the wrong size");
        }
        let (nx, nw) = (g.n * g.cin * p, g.cin * ck);
        let mut out = petri_api::mem::zeroed_vec::<f32>(nx + nw + g.cout);
        let dxp = SendPtr(out.as_mut_ptr());
        let tiles = g.tiles();
        const GROUPS: usize = 8;
        let ng = GROUPS.min(tiles.len()).max(1);
        let partials: Vec<Vec<f32>> = (0..ng)
            .into_par_iter()
            .map(|gi| {
                let (t0, t1) = (gi * tiles.len() / ng, (gi + 1) * tiles.len() / ng);
                let mut acc = vec![0f32; nw];
                let mut yt = Vec::new();
                for &(b, p0, p1) in &tiles[t0..t1] {
                    let tp = p1 - p0;
                    yt.resize(ck * tp, 0.0);
                    let ob = b * g.cout * vo;
                    let (w_in, fx) = (g.inp[2], g.f[2]);
                    g.for_each_row(p0, p1, |j0, t, oi| {
                        let drow = &dy[ob + oi..][..w_in * fx];
                        if fx == 2 {
                            let (a, c) = yt[j0 * tp + t..].split_at_mut(tp);
                            for (x, d2) in drow.chunks_exact(2).enumerate() {
                                a[x] = d2[0];
                                c[x] = d2[1];
                            }
                        } else {
                            for kx in 0..fx {
                                let a = &mut yt[(j0 + kx) * tp + t..][..w_in];
                                for (x, v) in a.iter_mut().enumerate() {
                                    *v = drow[x * fx + kx];
                                }
                            }
                        }
                    });
                    let dxp = dxp;
                    unsafe {
                        // dX[ci, p0 + t] = Σ_j W[ci, j] · dY'[j, t]  (this tile's columns only)
                        crate::ops::conv::sgemm(
                            g.cin,
                            tp,
                            ck,
                            dxp.0.add(b * g.cin * p + p0),
                            p,
                            false,
                            w.as_ptr(),
                            ck as isize,
                            1,
                            yt.as_ptr(),
                            tp as isize,
                            1,
                        );
                        // dW[ci, j] += Σ_t X[ci, p0 + t] · dY'[j, t]
                        crate::ops::conv::sgemm(
                            g.cin,
                            ck,
                            tp,
                            acc.as_mut_ptr(),
                            ck,
                            true,
                            x.as_ptr().add(b * g.cin * p + p0),
                            p as isize,
                            1,
                            yt.as_ptr(),
                            1,
                            tp as isize,
                        );
                    }
                }
                acc
            })
            .collect();
        {
            let dw = &mut out[nx..nx + nw];
            for part in &partials {
                dw.iter_mut().zip(part).for_each(|(a, b)| *a += b);
            }
        }
        let db: Vec<f32> = (0..g.cout)
            .into_par_iter()
            .map(|co| {
                let mut s = 0f64;
                for b in 0..g.n {
                    for chunk in dy[(b * g.cout + co) * vo..][..vo].chunks(256) {
                        s += chunk.iter().sum::<f32>() as f64;
                    }
                }
                s as f32
            })
            .collect();
        out[nx + nw..].copy_from_slice(&db);
        super::prof(6, t0);
        let n = out.len();
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

/// Transposed convolution k = s = `f` plus a per-channel bias `b`: the fused CPU op, the candle
/// composition elsewhere.
pub fn conv_transpose_k_eq_s_bias(x: &Tensor, w: &Tensor, b: &Tensor, f: [usize; 3]) -> Result<Tensor> {
    let f = if x.rank() == 4 { [1, f[1], f[2]] } else { f };
    if x.device().is_cpu() {
        return x.apply_op3(w, b, ConvTransposeKs { f });
    }
    let y = conv_transpose_k_eq_s(x, w, f)?;
    let mut s = vec![1; y.rank()];
    s[1] = b.dim(0)?;
    y.broadcast_add(&b.reshape(s)?)
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

    #[test]
    fn fused_transposed_conv_matches_composition_with_gradients() {
        let dev = Device::Cpu;
        for (dims, f) in [
            (vec![2usize, 3, 5, 7], [1usize, 2, 2]),
            (vec![2, 3, 3, 4, 5], [2, 2, 2]),
            (vec![1, 2, 3, 4, 5], [1, 2, 2]),
        ] {
            let n: usize = dims.iter().product();
            let x = Var::from_vec((0..n).map(|i| (i as f32 * 0.37).sin()).collect(), dims.as_slice(), &dev).unwrap();
            let mut wd = vec![dims[1], 4];
            if dims.len() == 5 {
                wd.push(f[0]);
            }
            wd.extend([f[1], f[2]]);
            let nw: usize = wd.iter().product();
            let w = Var::from_vec((0..nw).map(|i| (i as f32 * 0.71).cos()).collect(), wd.as_slice(), &dev).unwrap();
            let b = Var::from_vec(vec![0.1f32, -0.2, 0.3, 0.05], 4, &dev).unwrap();
            let a = conv_transpose_k_eq_s_bias(&x, &w, &b, f).unwrap();
            let y = conv_transpose_k_eq_s(&x, &w, f).unwrap();
            let mut s = vec![1; y.rank()];
            s[1] = 4;
            let c = y.broadcast_add(&b.reshape(s).unwrap()).unwrap();
            assert_eq!(a.dims(), c.dims());
            let d =
                (&a - &c).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-5, "{d}");
            let r =
                Tensor::arange(0f32, a.elem_count() as f32, &dev).unwrap().reshape(a.shape()).unwrap().cos().unwrap();
            let ga = (&a * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (&c * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &w, &b] {
                let d = (ga.get(v).unwrap() - gc.get(v).unwrap())
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(d < 1e-4, "{dims:?}: gradient differs by {d}");
            }
        }
    }
}
