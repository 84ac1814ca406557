//! Write → read round trips, labels, folders, errors and the node adapters.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use petri_api::{Axis, ColumnData, Inputs, NodeCtx, ParamValue, Params, Registry, Stack, Table, Value, VoxelSize};
use petri_io::{Compression, LoadOptions, StackKind, load_labels, load_stack, save_tiff};

fn ctx() -> NodeCtx {
    NodeCtx::detached()
}

fn opts() -> LoadOptions {
    LoadOptions::default()
}

/// A T=2, C=3, Z=4 stack of 5×6 u16 with distinct values and a calibration.
fn hyperstack() -> Stack {
    let data: Vec<u16> = (0..2 * 3 * 4 * 5 * 6).map(|i| (i * 7 % 65536) as u16).collect();
    let s = Stack::new([2, 3, 4, 5, 6], &[Axis::T, Axis::C, Axis::Z], petri_api::Pixel::into_buffer(data)).unwrap();
    s.with_voxel_size(VoxelSize {
        z: 0.5,
        y: 0.26,
        x: 0.13,
        unit: "micron".into(),
        t: Some(2.5),
        t_unit: Some("sec".into()),
    })
}

#[test]
fn hyperstack_round_trips_with_every_compression() {
    let dir = tempfile::tempdir().unwrap();
    let s = hyperstack();
    for c in [Compression::None, Compression::Lzw, Compression::Deflate, Compression::PackBits] {
        let p = dir.path().join(format!("h_{c:?}.tif"));
        save_tiff(&s, StackKind::Image, &p, c, &ctx()).unwrap();
        let r = load_stack(&p, &opts(), &ctx()).unwrap();
        assert_eq!(r.axes_string(), "TCZYX");
        assert_eq!(r.dims(), s.dims());
        assert_eq!(r.pixels::<u16>().unwrap(), s.pixels::<u16>().unwrap(), "{c:?}");
        let v = r.voxel_size();
        assert_eq!((v.z, v.y, v.x, v.unit.as_str()), (0.5, 0.26, 0.13, "micron"));
        assert_eq!(v.t, Some(2.5));
    }
}

#[test]
fn ome_tiff_round_trips_with_names_and_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let s = hyperstack().with_channel_names(vec!["DAPI".into(), "GFP µ".into(), "a&b".into()]).unwrap();
    for c in [Compression::None, Compression::Deflate] {
        let p = dir.path().join("h.ome.tif");
        petri_io::save_tiff_as(&s, StackKind::Image, &p, c, petri_io::TiffFormat::Ome, &ctx()).unwrap();
        let r = load_stack(&p, &opts(), &ctx()).unwrap();
        assert_eq!(r.axes_string(), "TCZYX");
        assert_eq!(r.pixels::<u16>().unwrap(), s.pixels::<u16>().unwrap());
        assert_eq!(r.channel_names(), s.channel_names());
        let v = r.voxel_size();
        assert_eq!((v.z, v.y, v.x, v.unit.as_str(), v.t), (0.5, 0.26, 0.13, "micron", Some(2.5)));
    }
}

#[test]
fn samples_round_trip_in_every_type() {
    let dir = tempfile::tempdir().unwrap();
    let src = load_stack(&petri_testkit::sample("nuclei3d_synthetic.tif"), &opts(), &ctx()).unwrap();
    let f: Vec<f32> = src.buffer().to_f64_vec().iter().map(|&v| v as f32 * 0.5 - 3.0).collect();
    let u8s: Vec<u8> = src.buffer().to_f64_vec().iter().map(|&v| (v as u32 % 256) as u8).collect();
    let u32s: Vec<u32> = src.buffer().to_f64_vec().iter().map(|&v| v as u32 * 70_000).collect();
    for (i, s) in
        [src.clone(), src.with_pixels(f).unwrap(), src.with_pixels(u8s).unwrap(), src.with_pixels(u32s).unwrap()]
            .into_iter()
            .enumerate()
    {
        for c in [Compression::None, Compression::Lzw] {
            let p = dir.path().join(format!("s{i}.tif"));
            save_tiff(&s, StackKind::Image, &p, c, &ctx()).unwrap();
            let r = load_stack(&p, &opts(), &ctx()).unwrap();
            assert_eq!(r.describe(), s.describe());
            assert_eq!(common::sha256(&r), common::sha256(&s), "type {} {c:?}", s.dtype());
        }
    }
}

#[test]
fn labels_are_stored_small_and_read_as_u32() {
    let dir = tempfile::tempdir().unwrap();
    let l = load_labels(&petri_testkit::sample("nuclei2d_labels.tif"), &opts(), &ctx()).unwrap();
    assert_eq!(l.dtype(), petri_api::DType::U32);
    let p = dir.path().join("l.tif");
    save_tiff(&l, StackKind::Labels, &p, Compression::Deflate, &ctx()).unwrap();
    let (shape, _) = petri_testkit::read_tiff_f64(&p);
    assert_eq!(shape, vec![1, 512, 512]);
    let raw = load_stack(&p, &opts(), &ctx()).unwrap();
    assert_eq!(raw.dtype(), petri_api::DType::U16, "labels that fit are written as u16");
    let back = load_labels(&p, &opts(), &ctx()).unwrap();
    assert_eq!(back.pixels::<u32>(), l.pixels::<u32>());
    // Large ids stay u32.
    let big = l.with_pixels::<u32>(l.pixels::<u32>().unwrap().iter().map(|&v| v * 1000).collect()).unwrap();
    save_tiff(&big, StackKind::Labels, &p, Compression::None, &ctx()).unwrap();
    assert_eq!(load_stack(&p, &opts(), &ctx()).unwrap().dtype(), petri_api::DType::U32);
    assert_eq!(load_labels(&p, &opts(), &ctx()).unwrap().pixels::<u32>(), big.pixels::<u32>());
}

#[test]
fn float_images_are_refused_as_labels() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.tif");
    let s = Stack::from_2d(2, 2, vec![0.0f32, 1.0, 2.5, 3.0]).unwrap();
    save_tiff(&s, StackKind::Image, &p, Compression::None, &ctx()).unwrap();
    let e = load_labels(&p, &opts(), &ctx()).unwrap_err().to_string();
    assert!(e.contains("whole numbers") && e.contains("f.tif"), "{e}");
    let s = Stack::from_2d(2, 2, vec![0.0f32, -1.0, 2.0, 3.0]).unwrap();
    save_tiff(&s, StackKind::Image, &p, Compression::None, &ctx()).unwrap();
    let e = load_labels(&p, &opts(), &ctx()).unwrap_err().to_string();
    assert!(e.contains("negative"), "{e}");
    let s = Stack::from_2d(2, 2, vec![0.0f32, 1.0, 2.0, 3.0]).unwrap();
    save_tiff(&s, StackKind::Image, &p, Compression::None, &ctx()).unwrap();
    assert_eq!(load_labels(&p, &opts(), &ctx()).unwrap().pixels::<u32>().unwrap(), &[0, 1, 2, 3]);
}

#[test]
fn masks_are_written_as_zero_one_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.tif");
    let s = Stack::from_2d(1, 4, vec![0u8, 1, 0, 1]).unwrap();
    save_tiff(&s, StackKind::Mask, &p, Compression::Lzw, &ctx()).unwrap();
    let r = load_stack(&p, &opts(), &ctx()).unwrap();
    assert_eq!(r.pixels::<u8>().unwrap(), &[0, 1, 0, 1]);
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = load_stack(&d.join("nope.tif"), &opts(), &ctx()).unwrap_err().to_string();
    assert!(e.contains("nope.tif") && e.contains("no such file"), "{e}");
    std::fs::write(d.join("empty.tif"), b"").unwrap();
    let e = load_stack(&d.join("empty.tif"), &opts(), &ctx()).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    std::fs::write(d.join("text.tif"), b"hello world, not an image").unwrap();
    let e = load_stack(&d.join("text.tif"), &opts(), &ctx()).unwrap_err().to_string();
    assert!(e.contains("not a TIFF") && e.contains("magic"), "{e}");
    std::fs::write(d.join("text.xyz"), b"hello world, not an image").unwrap();
    let e = load_stack(&d.join("text.xyz"), &opts(), &ctx()).unwrap_err().to_string();
    assert!(e.contains("unsupported file format"), "{e}");
    // Truncated at several places: never a panic, always a message naming the file.
    let full = std::fs::read(petri_testkit::sample("nuclei3d_synthetic.tif")).unwrap();
    // (215000 falls inside the last page's pixels.)
    for cut in [4usize, 8, 100, 1000, full.len() / 2, 215_000] {
        std::fs::write(d.join("cut.tif"), &full[..cut]).unwrap();
        let e = match load_stack(&d.join("cut.tif"), &opts(), &ctx()) {
            Ok(s) => panic!("cut at {cut}: loaded {}", s.describe()),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("cut.tif"), "{cut}: {e}");
        assert!(e.contains("truncated") || e.contains("corrupt"), "{cut}: {e}");
    }
    // An empty folder and a folder without images.
    std::fs::create_dir(d.join("none")).unwrap();
    let e = load_stack(&d.join("none"), &opts(), &ctx()).unwrap_err().to_string();
    assert!(e.contains("no image files"), "{e}");
}

#[test]
fn folders_stack_in_natural_order_and_refuse_mixed_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("f");
    for i in [1u8, 2, 10] {
        let s = Stack::from_2d(2, 3, vec![i; 6]).unwrap();
        save_tiff(&s, StackKind::Image, &d.join(format!("img{i}.tif")), Compression::None, &ctx()).unwrap();
    }
    std::fs::write(d.join("notes.txt"), b"ignored").unwrap();
    let s = load_stack(&d, &opts(), &ctx()).unwrap();
    assert_eq!(s.axes_string(), "ZYX");
    assert_eq!(s.zyx(), [3, 2, 3]);
    assert_eq!(s.plane::<u8>(0, 0, 2).unwrap()[0], 10);
    let o = LoadOptions { axes: "TYX".into(), ..opts() };
    let t = load_stack(&d, &o, &ctx()).unwrap();
    assert_eq!(t.axes_string(), "TYX");
    assert_eq!(t.t(), 3);
    let o = LoadOptions { pattern: "img1*.tif".into(), ..opts() };
    assert_eq!(load_stack(&d, &o, &ctx()).unwrap().z(), 2);
    let o = LoadOptions { pattern: "zzz*".into(), ..opts() };
    assert!(load_stack(&d, &o, &ctx()).unwrap_err().to_string().contains("zzz*"));
    let s = Stack::from_2d(3, 3, vec![0u8; 9]).unwrap();
    save_tiff(&s, StackKind::Image, &d.join("img3.tif"), Compression::None, &ctx()).unwrap();
    let e = load_stack(&d, &opts(), &ctx()).unwrap_err().to_string();
    assert!(e.contains("img3.tif") && e.contains("same shape"), "{e}");
}

#[test]
fn axes_and_voxel_overrides() {
    let p = petri_testkit::sample("nuclei3d_synthetic.tif");
    let o = LoadOptions { axes: "TYX".into(), voxel_size: Some(vec![0.2, 0.1]), ..opts() };
    let s = load_stack(&p, &o, &ctx()).unwrap();
    assert_eq!(s.axes_string(), "TYX");
    assert_eq!(s.t(), 31);
    assert_eq!((s.voxel_size().y, s.voxel_size().x, s.voxel_size().unit.as_str()), (0.2, 0.1, "micron"));
    let o = LoadOptions { axes: "TZYX".into(), ..opts() };
    let e = load_stack(&p, &o, &ctx()).unwrap_err().to_string();
    assert!(e.contains("axes") && e.contains("ZYX 31×61×57"), "{e}");
    let o = LoadOptions { series: 1, ..opts() };
    assert!(load_stack(&p, &o, &ctx()).unwrap_err().to_string().contains("series 1"));
}

fn params(kv: &[(&str, ParamValue)]) -> Params {
    let mut reg = Registry::new();
    petri_io::register(&mut reg).unwrap();
    let _ = reg;
    Params::new(kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>())
}

#[test]
fn nodes_run_and_fingerprint() {
    let mut reg = Registry::new();
    petri_io::register(&mut reg).unwrap();
    assert_eq!(reg.len(), 6);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.tif");
    std::fs::copy(petri_testkit::sample("nuclei2d.tif"), &src).unwrap();
    let load = reg.get("io.load_stack").unwrap();
    let p = params(&[
        ("path", ParamValue::Str(src.to_string_lossy().into())),
        ("pattern", ParamValue::Str("*".into())),
        ("series", ParamValue::Int(0)),
        ("axes", ParamValue::Str("".into())),
        ("voxel_size", ParamValue::Null),
    ]);
    let out = load.node.run(&ctx(), &p, &Inputs::default()).unwrap();
    let img = out.get("image").unwrap().clone();
    assert_eq!(img.summary(), "image YX 512×512 u16");
    let fp1 = load.node.fingerprint(&p).unwrap().unwrap();
    assert_eq!(fp1, load.node.fingerprint(&p).unwrap().unwrap());
    let mut bytes = std::fs::read(&src).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&src, &bytes).unwrap();
    assert_ne!(fp1, load.node.fingerprint(&p).unwrap().unwrap(), "editing a pixel changes the fingerprint");

    let save = reg.get("io.save_tiff").unwrap();
    let out_path = dir.path().join("deep/out.tif");
    let p = params(&[
        ("path", ParamValue::Str(out_path.to_string_lossy().into())),
        ("compression", ParamValue::Str("lzw".into())),
        ("format", ParamValue::Str("imagej".into())),
    ]);
    let inputs = Inputs::new([("stack".to_string(), img)].into_iter().collect());
    let out = save.node.run(&ctx(), &p, &inputs).unwrap();
    match out.get("file").unwrap() {
        Value::File(f) => {
            assert_eq!(f.path, out_path);
            assert!(f.is_intact());
        }
        v => panic!("{}", v.summary()),
    }
    let back = load_stack(&out_path, &opts(), &ctx()).unwrap();
    assert_eq!(back.describe(), "YX 512×512 u16");

    let table = Table::new().with("id", ColumnData::I64(vec![1, 2])).unwrap();
    let save = reg.get("io.save_table").unwrap();
    let csv_path = dir.path().join("t.csv");
    let p = params(&[("path", ParamValue::Str(csv_path.to_string_lossy().into()))]);
    let inputs = Inputs::new([("table".to_string(), Value::Table(Arc::new(table)))].into_iter().collect());
    save.node.run(&ctx(), &p, &inputs).unwrap();
    assert_eq!(std::fs::read_to_string(&csv_path).unwrap(), "id\n1\n2\n");
}
