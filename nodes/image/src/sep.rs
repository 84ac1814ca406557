//! Fused separable filtering: the fast path behind gaussian, mean, unsharp and the local
//! threshold.
//!
//! The Z pass (3-D only) reads the source pixels and writes one f64 volume; then every output row
//! gets its Y pass (a weighted sum of 2r + 1 whole rows) and its X pass (on a padded copy of that
//! row) while it is in cache, and a `finish` closure turns the blurred row into the node's output
//! row (f32 image, sharpened image, mask...). Compared with three full-volume passes this reads
//! and writes the big volume once instead of three times and never converts it as a whole.
//!
//! Arithmetic is exactly that of scipy's `correlate1d` on a symmetric kernel, axis after axis
//! (Z, Y, X): `w0·a[i] + Σ_k wk·(a[i−k] + a[i+k])` in f64. The hot loops are compiled twice —
//! plain x86-64 (SSE2) and AVX2 (chosen at run time) — and both do the same IEEE operations in
//! the same order (no FMA), so the result is bit-identical on every machine.

use rayon::prelude::*;

use crate::util::Border;

/// A value the filters read: pixel types and f64.
pub trait Num: Copy + Send + Sync + 'static {
    fn f(self) -> f64;
}
macro_rules! num {
    ($($t:ty),*) => {$(impl Num for $t { #[inline(always)] fn f(self) -> f64 { self as f64 } })*};
}
num!(u8, u16, u32, f32, f64);

/// Whether the CPU has AVX2 (the hot loops then run their AVX2 build; same results).
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A function giving the line at offset k (at least as long as the output line).
type Line<'a, T> = &'a dyn Fn(isize) -> &'a [T];

/// `out = w0·c + Σ wk·(lo_k + hi_k)` over whole lines; `line(k)` gives the line at offset ±k.
#[inline(always)]
fn lines_impl<T: Num>(out: &mut [f64], w: &[f64], line: Line<'_, T>) {
    let n = out.len();
    let c = &line(0)[..n];
    for (o, &a) in out.iter_mut().zip(c) {
        *o = w[0] * a.f();
    }
    for (k, &wk) in w.iter().enumerate().skip(1) {
        let lo = &line(-(k as isize))[..n];
        let hi = &line(k as isize)[..n];
        for ((o, &a), &b) in out.iter_mut().zip(lo).zip(hi) {
            *o += wk * (a.f() + b.f());
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn lines_avx2<T: Num>(out: &mut [f64], w: &[f64], line: Line<'_, T>) {
    lines_impl(out, w, line)
}

fn lines<T: Num>(avx2: bool, out: &mut [f64], w: &[f64], line: Line<'_, T>) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: only called when the CPU reports AVX2.
        return unsafe { lines_avx2(out, w, line) };
    }
    let _ = avx2;
    lines_impl(out, w, line)
}

/// X pass on one row: pads `row` into `pad` with the border rule, then folds the kernel.
#[inline(always)]
fn xrow_impl(row: &[f64], w: &[f64], border: Border, pad: &mut Vec<f64>, out: &mut [f64]) {
    let n = row.len();
    let r = w.len() - 1;
    pad.clear();
    pad.extend((0..r).map(|p| row[border.index(p as isize - r as isize, n)]));
    pad.extend_from_slice(row);
    pad.extend((0..r).map(|p| row[border.index((n + p) as isize, n)]));
    for (o, &c) in out.iter_mut().zip(&pad[r..r + n]) {
        *o = w[0] * c;
    }
    for (k, &wk) in w.iter().enumerate().skip(1) {
        let lo = &pad[r - k..r - k + n];
        let hi = &pad[r + k..r + k + n];
        for ((o, &a), &b) in out.iter_mut().zip(lo).zip(hi) {
            *o += wk * (a + b);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn xrow_avx2(row: &[f64], w: &[f64], border: Border, pad: &mut Vec<f64>, out: &mut [f64]) {
    xrow_impl(row, w, border, pad, out)
}

fn xrow(avx2: bool, row: &[f64], w: &[f64], border: Border, pad: &mut Vec<f64>, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: only called when the CPU reports AVX2.
        return unsafe { xrow_avx2(row, w, border, pad, out) };
    }
    let _ = avx2;
    xrow_impl(row, w, border, pad, out)
}

/// Z pass of a Z×Y×X volume into f64 (lines are whole planes, cut into cache-sized segments).
fn zpass<T: Num>(src: &[T], dims: [usize; 3], w: &[f64], border: Border, avx2: bool) -> Vec<f64> {
    let [nz, ny, nx] = dims;
    let plane = ny * nx;
    let seg = plane.min(2048);
    let mut out = vec![0f64; src.len()];
    out.par_chunks_mut(plane)
        .enumerate()
        .flat_map(|(z, p)| p.par_chunks_mut(seg).enumerate().map(move |(si, o)| (z as isize, si * seg, o)))
        .for_each(|(z, s0, o)| {
            let line = |k: isize| -> &[T] { &src[border.index(z + k, nz) * plane + s0..] };
            lines(avx2, o, w, &line);
        });
    out
}

/// Filters one Z×Y×X volume with symmetric kernels (halves, Z/Y/X; `None` = axis untouched)
/// and writes every output row through `finish(source row as f64, filtered row, output row)`;
/// the source row is only filled in when `with_source` is set (else it is empty).
pub fn filter_rows<P: Num, O: Send>(
    src: &[P],
    dims: [usize; 3],
    kernels: &[Option<Vec<f64>>; 3],
    border: Border,
    out: &mut [O],
    with_source: bool,
    finish: impl Fn(&[f64], &[f64], &mut [O]) + Sync,
) {
    let [nz, ny, nx] = dims;
    assert_eq!(src.len(), nz * ny * nx);
    assert_eq!(out.len(), src.len());
    let avx2 = has_avx2();
    let kz = kernels[0].as_ref().filter(|w| nz > 1 && w.len() > 1);
    let ky = kernels[1].as_ref().filter(|w| ny > 1 && w.len() > 1);
    let kx = kernels[2].as_ref().filter(|w| nx > 1 && w.len() > 1);
    let zbuf = kz.map(|w| zpass(src, dims, w, border, avx2));
    out.par_chunks_mut(nx).enumerate().for_each_init(
        || (vec![0f64; nx], vec![0f64; nx], Vec::with_capacity(nx + 64), Vec::with_capacity(nx)),
        |(ybuf, xbuf, pad, sbuf), (row, o)| {
            let (z, y) = (row / ny, (row % ny) as isize);
            let base = z * ny * nx;
            match (&zbuf, ky) {
                (Some(a), Some(w)) => {
                    let line = |k: isize| -> &[f64] { &a[base + border.index(y + k, ny) * nx..] };
                    lines(avx2, ybuf, w, &line);
                }
                (None, Some(w)) => {
                    let line = |k: isize| -> &[P] { &src[base + border.index(y + k, ny) * nx..] };
                    lines(avx2, ybuf, w, &line);
                }
                (Some(a), None) => ybuf.copy_from_slice(&a[row * nx..(row + 1) * nx]),
                (None, None) => {
                    for (b, s) in ybuf.iter_mut().zip(&src[row * nx..(row + 1) * nx]) {
                        *b = s.f();
                    }
                }
            }
            let filtered: &[f64] = match kx {
                Some(w) => {
                    xrow(avx2, ybuf, w, border, pad, xbuf);
                    xbuf
                }
                None => ybuf,
            };
            sbuf.clear();
            if with_source {
                sbuf.extend(src[row * nx..(row + 1) * nx].iter().map(|v| v.f()));
            }
            finish(sbuf, filtered, o);
        },
    );
}

/// [`filter_rows`] over every (t, c) volume of a stack, whatever its pixel type.
pub fn filter_stack<O: Send + Default + Clone>(
    s: &petri_api::Stack,
    kernels: &[Option<Vec<f64>>; 3],
    border: Border,
    with_source: bool,
    finish: impl Fn(&[f64], &[f64], &mut [O]) + Sync,
) -> Vec<O> {
    let n = s.volume_len();
    let mut out = vec![O::default(); s.len()];
    petri_api::with_pixels!(s.buffer(), px => {
        for (o, v) in out.chunks_mut(n).zip(px.chunks(n)) {
            filter_rows(v, s.zyx(), kernels, border, o, with_source, &finish);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util;

    #[test]
    fn fused_passes_equal_axis_by_axis_passes_bit_for_bit() {
        for dims in [[7, 13, 11], [1, 9, 20], [3, 1, 5], [4, 6, 1], [3, 50, 47]] {
            let n: usize = dims.iter().product();
            let src: Vec<u16> = (0..n).map(|i| ((i * 7919 + 13) % 1009) as u16).collect();
            for border in [Border::Nearest, Border::Reflect] {
                let kernels = [
                    Some(util::gaussian_kernel(1.3, 4.0)),
                    Some(util::gaussian_kernel(0.7, 4.0)),
                    Some(util::gaussian_kernel(2.1, 4.0)),
                ];
                let mut want: Vec<f64> = src.iter().map(|&v| v as f64).collect();
                util::separable(&mut want, dims, &kernels, border);
                let mut got = vec![0f64; n];
                filter_rows(&src, dims, &kernels, border, &mut got, false, |_, f, o| o.copy_from_slice(f));
                assert_eq!(got, want, "{dims:?} {border:?}");
                // And the plain (SSE2) path gives the same bits as the AVX2 one.
                let mut plain = vec![0f64; n];
                let w = kernels[2].as_ref().unwrap();
                let row: Vec<f64> = (0..40).map(|i| (i * 37 % 11) as f64).collect();
                let (mut p1, mut p2) = (Vec::new(), Vec::new());
                let mut a = vec![0f64; 40];
                let mut b = vec![0f64; 40];
                xrow(false, &row, w, border, &mut p1, &mut a);
                xrow(has_avx2(), &row, w, border, &mut p2, &mut b);
                assert_eq!(a, b);
                plain.copy_from_slice(&got);
            }
        }
    }
}
