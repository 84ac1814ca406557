//! Petri writes → tifffile reads: runs nodes/io/scripts/check_roundtrip.sh, which makes its own
//! venv with tifffile under target/ (skipped, with a message, without Python 3 or network).

mod common;

use std::path::Path;

use petri_api::{Axis, NodeCtx, Pixel, Stack, VoxelSize};
use petri_io::save_tiff::{StackKind, TiffFormat, imagej_meta, save_tiff_as, storage_stack};
use petri_io::tiffwrite::{Compression, PageMeta, imagej_planes, write_planes_as};
use serde_json::json;

fn stack(dims: [usize; 5], axes: &[Axis], voxel: VoxelSize) -> Stack {
    let n: usize = dims.iter().product();
    let data: Vec<u16> = (0..n).map(|i| (i * 37 % 65521) as u16).collect();
    Stack::new(dims, axes, u16::into_buffer(data)).unwrap().with_voxel_size(voxel)
}

fn um(z: f64, y: f64, x: f64) -> VoxelSize {
    VoxelSize { z, y, x, unit: "micron".into(), t: None, t_unit: None }
}

#[test]
fn tifffile_reads_what_petri_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ctx = NodeCtx::detached();
    let mut expected = Vec::new();
    let mut add =
        |file: &str, s: &Stack, kind: StackKind, fmt: TiffFormat, comp: Compression, axes: &str, dtype: &str| {
            save_tiff_as(s, kind, &d.join(file), comp, fmt, &ctx).unwrap();
            let stored = storage_stack(s, kind).unwrap();
            let shape: Vec<usize> =
                axes.chars().map(|c| stored.dims()[Axis::from_letter(c).unwrap().index()]).collect();
            let v = s.voxel_size();
            expected.push(json!({
                "file": file, "format": if fmt == TiffFormat::Ome { "ome" } else { "imagej" }, "bigtiff": false,
                "axes": axes, "shape": shape, "dtype": dtype, "sha256": common::sha256(&stored),
                "voxel_zyx": [v.z, v.y, v.x], "unit": v.unit, "finterval": v.t, "channels": s.channel_names(),
            }));
        };
    let mut hyper = stack([2, 3, 4, 5, 6], &[Axis::T, Axis::C, Axis::Z], um(0.5, 0.26, 0.13));
    let mut v = hyper.voxel_size().clone();
    v.t = Some(2.5);
    hyper = hyper.with_voxel_size(v);
    add("ij_tzcyx.tif", &hyper, StackKind::Image, TiffFormat::ImageJ, Compression::Deflate, "TZCYX", "uint16");
    let named = hyper.clone().with_channel_names(vec!["DAPI".into(), "GFP".into(), "RFP".into()]).unwrap();
    add("ome_tczyx.ome.tif", &named, StackKind::Image, TiffFormat::Ome, Compression::Lzw, "TCZYX", "uint16");
    let sample =
        petri_io::load_stack(&petri_testkit::sample("nuclei3d_synthetic.tif"), &Default::default(), &ctx).unwrap();
    let calibrated = sample.clone().with_voxel_size(um(2.0, 0.3, 0.3));
    add("ij_zyx.tif", &calibrated, StackKind::Image, TiffFormat::ImageJ, Compression::None, "ZYX", "uint16");
    add("ome_zyx.tif", &calibrated, StackKind::Image, TiffFormat::Ome, Compression::None, "ZYX", "uint16");
    let f32s =
        sample.with_pixels::<f32>(sample.buffer().to_f64_vec().iter().map(|&x| x as f32 / 7.0).collect()).unwrap();
    add("ij_f32_lzw.tif", &f32s, StackKind::Image, TiffFormat::ImageJ, Compression::Lzw, "ZYX", "float32");
    let labels =
        petri_io::load_labels(&petri_testkit::sample("nuclei2d_labels.tif"), &Default::default(), &ctx).unwrap();
    add("ij_labels.tif", &labels, StackKind::Labels, TiffFormat::ImageJ, Compression::Deflate, "YX", "uint16");
    let mask = Stack::from_2d(3, 4, vec![0u8, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0]).unwrap();
    add("ij_mask.tif", &mask, StackKind::Mask, TiffFormat::ImageJ, Compression::None, "YX", "uint8");
    // BigTIFF (forced: the automatic switch happens above 4 GB).
    let planes = imagej_planes::<u16>(&hyper).unwrap();
    let (desc, px) = imagej_meta(&hyper);
    let mut f = std::fs::File::create(d.join("ij_big.tif")).unwrap();
    let meta = PageMeta { description: &desc, pixel_size: px };
    write_planes_as(&mut f, &planes, 5, 6, Compression::Lzw, &meta, Some(true), &|| false).unwrap();
    let mut e = expected[0].clone();
    e["file"] = json!("ij_big.tif");
    e["bigtiff"] = json!(true);
    expected.push(e);
    // Petri reads its own BigTIFF back too.
    let back = petri_io::load_stack(&d.join("ij_big.tif"), &Default::default(), &ctx).unwrap();
    assert_eq!(back.pixels::<u16>(), hyper.pixels::<u16>());

    std::fs::write(d.join("expected.json"), serde_json::to_string_pretty(&expected).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_roundtrip.sh");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("io-tifffile-venv");
    let out = std::process::Command::new("bash").arg(&script).arg(d).arg(&venv).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.code() {
        Some(0) => eprintln!("{text}"),
        Some(77) => eprintln!("SKIPPED tifffile_reads_what_petri_writes: {text}"),
        _ => panic!("tifffile disagrees with what Petri wrote:\n{text}"),
    }
}
