//! Helpers shared by the readers and writers: fallible allocation, atomic file writing,
//! natural sorting.

use std::path::Path;

use petri_api::NodeError;

/// A zero-filled vector of `n` pixels, or an error instead of an abort when memory is short
/// (lazily committed, huge pages for large buffers: see `petri_api::mem`, and
/// [`huge_zeroed_vec`] for image buffers of 4 MB and more on Linux).
pub fn try_zeroed_vec<P: bytemuck::Pod>(n: usize) -> Result<Vec<P>, String> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Some(v) = huge_zeroed_vec(n) {
        return Ok(v);
    }
    petri_api::mem::try_zeroed_vec(n).map_err(|e| format!("cannot hold the image: {e}"))
}

/// A zero-filled vector of `n` pixels whose pages are all backed by transparent huge pages, for
/// the image buffers a read fills at once. `None` when `n` is small or the allocation fails
/// (the caller then takes the ordinary path, which reports the error).
///
/// Why: `petri_api::mem` advises huge pages for the 2 MB-aligned interior of a buffer only,
/// because the buffer's two ends share their 2 MB ranges with other memory. Those ends (up to
/// 2 MB each, 3.5 MB of an 8 MB stack in practice) were then faulted in 4 KB pages while the
/// file was copied in, ~2 µs each on this virtual machine: a quarter of the time of reading an
/// 8 MB stack. Here the allocation is sized so that both ends are whole huge pages: it asks for
/// a multiple of 2 MB minus glibc's chunk header, so that glibc maps exactly a multiple of 2 MB
/// for it and Linux (6.7 and later) places such a mapping on a 2 MB boundary; and it keeps 2 MB
/// of spare capacity past the pixels, so the last huge page the pixels touch lies inside the
/// allocation even when glibc serves it from the heap instead (below its mmap threshold, which
/// `petri` raises). Spare capacity is address space only: pages never touched are never
/// committed. All of this only changes how the kernel backs the pages; with another allocator
/// or kernel the buffer is an ordinary zeroed vector.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn huge_zeroed_vec<P: bytemuck::Pod>(n: usize) -> Option<Vec<P>> {
    const HUGE: usize = 2 << 20;
    // glibc's header for a chunk it maps (two size fields), plus its 16-byte rounding.
    const GLIBC_OVERHEAD: usize = 24;
    let sz = std::mem::size_of::<P>();
    let bytes = n.checked_mul(sz)?;
    if bytes < 2 * HUGE || sz == 0 || GLIBC_OVERHEAD % sz != 0 {
        return None;
    }
    let request =
        (bytes.checked_add(GLIBC_OVERHEAD)?.checked_next_multiple_of(HUGE)?).checked_add(HUGE)? - GLIBC_OVERHEAD;
    let cap = request / sz;
    let layout = std::alloc::Layout::array::<P>(cap).ok()?;
    // SAFETY: non-zero size; the pointer comes from the global allocator with exactly the layout
    // of `Vec<P>` with capacity `cap`, so `Vec::from_raw_parts(ptr, n, cap)` with `n <= cap` is
    // sound, and all-zero bytes are a valid `P` (`P: Pod`). madvise only changes how the kernel
    // backs pages, never their content, so advising the partly shared pages at the two ends is
    // harmless to their other users.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut P;
        if ptr.is_null() {
            return None;
        }
        let page = 4096usize;
        let start = ptr as usize / page * page;
        let end = (ptr as usize + layout.size()).next_multiple_of(page);
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        // glibc wrote its chunk header into the first page before the advice, so that page is
        // already an ordinary one and the first 2 MB would fault in 4 KB pages: when the
        // mapping starts on a 2 MB boundary (all of it ours), collapse that range into a huge
        // page now (Linux 6.1+; a failure leaves it as it was).
        if start.is_multiple_of(HUGE) && end - start >= HUGE {
            libc::madvise(start as *mut libc::c_void, HUGE, libc::MADV_COLLAPSE);
        }
        Some(Vec::from_raw_parts(ptr, n, cap))
    }
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
