//! TIFF reading on top of the `tiff` crate's decoder.
//!
//! Two passes: [`scan`] walks every IFD and checks each page's declared size against the file
//! (strip/tile ranges inside the file, decoded size within what the codec can possibly expand
//! to) *before* anything is allocated; [`decode_pages`] then decodes each page straight into
//! its destination planes of the final stack buffer, several pages at once with rayon (each
//! worker has its own file handle and decoder), converting sample types only when needed.
//!
//! The `tiff` crate does the codecs, predictors, byte order, strips/tiles, planar
//! configuration and MinIsWhite inversion. What is hand-written here is what it does not do:
//! size checks against the file length, per-page parallelism, typed destination buffers, and
//! unpacking of 1/2/4-bit samples. A few internal `assert!`s of the crate can fire on
//! malformed files; calls into it are guarded with `catch_unwind` so a corrupt file gives an
//! error, never a crash.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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
            Box::new(BufReader::with_capacity(1 << 16, f))
        }
        TiffSource::Memory(b) => Box::new(Cursor::new(b.clone())),
    };
    let dec = guarded(|| Decoder::new(r))?;
    Ok(dec.with_limits(limits_for(file_len)))
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
    let info = PageInfo {
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

/// Decodes the given pages into their destinations, in parallel over contiguous groups of pages.
/// `done(n)` is called after each page; `cancelled()` is polled between pages.
pub fn decode_pages<P: Pixel + bytemuck::Pod>(
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
