//! Helpers shared by the label nodes: connectivity, per-volume iteration, parameter parsing.

use petri_api::{NodeError, Params, Pixel, Stack};
use rayon::prelude::*;

/// Which neighbours touch: `Face` = 4 in 2-D / 6 in 3-D (skimage `connectivity=1`),
/// `Full` = 8 / 26 (skimage `connectivity=ndim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connectivity {
    Face,
    Full,
}

impl Connectivity {
    /// Reads a `face`/`full` choice parameter.
    pub fn from_param(p: &Params, name: &str) -> Result<Connectivity, NodeError> {
        match p.str(name)? {
            "face" => Ok(Connectivity::Face),
            "full" => Ok(Connectivity::Full),
            other => Err(NodeError::param(name, format!("expected 'face' or 'full', got '{other}'"))),
        }
    }
}

/// Spatial shape of one volume, Z×Y×X (z = 1 for 2-D images).
pub type Shape3 = [usize; 3];

/// Runs `f` on every (t, c) volume of `stack` in order and concatenates the outputs into one
/// buffer of the stack's length (same T, C, Z, Y, X layout).
pub fn map_volumes<P: Pixel, O: Clone + Default>(
    stack: &Stack,
    port: &str,
    mut f: impl FnMut(&[P], Shape3) -> Result<Vec<O>, NodeError>,
) -> Result<Vec<O>, NodeError> {
    let shape = stack.zyx();
    let mut out = Vec::new();
    for t in 0..stack.t() {
        for c in 0..stack.c() {
            let vol = stack.volume::<P>(t, c).ok_or_else(|| {
                NodeError::input(port, format!("expected {} pixels, got {}", P::DTYPE, stack.dtype()))
            })?;
            let v = f(vol, shape)?;
            debug_assert_eq!(v.len(), vol.len());
            out.push(v);
        }
    }
    Ok(join_volumes(out))
}

/// Joins per-volume outputs into one buffer; a single volume is returned as is, without a copy
/// (a copy of a large volume costs a fresh allocation and its page faults).
pub fn join_volumes<T: Clone>(mut vols: Vec<Vec<T>>) -> Vec<T> {
    if vols.len() == 1 {
        return vols.pop().unwrap_or_default();
    }
    vols.concat()
}

/// Spacing (Z, Y, X) of a stack's voxels for distance computations: the calibrated voxel size
/// when `use_spacing`, else 1 per axis. Z is ignored (1) for 2-D images.
pub fn spacing_of(stack: &Stack, use_spacing: bool, param: &str) -> Result<[f64; 3], NodeError> {
    if !use_spacing {
        return Ok([1.0; 3]);
    }
    let v = stack.voxel_size();
    let sp = [if stack.z() > 1 { v.z } else { 1.0 }, v.y, v.x];
    if sp.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(NodeError::param(
            param,
            format!("the image's voxel size {:?} is not usable (each axis needs a positive size)", sp),
        ));
    }
    Ok(sp)
}

/// Checks that an optional input has the same T, C, Z, Y, X shape as the main one.
pub fn check_same_shape(main: &Stack, main_port: &str, other: &Stack, port: &str) -> Result<(), NodeError> {
    if main.dims() != other.dims() {
        return Err(NodeError::input(
            port,
            format!("shape {} does not match input '{main_port}' ({})", other.describe(), main.describe()),
        ));
    }
    Ok(())
}

/// Index of the first pixel of volume (t, c) in a stack's buffer, for messages.
pub fn volume_name(stack: &Stack, t: usize, c: usize) -> String {
    match (stack.t() > 1, stack.c() > 1) {
        (true, true) => format!(" (time point {t}, channel {c})"),
        (true, false) => format!(" (time point {t})"),
        (false, true) => format!(" (channel {c})"),
        (false, false) => String::new(),
    }
}

/// Every (t, c) pair of a stack, in buffer order.
pub fn volumes(stack: &Stack) -> impl Iterator<Item = (usize, usize)> + use<> {
    let (nt, nc) = (stack.t(), stack.c());
    (0..nt).flat_map(move |t| (0..nc).map(move |c| (t, c)))
}

/// A stack's pixels as f64, checked finite (NaN/Inf are refused with the pixel named).
pub fn finite_f64(stack: &Stack, port: &str) -> Result<Vec<f64>, NodeError> {
    stack.check_finite().map_err(|m| NodeError::input(port, m))?;
    Ok(stack.buffer().to_f64_vec())
}

/// Neighbour offsets (dz, dy, dx) of a connectivity, in skimage's order (by distance, then by
/// raveled offset), which decides queue ages and therefore tie-breaking in the watershed.
/// 2-D volumes (z = 1) get no z offsets.
pub fn neighbour_offsets(shape: Shape3, conn: Connectivity) -> Vec<[isize; 3]> {
    let three_d = shape[0] > 1;
    let mut v = Vec::new();
    for dz in -1isize..=1 {
        if dz != 0 && !three_d {
            continue;
        }
        for dy in -1isize..=1 {
            for dx in -1isize..=1 {
                let nz = (dz != 0) as u32 + (dy != 0) as u32 + (dx != 0) as u32;
                if nz == 0 || (conn == Connectivity::Face && nz > 1) {
                    continue;
                }
                v.push([dz, dy, dx]);
            }
        }
    }
    // Lexicographic (dz, dy, dx) equals raveled-offset order; stable sort keeps it within a distance.
    v.sort_by_key(|o| o.iter().map(|a| a * a).sum::<isize>());
    v
}

/// Precomputed neighbour access for a volume: flat offsets plus bounds checks.
pub struct Neighbourhood {
    pub offsets: Vec<[isize; 3]>,
    flat: Vec<isize>,
    shape: Shape3,
}

impl Neighbourhood {
    pub fn new(shape: Shape3, conn: Connectivity) -> Neighbourhood {
        let offsets = neighbour_offsets(shape, conn);
        let [_, h, w] = shape;
        let flat = offsets.iter().map(|o| o[0] * (h * w) as isize + o[1] * w as isize + o[2]).collect();
        Neighbourhood { offsets, flat, shape }
    }

    /// Calls `f(neighbour index)` for every in-volume neighbour of pixel `i`, in order.
    #[inline]
    pub fn for_each(&self, i: usize, mut f: impl FnMut(usize)) {
        let [d, h, w] = self.shape;
        // One division for 2-D, two for 3-D (this runs for every pixel a flood visits; 32-bit
        // division is much cheaper than 64-bit where the index fits).
        let row = if (i | w) <= u32::MAX as usize { (i as u32 / w as u32) as usize } else { i / w };
        let x = i - row * w;
        let (z, y) = if d == 1 { (0, row) } else { (row / h, row % h) };
        let interior = x > 0 && x + 1 < w && y > 0 && y + 1 < h && (d == 1 || (z > 0 && z + 1 < d));
        if interior {
            for &o in &self.flat {
                f((i as isize + o) as usize);
            }
        } else {
            for (k, o) in self.offsets.iter().enumerate() {
                let (nz, ny, nx) = (z as isize + o[0], y as isize + o[1], x as isize + o[2]);
                if nz < 0 || ny < 0 || nx < 0 || nz >= d as isize || ny >= h as isize || nx >= w as isize {
                    continue;
                }
                f((i as isize + self.flat[k]) as usize);
            }
        }
    }
}

/// Order-preserving map from f64 to u64 (−0 and +0 map alike; NaN must be excluded before).
#[inline]
pub fn order_key(v: f64) -> u64 {
    let b = (v + 0.0).to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// Bounding box of an object: inclusive-exclusive ranges per axis (Z, Y, X).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BBox {
    pub lo: [usize; 3],
    pub hi: [usize; 3],
    /// Number of the object's pixels.
    pub count: usize,
}

impl BBox {
    pub fn shape(&self) -> Shape3 {
        [self.hi[0] - self.lo[0], self.hi[1] - self.lo[1], self.hi[2] - self.lo[2]]
    }

    /// Grows by `r` on every side, clipped to `shape`.
    pub fn grow(&self, r: [usize; 3], shape: Shape3) -> BBox {
        let mut b = *self;
        for a in 0..3 {
            b.lo[a] = b.lo[a].saturating_sub(r[a]);
            b.hi[a] = (b.hi[a] + r[a]).min(shape[a]);
        }
        b
    }

    /// Flat volume indices of the box's pixels, in raster order, with their crop index.
    pub fn for_each(&self, shape: Shape3, mut f: impl FnMut(usize, usize)) {
        let [_, h, w] = shape;
        let mut k = 0;
        for z in self.lo[0]..self.hi[0] {
            for y in self.lo[1]..self.hi[1] {
                let row = (z * h + y) * w;
                for x in self.lo[2]..self.hi[2] {
                    f(k, row + x);
                    k += 1;
                }
            }
        }
    }
}

/// Bounding boxes (and pixel counts) of every non-zero label of a volume, sorted by label id.
/// Rows are scanned in parallel chunks whose partial boxes are then merged.
pub fn bboxes(labels: &[u32], shape: Shape3) -> Vec<(u32, BBox)> {
    let [_, h, w] = shape;
    let empty = BBox { lo: [usize::MAX; 3], hi: [0; 3], count: 0 };
    let add = |b: &mut BBox, z: usize, y: usize, x0: usize, x1: usize| {
        b.lo = [b.lo[0].min(z), b.lo[1].min(y), b.lo[2].min(x0)];
        b.hi = [b.hi[0].max(z + 1), b.hi[1].max(y + 1), b.hi[2].max(x1 + 1)];
        b.count += x1 + 1 - x0;
    };
    let merge = |a: &mut BBox, b: &BBox| {
        if b.count > 0 {
            for k in 0..3 {
                a.lo[k] = a.lo[k].min(b.lo[k]);
                a.hi[k] = a.hi[k].max(b.hi[k]);
            }
            a.count += b.count;
        }
    };
    let max = labels.par_iter().copied().max().unwrap_or(0) as usize;
    let rows = labels.len() / w.max(1);
    let chunk_rows = rows.div_ceil(2 * rayon::current_num_threads()).max(1);
    // Scans rows [r0, r1), calling `put(label, z, y, x0, x1)` once per run of equal labels.
    let scan = |r0: usize, r1: usize, put: &mut dyn FnMut(u32, usize, usize, usize, usize)| {
        for r in r0..r1 {
            let (z, y) = (r / h, r % h);
            let row = &labels[r * w..(r + 1) * w];
            let mut x = 0;
            while x < w {
                let l = row[x];
                let x0 = x;
                while x < w && row[x] == l {
                    x += 1;
                }
                if l != 0 {
                    put(l, z, y, x0, x - 1);
                }
            }
        }
    };
    let mut out: Vec<(u32, BBox)>;
    if (max + 1) * (rows.div_ceil(chunk_rows)) <= 8 * labels.len() + 4096 {
        let parts: Vec<Vec<BBox>> = (0..rows.div_ceil(chunk_rows))
            .into_par_iter()
            .map(|c| {
                let mut v = vec![empty; max + 1];
                scan(c * chunk_rows, ((c + 1) * chunk_rows).min(rows), &mut |l, z, y, x0, x1| {
                    add(&mut v[l as usize], z, y, x0, x1)
                });
                v
            })
            .collect();
        let mut v = vec![empty; max + 1];
        for p in &parts {
            for (a, b) in v.iter_mut().zip(p) {
                merge(a, b);
            }
        }
        out = v.into_iter().enumerate().filter(|(_, b)| b.count > 0).map(|(l, b)| (l as u32, b)).collect();
    } else {
        // Sparse huge ids: a hash map, one pass.
        let mut m: std::collections::HashMap<u32, BBox> = std::collections::HashMap::new();
        scan(0, rows, &mut |l, z, y, x0, x1| add(m.entry(l).or_insert(empty), z, y, x0, x1));
        out = m.into_iter().collect();
        out.sort_by_key(|p| p.0);
    }
    out
}

/// Running maximum over a window of radius `r` (clipped at the ends) of `line`, in place, by
/// van Herk / Gil–Werman (three passes, no data-dependent branches). `a`, `g`, `hh` are scratch.
pub fn running_max(line: &mut [f64], r: usize, scratch: &mut [Vec<f64>; 3]) {
    let n = line.len();
    let win = 2 * r + 1;
    let len = n + 2 * r;
    let [a, g, hh] = scratch;
    for v in [&mut *a, &mut *g, &mut *hh] {
        v.clear();
        v.resize(len, f64::NEG_INFINITY);
    }
    a[r..r + n].copy_from_slice(line);
    // Per block of `win`: prefix maxima into g, suffix maxima into hh.
    let mut j = 0;
    while j < len {
        let e = (j + win).min(len);
        g[j] = a[j];
        for t in j + 1..e {
            g[t] = g[t - 1].max(a[t]);
        }
        hh[e - 1] = a[e - 1];
        for t in (j..e - 1).rev() {
            hh[t] = hh[t + 1].max(a[t]);
        }
        j = e;
    }
    for (i, v) in line.iter_mut().enumerate() {
        *v = hh[i].max(g[i + win - 1]);
    }
}

/// Box maximum filter of radius `r` per axis (window clipped at the volume's edges, like
/// scipy's `maximum_filter(mode='nearest')`), in place, lines in parallel.
pub fn max_filter_box(data: &mut [f64], shape: Shape3, r: [usize; 3]) {
    for axis in [2usize, 1, 0] {
        if shape[axis] <= 1 || r[axis] == 0 {
            continue;
        }
        let ra = r[axis];
        map_lines_with(data, shape, axis, || [Vec::new(), Vec::new(), Vec::new()], |line, s| running_max(line, ra, s));
    }
}

/// A raw pointer that may cross threads, for parallel tasks writing provably disjoint elements
/// (different lines of one volume), which safe slices cannot express.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub *mut T);
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// Through a method so closures capture the whole (Sync) wrapper, not the raw field.
    #[inline]
    pub fn get(self) -> *mut T {
        self.0
    }
}

/// Applies `f` to every line of `data` along `axis` (0 = Z, 1 = Y, 2 = X), in parallel. Lines
/// along Y and Z are copied in blocks of consecutive x (one contiguous copy per row segment) so
/// strided access does not thrash the cache.
pub fn map_lines<T: Copy + Default + Send + Sync>(
    data: &mut [T],
    shape: Shape3,
    axis: usize,
    f: impl Fn(&mut [T]) + Sync,
) {
    map_lines_with(data, shape, axis, || (), |l, _| f(l));
}

/// [`map_lines`] with per-task scratch state made by `init`.
pub fn map_lines_with<T: Copy + Default + Send + Sync, S>(
    data: &mut [T],
    shape: Shape3,
    axis: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut [T], &mut S) + Sync,
) {
    let [d, h, w] = shape;
    if axis == 2 {
        data.par_chunks_mut(w).for_each_init(&init, |s, l| f(l, s));
        return;
    }
    let (n, stride, outer, outer_step) = if axis == 1 { (h, w, d, h * w) } else { (d, h * w, h, w) };
    const XB: usize = 16;
    let blocks = w.div_ceil(XB);
    let ptr = SyncPtr(data.as_mut_ptr());
    let len = data.len();
    (0..outer * blocks).into_par_iter().for_each_init(
        || (vec![T::default(); n * XB], vec![T::default(); n], init()),
        |(blk, line, st), job| {
            let (o, b) = (job / blocks, job % blocks);
            let x0 = b * XB;
            let bw = (x0 + XB).min(w) - x0;
            let base = o * outer_step + x0;
            debug_assert!(base + (n - 1) * stride + bw <= len);
            // SAFETY: the segment (o, x0..x0+bw) of every line belongs to this job alone and
            // lies inside `data`.
            unsafe {
                for i in 0..n {
                    let src = std::slice::from_raw_parts(ptr.get().add(base + i * stride), bw);
                    blk[i * XB..i * XB + bw].copy_from_slice(src);
                }
            }
            for j in 0..bw {
                for i in 0..n {
                    line[i] = blk[i * XB + j];
                }
                f(line, st);
                for i in 0..n {
                    blk[i * XB + j] = line[i];
                }
            }
            unsafe {
                for i in 0..n {
                    let dst = std::slice::from_raw_parts_mut(ptr.get().add(base + i * stride), bw);
                    dst.copy_from_slice(&blk[i * XB..i * XB + bw]);
                }
            }
        },
    );
}

/// Zero-filled and parallel-filled outputs: shared with the other node crates.
pub use petri_api::mem::{par_fill, zeroed_vec};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bboxes_dense_and_sparse_ids() {
        // 2×3×4 volume; id 7 spans both slices, id 2 one pixel.
        let mut l = vec![0u32; 24];
        l[1] = 7;
        l[2] = 7;
        l[4 * 3 + 4 + 3] = 7; // z1 y1 x3
        l[5] = 2;
        let b = bboxes(&l, [2, 3, 4]);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0], (2, BBox { lo: [0, 1, 1], hi: [1, 2, 2], count: 1 }));
        assert_eq!(b[1], (7, BBox { lo: [0, 0, 1], hi: [2, 2, 4], count: 3 }));
        let sparse: Vec<u32> = l.iter().map(|&v| if v == 7 { u32::MAX } else { v }).collect();
        let s = bboxes(&sparse, [2, 3, 4]);
        assert_eq!(s[1], (u32::MAX, b[1].1));
        assert_eq!(s[0], b[0]);
    }

    #[test]
    fn running_max_clips_at_the_ends() {
        let mut line = vec![1.0, 5.0, 2.0, 0.0, 0.0, 3.0];
        let mut s = [Vec::new(), Vec::new(), Vec::new()];
        running_max(&mut line, 1, &mut s);
        assert_eq!(line, vec![5.0, 5.0, 5.0, 2.0, 3.0, 3.0]);
        let mut line = vec![1.0, 5.0, 2.0];
        running_max(&mut line, 10, &mut s);
        assert_eq!(line, vec![5.0; 3]);
    }
}
