//! `io.save_tiff`: writes an image, mask or labels as an ImageJ-compatible TIFF hyperstack.

use std::path::Path;
use std::sync::Arc;

use petri_api::{
    Buffer, FileRef, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, Pixel, PortType, Stack,
    Value,
};

use crate::imagej;
use crate::ome;
use crate::tiffwrite::{self, Compression, PageMeta, Sample};
use crate::util::write_atomic;

/// What a stack holds, which decides how it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    Image,
    /// Written as u8 0/1.
    Mask,
    /// Written as u16 when every id fits, else u32.
    Labels,
}

impl StackKind {
    pub fn of(v: &Value) -> StackKind {
        match v {
            Value::Mask(_) => StackKind::Mask,
            Value::Labels(_) => StackKind::Labels,
            _ => StackKind::Image,
        }
    }
}

/// The stack as it will be stored: masks as u8 0/1, labels as u16 when they fit.
pub fn storage_stack(stack: &Stack, kind: StackKind) -> Result<Stack, String> {
    let e = |e: petri_api::StackError| e.to_string();
    match (kind, stack.buffer()) {
        (StackKind::Labels, Buffer::U32(v)) if v.iter().all(|&x| x <= u16::MAX as u32) => {
            stack.with_pixels::<u16>(v.iter().map(|&x| x as u16).collect()).map_err(e)
        }
        (StackKind::Mask, Buffer::U8(v)) if v.iter().all(|&x| x <= 1) => Ok(stack.clone()),
        (StackKind::Mask, b) => {
            stack.with_pixels::<u8>(b.to_f64_vec().iter().map(|&x| (x != 0.0) as u8).collect()).map_err(e)
        }
        _ => Ok(stack.clone()),
    }
}

/// Container flavour of a written TIFF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TiffFormat {
    /// ImageJ hyperstack (Fiji's native format).
    ImageJ,
    /// OME-TIFF (OME-XML in the first page; Bio-Formats, QuPath, napari, OMERO).
    Ome,
}

/// The OME-XML description and pixel size for a stack: planes in canonical order (XYZCT),
/// lengths in microns when the unit is known.
pub fn ome_meta(s: &Stack) -> (String, Option<(f64, f64)>) {
    let vs = s.voxel_size();
    let um = |v: f64| ome::to_micron(v, &vs.unit);
    let voxel_um = match (um(vs.z), um(vs.y), um(vs.x)) {
        (Some(z), Some(y), Some(x)) => Some([z, y, x]),
        _ => None,
    };
    let pixel_type = match s.dtype() {
        petri_api::DType::U8 => "uint8",
        petri_api::DType::U16 => "uint16",
        petri_api::DType::U32 => "uint32",
        petri_api::DType::F32 => "float",
    };
    let t_unit = match vs.t_unit.as_deref() {
        None | Some("sec") | Some("s") | Some("second") | Some("seconds") => "s",
        Some(u) => u,
    };
    let xml = ome::format(&ome::OmeOut {
        dims: s.dims(),
        pixel_type,
        voxel_um,
        time_increment: if s.t() > 1 { vs.t.map(|t| (t, t_unit)) } else { None },
        channel_names: s.channel_names(),
    });
    (xml, voxel_um.map(|[_, y, x]| (y, x)))
}

/// Smallest and largest pixel value (NaN ignored; `None` if there is none), as
/// `Stack::min_max` gives them, for the display range in the ImageJ description.
///
/// Computed in the stack's own pixel type with branch-free min/max (vectorised, 0.3 ms for 8 MB):
/// `Stack::min_max` converts every pixel to f64 and branches, which took 3 ms of an 8 MB stack's
/// 4 ms save without fsync. Parallel blocks only for large stacks: below that, waking rayon's
/// workers costs more than it saves, and on a 2-core machine they keep spinning (yielding) for a
/// few milliseconds afterwards, taking CPU from the write that follows.
pub fn value_range(s: &Stack) -> Option<(f64, f64)> {
    range_in_blocks(s, s.len() * s.dtype().size() >= 64 << 20)
}

fn range_in_blocks(s: &Stack, parallel: bool) -> Option<(f64, f64)> {
    use rayon::prelude::*;
    const BLOCK: usize = 1 << 18;
    macro_rules! int {
        ($v:expr, $t:ty) => {{
            let block = |b: &[$t]| b.iter().fold((b[0], b[0]), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            let (lo, hi) = if parallel {
                $v.par_chunks(BLOCK).map(block).reduce_with(|a, b| (a.0.min(b.0), a.1.max(b.1)))?
            } else {
                $v.chunks(BLOCK).map(block).reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))?
            };
            Some((lo as f64, hi as f64))
        }};
    }
    match s.buffer() {
        Buffer::U8(v) => int!(v, u8),
        Buffer::U16(v) => int!(v, u16),
        Buffer::U32(v) => int!(v, u32),
        Buffer::F32(v) => {
            // f32::min/max return the other operand when one is NaN, so NaN is skipped.
            let none = (f32::INFINITY, f32::NEG_INFINITY);
            let block = |b: &[f32]| b.iter().fold(none, |(lo, hi), &x| (lo.min(x), hi.max(x)));
            let both = |a: (f32, f32), b: (f32, f32)| (a.0.min(b.0), a.1.max(b.1));
            let (lo, hi) = if parallel {
                v.par_chunks(BLOCK).map(block).reduce(|| none, both)
            } else {
                v.chunks(BLOCK).map(block).fold(none, both)
            };
            (lo <= hi).then_some((lo as f64, hi as f64))
        }
    }
}

/// The ImageJ description and pixel size for a stack.
pub fn imagej_meta(s: &Stack) -> (String, Option<(f64, f64)>) {
    let vs = s.voxel_size();
    let calibrated = vs.unit != "pixel";
    let unit = calibrated.then_some(vs.unit.as_str());
    let spacing = (s.z() > 1 && (calibrated || vs.z != 1.0)).then_some(vs.z);
    let finterval = if s.t() > 1 { vs.t } else { None };
    let range = if s.c() == 1 { value_range(s) } else { None };
    let desc = imagej::format(s.c(), s.z(), s.t(), unit, spacing, finterval, range);
    (desc, calibrated.then_some((vs.y, vs.x)))
}

fn write_typed<P: Pixel + Sample>(
    s: &Stack,
    path: &Path,
    compression: Compression,
    format: TiffFormat,
    ctx: &NodeCtx,
) -> Result<(), NodeError> {
    let (planes, (desc, pixel_size)) = match format {
        TiffFormat::ImageJ => (tiffwrite::imagej_planes::<P>(s), imagej_meta(s)),
        TiffFormat::Ome => {
            // OME planes in XYZCT order = the canonical buffer, plane after plane.
            let px = s.pixels::<P>().ok_or_else(|| NodeError::failed("internal error: pixel type"))?;
            (Some(px.chunks(s.plane_len()).collect()), ome_meta(s))
        }
    };
    let planes = planes.ok_or_else(|| NodeError::failed("internal error: plane views"))?;
    let meta = PageMeta { description: &desc, pixel_size };
    write_atomic(path, |w| {
        tiffwrite::write_planes(w, &planes, s.y(), s.x(), compression, &meta, &|| ctx.is_cancelled())
    })
    .map_err(|e| if ctx.is_cancelled() { NodeError::Cancelled } else { e })
}

/// Writes `stack` to `path` as an ImageJ hyperstack TIFF (atomically: a temporary file renamed
/// into place, so a failed or cancelled write never leaves a partial file).
pub fn save_tiff(
    stack: &Stack,
    kind: StackKind,
    path: &Path,
    compression: Compression,
    ctx: &NodeCtx,
) -> Result<(), NodeError> {
    save_tiff_as(stack, kind, path, compression, TiffFormat::ImageJ, ctx)
}

/// Like [`save_tiff`], as ImageJ hyperstack or OME-TIFF.
pub fn save_tiff_as(
    stack: &Stack,
    kind: StackKind,
    path: &Path,
    compression: Compression,
    format: TiffFormat,
    ctx: &NodeCtx,
) -> Result<(), NodeError> {
    let s = storage_stack(stack, kind).map_err(|m| NodeError::io(path, m))?;
    match s.buffer() {
        Buffer::U8(_) => write_typed::<u8>(&s, path, compression, format, ctx),
        Buffer::U16(_) => write_typed::<u16>(&s, path, compression, format, ctx),
        Buffer::U32(_) => write_typed::<u32>(&s, path, compression, format, ctx),
        Buffer::F32(_) => write_typed::<f32>(&s, path, compression, format, ctx),
    }
}

pub struct SaveTiff;

impl Node for SaveTiff {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "io.save_tiff",
            1,
            "io",
            "Saves an image, mask or labels as a TIFF that Fiji/ImageJ opens with the right axes and voxel size.",
        )
        .input("stack", PortType::Stack, "The image, mask or labels to save.")
        .param(ParamSpec::output_path(
            "path",
            "output.tif",
            &["tif", "tiff"],
            "File to write. Relative paths are relative to the run's output folder; missing folders are created.",
        ))
        .param(ParamSpec::choice(
            "compression",
            &["none", "lzw", "deflate"],
            "none",
            "Lossless compression: 'none' is fastest and opens everywhere; 'lzw' and 'deflate' make smaller files \
             (deflate usually smallest).",
        ))
        .param(ParamSpec::choice(
            "format",
            &["imagej", "ome"],
            "imagej",
            "'imagej': a hyperstack Fiji opens directly with its axes and voxel size. 'ome': OME-TIFF, with axes, \
             voxel size and channel names in OME-XML, for Bio-Formats, QuPath, napari and OMERO.",
        ))
        .output("file", PortType::File, "The file written.")
    }

    fn run(&self, ctx: &NodeCtx, params: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (stack, value) = inputs.stack("stack")?;
        let format = match params.str("format")? {
            "ome" => TiffFormat::Ome,
            _ => TiffFormat::ImageJ,
        };
        let path = params.path("path")?;
        let c = params.str("compression")?;
        let compression = Compression::parse(c)
            .ok_or_else(|| NodeError::param("compression", format!("unknown compression '{c}'")))?;
        save_tiff_as(stack, StackKind::of(value), &path, compression, format, ctx)?;
        let f = FileRef::of(&path).map_err(|e| NodeError::io(&path, e))?;
        Ok(Outputs::new().with("file", Value::File(Arc::new(f))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast range equals `Stack::min_max` (the reference) for every pixel type, with NaN
    /// and infinities, across block boundaries.
    #[test]
    fn value_range_matches_min_max() {
        let n = (1 << 18) * 3 + 17;
        let f = |i: usize| ((i * 7919) % 10007) as f64;
        let mut stacks = vec![
            Stack::from_3d(1, 1, n, (0..n).map(|i| f(i) as u8).collect::<Vec<u8>>()).unwrap(),
            Stack::from_3d(1, 1, n, (0..n).map(|i| f(i) as u16 + 3).collect::<Vec<u16>>()).unwrap(),
            Stack::from_3d(1, 1, n, (0..n).map(|i| f(i) as u32 * 1000 + 5).collect::<Vec<u32>>()).unwrap(),
            Stack::from_3d(1, 1, 3, vec![7u16, 7, 7]).unwrap(),
        ];
        let mut v: Vec<f32> = (0..n).map(|i| f(i) as f32 - 5000.5).collect();
        v[3] = f32::NAN;
        v[n - 1] = f32::NAN;
        stacks.push(Stack::from_3d(1, 1, n, v.clone()).unwrap());
        v[1 << 18] = f32::INFINITY;
        v[0] = f32::NAN;
        stacks.push(Stack::from_3d(1, 1, n, v).unwrap());
        stacks.push(Stack::from_3d(1, 1, 2, vec![f32::NAN, f32::NAN]).unwrap());
        stacks.push(Stack::from_3d(1, 1, 2, vec![f32::NAN, -1.5]).unwrap());
        for s in &stacks {
            for parallel in [false, true] {
                assert_eq!(range_in_blocks(s, parallel), s.min_max(), "{} {parallel}", s.describe());
            }
        }
        assert_eq!(value_range(&stacks[1]), Some((3.0, 10006.0 + 3.0)));
    }
}
