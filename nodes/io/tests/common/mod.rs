//! Helpers shared by petri-io's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use petri_api::{Buffer, Stack};
use sha2::{Digest, Sha256};

/// `tests/fixtures/io/<file>`.
pub fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/io").join(file)
}

/// SHA-256 of the canonical little-endian pixel bytes (what the Python scripts record).
pub fn sha256(s: &Stack) -> String {
    let mut h = Sha256::new();
    match s.buffer() {
        Buffer::U8(v) => h.update(&v[..]),
        Buffer::U16(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
        Buffer::U32(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
        Buffer::F32(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
    }
    format!("{:x}", h.finalize())
}

/// Checks a loaded stack against one entry of an `*_expected.json` fixture.
pub fn check_expected(s: &Stack, e: &serde_json::Value, what: &str) {
    let dims: Vec<usize> = e["dims"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(s.dims().to_vec(), dims, "{what}: dims");
    assert_eq!(s.axes_string(), e["axes"].as_str().unwrap(), "{what}: axes");
    assert_eq!(s.dtype().name(), e["dtype"].as_str().unwrap(), "{what}: dtype");
    let v: Vec<f64> = e["voxel_zyx"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let got = s.voxel_size().zyx();
    for i in 0..3 {
        assert!((got[i] - v[i]).abs() <= 1e-9 * v[i].abs().max(1.0), "{what}: voxel {got:?} vs {v:?}");
    }
    assert_eq!(s.voxel_size().unit, e["unit"].as_str().unwrap(), "{what}: unit");
    assert_eq!(sha256(s), e["sha256"].as_str().unwrap(), "{what}: pixels differ from tifffile's");
}
