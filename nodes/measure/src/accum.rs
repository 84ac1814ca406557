//! One pass over a Z×Y×X label volume that accumulates, per label, everything the region
//! measurements need: pixel count, first and second coordinate moments (exact integers),
//! bounding box, and per-channel intensity sum/min/max.
//!
//! The volume is walked row by row in runs of equal labels, so a run of `n` pixels costs one
//! label lookup and a handful of integer updates (sums of `x` and `x²` over a run have closed
//! forms). Rows are split into a fixed number of chunks that depends only on the shape and the
//! number of labels (never on the thread count), accumulated in parallel and merged in chunk
//! order, so results are bit-for-bit reproducible.

use std::collections::{HashMap, HashSet};

use petri_api::Pixel;
use rayon::prelude::*;

/// Geometry accumulator of one label. Coordinates are pixel indices (z, y, x).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Acc {
    /// Number of pixels.
    pub n: u64,
    /// Σz, Σy, Σx.
    pub s: [u64; 3],
    /// Σzz, Σyy, Σxx, Σzy, Σzx, Σyx.
    pub ss: [u64; 6],
    /// Smallest z, y, x (inclusive).
    pub lo: [u32; 3],
    /// Largest z, y, x (inclusive).
    pub hi: [u32; 3],
}

impl Default for Acc {
    fn default() -> Self {
        Acc { n: 0, s: [0; 3], ss: [0; 6], lo: [u32::MAX; 3], hi: [0; 3] }
    }
}

impl Acc {
    fn merge(&mut self, o: &Acc) {
        self.n += o.n;
        for i in 0..3 {
            self.s[i] += o.s[i];
            self.lo[i] = self.lo[i].min(o.lo[i]);
            self.hi[i] = self.hi[i].max(o.hi[i]);
        }
        for i in 0..6 {
            self.ss[i] += o.ss[i];
        }
    }

    /// Centroid (z, y, x) in pixel indices.
    pub fn centroid(&self) -> [f64; 3] {
        let n = self.n as f64;
        [self.s[0] as f64 / n, self.s[1] as f64 / n, self.s[2] as f64 / n]
    }

    /// Central second moments divided by the pixel count: the covariance matrix
    /// [czz, cyy, cxx, czy, czx, cyx], computed exactly as (n·Σab − Σa·Σb) / n² in integers
    /// so large coordinates lose no precision.
    pub fn covariance(&self) -> [f64; 6] {
        let n = self.n as i128;
        let nn = (self.n as f64) * (self.n as f64);
        let c = |sab: u64, a: usize, b: usize| -> f64 {
            let num = n * sab as i128 - self.s[a] as i128 * self.s[b] as i128;
            num as f64 / nn
        };
        [
            c(self.ss[0], 0, 0),
            c(self.ss[1], 1, 1),
            c(self.ss[2], 2, 2),
            c(self.ss[3], 0, 1),
            c(self.ss[4], 0, 2),
            c(self.ss[5], 1, 2),
        ]
    }
}

/// Intensity accumulator of one label in one channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntAcc {
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for IntAcc {
    fn default() -> Self {
        IntAcc { sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }
}

impl IntAcc {
    fn merge(&mut self, o: &IntAcc) {
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// The horizontal extent of one label in one row: (row index z·Y + y, first x, last x).
pub type RowSpan = (u32, u32, u32);

/// Everything accumulated over one volume, one entry per label present (ascending ids).
#[derive(Clone, Debug, Default)]
pub struct VolumeStats {
    pub ids: Vec<u32>,
    pub acc: Vec<Acc>,
    /// `intensity[c][k]`: channel `c`, label `ids[k]`.
    pub intensity: Vec<Vec<IntAcc>>,
    /// Per label, its leftmost and rightmost pixel in every row it touches, in row order
    /// (only when asked for: the 2-D convex hull needs nothing else). Empty otherwise.
    pub spans: Vec<Vec<RowSpan>>,
}

/// Maps a label id to its slot (its rank among the ids present).
pub enum Slots {
    /// Ids are small enough for a direct table (u32::MAX = absent).
    Dense(Vec<u32>),
    Sparse(HashMap<u32, u32>),
}

impl Slots {
    #[inline]
    pub fn get(&self, id: u32) -> usize {
        match self {
            Slots::Dense(t) => t[id as usize] as usize,
            Slots::Sparse(m) => m[&id] as usize,
        }
    }
}

/// The sorted distinct non-zero ids of `labels` and their slot map.
pub fn distinct_ids(labels: &[u32]) -> (Vec<u32>, Slots) {
    let max = labels.par_iter().copied().max().unwrap_or(0) as usize;
    // A direct table costs 4 bytes per possible id; use it while that stays modest.
    if max <= (2 * labels.len()).max(1 << 22) {
        let mut table = vec![u32::MAX; max + 1];
        let mut prev = 0u32;
        for &v in labels {
            if v != prev {
                table[v as usize] = 0;
                prev = v;
            }
        }
        let mut ids = Vec::new();
        for (id, slot) in table.iter_mut().enumerate().skip(1) {
            if *slot == 0 {
                *slot = ids.len() as u32;
                ids.push(id as u32);
            }
        }
        (ids, Slots::Dense(table))
    } else {
        let mut set = HashSet::new();
        let mut prev = 0u32;
        for &v in labels {
            if v != prev && v != 0 {
                set.insert(v);
            }
            prev = v;
        }
        let mut ids: Vec<u32> = set.into_iter().collect();
        ids.sort_unstable();
        let map = ids.iter().enumerate().map(|(k, &id)| (id, k as u32)).collect();
        (ids, Slots::Sparse(map))
    }
}

/// Σ i for i in a..b and Σ i² for i in a..b.
#[inline]
fn range_sums(a: u64, b: u64) -> (u64, u64) {
    let s1 = |k: u64| k * k.saturating_sub(1) / 2;
    let s2 = |k: u64| if k == 0 { 0 } else { (k - 1) * k * (2 * k - 1) / 6 };
    (s1(b) - s1(a), s2(b) - s2(a))
}

/// Accumulates one Z×Y×X volume. `channels` are intensity volumes of the same shape
/// (possibly none).
/// With `spans`, also records each label's extent in every row (see [`VolumeStats::spans`]).
pub fn accumulate<P: Pixel>(labels: &[u32], shape: [usize; 3], channels: &[&[P]], spans: bool) -> VolumeStats {
    let [nz, ny, nx] = shape;
    debug_assert_eq!(labels.len(), nz * ny * nx);
    debug_assert!(channels.iter().all(|c| c.len() == labels.len()));
    let (ids, slots) = distinct_ids(labels);
    let k = ids.len();
    let nc = channels.len();
    if k == 0 {
        return VolumeStats { ids, acc: Vec::new(), intensity: vec![Vec::new(); nc], spans: Vec::new() };
    }
    let rows = nz * ny;
    // Fixed chunking: about 64k pixels per chunk, at most 64 chunks, and no more than ~64 MB
    // of per-chunk accumulators in total.
    let per_label = std::mem::size_of::<Acc>() + nc * std::mem::size_of::<IntAcc>();
    let mem_cap = ((64usize << 20) / (k * per_label).max(1)).max(1);
    let n_chunks = (labels.len() / 65536).clamp(1, 64).min(mem_cap).min(rows);
    let rows_per = rows.div_ceil(n_chunks);

    type Part = (Vec<Acc>, Vec<Vec<IntAcc>>, Vec<Vec<RowSpan>>);
    let work = |chunk: usize| -> Part {
        let mut acc = vec![Acc::default(); k];
        let mut inten = vec![vec![IntAcc::default(); k]; nc];
        let mut sp: Vec<Vec<RowSpan>> = if spans { vec![Vec::new(); k] } else { Vec::new() };
        let r0 = chunk * rows_per;
        let r1 = ((chunk + 1) * rows_per).min(rows);
        for r in r0..r1 {
            let z = (r / ny) as u64;
            let y = (r % ny) as u64;
            let base = r * nx;
            let row = &labels[base..base + nx];
            let mut x0 = 0usize;
            while x0 < nx {
                let v = row[x0];
                let mut x1 = x0 + 1;
                while x1 < nx && row[x1] == v {
                    x1 += 1;
                }
                if v != 0 {
                    let s = slots.get(v);
                    let a = &mut acc[s];
                    let len = (x1 - x0) as u64;
                    let (sx, sxx) = range_sums(x0 as u64, x1 as u64);
                    a.n += len;
                    a.s[0] += z * len;
                    a.s[1] += y * len;
                    a.s[2] += sx;
                    a.ss[0] += z * z * len;
                    a.ss[1] += y * y * len;
                    a.ss[2] += sxx;
                    a.ss[3] += z * y * len;
                    a.ss[4] += z * sx;
                    a.ss[5] += y * sx;
                    let (zz, yy) = (z as u32, y as u32);
                    a.lo[0] = a.lo[0].min(zz);
                    a.hi[0] = a.hi[0].max(zz);
                    a.lo[1] = a.lo[1].min(yy);
                    a.hi[1] = a.hi[1].max(yy);
                    a.lo[2] = a.lo[2].min(x0 as u32);
                    a.hi[2] = a.hi[2].max((x1 - 1) as u32);
                    if spans {
                        let list = &mut sp[s];
                        match list.last_mut() {
                            Some(last) if last.0 == r as u32 => last.2 = (x1 - 1) as u32,
                            _ => list.push((r as u32, x0 as u32, (x1 - 1) as u32)),
                        }
                    }
                    for (c, ch) in channels.iter().enumerate() {
                        let ia = &mut inten[c][s];
                        let (mut sum, mut lo, mut hi) = (0.0f64, ia.min, ia.max);
                        for &p in &ch[base + x0..base + x1] {
                            let f = p.to_f64();
                            sum += f;
                            lo = lo.min(f);
                            hi = hi.max(f);
                        }
                        ia.sum += sum;
                        ia.min = lo;
                        ia.max = hi;
                    }
                }
                x0 = x1;
            }
        }
        (acc, inten, sp)
    };

    let parts: Vec<Part> = (0..n_chunks).into_par_iter().map(work).collect();
    let mut it = parts.into_iter();
    let (mut acc, mut intensity, mut all_spans) = it.next().unwrap_or_default();
    for (a, i, sp) in it {
        // Chunks cover increasing rows, so appending keeps every list in row order.
        for (dst, src) in all_spans.iter_mut().zip(sp) {
            dst.extend(src);
        }
        for (dst, src) in acc.iter_mut().zip(&a) {
            dst.merge(src);
        }
        for (dc, sc) in intensity.iter_mut().zip(&i) {
            for (dst, src) in dc.iter_mut().zip(sc) {
                dst.merge(src);
            }
        }
    }
    VolumeStats { ids, acc, intensity, spans: all_spans }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_sums_match_loops() {
        for a in 0..20u64 {
            for b in a..25 {
                let s1: u64 = (a..b).sum();
                let s2: u64 = (a..b).map(|i| i * i).sum();
                assert_eq!(range_sums(a, b), (s1, s2), "{a}..{b}");
            }
        }
    }

    #[test]
    fn accumulates_small_volume_by_brute_force() {
        // 2×3×4 volume with three labels, one of them with a large sparse id.
        let lab: Vec<u32> = vec![
            0, 1, 1, 0, //
            2, 2, 1, 0, //
            0, 0, 0, 9_000_000, //
            1, 0, 0, 9_000_000, //
            2, 2, 2, 2, //
            0, 1, 0, 0,
        ];
        let img: Vec<u16> = (0..24).map(|i| (i * 7 % 11) as u16).collect();
        let st = accumulate(&lab, [2, 3, 4], &[&img[..]], true);
        assert_eq!(st.spans[0], vec![(0, 1, 2), (1, 2, 2), (3, 0, 0), (5, 1, 1)]);
        assert_eq!(st.ids, vec![1, 2, 9_000_000]);
        for (k, &id) in st.ids.iter().enumerate() {
            let mut n = 0u64;
            let mut s = [0u64; 3];
            let mut sum = 0.0;
            for (i, &v) in lab.iter().enumerate() {
                if v == id {
                    let c = [(i / 12) as u64, (i / 4 % 3) as u64, (i % 4) as u64];
                    n += 1;
                    for d in 0..3 {
                        s[d] += c[d];
                    }
                    sum += img[i] as f64;
                }
            }
            assert_eq!(st.acc[k].n, n);
            assert_eq!(st.acc[k].s, s);
            assert_eq!(st.intensity[0][k].sum, sum);
        }
    }
}
