//! Instances from a class map, for the accuracy tests and examples of this crate: connected
//! components of the "cell" class as seeds, grown into the "border" class by breadth-first
//! expansion (a watershed on a flat landscape, in deterministic order), and object F1 at an
//! IoU threshold. The graph-level watershed is `label.watershed` from the label crate.

use std::collections::{BTreeMap, VecDeque};

/// 4-/6-connected components of voxels where `fg` is true, numbered from 1 in scan order.
pub fn connected_components(fg: &[bool], dims: [usize; 3]) -> Vec<u32> {
    let [d, h, w] = dims;
    let mut lab = vec![0u32; fg.len()];
    let mut next = 0u32;
    let mut q = VecDeque::new();
    for s in 0..fg.len() {
        if !fg[s] || lab[s] != 0 {
            continue;
        }
        next += 1;
        lab[s] = next;
        q.push_back(s);
        while let Some(i) = q.pop_front() {
            for j in neighbours(i, dims) {
                if fg[j] && lab[j] == 0 {
                    lab[j] = next;
                    q.push_back(j);
                }
            }
        }
    }
    let _ = (d, h, w);
    lab
}

fn neighbours(i: usize, dims: [usize; 3]) -> impl Iterator<Item = usize> {
    let [d, h, w] = dims;
    let (z, y, x) = (i / (h * w), (i / w) % h, i % w);
    let mut v = [usize::MAX; 6];
    if y > 0 {
        v[0] = i - w;
    }
    if y + 1 < h {
        v[1] = i + w;
    }
    if x > 0 {
        v[2] = i - 1;
    }
    if x + 1 < w {
        v[3] = i + 1;
    }
    if z > 0 {
        v[4] = i - h * w;
    }
    if z + 1 < d {
        v[5] = i + h * w;
    }
    v.into_iter().filter(|&j| j != usize::MAX)
}

/// Instances from classes: components of `cell` (class 1) grown into class-2 voxels; with only
/// two classes, components of the foreground. Components smaller than `min_size` are dropped.
pub fn instances_from_classes(classes: &[u32], dims: [usize; 3], min_size: usize) -> Vec<u32> {
    let seeds = connected_components(&classes.iter().map(|&c| c == 1).collect::<Vec<_>>(), dims);
    let mut size: BTreeMap<u32, usize> = BTreeMap::new();
    for &l in &seeds {
        if l != 0 {
            *size.entry(l).or_default() += 1;
        }
    }
    let mut lab: Vec<u32> = seeds.iter().map(|&l| if l != 0 && size[&l] >= min_size { l } else { 0 }).collect();
    let mut q: VecDeque<usize> = (0..lab.len()).filter(|&i| lab[i] != 0).collect();
    while let Some(i) = q.pop_front() {
        for j in neighbours(i, dims) {
            if lab[j] == 0 && classes[j] == 2 {
                lab[j] = lab[i];
                q.push_back(j);
            }
        }
    }
    lab
}

/// Object precision/recall F1 at IoU > `thr` (≥ 0.5 makes matches unique).
pub fn object_f1(pred: &[u32], truth: &[u32], thr: f64) -> f64 {
    let mut inter: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    let mut ap: BTreeMap<u32, usize> = BTreeMap::new();
    let mut at: BTreeMap<u32, usize> = BTreeMap::new();
    for (&p, &t) in pred.iter().zip(truth) {
        if p != 0 {
            *ap.entry(p).or_default() += 1;
        }
        if t != 0 {
            *at.entry(t).or_default() += 1;
        }
        if p != 0 && t != 0 {
            *inter.entry((p, t)).or_default() += 1;
        }
    }
    let tp = inter.iter().filter(|(k, n)| **n as f64 / (ap[&k.0] + at[&k.1] - **n) as f64 > thr).count();
    let (np, nt) = (ap.len(), at.len());
    if np + nt == 0 {
        return 1.0;
    }
    2.0 * tp as f64 / (np + nt) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_grow_into_borders_and_f1() {
        // Two cells (class 1) with a border (class 2) ring each, touching.
        let c = vec![2, 2, 2, 2, 2, 2, 1, 2, 2, 1, 2, 2, 2, 2, 2, 2];
        let dims = [1, 2, 8];
        let l = instances_from_classes(&c, dims, 1);
        assert!(l.iter().all(|&v| v != 0));
        assert_eq!(l.iter().collect::<std::collections::BTreeSet<_>>().len(), 2);
        assert_eq!(object_f1(&l, &l, 0.5), 1.0);
        let truth = vec![1u32; 16];
        assert!((object_f1(&l, &truth, 0.5) - 2.0 * 1.0 / 3.0).abs() < 1e-12 || object_f1(&l, &truth, 0.5) == 0.0);
    }
}
