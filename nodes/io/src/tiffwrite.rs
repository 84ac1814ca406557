//! TIFF writing through the `tiff` crate's low-level directory encoder.
//!
//! The crate's `ImageEncoder` compresses strips one after another and cannot write several
//! strips of a page concurrently; here strips are compressed in parallel with rayon (with the
//! crate's own LZW/Deflate compressors and a hand-written horizontal predictor, which the crate
//! only offers through `ImageEncoder`), then written in order with `DirectoryEncoder`, which
//! also lets us put ImageJ/OME descriptions and exact resolution rationals on the pages.

use std::io::{Seek, Write};

use petri_api::Stack;
use rayon::prelude::*;
use tiff::encoder::compression::{CompressionAlgorithm, Deflate, Packbits};
use tiff::encoder::{Rational, TiffEncoder, TiffKind, TiffKindBig, TiffKindStandard};
use tiff::tags::Tag;

use crate::util::rational;

/// Compression of written TIFFs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Lzw,
    Deflate,
    PackBits,
}

impl Compression {
    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "none" => Some(Compression::None),
            "lzw" => Some(Compression::Lzw),
            "deflate" | "zlib" => Some(Compression::Deflate),
            "packbits" => Some(Compression::PackBits),
            _ => None,
        }
    }

    fn code(self) -> u16 {
        match self {
            Compression::None => 1,
            Compression::Lzw => 5,
            Compression::Deflate => 8,
            Compression::PackBits => 32773,
        }
    }

    /// Worst-case size growth, to decide on BigTIFF before writing.
    fn worst_growth(self) -> f64 {
        match self {
            Compression::None => 1.0,
            Compression::Lzw => 1.5,
            Compression::Deflate | Compression::PackBits => 1.02,
        }
    }
}

/// A pixel type that can be written: its TIFF sample format and horizontal differencing.
pub trait Sample: bytemuck::Pod + Send + Sync {
    /// TIFF SampleFormat: 1 unsigned integer, 3 IEEE float.
    const FORMAT: u16;
    /// Appends `row` with each value replaced by its difference to the previous one (TIFF
    /// predictor 2). `None` for types without a predictor (floats).
    fn difference(row: &[Self], out: &mut Vec<Self>) -> Option<()>;
}

macro_rules! int_sample {
    ($t:ty) => {
        impl Sample for $t {
            const FORMAT: u16 = 1;
            fn difference(row: &[Self], out: &mut Vec<Self>) -> Option<()> {
                // Pairwise from the untouched input: vectorises, unlike an in-place backward loop.
                out.extend(row.first());
                out.extend(row.windows(2).map(|w| w[1].wrapping_sub(w[0])));
                Some(())
            }
        }
    };
}
int_sample!(u8);
int_sample!(u16);
int_sample!(u32);
impl Sample for f32 {
    const FORMAT: u16 = 3;
    fn difference(_: &[Self], _: &mut Vec<Self>) -> Option<()> {
        None
    }
}

/// What goes on the pages besides pixels.
pub struct PageMeta<'a> {
    /// ImageDescription of the first page (ImageJ or OME-XML), ASCII.
    pub description: &'a str,
    /// Pixel size in Y and X, written as resolution = 1/size with ResolutionUnit none.
    pub pixel_size: Option<(f64, f64)>,
}

/// Writes 2-D planes (all `height × width`) as the pages of one TIFF, choosing BigTIFF when the
/// file could exceed 4 GB. `cancelled` is polled between batches of pages.
pub fn write_planes<W: Write + Seek, P: Sample>(
    w: &mut W,
    planes: &[&[P]],
    height: usize,
    width: usize,
    compression: Compression,
    meta: &PageMeta,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<(), String> {
    write_planes_as(w, planes, height, width, compression, meta, None, cancelled)
}

/// Whether a file of these planes needs BigTIFF (could exceed 4 GB with worst-case compression).
pub fn needs_bigtiff(bytes: u64, pages: usize, compression: Compression, description_len: usize) -> bool {
    let estimate = bytes as f64 * compression.worst_growth() + pages as f64 * 1024.0 + description_len as f64;
    estimate > (u32::MAX as f64) - (64 << 20) as f64
}

/// [`write_planes`] with the BigTIFF choice forced (`Some`) or automatic (`None`).
#[allow(clippy::too_many_arguments)]
pub fn write_planes_as<W: Write + Seek, P: Sample>(
    w: &mut W,
    planes: &[&[P]],
    height: usize,
    width: usize,
    compression: Compression,
    meta: &PageMeta,
    bigtiff: Option<bool>,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<(), String> {
    let bytes: u64 = planes.iter().map(|p| std::mem::size_of_val(*p) as u64).sum();
    let big = bigtiff.unwrap_or_else(|| needs_bigtiff(bytes, planes.len(), compression, meta.description.len()));
    if big {
        let mut enc = TiffEncoder::<_, TiffKindBig>::new_generic(w).map_err(|e| e.to_string())?;
        write_with(&mut enc, planes, height, width, compression, meta, cancelled)
    } else {
        let mut enc = TiffEncoder::<_, TiffKindStandard>::new_generic(w).map_err(|e| e.to_string())?;
        write_with(&mut enc, planes, height, width, compression, meta, cancelled)
    }
}

thread_local! {
    /// One LZW encoder (and its hash table) per compressing thread.
    static LZW: std::cell::RefCell<crate::lzw::LzwEncoder> = std::cell::RefCell::new(Default::default());
}

fn compress_strip<P: Sample>(strip: &[P], width: usize, compression: Compression, predict: bool) -> Vec<u8> {
    let mut owned = Vec::new();
    let mut data: &[P] = strip;
    if predict {
        owned.reserve_exact(strip.len());
        for row in strip.chunks(width) {
            P::difference(row, &mut owned);
        }
        data = &owned;
    }
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let mut out = Vec::with_capacity(bytes.len() / 2 + 64);
    // Writing into a Vec cannot fail.
    let _ = match compression {
        Compression::None => {
            out.extend_from_slice(bytes);
            Ok(0)
        }
        // The same bytes as the crate's `Lzw` (weezl), faster: see `lzw.rs`.
        Compression::Lzw => {
            LZW.with_borrow_mut(|enc| enc.encode(bytes, &mut out));
            Ok(0)
        }
        Compression::Deflate => Deflate::default().write_to(&mut out, bytes),
        Compression::PackBits => {
            // PackBits runs must not cross rows.
            let row = width * std::mem::size_of::<P>();
            for r in bytes.chunks(row) {
                let _ = Packbits.write_to(&mut out, r);
            }
            Ok(0)
        }
    };
    out
}

fn write_with<W: Write + Seek, K: TiffKind, P: Sample>(
    enc: &mut TiffEncoder<W, K>,
    planes: &[&[P]],
    height: usize,
    width: usize,
    compression: Compression,
    meta: &PageMeta,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<(), String> {
    let e = |e: tiff::TiffError| format!("TIFF write failed: {e}");
    let sz = std::mem::size_of::<P>();
    let row_bytes = width * sz;
    let page_bytes = row_bytes * height;
    let predict = compression != Compression::None && compression != Compression::PackBits && P::FORMAT == 1;
    // Uncompressed: large strips (one per page up to 256 MB). Compressed: ~256 KB strips, the
    // unit of parallel compression and what readers decode independently.
    let rows_per_strip = if compression == Compression::None {
        if page_bytes <= 256 << 20 { height } else { ((64 << 20) / row_bytes).max(1) }
    } else {
        ((256 << 10) / row_bytes.max(1)).clamp(1, height)
    };
    let strip_len = rows_per_strip * width;
    // Pages per batch: enough work for all threads, bounded memory for compressed output.
    let batch = if compression == Compression::None { 1 } else { ((128usize << 20) / page_bytes.max(1)).clamp(1, 256) };
    let (xres, yres) = match meta.pixel_size {
        Some((py, px)) => (rational(1.0 / px), rational(1.0 / py)),
        None => ((1, 1), (1, 1)),
    };
    for (b, chunk) in planes.chunks(batch).enumerate() {
        if cancelled() {
            return Err("cancelled".into());
        }
        let compressed: Vec<Vec<Vec<u8>>> = if compression == Compression::None {
            Vec::new()
        } else {
            chunk
                .par_iter()
                .map(|p| p.par_chunks(strip_len).map(|s| compress_strip(s, width, compression, predict)).collect())
                .collect()
        };
        for (i, plane) in chunk.iter().enumerate() {
            if plane.len() != width * height {
                return Err("internal error: plane size".into());
            }
            let page = b * batch + i;
            let mut dir = enc.image_directory().map_err(e)?;
            let mut offsets: Vec<u64> = Vec::new();
            let mut counts: Vec<u64> = Vec::new();
            if compression == Compression::None {
                for s in plane.chunks(strip_len) {
                    let bytes: &[u8] = bytemuck::cast_slice(s);
                    offsets.push(dir.write_data(bytes).map_err(e)?);
                    counts.push(bytes.len() as u64);
                }
            } else {
                for s in &compressed[i] {
                    offsets.push(dir.write_data(&s[..]).map_err(e)?);
                    counts.push(s.len() as u64);
                }
            }
            let conv = |v: &[u64]| -> Result<Vec<K::OffsetType>, String> {
                v.iter().map(|&x| K::convert_offset(x).map_err(e)).collect()
            };
            let (offsets, counts) = (conv(&offsets)?, conv(&counts)?);
            dir.write_tag(Tag::NewSubfileType, 0u32).map_err(e)?;
            dir.write_tag(Tag::ImageWidth, width as u32).map_err(e)?;
            dir.write_tag(Tag::ImageLength, height as u32).map_err(e)?;
            dir.write_tag(Tag::BitsPerSample, (sz * 8) as u16).map_err(e)?;
            dir.write_tag(Tag::Compression, compression.code()).map_err(e)?;
            dir.write_tag(Tag::PhotometricInterpretation, 1u16).map_err(e)?;
            if page == 0 && !meta.description.is_empty() {
                dir.write_tag(Tag::ImageDescription, meta.description).map_err(e)?;
            }
            dir.write_tag(Tag::StripOffsets, K::convert_slice(&offsets)).map_err(e)?;
            dir.write_tag(Tag::SamplesPerPixel, 1u16).map_err(e)?;
            dir.write_tag(Tag::RowsPerStrip, rows_per_strip as u32).map_err(e)?;
            dir.write_tag(Tag::StripByteCounts, K::convert_slice(&counts)).map_err(e)?;
            dir.write_tag(Tag::XResolution, Rational { n: xres.0, d: xres.1 }).map_err(e)?;
            dir.write_tag(Tag::YResolution, Rational { n: yres.0, d: yres.1 }).map_err(e)?;
            dir.write_tag(Tag::ResolutionUnit, 1u16).map_err(e)?;
            if predict {
                dir.write_tag(Tag::Predictor, 2u16).map_err(e)?;
            }
            dir.write_tag(Tag::SampleFormat, P::FORMAT).map_err(e)?;
            dir.finish().map_err(e)?;
        }
    }
    Ok(())
}

/// Planes of a stack in ImageJ's page order (T, Z, C; C fastest).
pub fn imagej_planes<P: petri_api::Pixel>(s: &Stack) -> Option<Vec<&[P]>> {
    let mut out = Vec::with_capacity(s.t() * s.z() * s.c());
    for t in 0..s.t() {
        for z in 0..s.z() {
            for c in 0..s.c() {
                out.push(s.plane::<P>(t, c, z)?);
            }
        }
    }
    Some(out)
}
