//! `io.save_png`: writes a 2-D image, mask or labels as an 8- or 16-bit PNG.

use std::path::Path;
use std::sync::Arc;

use image::ImageEncoder;
use petri_api::{
    Buffer, FileRef, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value,
};

use crate::save_tiff::StackKind;
use crate::util::write_atomic;

/// Writes a 2-D stack (one Z plane, one time point; 1 channel = gray, 3 channels = RGB) as PNG.
/// u8 → 8-bit, u16 → 16-bit; labels → 16-bit when every id fits; masks → 8-bit 0/255 (so the
/// file is visible in any viewer). Float images and larger labels are refused: PNG holds only
/// 8/16-bit integers.
pub fn save_png(stack: &Stack, kind: StackKind, path: &Path) -> Result<(), NodeError> {
    let err = |m: String| NodeError::io(path, m);
    if stack.z() != 1 || stack.t() != 1 || !(stack.c() == 1 || stack.c() == 3) {
        return Err(err(format!(
            "PNG holds one 2-D plane (gray, or 3 channels as RGB); this is {} — save it as TIFF, or take a slice first",
            stack.describe()
        )));
    }
    let (h, w, c) = (stack.y(), stack.x(), stack.c());
    let n = h * w;
    // Interleave channels (PNG stores RGBRGB...).
    fn interleave<T: Copy>(v: &[T], c: usize, n: usize) -> Vec<T> {
        (0..n * c).map(|i| v[(i % c) * n + i / c]).collect()
    }
    let (bytes, color): (Vec<u8>, image::ExtendedColorType) = match (kind, stack.buffer()) {
        (StackKind::Mask, b) => {
            let v: Vec<u8> = b.to_f64_vec().iter().map(|&x| if x != 0.0 { 255 } else { 0 }).collect();
            (interleave(&v, c, n), if c == 1 { image::ExtendedColorType::L8 } else { image::ExtendedColorType::Rgb8 })
        }
        (_, Buffer::U8(v)) => {
            (interleave(v, c, n), if c == 1 { image::ExtendedColorType::L8 } else { image::ExtendedColorType::Rgb8 })
        }
        (_, Buffer::U16(v)) => {
            let il = interleave(v, c, n);
            (
                bytemuck::cast_slice(&il).to_vec(),
                if c == 1 { image::ExtendedColorType::L16 } else { image::ExtendedColorType::Rgb16 },
            )
        }
        (_, Buffer::U32(v)) => {
            if let Some(&m) = v.iter().find(|&&x| x > u16::MAX as u32) {
                return Err(err(format!("holds the value {m}, more than a 16-bit PNG can store; save it as TIFF")));
            }
            let il: Vec<u16> = interleave(v, c, n).into_iter().map(|x| x as u16).collect();
            (
                bytemuck::cast_slice(&il).to_vec(),
                if c == 1 { image::ExtendedColorType::L16 } else { image::ExtendedColorType::Rgb16 },
            )
        }
        (_, Buffer::F32(_)) => {
            return Err(err(
                "is a floating-point image; PNG holds only 8/16-bit integers (convert first, or save as TIFF)".into(),
            ));
        }
    };
    write_atomic(path, |wr| {
        image::codecs::png::PngEncoder::new(wr)
            .write_image(&bytes, w as u32, h as u32, color)
            .map_err(|e| format!("PNG encoding failed: {e}"))
    })
}

pub struct SavePng;

impl Node for SavePng {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "io.save_png",
            1,
            "io",
            "Saves a 2-D image, mask or labels as a PNG (8 or 16-bit) for slides, reports and the web.",
        )
        .input("stack", PortType::Stack, "A 2-D image (gray, or 3 channels as RGB), mask or labels.")
        .param(ParamSpec::output_path(
            "path",
            "output.png",
            &["png"],
            "PNG file to write. Relative paths are relative to the run's output folder. Masks are written as 0/255.",
        ))
        .output("file", PortType::File, "The file written.")
    }

    fn run(&self, _ctx: &NodeCtx, params: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (stack, value) = inputs.stack("stack")?;
        let path = params.path("path")?;
        save_png(stack, StackKind::of(value), &path)?;
        let f = FileRef::of(&path).map_err(|e| NodeError::io(&path, e))?;
        Ok(Outputs::new().with("file", Value::File(Arc::new(f))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadOptions, load_stack};

    #[test]
    fn png_round_trips_8_16_bit_and_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        let ctx = NodeCtx::detached();
        let s = Stack::from_2d(2, 3, vec![0u16, 1, 300, 65535, 7, 40000]).unwrap();
        save_png(&s, StackKind::Image, &p).unwrap();
        let r = load_stack(&p, &LoadOptions::default(), &ctx).unwrap();
        assert_eq!(r.describe(), "YX 2×3 u16");
        assert_eq!(r.pixels::<u16>(), s.pixels::<u16>());
        let rgb = Stack::new(
            [1, 3, 1, 2, 2],
            &[petri_api::Axis::C],
            petri_api::Pixel::into_buffer((0u8..12).collect::<Vec<_>>()),
        )
        .unwrap();
        save_png(&rgb, StackKind::Image, &p).unwrap();
        let r = load_stack(&p, &LoadOptions::default(), &ctx).unwrap();
        assert_eq!(r.describe(), "CYX 3×2×2 u8");
        assert_eq!(r.pixels::<u8>(), rgb.pixels::<u8>());
        let m = Stack::from_2d(1, 2, vec![0u8, 1]).unwrap();
        save_png(&m, StackKind::Mask, &p).unwrap();
        assert_eq!(load_stack(&p, &LoadOptions::default(), &ctx).unwrap().pixels::<u8>().unwrap(), &[0, 255]);
        let l = Stack::from_2d(1, 2, vec![0u32, 70000]).unwrap();
        assert!(save_png(&l, StackKind::Labels, &p).unwrap_err().to_string().contains("70000"));
        let f = Stack::from_2d(1, 2, vec![0.5f32, 1.0]).unwrap();
        assert!(save_png(&f, StackKind::Image, &p).unwrap_err().to_string().contains("floating-point"));
        let z = Stack::from_3d(2, 1, 2, vec![0u8; 4]).unwrap();
        assert!(save_png(&z, StackKind::Image, &p).unwrap_err().to_string().contains("2-D"));
    }
}
