//! Every fixture made by nodes/io/scripts/make_fixtures.py (codec × bit depth × layout, ImageJ,
//! OME-TIFF, multi-series) reads exactly as tifffile read it.

mod common;

use petri_api::{Buffer, NodeCtx};
use petri_io::{LoadOptions, load_stack};

fn expected_values(bin: &[u8], dtype: &str) -> Vec<f64> {
    match dtype {
        "u8" => bin.iter().map(|&v| v as f64).collect(),
        "u16" => bin.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as f64).collect(),
        "u32" => bin.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
        _ => bin.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
    }
}

#[test]
fn tiff_fixtures_match_tifffile() {
    let m = petri_testkit::read_json(&common::fixture("tiff/manifest.json"));
    let files = m["files"].as_array().unwrap();
    assert!(files.len() >= 40);
    let mut failures = Vec::new();
    for e in files {
        let file = e["file"].as_str().unwrap();
        let series = e["series"].as_u64().unwrap() as usize;
        let what = format!("{file} series {series}");
        let opts = LoadOptions { series, ..LoadOptions::default() };
        let s = match load_stack(&common::fixture(&format!("tiff/{file}")), &opts, &NodeCtx::detached()) {
            Ok(s) => s,
            Err(err) => {
                failures.push(format!("{what}: {err}"));
                continue;
            }
        };
        let dims: Vec<usize> = e["dims"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        if s.dims().to_vec() != dims || s.dtype().name() != e["dtype"].as_str().unwrap() {
            failures.push(format!("{what}: got {:?} {} want {dims:?} {}", s.dims(), s.dtype(), e["dtype"]));
            continue;
        }
        if s.axes_string() != e["axes"].as_str().unwrap() {
            failures.push(format!("{what}: axes {} want {}", s.axes_string(), e["axes"]));
        }
        let v: Vec<f64> = e["voxel_zyx"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let got = s.voxel_size().zyx();
        if (0..3).any(|i| (got[i] - v[i]).abs() > 1e-9 * v[i].max(1.0))
            || s.voxel_size().unit != e["unit"].as_str().unwrap()
        {
            failures.push(format!("{what}: voxel {got:?} {} want {v:?} {}", s.voxel_size().unit, e["unit"]));
        }
        let names: Vec<String> = e["channels"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
        if s.channel_names() != names.as_slice() {
            failures.push(format!("{what}: channels {:?} want {names:?}", s.channel_names()));
        }
        let bin = std::fs::read(common::fixture(&format!("tiff/{}", e["bin"].as_str().unwrap()))).unwrap();
        let want = expected_values(&bin, e["dtype"].as_str().unwrap());
        let got = s.buffer().to_f64_vec();
        let tol = e["tolerance"].as_f64().unwrap();
        let bad =
            got.iter().zip(&want).filter(|(a, b)| !((*a - *b).abs() <= tol || (a.is_nan() && b.is_nan()))).count();
        if bad > 0 {
            failures.push(format!("{what}: {bad} of {} pixels differ", want.len()));
        }
        if tol == 0.0 && matches!(s.buffer(), Buffer::F32(_)) {
            // Bit-exact for floats: compare bit patterns.
            let gb: Vec<u8> = s.pixels::<f32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect();
            if gb != bin {
                failures.push(format!("{what}: float bits differ"));
            }
        }
    }
    assert!(failures.is_empty(), "{} fixtures failed:\n{}", failures.len(), failures.join("\n"));
}
