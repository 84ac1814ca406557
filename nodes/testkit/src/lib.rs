//! Test-only helpers shared by the node crates (a dev-dependency, never shipped).
//!
//! Fixture TIFFs are read with the `tiff` crate directly, not with Petri's own loader, so a
//! bug in the loader cannot hide a bug in a node (and node crates need not depend on `io`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use petri_api::{Pixel, Stack};

/// The workspace's `tests/fixtures` folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// `tests/fixtures/reference/<dataset>/<file>`.
pub fn reference(dataset: &str, file: &str) -> PathBuf {
    fixtures().join("reference").join(dataset).join(file)
}

/// The workspace's `assets/samples/<file>`.
pub fn sample(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/samples").join(file)
}

/// Pixels of every page of a TIFF as f64, with the shape (pages, height, width); a single
/// page gives (1, h, w).
pub fn read_tiff_f64(path: &Path) -> (Vec<usize>, Vec<f64>) {
    use tiff::decoder::{Decoder, DecodingResult};
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dec = Decoder::new(std::io::BufReader::new(f))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .with_limits(tiff::decoder::Limits::unlimited());
    let (w, h) = dec.dimensions().unwrap();
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let page: Vec<f64> = match dec.read_image().unwrap() {
            DecodingResult::U8(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U16(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::U32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::I32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::F32(v) => v.into_iter().map(f64::from).collect(),
            DecodingResult::F64(v) => v,
            other => panic!("{}: unexpected sample type {:?}", path.display(), std::mem::discriminant(&other)),
        };
        out.extend(page);
        pages += 1;
        if !dec.more_images() {
            break;
        }
        dec.next_image().unwrap();
    }
    (vec![pages, h as usize, w as usize], out)
}

/// A fixture TIFF as a stack of pixel type `P` (2-D if one page, else Z×Y×X).
pub fn read_stack<P: Pixel>(path: &Path) -> Stack {
    let (shape, v) = read_tiff_f64(path);
    let data: Vec<P> = v.into_iter().map(P::from_f64).collect();
    if shape[0] == 1 {
        Stack::from_2d(shape[1], shape[2], data).unwrap()
    } else {
        Stack::from_3d(shape[0], shape[1], shape[2], data).unwrap()
    }
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&s).unwrap()
}

/// A numeric CSV (header line, comma-separated, no quoting) as rows of column → value.
pub fn read_csv(path: &Path) -> Vec<BTreeMap<String, f64>> {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = s.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| header.iter().zip(l.split(',')).map(|(k, v)| (k.to_string(), v.parse().unwrap_or(f64::NAN))).collect())
        .collect()
}

/// Number of pixels where two label images disagree once the best one-to-one relabelling is
/// applied (0 = equal up to relabelling). Background (0) must map to background.
pub fn label_mismatches(a: &[u32], b: &[u32]) -> usize {
    assert_eq!(a.len(), b.len(), "label images differ in size");
    // Pair counts, then a greedy bijection from the largest overlaps (exact for equal partitions).
    let mut pairs: HashMap<(u32, u32), usize> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *pairs.entry((x, y)).or_default() += 1;
    }
    let mut v: Vec<((u32, u32), usize)> = pairs.into_iter().collect();
    v.sort_by(|p, q| q.1.cmp(&p.1).then(p.0.cmp(&q.0)));
    let mut used_a = std::collections::HashSet::new();
    let mut used_b = std::collections::HashSet::new();
    let mut agree = 0usize;
    for ((x, y), n) in v {
        if (x == 0) != (y == 0) {
            continue;
        }
        if used_a.contains(&x) || used_b.contains(&y) {
            continue;
        }
        used_a.insert(x);
        used_b.insert(y);
        agree += n;
    }
    a.len() - agree
}

/// Maximum absolute difference between two equally long sequences.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "arrays differ in size");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}
