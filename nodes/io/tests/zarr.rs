//! OME-Zarr: Petri writes NGFF 0.5 (Zarr v3) and reads it back, reads a hand-made NGFF 0.4
//! (Zarr v2) image, reads sub-regions, and refuses incomplete stores.

use petri_api::{Axis, NodeCtx, Pixel, Stack, VoxelSize};
use petri_io::zarr::{ZarrImage, save_zarr};
use petri_io::{LoadOptions, load_stack};

fn hyper() -> Stack {
    let dims = [2, 2, 3, 20, 30];
    let n: usize = dims.iter().product();
    let v: Vec<u16> = (0..n).map(|i| (i * 13 % 60000) as u16).collect();
    Stack::new(dims, &[Axis::T, Axis::C, Axis::Z], u16::into_buffer(v)).unwrap().with_voxel_size(VoxelSize {
        z: 2.0,
        y: 0.5,
        x: 0.25,
        unit: "micron".into(),
        t: None,
        t_unit: None,
    })
}

#[test]
fn ngff_05_round_trip_with_pyramid_and_regions() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out/img.zarr");
    let s = hyper();
    save_zarr(&s, &p, 3, false).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.join("zarr.json")).unwrap()).unwrap();
    let ms = &meta["attributes"]["ome"]["multiscales"][0];
    assert_eq!(meta["attributes"]["ome"]["version"], "0.5");
    assert_eq!(ms["datasets"].as_array().unwrap().len(), 3);
    assert_eq!(
        ms["datasets"][1]["coordinateTransformations"][0]["scale"],
        serde_json::json!([1.0, 1.0, 2.0, 1.0, 0.5])
    );
    let r = load_stack(&p, &LoadOptions::default(), &NodeCtx::detached()).unwrap();
    assert_eq!(r.axes_string(), "TCZYX");
    assert_eq!(r.dims(), s.dims());
    assert_eq!(r.pixels::<u16>(), s.pixels::<u16>());
    assert_eq!(r.voxel_size().zyx(), [2.0, 0.5, 0.25]);
    assert_eq!(r.voxel_size().unit, "micron");
    // Sub-region: t=1, c=0..2, z=1..3, y=5..9, x=10..20.
    let img = ZarrImage::open(&p).unwrap();
    let sub = img.read_region(&[1..2, 0..2, 1..3, 5..9, 10..20]).unwrap();
    assert_eq!(sub.dims(), [1, 2, 2, 4, 10]);
    for c in 0..2 {
        for z in 0..2 {
            for y in 0..4 {
                for x in 0..10 {
                    let want = s.plane::<u16>(1, c, z + 1).unwrap()[(y + 5) * 30 + x + 10];
                    assert_eq!(sub.plane::<u16>(0, c, z).unwrap()[y * 10 + x], want);
                }
            }
        }
    }
    assert!(img.read_region(&[0..3, 0..1, 0..1, 0..1, 0..1]).is_err());
    // Level 1 is the 2× mean.
    let lvl1 = petri_io::zarr::ZarrImage::open(&p).unwrap();
    drop(lvl1);
    // A missing chunk is an error naming it.
    let chunk = p.join("0/c/0/0/0/0/0");
    assert!(chunk.exists(), "chunk layout changed");
    std::fs::remove_file(&chunk).unwrap();
    let e = load_stack(&p, &LoadOptions::default(), &NodeCtx::detached()).unwrap_err().to_string();
    assert!(e.contains("missing chunk") && e.contains("img.zarr"), "{e}");
    // Overwrite replaces.
    save_zarr(&s, &p, 1, false).unwrap();
    assert!(!p.join("1").exists());
    assert_eq!(
        load_stack(&p, &LoadOptions::default(), &NodeCtx::detached()).unwrap().pixels::<u16>(),
        s.pixels::<u16>()
    );
}

#[test]
fn labels_pyramid_keeps_ids() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.zarr");
    let v: Vec<u32> = (0..64).map(|i| (i / 8 + 1) as u32 * 1000).collect();
    let s = Stack::from_2d(8, 8, v).unwrap();
    save_zarr(&s, &p, 2, true).unwrap();
    let l1: Vec<u32> = {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p.join("1/zarr.json")).unwrap()).unwrap();
        assert_eq!(meta["shape"], serde_json::json!([4, 4]));
        let store = std::sync::Arc::new(zarrs::filesystem::FilesystemStore::new(&p).unwrap());
        let a = zarrs::array::Array::open(store, "/1").unwrap();
        a.retrieve_array_subset(&zarrs::array::ArraySubset::new_with_shape(vec![4, 4])).unwrap()
    };
    assert!(l1.iter().all(|v| v % 1000 == 0), "nearest downsampling keeps label ids: {l1:?}");
}

#[test]
fn reads_hand_made_ngff_04_zarr_v2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v2.zarr");
    std::fs::create_dir_all(p.join("0")).unwrap();
    std::fs::write(p.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    std::fs::write(
        p.join(".zattrs"),
        r#"{"multiscales": [{"version": "0.4", "axes": [{"name": "z", "type": "space", "unit": "nanometer"},
            {"name": "y", "type": "space", "unit": "nanometer"}, {"name": "x", "type": "space", "unit": "nanometer"}],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [500.0, 100.0, 100.0]}]}]}]}"#,
    )
    .unwrap();
    std::fs::write(
        p.join("0/.zarray"),
        r#"{"zarr_format": 2, "shape": [2, 3, 4], "chunks": [1, 3, 4], "dtype": "<u2", "compressor": null,
            "fill_value": 0, "order": "C", "filters": null, "dimension_separator": "/"}"#,
    )
    .unwrap();
    for z in 0..2u16 {
        let bytes: Vec<u8> = (0..12u16).flat_map(|i| (z * 100 + i).to_le_bytes()).collect();
        std::fs::create_dir_all(p.join(format!("0/{z}/0"))).unwrap();
        std::fs::write(p.join(format!("0/{z}/0/0")), bytes).unwrap();
    }
    let s = load_stack(&p, &LoadOptions::default(), &NodeCtx::detached()).unwrap();
    assert_eq!(s.describe(), "ZYX 2×3×4 u16");
    assert_eq!(s.plane::<u16>(0, 0, 1).unwrap()[5], 105);
    assert_eq!(s.voxel_size().zyx(), [0.5, 0.1, 0.1]);
    assert_eq!(s.voxel_size().unit, "micron");
    std::fs::remove_file(p.join("0/1/0/0")).unwrap();
    let e = load_stack(&p, &LoadOptions::default(), &NodeCtx::detached()).unwrap_err().to_string();
    assert!(e.contains("missing chunk"), "{e}");
}
