//! Exact Euclidean distance transform (Felzenszwalb & Huttenlocher 2012, "Distance transforms of
//! sampled functions"), separable over the axes, with per-axis spacing and, optionally, the
//! feature transform (which site is nearest).
//!
//! Hand-written: no maintained Rust crate computes an exact, anisotropic 3-D EDT with a feature
//! transform. The squared distances are computed in f64; with unit (or integer) spacing they are
//! exact integers, so thresholds such as "distance ≤ r" used by the morphology nodes are exact.
//!
//! One pass per axis (X, then Y, then Z). Each pass computes, for every line along its axis, the
//! lower envelope of the parabolas `spacing²·(i − q)² + f(q)` rooted at every finite entry of the
//! previous pass. Lines run in parallel (rayon); Y and Z lines are processed in blocks of
//! consecutive x so each cache line is fetched once per block.
//!
//! Tie rule for the feature transform: deterministic; along each axis, at an exact crossing of
//! two parabolas the one rooted at the smaller coordinate wins (scipy's rule differs).

use rayon::prelude::*;

use crate::util::{Shape3, par_fill};

/// "No site on this line / in this volume".
pub const NO_SITE: u32 = u32::MAX;

/// A raw pointer that may cross threads. Used only where parallel tasks write to provably
/// disjoint elements (different lines of the same volume), which slices cannot express.
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// Through a method so closures capture the whole (Sync) wrapper, not the raw field.
    #[inline]
    fn get(self) -> *mut T {
        self.0
    }
}

/// Scratch buffers of one 1-D pass.
struct Scratch {
    /// Squared distances above this are reported as "no site" (∞), see [`edt_sq_features`].
    max_d2: f64,
    f: Vec<f64>,
    feat: Vec<u32>,
    v: Vec<usize>,
    z: Vec<f64>,
    out: Vec<f64>,
    out_feat: Vec<u32>,
}

impl Scratch {
    fn new(n: usize, max_d2: f64) -> Scratch {
        Scratch {
            max_d2,
            f: vec![0.0; n],
            feat: vec![0; n],
            v: vec![0; n],
            z: vec![0.0; n + 1],
            out: vec![0.0; n],
            out_feat: vec![0; n],
        }
    }

    /// Lower envelope of parabolas over `self.f[..n]` (infinite entries are not sites), into
    /// `self.out` (and `self.out_feat` from `self.feat` when `feats`).
    ///
    /// A zero entry is a site at distance 0 that shields everything behind it: no site beyond it
    /// can be nearer to a pixel on this side. So each run of non-zero entries only needs the sites
    /// of the run and its two bounding zeros, and zero entries cost nothing — most of the work in
    /// images that are mostly background.
    fn envelope(&mut self, n: usize, spacing: f64, feats: bool) {
        let mut i = 0;
        while i < n {
            if self.f[i] == 0.0 {
                self.out[i] = 0.0;
                if feats {
                    self.out_feat[i] = self.feat[i];
                }
                i += 1;
                continue;
            }
            let mut j = i;
            while j < n && self.f[j] != 0.0 {
                j += 1;
            }
            let lo = i.saturating_sub(1);
            let hi = if j < n { j + 1 } else { n };
            self.envelope_range(lo..hi, i..j, spacing, feats);
            i = j;
        }
    }

    /// Felzenszwalb–Huttenlocher on the sites in `sites`, written for the pixels in `outs`.
    fn envelope_range(
        &mut self,
        sites: std::ops::Range<usize>,
        outs: std::ops::Range<usize>,
        spacing: f64,
        feats: bool,
    ) {
        let s2 = spacing * spacing;
        let f = &self.f;
        let Some(first) = (sites.start..sites.end).find(|&q| f[q].is_finite()) else {
            self.out[outs.clone()].fill(f64::INFINITY);
            if feats {
                self.out_feat[outs].fill(NO_SITE);
            }
            return;
        };
        let (v, z) = (&mut self.v, &mut self.z);
        let mut k = 0usize;
        v[0] = first;
        z[0] = f64::NEG_INFINITY;
        z[1] = f64::INFINITY;
        for q in first + 1..sites.end {
            let fq = f[q];
            if !fq.is_finite() {
                continue;
            }
            let qf = q as f64;
            let gq = fq + s2 * qf * qf;
            loop {
                let p = v[k];
                let pf = p as f64;
                // Abscissa where the parabolas rooted at p and q cross (in index units).
                let s = (gq - (f[p] + s2 * pf * pf)) / (2.0 * s2 * (qf - pf));
                if s <= z[k] && k > 0 {
                    k -= 1;
                } else if s <= z[k] {
                    // k == 0 and z[0] = -inf: cannot happen for finite values; keep p.
                    break;
                } else {
                    k += 1;
                    v[k] = q;
                    z[k] = s;
                    z[k + 1] = f64::INFINITY;
                    break;
                }
            }
        }
        let mut k = 0usize;
        for q in outs {
            let qf = q as f64;
            while z[k + 1] < qf {
                k += 1;
            }
            let p = v[k];
            let d = qf - p as f64;
            let val = s2 * d * d + f[p];
            if val > self.max_d2 {
                self.out[q] = f64::INFINITY;
                if feats {
                    self.out_feat[q] = NO_SITE;
                }
            } else {
                self.out[q] = val;
                if feats {
                    self.out_feat[q] = self.feat[p];
                }
            }
        }
    }
}

/// Copies a block row segment: a fixed-size copy (inlined) for full 16-wide blocks, instead of a
/// `memmove` call per 128 bytes.
#[inline]
fn copy_small<T: Copy>(dst: &mut [T], src: &[T]) {
    if let (Ok(d), Ok(s)) = (<&mut [T; 16]>::try_from(&mut *dst), <&[T; 16]>::try_from(src)) {
        *d = *s;
    } else {
        dst.copy_from_slice(src);
    }
}

/// Runs the 1-D envelope along `axis` (0 = Z, 1 = Y, 2 = X) of every line of `d2` (and `feat`).
fn pass(d2: &mut [f64], feat: Option<&mut [u32]>, shape: Shape3, axis: usize, spacing: f64, max_d2: f64) {
    let [d, h, w] = shape;
    let feats = feat.is_some();
    let fptr = SyncPtr(feat.map_or(std::ptr::null_mut(), |f| f.as_mut_ptr()));
    if axis == 2 {
        // First pass on the binary input (0 at sites, ∞ elsewhere): the nearest site along a
        // row is found by two scans, no parabolas needed. Ties go to the site on the left.
        let rows_per_task = (65536 / w.max(1)).max(1);
        d2.par_chunks_mut(w * rows_per_task).enumerate().for_each(|(ci, chunk)| {
            let mut next = vec![usize::MAX; w];
            for (ri, row) in chunk.chunks_mut(w).enumerate() {
                let base = (ci * rows_per_task + ri) * w;
                let mut nx = usize::MAX;
                for q in (0..w).rev() {
                    if row[q] == 0.0 {
                        nx = q;
                    }
                    next[q] = nx;
                }
                let mut prev = usize::MAX;
                // SAFETY: each row belongs to exactly one task; `feat` has the length of `d2`.
                let fr = feats.then(|| unsafe { std::slice::from_raw_parts_mut(fptr.get().add(base), w) });
                let mut fr = fr;
                for q in 0..w {
                    if row[q] == 0.0 {
                        prev = q;
                    }
                    let dp = if prev == usize::MAX { usize::MAX } else { q - prev };
                    let dn = if next[q] == usize::MAX { usize::MAX } else { next[q] - q };
                    let (dist, site) = if dp <= dn { (dp, prev) } else { (dn, next[q]) };
                    let dd = dist as f64 * spacing;
                    if dist == usize::MAX || dd * dd > max_d2 {
                        row[q] = f64::INFINITY;
                        if let Some(f) = fr.as_deref_mut() {
                            f[q] = NO_SITE;
                        }
                    } else {
                        row[q] = dd * dd;
                        if let Some(f) = fr.as_deref_mut() {
                            f[q] = (base + site) as u32;
                        }
                    }
                }
            }
        });
        return;
    }
    // Lines along Y (within each z plane) or along Z (for each y): element i of the line
    // starting at `base` is `base + i * stride`.
    let (n, stride, outer, outer_step) = if axis == 1 { (h, w, d, h * w) } else { (d, h * w, h, w) };
    // Blocks of XB consecutive x: each row segment of a block is one contiguous copy, so every
    // cache line is read once (a plain strided gather thrashes the cache when the stride is a
    // power of two, as in 256×256 planes).
    const XB: usize = 16;
    let blocks = w.div_ceil(XB);
    let ptr = SyncPtr(d2.as_mut_ptr());
    (0..outer * blocks).into_par_iter().for_each_init(
        || (Scratch::new(n, max_d2), vec![0.0f64; n * XB], vec![0u32; if feats { n * XB } else { 0 }]),
        |(s, blk, fblk), job| {
            let (o, b) = (job / blocks, job % blocks);
            let x0 = b * XB;
            let bw = (x0 + XB).min(w) - x0;
            let base = o * outer_step + x0;
            // SAFETY: the block (o, x0..x0+bw) of every line is owned by this job alone, and all
            // indices are < d2.len() (= feat.len()).
            unsafe {
                for i in 0..n {
                    let src = std::slice::from_raw_parts(ptr.get().add(base + i * stride), bw);
                    copy_small(&mut blk[i * XB..i * XB + bw], src);
                    if feats {
                        let fsrc = std::slice::from_raw_parts(fptr.get().add(base + i * stride), bw);
                        copy_small(&mut fblk[i * XB..i * XB + bw], fsrc);
                    }
                }
            }
            for j in 0..bw {
                for i in 0..n {
                    s.f[i] = blk[i * XB + j];
                }
                if feats {
                    for i in 0..n {
                        s.feat[i] = fblk[i * XB + j];
                    }
                }
                s.envelope(n, spacing, feats);
                for i in 0..n {
                    blk[i * XB + j] = s.out[i];
                }
                if feats {
                    for i in 0..n {
                        fblk[i * XB + j] = s.out_feat[i];
                    }
                }
            }
            unsafe {
                for i in 0..n {
                    let dst = std::slice::from_raw_parts_mut(ptr.get().add(base + i * stride), bw);
                    copy_small(dst, &blk[i * XB..i * XB + bw]);
                    if feats {
                        let fdst = std::slice::from_raw_parts_mut(fptr.get().add(base + i * stride), bw);
                        copy_small(fdst, &fblk[i * XB..i * XB + bw]);
                    }
                }
            }
        },
    );
}

/// Squared Euclidean distance from every pixel to the nearest site (`is_site(i)` true), with
/// `spacing` in Z, Y, X order. Sites get 0; with no site at all every entry is +∞.
pub fn edt_sq(shape: Shape3, spacing: [f64; 3], is_site: impl Fn(usize) -> bool + Sync) -> Vec<f64> {
    let n = shape.iter().product();
    let mut d2 = par_fill(n, |i| if is_site(i) { 0.0 } else { f64::INFINITY });
    for axis in [2, 1, 0] {
        if shape[axis] > 1 || axis == 2 {
            pass(&mut d2, None, shape, axis, spacing[axis], f64::INFINITY);
        }
    }
    d2
}

/// Like [`edt_sq`], plus the flat index of the nearest site of every pixel ([`NO_SITE`] when
/// there is none), for pixels within `max_d2` (squared distance) of a site; farther pixels get
/// ∞ and [`NO_SITE`]. The cut is exact: a partial minimum above `max_d2` can never lead to a
/// final distance ≤ `max_d2` (later passes only add), and dropping those parabolas early makes
/// the later passes cheap when only a short distance matters (label expansion).
/// See the module docs for the tie rule.
pub fn edt_sq_features(
    shape: Shape3,
    spacing: [f64; 3],
    max_d2: f64,
    is_site: impl Fn(usize) -> bool + Sync,
) -> (Vec<f64>, Vec<u32>) {
    let n = shape.iter().product();
    let mut d2 = par_fill(n, |i| if is_site(i) { 0.0 } else { f64::INFINITY });
    let mut feat = par_fill(n, |i| if is_site(i) { i as u32 } else { NO_SITE });
    for axis in [2, 1, 0] {
        if shape[axis] > 1 || axis == 2 {
            pass(&mut d2, Some(&mut feat), shape, axis, spacing[axis], max_d2);
        }
    }
    (d2, feat)
}

/// Euclidean distance from every foreground pixel (`fg(i)`) to the nearest background pixel, as
/// f32 (scipy `distance_transform_edt`). `None` if the volume has no background pixel.
pub fn edt(shape: Shape3, spacing: [f64; 3], fg: impl Fn(usize) -> bool + Sync) -> Option<Vec<f32>> {
    let d2 = edt_sq(shape, spacing, |i| !fg(i));
    if d2.first().is_some_and(|v| v.is_infinite()) {
        return None;
    }
    Some(par_fill(d2.len(), |i| d2[i].sqrt() as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: min over all sites of the squared distance.
    fn brute(shape: Shape3, sp: [f64; 3], sites: &[bool]) -> Vec<f64> {
        let [d, h, w] = shape;
        let idx = |i: usize| [(i / (h * w)) as f64, ((i / w) % h) as f64, (i % w) as f64];
        (0..d * h * w)
            .map(|i| {
                let a = idx(i);
                (0..sites.len())
                    .filter(|&j| sites[j])
                    .map(|j| {
                        let b = idx(j);
                        (0..3).map(|k| (sp[k] * (a[k] - b[k])).powi(2)).sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    fn pseudo_random_sites(n: usize, seed: u64, density: u64) -> Vec<bool> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 33) % 100 < density
            })
            .collect()
    }

    #[test]
    fn matches_brute_force_anisotropic_3d() {
        for (shape, sp, dens) in [
            ([5, 9, 13], [2.0, 1.0, 0.5], 5),
            ([7, 6, 11], [1.0, 1.0, 1.0], 2),
            ([1, 17, 23], [1.0, 0.3, 0.7], 3),
            ([4, 1, 30], [1.5, 1.0, 1.0], 10),
        ] {
            let n = shape.iter().product();
            let sites = pseudo_random_sites(n, 7 + n as u64, dens);
            let got = edt_sq(shape, sp, |i| sites[i]);
            let want = brute(shape, sp, &sites);
            for i in 0..n {
                assert!((got[i] - want[i]).abs() < 1e-9 * want[i].max(1.0), "{shape:?} {i}: {} vs {}", got[i], want[i]);
            }
            let (d2, feat) = edt_sq_features(shape, sp, f64::INFINITY, |i| sites[i]);
            // A distance cap gives the same answer within the cap.
            let cap = 6.0;
            let (c2, cf) = edt_sq_features(shape, sp, cap, |i| sites[i]);
            for i in 0..n {
                if want[i] <= cap {
                    assert_eq!((c2[i], cf[i]), (d2[i], feat[i]));
                } else {
                    assert!(c2[i].is_infinite() && cf[i] == NO_SITE);
                }
            }
            assert_eq!(d2, got);
            let [_, h, w] = shape;
            for i in 0..n {
                let j = feat[i] as usize;
                assert!(sites[j]);
                let dd: f64 = [(i / (h * w), j / (h * w)), ((i / w) % h, (j / w) % h), (i % w, j % w)]
                    .iter()
                    .zip(sp)
                    .map(|(&(a, b), s)| (s * (a as f64 - b as f64)).powi(2))
                    .sum();
                assert!((dd - want[i]).abs() < 1e-9 * want[i].max(1.0));
            }
        }
    }

    #[test]
    fn no_site_gives_infinity_and_none() {
        let d = edt_sq([1, 3, 3], [1.0; 3], |_| false);
        assert!(d.iter().all(|v| v.is_infinite()));
        assert!(edt([1, 3, 3], [1.0; 3], |_| true).is_none());
        assert_eq!(edt([1, 1, 3], [1.0; 3], |i| i != 0).unwrap(), vec![0.0, 1.0, 2.0]);
    }
}
