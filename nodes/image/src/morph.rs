//! Flat grey-level erosion and dilation with a disk (2-D) or ball (3-D) footprint, scipy's
//! `grey_erosion`/`grey_dilation` with `mode='reflect'` (what scikit-image's morphology uses).
//!
//! A disk or ball is a stack of horizontal runs: for each (dz, dy) within the radius, the run
//! covers |dx| ≤ w(dz, dy) = ⌊√(r² − dz² − dy²)⌋. So the erosion of an output row is the minimum,
//! over those (dz, dy), of a sliding-window minimum of width 2w + 1 along one source row, which
//! van Herk/Gil-Werman computes in three comparisons per pixel whatever the width. Cost per pixel
//! grows with the number of runs (2r + 1 in 2-D, about πr² in 3-D), not with the footprint's area
//! or volume. Min and max are exact, so the result is identical to the direct definition.

use petri_api::Pixel;
use rayon::prelude::*;

use crate::util::Border;

#[inline(always)]
fn pick<P: PartialOrd + Copy>(a: P, b: P, max: bool) -> P {
    if max {
        if b > a { b } else { a }
    } else if b < a {
        b
    } else {
        a
    }
}

/// The runs of a radius-`r` disk/ball: (dz, dy, w). In 2-D (`three_d` false) dz is always 0.
pub fn runs(r: f64, three_d: bool) -> Vec<(isize, isize, usize)> {
    let ri = r.floor() as isize;
    let r2 = r * r;
    let mut v = Vec::new();
    let zr = if three_d { ri } else { 0 };
    for dz in -zr..=zr {
        for dy in -ri..=ri {
            let rest = r2 - (dz * dz + dy * dy) as f64;
            if rest < 0.0 {
                continue;
            }
            let mut w = rest.sqrt().floor() as isize;
            while ((w + 1) * (w + 1)) as f64 <= rest {
                w += 1;
            }
            while w > 0 && (w * w) as f64 > rest {
                w -= 1;
            }
            v.push((dz, dy, w as usize));
        }
    }
    v
}

/// Sliding min (or max) of width 2w + 1 over `row`, reflect borders, into `out`
/// (van Herk/Gil-Werman: block prefix and suffix extrema). `pad`, `g`, `h` are scratch.
#[allow(clippy::too_many_arguments)]
fn slide<P: Pixel>(row: &[P], w: usize, max: bool, out: &mut [P], pad: &mut Vec<P>, g: &mut Vec<P>, h: &mut Vec<P>) {
    let n = row.len();
    if w == 0 {
        out.copy_from_slice(row);
        return;
    }
    let m = 2 * w + 1;
    let len = n + 2 * w;
    pad.clear();
    pad.extend((0..len).map(|p| row[Border::Reflect.index(p as isize - w as isize, n)]));
    g.resize(len, P::default());
    h.resize(len, P::default());
    for b in (0..len).step_by(m) {
        let e = (b + m).min(len);
        g[b] = pad[b];
        for i in b + 1..e {
            g[i] = pick(g[i - 1], pad[i], max);
        }
        h[e - 1] = pad[e - 1];
        for i in (b..e - 1).rev() {
            h[i] = pick(h[i + 1], pad[i], max);
        }
    }
    for (x, o) in out.iter_mut().enumerate() {
        *o = pick(h[x], g[x + m - 1], max);
    }
}

/// Memory the width cache of [`flat`] may use before falling back to [`flat_runs`].
const CACHE_BUDGET: usize = 1 << 30;

/// Flat erosion (`max` false) or dilation (`max` true) of a Z×Y×X volume by a disk (2-D, when
/// `dims[0] == 1`) or ball of radius `r` pixels, reflect borders.
///
/// Every source row's sliding extrema are computed once for every run width the footprint needs,
/// growing the window one pixel per side at a time (`S_{w+1}[x] = ext(S_w[x−1], S_w[x+1])` for
/// w ≥ 1: one vectorised comparison per pixel and width); each output row is then the extremum
/// of the cached rows its runs point at.
pub fn flat<P: Pixel>(src: &[P], dims: [usize; 3], r: f64, max: bool) -> Vec<P> {
    let [nz, ny, nx] = dims;
    let runs = runs(r, nz > 1);
    let wmax = runs.iter().map(|r| r.2).max().unwrap_or(0);
    // Cache slot of each width (width 0 is the source row itself).
    let mut slot = vec![usize::MAX; wmax + 1];
    let mut nslots = 0;
    for &(_, _, w) in &runs {
        if w > 0 && slot[w] == usize::MAX {
            slot[w] = nslots;
            nslots += 1;
        }
    }
    if nslots * src.len() * std::mem::size_of::<P>() > CACHE_BUDGET {
        return flat_runs(src, dims, r, max);
    }
    let avx2 = crate::sep::has_avx2();
    let mut cache = vec![P::default(); nslots * src.len()];
    if nslots > 0 {
        cache.par_chunks_mut(nslots * nx).zip(src.par_chunks(nx)).for_each_init(
            || (Vec::new(), Vec::new()),
            |(cur, next), (dst, row)| widths(avx2, row, wmax, &slot, max, cur, next, dst),
        );
    }
    let mut out = vec![P::default(); src.len()];
    out.par_chunks_mut(nx).enumerate().for_each(|(row, o)| {
        let (z, y) = ((row / ny) as isize, (row % ny) as isize);
        let line = |&(dz, dy, w): &(isize, isize, usize)| -> &[P] {
            let srow = Border::Reflect.index(z + dz, nz) * ny + Border::Reflect.index(y + dy, ny);
            if w == 0 { &src[srow * nx..][..nx] } else { &cache[(srow * nslots + slot[w]) * nx..][..nx] }
        };
        o.copy_from_slice(line(&runs[0]));
        for run in &runs[1..] {
            combine(avx2, o, line(run), max);
        }
    });
    out
}

#[inline(always)]
fn combine_impl<P: Pixel>(o: &mut [P], s: &[P], max: bool) {
    if max {
        for (a, &b) in o.iter_mut().zip(s) {
            *a = pick(*a, b, true);
        }
    } else {
        for (a, &b) in o.iter_mut().zip(s) {
            *a = pick(*a, b, false);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn combine_avx2<P: Pixel>(o: &mut [P], s: &[P], max: bool) {
    combine_impl(o, s, max)
}

fn combine<P: Pixel>(avx2: bool, o: &mut [P], s: &[P], max: bool) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: only called when the CPU reports AVX2.
        return unsafe { combine_avx2(o, s, max) };
    }
    let _ = avx2;
    combine_impl(o, s, max)
}

/// Sliding extrema of one row for widths 1..=wmax (reflect borders), storing the widths that
/// have a cache slot into `dst` (slot-major, `row.len()` values each).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn widths_impl<P: Pixel>(
    row: &[P],
    wmax: usize,
    slot: &[usize],
    max: bool,
    cur: &mut Vec<P>,
    next: &mut Vec<P>,
    dst: &mut [P],
) {
    let n = row.len();
    let len = n + 2 * wmax;
    cur.clear();
    cur.extend((0..wmax).map(|p| row[Border::Reflect.index(p as isize - wmax as isize, n)]));
    cur.extend_from_slice(row);
    cur.extend((0..wmax).map(|p| row[Border::Reflect.index((n + p) as isize, n)]));
    next.clear();
    next.resize(len, P::default());
    for w in 1..=wmax {
        // S_w on [w, len − w) from S_{w−1}: the first step also takes the centre.
        let (a, b) = (&cur[w - 1..len - w - 1], &cur[w + 1..len - w + 1]);
        let o = &mut next[w..len - w];
        if w == 1 {
            let c = &cur[1..len - 1];
            for (((o, &a), &b), &c) in o.iter_mut().zip(a).zip(b).zip(c) {
                *o = pick(pick(a, c, max), b, max);
            }
        } else {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = pick(a, b, max);
            }
        }
        std::mem::swap(cur, next);
        if slot[w] != usize::MAX {
            dst[slot[w] * n..(slot[w] + 1) * n].copy_from_slice(&cur[wmax..wmax + n]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn widths_avx2<P: Pixel>(
    row: &[P],
    wmax: usize,
    slot: &[usize],
    max: bool,
    cur: &mut Vec<P>,
    next: &mut Vec<P>,
    dst: &mut [P],
) {
    widths_impl(row, wmax, slot, max, cur, next, dst)
}

#[allow(clippy::too_many_arguments)]
fn widths<P: Pixel>(
    avx2: bool,
    row: &[P],
    wmax: usize,
    slot: &[usize],
    max: bool,
    cur: &mut Vec<P>,
    next: &mut Vec<P>,
    dst: &mut [P],
) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: only called when the CPU reports AVX2.
        return unsafe { widths_avx2(row, wmax, slot, max, cur, next, dst) };
    }
    let _ = avx2;
    widths_impl(row, wmax, slot, max, cur, next, dst)
}

/// [`flat`] without the width cache: one van Herk/Gil-Werman sliding pass per run and output
/// row (bounded memory, used when the cache would be too large).
pub fn flat_runs<P: Pixel>(src: &[P], dims: [usize; 3], r: f64, max: bool) -> Vec<P> {
    let [nz, ny, nx] = dims;
    let runs = runs(r, nz > 1);
    let mut out = vec![P::default(); src.len()];
    out.par_chunks_mut(nx).enumerate().for_each_init(
        || (vec![P::default(); nx], Vec::new(), Vec::new(), Vec::new()),
        |(tmp, pad, g, h), (row, o)| {
            let (z, y) = ((row / ny) as isize, (row % ny) as isize);
            let mut first = true;
            for &(dz, dy, w) in &runs {
                let sz = Border::Reflect.index(z + dz, nz);
                let sy = Border::Reflect.index(y + dy, ny);
                let s = &src[(sz * ny + sy) * nx..(sz * ny + sy + 1) * nx];
                if first {
                    slide(s, w, max, o, pad, g, h);
                    first = false;
                } else {
                    slide(s, w, max, tmp, pad, g, h);
                    for (a, &b) in o.iter_mut().zip(tmp.iter()) {
                        *a = pick(*a, b, max);
                    }
                }
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_definition() {
        let dims = [4, 7, 9];
        let n: usize = dims.iter().product();
        let src: Vec<u16> = (0..n).map(|i| ((i * 7919) % 101) as u16).collect();
        for r in [1.0, 2.0, 2.5, 3.0, 5.0] {
            for three_d in [false, true] {
                let d = if three_d { dims } else { [1, 7, 9] };
                let src = &src[..d.iter().product::<usize>()];
                for max in [false, true] {
                    let got = flat(src, d, r, max);
                    assert_eq!(got, flat_runs(src, d, r, max));
                    let ri = r as isize;
                    for z in 0..d[0] as isize {
                        for y in 0..d[1] as isize {
                            for x in 0..d[2] as isize {
                                let mut best: Option<u16> = None;
                                for dz in -ri..=ri {
                                    for dy in -ri..=ri {
                                        for dx in -ri..=ri {
                                            if (!three_d && dz != 0) || ((dz * dz + dy * dy + dx * dx) as f64) > r * r {
                                                continue;
                                            }
                                            let v = src[(Border::Reflect.index(z + dz, d[0]) * d[1]
                                                + Border::Reflect.index(y + dy, d[1]))
                                                * d[2]
                                                + Border::Reflect.index(x + dx, d[2])];
                                            best = Some(best.map_or(v, |b| if max { b.max(v) } else { b.min(v) }));
                                        }
                                    }
                                }
                                let i = ((z as usize * d[1]) + y as usize) * d[2] + x as usize;
                                assert_eq!(got[i], best.unwrap(), "r {r} 3d {three_d} max {max} at {z} {y} {x}");
                            }
                        }
                    }
                }
            }
        }
    }
}
