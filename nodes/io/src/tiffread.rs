//! TIFF reading on top of the `tiff` crate's decoder.
//!
//! Two passes: [`scan`] walks every IFD and checks each page's declared size against the file
//! (strip/tile ranges inside the file, decoded size within what the codec can possibly expand
//! to) *before* anything is allocated; [`decode_pages`] then decodes each page straight into
//! its destination planes of the final stack buffer, converting sample types only when needed.
//!
//! Common pages (one sample per pixel in strips, uncompressed, LZW or Deflate) are decoded strip
//! by strip, all strips in parallel with rayon, with the codecs the `tiff` crate itself uses
//! (`weezl`, `flate2`): see [`decode_strips`] for why. Every other page (tiles, several samples,
//! PackBits, ZSTD, JPEG, floating-point predictor, MinIsWhite, sub-byte or signed samples) goes
//! through the `tiff` crate, which does the codecs, predictors, byte order, strips/tiles, planar
//! configuration and MinIsWhite inversion, several pages at once (each worker has its own file
//! handle and decoder). What is hand-written here is what the crate does not do: size checks
//! against the file length, parallel decoding, typed destination buffers, and unpacking of
//! 1/2/4-bit samples. A few internal `assert!`s of the crate can fire on
//! malformed files; calls into it are guarded with `catch_unwind` so a corrupt file gives an
//! error, never a crash.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use petri_api::{DType, Pixel};
use rayon::prelude::*;
use tiff::decoder::{Decoder, Limits};
use tiff::tags::Tag;
use tiff::{TiffError, TiffFormatError};

/// How one sample is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    Uint(u16),
    Int(u16),
    Float(u16),
}

impl SampleKind {
    pub fn bits(self) -> u16 {
        match self {
            SampleKind::Uint(b) | SampleKind::Int(b) | SampleKind::Float(b) => b,
        }
    }

    /// The stack pixel type this sample kind is read into. Unsigned 1–32 bit keep their type
    /// (sub-byte to u8), signed integers become f32 (exact for 8/16-bit, exact up to 2^24 for
    /// 32-bit), 16/32/64-bit floats become f32.
    pub fn dtype(self) -> Result<DType, String> {
        match self {
            SampleKind::Uint(1 | 2 | 4 | 8) => Ok(DType::U8),
            SampleKind::Uint(16) => Ok(DType::U16),
            SampleKind::Uint(32) => Ok(DType::U32),
            SampleKind::Int(8 | 16 | 32) => Ok(DType::F32),
            SampleKind::Float(16 | 32 | 64) => Ok(DType::F32),
            SampleKind::Uint(b) => Err(format!("unsupported bit depth: {b}-bit unsigned integer samples")),
            SampleKind::Int(b) => Err(format!("unsupported bit depth: {b}-bit signed integer samples")),
            SampleKind::Float(b) => Err(format!("unsupported bit depth: {b}-bit floating-point samples")),
        }
    }

    pub fn name(self) -> String {
        match self {
            SampleKind::Uint(b) => format!("u{b}"),
            SampleKind::Int(b) => format!("i{b}"),
            SampleKind::Float(b) => format!("f{b}"),
        }
    }
}

/// What the scan learned about one page (IFD).
#[derive(Clone, Debug)]
pub struct PageInfo {
    pub width: usize,
    pub height: usize,
    pub samples: usize,
    pub planar: bool,
    pub kind: SampleKind,
    pub compression: u16,
    pub photometric: u16,
    pub tiled: bool,
    /// NewSubfileType (bit 0 = reduced-resolution copy).
    pub subfile_type: u64,
    /// Sum of the strip/tile byte counts.
    pub data_bytes: u64,
    /// Offset of the first strip/tile.
    pub first_offset: u64,
    /// Strip (width × rows per strip) or tile size.
    pub chunk_dims: (u32, u32),
    /// JPEG pages only: (offset, length) of every strip/tile, to check each JPEG stream's own
    /// declared size before the decoder allocates for it.
    pub jpeg_chunks: Vec<(u64, u64)>,
    /// TIFF Predictor: 1 none, 2 horizontal differencing, 3 floating point.
    pub predictor: u16,
    /// (offset, byte count) of every strip, for pages the parallel strip decoder handles
    /// ([`strip_decodable`]); empty for the others, which go through the `tiff` crate.
    pub strips: Vec<(u64, u64)>,
}

impl PageInfo {
    /// Bytes the decoder writes for this page (all sample planes).
    pub fn decoded_bytes(&self) -> u64 {
        let spr = if self.planar { 1 } else { self.samples as u64 };
        let row = (self.width as u64 * self.kind.bits() as u64 * spr).div_ceil(8);
        let planes = if self.planar { self.samples as u64 } else { 1 };
        row * self.height as u64 * planes
    }

    /// Same geometry and sample type (pages that can form one stack).
    pub fn same_layout(&self, o: &PageInfo) -> bool {
        self.width == o.width
            && self.height == o.height
            && self.samples == o.samples
            && self.kind == o.kind
            && self.planar == o.planar
    }

    pub fn describe(&self) -> String {
        let s = if self.samples > 1 { format!("×{} samples", self.samples) } else { String::new() };
        format!("{}×{}{s} {}", self.height, self.width, self.kind.name())
    }
}

/// Where TIFF bytes come from: a file (each decoding worker opens its own handle), or memory
/// (fuzzing, tests).
#[derive(Clone, Debug)]
pub enum TiffSource {
    File(PathBuf),
    Memory(std::sync::Arc<[u8]>),
}

trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// A scanned TIFF file.
#[derive(Clone, Debug)]
pub struct TiffFile {
    /// The file's path (for messages; a placeholder for memory sources).
    pub path: PathBuf,
    pub source: TiffSource,
    pub file_len: u64,
    pub bigtiff: bool,
    /// Byte order of the file ("MM").
    pub big_endian: bool,
    pub pages: Vec<PageInfo>,
    /// ImageDescription of the first page.
    pub description: Option<String>,
    /// X and Y resolution of the first page (pixels per resolution unit).
    pub resolution: Option<(f64, f64)>,
    /// ResolutionUnit of the first page: 1 none, 2 inch, 3 centimetre.
    pub resolution_unit: u16,
}

/// Upper bound on the number of pages we follow (a corrupt IFD chain cannot loop forever
/// thanks to the crate's cycle check, but a crafted file could list millions of tiny IFDs).
const MAX_PAGES: usize = 10_000_000;

/// Name of a TIFF compression code, for messages.
pub fn compression_name(c: u16) -> &'static str {
    match c {
        1 => "none",
        2 => "CCITT RLE",
        3 => "CCITT Group 3 fax",
        4 => "CCITT Group 4 fax",
        5 => "LZW",
        6 => "old-style JPEG",
        7 => "JPEG",
        8 | 32946 => "Deflate",
        32773 => "PackBits",
        34661 => "JBIG",
        34712 => "JPEG 2000",
        34887..=34889 => "LERC",
        34925 => "LZMA",
        33003 | 33005 => "Aperio JPEG 2000",
        50000 => "ZSTD",
        50001 | 34927 => "WebP",
        50002 | 52546 => "JPEG XL",
        _ => "unknown",
    }
}

/// Largest decoded/encoded size ratio a codec can produce, so a tiny file cannot make us
/// allocate gigabytes. Deflate's format limit is 1032:1; LZW with 12-bit codes cannot exceed
/// ~4096:1; PackBits 64:1; ZSTD RLE blocks can reach ~43 000:1; JPEG under ~100:1 in practice.
fn max_ratio(compression: u16) -> Option<u64> {
    match compression {
        1 => Some(1),
        5 => Some(4096),
        8 | 32946 => Some(1100),
        32773 => Some(130),
        50000 => Some(65536),
        7 => Some(2048),
        _ => None,
    }
}

/// Whether this build can decode the compression (the `tiff` crate with lzw, deflate, zstd,
/// jpeg features).
fn supported_compression(c: u16) -> bool {
    max_ratio(c).is_some()
}

pub(crate) fn tiff_message(e: TiffError) -> String {
    match e {
        TiffError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file is truncated (it ends in the middle of the image data or a TIFF directory)".into()
        }
        TiffError::IoError(io) => format!("read error: {io}"),
        TiffError::FormatError(TiffFormatError::TiffSignatureNotFound | TiffFormatError::TiffSignatureInvalid) => {
            "not a TIFF file (wrong magic bytes)".into()
        }
        TiffError::FormatError(f) => format!("corrupt TIFF: {f}"),
        TiffError::UnsupportedError(u) => format!("unsupported TIFF feature: {u}"),
        TiffError::LimitsExceeded => {
            "corrupt TIFF: a directory entry or chunk is larger than the file could hold".into()
        }
        TiffError::IntSizeError => "corrupt TIFF: a size does not fit in an integer".into(),
        other => format!("TIFF error: {other}"),
    }
}

/// Runs a call into the `tiff` crate, turning both its errors and its panics into messages.
fn guarded<T>(f: impl FnOnce() -> Result<T, TiffError>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(tiff_message(e)),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("corrupt TIFF: the decoder rejected a malformed structure ({msg})"))
        }
    }
}

fn limits_for(file_len: u64) -> Limits {
    let mut l = Limits::default();
    // A tag value can never be larger than the file; strip sizes are checked against the file
    // length in `scan`, so the crate's own caps (1 MiB tags, 128 MiB strips) only get in the way
    // of legitimate files (large OME-XML, single-strip pages).
    let cap = usize::try_from(file_len).unwrap_or(usize::MAX).max(1 << 16);
    l.ifd_value_size = cap;
    l.intermediate_buffer_size = cap;
    l.decoding_buffer_size = cap.saturating_mul(64);
    l
}

type Dec = Decoder<Box<dyn ReadSeek>>;

fn open_decoder(src: &TiffSource, file_len: u64) -> Result<Dec, String> {
    let r: Box<dyn ReadSeek> = match src {
        TiffSource::File(path) => {
            let f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
            Box::new(WindowReader::new(f, file_len))
        }
        TiffSource::Memory(b) => Box::new(Cursor::new(b.clone())),
    };
    let dec = guarded(|| Decoder::new(r))?;
    Ok(dec.with_limits(limits_for(file_len)))
}

/// A buffered reader for the decoder whose buffer survives seeks.
///
/// Hand-written because `std::io::BufReader` discards its buffer on every seek, and the
/// decoder seeks to every IFD and every out-of-line tag value: on a file whose IFDs sit
/// together (ImageJ and tifffile put them all at the end), that was one `lseek` and one 8 KB
/// re-read of the same bytes per page. Here a seek only moves the cursor, a read inside the
/// buffered window is a copy, and a refill is one positional read; reads at least as large as
/// the buffer (pixel data) go straight to the caller.
struct WindowReader {
    file: File,
    file_len: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`; `buf.len()` bytes are valid.
    start: u64,
    pos: u64,
}

impl WindowReader {
    const CAPACITY: usize = 32 << 10;

    fn new(file: File, file_len: u64) -> WindowReader {
        WindowReader { file, file_len, buf: Vec::with_capacity(Self::CAPACITY), start: 0, pos: 0 }
    }
}

impl Read for WindowReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let end = self.start + self.buf.len() as u64;
        if !(self.start..end).contains(&self.pos) {
            if out.len() >= Self::CAPACITY {
                let n = read_at(&self.file, out, self.pos)?;
                self.pos += n as u64;
                return Ok(n);
            }
            self.buf.resize(Self::CAPACITY, 0);
            let n = match read_at(&self.file, &mut self.buf, self.pos) {
                Ok(n) => n,
                Err(e) => {
                    self.buf.clear();
                    return Err(e);
                }
            };
            self.buf.truncate(n);
            self.start = self.pos;
        }
        let at = (self.pos - self.start) as usize;
        let k = out.len().min(self.buf.len() - at);
        out[..k].copy_from_slice(&self.buf[at..at + k]);
        self.pos += k as u64;
        Ok(k)
    }
}

impl Seek for WindowReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = petri_api::fsutil::seek_target(self.pos, self.file_len, to)?;
        Ok(self.pos)
    }

    fn stream_position(&mut self) -> std::io::Result<u64> {
        Ok(self.pos)
    }
}

/// One positional read (may return fewer bytes than asked, 0 at the end of the file).
#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    loop {
        match std::os::unix::fs::FileExt::read_at(f, buf, off) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(windows)]
fn read_at(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    loop {
        match std::os::windows::fs::FileExt::seek_read(f, buf, off) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(not(any(unix, windows)))]
fn read_at(mut f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    f.seek(SeekFrom::Start(off))?;
    f.read(buf)
}

/// Checks the magic bytes. `Ok(bigtiff)` for a TIFF.
pub fn sniff(head: &[u8]) -> Option<bool> {
    match head.get(..4)? {
        [b'I', b'I', 42, 0] | [b'M', b'M', 0, 42] => Some(false),
        [b'I', b'I', 43, 0] | [b'M', b'M', 0, 43] => Some(true),
        _ => None,
    }
}

fn tag_u64(dec: &mut Dec, tag: Tag) -> Result<Option<u64>, String> {
    guarded(|| dec.find_tag_unsigned::<u64>(tag))
}

fn tag_u64_vec(dec: &mut Dec, tag: Tag) -> Result<Option<Vec<u64>>, String> {
    guarded(|| dec.find_tag_unsigned_vec::<u64>(tag))
}

fn value_f64(v: tiff::decoder::ifd::Value) -> Option<f64> {
    use tiff::decoder::ifd::Value as V;
    match v {
        V::Rational(n, d) if d != 0 => Some(n as f64 / d as f64),
        V::SRational(n, d) if d != 0 => Some(n as f64 / d as f64),
        V::Float(x) => Some(x as f64),
        V::Double(x) => Some(x),
        V::Short(x) => Some(x as f64),
        V::Unsigned(x) => Some(x as f64),
        V::List(l) => l.into_iter().next().and_then(value_f64),
        _ => None,
    }
}

fn tag_f64(dec: &mut Dec, tag: Tag) -> Option<f64> {
    guarded(|| dec.find_tag(tag)).ok().flatten().and_then(value_f64)
}

/// ImageDescription as text; a non-UTF-8 description is read as Latin-1 (old ImageJ writes µ
/// as byte 0xB5).
fn description(dec: &mut Dec) -> Option<String> {
    match guarded(|| dec.find_tag(Tag::ImageDescription)) {
        Ok(Some(v)) => v.into_string().ok().map(|s| s.trim_end_matches('\0').to_string()),
        Ok(None) => None,
        Err(_) => {
            let mut buf = tiff::tags::ValueBuffer::empty(tiff::tags::Type::ASCII);
            let mut ifd = dec.image_ifd();
            match catch_unwind(AssertUnwindSafe(|| ifd.find_tag_buf(Tag::ImageDescription, &mut buf))) {
                Ok(Ok(Some(_))) => Some(buf.as_bytes().iter().take_while(|&&b| b != 0).map(|&b| b as char).collect()),
                _ => None,
            }
        }
    }
}

fn page_info(dec: &mut Dec, index: usize, file_len: u64) -> Result<PageInfo, String> {
    let (w, h) = guarded(|| dec.dimensions())?;
    let samples = tag_u64(dec, Tag::SamplesPerPixel)?.unwrap_or(1) as usize;
    let bits = tag_u64_vec(dec, Tag::BitsPerSample)?.and_then(|v| v.first().copied()).unwrap_or(1);
    let format = tag_u64_vec(dec, Tag::SampleFormat)?.and_then(|v| v.first().copied()).unwrap_or(1);
    let planar = tag_u64(dec, Tag::PlanarConfiguration)?.unwrap_or(1) == 2;
    let compression = tag_u64(dec, Tag::Compression)?.unwrap_or(1) as u16;
    let photometric = tag_u64(dec, Tag::PhotometricInterpretation)?.unwrap_or(1) as u16;
    let subfile_type = tag_u64(dec, Tag::NewSubfileType)?.unwrap_or(0);
    let predictor = tag_u64(dec, Tag::Predictor)?.unwrap_or(1) as u16;
    let bits = u16::try_from(bits).map_err(|_| format!("page {index}: corrupt BitsPerSample {bits}"))?;
    let kind = match format {
        1 | 4 => SampleKind::Uint(bits),
        2 => SampleKind::Int(bits),
        3 => SampleKind::Float(bits),
        f => return Err(format!("page {index}: unsupported sample format {f} (complex numbers?)")),
    };
    kind.dtype().map_err(|e| format!("page {index}: {e}"))?;
    if !supported_compression(compression) {
        return Err(format!("page {index}: unsupported compression {compression} ({})", compression_name(compression)));
    }
    match photometric {
        0 | 1 => {}
        2 if samples >= 3 => {}
        6 if compression == 7 => {}
        3 => return Err(format!("page {index}: palette-colour images are not supported (convert to grayscale)")),
        p => return Err(format!("page {index}: unsupported photometric interpretation {p} with {samples} samples")),
    }
    let tiled = dec.get_chunk_type() == tiff::decoder::ChunkType::Tile;
    let (ot, bt) =
        if tiled { (Tag::TileOffsets, Tag::TileByteCounts) } else { (Tag::StripOffsets, Tag::StripByteCounts) };
    let offsets = tag_u64_vec(dec, ot)?.unwrap_or_default();
    let counts = tag_u64_vec(dec, bt)?.unwrap_or_default();
    if offsets.len() != counts.len() || offsets.is_empty() {
        return Err(format!("page {index}: corrupt TIFF (strip/tile offsets and byte counts disagree)"));
    }
    let mut data_bytes = 0u64;
    for (&o, &c) in offsets.iter().zip(&counts) {
        let end = o.checked_add(c).ok_or_else(|| format!("page {index}: corrupt strip offset"))?;
        if end > file_len {
            return Err(format!(
                "the file is truncated: page {index} needs data up to byte {end} but the file has only {file_len} bytes"
            ));
        }
        data_bytes += c;
    }
    let chunk_dims = guarded(|| Ok(dec.chunk_dimensions()))?;
    let mut info = PageInfo {
        predictor,
        strips: vec![],
        chunk_dims,
        jpeg_chunks: if compression == 7 {
            offsets.iter().copied().zip(counts.iter().copied()).collect()
        } else {
            vec![]
        },
        width: w as usize,
        height: h as usize,
        samples,
        planar,
        kind,
        compression,
        photometric,
        tiled,
        subfile_type,
        data_bytes,
        first_offset: offsets[0],
    };
    // Tiles are stored padded to whole tiles: the decoder expands (and skips) the padding too.
    let need = if tiled {
        let (tw, th) = (chunk_dims.0 as u128, chunk_dims.1 as u128);
        if tw == 0 || th == 0 {
            return Err(format!("page {index}: corrupt TIFF (zero tile size)"));
        }
        let spc = if planar { 1 } else { samples as u128 };
        let padded = (w as u128).div_ceil(tw) * tw * (h as u128).div_ceil(th) * th * spc * bits as u128 / 8
            * if planar { samples as u128 } else { 1 };
        u64::try_from(padded.max(info.decoded_bytes() as u128)).unwrap_or(u64::MAX)
    } else {
        info.decoded_bytes()
    };
    let ratio = max_ratio(compression).unwrap_or(1);
    if compression == 1 {
        if data_bytes < need {
            return Err(format!(
                "page {index}: declares {}×{} pixels ({need} bytes) but stores only {data_bytes} bytes",
                info.height, info.width
            ));
        }
    } else if need > data_bytes.saturating_mul(ratio).saturating_add(1 << 16) {
        return Err(format!(
            "page {index}: declares {}×{} pixels ({need} bytes) but holds only {data_bytes} compressed bytes, \
             more than {} compression can expand to (corrupt or malicious file)",
            info.height,
            info.width,
            compression_name(compression)
        ));
    }
    if strip_layout(&info) {
        let rps = (info.chunk_dims.1 as usize).clamp(1, info.height);
        if offsets.len() == info.height.div_ceil(rps) {
            info.strips = offsets.into_iter().zip(counts).collect();
        }
    }
    Ok(info)
}

/// Walks the IFD chain and checks every page against the file. Allocates nothing proportional
/// to the declared image size.
pub fn scan(path: &Path) -> Result<TiffFile, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let file_len = f.metadata().map_err(|e| format!("cannot read: {e}"))?.len();
    let mut head = [0u8; 8];
    let n = f.read(&mut head).map_err(|e| format!("cannot read: {e}"))?;
    drop(f);
    scan_source(TiffSource::File(path.to_path_buf()), path, file_len, &head[..n])
}

/// [`scan`] for a TIFF held in memory.
pub fn scan_bytes(bytes: std::sync::Arc<[u8]>) -> Result<TiffFile, String> {
    let head: Vec<u8> = bytes.iter().take(8).copied().collect();
    let len = bytes.len() as u64;
    scan_source(TiffSource::Memory(bytes), Path::new("<memory>"), len, &head)
}

fn scan_source(source: TiffSource, path: &Path, file_len: u64, head: &[u8]) -> Result<TiffFile, String> {
    let n = head.len();
    if n == 0 {
        return Err("the file is empty".into());
    }
    let bigtiff = sniff(&head[..n]).ok_or_else(|| {
        format!("not a TIFF file (wrong magic bytes {:02X?}, expected 'II*' or 'MM*')", &head[..n.min(4)])
    })?;
    let mut dec = open_decoder(&source, file_len)?;
    let mut pages = Vec::new();
    let mut desc = None;
    let mut resolution = None;
    let mut resolution_unit = 2;
    loop {
        let index = pages.len();
        let info = page_info(&mut dec, index, file_len)?;
        if index == 0 {
            desc = description(&mut dec);
            let xr = tag_f64(&mut dec, Tag::XResolution);
            let yr = tag_f64(&mut dec, Tag::YResolution);
            if let (Some(x), Some(y)) = (xr, yr) {
                resolution = Some((x, y));
            }
            resolution_unit = tag_u64(&mut dec, Tag::ResolutionUnit).ok().flatten().unwrap_or(2) as u16;
        }
        pages.push(info);
        if !dec.more_images() {
            break;
        }
        if pages.len() >= MAX_PAGES {
            return Err(format!("more than {MAX_PAGES} pages: not supported"));
        }
        match guarded(|| dec.next_image()) {
            Ok(()) => {}
            // An IFD chain that ends in a zero/garbage pointer after valid pages: tifffile and
            // libtiff stop there too, with a warning.
            Err(e) if e.contains("Image file directory not found") => break,
            Err(e) => return Err(format!("page {}: {e}", pages.len())),
        }
    }
    Ok(TiffFile {
        path: path.to_path_buf(),
        source,
        file_len,
        bigtiff,
        big_endian: head.get(..2) == Some(b"MM"),
        pages,
        description: desc,
        resolution,
        resolution_unit,
    })
}

/// One page to decode and where its sample planes go (one destination per sample).
pub struct PageJob<'a, P> {
    pub page: usize,
    pub dests: Vec<&'a mut [P]>,
}

#[derive(Debug)]
pub enum DecodeError {
    Cancelled,
    Failed(String),
}

/// Decodes the given pages into their destinations. Pages the strip decoder handles (the common
/// case: one sample per pixel, strips, no compression, LZW or Deflate) are decoded strip by strip
/// in parallel; the others page by page through the `tiff` crate, several pages at once.
/// `done()` is called after each page; `cancelled()` is polled between strips or pages.
pub fn decode_pages<P: Pixel + bytemuck::Pod>(
    file: &TiffFile,
    jobs: Vec<PageJob<'_, P>>,
    done: &(dyn Fn() + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<(), DecodeError> {
    let (strips, pages): (Vec<_>, Vec<_>) =
        jobs.into_iter().partition(|j| strip_decodable::<P>(&file.pages[j.page], j.dests.len()));
    decode_strips(file, strips, done, cancelled)?;
    decode_with_crate(file, pages, done, cancelled)
}

/// Below this many bytes, an uncompressed series stored as one contiguous run of the file is
/// read with a single read (see [`read_contiguous`]); above it the strips are read in parallel.
pub const SMALL_READ: usize = 16 << 20;

/// Reads `pages` into `dest` (their planes one after the other) with one positional read when
/// they are uncompressed, in the file's byte order of this machine, one sample per pixel, and
/// stored as one contiguous run of the file in page order — what ImageJ and tifffile write — and
/// `dest` is smaller than [`SMALL_READ`]. This is how tifffile reads such files: for a small
/// stack, the per-strip reads (one syscall each) are a visible share of the time. Returns
/// `Ok(false)`, having read nothing, when the pages do not qualify.
pub fn read_contiguous<P: Pixel + bytemuck::Pod>(
    file: &TiffFile,
    pages: &[usize],
    dest: &mut [P],
) -> Result<bool, String> {
    let sz = std::mem::size_of::<P>();
    let bytes = std::mem::size_of_val(dest);
    if bytes >= SMALL_READ || (file.big_endian && sz > 1) || pages.is_empty() {
        return Ok(false);
    }
    let mut first = None;
    let mut next = 0u64;
    let mut total = 0usize;
    for &p in pages {
        let Some(info) = file.pages.get(p) else { return Ok(false) };
        if info.compression != 1 || info.predictor != 1 || !strip_decodable::<P>(info, 1) {
            return Ok(false);
        }
        let page_bytes = info.width * info.height * sz;
        let strip_bytes = (info.chunk_dims.1 as usize).clamp(1, info.height) * info.width * sz;
        for (k, &(off, _)) in info.strips.iter().enumerate() {
            if first.is_some() && off != next {
                return Ok(false);
            }
            first.get_or_insert(off);
            // Like the strip decoder, a strip is read for the size the image needs.
            next = off + strip_bytes.min(page_bytes - k * strip_bytes) as u64;
        }
        total += page_bytes;
    }
    let Some(off) = first else { return Ok(false) };
    if total != bytes {
        return Ok(false);
    }
    Bytes::open(&file.source)?.read_at(off, bytemuck::cast_slice_mut(dest))?;
    Ok(true)
}

/// Decodes pages through the `tiff` crate, in parallel over contiguous groups of pages (one
/// decoder and file handle per worker).
fn decode_with_crate<P: Pixel + bytemuck::Pod>(
    file: &TiffFile,
    jobs: Vec<PageJob<'_, P>>,
    done: &(dyn Fn() + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<(), DecodeError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let total: u64 = jobs.iter().map(|j| file.pages[j.page].decoded_bytes()).sum();
    // Small files: one worker (opening a decoder per thread costs more than it saves).
    let workers = if total < (4 << 20) { 1 } else { rayon::current_num_threads().clamp(1, jobs.len()) };
    let per = jobs.len().div_ceil(workers);
    let mut groups: Vec<Vec<PageJob<'_, P>>> = Vec::with_capacity(workers);
    let mut it = jobs.into_iter().peekable();
    while it.peek().is_some() {
        groups.push(it.by_ref().take(per).collect());
    }
    let stop = AtomicBool::new(false);
    let results: Vec<Result<(), DecodeError>> = groups
        .into_par_iter()
        .map(|g| {
            let r = decode_group(file, g, done, &|| cancelled() || stop.load(Ordering::Relaxed));
            if r.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            r
        })
        .collect();
    // Report a real failure in preference to the "cancelled" of workers that were stopped.
    let mut cancelled_seen = false;
    for r in results {
        match r {
            Err(DecodeError::Failed(m)) => return Err(DecodeError::Failed(m)),
            Err(DecodeError::Cancelled) => cancelled_seen = true,
            Ok(()) => {}
        }
    }
    if cancelled_seen { Err(DecodeError::Cancelled) } else { Ok(()) }
}

fn decode_group<P: Pixel + bytemuck::Pod>(
    file: &TiffFile,
    jobs: Vec<PageJob<'_, P>>,
    done: &(dyn Fn() + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<(), DecodeError> {
    let mut dec = open_decoder(&file.source, file.file_len).map_err(DecodeError::Failed)?;
    let mut cur = 0usize;
    let mut tmp: Vec<u64> = Vec::new();
    for mut job in jobs {
        if cancelled() {
            return Err(DecodeError::Cancelled);
        }
        if job.page != cur {
            let r = if job.page == cur + 1 {
                guarded(|| dec.next_image())
            } else {
                guarded(|| dec.seek_to_image(job.page))
            };
            r.map_err(|e| DecodeError::Failed(format!("page {}: {e}", job.page)))?;
            cur = job.page;
        }
        let info = &file.pages[job.page];
        for &(off, len) in &info.jpeg_chunks {
            check_jpeg_chunk(&file.source, off, len, info.chunk_dims)
                .map_err(|e| DecodeError::Failed(format!("page {}: {e}", job.page)))?;
        }
        decode_page(&mut dec, info, &mut job.dests, &mut tmp)
            .map_err(|e| DecodeError::Failed(format!("page {}: {e}", job.page)))?;
        done();
    }
    Ok(())
}

/// Whether a page's layout can go through the strip decoder (checked at scan time, before the
/// pixel type is known): strips, one sample per pixel, black-is-zero, 8/16/32-bit unsigned or
/// 32-bit float samples, no compression, LZW or Deflate, no predictor or (integers) horizontal
/// differencing. This covers what Fiji, tifffile, Petri and most microscope software write.
fn strip_layout(info: &PageInfo) -> bool {
    !info.tiled
        && info.samples == 1
        && info.photometric == 1
        && info.width > 0
        && info.height > 0
        && matches!(info.compression, 1 | 5 | 8 | 32946)
        && matches!((info.kind, info.predictor), (SampleKind::Uint(8 | 16 | 32), 1 | 2) | (SampleKind::Float(32), 1))
}

/// Whether the strip decoder handles this page read into `P` (no sample conversion needed).
fn strip_decodable<P: Pixel>(info: &PageInfo, dests: usize) -> bool {
    !info.strips.is_empty() && dests == 1 && native::<P>(info.kind)
}

/// Random access to a TIFF's bytes from several threads at once (positional reads on one file
/// handle, or slices of an in-memory file).
enum Bytes<'a> {
    File(File),
    Memory(&'a [u8]),
}

impl<'a> Bytes<'a> {
    fn open(src: &'a TiffSource) -> Result<Bytes<'a>, String> {
        match src {
            TiffSource::File(p) => Ok(Bytes::File(File::open(p).map_err(|e| format!("cannot open: {e}"))?)),
            TiffSource::Memory(b) => Ok(Bytes::Memory(&b[..])),
        }
    }

    /// Exactly `buf.len()` bytes from `off`.
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<(), String> {
        let short = || "the file is truncated (it ends in the middle of the image data)".to_string();
        match self {
            Bytes::Memory(b) => {
                let start = usize::try_from(off).map_err(|_| short())?;
                let src = start.checked_add(buf.len()).and_then(|end| b.get(start..end)).ok_or_else(short)?;
                buf.copy_from_slice(src);
                Ok(())
            }
            Bytes::File(f) => read_exact_at(f, off, buf).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof { short() } else { format!("read error: {e}") }
            }),
        }
    }

    /// `len` bytes from `off`: borrowed from memory, or read into `scratch`.
    fn slice<'s>(&'s self, off: u64, len: u64, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], String> {
        let len = usize::try_from(len).map_err(|_| "corrupt strip byte count".to_string())?;
        match self {
            Bytes::Memory(b) => usize::try_from(off)
                .ok()
                .and_then(|s| s.checked_add(len).and_then(|e| b.get(s..e)))
                .ok_or_else(|| "the file is truncated (it ends in the middle of the image data)".to_string()),
            Bytes::File(_) => {
                scratch.clear();
                scratch.resize(len, 0);
                self.read_at(off, scratch)?;
                Ok(&scratch[..])
            }
        }
    }
}

#[cfg(unix)]
fn read_exact_at(f: &File, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, off)
}

#[cfg(windows)]
fn read_exact_at(f: &File, mut off: u64, mut buf: &mut [u8]) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, off) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                off += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn read_exact_at(f: &File, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let mut f = f.try_clone()?;
    f.seek(std::io::SeekFrom::Start(off))?;
    f.read_exact(buf)
}

/// Per-worker decoding state, reused from strip to strip.
#[derive(Default)]
struct StripScratch {
    compressed: Vec<u8>,
    lzw: Option<weezl::decode::Decoder>,
    zlib: Option<flate2::Decompress>,
}

/// Decodes pages strip by strip, all strips of all pages in parallel, each straight into its
/// rows of the destination plane.
///
/// Hand-written on top of `weezl` (LZW) and `flate2` (Deflate) — the codecs the `tiff` crate
/// itself uses — because the crate decodes one chunk at a time through a `&mut Decoder` (one file
/// cursor), so a page's strips cannot be decoded concurrently, and each worker would need its
/// own decoder that re-reads the IFD of every page it touches. Here strips are read with
/// positional reads on one shared file handle, and uncompressed strips go straight from the file
/// into the destination (no intermediate copy). Every strip writes its own disjoint rows, so the
/// result does not depend on scheduling; the error reported is that of the first failing strip
/// in file order, whatever order the workers ran in.
fn decode_strips<P: Pixel + bytemuck::Pod>(
    file: &TiffFile,
    jobs: Vec<PageJob<'_, P>>,
    done: &(dyn Fn() + Sync),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<(), DecodeError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let internal = |m: &str| DecodeError::Failed(format!("internal error: {m}"));
    let bytes = Bytes::open(&file.source).map_err(DecodeError::Failed)?;
    let sz = std::mem::size_of::<P>();
    // (page, strips not yet decoded) per job, and one work item per strip.
    let mut pages: Vec<(usize, AtomicUsize)> = Vec::with_capacity(jobs.len());
    let mut items: Vec<(usize, usize, &mut [u8])> = Vec::new();
    for (j, job) in jobs.into_iter().enumerate() {
        let info = &file.pages[job.page];
        let rps = (info.chunk_dims.1 as usize).clamp(1, info.height);
        let strip_bytes = rps * info.width * sz;
        let dest = job.dests.into_iter().next().ok_or_else(|| internal("no destination"))?;
        let dest: &mut [u8] = bytemuck::cast_slice_mut(dest);
        if dest.len() != info.width * info.height * sz || info.strips.len() != info.height.div_ceil(rps) {
            return Err(internal("strip layout"));
        }
        pages.push((job.page, AtomicUsize::new(info.strips.len())));
        items.extend(dest.chunks_mut(strip_bytes).enumerate().map(|(s, d)| (j, s, d)));
    }
    let first_failure = AtomicUsize::new(usize::MAX);
    let failure: std::sync::Mutex<Option<(usize, String)>> = std::sync::Mutex::new(None);
    let stop = AtomicBool::new(false);
    // A small uncompressed read is a few large copies: on the calling thread it does not wait for
    // workers to be scheduled (which, on a busy machine, cost more than the copies).
    let total: usize = items.iter().map(|it| it.2.len()).sum();
    let sequential = total < SMALL_READ && pages.iter().all(|(p, _)| file.pages[*p].compression == 1);
    let work = |scratch: &mut StripScratch, (i, (j, s, dest)): (usize, (usize, usize, &mut [u8]))| {
        // Strips after a failed one are skipped; strips before it still run, so the failure
        // reported is always the first in file order.
        if i > first_failure.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
            return;
        }
        if cancelled() {
            stop.store(true, Ordering::Relaxed);
            return;
        }
        let (page, remaining) = &pages[j];
        match decode_strip(&bytes, file.big_endian, &file.pages[*page], s, dest, scratch) {
            Ok(()) => {
                if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    done();
                }
            }
            Err(m) => {
                let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
                if f.as_ref().is_none_or(|(k, _)| i < *k) {
                    *f = Some((i, format!("page {page}, strip {s}: {m}")));
                }
                first_failure.fetch_min(i, Ordering::Relaxed);
            }
        }
    };
    if sequential {
        let mut scratch = StripScratch::default();
        items.into_iter().enumerate().for_each(|it| work(&mut scratch, it));
    } else {
        items.into_par_iter().enumerate().for_each_init(StripScratch::default, |scratch, it| work(scratch, it));
    }
    if let Some((_, m)) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(DecodeError::Failed(m));
    }
    if stop.load(Ordering::Relaxed) {
        return Err(DecodeError::Cancelled);
    }
    Ok(())
}

/// Decodes strip `s` of a page into `out` (its rows, native byte order).
fn decode_strip(
    bytes: &Bytes,
    big_endian: bool,
    info: &PageInfo,
    s: usize,
    out: &mut [u8],
    scratch: &mut StripScratch,
) -> Result<(), String> {
    let (off, count) = info.strips[s];
    match info.compression {
        // Like the `tiff` crate (and libtiff), an uncompressed strip is read for the size the
        // image needs from its offset; the scan checked that the file holds that much.
        1 => bytes.read_at(off, out)?,
        5 => {
            let data = bytes.slice(off, count, &mut scratch.compressed)?;
            lzw_into(data, out, &mut scratch.lzw)?;
        }
        8 | 32946 => {
            let data = bytes.slice(off, count, &mut scratch.compressed)?;
            inflate_into(data, out, &mut scratch.zlib)?;
        }
        c => return Err(format!("internal error: compression {c} in the strip decoder")),
    }
    let bps = info.kind.bits() as usize / 8;
    if big_endian && bps > 1 {
        for v in out.chunks_exact_mut(bps) {
            v.reverse();
        }
    }
    if info.predictor == 2 {
        let row = info.width * bps;
        macro_rules! undo {
            ($t:ty) => {{
                // Destinations come from `&mut [P]` with P of this size, so they are aligned.
                let v: &mut [$t] = bytemuck::try_cast_slice_mut(out).map_err(|_| "internal error: alignment")?;
                for r in v.chunks_exact_mut(info.width) {
                    for x in 1..r.len() {
                        r[x] = r[x].wrapping_add(r[x - 1]);
                    }
                }
            }};
        }
        debug_assert!(out.len().is_multiple_of(row));
        match bps {
            1 => undo!(u8),
            2 => undo!(u16),
            4 => undo!(u32),
            _ => return Err("internal error: predictor on this sample size".into()),
        }
    }
    Ok(())
}

fn ends_early(got: usize, want: usize) -> String {
    format!("the compressed data ends after {got} of {want} bytes (corrupt or truncated file)")
}

/// TIFF LZW (MSB-first codes, early code-size switch) into exactly `out.len()` bytes; data past
/// that is ignored, as the `tiff` crate and libtiff do.
fn lzw_into(data: &[u8], out: &mut [u8], dec: &mut Option<weezl::decode::Decoder>) -> Result<(), String> {
    let dec = dec.get_or_insert_with(|| weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8));
    dec.reset();
    let (mut input, mut filled) = (data, 0usize);
    while filled < out.len() {
        let r = dec.decode_bytes(input, &mut out[filled..]);
        input = &input[r.consumed_in..];
        filled += r.consumed_out;
        match r.status {
            Ok(weezl::LzwStatus::Ok) if r.consumed_in > 0 || r.consumed_out > 0 => {}
            Ok(_) => break,
            Err(e) => return Err(format!("corrupt LZW data ({e})")),
        }
    }
    if filled < out.len() {
        return Err(ends_early(filled, out.len()));
    }
    Ok(())
}

/// Deflate (zlib stream) into exactly `out.len()` bytes.
fn inflate_into(data: &[u8], out: &mut [u8], z: &mut Option<flate2::Decompress>) -> Result<(), String> {
    let z = z.get_or_insert_with(|| flate2::Decompress::new(true));
    z.reset(true);
    loop {
        let (i, o) = (z.total_in() as usize, z.total_out() as usize);
        if o >= out.len() {
            break;
        }
        let status = z
            .decompress(&data[i.min(data.len())..], &mut out[o..], flate2::FlushDecompress::None)
            .map_err(|e| format!("corrupt Deflate data ({e})"))?;
        let progressed = z.total_in() as usize != i || z.total_out() as usize != o;
        if status == flate2::Status::StreamEnd || !progressed {
            break;
        }
    }
    let got = z.total_out() as usize;
    if got < out.len() {
        return Err(ends_early(got, out.len()));
    }
    Ok(())
}

/// Reads the SOF header of one JPEG strip/tile and refuses a stream that declares more pixels
/// than its strip/tile holds: the JPEG decoder allocates its output from that header, so a
/// few bytes could otherwise claim gigabytes.
fn check_jpeg_chunk(src: &TiffSource, off: u64, len: u64, (cw, ch): (u32, u32)) -> Result<(), String> {
    let n = len.min(1 << 16) as usize;
    let head: Vec<u8> = match src {
        TiffSource::Memory(b) => b.get(off as usize..off as usize + n).ok_or("the file is truncated")?.to_vec(),
        TiffSource::File(p) => {
            let mut f = File::open(p).map_err(|e| format!("cannot open: {e}"))?;
            f.seek(std::io::SeekFrom::Start(off)).map_err(|e| format!("read error: {e}"))?;
            let mut v = vec![0u8; n];
            f.read_exact(&mut v).map_err(|_| "the file is truncated".to_string())?;
            v
        }
    };
    let mut i = 2;
    if head.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err("corrupt JPEG data (no start-of-image marker)".into());
    }
    while i + 4 <= head.len() {
        if head[i] != 0xFF {
            return Err("corrupt JPEG data (bad marker)".into());
        }
        let m = head[i + 1];
        if m == 0xFF {
            i += 1;
            continue;
        }
        let seg = u16::from_be_bytes([head[i + 2], head[i + 3]]) as usize;
        if (0xC0..=0xCF).contains(&m) && !matches!(m, 0xC4 | 0xC8 | 0xCC) {
            if head.len() < i + 9 {
                return Err("corrupt JPEG data (short frame header)".into());
            }
            let h = u16::from_be_bytes([head[i + 5], head[i + 6]]) as u32;
            let w = u16::from_be_bytes([head[i + 7], head[i + 8]]) as u32;
            if w > cw.saturating_add(16) || h > ch.saturating_add(16) {
                return Err(format!("corrupt JPEG data: a {cw}×{ch} strip/tile declares a {w}×{h} image"));
            }
            return Ok(());
        }
        if m == 0xDA || seg < 2 {
            return Err("corrupt JPEG data (no frame header)".into());
        }
        i += 2 + seg;
    }
    Err("corrupt JPEG data (no frame header in the first 64 KB)".into())
}

/// Whether pages of this kind decode to exactly the bytes of `P` (no conversion needed).
fn native<P: Pixel>(kind: SampleKind) -> bool {
    matches!(
        (kind, P::DTYPE),
        (SampleKind::Uint(8), DType::U8)
            | (SampleKind::Uint(16), DType::U16)
            | (SampleKind::Uint(32), DType::U32)
            | (SampleKind::Float(32), DType::F32)
    )
}

fn decode_page<P: Pixel + bytemuck::Pod>(
    dec: &mut Dec,
    info: &PageInfo,
    dests: &mut [&mut [P]],
    tmp: &mut Vec<u64>,
) -> Result<(), String> {
    let n = info.width * info.height;
    if dests.len() != info.samples || dests.iter().any(|d| d.len() != n) {
        return Err("internal error: destination planes do not match the page".into());
    }
    if info.samples == 1 && native::<P>(info.kind) {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut *dests[0]);
        return guarded(|| dec.read_image_bytes(bytes));
    }
    let len = usize::try_from(info.decoded_bytes()).map_err(|_| "page too large".to_string())?;
    // A u64 scratch buffer so the bytes can be viewed as any sample type without misalignment.
    tmp.clear();
    tmp.resize(len.div_ceil(8), 0);
    let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(tmp)[..len];
    if info.planar && info.tiled && info.samples > 1 {
        read_planar_tiles(dec, info, bytes)?;
    } else {
        guarded(|| dec.read_image_bytes(bytes))?;
    }
    convert(info, bytes, dests)
}

/// Planar (PlanarConfiguration 2) tiled pages, tile by tile: the crate's `read_image_bytes`
/// computes a wrong bound for the second and later sample planes of tiled images and panics.
/// Output layout is the same as `read_image_bytes`: one full plane per sample.
fn read_planar_tiles(dec: &mut Dec, info: &PageInfo, out: &mut [u8]) -> Result<(), String> {
    let bits = info.kind.bits() as usize;
    if !bits.is_multiple_of(8) {
        return Err(format!("unsupported: {bits}-bit samples in planar tiled images"));
    }
    let bps = bits / 8;
    let (tw, th) = dec.chunk_dimensions();
    let (tw, th) = (tw as usize, th as usize);
    if tw == 0 || th == 0 {
        return Err("corrupt TIFF: zero tile size".into());
    }
    let across = info.width.div_ceil(tw);
    let down = info.height.div_ceil(th);
    let plane = info.width * info.height * bps;
    let mut tile = vec![0u8; tw * th * bps];
    for s in 0..info.samples {
        for ty in 0..down {
            for tx in 0..across {
                let idx = (s * across * down + ty * across + tx) as u32;
                // The crate derives a tile's padding from its index as if there were one plane,
                // so tiles of later planes come back full height: read what it decodes and keep
                // the rows inside the image.
                let (rw, rh) = guarded(|| Ok(dec.chunk_data_dimensions(idx)))?;
                let (rw, rh) = (rw as usize, rh as usize);
                let dw = tw.min(info.width - tx * tw);
                let dh = th.min(info.height - ty * th);
                if rw != dw || rh < dh || rh > th {
                    return Err("corrupt TIFF: inconsistent tile sizes".into());
                }
                let buf = &mut tile[..rw * rh * bps];
                guarded(|| dec.read_chunk_bytes(idx, buf))?;
                for r in 0..dh {
                    let dst = s * plane + ((ty * th + r) * info.width + tx * tw) * bps;
                    out[dst..dst + dw * bps].copy_from_slice(&buf[r * dw * bps..(r + 1) * dw * bps]);
                }
            }
        }
    }
    Ok(())
}

/// Copies decoded samples (native byte order, chunky or planar) into per-sample planes of `P`.
fn convert<P: Pixel>(info: &PageInfo, src: &[u8], dests: &mut [&mut [P]]) -> Result<(), String> {
    let (w, h, s) = (info.width, info.height, info.samples);
    let n = w * h;
    if let SampleKind::Uint(b @ (1 | 2 | 4)) = info.kind {
        let b = b as usize;
        let spr = if info.planar { 1 } else { s };
        let row_bytes = (w * b * spr).div_ceil(8);
        let mask = (1u16 << b) - 1;
        for (c, d) in dests.iter_mut().enumerate() {
            let base = if info.planar { c * row_bytes * h } else { 0 };
            for y in 0..h {
                for x in 0..w {
                    let bit = (x * spr + if info.planar { 0 } else { c }) * b;
                    let byte = src[base + y * row_bytes + bit / 8] as u16;
                    let v = (byte >> (8 - b - bit % 8)) & mask;
                    d[y * w + x] = P::from_f64(v as f64);
                }
            }
        }
        return Ok(());
    }
    macro_rules! go {
        ($t:ty, $f:expr) => {{
            let vals: &[$t] = bytemuck::cast_slice(src);
            for (c, d) in dests.iter_mut().enumerate() {
                if info.planar || s == 1 {
                    let plane = &vals[c * n..(c + 1) * n];
                    for (o, &v) in d.iter_mut().zip(plane) {
                        *o = P::from_f64($f(v));
                    }
                } else {
                    for (i, o) in d.iter_mut().enumerate() {
                        *o = P::from_f64($f(vals[i * s + c]));
                    }
                }
            }
        }};
    }
    match info.kind {
        SampleKind::Uint(8) => go!(u8, |v: u8| v as f64),
        SampleKind::Uint(16) => go!(u16, |v: u16| v as f64),
        SampleKind::Uint(32) => go!(u32, |v: u32| v as f64),
        SampleKind::Int(8) => go!(i8, |v: i8| v as f64),
        SampleKind::Int(16) => go!(i16, |v: i16| v as f64),
        SampleKind::Int(32) => go!(i32, |v: i32| v as f64),
        SampleKind::Float(16) => go!(u16, |v: u16| half::f16::from_bits(v).to_f64()),
        SampleKind::Float(32) => go!(f32, |v: f32| v as f64),
        SampleKind::Float(64) => go!(f64, |v: f64| v),
        k => return Err(format!("unsupported sample type {}", k.name())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiffwrite::{Compression, PageMeta, write_planes};

    /// Decodes every page the strip decoder takes both ways (strips in parallel, and the `tiff`
    /// crate) and returns the number of pages compared and the mismatches.
    fn compare_paths<P: Pixel + bytemuck::Pod>(file: &TiffFile, what: &str) -> (usize, Vec<String>) {
        let (mut n, mut bad) = (0, Vec::new());
        for (k, info) in file.pages.iter().enumerate() {
            if !strip_decodable::<P>(info, 1) {
                continue;
            }
            let len = info.width * info.height;
            let (mut a, mut b) = (vec![P::zeroed(); len], vec![P::zeroed(); len]);
            let ra = decode_strips(file, vec![PageJob { page: k, dests: vec![&mut a[..]] }], &|| {}, &|| false);
            let rb = decode_with_crate(file, vec![PageJob { page: k, dests: vec![&mut b[..]] }], &|| {}, &|| false);
            n += 1;
            match (ra, rb) {
                (Ok(()), Ok(())) if bytemuck::cast_slice::<P, u8>(&a) == bytemuck::cast_slice::<P, u8>(&b) => {}
                (ra, rb) => bad.push(format!("{what} page {k}: strips {ra:?} crate {rb:?} (or different pixels)")),
            }
        }
        (n, bad)
    }

    fn compare_file(path: &Path) -> (usize, Vec<String>) {
        let what = path.file_name().unwrap().to_string_lossy().to_string();
        let Ok(file) = scan(path) else { return (0, vec![]) };
        match file.pages[0].kind.dtype() {
            Ok(DType::U8) => compare_paths::<u8>(&file, &what),
            Ok(DType::U16) => compare_paths::<u16>(&file, &what),
            Ok(DType::U32) => compare_paths::<u32>(&file, &what),
            Ok(DType::F32) => compare_paths::<f32>(&file, &what),
            Err(_) => (0, vec![]),
        }
    }

    fn write_file<P: crate::tiffwrite::Sample>(path: &Path, planes: &[Vec<P>], h: usize, w: usize, c: Compression) {
        let refs: Vec<&[P]> = planes.iter().map(|p| &p[..]).collect();
        let mut f = std::io::BufWriter::new(File::create(path).unwrap());
        write_planes(&mut f, &refs, h, w, c, &PageMeta { description: "", pixel_size: None }, &|| false).unwrap();
        std::io::Write::flush(&mut f).unwrap();
    }

    /// Pseudo-random but smooth-ish values, so LZW and Deflate have something to find.
    fn pattern<P: Pixel>(n: usize, seed: u64) -> Vec<P> {
        let mut x = seed | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                P::from_f64(((i % 977) as f64).sqrt() * 7.0 + (x % 13) as f64)
            })
            .collect()
    }

    #[test]
    fn strip_decoder_matches_the_tiff_crate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/io/tiff");
        let mut total = 0;
        let mut bad = Vec::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tif"))
            .collect();
        names.sort();
        for p in &names {
            let (n, b) = compare_file(p);
            total += n;
            bad.extend(b);
        }
        // Files written by Petri: horizontal predictor, several strips per page with a shorter
        // last strip, every writable sample type and codec.
        let tmp = tempfile::tempdir().unwrap();
        let (h, w) = (301, 487);
        for c in [Compression::None, Compression::Lzw, Compression::Deflate] {
            let p = tmp.path().join(format!("{c:?}.tif"));
            write_file(&p, &[pattern::<u8>(h * w, 1), pattern::<u8>(h * w, 2)], h, w, c);
            bad.extend(compare_file(&p).1);
            write_file(&p, &[pattern::<u16>(h * w, 3), pattern::<u16>(h * w, 4)], h, w, c);
            let file = scan(&p).unwrap();
            if c != Compression::None {
                assert!(file.pages[0].strips.len() > 1 && file.pages[0].predictor == 2);
            }
            bad.extend(compare_paths::<u16>(&file, &format!("{c:?} u16")).1);
            write_file(&p, &[pattern::<u32>(h * w, 5)], h, w, c);
            bad.extend(compare_file(&p).1);
            write_file(&p, &[pattern::<f32>(h * w, 6)], h, w, c);
            bad.extend(compare_file(&p).1);
            total += 7;
        }
        assert!(bad.is_empty(), "{bad:#?}");
        // Most fixtures are strip-decodable: the comparison is not vacuous.
        assert!(total > 60, "only {total} pages compared");
    }

    /// The one-read path gives the strip decoder's pixels on contiguous files (tifffile and
    /// ImageJ write them) and declines the others (Petri writes each page's IFD after it).
    #[test]
    fn contiguous_read_matches_the_strip_decoder() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut names: Vec<PathBuf> = std::fs::read_dir(root.join("tests/fixtures/io/tiff"))
            .unwrap()
            .chain(std::fs::read_dir(root.join("assets/samples")).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tif"))
            .collect();
        names.sort();
        fn check<P: Pixel + bytemuck::Pod>(file: &TiffFile) -> Option<bool> {
            let p0 = &file.pages[0];
            let pages: Vec<usize> = (0..file.pages.len()).take_while(|&k| file.pages[k].same_layout(p0)).collect();
            let len = p0.width * p0.height;
            let mut a = vec![P::zeroed(); len * pages.len()];
            if !read_contiguous(file, &pages, &mut a).ok()? {
                return Some(false);
            }
            let mut b = vec![P::zeroed(); len * pages.len()];
            let jobs = b.chunks_mut(len).zip(&pages).map(|(d, &page)| PageJob { page, dests: vec![d] }).collect();
            decode_strips(file, jobs, &|| {}, &|| false).ok()?;
            assert!(bytemuck::cast_slice::<P, u8>(&a) == bytemuck::cast_slice::<P, u8>(&b), "{}", file.path.display());
            Some(pages.len() > 1)
        }
        let mut multi_page = 0;
        for p in &names {
            let Ok(file) = scan(p) else { continue };
            let r = match file.pages[0].kind.dtype() {
                Ok(DType::U8) => check::<u8>(&file),
                Ok(DType::U16) => check::<u16>(&file),
                Ok(DType::U32) => check::<u32>(&file),
                Ok(DType::F32) => check::<f32>(&file),
                Err(_) => None,
            };
            multi_page += (r == Some(true)) as usize;
        }
        assert!(multi_page >= 3, "only {multi_page} multi-page stacks read in one piece");
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("petri.tif");
        write_file(&p, &[pattern::<u16>(60 * 50, 1), pattern::<u16>(60 * 50, 2)], 60, 50, Compression::None);
        let mut buf = vec![0u16; 2 * 60 * 50];
        assert_eq!(read_contiguous(&scan(&p).unwrap(), &[0, 1], &mut buf), Ok(false));
        assert!(buf.iter().all(|&v| v == 0));
    }

    #[test]
    fn corrupt_strips_fail_with_the_first_strip_in_file_order() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("bad.tif");
        let (h, w) = (400, 700);
        let planes: Vec<Vec<u16>> = (0..4).map(|i| pattern::<u16>(h * w, i + 1)).collect();
        write_file(&p, &planes, h, w, Compression::Lzw);
        let file = scan(&p).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        // Garbage (codes that are not in the table yet) in strip 1 of page 1 and all of page 3.
        let damage = |b: &mut Vec<u8>, (off, len): (u64, u64)| b[off as usize..(off + len) as usize].fill(0xFF);
        damage(&mut bytes, file.pages[1].strips[1]);
        for &s in &file.pages[3].strips {
            damage(&mut bytes, s);
        }
        std::fs::write(&p, &bytes).unwrap();
        let file = scan(&p).unwrap();
        for _ in 0..5 {
            let mut buf = vec![0u16; 4 * h * w];
            let jobs = buf.chunks_mut(h * w).enumerate().map(|(page, d)| PageJob { page, dests: vec![d] }).collect();
            match decode_pages(&file, jobs, &|| {}, &|| false) {
                Err(DecodeError::Failed(m)) => assert!(m.starts_with("page 1, strip 1: corrupt LZW data"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        // The same file in memory (the fuzzing path), and a cancelled read.
        let mem = scan_bytes(bytes.into()).unwrap();
        let mut buf = vec![0u16; h * w];
        let r = decode_pages(&mem, vec![PageJob { page: 3, dests: vec![&mut buf[..]] }], &|| {}, &|| false);
        assert!(matches!(r, Err(DecodeError::Failed(m)) if m.starts_with("page 3, strip 0:")));
        let r = decode_pages(&mem, vec![PageJob { page: 0, dests: vec![&mut buf[..]] }], &|| {}, &|| true);
        assert!(matches!(r, Err(DecodeError::Cancelled)));
    }
}
