//! `image.median`: median filter over a k×k (2-D) or k×k×k (3-D) box, edge pixels repeated —
//! scipy's `median_filter(img, footprint=ones, mode='nearest')` (scikit-image's
//! `filters.median(..., behavior='ndimage')`), exactly, in the input's pixel type.
//!
//! Algorithm: Huang's sliding-window histogram along X. Each pixel's value is replaced by its
//! rank among the image's distinct values (for u8/u16 simply `value − min`), so any pixel type
//! is handled by one integer histogram. Moving one pixel right removes one Z×Y column of the
//! window and adds another (k or k² bin updates instead of re-sorting k² or k³ values), and the
//! median bin is tracked incrementally with the count of values below it; a coarse histogram
//! (64 bins per coarse bin) lets the walk skip empty stretches. Rows run in parallel.

use petri_api::{
    Buffer, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, Pixel, PortType, Stack, Value,
};
use rayon::prelude::*;

use crate::util;

const SHIFT: usize = 6;

/// Windows of at most this many values use forgetful selection; larger ones the histogram.
/// u32/f32 images may hold millions of distinct values, which makes the histogram cache-hostile,
/// so they use the network up to 5×5×5.
const FORGETFUL_MAX_INT: usize = 27;
const FORGETFUL_MAX_WIDE: usize = 125;

/// A histogram over bins with the median tracked incrementally (Huang et al., 1979).
struct RankHist {
    counts: Vec<u32>,
    coarse: Vec<u32>,
    /// Current median candidate bin and the number of values in bins below it.
    med: usize,
    below: u32,
}

impl RankHist {
    fn new(nbins: usize) -> RankHist {
        let nb = nbins.div_ceil(1 << SHIFT) << SHIFT;
        RankHist { counts: vec![0; nb], coarse: vec![0; nb >> SHIFT], med: 0, below: 0 }
    }

    #[inline]
    fn add(&mut self, b: usize) {
        self.counts[b] += 1;
        self.coarse[b >> SHIFT] += 1;
        // Branch-free: whether b falls below the median is unpredictable.
        self.below += (b < self.med) as u32;
    }

    #[inline]
    fn remove(&mut self, b: usize) {
        self.counts[b] -= 1;
        self.coarse[b >> SHIFT] -= 1;
        self.below -= (b < self.med) as u32;
    }

    /// The bin holding the value of rank `h` (0-based).
    #[inline]
    fn select(&mut self, h: u32) -> usize {
        let block = 1usize << SHIFT;
        while self.below > h {
            if self.med.is_multiple_of(block) && self.below - self.coarse[(self.med >> SHIFT) - 1] > h {
                self.med -= block;
                self.below -= self.coarse[self.med >> SHIFT];
            } else {
                self.med -= 1;
                self.below -= self.counts[self.med];
            }
        }
        loop {
            if self.med.is_multiple_of(block) && self.below + self.coarse[self.med >> SHIFT] <= h {
                self.below += self.coarse[self.med >> SHIFT];
                self.med += block;
            } else if self.below + self.counts[self.med] <= h {
                self.below += self.counts[self.med];
                self.med += 1;
            } else {
                return self.med;
            }
        }
    }
}

/// Median of one Z×Y×X volume of bin indices (`nbins` distinct), box `k` per axis (Z only if
/// `dims[0] > 1`), edge replicate. Returns the median bin of every voxel.
pub fn median_bins(bins: &[u32], dims: [usize; 3], nbins: usize, k: usize) -> Vec<u32> {
    let [nz, ny, nx] = dims;
    let r = (k / 2) as isize;
    let kz = if nz > 1 { k } else { 1 };
    let n_window = (kz * k * k) as u32;
    let h = (n_window - 1) / 2;
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut out = vec![0u32; bins.len()];
    // A few large row blocks per thread, each with one histogram (allocating and zeroing a
    // histogram of up to millions of bins per small task would dominate).
    let nrows = nz * ny;
    let rows_per_task = nrows.div_ceil(8 * rayon::current_num_threads()).max(1);
    out.par_chunks_mut(nx * rows_per_task).enumerate().for_each(|(task, block)| {
        let mut hist = RankHist::new(nbins);
        let mut rows: Vec<&[u32]> = Vec::with_capacity(kz * k);
        for (i, o) in block.chunks_mut(nx).enumerate() {
            let row = task * rows_per_task + i;
            let hist = &mut hist;
            let rows = &mut rows;
            let (z, y) = ((row / ny) as isize, (row % ny) as isize);
            rows.clear();
            let rz = if nz > 1 { r } else { 0 };
            for dz in -rz..=rz {
                for dy in -r..=r {
                    let off = (clamp(z + dz, nz) * ny + clamp(y + dy, ny)) * nx;
                    rows.push(&bins[off..off + nx]);
                }
            }
            let col = |hist: &mut RankHist, x: isize, add: bool| {
                let x = clamp(x, nx);
                for s in rows.iter() {
                    if add { hist.add(s[x] as usize) } else { hist.remove(s[x] as usize) }
                }
            };
            for dx in -r..=r {
                col(hist, dx, true);
            }
            for (x, v) in o.iter_mut().enumerate() {
                *v = hist.select(h) as u32;
                let x = x as isize;
                col(hist, x - r, false);
                col(hist, x + r + 1, true);
            }
            // Leave the histogram empty for the next row.
            for dx in -r..=r {
                col(hist, nx as isize + dx, false);
            }
            // Empty again: nothing lies below any bin, so the median bin can stay where it is and
            // the next row (similar values) starts its walk nearby instead of from bin 0.
            hist.below = 0;
        }
    });
    out
}

/// Maps a volume to dense ranks among its distinct values (so the histogram has no empty
/// stretches to walk over) and returns the sorted distinct values to map back.
fn to_bins<P: Pixel>(vol: &[P]) -> (Vec<u32>, usize, Vec<P>) {
    let mut b = vec![0u32; vol.len()];
    if matches!(P::DTYPE, petri_api::DType::U8 | petri_api::DType::U16) {
        // Small integer range: a presence table and its prefix sum give every value's rank.
        let (lo, hi) = crate::hist::min_max(vol);
        let lo = lo as usize;
        let mut rank = vec![0u32; hi as usize - lo + 1];
        for v in vol {
            rank[v.to_f64() as usize - lo] = 1;
        }
        let mut values = Vec::new();
        let mut next = 0u32;
        for (i, r) in rank.iter_mut().enumerate() {
            if *r == 1 {
                values.push(P::from_f64((i + lo) as f64));
                *r = next;
                next += 1;
            }
        }
        util::par_map_into(vol, &mut b, |v| rank[v.to_f64() as usize - lo]);
        return (b, values.len(), values);
    }
    let mut sorted: Vec<P> = vol.to_vec();
    sorted.par_sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    sorted.dedup();
    util::par_map_into(vol, &mut b, |v| {
        sorted.partition_point(|s| s.partial_cmp(v) == Some(std::cmp::Ordering::Less)) as u32
    });
    let n = sorted.len();
    (b, n, sorted)
}

#[inline(always)]
fn mn<P: PartialOrd + Copy>(a: P, b: P) -> P {
    if b < a { b } else { a }
}

#[inline(always)]
fn mx<P: PartialOrd + Copy>(a: P, b: P) -> P {
    if b > a { b } else { a }
}

#[inline(always)]
fn med3<P: PartialOrd + Copy>(a: P, b: P, c: P) -> P {
    mx(mn(a, b), mn(mx(a, b), c))
}

/// 3×3 median of one plane by the column-sort network: sort each vertical triple once (shared
/// by three output pixels), then the median of the 3×3 block is exactly
/// `med3(max of the three lows, med3 of the middles, min of the highs)`. Branch-free min/max on
/// whole rows, which the compiler vectorises.
pub fn median3x3<P: Pixel>(src: &[P], ny: usize, nx: usize, out: &mut [P]) {
    out.par_chunks_mut(nx).enumerate().for_each_init(
        || (vec![P::default(); nx + 2], vec![P::default(); nx + 2], vec![P::default(); nx + 2]),
        |(lo, mid, hi), (y, o)| {
            let row = |y: usize| &src[y * nx..(y + 1) * nx];
            let (a, b, c) = (row(y.saturating_sub(1)), row(y), row((y + 1).min(ny - 1)));
            for x in 0..nx {
                let (p, q, r) = (a[x], b[x], c[x]);
                let (l1, h1) = (mn(p, q), mx(p, q));
                lo[x + 1] = mn(l1, r);
                let h2 = mx(l1, r);
                mid[x + 1] = mn(h1, h2);
                hi[x + 1] = mx(h1, h2);
            }
            for v in [&mut *lo, &mut *mid, &mut *hi] {
                v[0] = v[1];
                v[nx + 1] = v[nx];
            }
            for (x, o) in o.iter_mut().enumerate() {
                let l = mx(mx(lo[x], lo[x + 1]), lo[x + 2]);
                let m = med3(mid[x], mid[x + 1], mid[x + 2]);
                let h = mn(mn(hi[x], hi[x + 1]), hi[x + 2]);
                *o = med3(l, m, h);
            }
        },
    );
}

/// The compare-exchange sequence of forgetful selection for the median of `n` (odd) slots:
/// keep (n+1)/2 + 1 values, repeatedly move the set's minimum and maximum to known slots and
/// drop both (neither can be the median of what remains), load the next value, until one slot
/// is left. Returns the pairs (p, q) — after each, slot p holds the smaller value — and the
/// slot of the median.
pub fn forgetful_network(n: usize) -> (Vec<(usize, usize)>, usize) {
    let m = (n.div_ceil(2) + 1).min(n);
    let mut set: Vec<usize> = (0..m).collect();
    let mut next = m;
    let mut ces = Vec::new();
    while set.len() > 1 {
        let len = set.len();
        for i in 0..len / 2 {
            ces.push((set[2 * i], set[2 * i + 1]));
        }
        let mut lows: Vec<usize> = (0..len / 2).map(|i| set[2 * i]).collect();
        let mut highs: Vec<usize> = (0..len / 2).map(|i| set[2 * i + 1]).collect();
        if len % 2 == 1 {
            lows.push(set[len - 1]);
            highs.push(set[len - 1]);
        }
        for &c in &lows[1..] {
            ces.push((lows[0], c));
        }
        for &c in &highs[1..] {
            ces.push((c, highs[0]));
        }
        let (lo, hi) = (lows[0], highs[0]);
        set.retain(|&x| x != lo && x != hi);
        if next < n {
            set.push(next);
            next += 1;
        }
    }
    (ces, set[0])
}

/// Lanes processed together by [`median_forgetful`].
const LANES: usize = 64;

#[inline(always)]
fn run_network_impl<P: Pixel>(buf: &mut [P], ces: &[(usize, usize)]) {
    for &(p, q) in ces {
        let (a, b) = if p < q {
            let (x, y) = buf.split_at_mut(q * LANES);
            (&mut x[p * LANES..(p + 1) * LANES], &mut y[..LANES])
        } else {
            let (x, y) = buf.split_at_mut(p * LANES);
            (&mut y[..LANES], &mut x[q * LANES..(q + 1) * LANES])
        };
        for (u, v) in a.iter_mut().zip(b.iter_mut()) {
            let (x, y) = (*u, *v);
            *u = mn(x, y);
            *v = mx(x, y);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn run_network_avx2<P: Pixel>(buf: &mut [P], ces: &[(usize, usize)]) {
    run_network_impl(buf, ces)
}

fn run_network<P: Pixel>(avx2: bool, buf: &mut [P], ces: &[(usize, usize)]) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: only called when the CPU reports AVX2.
        return unsafe { run_network_avx2(buf, ces) };
    }
    let _ = avx2;
    run_network_impl(buf, ces)
}

/// Box median by forgetful selection, vectorised across 64 neighbouring output pixels: the
/// k^d window values of each lane are gathered from edge-padded rows and the same
/// compare-exchange network runs on all lanes at once. No histogram, so it is as fast on f32 or
/// u32 images with millions of distinct values as on u8; used for small boxes (≤ 27 values).
pub fn median_forgetful<P: Pixel>(src: &[P], dims: [usize; 3], k: usize, out: &mut [P]) {
    let [nz, ny, nx] = dims;
    let r = (k / 2) as isize;
    let rz = if nz > 1 { r } else { 0 };
    let n = ((2 * rz + 1) * k as isize * k as isize) as usize;
    let (ces, med) = forgetful_network(n);
    let avx2 = crate::sep::has_avx2();
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let w = nx + 2 * r as usize;
    out.par_chunks_mut(nx).enumerate().for_each_init(
        || (vec![P::default(); n * LANES], vec![P::default(); (n / k) * w]),
        |(buf, pads), (row, o)| {
            let (z, y) = ((row / ny) as isize, (row % ny) as isize);
            // The k^(d−1) source rows of the window, padded by r with their edge values.
            let mut j = 0;
            for dz in -rz..=rz {
                for dy in -r..=r {
                    let off = (clamp(z + dz, nz) * ny + clamp(y + dy, ny)) * nx;
                    let s = &src[off..off + nx];
                    let p = &mut pads[j * w..(j + 1) * w];
                    for (i, v) in p.iter_mut().enumerate() {
                        *v = s[clamp(i as isize - r, nx)];
                    }
                    j += 1;
                }
            }
            for x0 in (0..nx).step_by(LANES) {
                let len = LANES.min(nx - x0);
                let mut slot = 0;
                for j in 0..n / k {
                    let p = &pads[j * w..(j + 1) * w];
                    for dx in 0..k {
                        buf[slot * LANES..slot * LANES + len].copy_from_slice(&p[x0 + dx..x0 + dx + len]);
                        slot += 1;
                    }
                }
                run_network(avx2, buf, &ces);
                o[x0..x0 + len].copy_from_slice(&buf[med * LANES..med * LANES + len]);
            }
        },
    );
}

fn median_typed<P: Pixel>(s: &Stack, px: &[P], k: usize) -> Vec<P> {
    let n = s.volume_len();
    let window = if s.z() > 1 { k * k * k } else { k * k };
    if k == 3 && s.z() == 1 {
        let mut out = vec![P::default(); s.len()];
        for (o, vol) in out.chunks_mut(n).zip(px.chunks(n)) {
            median3x3(vol, s.y(), s.x(), o);
        }
        return out;
    }
    let limit = if matches!(P::DTYPE, petri_api::DType::U8 | petri_api::DType::U16) {
        FORGETFUL_MAX_INT
    } else {
        FORGETFUL_MAX_WIDE
    };
    if window <= limit {
        let mut out = vec![P::default(); s.len()];
        for (o, vol) in out.chunks_mut(n).zip(px.chunks(n)) {
            median_forgetful(vol, s.zyx(), k, o);
        }
        return out;
    }
    let mut out = Vec::with_capacity(s.len());
    for vol in px.chunks(n) {
        let (bins, nbins, values) = to_bins(vol);
        let med = median_bins(&bins, s.zyx(), nbins, k);
        let start = out.len();
        out.resize(start + n, P::default());
        util::par_map_into(&med, &mut out[start..], |&b| values[b as usize]);
    }
    out
}

/// Median filter with a box of `size` pixels per axis (odd, ≥ 3), per (t, c) volume, 3-D when
/// the stack has several slices; same pixel type out.
pub fn median(s: &Stack, size: usize) -> Result<Stack, NodeError> {
    if size < 3 || size.is_multiple_of(2) {
        return Err(NodeError::param("size", format!("must be an odd number of at least 3, got {size}")));
    }
    util::check_finite(s, "image")?;
    let data = match s.buffer() {
        Buffer::U8(v) => u8::into_buffer(median_typed(s, v, size)),
        Buffer::U16(v) => u16::into_buffer(median_typed(s, v, size)),
        Buffer::U32(v) => u32::into_buffer(median_typed(s, v, size)),
        Buffer::F32(v) => f32::into_buffer(median_typed(s, v, size)),
    };
    s.with_data(data).map_err(|e| NodeError::failed(e.to_string()))
}

pub struct Median;

impl Node for Median {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "image.median",
            1,
            "image",
            "Removes salt-and-pepper noise while keeping edges sharp: each pixel becomes the median of its neighbourhood.",
        )
        .input("image", PortType::Image, "Image to filter (2-D or 3-D; time points and channels separately).")
        .output("image", PortType::Image, "Filtered image, same pixel type as the input.")
        .param(
            ParamSpec::int(
                "size",
                3,
                "Width of the neighbourhood box in pixels (odd: 3, 5, 7...). 3-D stacks use a size×size×size box. \
                 Larger boxes remove bigger specks but erase small details.",
            )
            .min(3.0),
        )
    }

    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let size = p.usize("size")?;
        let out = util::by_frames1(ctx, inputs.image("image")?, "median", |f| median(f, size))?;
        Ok(Outputs::new().with("image", Value::Image(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_testkit::{read_stack, read_tiff_f64, reference, sample};

    /// Direct definition: sort the box around every pixel.
    fn brute<P: Pixel>(v: &[P], dims: [usize; 3], k: usize) -> Vec<P> {
        let [nz, ny, nx] = dims;
        let r = (k / 2) as isize;
        let rz = if nz > 1 { r } else { 0 };
        let c = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
        let mut out = Vec::new();
        for z in 0..nz as isize {
            for y in 0..ny as isize {
                for x in 0..nx as isize {
                    let mut w = Vec::new();
                    for dz in -rz..=rz {
                        for dy in -r..=r {
                            for dx in -r..=r {
                                w.push(v[(c(z + dz, nz) * ny + c(y + dy, ny)) * nx + c(x + dx, nx)]);
                            }
                        }
                    }
                    w.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    out.push(w[w.len() / 2]);
                }
            }
        }
        out
    }

    fn check_ref(dataset: &str, input: &str) {
        let img = read_stack::<u16>(&sample(input));
        let out = median(&img, 3).unwrap();
        let (_, want) = read_tiff_f64(&reference(dataset, "median.tif"));
        let got = out.pixels::<u16>().unwrap();
        let bad = got.iter().zip(&want).filter(|(a, b)| **a as f64 != **b).count();
        assert_eq!(bad, 0, "{dataset}: {bad} pixels differ from scikit-image");
    }

    #[test]
    fn matches_skimage_2d() {
        check_ref("nuclei2d_dsb2018", "nuclei2d.tif");
    }

    #[test]
    fn matches_skimage_3d() {
        check_ref("nuclei3d_synthetic_stardist", "nuclei3d_synthetic.tif");
    }

    #[test]
    fn matches_brute_force_for_all_types_and_sizes() {
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for dims in [[1, 9, 13], [5, 6, 7], [2, 3, 4], [1, 1, 5], [1, 5, 1], [1, 40, 33]] {
            let n = dims.iter().product();
            for k in [3, 5, 7] {
                let u: Vec<u16> = (0..n).map(|_| (rnd() % 300) as u16 * 200).collect();
                let s = Stack::from_3d(dims[0], dims[1], dims[2], u.clone()).unwrap();
                assert_eq!(median(&s, k).unwrap().pixels::<u16>().unwrap(), brute(&u, dims, k), "u16 {dims:?} k{k}");
                let f: Vec<f32> = (0..n).map(|_| (rnd() % 1000) as f32 * 0.37 - 100.0).collect();
                let s = Stack::from_3d(dims[0], dims[1], dims[2], f.clone()).unwrap();
                assert_eq!(median(&s, k).unwrap().pixels::<f32>().unwrap(), brute(&f, dims, k), "f32 {dims:?} k{k}");
                let w: Vec<u32> = (0..n).map(|_| rnd()).collect();
                let s = Stack::from_3d(dims[0], dims[1], dims[2], w.clone()).unwrap();
                assert_eq!(median(&s, k).unwrap().pixels::<u32>().unwrap(), brute(&w, dims, k), "u32 {dims:?} k{k}");
                let b: Vec<u8> = (0..n).map(|_| (rnd() % 256) as u8).collect();
                let s = Stack::from_3d(dims[0], dims[1], dims[2], b.clone()).unwrap();
                assert_eq!(median(&s, k).unwrap().pixels::<u8>().unwrap(), brute(&b, dims, k), "u8 {dims:?} k{k}");
            }
        }
    }

    #[test]
    fn matches_scipy_for_larger_boxes_and_u8() {
        use crate::util::{diff_fixture, fixture};
        let crop = read_stack::<u16>(&fixture("nuclei2d_crop.tif"));
        let n3d = read_stack::<u16>(&sample("nuclei3d_synthetic.tif"));
        let em = read_stack::<u8>(&fixture("em_crop_u8.tif"));
        for (img, k, file) in [(&crop, 5, "median5_crop.tif"), (&n3d, 5, "median5_3d.tif"), (&em, 7, "median7_em.tif")]
        {
            let out = median(img, k).unwrap();
            assert_eq!(out.dtype(), img.dtype());
            assert_eq!(diff_fixture(&out, file).0, 0, "{file}");
        }
    }

    #[test]
    fn rejects_even_size_and_nan() {
        let s = Stack::from_2d(2, 2, vec![1u8, 2, 3, 4]).unwrap();
        let e = median(&s, 4).unwrap_err().to_string();
        assert!(e.contains("size") && e.contains("odd"), "{e}");
        let s = Stack::from_2d(1, 2, vec![1.0f32, f32::NAN]).unwrap();
        assert!(median(&s, 3).unwrap_err().to_string().contains("input 'image'"));
    }
}
