//! Winograd F(4×4, 3×3) convolution for the 3×3 (in-plane) kernels that make up almost all of a
//! U-Net's arithmetic: 36 multiplications per 4×4 output tile and input channel instead of 144.
//!
//! Hand-written because neither candle nor any maintained Rust crate has a CPU Winograd
//! convolution; direct im2col + gemm ([`super::conv`]) cannot go past the machine's multiply
//! peak, which PyTorch's oneDNN (itself Winograd-capable) already reaches (docs/benchmarks/learn.md).
//!
//! The transforms are those of Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks" (2016), with interpolation points 0, ±1, ±2, ∞:
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for a 6×6 input tile `d` and a 3×3 kernel `g`
//! (cross-correlation, as CNN convolutions are).
//!
//! Layout of the work, per task = (batch item, output slice, block of tile rows):
//! - input transform, vectorised over the tiles of a tile row: each input row is first
//!   transformed along x (`h = Bᵀ·row` per tile), then six rows along y, written to
//!   `V[ξ][K][tile]` (ξ = one of the 36 transform points, K = input channel × kernel depth);
//! - 36 gemms `M[ξ] = U[ξ] · V[ξ]` (`U[ξ]` is `Cout × K`, the transformed kernels);
//! - output transform back to 4×4 tiles, with the optional batch-norm + ReLU epilogue.
//!
//! A 3-D kernel (kd × 3 × 3) adds its depth taps to the gemm's K (the input slices
//! `z + kz − pd`), so 3-D convolutions take the same path. Every output value is computed by one
//! task in a fixed order: results do not depend on the thread count (bit-for-bit).

use rayon::prelude::*;

use super::SendPtr;
use super::conv::{Epilogue, Geo, sgemm};

/// Output tile size (4×4) and input tile size (6×6) of F(4×4, 3×3).
const M: usize = 4;
const T: usize = 6;
const NXI: usize = T * T;

/// False when the environment variable `PETRI_CONV_DIRECT` is set: every convolution then runs
/// im2col + gemm (for side-by-side benchmarks and for diagnosing numerical differences).
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("PETRI_CONV_DIRECT").is_none())
}

/// Whether the Winograd path computes this convolution: 3×3 in-plane kernel, padding 0 or 1
/// in-plane, enough channels for the transforms to pay off, and at least one full output tile.
pub fn applicable(g: &Geo) -> bool {
    let o = g.out();
    g.k[1] == 3
        && g.k[2] == 3
        && g.pad[1] <= 1
        && g.pad[2] <= 1
        && g.cin * g.k[0] >= 8
        && g.cout >= 8
        && o[1] >= M
        && o[2] >= M
}

/// `out_k = Σ_l Bᵀ[k][l] · d_l` for the six inputs `d` (F(4×4, 3×3)'s input transform along
/// one axis), elementwise over slices of length `n`.
#[inline(always)]
fn bt6(d: [&[f32]; 6], o: &mut [f32], n: usize, ostride: usize) {
    let (d0, d1, d2, d3, d4, d5) = (&d[0][..n], &d[1][..n], &d[2][..n], &d[3][..n], &d[4][..n], &d[5][..n]);
    let (o0, rest) = o.split_at_mut(ostride);
    let (o1, rest) = rest.split_at_mut(ostride);
    let (o2, rest) = rest.split_at_mut(ostride);
    let (o3, rest) = rest.split_at_mut(ostride);
    let (o4, o5) = rest.split_at_mut(ostride);
    let (o0, o1, o2, o3, o4, o5) = (&mut o0[..n], &mut o1[..n], &mut o2[..n], &mut o3[..n], &mut o4[..n], &mut o5[..n]);
    for t in 0..n {
        let (a0, a1, a2, a3, a4, a5) = (d0[t], d1[t], d2[t], d3[t], d4[t], d5[t]);
        o0[t] = 4.0 * a0 - 5.0 * a2 + a4;
        o1[t] = -4.0 * (a1 + a2) + (a3 + a4);
        o2[t] = 4.0 * (a1 - a2) + (a4 - a3);
        o3[t] = 2.0 * (a3 - a1) + (a4 - a2);
        o4[t] = 2.0 * (a1 - a3) + (a4 - a2);
        o5[t] = 4.0 * a1 - 5.0 * a3 + a5;
    }
}

/// `out_a = Σ_i Aᵀ[a][i] · m_i` (the output transform along one axis) for six inputs.
#[inline(always)]
fn at6(m: [&[f32]; 6], o: [&mut [f32]; 4], n: usize) {
    let (m0, m1, m2, m3, m4, m5) = (&m[0][..n], &m[1][..n], &m[2][..n], &m[3][..n], &m[4][..n], &m[5][..n]);
    let [o0, o1, o2, o3] = o;
    let (o0, o1, o2, o3) = (&mut o0[..n], &mut o1[..n], &mut o2[..n], &mut o3[..n]);
    for t in 0..n {
        let (s12, d12, s34, d34) = (m1[t] + m2[t], m1[t] - m2[t], m3[t] + m4[t], m3[t] - m4[t]);
        o0[t] = m0[t] + s12 + s34;
        o1[t] = d12 + 2.0 * d34;
        o2[t] = s12 + 4.0 * s34;
        o3[t] = d12 + 8.0 * d34 + m5[t];
    }
}

/// Transformed kernels `U[ξ][co][kz·cin + ci] = (G g Gᵀ)[ξ]` for `w` (Cout·Cin·kd·3·3).
fn kernel_transform(w: &[f32], g: &Geo) -> Vec<f32> {
    let kd = g.k[0];
    let kt = g.cin * kd;
    let mut u = vec![0f32; NXI * g.cout * kt];
    let up = SendPtr(u.as_mut_ptr());
    (0..g.cout).into_par_iter().for_each_init(Vec::new, |loc: &mut Vec<f32>, co| {
        let up = up;
        // loc[ξ][kz·cin + ci] for this output channel, then one contiguous copy per ξ: writing U
        // directly would touch 36 rows Cout·K apart for every kernel (TLB-bound).
        loc.resize(NXI * kt, 0.0);
        for ci in 0..g.cin {
            for kz in 0..kd {
                let k = &w[((co * g.cin + ci) * kd + kz) * 9..][..9];
                // G·g (6×3), then (G·g)·Gᵀ (6×6).
                let gt = |g0: f32, g1: f32, g2: f32| {
                    [
                        g0 / 4.0,
                        -(g0 + g1 + g2) / 6.0,
                        -(g0 - g1 + g2) / 6.0,
                        g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
                        g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
                        g2,
                    ]
                };
                let cols = [gt(k[0], k[3], k[6]), gt(k[1], k[4], k[7]), gt(k[2], k[5], k[8])];
                for i in 0..T {
                    let row = gt(cols[0][i], cols[1][i], cols[2][i]);
                    for (j, v) in row.iter().enumerate() {
                        loc[(i * T + j) * kt + kz * g.cin + ci] = *v;
                    }
                }
            }
        }
        for xi in 0..NXI {
            // SAFETY: the task for `co` alone writes row `co` of every U[ξ].
            let dst = unsafe { std::slice::from_raw_parts_mut(up.0.add((xi * g.cout + co) * kt), kt) };
            dst.copy_from_slice(&loc[xi * kt..(xi + 1) * kt]);
        }
    });
    u
}

/// Tile rows per task: enough tiles for an efficient gemm, few enough that a task's
/// transformed input and output (36 × (K + Cout) per tile) stay near the core's cache.
fn tile_rows_per_task(g: &Geo, tw: usize, th: usize) -> usize {
    let per_tile = NXI * (g.cin * g.k[0] + g.cout);
    // 256 KB of V and M per task and at least 32 tiles per gemm: the best of a sweep of both
    // (64 KB–4 MB, 1–256 tiles) on the benchmark U-Net's inference (docs/benchmarks/learn.md).
    let by_cache = (1usize << 16) / (per_tile * tw).max(1);
    let by_gemm = 32usize.div_ceil(tw);
    by_cache.max(by_gemm).clamp(1, th)
}

/// Scratch buffers of one worker, reused across its tasks.
#[derive(Default)]
struct Scratch {
    row: Vec<f32>,
    phases: Vec<f32>,
    y: Vec<f32>,
    h: Vec<f32>,
    v: Vec<f32>,
    m: Vec<f32>,
    q: Vec<f32>,
}

/// Winograd forward convolution (same contract as [`super::conv::conv_forward_epilogue`]).
pub fn conv_forward(x: &[f32], w: &[f32], g: &Geo, ep: Option<&Epilogue>) -> Vec<f32> {
    conv_forward_impl(x, w, g, ep, simd_level())
}

/// Instruction set the transforms are compiled for, detected once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simd {
    Generic,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn simd_level() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Simd::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") {
            return Simd::Avx2;
        }
    }
    Simd::Generic
}

#[inline(always)]
fn conv_forward_impl(x: &[f32], w: &[f32], g: &Geo, ep: Option<&Epilogue>, simd: Simd) -> Vec<f32> {
    let [d_o, ho, wo] = g.out();
    let (tw, th) = (wo.div_ceil(M), ho.div_ceil(M));
    let nr = tile_rows_per_task(g, tw, th);
    let tk = std::time::Instant::now();
    let u = kernel_transform(w, g);
    super::prof(8, tk);
    let mut out = petri_api::mem::zeroed_vec::<f32>(g.n * g.cout * d_o * ho * wo);
    let dst = SendPtr(out.as_mut_ptr());
    let mut tasks = Vec::new();
    for b in 0..g.n {
        for z in 0..d_o {
            let mut r = 0;
            while r < th {
                tasks.push((b, z, r, (r + nr).min(th)));
                r += nr;
            }
        }
    }
    let plan = Plan { g: *g, x, u: &u, ep, dst, tw };
    thread_local! {
        // Per worker thread, kept across tasks and calls: fresh buffers would be page-faulted in
        // again for every task (rayon's `for_each_init` re-initialises on every split).
        static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
    }
    tasks.into_par_iter().for_each(|t| {
        SCRATCH.with_borrow_mut(|s| match simd {
            Simd::Generic => task(&plan, s, t),
            // SAFETY: the features were detected by `simd_level`.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { task_avx2(&plan, s, t) },
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { task_avx512(&plan, s, t) },
        })
    });
    out
}

/// What every task of one convolution shares.
struct Plan<'a> {
    g: Geo,
    x: &'a [f32],
    u: &'a [f32],
    ep: Option<&'a Epilogue>,
    dst: SendPtr,
    tw: usize,
}

// SAFETY: `dst` is written by disjoint tasks only (see `task`).
unsafe impl Sync for Plan<'_> {}

/// [`task`] compiled for AVX2 (the transforms are auto-vectorised loops). Without fast-math no
/// FMA contraction happens, so every build gives the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn task_avx2(p: &Plan, s: &mut Scratch, t: (usize, usize, usize, usize)) {
    task(p, s, t)
}

/// [`task`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn task_avx512(p: &Plan, s: &mut Scratch, t: (usize, usize, usize, usize)) {
    task(p, s, t)
}

/// One task: batch item `b`, output slice `z`, tile rows `ty0..ty1`.
#[inline(always)]
fn task(p: &Plan, s: &mut Scratch, (b, z, ty0, ty1): (usize, usize, usize, usize)) {
    let (g, x, u, ep, dst, tw) = (&p.g, p.x, p.u, p.ep, p.dst, p.tw);
    let [d, h, wd] = g.inp;
    let [d_o, ho, wo] = g.out();
    let plane_o = ho * wo;
    let vol_o = d_o * plane_o;
    let in_vol = d * h * wd;
    {
        let [kd, _, _] = g.k;
        let [pd, ph, pw] = g.pad;
        // Kernel depth taps that hit the input volume; their K rows are contiguous in U.
        let kz0 = pd.saturating_sub(z);
        let kz1 = kd.min(d + pd - z);
        let kv = (kz1 - kz0) * g.cin;
        let kt = kd * g.cin;
        let nrow = ty1 - ty0;
        let tb = nrow * tw;
        let hrows = M * nrow + 2;
        let wp = M * tw + 2;
        s.row.resize(wp, 0.0);
        s.phases.resize(4 * (tw + 1), 0.0);
        s.h.resize(hrows * T * tw, 0.0);
        s.v.resize(NXI * kv * tb, 0.0);
        s.m.resize(NXI * g.cout * tb, 0.0);
        s.q.resize(M * T * tw, 0.0);
        s.y.resize(M * tw, 0.0);
        let y_first = (M * ty0) as isize - ph as isize;
        let tq0 = std::time::Instant::now();
        // Input transform.
        for kz in kz0..kz1 {
            let iz = z + kz - pd;
            for ci in 0..g.cin {
                let kk = (kz - kz0) * g.cin + ci;
                let plane = &x[b * g.cin * in_vol + ci * in_vol + iz * h * wd..][..h * wd];
                // Along x, every input row the block's tiles touch.
                for lr in 0..hrows {
                    let hdst = &mut s.h[lr * T * tw..(lr + 1) * T * tw];
                    let y = y_first + lr as isize;
                    if y < 0 || y >= h as isize {
                        hdst.fill(0.0);
                        continue;
                    }
                    let src = &plane[y as usize * wd..][..wd];
                    // Zero-padded row: column c holds input column c − pw.
                    let row = &mut s.row[..wp];
                    let n = wd.min(wp - pw);
                    row[..pw].fill(0.0);
                    row[pw..pw + n].copy_from_slice(&src[..n]);
                    row[pw + n..].fill(0.0);
                    // Phases p_r[tx] = row[4·tx + r] (r < 4), then h_k[tx] = Σ_l Bᵀ[k][l] ·
                    // row[4·tx + l] from p_0..p_3 and p_0, p_1 shifted by one tile: every loop
                    // is a plain vector loop (a per-tile 6-wide window does not vectorise).
                    let ph = &mut s.phases[..4 * (tw + 1)];
                    let (p0, rest) = ph.split_at_mut(tw + 1);
                    let (p1, rest) = rest.split_at_mut(tw + 1);
                    let (p2, p3) = rest.split_at_mut(tw + 1);
                    for (tx, c) in row.chunks_exact(M).enumerate().take(tw + 1) {
                        p0[tx] = c[0];
                        p1[tx] = c[1];
                        p2[tx] = c[2];
                        p3[tx] = c[3];
                    }
                    // `row` has 4·tw + 2 values: p_0 and p_1 get their tile tw from the tail.
                    p0[tw] = row[M * tw];
                    p1[tw] = row[M * tw + 1];
                    bt6([&p0[..tw], &p1[..tw], &p2[..tw], &p3[..tw], &p0[1..], &p1[1..]], hdst, tw, tw);
                }
                // Along y, per tile row, straight into V[ξ = i·6 + k][kk][tile].
                for r in 0..nrow {
                    for k in 0..T {
                        let hr = |j: usize| &s.h[((M * r + j) * T + k) * tw..][..tw];
                        let rows = [hr(0), hr(1), hr(2), hr(3), hr(4), hr(5)];
                        // Output i goes to ξ = i·6 + k: stride 6·kv·tb between the six outputs.
                        let base = (k * kv + kk) * tb + r * tw;
                        bt6_strided(rows, &mut s.v, base, T * kv * tb, tw);
                    }
                }
            }
        }
        // 36 gemms.
        for xi in 0..NXI {
            // SAFETY: U is Cout × Kt per ξ (rows kz0·cin.. of width kv used), V is kv × tb and
            // M is Cout × tb per ξ, all inside their buffers.
            unsafe {
                sgemm(
                    g.cout,
                    tb,
                    kv,
                    s.m.as_mut_ptr().add(xi * g.cout * tb),
                    tb,
                    false,
                    u.as_ptr().add(xi * g.cout * kt + kz0 * g.cin),
                    kt as isize,
                    1,
                    s.v.as_ptr().add(xi * kv * tb),
                    tb as isize,
                    1,
                );
            }
        }
        super::prof(9, tq0);
        let tq2 = std::time::Instant::now();
        // Output transform.
        let dst = dst;
        for co in 0..g.cout {
            let affine = ep.map(|e| (e.scale[co], e.shift[co], e.relu));
            for r in 0..nrow {
                let mrow = |xi: usize| &s.m[(xi * g.cout + co) * tb + r * tw..][..tw];
                // Along the first transform axis (i): q[a][k] = Σ_i Aᵀ[a][i] · M[i·6 + k].
                for k in 0..T {
                    let ins =
                        [mrow(k), mrow(T + k), mrow(2 * T + k), mrow(3 * T + k), mrow(4 * T + k), mrow(5 * T + k)];
                    at6_strided(ins, &mut s.q, k * tw, T * tw, tw);
                }
                // Along the second axis (k), straight into the output rows (4 values per tile),
                // clipped to the output size.
                let ty = ty0 + r;
                for a in 0..M {
                    let oy = M * ty + a;
                    if oy >= ho {
                        break;
                    }
                    // SAFETY: this task alone writes output rows 4·ty0.. 4·ty1 of slice z of
                    // item b (every channel).
                    let orow = unsafe {
                        std::slice::from_raw_parts_mut(
                            dst.0.add(b * g.cout * vol_o + co * vol_o + z * plane_o + oy * wo),
                            wo,
                        )
                    };
                    let qa = |k: usize| &s.q[(a * T + k) * tw..][..tw];
                    let (y0, rest) = s.y.split_at_mut(tw);
                    let (y1, rest) = rest.split_at_mut(tw);
                    let (y2, y3) = rest.split_at_mut(tw);
                    at6([qa(0), qa(1), qa(2), qa(3), qa(4), qa(5)], [y0, y1, y2, y3], tw);
                    // Interleave the four phases (a plain 4-way interleaving store loop).
                    let full = wo / M;
                    for (tx, o) in orow.chunks_exact_mut(M).enumerate() {
                        o[0] = y0[tx];
                        o[1] = y1[tx];
                        o[2] = y2[tx];
                        o[3] = y3[tx];
                    }
                    for (i, o) in orow[full * M..].iter_mut().enumerate() {
                        *o = [&y0, &y1, &y2, &y3][i][full];
                    }
                    match affine {
                        Some((sc, sh, true)) => orow.iter_mut().for_each(|v| *v = (*v * sc + sh).max(0.0)),
                        Some((sc, sh, false)) => orow.iter_mut().for_each(|v| *v = *v * sc + sh),
                        None => {}
                    }
                }
            }
        }
        super::prof(10, tq2);
    }
}

/// [`bt6`] writing its six outputs at `base + i·stride` of `v`.
#[inline(always)]
fn bt6_strided(d: [&[f32]; 6], v: &mut [f32], base: usize, stride: usize, n: usize) {
    bt6(d, &mut v[base..base + 5 * stride + n], n, stride);
}

/// Six-input [`at6`] along the first axis, writing `q[a·stride + off ..]` for a = 0..3.
#[inline(always)]
fn at6_strided(m: [&[f32]; 6], q: &mut [f32], off: usize, stride: usize, n: usize) {
    let q = &mut q[off..off + 3 * stride + n];
    let (o0, rest) = q.split_at_mut(stride);
    let (o1, rest) = rest.split_at_mut(stride);
    let (o2, o3) = rest.split_at_mut(stride);
    at6(m, [o0, o1, o2, o3], n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::conv_forward_im2col;
    use crate::ops::test_data::lcg;

    /// Largest |a − b| relative to the largest |b|.
    fn rel_err(a: &[f32], b: &[f32]) -> f32 {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    #[test]
    fn matches_direct_convolution_2d_and_3d() {
        // Sizes not multiples of 4 (partial edge tiles), padding 0 and 1, depth taps clipped at
        // the volume's ends, batch > 1.
        let cases = [
            Geo { n: 2, cin: 8, cout: 9, inp: [1, 13, 18], k: [1, 3, 3], pad: [0, 1, 1] },
            Geo { n: 1, cin: 16, cout: 8, inp: [1, 9, 7], k: [1, 3, 3], pad: [0, 0, 0] },
            Geo { n: 1, cin: 12, cout: 10, inp: [1, 33, 70], k: [1, 3, 3], pad: [0, 1, 0] },
            Geo { n: 2, cin: 3, cout: 8, inp: [5, 10, 11], k: [3, 3, 3], pad: [1, 1, 1] },
            Geo { n: 1, cin: 8, cout: 8, inp: [4, 8, 8], k: [2, 3, 3], pad: [0, 1, 1] },
        ];
        for g in cases {
            assert!(applicable(&g), "{g:?}");
            let x = lcg(g.n * g.cin * g.inp.iter().product::<usize>(), 11);
            let w = lcg(g.cout * g.kk() * 9, 12);
            let want = conv_forward_im2col(&x, &w, &g, None);
            let got = conv_forward(&x, &w, &g, None);
            assert_eq!(got.len(), want.len());
            let e = rel_err(&got, &want);
            assert!(e < 2e-6 * (g.kk() as f32).sqrt(), "{g:?}: relative error {e}");
            // The epilogue (batch norm + ReLU folded) equals applying it afterwards.
            let ep = Epilogue {
                scale: (0..g.cout).map(|c| 0.5 + c as f32 * 0.1).collect(),
                shift: (0..g.cout).map(|c| c as f32 * 0.01 - 0.03).collect(),
                relu: true,
            };
            let fused = conv_forward(&x, &w, &g, Some(&ep));
            let v = g.out().iter().product::<usize>();
            for (i, (f, y)) in fused.iter().zip(&got).enumerate() {
                let c = (i / v) % g.cout;
                assert_eq!(*f, (y * ep.scale[c] + ep.shift[c]).max(0.0));
            }
        }
    }

    #[test]
    fn result_is_independent_of_thread_count() {
        let g = Geo { n: 2, cin: 16, cout: 16, inp: [3, 40, 36], k: [3, 3, 3], pad: [1, 1, 1] };
        let x = lcg(g.n * g.cin * 3 * 40 * 36, 7);
        let w = lcg(g.cout * g.kk() * 9, 8);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let a = one.install(|| conv_forward(&x, &w, &g, None));
        let b = three.install(|| conv_forward(&x, &w, &g, None));
        assert_eq!(a, b);
        // And the generic (non-AVX2) build of the same code gives the same bits.
        assert_eq!(a, conv_forward_impl(&x, &w, &g, None, Simd::Generic));
    }

    #[test]
    fn small_layers_stay_on_the_direct_path() {
        assert!(!applicable(&Geo { n: 1, cin: 1, cout: 32, inp: [1, 64, 64], k: [1, 3, 3], pad: [0, 1, 1] }));
        assert!(!applicable(&Geo { n: 1, cin: 32, cout: 32, inp: [1, 64, 64], k: [1, 1, 1], pad: [0, 0, 0] }));
        assert!(!applicable(&Geo { n: 1, cin: 32, cout: 32, inp: [1, 3, 64], k: [1, 3, 3], pad: [0, 1, 1] }));
    }
}
