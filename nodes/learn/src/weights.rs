//! Per-voxel loss weights: class balancing and the U-Net border weights of Ronneberger et al.
//! (2015), w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / 2σ²) on background voxels, with d1, d2
//! the distances to the nearest and second-nearest cell (as MIA does for touching cells).

/// "Infinite" squared distance (finite, so the parabola intersections stay well defined).
const FAR: f64 = 1e18;

/// Squared distance transform along one line (Felzenszwalb & Huttenlocher), in place.
fn edt1d(f: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    if n == 0 {
        return;
    }
    let src: Vec<f64> = f.to_vec();
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in 1..n {
        let mut s;
        loop {
            let p = v[k];
            s = ((src[q] + (q * q) as f64) - (src[p] + (p * p) as f64)) / (2.0 * (q as f64 - p as f64));
            if s <= z[k] && k > 0 {
                k -= 1;
            } else {
                break;
            }
        }
        if s <= z[k] {
            // k == 0 and the new parabola dominates everywhere.
            v[0] = q;
            z[1] = f64::INFINITY;
            continue;
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    let mut k = 0;
    for (q, fq) in f.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        *fq = ((q as f64 - p as f64).powi(2) + src[p]).min(FAR);
    }
}

/// Squared Euclidean distance to the nearest `true` voxel of a D×H×W mask.
pub fn sq_edt(mask: &[bool], dims: [usize; 3]) -> Vec<f64> {
    let [d, h, w] = dims;
    let mut f: Vec<f64> = mask.iter().map(|&m| if m { 0.0 } else { FAR }).collect();
    let n = d.max(h).max(w);
    let (mut line, mut v, mut z) = (vec![0f64; n], vec![0usize; n], vec![0f64; n + 1]);
    // X lines.
    for r in 0..d * h {
        let s = &mut f[r * w..(r + 1) * w];
        edt1d(s, &mut v, &mut z);
    }
    // Y lines.
    for zz in 0..d {
        for x in 0..w {
            for y in 0..h {
                line[y] = f[(zz * h + y) * w + x];
            }
            edt1d(&mut line[..h], &mut v, &mut z);
            for y in 0..h {
                f[(zz * h + y) * w + x] = line[y];
            }
        }
    }
    if d > 1 {
        for y in 0..h {
            for x in 0..w {
                for zz in 0..d {
                    line[zz] = f[(zz * h + y) * w + x];
                }
                edt1d(&mut line[..d], &mut v, &mut z);
                for zz in 0..d {
                    f[(zz * h + y) * w + x] = line[zz];
                }
            }
        }
    }
    f
}

/// The border term w0·exp(−(d1+d2)²/2σ²) on background voxels (0 on cells), from instance
/// labels. Each cell's distances are computed in its bounding box grown by 3σ (beyond, the term
/// is below w0·e^−18).
pub fn border_weights(instances: &[u32], dims: [usize; 3], w0: f64, sigma: f64) -> Vec<f32> {
    let [d, h, w] = dims;
    let mut boxes: std::collections::BTreeMap<u32, [usize; 6]> = std::collections::BTreeMap::new();
    for (i, &l) in instances.iter().enumerate() {
        if l == 0 {
            continue;
        }
        let (z, y, x) = (i / (h * w), (i / w) % h, i % w);
        let b = boxes.entry(l).or_insert([z, y, x, z, y, x]);
        b[0] = b[0].min(z);
        b[1] = b[1].min(y);
        b[2] = b[2].min(x);
        b[3] = b[3].max(z);
        b[4] = b[4].max(y);
        b[5] = b[5].max(x);
    }
    let r = (3.0 * sigma).ceil() as usize;
    let mut d1 = vec![f64::INFINITY; instances.len()];
    let mut d2 = vec![f64::INFINITY; instances.len()];
    for (&l, b) in &boxes {
        let rz = if d > 1 { r } else { 0 };
        let lo = [b[0].saturating_sub(rz), b[1].saturating_sub(r), b[2].saturating_sub(r)];
        let hi = [(b[3] + rz + 1).min(d), (b[4] + r + 1).min(h), (b[5] + r + 1).min(w)];
        let wd = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
        let mut mask = Vec::with_capacity(wd[0] * wd[1] * wd[2]);
        for z in lo[0]..hi[0] {
            for y in lo[1]..hi[1] {
                for x in lo[2]..hi[2] {
                    mask.push(instances[(z * h + y) * w + x] == l);
                }
            }
        }
        let e = sq_edt(&mask, wd);
        let mut k = 0;
        for z in lo[0]..hi[0] {
            for y in lo[1]..hi[1] {
                for x in lo[2]..hi[2] {
                    let i = (z * h + y) * w + x;
                    let dist = e[k].sqrt();
                    k += 1;
                    if dist < d1[i] {
                        d2[i] = d1[i];
                        d1[i] = dist;
                    } else if dist < d2[i] {
                        d2[i] = dist;
                    }
                }
            }
        }
    }
    instances
        .iter()
        .zip(d1.iter().zip(&d2))
        .map(|(&l, (&a, &b))| {
            if l != 0 || b >= FAR.sqrt() / 2.0 {
                0.0
            } else {
                (w0 * (-(a + b).powi(2) / (2.0 * sigma * sigma)).exp()) as f32
            }
        })
        .collect()
}

/// Class weights inversely proportional to class frequency, normalised so the mean weight per
/// voxel is 1 (classes absent from the data get weight 1).
pub fn balanced_class_weights(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0).count().max(1);
    counts.iter().map(|&c| if c == 0 { 1.0 } else { total as f64 / (present as f64 * c as f64) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edt_matches_brute_force() {
        let dims = [3, 7, 9];
        let mask: Vec<bool> = (0..3 * 7 * 9).map(|i| i % 23 == 5 || i == 100).collect();
        let e = sq_edt(&mask, dims);
        for (i, &v) in e.iter().enumerate() {
            let (z, y, x) = ((i / 63) as f64, ((i / 9) % 7) as f64, (i % 9) as f64);
            let best = (0..mask.len())
                .filter(|&j| mask[j])
                .map(|j| {
                    let (a, b, c) = ((j / 63) as f64, ((j / 9) % 7) as f64, (j % 9) as f64);
                    (z - a).powi(2) + (y - b).powi(2) + (x - c).powi(2)
                })
                .fold(f64::INFINITY, f64::min);
            assert_eq!(v, best, "voxel {i}");
        }
    }

    #[test]
    fn border_weight_peaks_between_touching_cells() {
        // Two cells separated by a one-pixel gap at x = 5, and far background at x = 0.
        let dims = [1, 5, 11];
        let inst: Vec<u32> = (0..55)
            .map(|i| {
                let x = i % 11;
                if (2..5).contains(&x) {
                    1
                } else if (6..9).contains(&x) {
                    2
                } else {
                    0
                }
            })
            .collect();
        let w = border_weights(&inst, dims, 10.0, 5.0);
        let gap = w[2 * 11 + 5];
        // d1 = d2 = 1: 10·exp(−4/50).
        assert!((gap as f64 - 10.0 * (-4.0f64 / 50.0).exp()).abs() < 1e-5, "{gap}");
        assert!(w[2 * 11] < gap);
        assert_eq!(w[2 * 11 + 3], 0.0);
        assert_eq!(balanced_class_weights(&[30, 10]), vec![40.0 / 60.0, 2.0]);
    }
}
