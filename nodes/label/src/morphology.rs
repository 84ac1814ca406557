//! Morphology on masks and labels: the algorithms behind the `morph.*` nodes.
//!
//! * Ball footprints use the exact distance transform ([`crate::edt`]): a pixel survives an
//!   erosion by a ball of radius r iff its distance to the nearest background pixel is > r, and
//!   joins a dilation iff its distance to the nearest foreground pixel is ≤ r. That is exactly
//!   skimage's `ball(r)` / `disk(r)` (offsets with |o| ≤ r), costs O(n) whatever the radius, and
//!   extends to anisotropic voxels (the ball is round in physical units).
//! * Box footprints are separable: a 1-D erosion/dilation of radius r along each axis.
//! * Borders: pixels outside the image are ignored (skimage's `mode='ignore'`): the image edge
//!   neither erodes objects nor adds foreground.
//! * Labels: each object is processed alone inside its bounding box (grown by the radius), so
//!   touching objects erode away from each other. Erosion keeps a pixel of object L iff the
//!   footprint around it holds only L. Dilation grows objects into background only; where two
//!   objects reach the same background pixel the larger id wins (scipy `grey_dilation` on the
//!   background). Opening = erosion then dilation; closing = dilation then erosion.

use petri_api::{Inputs, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value};
use rayon::prelude::*;

use crate::connected_components::{components, label_volume_by};
use crate::edt::edt_sq;
use crate::util::{BBox, Connectivity, Shape3, bboxes, join_volumes, map_lines, par_fill, spacing_of, zeroed_vec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Footprint {
    Ball,
    Box,
}

/// A footprint with its radius (in the units of `spacing`: pixels when spacing is 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Structuring {
    pub footprint: Footprint,
    pub radius: f64,
    /// Voxel size in Z, Y, X (1 = pixels).
    pub spacing: [f64; 3],
}

impl Structuring {
    /// Reach of the footprint along each axis, in pixels (0 on the Z axis of 2-D images).
    pub fn axis_radius(&self, shape: Shape3) -> [usize; 3] {
        let mut r = [0; 3];
        for a in 0..3 {
            if shape[a] > 1 || a > 0 {
                // A tiny tolerance so that e.g. 1.0 / 0.1 * 0.1 still reaches 10 pixels.
                // Reaching past the image changes nothing, so the reach is capped at its size
                // (an absurd radius then costs no more than one as large as the image).
                let reach = (self.radius / self.spacing[a] * (1.0 + 1e-12)).floor().max(0.0);
                r[a] = reach.min(shape[a] as f64) as usize;
            }
        }
        r
    }

    /// Reads the `footprint`, `radius` and `use_spacing` parameters.
    pub fn from_params(p: &Params, spacing: [f64; 3]) -> Result<Structuring, NodeError> {
        let footprint = match p.str("footprint")? {
            "ball" => Footprint::Ball,
            "box" => Footprint::Box,
            other => return Err(NodeError::param("footprint", format!("expected 'ball' or 'box', got '{other}'"))),
        };
        Ok(Structuring { footprint, radius: p.f64("radius")?, spacing })
    }

    fn within(&self, d2: f64) -> bool {
        d2 <= self.radius * self.radius * (1.0 + 1e-12)
    }
}

/// 1-D erosion (`fg` kept iff every pixel within r on the line is fg) or dilation (set iff any
/// pixel within r is fg) of a 0/1 line, in place.
fn line_morph(line: &mut [u8], r: usize, erode: bool) {
    let n = line.len();
    // Distance to the nearest "other" pixel (bg for erosion, fg for dilation) on each side.
    let target = if erode { 0 } else { 1 };
    let mut next = vec![usize::MAX; n];
    let mut nx = usize::MAX;
    for q in (0..n).rev() {
        if line[q] == target {
            nx = q;
        }
        next[q] = nx;
    }
    let mut prev = usize::MAX;
    for q in 0..n {
        if line[q] == target {
            prev = q;
        }
        let dp = if prev == usize::MAX { usize::MAX } else { q - prev };
        let dn = if next[q] == usize::MAX { usize::MAX } else { next[q] - q };
        let near = dp.min(dn) <= r;
        line[q] = if erode { (!near) as u8 } else { near as u8 };
    }
}

/// The ball as rows: for each (dz, dy) it reaches, the half-width k of its x extent. `None`
/// when the ball is too large for the row method (more than 64 rows or wider than 17 pixels;
/// then the distance transform is cheaper).
fn ball_rows(shape: Shape3, st: &Structuring) -> Option<Vec<(isize, isize, u8)>> {
    let r = st.axis_radius(shape);
    let lim0 = st.radius * st.radius * (1.0 + 1e-12);
    let [sz, sy, sx] = st.spacing;
    let mut pairs = Vec::new();
    for dz in -(r[0] as isize)..=r[0] as isize {
        for dy in -(r[1] as isize)..=r[1] as isize {
            let lim = lim0 - (dz as f64 * sz).powi(2) - (dy as f64 * sy).powi(2);
            if lim < 0.0 {
                continue;
            }
            // Largest k with (k·sx)² ≤ lim, robust to rounding of the square root.
            let mut k = (lim.sqrt() / sx).floor() as i64;
            while ((k + 1) as f64 * sx).powi(2) <= lim {
                k += 1;
            }
            while k > 0 && (k as f64 * sx).powi(2) > lim {
                k -= 1;
            }
            if k > 8 {
                return None; // wide rows: the distance transform is cheaper
            }
            pairs.push((dz, dy, k as u8));
        }
    }
    (pairs.len() <= 64).then_some(pairs)
}

/// Ball erosion (`erode`) or dilation by rows. A ball is a stack of x segments: row offset
/// (dz, dy) with half-width k. Each source row's 1-D erosion (AND; dilation: OR) over |dx| ≤ k
/// is built for every k the ball needs, incrementally (two shifted passes per step); each output
/// row is then the AND (OR) of those rows at its (dz, dy) offsets. Every step is a whole-row
/// byte operation the compiler vectorises. Outside the image is ignored (rows and pixels beyond
/// the edge are skipped). Used for small balls; exact.
///
/// The work is streamed: the output is cut into blocks of rows, and each block keeps the
/// per-k rows of the source rows it reads in a small ring buffer (a few hundred KB, in cache)
/// instead of writing whole per-k images to memory and reading them back; so the input is read
/// once and the output written once. Small images (a 2-D frame) use few blocks, so thread
/// start-up does not dominate.
fn ball_by_rows(m: &[u8], shape: Shape3, pairs: &[(isize, isize, u8)], erode: bool) -> Vec<u8> {
    if erode { ball_by_rows_op::<true>(m, shape, pairs) } else { ball_by_rows_op::<false>(m, shape, pairs) }
}

/// AND (erosion) or OR (dilation) of two 0/1 bytes.
#[inline(always)]
fn and_or<const ERODE: bool>(a: &mut u8, b: u8) {
    if ERODE { *a &= b } else { *a |= b }
}

fn ball_by_rows_op<const ERODE: bool>(m: &[u8], shape: Shape3, pairs: &[(isize, isize, u8)]) -> Vec<u8> {
    let [d, h, w] = shape;
    let rows = d * h;
    let mut out = zeroed_vec::<u8>(m.len());
    if m.is_empty() {
        return out;
    }
    let mut ks: Vec<u8> = pairs.iter().map(|p| p.2).collect();
    ks.push(0);
    ks.sort_unstable();
    ks.dedup();
    let nl = ks.len();
    let level_of = |k: u8| ks.binary_search(&k).unwrap_or(0);
    // (row offset in the raster order of rows, dz, dy, level) of every segment.
    let segs: Vec<(isize, isize, isize, usize)> =
        pairs.iter().map(|&(dz, dy, k)| (dz * h as isize + dy, dz, dy, level_of(k))).collect();
    let reach = segs.iter().map(|s| s.0.unsigned_abs()).max().unwrap_or(0);
    let ring = 2 * reach + 1;
    // Blocks long enough that the recomputed halo (2·reach rows) is a small part of the work,
    // a multiple of the thread count so the threads finish together.
    let threads = rayon::current_num_threads().max(1);
    let by_halo = rows / (8 * reach).max(64);
    let mut blocks = by_halo.min(4 * threads).max(1);
    if blocks > threads {
        blocks -= blocks % threads;
    }
    let per = rows.div_ceil(blocks);
    let block = |b: usize, o: &mut [u8]| {
        let (r0, r1) = (b * per, ((b + 1) * per).min(rows));
        // ring[slot][level]: the source row's per-k rows.
        let mut buf = vec![0u8; ring * nl * w];
        let mut next = r0.saturating_sub(reach); // first source row not yet in the ring
        for r in r0..r1 {
            let want = (r + reach).min(rows - 1);
            while next <= want {
                let slot = &mut buf[(next % ring) * nl * w..][..nl * w];
                let src = &m[next * w..][..w];
                let (l0, rest) = slot.split_at_mut(w);
                l0.iter_mut().zip(src).for_each(|(a, &v)| *a = (v != 0) as u8);
                let mut prev_k = 0usize;
                let mut prev: &[u8] = l0;
                for (j, lv) in rest.chunks_mut(w).enumerate() {
                    let k = ks[j + 1] as usize;
                    lv.copy_from_slice(prev);
                    for dx in (prev_k + 1)..=k.min(w - 1) {
                        // lv[x] op= l0[x + dx] and l0[x − dx] where those exist.
                        lv[..w - dx].iter_mut().zip(&l0[dx..]).for_each(|(a, &b)| and_or::<ERODE>(a, b));
                        lv[dx..].iter_mut().zip(&l0[..w - dx]).for_each(|(a, &b)| and_or::<ERODE>(a, b));
                    }
                    prev_k = k;
                    prev = lv;
                }
                next += 1;
            }
            let (z, y) = ((r / h) as isize, (r % h) as isize);
            let orow = &mut o[(r - r0) * w..][..w];
            let mut first = true;
            for &(off, dz, dy, j) in &segs {
                let (nz, ny) = (z + dz, y + dy);
                if nz < 0 || ny < 0 || nz >= d as isize || ny >= h as isize {
                    continue;
                }
                let s = (r as isize + off) as usize;
                let src = &buf[((s % ring) * nl + j) * w..][..w];
                if first {
                    orow.copy_from_slice(src);
                    first = false;
                } else {
                    orow.iter_mut().zip(src).for_each(|(a, &b)| and_or::<ERODE>(a, b));
                }
            }
        }
    };
    if blocks == 1 {
        block(0, &mut out);
    } else {
        out.par_chunks_mut(per * w).enumerate().for_each(|(b, o)| block(b, o));
    }
    out
}

/// Ball erosion/dilation through the distance transform: O(n) whatever the radius.
fn ball_by_edt(m: &[u8], shape: Shape3, st: &Structuring, erode: bool) -> Vec<u8> {
    if erode {
        let d2 = edt_sq(shape, st.spacing, |i| m[i] == 0);
        par_fill(m.len(), |i| (m[i] != 0 && !st.within(d2[i])) as u8)
    } else {
        let d2 = edt_sq(shape, st.spacing, |i| m[i] != 0);
        par_fill(m.len(), |i| st.within(d2[i]) as u8)
    }
}

fn to01(m: &[u8]) -> Vec<u8> {
    par_fill(m.len(), |i| (m[i] != 0) as u8)
}

/// Binary erosion of a mask volume (non-zero = foreground); output 0/1.
pub fn erode_mask(m: &[u8], shape: Shape3, st: &Structuring) -> Vec<u8> {
    match st.footprint {
        Footprint::Ball => match ball_rows(shape, st) {
            Some(pairs) => ball_by_rows(m, shape, &pairs, true),
            None => ball_by_edt(m, shape, st, true),
        },
        Footprint::Box => {
            let mut out = to01(m);
            let r = st.axis_radius(shape);
            for a in [2, 1, 0] {
                if shape[a] > 1 && r[a] > 0 {
                    map_lines(&mut out, shape, a, |l| line_morph(l, r[a], true));
                }
            }
            out
        }
    }
}

/// Binary dilation of a mask volume; output 0/1.
pub fn dilate_mask(m: &[u8], shape: Shape3, st: &Structuring) -> Vec<u8> {
    match st.footprint {
        Footprint::Ball => match ball_rows(shape, st) {
            Some(pairs) => ball_by_rows(m, shape, &pairs, false),
            None => ball_by_edt(m, shape, st, false),
        },
        Footprint::Box => {
            let mut out = to01(m);
            let r = st.axis_radius(shape);
            for a in [2, 1, 0] {
                if shape[a] > 1 && r[a] > 0 {
                    map_lines(&mut out, shape, a, |l| line_morph(l, r[a], false));
                }
            }
            out
        }
    }
}

pub fn open_mask(m: &[u8], shape: Shape3, st: &Structuring) -> Vec<u8> {
    dilate_mask(&erode_mask(m, shape, st), shape, st)
}

pub fn close_mask(m: &[u8], shape: Shape3, st: &Structuring) -> Vec<u8> {
    erode_mask(&dilate_mask(m, shape, st), shape, st)
}

/// Runs `op` on the 0/1 crop of each object (its box grown by the footprint's reach) and
/// returns, per object in id order, the volume indices where the result is 1 (and `keep(i)`).
fn per_object(
    lab: &[u32],
    shape: Shape3,
    st: &Structuring,
    op: fn(&[u8], Shape3, &Structuring) -> Vec<u8>,
    keep: &(dyn Fn(usize, u32) -> bool + Sync),
) -> Vec<(u32, Vec<usize>)> {
    let reach = st.axis_radius(shape);
    bboxes(lab, shape)
        .par_iter()
        .map(|&(id, b)| {
            let g: BBox = b.grow(reach, shape);
            let cs = g.shape();
            let mut crop = vec![0u8; cs.iter().product()];
            let mut flat = vec![0usize; crop.len()];
            g.for_each(shape, |k, i| {
                flat[k] = i;
                crop[k] = (lab[i] == id) as u8;
            });
            let r = op(&crop, cs, st);
            (id, (0..crop.len()).filter(|&k| r[k] != 0 && keep(flat[k], id)).map(|k| flat[k]).collect())
        })
        .collect()
}

/// Erosion of every object of a label volume (objects erode away from each other too).
pub fn erode_labels(lab: &[u32], shape: Shape3, st: &Structuring) -> Vec<u32> {
    let mut out = zeroed_vec::<u32>(lab.len());
    for (id, px) in per_object(lab, shape, st, erode_mask, &|_, _| true) {
        for i in px {
            out[i] = id;
        }
    }
    out
}

/// Dilation of a label volume into the background (larger id wins where objects compete).
pub fn dilate_labels(lab: &[u32], shape: Shape3, st: &Structuring) -> Vec<u32> {
    let mut out = par_fill(lab.len(), |i| lab[i]);
    // Objects come in increasing id, so the last write (the largest id) wins.
    for (id, px) in per_object(lab, shape, st, dilate_mask, &|i, _| lab[i] == 0) {
        for i in px {
            out[i] = id;
        }
    }
    out
}

pub fn open_labels(lab: &[u32], shape: Shape3, st: &Structuring) -> Vec<u32> {
    dilate_labels(&erode_labels(lab, shape, st), shape, st)
}

pub fn close_labels(lab: &[u32], shape: Shape3, st: &Structuring) -> Vec<u32> {
    erode_labels(&dilate_labels(lab, shape, st), shape, st)
}

/// Whether flat index `i` of a volume lies on its outer faces (Z faces only for 3-D).
pub fn on_border(i: usize, shape: Shape3) -> bool {
    let [d, h, w] = shape;
    let (z, y, x) = (i / (h * w), (i / w) % h, i % w);
    x == 0 || x + 1 == w || y == 0 || y + 1 == h || (d > 1 && (z == 0 || z + 1 == d))
}

/// Components of the background (face connectivity, as scipy) that do not touch the border.
fn enclosed_background(is_bg: impl Fn(usize) -> bool + Sync, n: usize, shape: Shape3) -> (Vec<u32>, Vec<bool>) {
    let flags = par_fill(n, |i| is_bg(i) as u8);
    let (comp, count) = label_volume_by(&flags, shape, Connectivity::Face, |v| v != 0);
    let mut touches = vec![false; count as usize + 1];
    touches[0] = true;
    for_each_border(shape, |i| touches[comp[i] as usize] = true);
    (comp, touches)
}

/// Calls `f` for every pixel on the outer faces of a volume (some more than once).
fn for_each_border(shape: Shape3, mut f: impl FnMut(usize)) {
    let [d, h, w] = shape;
    for z in 0..d {
        for y in 0..h {
            let row = (z * h + y) * w;
            if (d > 1 && (z == 0 || z + 1 == d)) || y == 0 || y + 1 == h {
                (0..w).for_each(|x| f(row + x));
            } else {
                f(row);
                f(row + w - 1);
            }
        }
    }
}

/// scipy `binary_fill_holes`: background regions (face connectivity) not connected to the
/// image border become foreground. Output 0/1.
pub fn fill_holes_mask(m: &[u8], shape: Shape3) -> Vec<u8> {
    let c = components(m, shape, Connectivity::Face, |v| (v == 0) as u32);
    let touch = c.touches_border(shape, 0, true);
    let mut out = to01(m);
    c.paint(&mut out, shape, |id, _| (!touch[id as usize]).then_some(1));
    out
}

/// Fills holes of labelled objects: a background region (face connectivity) that does not touch
/// the border and whose neighbours all belong to one object takes that object's id. Holes
/// bordered by several objects stay background.
pub fn fill_holes_labels(lab: &[u32], shape: Shape3) -> Vec<u32> {
    let (comp, touches) = enclosed_background(|i| lab[i] == 0, lab.len(), shape);
    // Per hole: the single neighbouring id, or u32::MAX when several.
    let mut owner = vec![0u32; touches.len()];
    let nb = crate::util::Neighbourhood::new(shape, Connectivity::Face);
    for i in 0..lab.len() {
        let c = comp[i] as usize;
        if lab[i] != 0 || touches[c] || owner[c] == u32::MAX {
            continue;
        }
        nb.for_each(i, |j| {
            let l = lab[j];
            if l != 0 {
                owner[c] = if owner[c] == 0 || owner[c] == l { l } else { u32::MAX };
            }
        });
    }
    par_fill(lab.len(), |i| {
        let c = comp[i] as usize;
        if lab[i] == 0 && !touches[c] && owner[c] != u32::MAX { owner[c] } else { lab[i] }
    })
}

/// skimage `remove_small_objects(mask, max_size=min_size − 1, connectivity)`: objects with fewer
/// than `min_size` pixels are removed. Output 0/1.
pub fn remove_small_objects_mask(m: &[u8], shape: Shape3, min_size: usize, conn: Connectivity) -> Vec<u8> {
    let c = components(m, shape, conn, |v| (v != 0) as u32);
    let size = c.sizes();
    let mut out = zeroed_vec::<u8>(m.len());
    c.paint(&mut out, shape, |id, _| (size[id as usize] >= min_size).then_some(1));
    out
}

/// Labels with fewer than `min_size` pixels are removed (set to 0); ids are kept.
pub fn remove_small_objects_labels(lab: &[u32], min_size: usize) -> Vec<u32> {
    let mut size = std::collections::HashMap::new();
    lab.iter().filter(|&&l| l != 0).for_each(|&l| *size.entry(l).or_insert(0usize) += 1);
    par_fill(lab.len(), |i| if lab[i] != 0 && size[&lab[i]] >= min_size { lab[i] } else { 0 })
}

/// skimage `remove_small_holes(mask, max_size=min_size − 1, connectivity)`: background regions
/// with fewer than `min_size` pixels become foreground — including regions touching the image
/// border, as in skimage. Output 0/1.
pub fn remove_small_holes_mask(m: &[u8], shape: Shape3, min_size: usize, conn: Connectivity) -> Vec<u8> {
    let c = components(m, shape, conn, |v| (v == 0) as u32);
    let size = c.sizes();
    let mut out = to01(m);
    c.paint(&mut out, shape, |id, _| (size[id as usize] < min_size).then_some(1));
    out
}

// ---------------------------------------------------------------- node plumbing shared by the
// erode/dilate/open/close nodes (each node file is a thin adapter over these).

/// The spec of a morphology node on masks (`labels` false) or labels.
pub(crate) fn morph_spec(id: &str, doc: &str, labels: bool) -> NodeSpec {
    let (ty, what) = if labels { (PortType::Labels, "labels") } else { (PortType::Mask, "mask") };
    NodeSpec::new(id, 1, "morphology", doc)
        .input(what, ty, if labels { "Labelled objects (each processed on its own)." } else { "Mask to process." })
        .output(what, ty, if labels { "Processed labels, same ids." } else { "Processed mask." })
        .param(ParamSpec::choice(
            "footprint",
            &["ball", "box"],
            "ball",
            "Shape of the neighbourhood: 'ball' (disk in 2-D, sphere in 3-D) or 'box' (square / cube).",
        ))
        .param(
            ParamSpec::float(
                "radius",
                1.0,
                "Size of the neighbourhood: pixels from the centre to its edge (in physical units when \
                 'use_spacing' is on).",
            )
            .min(0.0),
        )
        .param(ParamSpec::bool(
            "use_spacing",
            false,
            "Measure the radius in the image's physical units (e.g. microns), so the ball stays round \
             when the z step is larger than the pixel size.",
        ))
}

type MaskOp = fn(&[u8], Shape3, &Structuring) -> Vec<u8>;
type LabelsOp = fn(&[u32], Shape3, &Structuring) -> Vec<u32>;

/// Applies a mask operation to every (t, c) volume of a stack.
pub fn apply_mask(stack: &Stack, port: &str, op: impl Fn(&[u8], Shape3) -> Vec<u8>) -> Result<Stack, NodeError> {
    let px = stack
        .pixels::<u8>()
        .ok_or_else(|| NodeError::input(port, format!("expected a u8 mask, got {}", stack.dtype())))?;
    let n = stack.volume_len();
    let out = join_volumes(px.chunks(n).map(|v| op(v, stack.zyx())).collect());
    stack.with_pixels(out).map_err(|e| NodeError::failed(e.to_string()))
}

/// Applies a labels operation to every (t, c) volume of a stack.
pub fn apply_labels(stack: &Stack, port: &str, op: impl Fn(&[u32], Shape3) -> Vec<u32>) -> Result<Stack, NodeError> {
    let px = stack
        .pixels::<u32>()
        .ok_or_else(|| NodeError::input(port, format!("expected u32 labels, got {}", stack.dtype())))?;
    let n = stack.volume_len();
    let out = join_volumes(px.chunks(n).map(|v| op(v, stack.zyx())).collect());
    stack.with_pixels(out).map_err(|e| NodeError::failed(e.to_string()))
}

/// Runs a morphology node: reads the footprint parameters, applies `mask_op` or `labels_op`.
pub(crate) fn run_morph(
    p: &Params,
    inputs: &Inputs,
    labels: bool,
    mask_op: MaskOp,
    labels_op: LabelsOp,
) -> Result<Outputs, NodeError> {
    if labels {
        let s = inputs.labels("labels")?;
        let st = Structuring::from_params(p, spacing_of(s, p.bool("use_spacing")?, "use_spacing")?)?;
        let out = apply_labels(s, "labels", |v, sh| labels_op(v, sh, &st))?;
        Ok(Outputs::new().with("labels", Value::Labels(out)))
    } else {
        let s = inputs.mask("mask")?;
        let st = Structuring::from_params(p, spacing_of(s, p.bool("use_spacing")?, "use_spacing")?)?;
        let out = apply_mask(s, "mask", |v, sh| mask_op(v, sh, &st))?;
        Ok(Outputs::new().with("mask", Value::Mask(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ball(r: f64) -> Structuring {
        Structuring { footprint: Footprint::Ball, radius: r, spacing: [1.0; 3] }
    }

    #[test]
    fn ball_and_box_on_a_square() {
        // 7×7 with a 5×5 square in the middle.
        let m: Vec<u8> = (0..49).map(|i| (i / 7 >= 1 && i / 7 <= 5 && i % 7 >= 1 && i % 7 <= 5) as u8).collect();
        let e = erode_mask(&m, [1, 7, 7], &ball(1.0));
        assert_eq!(e.iter().filter(|&&v| v == 1).count(), 9);
        let bx = Structuring { footprint: Footprint::Box, ..ball(1.0) };
        assert_eq!(erode_mask(&m, [1, 7, 7], &bx), e);
        // Dilating by a disk of radius 1 adds the 4-neighbours ring without corners.
        let d = dilate_mask(&m, [1, 7, 7], &ball(1.0));
        assert_eq!(d.iter().filter(|&&v| v == 1).count(), 49 - 4);
        assert_eq!(dilate_mask(&m, [1, 7, 7], &bx).iter().filter(|&&v| v == 1).count(), 49);
        // An absurd radius costs no more than the image size.
        let huge = Structuring { footprint: Footprint::Ball, radius: 1e12, spacing: [1.0; 3] };
        assert!(erode_mask(&m, [1, 7, 7], &huge).iter().all(|&v| v == 0));
        assert!(dilate_mask(&m, [1, 7, 7], &huge).iter().all(|&v| v == 1));
        let huge_box = Structuring { footprint: Footprint::Box, ..huge };
        assert!(dilate_mask(&m, [1, 7, 7], &huge_box).iter().all(|&v| v == 1));
        // Any non-zero value is foreground (a 0/255 mask gives the same 0/1 result).
        let m255: Vec<u8> = m.iter().map(|&v| v * 255).collect();
        assert_eq!(erode_mask(&m255, [1, 7, 7], &ball(1.0)), e);
        assert_eq!(dilate_mask(&m255, [1, 7, 7], &ball(1.0)), d);
        // One-pixel-wide and one-row images (no x or y neighbours).
        let col = vec![0u8, 1, 1, 1, 0];
        assert_eq!(erode_mask(&col, [1, 5, 1], &ball(1.0)), vec![0, 0, 1, 0, 0]);
        assert_eq!(dilate_mask(&col, [1, 1, 5], &ball(2.0)), vec![1; 5]);
        assert_eq!(erode_mask(&col, [1, 1, 5], &ball(0.0)), col);
        // The image edge does not erode.
        let full = vec![1u8; 9];
        assert_eq!(erode_mask(&full, [1, 3, 3], &ball(1.0)), full);
        assert_eq!(erode_mask(&full, [1, 3, 3], &bx), full);
    }

    #[test]
    fn row_method_equals_distance_transform_method() {
        let mut x = 99u64;
        // The last two shapes are cut into several streamed blocks (halo rows recomputed).
        for (shape, sp) in [
            ([1, 40, 37], [1.0, 1.0, 1.0]),
            ([9, 21, 23], [2.0, 1.0, 0.7]),
            ([7, 15, 19], [1.0; 3]),
            ([1, 700, 9], [1.0; 3]),
            ([48, 12, 7], [1.0; 3]),
        ] {
            let n: usize = shape.iter().product();
            let m: Vec<u8> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((x >> 33) % 10 < 6) as u8
                })
                .collect();
            for r in [1.0, 1.5, 2.0, 3.0, 4.2] {
                let st = Structuring { footprint: Footprint::Ball, radius: r, spacing: sp };
                let pairs = ball_rows(shape, &st).unwrap();
                for erode in [true, false] {
                    assert_eq!(
                        ball_by_rows(&m, shape, &pairs, erode),
                        ball_by_edt(&m, shape, &st, erode),
                        "{shape:?} r={r} erode={erode}"
                    );
                }
            }
        }
    }

    #[test]
    fn labels_erode_apart_and_dilate_into_background_only() {
        // Two touching objects on a line.
        let l = vec![0u32, 1, 1, 1, 2, 2, 2, 0, 0];
        assert_eq!(erode_labels(&l, [1, 1, 9], &ball(1.0)), vec![0, 0, 1, 0, 0, 2, 0, 0, 0]);
        assert_eq!(dilate_labels(&l, [1, 1, 9], &ball(1.0)), vec![1, 1, 1, 1, 2, 2, 2, 2, 0]);
        let gap = vec![1u32, 0, 2];
        assert_eq!(dilate_labels(&gap, [1, 1, 3], &ball(1.0)), vec![1, 2, 2]);
    }

    #[test]
    fn holes_and_small_things() {
        #[rustfmt::skip]
        let m: Vec<u8> = vec![
            1, 1, 1, 0, 0,
            1, 0, 1, 0, 1,
            1, 1, 1, 0, 0,
            0, 0, 0, 0, 0,
        ];
        let f = fill_holes_mask(&m, [1, 4, 5]);
        assert_eq!(f[6], 1);
        assert_eq!(f.iter().map(|&v| v as usize).sum::<usize>(), 10);
        let r = remove_small_objects_mask(&m, [1, 4, 5], 2, Connectivity::Full);
        assert_eq!(r[9], 0);
        assert_eq!(r[0], 1);
        let h = remove_small_holes_mask(&m, [1, 4, 5], 2, Connectivity::Face);
        assert_eq!(h[6], 1);
        assert_eq!(h[3], 0);
        let l: Vec<u32> = m.iter().map(|&v| v as u32 * 3).collect();
        assert_eq!(fill_holes_labels(&l, [1, 4, 5])[6], 3);
        assert_eq!(remove_small_objects_labels(&[3, 3, 4, 0], 2), vec![3, 3, 0, 0]);
    }
}
