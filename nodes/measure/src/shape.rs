//! Shape descriptors from accumulated moments and row extents, with scikit-image's definitions.

use crate::accum::{Acc, RowSpan};

/// Eigenvalues of the inertia tensor, in descending order, clipped at 0 (as
/// `skimage.measure.inertia_tensor_eigvals`). `ndim` is 2 (y, x) or 3 (z, y, x).
///
/// The inertia tensor has, on its diagonal, the sum of the other axes' variances, and off the
/// diagonal minus the covariances.
pub fn inertia_eigvals(a: &Acc, ndim: usize) -> Vec<f64> {
    let [czz, cyy, cxx, czy, czx, cyx] = a.covariance();
    let mut ev = if ndim == 2 {
        // [[cxx, -cyx], [-cyx, cyy]] in closed form.
        let (p, q, b) = (cxx, cyy, -cyx);
        let mean = 0.5 * (p + q);
        let r = (0.25 * (p - q) * (p - q) + b * b).sqrt();
        vec![mean + r, mean - r]
    } else {
        let tr = czz + cyy + cxx;
        let m = [[tr - czz, -czy, -czx], [-czy, tr - cyy, -cyx], [-czx, -cyx, tr - cxx]];
        jacobi_eigvals3(m).to_vec()
    };
    for v in ev.iter_mut() {
        *v = v.max(0.0);
    }
    ev.sort_by(|x, y| y.total_cmp(x));
    ev
}

/// Eigenvalues of a symmetric 3×3 matrix by cyclic Jacobi rotations. Hand-written because
/// a linear-algebra crate would be a large dependency for one 3×3 problem; Jacobi is
/// accurate to a few ulps relative to the largest eigenvalue.
#[allow(clippy::needless_range_loop)] // index form mirrors the rotation formulas
fn jacobi_eigvals3(mut a: [[f64; 3]; 3]) -> [f64; 3] {
    for _sweep in 0..50 {
        let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        if off == 0.0 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // A' = Jᵀ A J for the rotation in the (p, q) plane.
            for k in 0..3 {
                let akp = a[k][p];
                let akq = a[k][q];
                a[k][p] = c * akp - s * akq;
                a[k][q] = s * akp + c * akq;
            }
            for k in 0..3 {
                let apk = a[p][k];
                let aqk = a[q][k];
                a[p][k] = c * apk - s * aqk;
                a[q][k] = s * apk + c * aqk;
            }
        }
    }
    [a[0][0], a[1][1], a[2][2]]
}

/// (major, minor) axis lengths as scikit-image defines them.
pub fn axis_lengths(ev: &[f64]) -> (f64, f64) {
    if ev.len() == 2 {
        (4.0 * ev[0].sqrt(), 4.0 * ev[1].sqrt())
    } else {
        ((10.0 * (ev[0] + ev[1] - ev[2])).max(0.0).sqrt(), (10.0 * (-ev[0] + ev[1] + ev[2])).max(0.0).sqrt())
    }
}

/// 2-D eccentricity √(1 − λ₂/λ₁) (0 for a single pixel).
pub fn eccentricity(ev: &[f64]) -> f64 {
    if ev[0] == 0.0 { 0.0 } else { (1.0 - ev[1] / ev[0]).sqrt() }
}

/// Number of pixels of the 2-D convex hull image, as `skimage.morphology.convex_hull_image`:
/// the hull of every pixel's four "diamond" points (centre ± ½ along each axis), and then
/// every pixel centre inside the hull or on its border.
///
/// Hand-written in exact integer arithmetic (coordinates doubled so the ½ offsets are whole)
/// so that centres lying exactly on the hull's border are counted exactly as scikit-image
/// counts them; a float geometry crate would decide those ties by rounding.
pub fn convex_area_2d(spans: &[RowSpan]) -> u64 {
    if spans.is_empty() {
        return 0;
    }
    // Only each row's extreme pixels can lie on the hull (every other pixel's diamond points
    // lie on segments between theirs).
    let mut pts: Vec<(i64, i64)> = Vec::with_capacity(spans.len() * 6);
    for &(y, x0, x1) in spans {
        let (y, x0, x1) = (2 * y as i64, 2 * x0 as i64, 2 * x1 as i64);
        pts.extend_from_slice(&[(y - 1, x0), (y + 1, x0), (y, x0 - 1), (y - 1, x1), (y + 1, x1), (y, x1 + 1)]);
    }
    let hull = convex_hull(pts);
    let ymin = spans.iter().map(|s| s.0).min().unwrap_or(0) as i64;
    let ymax = spans.iter().map(|s| s.0).max().unwrap_or(0) as i64;
    let n = hull.len();
    let mut count = 0u64;
    for yc in ymin..=ymax {
        let yy = 2 * yc;
        // Leftmost and rightmost crossing of the row's line with the hull, as fractions
        // num/den (den > 0), in doubled coordinates.
        let mut lo: Option<(i128, i128)> = None;
        let mut hi: Option<(i128, i128)> = None;
        let mut take = |num: i128, den: i128| {
            if lo.is_none_or(|(ln, ld)| num * ld < ln * den) {
                lo = Some((num, den));
            }
            if hi.is_none_or(|(hn, hd)| num * hd > hn * den) {
                hi = Some((num, den));
            }
        };
        for i in 0..n {
            let (ay, ax) = hull[i];
            let (by, bx) = hull[(i + 1) % n];
            if (yy < ay.min(by)) || (yy > ay.max(by)) {
                continue;
            }
            if ay == by {
                take(ax as i128, 1);
                take(bx as i128, 1);
            } else {
                let den = (by - ay) as i128;
                let num = ax as i128 * den + (bx - ax) as i128 * (yy - ay) as i128;
                if den < 0 { take(-num, -den) } else { take(num, den) }
            }
        }
        if let (Some((ln, ld)), Some((hn, hd))) = (lo, hi) {
            // Integer x with 2x ≥ lo and 2x ≤ hi.
            let xmin = div_ceil(ln, 2 * ld);
            let xmax = div_floor(hn, 2 * hd);
            if xmax >= xmin {
                count += (xmax - xmin + 1) as u64;
            }
        }
    }
    count
}

fn div_floor(a: i128, b: i128) -> i128 {
    let q = a / b;
    if (a % b != 0) && ((a < 0) != (b < 0)) { q - 1 } else { q }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    -div_floor(-a, b)
}

/// Andrew's monotone chain: the hull's corners in counter-clockwise order, without collinear
/// points. Exact on integers.
fn convex_hull(mut p: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    p.sort_unstable();
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| -> i128 {
        (a.0 - o.0) as i128 * (b.1 - o.1) as i128 - (a.1 - o.1) as i128 * (b.0 - o.0) as i128
    };
    let mut h: Vec<(i64, i64)> = Vec::with_capacity(2 * p.len());
    for &q in &p {
        while h.len() >= 2 && cross(h[h.len() - 2], h[h.len() - 1], q) <= 0 {
            h.pop();
        }
        h.push(q);
    }
    let lower = h.len() + 1;
    for &q in p.iter().rev().skip(1) {
        while h.len() >= lower && cross(h[h.len() - 2], h[h.len() - 1], q) <= 0 {
            h.pop();
        }
        h.push(q);
    }
    h.pop();
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convex_area_of_simple_shapes() {
        // One pixel; a 3-pixel row; an L of 3 pixels (the missing corner's centre lies outside
        // the diamond hull, so nothing is added).
        assert_eq!(convex_area_2d(&[(0, 0, 0)]), 1);
        assert_eq!(convex_area_2d(&[(5, 2, 4)]), 3);
        assert_eq!(convex_area_2d(&[(0, 0, 0), (1, 0, 1)]), 3);
        // A hollow 3×3 ring: hull fills the centre.
        assert_eq!(convex_area_2d(&[(0, 0, 2), (1, 0, 2), (2, 0, 2)]), 9);
        // Two pixels diagonal to each other: hull holds both, not the other two corners.
        assert_eq!(convex_area_2d(&[(0, 0, 0), (1, 1, 1)]), 2);
    }

    #[test]
    fn jacobi_matches_closed_form_on_diagonal_and_rotated() {
        let ev = jacobi_eigvals3([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 5.0]]);
        let mut ev = ev.to_vec();
        ev.sort_by(|a, b| a.total_cmp(b));
        assert!((ev[0] - 1.0).abs() < 1e-14 && (ev[1] - 3.0).abs() < 1e-14 && (ev[2] - 5.0).abs() < 1e-14, "{ev:?}");
    }
}
