//! The overlap (contingency) table of two label images: how many pixels carry truth label
//! `g` and predicted label `p`, for every pair that occurs. Every segmentation score of
//! `measure.metrics` is computed from it.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// Sparse overlap counts, sorted by (truth, prediction). Label 0 (background) is included.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contingency {
    pub entries: Vec<(u32, u32, u64)>,
}

/// Which pixels are scored.
#[derive(Clone, Copy, Debug)]
pub enum Keep<'a> {
    All,
    /// Pixels where the mask is 0 (non-zero = ignore).
    NotIgnored(&'a [u8]),
    /// Pixels where the truth is labelled (sparse ground truth).
    TruthLabelled,
    /// Both of the above.
    NotIgnoredAndLabelled(&'a [u8]),
}

impl Contingency {
    /// Counts pairs over the kept pixels. Runs of equal pairs cost one hash update each, and
    /// the image is split in fixed chunks counted in parallel (the counts are integers, so
    /// the result does not depend on scheduling).
    pub fn new(truth: &[u32], pred: &[u32], keep: Keep<'_>) -> Contingency {
        debug_assert_eq!(truth.len(), pred.len());
        const CHUNK: usize = 1 << 16;
        let n = truth.len();
        let n_chunks = n.div_ceil(CHUNK).max(1);
        let maps: Vec<FxHashMap<u64, u64>> = (0..n_chunks)
            .into_par_iter()
            .map(|c| {
                let r = c * CHUNK..((c + 1) * CHUNK).min(n);
                let mut m: FxHashMap<u64, u64> = FxHashMap::default();
                let (t, p) = (&truth[r.clone()], &pred[r.clone()]);
                let mask = match keep {
                    Keep::NotIgnored(m) | Keep::NotIgnoredAndLabelled(m) => Some(&m[r]),
                    _ => None,
                };
                let need_label = matches!(keep, Keep::TruthLabelled | Keep::NotIgnoredAndLabelled(_));
                let mut cur: Option<(u64, u64)> = None;
                for i in 0..t.len() {
                    if mask.is_some_and(|m| m[i] != 0) || (need_label && t[i] == 0) {
                        continue;
                    }
                    let key = ((t[i] as u64) << 32) | p[i] as u64;
                    match &mut cur {
                        Some((k, cnt)) if *k == key => *cnt += 1,
                        _ => {
                            if let Some((k, cnt)) = cur {
                                *m.entry(k).or_insert(0) += cnt;
                            }
                            cur = Some((key, 1));
                        }
                    }
                }
                if let Some((k, cnt)) = cur {
                    *m.entry(k).or_insert(0) += cnt;
                }
                m
            })
            .collect();
        let mut all: FxHashMap<u64, u64> = FxHashMap::default();
        for m in maps {
            for (k, v) in m {
                *all.entry(k).or_insert(0) += v;
            }
        }
        let mut entries: Vec<(u32, u32, u64)> = all.into_iter().map(|(k, v)| ((k >> 32) as u32, k as u32, v)).collect();
        entries.sort_unstable();
        Contingency { entries }
    }

    /// Number of kept pixels.
    pub fn total(&self) -> u64 {
        self.entries.iter().map(|e| e.2).sum()
    }
}

/// Foreground overlap alone (|A∩B|, |A|, |B| for A = truth > 0, B = pred > 0), without
/// building the table: a branch-free loop the compiler vectorises.
pub fn foreground_counts(truth: &[u32], pred: &[u32]) -> (u64, u64, u64) {
    const CHUNK: usize = 1 << 16;
    truth
        .par_chunks(CHUNK)
        .zip(pred.par_chunks(CHUNK))
        .map(|(t, p)| {
            let (mut i, mut a, mut b) = (0u32, 0u32, 0u32);
            for (&x, &y) in t.iter().zip(p) {
                let (x, y) = ((x != 0) as u32, (y != 0) as u32);
                i += x & y;
                a += x;
                b += y;
            }
            (i as u64, a as u64, b as u64)
        })
        .reduce(|| (0, 0, 0), |x, y| (x.0 + y.0, x.1 + y.1, x.2 + y.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pairs_and_respects_keep() {
        let t = [0, 1, 1, 1, 2, 2, 0, 0];
        let p = [0, 5, 5, 6, 6, 6, 6, 0];
        let c = Contingency::new(&t, &p, Keep::All);
        assert_eq!(c.entries, vec![(0, 0, 2), (0, 6, 1), (1, 5, 2), (1, 6, 1), (2, 6, 2)]);
        let c = Contingency::new(&t, &p, Keep::TruthLabelled);
        assert_eq!(c.entries, vec![(1, 5, 2), (1, 6, 1), (2, 6, 2)]);
        let ign = [0, 1, 0, 0, 0, 0, 0, 1];
        let c = Contingency::new(&t, &p, Keep::NotIgnored(&ign));
        assert_eq!(c.entries, vec![(0, 0, 1), (0, 6, 1), (1, 5, 1), (1, 6, 1), (2, 6, 2)]);
        assert_eq!(foreground_counts(&t, &p), (5, 5, 6));
    }
}
