//! N-D convolution (stride 1, per-axis zero padding) as a candle `CustomOp2` with a tiled
//! im2col + `gemm` forward and backward.
//!
//! Hand-written because candle 0.11 has no conv3d, and its conv2d input gradient goes through a
//! naive CPU `conv_transpose2d` (see docs/learn.md). Layout is candle's NC(D)HW; a 2-D
//! convolution is the 3-D one with depth 1.
//!
//! - forward, per batch item: `out[Cout, M] = W[Cout, K] · col[K, M]` with `K = Cin·kd·kh·kw`
//!   and `M` the output voxels, `col` built tile by tile (a few output rows at a time) so it
//!   stays in cache;
//! - weight gradient: `dW[Cout, K] = Σ dY[Cout, M] · col[K, M]ᵀ`, accumulated per fixed group of
//!   tiles and summed in a fixed order (bit-for-bit deterministic whatever the thread count);
//! - input gradient: the forward convolution of `dY` with the kernel flipped and its channel
//!   axes swapped, padded by `k − 1 − p`.
//!
//! Tiles run in parallel with rayon, each gemm single-threaded; every output value is computed
//! by one task in a fixed order, so results do not depend on scheduling.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{SendPtr, f32_contiguous, spatial3};

/// Geometry of one convolution, 2-D as depth 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geo {
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    /// Input spatial size (D, H, W).
    pub inp: [usize; 3],
    /// Kernel size (kd, kh, kw).
    pub k: [usize; 3],
    /// Zero padding on each side (pd, ph, pw).
    pub pad: [usize; 3],
}

impl Geo {
    pub fn out(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.inp[a] + 2 * self.pad[a] + 1 - self.k[a])
    }
    pub fn kk(&self) -> usize {
        self.cin * self.k[0] * self.k[1] * self.k[2]
    }
    /// Multiply-adds of the forward pass.
    pub fn macs(&self) -> usize {
        let o = self.out();
        self.n * self.cout * o[0] * o[1] * o[2] * self.kk()
    }
    fn check(&self) -> Result<()> {
        for a in 0..3 {
            if self.k[a] == 0 || self.inp[a] + 2 * self.pad[a] < self.k[a] {
                candle_core::bail!(
                    "convolution kernel {:?} larger than the padded input {:?} (padding {:?})",
                    self.k,
                    self.inp,
                    self.pad
                );
            }
            if self.pad[a] >= self.k[a] {
                candle_core::bail!("convolution padding {:?} must be smaller than the kernel {:?}", self.pad, self.k);
            }
        }
        Ok(())
    }
}

/// Number of output rows (D·H pairs) per tile: about 2 MB of im2col columns.
fn rows_per_tile(kk: usize, wo: usize) -> usize {
    const TARGET: usize = 1 << 19;
    (TARGET / (kk * wo).max(1)).clamp(1, 64)
}

/// Fills `col[K, (row1-row0)·Wo]` for output rows `row0..row1` of one batch item `x` (C·D·H·W).
fn im2col_tile(x: &[f32], g: &Geo, row0: usize, row1: usize, col: &mut [f32]) {
    let [d, h, w] = g.inp;
    let [_, ho, wo] = g.out();
    let [kd, kh, kw] = g.k;
    let [pd, ph, pw] = g.pad;
    let tl = (row1 - row0) * wo;
    let mut r = 0;
    for ci in 0..g.cin {
        let xc = &x[ci * d * h * w..(ci + 1) * d * h * w];
        for kz in 0..kd {
            for ky in 0..kh {
                for kx in 0..kw {
                    let dst = &mut col[r * tl..(r + 1) * tl];
                    r += 1;
                    let dx = kx as isize - pw as isize;
                    let x0 = (-dx).max(0) as usize;
                    let x1 = ((w as isize - dx).min(wo as isize)).max(x0 as isize) as usize;
                    for row in row0..row1 {
                        let (z, y) = (row / ho, row % ho);
                        let iz = z as isize + kz as isize - pd as isize;
                        let iy = y as isize + ky as isize - ph as isize;
                        let out = &mut dst[(row - row0) * wo..(row - row0 + 1) * wo];
                        if iz < 0 || iz >= d as isize || iy < 0 || iy >= h as isize {
                            out.fill(0.0);
                            continue;
                        }
                        let src = &xc[(iz as usize * h + iy as usize) * w..][..w];
                        out[..x0].fill(0.0);
                        out[x0..x1].copy_from_slice(&src[(x0 as isize + dx) as usize..(x1 as isize + dx) as usize]);
                        out[x1..].fill(0.0);
                    }
                }
            }
        }
    }
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]` with explicit row/column strides, single-threaded.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const f32,
    rhs_rs: isize,
    rhs_cs: isize,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// The (batch item, first row, end row) tiles of a convolution's output.
fn tiles(g: &Geo) -> Vec<(usize, usize, usize)> {
    let [d_o, ho, wo] = g.out();
    let rows = d_o * ho;
    let per = rows_per_tile(g.kk(), wo);
    let mut t = Vec::new();
    for b in 0..g.n {
        let mut r = 0;
        while r < rows {
            t.push((b, r, (r + per).min(rows)));
            r += per;
        }
    }
    t
}

/// Forward convolution: `x` (N·Cin·D·H·W), `w` (Cout·Cin·kd·kh·kw) → N·Cout·Do·Ho·Wo.
pub fn conv_forward(x: &[f32], w: &[f32], g: &Geo) -> Vec<f32> {
    conv_forward_epilogue(x, w, g, None)
}

/// Per-output-channel `y ↦ max(y·scale + shift, 0)` applied to each tile right after its gemm,
/// while it is in cache: evaluation-mode batch norm + ReLU folded into the convolution.
pub struct Epilogue {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
    pub relu: bool,
}

/// [`conv_forward`] with an optional [`Epilogue`]: Winograd F(4×4, 3×3) for 3×3 in-plane
/// kernels with enough channels ([`super::winograd`]), im2col + gemm otherwise.
pub fn conv_forward_epilogue(x: &[f32], w: &[f32], g: &Geo, ep: Option<&Epilogue>) -> Vec<f32> {
    if super::winograd::enabled() && super::winograd::applicable(g) {
        super::winograd::conv_forward(x, w, g, ep)
    } else {
        conv_forward_im2col(x, w, g, ep)
    }
}

/// Direct convolution: im2col tiles + gemm, for every kernel size.
pub fn conv_forward_im2col(x: &[f32], w: &[f32], g: &Geo, ep: Option<&Epilogue>) -> Vec<f32> {
    let o = g.out();
    let m = o[0] * o[1] * o[2];
    let kk = g.kk();
    let in_len = g.cin * g.inp[0] * g.inp[1] * g.inp[2];
    let mut out = petri_api::mem::zeroed_vec::<f32>(g.n * g.cout * m);
    let dst = SendPtr(out.as_mut_ptr());
    tiles(g).into_par_iter().for_each_init(Vec::new, |col: &mut Vec<f32>, (b, r0, r1)| {
        let tl = (r1 - r0) * o[2];
        col.resize(kk * tl, 0.0);
        im2col_tile(&x[b * in_len..(b + 1) * in_len], g, r0, r1, col);
        let dst = dst;
        // SAFETY: this task alone writes columns r0·Wo..r1·Wo of item b's output rows.
        unsafe {
            sgemm(
                g.cout,
                tl,
                kk,
                dst.0.add(b * g.cout * m + r0 * o[2]),
                m,
                false,
                w.as_ptr(),
                kk as isize,
                1,
                col.as_ptr(),
                tl as isize,
                1,
            );
            if let Some(ep) = ep {
                for co in 0..g.cout {
                    // SAFETY: the same columns of this task's rows, as written just above.
                    let row = std::slice::from_raw_parts_mut(dst.0.add(b * g.cout * m + co * m + r0 * o[2]), tl);
                    let (sc, sh) = (ep.scale[co], ep.shift[co]);
                    if ep.relu {
                        row.iter_mut().for_each(|v| *v = (*v * sc + sh).max(0.0));
                    } else {
                        row.iter_mut().for_each(|v| *v = *v * sc + sh);
                    }
                }
            }
        }
    });
    out
}

/// Weight gradient: `x` (N·Cin·D·H·W), `dy` (N·Cout·Do·Ho·Wo) → Cout·Cin·kd·kh·kw.
pub fn conv_backward_weight(x: &[f32], dy: &[f32], g: &Geo) -> Vec<f32> {
    let o = g.out();
    let m = o[0] * o[1] * o[2];
    let kk = g.kk();
    let in_len = g.cin * g.inp[0] * g.inp[1] * g.inp[2];
    let tiles = tiles(g);
    // A fixed partition of the tiles into groups (independent of the thread count), each
    // accumulating its own partial sum; partial sums are added in group order.
    const GROUPS: usize = 8;
    let ng = GROUPS.min(tiles.len());
    let partials: Vec<Vec<f32>> = (0..ng)
        .into_par_iter()
        .map(|gi| {
            let (t0, t1) = (gi * tiles.len() / ng, (gi + 1) * tiles.len() / ng);
            let mut acc = vec![0f32; g.cout * kk];
            let mut col = Vec::new();
            for &(b, r0, r1) in &tiles[t0..t1] {
                let tl = (r1 - r0) * o[2];
                col.resize(kk * tl, 0.0);
                im2col_tile(&x[b * in_len..(b + 1) * in_len], g, r0, r1, &mut col);
                // acc[Cout, K] += dy[Cout, tile] · col[K, tile]ᵀ
                unsafe {
                    sgemm(
                        g.cout,
                        kk,
                        tl,
                        acc.as_mut_ptr(),
                        kk,
                        true,
                        dy.as_ptr().add(b * g.cout * m + r0 * o[2]),
                        m as isize,
                        1,
                        col.as_ptr(),
                        1,
                        tl as isize,
                    );
                }
            }
            acc
        })
        .collect();
    let mut it = partials.into_iter();
    let mut sum = it.next().unwrap_or_else(|| vec![0f32; g.cout * kk]);
    for p in it {
        sum.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    sum
}

/// The geometry and kernel of the input gradient as a forward convolution of `dy`.
pub fn backward_input_geo(g: &Geo, w: &[f32]) -> (Geo, Vec<f32>) {
    let [kd, kh, kw] = g.k;
    let kvol = kd * kh * kw;
    let mut wt = vec![0f32; w.len()];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            let src = &w[(co * g.cin + ci) * kvol..][..kvol];
            let dst = &mut wt[(ci * g.cout + co) * kvol..][..kvol];
            // Flip every spatial axis: linear index i ↦ kvol − 1 − i.
            for (i, v) in src.iter().enumerate() {
                dst[kvol - 1 - i] = *v;
            }
        }
    }
    let bg =
        Geo { n: g.n, cin: g.cout, cout: g.cin, inp: g.out(), k: g.k, pad: [0, 1, 2].map(|a| g.k[a] - 1 - g.pad[a]) };
    (bg, wt)
}

/// Input gradient: `dy` (N·Cout·Do·Ho·Wo), `w` → N·Cin·D·H·W.
pub fn conv_backward_input(dy: &[f32], w: &[f32], g: &Geo) -> Vec<f32> {
    let (bg, wt) = backward_input_geo(g, w);
    debug_assert_eq!(bg.out(), g.inp);
    conv_forward(dy, &wt, &bg)
}

pub(crate) fn geo_of(x: &Layout, w: &Layout, pad: [usize; 3]) -> Result<Geo> {
    let xd = x.dims();
    let wd = w.dims();
    if xd.len() != wd.len() {
        candle_core::bail!("conv: input rank {} but kernel rank {}", xd.len(), wd.len());
    }
    let inp = spatial3(xd)?;
    let k = spatial3(wd)?;
    if wd[1] != xd[1] {
        candle_core::bail!("conv: input has {} channels but the kernel expects {}", xd[1], wd[1]);
    }
    let g = Geo { n: xd[0], cin: xd[1], cout: wd[0], inp, k, pad };
    g.check()?;
    Ok(g)
}

pub(crate) fn out_shape(g: &Geo, rank: usize) -> Shape {
    let o = g.out();
    if rank == 4 { Shape::from((g.n, g.cout, o[1], o[2])) } else { Shape::from((g.n, g.cout, o[0], o[1], o[2])) }
}

/// The convolution as a candle op: `(x, w)` → `y`.
struct ConvOp {
    pad: [usize; 3],
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "petri-conv"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let t0 = std::time::Instant::now();
        let g = geo_of(l1, l2, self.pad)?;
        let x = f32_contiguous(s1, l1)?;
        let w = f32_contiguous(s2, l2)?;
        let y = conv_forward(&x, &w, &g);
        super::prof(0, t0);
        Ok((CpuStorage::F32(y), out_shape(&g, l1.dims().len())))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // The input gradient of the first layer (the image) is never needed: skip it.
        let dx = if x.track_op() {
            Some(dy.apply_op2_no_bwd(w, &ConvBwdInput { pad: self.pad, x_shape: x.shape().clone() })?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(dy, &ConvBwdWeight { pad: self.pad, w_shape: w.shape().clone() })?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

pub(crate) struct ConvBwdInput {
    pub(crate) pad: [usize; 3],
    pub(crate) x_shape: Shape,
}

impl CustomOp2 for ConvBwdInput {
    fn name(&self) -> &'static str {
        "petri-conv-bwd-input"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let t0 = std::time::Instant::now();
        let g = geo_of(&Layout::contiguous(self.x_shape.clone()), l2, self.pad)?;
        let dy = f32_contiguous(s1, l1)?;
        let w = f32_contiguous(s2, l2)?;
        let dx = conv_backward_input(&dy, &w, &g);
        super::prof(1, t0);
        Ok((CpuStorage::F32(dx), self.x_shape.clone()))
    }
}

pub(crate) struct ConvBwdWeight {
    pub(crate) pad: [usize; 3],
    pub(crate) w_shape: Shape,
}

impl CustomOp2 for ConvBwdWeight {
    fn name(&self) -> &'static str {
        "petri-conv-bwd-weight"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let t0 = std::time::Instant::now();
        let g = geo_of(l1, &Layout::contiguous(self.w_shape.clone()), self.pad)?;
        let x = f32_contiguous(s1, l1)?;
        let dy = f32_contiguous(s2, l2)?;
        let dw = conv_backward_weight(&x, &dy, &g);
        super::prof(2, t0);
        Ok((CpuStorage::F32(dw), self.w_shape.clone()))
    }
}

/// Inference-only convolution followed by a per-channel affine map and ReLU (no gradient).
struct ConvEpilogueOp {
    pad: [usize; 3],
    ep: Epilogue,
}

impl CustomOp2 for ConvEpilogueOp {
    fn name(&self) -> &'static str {
        "petri-conv-affine-relu"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let t0 = std::time::Instant::now();
        let g = geo_of(l1, l2, self.pad)?;
        if self.ep.scale.len() != g.cout || self.ep.shift.len() != g.cout {
            candle_core::bail!("conv epilogue: {} channels expected", g.cout);
        }
        let x = f32_contiguous(s1, l1)?;
        let w = f32_contiguous(s2, l2)?;
        let y = conv_forward_epilogue(&x, &w, &g, Some(&self.ep));
        super::prof(0, t0);
        Ok((CpuStorage::F32(y), out_shape(&g, l1.dims().len())))
    }
}

/// `max(conv(x, w)·scale + shift, 0)` per output channel (ReLU if `relu`), without gradient:
/// evaluation-mode batch norm folded into the convolution (CPU only; `None` elsewhere, where
/// the caller runs the separate ops).
pub fn conv_affine_eval(x: &Tensor, w: &Tensor, pad: [usize; 3], ep: Epilogue) -> Result<Option<Tensor>> {
    if !x.device().is_cpu() {
        return Ok(None);
    }
    let pad = if x.rank() == 4 { [0, pad[1], pad[2]] } else { pad };
    Ok(Some(x.apply_op2_no_bwd(w, &ConvEpilogueOp { pad, ep })?))
}

/// Convolution of `x` (N,C,H,W) or (N,C,D,H,W) with `w` (Cout,C,kh,kw) or (Cout,C,kd,kh,kw),
/// stride 1, zero padding `pad` = (pd, ph, pw) (pd ignored in 2-D). The custom op on the CPU;
/// candle's conv2d (composed per kernel slice in 3-D) on other devices.
pub fn conv(x: &Tensor, w: &Tensor, pad: [usize; 3]) -> Result<Tensor> {
    let pad = if x.rank() == 4 { [0, pad[1], pad[2]] } else { pad };
    if x.device().is_cpu() { x.apply_op2(w, ConvOp { pad }) } else { conv_composed(x, w, pad) }
}

/// The same convolution from candle's built-in ops (the CUDA path; tested on the CPU against
/// the custom op). 3-D: one conv2d per kernel depth slice on (N·D, C, H, W), summed.
pub fn conv_composed(x: &Tensor, w: &Tensor, pad: [usize; 3]) -> Result<Tensor> {
    let conv2 = |x: &Tensor, w: &Tensor| -> Result<Tensor> {
        if pad[1] == pad[2] {
            x.conv2d(w, pad[1], 1, 1, 1)
        } else {
            x.pad_with_zeros(2, pad[1], pad[1])?.pad_with_zeros(3, pad[2], pad[2])?.conv2d(w, 0, 1, 1, 1)
        }
    };
    if x.rank() == 4 {
        return conv2(x, w);
    }
    let (n, c, _, h, wd) = x.dims5()?;
    let (cout, _, kd, _, _) = w.dims5()?;
    let xp = if pad[0] > 0 { x.pad_with_zeros(2, pad[0], pad[0])? } else { x.clone() };
    let dp = xp.dim(2)?;
    let d_out = dp + 1 - kd;
    let mut acc: Option<Tensor> = None;
    for kz in 0..kd {
        let xs = xp.narrow(2, kz, d_out)?.permute((0, 2, 1, 3, 4))?.reshape((n * d_out, c, h, wd))?;
        let wk = w.narrow(2, kz, 1)?.squeeze(2)?;
        let y = conv2(&xs, &wk)?;
        acc = Some(match acc {
            None => y,
            Some(a) => (a + y)?,
        });
    }
    let y = acc.expect("kernel depth ≥ 1");
    let (_, _, ho, wo) = y.dims4()?;
    y.reshape((n, d_out, cout, ho, wo))?.permute((0, 2, 1, 3, 4))?.contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_data::lcg;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn conv2d_matches_candle_builtin_forward_and_backward() {
        let dev = Device::Cpu;
        for (pad, k) in [(1usize, 3usize), (0, 3), (0, 1), (2, 5)] {
            let x = Var::from_vec(lcg(2 * 3 * 9 * 11, 1), (2, 3, 9, 11), &dev).unwrap();
            let w = Var::from_vec(lcg(4 * 3 * k * k, 2), (4, 3, k, k), &dev).unwrap();
            let ours = conv(&x, &w, [0, pad, pad]).unwrap();
            let theirs = x.conv2d(&w, pad, 1, 1, 1).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_diff(&ours, &theirs) < 1e-5);
            let r = Tensor::new(lcg(ours.elem_count(), 3), &dev).unwrap().reshape(ours.shape()).unwrap();
            let g1 = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-4, "dx pad {pad} k {k}");
            assert!(max_diff(g1.get(&w).unwrap(), g2.get(&w).unwrap()) < 1e-4, "dw pad {pad} k {k}");
        }
    }

    #[test]
    fn conv3d_matches_composition_and_finite_differences() {
        let dev = Device::Cpu;
        for (pad, k) in [([1usize, 1, 1], [3usize, 3, 3]), ([0, 1, 1], [1, 3, 3]), ([0, 0, 0], [2, 3, 1])] {
            let x = Var::from_vec(lcg(2 * 2 * 5 * 6 * 7, 4), (2, 2, 5, 6, 7), &dev).unwrap();
            let w = Var::from_vec(lcg(3 * 2 * k[0] * k[1] * k[2], 5), (3, 2, k[0], k[1], k[2]), &dev).unwrap();
            let ours = conv(&x, &w, pad).unwrap();
            let comp = conv_composed(&x, &w, pad).unwrap();
            assert_eq!(ours.dims(), comp.dims());
            assert!(max_diff(&ours, &comp) < 1e-5);
            let r = Tensor::new(lcg(ours.elem_count(), 6), &dev).unwrap().reshape(ours.shape()).unwrap();
            let g1 = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&comp * &r).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-4);
            assert!(max_diff(g1.get(&w).unwrap(), g2.get(&w).unwrap()) < 1e-4);
            // Finite differences (f64 arithmetic on the plain functions) for a few weights.
            let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let ws = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let rs = r.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let g = Geo { n: 2, cin: 2, cout: 3, inp: [5, 6, 7], k, pad };
            let loss = |w: &[f32]| -> f64 {
                conv_forward(&xs, w, &g).iter().zip(&rs).map(|(a, b)| *a as f64 * *b as f64).sum()
            };
            let dw = g1.get(&w).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for i in [0, ws.len() / 3, ws.len() - 1] {
                let eps = 1e-2f32;
                let mut wp = ws.clone();
                wp[i] += eps;
                let mut wm = ws.clone();
                wm[i] -= eps;
                let fd = (loss(&wp) - loss(&wm)) / (2.0 * eps as f64);
                assert!((fd - dw[i] as f64).abs() < 2e-3 * (1.0 + fd.abs()), "dw[{i}] fd {fd} vs {}", dw[i]);
            }
        }
    }

    #[test]
    fn weight_gradient_is_independent_of_thread_count() {
        let g = Geo { n: 3, cin: 4, cout: 5, inp: [1, 40, 33], k: [1, 3, 3], pad: [0, 1, 1] };
        let x = lcg(3 * 4 * 40 * 33, 7);
        let dy = lcg(3 * 5 * 40 * 33, 8);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let a = one.install(|| conv_backward_weight(&x, &dy, &g));
        let b = three.install(|| conv_backward_weight(&x, &dy, &g));
        assert_eq!(a, b);
    }
}
