//! Helpers shared by the readers and writers: fallible allocation, atomic file writing,
//! natural sorting.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use petri_api::NodeError;

/// A zero-filled vector of `n` pixels, or an error instead of an abort when memory is short
/// (lazily committed, huge pages for large buffers: see `petri_api::mem`).
pub fn try_zeroed_vec<P: bytemuck::Pod>(n: usize) -> Result<Vec<P>, String> {
    petri_api::mem::try_zeroed_vec(n).map_err(|e| format!("cannot hold the image: {e}"))
}

/// Writes a file atomically: `write` fills a temporary file in the destination folder, which is
/// flushed, fsynced and renamed over `path` only if everything succeeded. Parent folders are
/// created. On any error the temporary file is removed and `path` is left untouched.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<WritebackFile>) -> Result<(), String>,
) -> Result<(), NodeError> {
    let err = |m: String| NodeError::io(path, m);
    if path.is_dir() {
        return Err(err("is a folder; give a file name".into()));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| err(format!("cannot create the folder {}: {e}", parent.display())))?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&parent)
        .map_err(|e| err(format!("cannot create a temporary file in {}: {e}", parent.display())))?;
    let file = tmp.as_file().try_clone().map_err(|e| err(e.to_string()))?;
    let mut w = BufWriter::with_capacity(1 << 20, WritebackFile::new(file));
    write(&mut w).map_err(err)?;
    w.flush().map_err(|e| err(format!("write failed: {e}")))?;
    let file = w.into_inner().map_err(|e| err(format!("write failed: {}", e.error())))?.file;
    file.sync_all().map_err(|e| err(format!("fsync failed: {e}")))?;
    drop(file);
    tmp.persist(path).map_err(|e| err(format!("cannot rename the temporary file into place: {}", e.error)))?;
    // Make the rename itself durable (best effort: not every platform can fsync a folder).
    if let Ok(d) = File::open(&parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A file being written that hands its data to the disk while more is still coming: every
/// [`WritebackFile::KICK`] bytes, Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)` starts the
/// write-back of what was written since the last kick, without waiting for it. The fsync that
/// ends an atomic save then waits only for the tail instead of the whole file, so saving a large
/// stack costs about max(encode, disk) rather than encode + disk. A plain file elsewhere.
///
/// Hand-written: std and `tempfile` have no such call, and it is one syscall through `libc`.
pub struct WritebackFile {
    file: File,
    /// Current position and the furthest byte written.
    pos: u64,
    end: u64,
    /// Everything before this offset has had its write-back started.
    kicked: u64,
}

impl WritebackFile {
    const KICK: u64 = 16 << 20;

    pub fn new(file: File) -> WritebackFile {
        WritebackFile { file, pos: 0, end: 0, kicked: 0 }
    }

    #[allow(unused_variables)]
    fn kick(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (from, len) = (self.kicked, self.end - self.kicked);
            // SAFETY: a plain syscall on a file descriptor we own; it reads no memory of ours.
            // Failure only means the final fsync does all the work, so it is ignored.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    from as libc::off64_t,
                    len as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.kicked = self.end;
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        self.end = self.end.max(self.pos);
        if self.end - self.kicked >= Self::KICK {
            self.kick();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for WritebackFile {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
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
