//! Bad input gets a clear error naming the file and the reason, before any large allocation.

use std::path::Path;

use petri_api::NodeCtx;
use petri_io::tiffwrite::{Compression, PageMeta, write_planes};
use petri_io::{LoadOptions, load_stack};

/// A minimal little-endian one-page TIFF with the given tags and `data` after the IFD.
fn tiny_tiff(
    width: u32,
    height: u32,
    bits: u16,
    format: u16,
    compression: u16,
    strip_bytes: u32,
    data: &[u8],
) -> Vec<u8> {
    let entries: Vec<(u16, u16, u32)> = vec![
        (256, 4, width),
        (257, 4, height),
        (258, 3, bits as u32),
        (259, 3, compression as u32),
        (262, 3, 1),
        (273, 4, 0), // strip offset, patched below
        (277, 3, 1),
        (278, 4, height),
        (279, 4, strip_bytes),
        (339, 3, format as u32),
    ];
    let ifd_len = 2 + entries.len() * 12 + 4;
    let data_off = (8 + ifd_len) as u32;
    let mut f = b"II*\0".to_vec();
    f.extend(8u32.to_le_bytes());
    f.extend((entries.len() as u16).to_le_bytes());
    for (tag, ty, v) in entries {
        let v = if tag == 273 { data_off } else { v };
        f.extend(tag.to_le_bytes());
        f.extend(ty.to_le_bytes());
        f.extend(1u32.to_le_bytes());
        if ty == 3 {
            f.extend((v as u16).to_le_bytes());
            f.extend([0, 0]);
        } else {
            f.extend(v.to_le_bytes());
        }
    }
    f.extend(0u32.to_le_bytes());
    f.extend(data);
    f
}

fn load_err(path: &Path) -> String {
    match load_stack(path, &LoadOptions::default(), &NodeCtx::detached()) {
        Ok(s) => panic!("{} loaded as {}", path.display(), s.describe()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tiny_files_declaring_huge_images_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.tif");
    // 100000 × 100000 u16 = 20 GB declared, 16 bytes stored.
    std::fs::write(&p, tiny_tiff(100_000, 100_000, 16, 1, 1, 16, &[0; 16])).unwrap();
    assert!(std::fs::metadata(&p).unwrap().len() < 200);
    let e = load_err(&p);
    assert!(e.contains("huge.tif") && e.contains("stores only 16 bytes"), "{e}");
    for (code, name) in [(5u16, "LZW"), (8, "Deflate"), (32773, "PackBits"), (50000, "ZSTD")] {
        std::fs::write(&p, tiny_tiff(100_000, 100_000, 16, 1, code, 16, &[0; 16])).unwrap();
        let e = load_err(&p);
        assert!(e.contains(&format!("more than {name} compression can expand to")), "{e}");
    }
    // Strip beyond the end of the file.
    std::fs::write(&p, tiny_tiff(10, 10, 8, 1, 1, 100, &[0; 50])).unwrap();
    let e = load_err(&p);
    assert!(e.contains("truncated") && e.contains("only"), "{e}");
}

#[test]
fn unsupported_codecs_and_depths_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("odd.tif");
    std::fs::write(&p, tiny_tiff(4, 4, 8, 1, 34925, 16, &[0; 16])).unwrap();
    let e = load_err(&p);
    assert!(e.contains("unsupported compression 34925 (LZMA)"), "{e}");
    std::fs::write(&p, tiny_tiff(4, 4, 8, 1, 34712, 16, &[0; 16])).unwrap();
    assert!(load_err(&p).contains("unsupported compression 34712 (JPEG 2000)"));
    std::fs::write(&p, tiny_tiff(4, 4, 64, 1, 1, 128, &[0; 128])).unwrap();
    let e = load_err(&p);
    assert!(e.contains("unsupported bit depth") && e.contains("64-bit unsigned"), "{e}");
    std::fs::write(&p, tiny_tiff(4, 4, 12, 1, 1, 24, &[0; 24])).unwrap();
    let e = load_err(&p);
    assert!(e.contains("unsupported bit depth") && e.contains("12-bit"), "{e}");
    std::fs::write(&p, tiny_tiff(4, 4, 32, 6, 1, 64, &[0; 64])).unwrap();
    assert!(load_err(&p).contains("sample format 6"));
    // A valid tiny file still loads (the helper is right).
    std::fs::write(&p, tiny_tiff(4, 4, 8, 1, 1, 16, &(0..16).collect::<Vec<u8>>())).unwrap();
    let s = load_stack(&p, &LoadOptions::default(), &NodeCtx::detached()).unwrap();
    assert_eq!(s.pixels::<u8>().unwrap()[5], 5);
}

#[test]
fn contradictory_imagej_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ij.tif");
    let planes: Vec<Vec<u16>> = (0..2).map(|i| vec![i as u16; 12]).collect();
    let refs: Vec<&[u16]> = planes.iter().map(|v| &v[..]).collect();
    let write = |desc: &str| {
        let mut f = std::fs::File::create(&p).unwrap();
        let meta = PageMeta { description: desc, pixel_size: None };
        write_planes(&mut f, &refs, 3, 4, Compression::None, &meta, &|| false).unwrap();
    };
    write("ImageJ=1.11a\nimages=5\nslices=5\n");
    let e = load_err(&p);
    assert!(e.contains("ij.tif") && e.contains("declares 5 images") && e.contains("2 pages"), "{e}");
    write("ImageJ=1.11a\nimages=4\nchannels=2\nslices=3\n");
    assert!(load_err(&p).contains("contradicts itself"));
    write("ImageJ=1.11a\nimages=2\nslices=2\nspacing=0.5\nunit=micron\n");
    let s = load_stack(&p, &LoadOptions::default(), &NodeCtx::detached()).unwrap();
    assert_eq!(s.describe(), "ZYX 2×3×4 u16");

    // ImageJ pages of different sizes.
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut enc = tiff::encoder::TiffEncoder::new(&mut buf).unwrap();
        let mut img = enc.new_image::<tiff::encoder::colortype::Gray8>(4, 3).unwrap();
        img.encoder().write_tag(tiff::tags::Tag::ImageDescription, "ImageJ=1.11a\nimages=2\nslices=2\n").unwrap();
        img.write_data(&[0u8; 12]).unwrap();
        enc.write_image::<tiff::encoder::colortype::Gray8>(2, 2, &[0u8; 4]).unwrap();
    }
    std::fs::write(&p, buf.into_inner()).unwrap();
    let e = load_err(&p);
    assert!(e.contains("page 1 is 2×2 u8 but page 0 is 3×4 u8"), "{e}");
}
