//! Histograms as scikit-image's `exposure.histogram(image, nbins, source_range='image')`
//! builds them, which the histogram thresholds (Otsu, triangle) depend on bin for bin:
//! integer images get one bin per integer from min to max; float images get `nbins` equal
//! bins over [min, max] placed exactly as `numpy.histogram` places them (computed in f64).

use petri_api::{Buffer, Pixel};
use rayon::prelude::*;

/// Integer ranges wider than this fall back to 256 float bins (scikit-image would allocate one
/// bin per integer, which for a u32 image could be 4 billion bins).
pub const MAX_INT_BINS: u64 = 1 << 24;

#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub counts: Vec<u64>,
    pub centers: Vec<f64>,
    /// One bin per integer (centers are the integers themselves).
    pub integer: bool,
}

/// Chunk length giving each rayon thread a few large pieces (per-chunk state such as a 65536-bin
/// histogram is then allocated a handful of times, not once per small chunk).
pub fn chunk_len(n: usize) -> usize {
    n.div_ceil(4 * rayon::current_num_threads()).max(1 << 14)
}

/// Minimum and maximum of a slice (NaN-free input assumed), in parallel; compared in the pixel
/// type so the loop vectorises.
pub fn min_max<P: Pixel>(px: &[P]) -> (f64, f64) {
    if px.is_empty() {
        return (f64::INFINITY, f64::NEG_INFINITY);
    }
    let mm = |c: &[P]| {
        let (mut lo, mut hi) = (c[0], c[0]);
        for &v in c {
            lo = if v < lo { v } else { lo };
            hi = if v > hi { v } else { hi };
        }
        (lo, hi)
    };
    let (lo, hi) = if px.len() < crate::util::SEQUENTIAL_BELOW {
        mm(px)
    } else {
        px.par_chunks(chunk_len(px.len()))
            .map(mm)
            .reduce_with(|a, b| (if b.0 < a.0 { b.0 } else { a.0 }, if b.1 > a.1 { b.1 } else { a.1 }))
            .unwrap_or((px[0], px[0]))
    };
    (lo.to_f64(), hi.to_f64())
}

/// numpy's equal-width bin edges: `linspace(lo, hi, nbins + 1)`, i.e. `i·step + lo` with the last
/// edge set to `hi` (an empty range is widened to lo − 0.5 .. hi + 0.5 first, as numpy does).
pub fn numpy_edges(lo: f64, hi: f64, nbins: usize) -> Vec<f64> {
    let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
    let step = (hi - lo) / nbins as f64;
    let mut e: Vec<f64> = (0..=nbins).map(|i| i as f64 * step + lo).collect();
    e[nbins] = hi;
    e
}

/// numpy's bin of `v` for the edges above (values outside are not expected).
#[inline]
pub fn numpy_bin(v: f64, edges: &[f64]) -> usize {
    let nb = edges.len() - 1;
    let (lo, hi) = (edges[0], edges[nb]);
    let f = (v - lo) / (hi - lo) * nb as f64;
    let mut i = (f as isize).clamp(0, nb as isize) as usize;
    if i == nb {
        i -= 1;
    }
    // numpy corrects the division's rounding against the stored edges.
    if v < edges[i] && i > 0 {
        i -= 1;
    } else if i + 1 < nb && v >= edges[i + 1] {
        i += 1;
    }
    i
}

/// The histogram of all pixels of a buffer (the whole stack: every t, c, z).
pub fn histogram(buf: &Buffer, nbins: usize) -> Histogram {
    petri_api::with_pixels!(buf, px => histogram_of(px, nbins))
}

pub fn histogram_of<P: Pixel>(px: &[P], nbins: usize) -> Histogram {
    let (lo, hi) = min_max(px);
    histogram_range(px, lo, hi, nbins)
}

/// [`histogram_of`] with the minimum and maximum already known.
pub fn histogram_range<P: Pixel>(px: &[P], lo: f64, hi: f64, nbins: usize) -> Histogram {
    if P::DTYPE.is_integer() && ((hi - lo) as u64) < MAX_INT_BINS {
        let nb = (hi - lo) as usize + 1;
        let lo_i = lo as u64;
        let counts = fold_counts(
            px,
            || vec![0u64; nb],
            |mut h, c| {
                for &v in c {
                    h[(v.to_f64() as u64 - lo_i) as usize] += 1;
                }
                h
            },
        )
        .into_iter()
        .fold(vec![0u64; nb], add_counts);
        let centers = (0..nb).map(|i| lo + i as f64).collect();
        return Histogram { counts, centers, integer: true };
    }
    let edges = numpy_edges(lo, hi, nbins);
    let counts = fold_counts(
        px,
        || vec![0u64; nbins],
        |mut h, c| {
            for &v in c {
                h[numpy_bin(v.to_f64(), &edges)] += 1;
            }
            h
        },
    )
    .into_iter()
    .fold(vec![0u64; nbins], add_counts);
    let centers = edges.windows(2).map(|e| (e[0] + e[1]) / 2.0).collect();
    Histogram { counts, centers, integer: false }
}

/// Pixel types small enough to count with one bin per value.
pub trait SmallInt: Copy + Send + Sync {
    const RANGE: usize;
    fn idx(self) -> usize;
}
impl SmallInt for u8 {
    const RANGE: usize = 256;
    #[inline(always)]
    fn idx(self) -> usize {
        self as usize
    }
}
impl SmallInt for u16 {
    const RANGE: usize = 65536;
    #[inline(always)]
    fn idx(self) -> usize {
        self as usize
    }
}

/// Counts of every value from `lo` to `hi` (the slice's min and max), one parallel pass.
pub fn range_counts<T: SmallInt>(px: &[T], lo: usize, hi: usize) -> Vec<u64> {
    let nb = hi - lo + 1;
    // Four interleaved sub-histograms per rayon split: runs of equal neighbouring pixels then do
    // not serialise on one counter (u32 is enough: a split is far below 2³² pixels). With the
    // range limited to min..max they usually fit in L1/L2.
    let subs = fold_counts(
        px,
        || vec![0u32; 4 * nb],
        |mut sub, c| {
            let mut it = c.chunks_exact(4);
            for q in &mut it {
                sub[q[0].idx() - lo] += 1;
                sub[nb + q[1].idx() - lo] += 1;
                sub[2 * nb + q[2].idx() - lo] += 1;
                sub[3 * nb + q[3].idx() - lo] += 1;
            }
            for &v in it.remainder() {
                sub[v.idx() - lo] += 1;
            }
            sub
        },
    );
    let mut h = vec![0u64; nb];
    for sub in &subs {
        for j in 0..4 {
            for (a, &b) in h.iter_mut().zip(&sub[j * nb..(j + 1) * nb]) {
                *a += b as u64;
            }
        }
    }
    h
}

/// scikit-image's histogram of a whole stack (see [`histogram_of`]) with its min and max.
pub fn stack_histogram(s: &petri_api::Stack, nbins: usize) -> (Histogram, f64, f64) {
    fn small<T: SmallInt + Pixel>(px: &[T]) -> (Histogram, f64, f64) {
        let (lo, hi) = min_max(px);
        let h = Histogram {
            counts: range_counts(px, lo as usize, hi as usize),
            centers: (lo as usize..=hi as usize).map(|v| v as f64).collect(),
            integer: true,
        };
        (h, lo, hi)
    }
    match s.buffer() {
        Buffer::U8(v) => small(&v[..]),
        Buffer::U16(v) => small(&v[..]),
        Buffer::U32(v) => {
            let (lo, hi) = min_max(&v[..]);
            (histogram_range(&v[..], lo, hi, nbins), lo, hi)
        }
        Buffer::F32(v) => {
            let (lo, hi) = min_max(&v[..]);
            (histogram_range(&v[..], lo, hi, nbins), lo, hi)
        }
    }
}

/// Folds `count` over the pixels — on the calling thread for small inputs, else one accumulator
/// per rayon split — and returns the accumulators.
fn fold_counts<P: Sync, A: Send>(
    px: &[P],
    init: impl Fn() -> A + Sync + Send,
    count: impl Fn(A, &[P]) -> A + Sync + Send,
) -> Vec<A> {
    if px.len() < crate::util::SEQUENTIAL_BELOW {
        return vec![count(init(), px)];
    }
    px.par_chunks(chunk_len(px.len())).fold(init, count).collect()
}

fn add_counts(mut a: Vec<u64>, b: Vec<u64>) -> Vec<u64> {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_bins_one_per_value() {
        let h = histogram_of(&[3u16, 5, 5, 7], 256);
        assert!(h.integer);
        assert_eq!(h.counts, vec![1, 0, 2, 0, 1]);
        assert_eq!(h.centers, vec![3.0, 4.0, 5.0, 6.0, 7.0]);
        let s = petri_api::Stack::from_2d(1, 7, vec![3u16, 5, 5, 7, 5, 5, 5]).unwrap();
        let (h, lo, hi) = stack_histogram(&s, 256);
        assert_eq!((lo, hi), (3.0, 7.0));
        assert_eq!(h.counts, vec![1, 0, 5, 0, 1]);
        assert_eq!(h, histogram_of(s.pixels::<u16>().unwrap(), 256));
    }

    #[test]
    fn float_bins_like_numpy() {
        // np.histogram([0, .1, .5, 1], bins=4) -> [2, 0, 1, 1]; centers .125 .375 .625 .875
        let h = histogram_of(&[0.0f32, 0.1, 0.5, 1.0], 4);
        assert_eq!(h.counts, vec![2, 0, 1, 1]);
        assert_eq!(h.centers, vec![0.125, 0.375, 0.625, 0.875]);
        let e = numpy_edges(2.0, 2.0, 2);
        assert_eq!(e, vec![1.5, 2.0, 2.5]);
    }
}
