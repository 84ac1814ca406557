//! Benchmark of `measure.regions` and `measure.metrics` against scikit-image, in the same run.
//!
//! ```text
//! cargo run --release -p petri-measure --example bench_measure -- \
//!     [--python /work/venv/bin/python] [--data /work/shared/data] \
//!     [--ctc ~/.cache/petri-testdata/ctc] [--repeats 5]
//! ```
//! It first runs `nodes/measure/bench/peer_measure.py`, which builds the inputs (watershed
//! of cells3d and of the first HeLa frame, as in Petri's shared reference script), writes them
//! as TIFFs and times scikit-image; then it times Petri on the same files (median of N runs
//! after one warm-up, wall clock) and prints a Markdown table with the ratios.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use petri_api::Stack;
use petri_measure::contingency::{Keep, foreground_counts};
use petri_measure::metrics::{DEFAULT_THRESHOLDS, metrics};
use petri_measure::regions::regions;
use petri_testkit::read_stack;

fn time(repeats: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut ts: Vec<f64> = (0..repeats)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ts.sort_by(|a, b| a.total_cmp(b));
    (ts[ts.len() / 2], ts[0])
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let python = arg(&args, "--python", "/work/venv/bin/python");
    let data = arg(&args, "--data", "/work/shared/data");
    let ctc = arg(&args, "--ctc", &format!("{home}/.cache/petri-testdata/ctc"));
    let repeats: usize = arg(&args, "--repeats", "5").parse().expect("--repeats: a number");
    let tmp = std::env::temp_dir().join(format!("petri-bench-measure-{}", std::process::id()));
    let peer = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/peer_measure.py");

    eprintln!("running the scikit-image peer ({python} {})...", peer.display());
    let out = Command::new(&python)
        .arg(&peer)
        .args(["--data", &data, "--ctc", &ctc, "--out"])
        .arg(&tmp)
        .args(["--repeats", &repeats.to_string()])
        .output()
        .expect("cannot run the Python peer");
    if !out.status.success() {
        panic!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut peer_ms: BTreeMap<(String, String), (f64, String)> = BTreeMap::new();
    let mut inputs: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("peer output is JSON lines");
        let input = v["input"].as_str().unwrap().to_string();
        if !inputs.contains(&input) {
            inputs.push(input.clone());
        }
        peer_ms.insert(
            (input, v["op"].as_str().unwrap().to_string()),
            (v["median_ms"].as_f64().unwrap(), v["shape"].as_str().unwrap().to_string()),
        );
    }

    println!("| input | shape | scikit-image op | scikit-image ms | Petri op | Petri ms | speed-up |");
    println!("|---|---|---|---:|---|---:|---:|");
    for input in &inputs {
        let img: Stack = read_stack::<u16>(&tmp.join(format!("{input}_image.tif")));
        let gt = read_stack::<u32>(&tmp.join(format!("{input}_truth.tif")));
        let ws = read_stack::<u32>(&tmp.join(format!("{input}_watershed.tif")));
        let (regions_ms, _) = time(repeats, || {
            regions(&ws, Some(&img)).unwrap();
        });
        let (fg_ms, _) = time(repeats, || {
            foreground_counts(gt.pixels::<u32>().unwrap(), ws.pixels::<u32>().unwrap());
        });
        let (cont_ms, _) = time(repeats, || {
            petri_measure::contingency::Contingency::new(
                gt.pixels::<u32>().unwrap(),
                ws.pixels::<u32>().unwrap(),
                Keep::All,
            );
        });
        let (all_ms, _) = time(repeats, || {
            metrics(&ws, &gt, None, false, &DEFAULT_THRESHOLDS).unwrap();
        });
        let rows: Vec<(&str, &str, f64)> = vec![
            (
                "regionprops basic (label, area, centroid, intensity_mean, bbox)",
                "measure.regions (all columns)",
                regions_ms,
            ),
            ("regionprops full (+ shape, intensity min/max)", "measure.regions (all columns)", regions_ms),
            ("IoU+Dice (foreground)", "foreground_counts", fg_ms),
            ("adapted_rand_error", "measure.metrics (every score)", all_ms),
            ("CTC SEG", "measure.metrics (every score)", all_ms),
            ("F1@0.5 (Hungarian matching)", "measure.metrics (every score)", all_ms),
            ("all metrics (IoU, Dice, ARE, SEG, matching at 0.5/0.75/0.9)", "measure.metrics (every score)", all_ms),
        ];
        for (op, ours, ms) in rows {
            if let Some((py, shape)) = peer_ms.get(&(input.clone(), op.to_string())) {
                println!("| {input} | {shape} | {op} | {py:.2} | {ours} | {ms:.2} | {:.1}× |", py / ms);
            }
        }
        println!("| {input} | | (overlap table alone) | | Contingency::new | {cont_ms:.2} | |");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
