//! PNG, JPEG and BMP through the `image` crate. Gray stays one channel; RGB becomes three
//! channels (alpha is dropped); 8- and 16-bit keep their type, float images become f32.

use std::path::Path;

use petri_api::{DType, NodeError, Pixel, Stack, VoxelSize};

use crate::layout::Series;

/// Splits interleaved samples into channel planes, keeping the first `keep` of `spp` samples.
fn planes<P: Copy + Default>(src: &[P], spp: usize, keep: usize) -> Vec<P> {
    let n = src.len() / spp;
    let mut out = vec![P::default(); n * keep];
    for c in 0..keep {
        for (o, px) in out[c * n..(c + 1) * n].iter_mut().zip(src.chunks_exact(spp)) {
            *o = px[c];
        }
    }
    out
}

/// Loads a PNG, JPEG or BMP file.
pub fn load_raster(path: &Path, series: usize, axes: &str) -> Result<Stack, NodeError> {
    if series != 0 {
        return Err(NodeError::param(
            "series",
            format!("a PNG/JPEG/BMP file holds a single image; series {series} does not exist"),
        ));
    }
    let err = |m: String| NodeError::io(path, m);
    let mut reader = image::ImageReader::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
    reader = reader.with_guessed_format().map_err(|e| err(format!("cannot read: {e}")))?;
    // The crate's default limits (512 MiB per allocation) refuse absurd declared sizes before
    // allocating.
    reader.limits(image::Limits::default());
    let img = reader.decode().map_err(|e| err(format!("cannot decode: {e}")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    use image::DynamicImage as D;
    let (c, buf) = match img {
        D::ImageLuma8(b) => (1, u8::into_buffer(b.into_raw())),
        D::ImageLumaA8(b) => (1, u8::into_buffer(planes(b.as_raw(), 2, 1))),
        D::ImageRgb8(b) => (3, u8::into_buffer(planes(b.as_raw(), 3, 3))),
        D::ImageRgba8(b) => (3, u8::into_buffer(planes(b.as_raw(), 4, 3))),
        D::ImageLuma16(b) => (1, u16::into_buffer(b.into_raw())),
        D::ImageLumaA16(b) => (1, u16::into_buffer(planes(b.as_raw(), 2, 1))),
        D::ImageRgb16(b) => (3, u16::into_buffer(planes(b.as_raw(), 3, 3))),
        D::ImageRgba16(b) => (3, u16::into_buffer(planes(b.as_raw(), 4, 3))),
        D::ImageRgb32F(b) => (3, f32::into_buffer(planes(b.as_raw(), 3, 3))),
        D::ImageRgba32F(b) => (3, f32::into_buffer(planes(b.as_raw(), 4, 3))),
        other => {
            let b = other.to_rgb8();
            (3, u8::into_buffer(planes(b.as_raw(), 3, 3)))
        }
    };
    // The axes override works as for a one-page TIFF (only size-1 axes can be declared).
    let mut s = Series {
        pages: vec![0],
        page_axes: vec![],
        samples: c,
        height: h,
        width: w,
        dtype: DType::U8,
        voxel: VoxelSize::default(),
        channel_names: vec![],
        declared: vec![],
    };
    s.relabel(axes).map_err(|m| NodeError::param("axes", m))?;
    let plan = s.plan().map_err(err)?;
    Stack::new(plan.dims, &plan.axes, buf).map_err(|e| err(e.to_string()))
}
