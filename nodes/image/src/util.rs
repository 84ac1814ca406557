//! Helpers shared by the image nodes: input checks, per-volume iteration and separable
//! 1-D correlation along one axis of a Z×Y×X volume (used by gaussian, mean, unsharp, local
//! thresholds...).
//!
//! The separable passes are hand-written rather than taken from ndarray because they need
//! scipy's border modes, a symmetric-kernel fold (`w0·a[i] + Σ wk·(a[i−k] + a[i+k])`, the
//! same sum scipy's `correlate1d` forms) and a memory layout that keeps the inner loop
//! contiguous (so the compiler vectorises it) on every axis.

use std::sync::Arc;

use petri_api::{Buffer, DType, NodeCtx, NodeError, Pixel, Stack};
use rayon::prelude::*;

/// Border handling of a filter, in scipy.ndimage's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Border {
    /// `nearest`: the edge pixel is repeated (a a a | a b c d | d d d).
    Nearest,
    /// `reflect`: mirrored about the edge, edge pixel included (b a | a b c d | d c).
    Reflect,
}

impl Border {
    /// Source index for position `j` (may be outside `0..n`) along an axis of length `n`.
    #[inline]
    pub fn index(self, j: isize, n: usize) -> usize {
        let n = n as isize;
        match self {
            Border::Nearest => j.clamp(0, n - 1) as usize,
            Border::Reflect => {
                let m = j.rem_euclid(2 * n);
                (if m >= n { 2 * n - 1 - m } else { m }) as usize
            }
        }
    }
}

/// Number of spatial axes the node works in: 3 when the stack has more than one Z slice.
pub fn spatial_ndim(s: &Stack) -> usize {
    if s.z() > 1 { 3 } else { 2 }
}

/// Refuses NaN and ±Inf in a float image, naming the port.
pub fn check_finite(s: &Stack, port: &str) -> Result<(), NodeError> {
    s.check_finite().map_err(|m| NodeError::input(port, m))
}

/// Expands a per-axis parameter given for `ndim` axes (Z, Y, X or Y, X) to Z, Y, X order; in
/// 2-D the Z entry is `z_fill`.
pub fn zyx_from(values: &[f64], ndim: usize, z_fill: f64) -> [f64; 3] {
    if ndim == 3 { [values[0], values[1], values[2]] } else { [z_fill, values[0], values[1]] }
}

/// Per-axis values for a `floats` parameter: one value for all axes, or exactly one per
/// spatial axis (Z, Y, X in 3-D; Y, X in 2-D).
pub fn per_axis(name: &str, values: &[f64], ndim: usize) -> Result<Vec<f64>, NodeError> {
    match values.len() {
        1 => Ok(vec![values[0]; ndim]),
        k if k == ndim => Ok(values.to_vec()),
        k => Err(NodeError::param(
            name,
            format!(
                "gives {k} values but the image has {ndim} spatial axes ({}); give one value, or one per axis",
                if ndim == 3 { "Z, Y, X" } else { "Y, X" }
            ),
        )),
    }
}

/// Runs a per-volume filter on each time point separately, checking for cancellation and
/// reporting progress between frames, and reassembles every output (same geometry as `s`).
/// A single time point is passed straight through.
pub fn by_frames(
    ctx: &NodeCtx,
    s: &Stack,
    what: &str,
    f: impl Fn(&Stack) -> Result<Vec<Stack>, NodeError>,
) -> Result<Vec<Stack>, NodeError> {
    ctx.check_cancel()?;
    if s.t() <= 1 {
        return f(s);
    }
    let nt = s.t();
    let mut parts: Vec<Vec<Stack>> = Vec::with_capacity(nt);
    for t in 0..nt {
        ctx.check_cancel()?;
        ctx.progress(t as f64 / nt as f64, format!("{what}: time point {}/{nt}", t + 1));
        let frame = s.frame_stack(t).ok_or_else(|| NodeError::failed(format!("time point {t} out of range")))?;
        parts.push(f(&frame)?);
    }
    ctx.progress(1.0, format!("{what}: done"));
    let n_out = parts[0].len();
    (0..n_out)
        .map(|k| {
            let frames: Vec<&Stack> = parts.iter().map(|p| &p[k]).collect();
            let buf = concat(&frames)?;
            s.with_data(buf).map_err(|e| NodeError::failed(e.to_string()))
        })
        .collect()
}

/// [`by_frames`] for a filter with one output.
pub fn by_frames1(
    ctx: &NodeCtx,
    s: &Stack,
    what: &str,
    f: impl Fn(&Stack) -> Result<Stack, NodeError>,
) -> Result<Stack, NodeError> {
    let mut v = by_frames(ctx, s, what, |fr| f(fr).map(|o| vec![o]))?;
    v.pop().ok_or_else(|| NodeError::failed("no output"))
}

/// The pixels of several same-typed stacks, one after the other.
fn concat(parts: &[&Stack]) -> Result<Buffer, NodeError> {
    fn cat<P: Pixel>(parts: &[&Stack]) -> Result<Vec<P>, NodeError> {
        let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            v.extend_from_slice(p.pixels::<P>().ok_or_else(|| NodeError::failed("time points of mixed pixel types"))?);
        }
        Ok(v)
    }
    Ok(match parts[0].dtype() {
        DType::U8 => Buffer::U8(Arc::new(cat::<u8>(parts)?)),
        DType::U16 => Buffer::U16(Arc::new(cat::<u16>(parts)?)),
        DType::U32 => Buffer::U32(Arc::new(cat::<u32>(parts)?)),
        DType::F32 => Buffer::F32(Arc::new(cat::<f32>(parts)?)),
    })
}

/// Volume (t, c) of a stack as f64 (a copy).
pub fn volume_f64(s: &Stack, t: usize, c: usize) -> Vec<f64> {
    petri_api::with_pixels!(s.buffer(), px => {
        let n = s.volume_len();
        let o = (t * s.c() + c) * n;
        px[o..o + n].iter().map(|v| v.to_f64()).collect()
    })
}

/// Runs `f` on every (t, c) volume converted to f64 and collects the results as f32.
pub fn map_volumes_f64(s: &Stack, mut f: impl FnMut(&mut Vec<f64>)) -> Vec<f32> {
    let n = s.volume_len();
    let mut out = vec![0.0f32; s.len()];
    for t in 0..s.t() {
        for c in 0..s.c() {
            let mut vol = volume_f64(s, t, c);
            f(&mut vol);
            let o = (t * s.c() + c) * n;
            par_map_into(&vol, &mut out[o..o + n], |&v| v as f32);
        }
    }
    out
}

/// Writes `src` into `dst` in parallel (simple element map), e.g. to convert f64 → f32.
/// Element-wise and histogram passes below this many values run on the calling thread: they are
/// memory-bound, a second thread gains little, and handing work to the pool costs a thread
/// wake-up, which on a busy machine can take longer than the pass itself.
pub const SEQUENTIAL_BELOW: usize = 1 << 23;

pub fn par_map_into<A: Sync, B: Send>(src: &[A], dst: &mut [B], f: impl Fn(&A) -> B + Sync) {
    if src.len() < SEQUENTIAL_BELOW {
        for (o, i) in dst.iter_mut().zip(src) {
            *o = f(i);
        }
        return;
    }
    dst.par_chunks_mut(1 << 14).zip(src.par_chunks(1 << 14)).for_each(|(d, s)| {
        for (o, i) in d.iter_mut().zip(s) {
            *o = f(i);
        }
    });
}

/// Correlates a Z×Y×X volume along `axis` (0 = Z, 1 = Y, 2 = X) with a symmetric kernel given
/// by its half `w` (`w[0]` the centre, `w[k]` the weight at ±k), writing into `dst`.
pub fn correlate_axis(src: &[f64], dst: &mut [f64], dims: [usize; 3], axis: usize, w: &[f64], border: Border) {
    let [nz, ny, nx] = dims;
    debug_assert_eq!(src.len(), nz * ny * nx);
    debug_assert_eq!(dst.len(), src.len());
    let r = w.len() - 1;
    if axis == 2 {
        // Rows are contiguous: pad each row once, then fold the kernel over the padded copy.
        let idx: Vec<usize> = (0..nx + 2 * r).map(|p| border.index(p as isize - r as isize, nx)).collect();
        dst.par_chunks_mut(nx).zip(src.par_chunks(nx)).for_each_init(
            || vec![0.0f64; nx + 2 * r],
            |pad, (out, row)| {
                for (p, &j) in pad.iter_mut().zip(&idx) {
                    *p = row[j];
                }
                for (i, o) in out.iter_mut().enumerate() {
                    *o = w[0] * pad[i + r];
                }
                for (k, &wk) in w.iter().enumerate().skip(1) {
                    let lo = &pad[r - k..r - k + nx];
                    let hi = &pad[r + k..r + k + nx];
                    for ((o, a), b) in out.iter_mut().zip(lo).zip(hi) {
                        *o += wk * (a + b);
                    }
                }
            },
        );
        return;
    }
    // Z or Y: each output line (a row of X, or for Z a whole plane) is a weighted sum of whole
    // input lines, so the inner loop runs over contiguous memory.
    let (n, inner) = if axis == 1 { (ny, nx) } else { (nz, ny * nx) };
    let block = n * inner;
    // Long lines (the Z axis) are cut into segments so the 2r+1 input segments stay in cache.
    let seg = inner.min(4096);
    let nseg = inner.div_ceil(seg);
    dst.par_chunks_mut(seg).enumerate().for_each(|(ci, out)| {
        // chunk ci covers line (o, i), segment s — lines are `inner` long, cut into `nseg` pieces.
        let line = ci / nseg;
        let s0 = (ci % nseg) * seg;
        let (o, i) = (line / n, line % n);
        let base = o * block;
        let len = out.len();
        let at = |j: usize| &src[base + j * inner + s0..base + j * inner + s0 + len];
        let c = at(i);
        for (d, a) in out.iter_mut().zip(c) {
            *d = w[0] * a;
        }
        for (k, &wk) in w.iter().enumerate().skip(1) {
            let lo = at(border.index(i as isize - k as isize, n));
            let hi = at(border.index(i as isize + k as isize, n));
            for ((d, a), b) in out.iter_mut().zip(lo).zip(hi) {
                *d += wk * (a + b);
            }
        }
    });
}

/// Applies one symmetric kernel per axis (Z, Y, X order; `None` = leave that axis alone) to a
/// volume, in place (a scratch buffer of the same size is used).
pub fn separable(vol: &mut Vec<f64>, dims: [usize; 3], kernels: &[Option<Vec<f64>>; 3], border: Border) {
    let mut tmp = vec![0.0f64; vol.len()];
    for (axis, k) in kernels.iter().enumerate() {
        if let Some(w) = k {
            if dims[axis] == 1 || w.len() == 1 {
                // A single slice along this axis (or a 1-tap kernel) only rescales by Σw = 1.
                continue;
            }
            correlate_axis(vol, &mut tmp, dims, axis, w, border);
            std::mem::swap(vol, &mut tmp);
        }
    }
}

/// Half of scipy's normalised Gaussian kernel (`_gaussian_kernel1d`): radius
/// `int(truncate·σ + 0.5)`, weights `exp(−x²/2σ²)` divided by their sum.
pub fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let r = (truncate * sigma + 0.5) as usize;
    let full: Vec<f64> =
        (-(r as isize)..=r as isize).map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp()).collect();
    let sum: f64 = full.iter().sum();
    full[r..].iter().map(|v| v / sum).collect()
}

/// Reads a reference `results.json`, which may hold `NaN` (Python's json writes it; serde_json
/// refuses it, so it becomes `null` here).
#[cfg(test)]
pub fn read_results(dataset: &str) -> serde_json::Value {
    let p = petri_testkit::reference(dataset, "results.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text.replace("NaN", "null")).unwrap()
}

/// `tests/fixtures/image/<name>` (made by `make_reference.py` there).
#[cfg(test)]
pub fn fixture(name: &str) -> std::path::PathBuf {
    petri_testkit::fixtures().join("image").join(name)
}

/// `tests/fixtures/image/expected.json`.
#[cfg(test)]
pub fn expected() -> serde_json::Value {
    petri_testkit::read_json(&fixture("expected.json"))
}

/// Number of pixels where a stack differs from a fixture TIFF, and the largest difference.
#[cfg(test)]
pub fn diff_fixture(s: &Stack, name: &str) -> (usize, f64) {
    let (shape, want) = petri_testkit::read_tiff_f64(&fixture(name));
    assert_eq!(shape.iter().product::<usize>(), s.len(), "{name}: size");
    let got = s.buffer().to_f64_vec();
    let n = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    (n, petri_testkit::max_abs_diff(&got, &want))
}

/// Half of a box (uniform) kernel of odd `size`.
pub fn box_kernel(size: usize) -> Vec<f64> {
    vec![1.0 / size as f64; size / 2 + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_frames_reassembles_and_can_be_cancelled() {
        use petri_api::Axis;
        let px: Vec<u16> = (0..2 * 3 * 4 * 5).map(|i| (i * 37 % 101) as u16).collect();
        let s = Stack::new([2, 1, 3, 4, 5], &[Axis::T, Axis::Z], Buffer::U16(Arc::new(px))).unwrap();
        let whole = crate::median::median(&s, 3).unwrap();
        let split = by_frames1(&NodeCtx::detached(), &s, "median", |f| crate::median::median(f, 3)).unwrap();
        assert_eq!(split.pixels::<u16>(), whole.pixels::<u16>());
        assert_eq!(split.axes_string(), "TZYX");
        let cancelled = NodeCtx::new(
            Arc::new(std::sync::atomic::AtomicBool::new(true)),
            Arc::new(|_| {}),
            petri_api::Device::Cpu,
            std::env::temp_dir(),
        );
        assert!(matches!(by_frames1(&cancelled, &s, "median", |f| Ok(f.clone())), Err(NodeError::Cancelled)));
    }

    #[test]
    fn border_indices_follow_scipy() {
        let n = 4;
        let near: Vec<usize> = (-3..7).map(|j| Border::Nearest.index(j, n)).collect();
        assert_eq!(near, vec![0, 0, 0, 0, 1, 2, 3, 3, 3, 3]);
        let refl: Vec<usize> = (-3..7).map(|j| Border::Reflect.index(j, n)).collect();
        assert_eq!(refl, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(Border::Reflect.index(-5, 1), 0);
    }

    #[test]
    fn kernel_matches_scipy() {
        // scipy.ndimage._filters._gaussian_kernel1d(1.0, 0, 4)[4:]
        let k = gaussian_kernel(1.0, 4.0);
        let want = [
            0.39894346935609776,
            0.24197144565660073,
            0.05399112742070441,
            0.0044318616200312655,
            0.00013383062461474175,
        ];
        assert_eq!(k.len(), 5);
        for (a, b) in k.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
    }

    #[test]
    fn correlation_on_every_axis_matches_direct_sum() {
        let dims = [3, 4, 5];
        let src: Vec<f64> = (0..60).map(|i| ((i * 37) % 11) as f64).collect();
        let w = [0.5, 0.2, 0.05];
        for axis in 0..3 {
            for border in [Border::Nearest, Border::Reflect] {
                let mut dst = vec![0.0; 60];
                correlate_axis(&src, &mut dst, dims, axis, &w, border);
                for z in 0..3 {
                    for y in 0..4 {
                        for x in 0..5 {
                            let mut p = [z as isize, y as isize, x as isize];
                            let mut want = 0.0;
                            for k in -2isize..=2 {
                                p[axis] += k;
                                let q: Vec<usize> = (0..3).map(|a| border.index(p[a], dims[a])).collect();
                                want += w[k.unsigned_abs()] * src[(q[0] * 4 + q[1]) * 5 + q[2]];
                                p[axis] -= k;
                            }
                            let got = dst[(z * 4 + y) * 5 + x];
                            assert!((got - want).abs() < 1e-12, "axis {axis} {border:?}");
                        }
                    }
                }
            }
        }
    }
}
