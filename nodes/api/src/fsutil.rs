//! Atomic file writing, shared by every node that saves something and by the engine.
//!
//! A save never leaves a half-written file under the final name: the bytes go to a temporary
//! file beside the target, which is flushed, fsynced and renamed over it only when everything
//! succeeded (then the folder is fsynced so the rename survives a crash). On any error — a full
//! disk included — the temporary file is removed and the old file is left untouched.
//!
//! The bytes go through a [`FileWriter`]: a buffered, seekable writer that uses positional
//! writes and starts the disk write-back while the file is still being written, so the final
//! fsync waits for the tail only.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::node::NodeError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, exclusively created temporary file beside `path` (hidden, named after it).
fn temp_beside(path: &Path) -> std::io::Result<(PathBuf, File)> {
    let dir = folder_of(path);
    std::fs::create_dir_all(&dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create the folder {}: {e}", dir.display())))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot create a temporary file in {}: {e}", dir.display()),
                ));
            }
        }
    }
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `path` atomically with `write` filling a [`FileWriter`]. Errors are I/O errors that
/// say which step failed (callers add the file name); an error returned by `write` is passed
/// through unchanged. See [`save_atomic`] for nodes.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut FileWriter) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::other("is a folder; give a file name"));
    }
    let (tmp, file) = temp_beside(path)?;
    let step = |what: &'static str| move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"));
    let result = (|| {
        let mut w = FileWriter::new(file);
        write(&mut w)?;
        let file = w.into_file().map_err(step("write failed"))?;
        file.sync_all().map_err(step("fsync failed"))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(step("cannot rename the temporary file into place"))?;
        // Make the rename durable (best effort: not every platform can fsync a folder). One
        // open and one fsync of the folder; the file's data was made durable above.
        if let Ok(d) = File::open(folder_of(path)) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// [`write_atomic_with`] for nodes: the error names the file.
pub fn save_atomic(path: &Path, write: impl FnOnce(&mut FileWriter) -> std::io::Result<()>) -> Result<(), NodeError> {
    write_atomic_with(path, write).map_err(|e| NodeError::io(path, format!("cannot write: {e}")))
}

/// A buffered, seekable writer on a file being created, for encoders that write forwards but
/// go back to patch a few bytes (a TIFF encoder fills in each IFD's "next" pointer after the
/// next page is written).
///
/// Hand-written because `std::io::BufWriter` flushes its buffer on every seek: an encoder
/// that patches once per page then writes the file in page-sized pieces plus two seeks and a
/// tiny write per page (four syscalls per page). Here seeks cost nothing, a patch inside the
/// buffered window is made in memory, a patch before it is one positional write, and the file
/// receives large positional writes only.
///
/// It also hands the data to the disk while more is still coming: each time another
/// [`FileWriter::KICK`] bytes have been written, Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`
/// starts their write-back without waiting for it (std has no such call; it is one syscall
/// through `libc`). The fsync that ends an atomic save then waits only for the tail instead of
/// the whole file, so saving a large stack costs about max(encode, disk) rather than
/// encode + disk.
///
/// Bytes reach the file only on [`Write::flush`] or [`FileWriter::into_file`]; dropping the
/// writer discards what is still buffered.
pub struct FileWriter {
    file: File,
    /// Bytes not yet written, destined for `buf_off..`.
    buf: Vec<u8>,
    buf_off: u64,
    /// The cursor.
    pos: u64,
    /// Length of the file including the buffer.
    len: u64,
    /// Furthest byte written to the file so far, and how far its write-back has been started.
    written: u64,
    kicked: u64,
}

impl FileWriter {
    /// Buffer size: writes at least this large go straight to the file.
    pub const CAPACITY: usize = 1 << 20;
    /// Write-back is started every this many bytes.
    pub const KICK: u64 = 4 << 20;

    /// A writer at offset 0 of `file` (an empty file opened for writing).
    pub fn new(file: File) -> FileWriter {
        FileWriter { file, buf: Vec::with_capacity(Self::CAPACITY), buf_off: 0, pos: 0, len: 0, written: 0, kicked: 0 }
    }

    /// Writes what is buffered and returns the file (not yet fsynced).
    pub fn into_file(mut self) -> std::io::Result<File> {
        self.flush_buf()?;
        Ok(self.file)
    }

    fn flush_buf(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let r = self.write_file(&buf, self.buf_off);
            self.buf = buf;
            r?;
            self.buf_off += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes `data` at `off` in the file (not through the buffer), starting write-back every
    /// `KICK` bytes.
    fn write_file(&mut self, data: &[u8], off: u64) -> std::io::Result<()> {
        let mut off = off;
        for piece in data.chunks(Self::KICK as usize) {
            write_all_at(&self.file, piece, off)?;
            off += piece.len() as u64;
            self.written = self.written.max(off);
            if self.written - self.kicked >= Self::KICK {
                self.kick();
            }
        }
        Ok(())
    }

    #[allow(unused_variables)]
    fn kick(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (from, len) = (self.kicked, self.written - self.kicked);
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
        self.kicked = self.written;
    }
}

impl Write for FileWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len();
        let buf_end = self.buf_off + self.buf.len() as u64;
        let end = self.pos.checked_add(n as u64).ok_or_else(|| std::io::Error::other("file offset overflow"))?;
        if self.pos >= self.buf_off && self.pos < buf_end {
            // Inside the buffered window: overwrite in memory (as much as fits before its end;
            // `write_all` comes back for the rest, which is then an append).
            let at = (self.pos - self.buf_off) as usize;
            let k = n.min(self.buf.len() - at);
            self.buf[at..at + k].copy_from_slice(&data[..k]);
            self.pos += k as u64;
            return Ok(k);
        }
        if end <= self.buf_off {
            // Entirely before the window (already in the file): a patch, written in place.
            write_all_at(&self.file, data, self.pos)?;
        } else {
            if self.pos != buf_end || self.buf.len() + n > Self::CAPACITY {
                self.flush_buf()?;
                self.buf_off = self.pos;
            }
            if n >= Self::CAPACITY {
                let at = self.pos;
                self.write_file(data, at)?;
                self.buf_off = end;
            } else {
                self.buf.extend_from_slice(data);
            }
        }
        self.pos = end;
        self.len = self.len.max(end);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_buf()
    }
}

/// The position a `seek(to)` lands on from `pos` in a stream of `len` bytes, for the
/// hand-written buffered readers and writers that track their own position.
pub fn seek_target(pos: u64, len: u64, to: SeekFrom) -> std::io::Result<u64> {
    match to {
        SeekFrom::Start(p) => Some(p),
        SeekFrom::End(d) => len.checked_add_signed(d),
        SeekFrom::Current(d) => pos.checked_add_signed(d),
    }
    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid seek"))
}

impl Seek for FileWriter {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let len = self.len.max(self.buf_off + self.buf.len() as u64);
        self.pos = seek_target(self.pos, len, to)?;
        Ok(self.pos)
    }

    fn stream_position(&mut self) -> std::io::Result<u64> {
        Ok(self.pos)
    }
}

#[cfg(unix)]
fn write_all_at(f: &File, data: &[u8], off: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, data, off)
}

#[cfg(windows)]
fn write_all_at(f: &File, mut data: &[u8], mut off: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !data.is_empty() {
        match f.seek_write(data, off) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                data = &data[n..];
                off += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn write_all_at(mut f: &File, data: &[u8], off: u64) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(off))?;
    f.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_atomically_and_cleans_up_on_error() {
        let d = std::env::temp_dir().join(format!("petri-fsutil-{}", std::process::id()));
        let p = d.join("sub/out.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // A failing writer leaves the old file and no temporary behind, and its error is kept.
        let e = write_atomic_with(&p, |w| {
            w.write_all(b"partial")?;
            w.flush()?;
            Err(std::io::Error::other("disk full"))
        });
        assert_eq!(e.unwrap_err().to_string(), "disk full");
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.join("sub")).unwrap().count(), 1);
        assert!(save_atomic(&d, |_| Ok(())).unwrap_err().to_string().contains("folder"));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Random writes, seeks and patches (inside the buffer, before it, across its end, past the
    /// end of the file) give the same bytes as the same operations on an in-memory cursor.
    #[test]
    fn file_writer_matches_a_cursor() {
        let d = std::env::temp_dir().join(format!("petri-fsutil-w-{}", std::process::id()));
        let mut seed = 0x2545F4914F6CDD1Du64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..6 {
            let p = d.join(format!("f{round}.bin"));
            let mut want = std::io::Cursor::new(Vec::new());
            write_atomic_with(&p, |w| {
                for op in 0..80 {
                    let cap = FileWriter::CAPACITY as u64;
                    let len = match rnd(20) {
                        0..=9 => rnd(8) + 1,
                        10..=15 => rnd(cap / 2) + 1,
                        16..=18 => cap + rnd(cap),
                        _ => rnd(2 * FileWriter::KICK) + 1,
                    } as usize;
                    let data: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + op * 7 + round) as u8).collect();
                    let end = want.get_ref().len() as u64;
                    let to = match rnd(5) {
                        0 => SeekFrom::Start(rnd(end + 1)),
                        1 => SeekFrom::End(-(rnd(end.min(64) + 1) as i64)),
                        2 => SeekFrom::Current(0),
                        _ => SeekFrom::End(0),
                    };
                    let a = want.seek(to).unwrap_or(end);
                    want.seek(SeekFrom::Start(a))?;
                    assert_eq!(w.seek(SeekFrom::Start(a))?, a);
                    want.write_all(&data)?;
                    w.write_all(&data)?;
                    assert_eq!(w.stream_position()?, want.position());
                    if rnd(10) == 0 {
                        w.flush()?;
                    }
                }
                Ok(())
            })
            .unwrap();
            assert!(std::fs::read(&p).unwrap() == *want.get_ref(), "round {round}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
