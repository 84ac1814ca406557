//! Shared by the tracking verification tests: scramble per-frame ids, map ground-truth ids to
//! our track ids, and score identity and divisions.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use petri_api::Stack;
use petri_track::tracks::Track;
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// The labels with every frame's ids replaced by a random permutation of other ids.
pub fn scramble(gt: &Stack, seed: u64) -> Stack {
    let vlen = gt.volume_len();
    let px = gt.pixels::<u32>().unwrap();
    let mut out = vec![0u32; px.len()];
    for t in 0..gt.t() {
        let f = &px[t * vlen..(t + 1) * vlen];
        let ids: BTreeSet<u32> = f.iter().copied().filter(|&v| v != 0).collect();
        let mut new: Vec<u32> = (1..=(ids.len() as u32 * 4)).collect();
        new.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed + t as u64));
        let map: BTreeMap<u32, u32> = ids.iter().copied().zip(new).collect();
        for (o, &v) in out[t * vlen..(t + 1) * vlen].iter_mut().zip(f) {
            *o = if v == 0 { 0 } else { map[&v] };
        }
    }
    gt.with_pixels(out).unwrap()
}

/// For every frame, ground-truth id → our track id (the masks are identical, only ids differ).
pub fn correspondence(gt: &Stack, ours: &Stack) -> Vec<BTreeMap<u32, u32>> {
    let vlen = gt.volume_len();
    let (g, o) = (gt.pixels::<u32>().unwrap(), ours.pixels::<u32>().unwrap());
    (0..gt.t())
        .map(|t| {
            let mut m = BTreeMap::new();
            for i in t * vlen..(t + 1) * vlen {
                if g[i] != 0 {
                    m.entry(g[i]).or_insert(o[i]);
                }
            }
            m
        })
        .collect()
}

pub struct Scores {
    pub links: usize,
    pub kept: usize,
    pub divisions: usize,
    pub found: usize,
}

/// Identity on the ground truth's non-division links, and divisions recovered.
pub fn evaluate(gt: &Stack, gt_tracks: &[Track], ours: &Stack, our_tracks: &[Track]) -> Scores {
    let corr = correspondence(gt, ours);
    let (mut links, mut kept) = (0, 0);
    for t in 0..gt.t().saturating_sub(1) {
        for (g, &o) in &corr[t] {
            if let Some(&o2) = corr[t + 1].get(g) {
                links += 1;
                kept += (o == o2) as usize;
            }
        }
    }
    let ours_by_id: BTreeMap<u32, &Track> = our_tracks.iter().map(|t| (t.id, t)).collect();
    let mut daughters: BTreeMap<u32, Vec<&Track>> = BTreeMap::new();
    for t in gt_tracks.iter().filter(|t| t.parent != 0) {
        daughters.entry(t.parent).or_default().push(t);
    }
    let gt_by_id: BTreeMap<u32, &Track> = gt_tracks.iter().map(|t| (t.id, t)).collect();
    let (mut divisions, mut found) = (0, 0);
    for (m, ds) in &daughters {
        if ds.len() < 2 {
            continue; // a single "daughter" is a gap link, not a division
        }
        divisions += 1;
        let mt = gt_by_id[m];
        let Some(&our_m) = corr[mt.end].get(m) else { continue };
        let ok = ours_by_id.get(&our_m).is_some_and(|t| t.end == mt.end)
            && ds
                .iter()
                .all(|d| corr[d.begin].get(&d.id).and_then(|o| ours_by_id.get(o)).is_some_and(|t| t.parent == our_m));
        found += ok as usize;
    }
    Scores { links, kept, divisions, found }
}
