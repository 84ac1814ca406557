//! Helpers shared by the readers and writers: fallible allocation, atomic file writing,
//! natural sorting.

use std::path::Path;

use petri_api::NodeError;

/// A zero-filled vector of `n` pixels, or an error instead of an abort when memory is short
/// (lazily committed, every page a huge page for image buffers of 4 MB and more on Linux: see
/// `petri_api::mem::whole_huge_zeroed_vec`).
pub fn try_zeroed_vec<P: bytemuck::Pod>(n: usize) -> Result<Vec<P>, String> {
    if let Some(v) = petri_api::mem::whole_huge_zeroed_vec(n) {
        return Ok(v);
    }
    petri_api::mem::try_zeroed_vec(n).map_err(|e| format!("cannot hold the image: {e}"))
}

/// The writer [`write_atomic`] hands to encoders (buffered, seekable, positional writes,
/// write-back started while writing: see `petri_api::fsutil`).
pub use petri_api::fsutil::FileWriter;

/// Writes a file atomically (`petri_api::fsutil::write_atomic_with`): `write` fills a temporary
/// file in the destination folder, which is flushed, fsynced and renamed over `path` only if
/// everything succeeded, then the folder is fsynced. Parent folders are created. On any error
/// the temporary file is removed and `path` is left untouched; the error names the file.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut FileWriter) -> Result<(), String>) -> Result<(), NodeError> {
    petri_api::fsutil::write_atomic_with(path, |w| write(w).map_err(std::io::Error::other))
        .map_err(|e| NodeError::io(path, e.to_string()))
}

/// Natural ("human") order of file names: `img2` before `img10`. Ties broken by plain byte order
/// so the result is total and deterministic.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    natord::compare_ignore_case(a, b).then_with(|| a.cmp(b))
}

/// Normalises the many spellings of micrometre to ImageJ's "micron".
pub fn normalize_unit(u: &str) -> String {
    let t = u.trim();
    match t {
        "um" | "µm" | "μm" | "micron" | "microns" | "micrometer" | "micrometre" | "\\u00B5m" | "\\u00b5m" => {
            "micron".into()
        }
        "" => "pixel".into(),
        "pixels" => "pixel".into(),
        other => other.to_string(),
    }
}

/// Best rational approximation `n/d` of a positive `x` with `n, d < 2^32` (continued fractions),
/// for TIFF resolution tags: 1/0.26 gives exactly 50/13, as tifffile writes it.
pub fn rational(x: f64) -> (u32, u32) {
    if !(x.is_finite() && x > 0.0) {
        return (1, 1);
    }
    let max = u32::MAX as f64;
    let (mut h0, mut h1) = (0.0f64, 1.0f64);
    let (mut k0, mut k1) = (1.0f64, 0.0f64);
    let mut v = x;
    let mut best = ((x.round().clamp(1.0, max)) as u32, 1u32);
    for _ in 0..64 {
        let a = v.floor();
        let h2 = a * h1 + h0;
        let k2 = a * k1 + k0;
        if h2 > max || k2 > max {
            break;
        }
        best = (h2 as u32, k2 as u32);
        if (h2 / k2 - x).abs() <= x * 1e-15 {
            break;
        }
        let frac = v - a;
        if frac < 1e-12 {
            break;
        }
        v = 1.0 / frac;
        h0 = h1;
        h1 = h2;
        k0 = k1;
        k1 = k2;
    }
    if best.0 == 0 {
        best.0 = 1;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rationals_round_trip() {
        assert_eq!(rational(1.0 / 0.26), (50, 13));
        assert_eq!(rational(1.0), (1, 1));
        let (n, d) = rational(1.0 / 0.2071602);
        assert!((d as f64 / n as f64 - 0.2071602).abs() < 1e-12);
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["img10.tif", "img2.tif", "img1.tif", "Img3.tif"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["img1.tif", "img2.tif", "Img3.tif", "img10.tif"]);
    }

    #[test]
    fn atomic_write_leaves_nothing_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/out.bin");
        let r = write_atomic(&p, |w| {
            w.write_all(b"partial").map_err(|e| e.to_string())?;
            Err("boom".into())
        });
        assert!(r.unwrap_err().to_string().contains("boom"));
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 0);
        write_atomic(&p, |w| w.write_all(b"ok").map_err(|e| e.to_string())).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"ok");
    }

    #[test]
    fn zeroed_vec() {
        let v: Vec<u16> = try_zeroed_vec(1000).unwrap();
        assert!(v.iter().all(|&x| x == 0));
        assert!(try_zeroed_vec::<u32>(usize::MAX / 2).is_err());
    }
}
