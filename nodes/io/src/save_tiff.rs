//! `io.save_tiff`: writes an image, mask or labels as an ImageJ-compatible TIFF hyperstack.

use std::path::Path;
use std::sync::Arc;

use petri_api::{
    Buffer, FileRef, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, Pixel, PortType, Stack,
    Value,
};

use crate::imagej;
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

/// The ImageJ description and pixel size for a stack.
pub fn imagej_meta(s: &Stack) -> (String, Option<(f64, f64)>) {
    let vs = s.voxel_size();
    let calibrated = vs.unit != "pixel";
    let unit = calibrated.then_some(vs.unit.as_str());
    let spacing = (s.z() > 1 && (calibrated || vs.z != 1.0)).then_some(vs.z);
    let finterval = if s.t() > 1 { vs.t } else { None };
    let range = if s.c() == 1 { s.min_max() } else { None };
    let desc = imagej::format(s.c(), s.z(), s.t(), unit, spacing, finterval, range);
    (desc, calibrated.then_some((vs.y, vs.x)))
}

fn write_typed<P: Pixel + Sample>(
    s: &Stack,
    path: &Path,
    compression: Compression,
    ctx: &NodeCtx,
) -> Result<(), NodeError> {
    let planes = tiffwrite::imagej_planes::<P>(s).ok_or_else(|| NodeError::failed("internal error: plane views"))?;
    let (desc, pixel_size) = imagej_meta(s);
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
    let s = storage_stack(stack, kind).map_err(|m| NodeError::io(path, m))?;
    match s.buffer() {
        Buffer::U8(_) => write_typed::<u8>(&s, path, compression, ctx),
        Buffer::U16(_) => write_typed::<u16>(&s, path, compression, ctx),
        Buffer::U32(_) => write_typed::<u32>(&s, path, compression, ctx),
        Buffer::F32(_) => write_typed::<f32>(&s, path, compression, ctx),
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
        .output("file", PortType::File, "The file written.")
    }

    fn run(&self, ctx: &NodeCtx, params: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (stack, value) = inputs.stack("stack")?;
        let path = params.path("path")?;
        let c = params.str("compression")?;
        let compression = Compression::parse(c)
            .ok_or_else(|| NodeError::param("compression", format!("unknown compression '{c}'")))?;
        save_tiff(stack, StackKind::of(value), &path, compression, ctx)?;
        let f = FileRef::of(&path).map_err(|e| NodeError::io(&path, e))?;
        Ok(Outputs::new().with("file", Value::File(Arc::new(f))))
    }
}
