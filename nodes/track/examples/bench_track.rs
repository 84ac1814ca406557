//! Benchmark of `track.link` against the scikit-image + SciPy reference tracker, same run.
//!
//! ```text
//! cargo run --release -p petri-track --example bench_track -- \
//!     [--python /work/venv/bin/python] [--ctc ~/.cache/petri-testdata/ctc] [--repeats 5]
//! ```
//! Inputs: the CTC SIM+ tracking ground truth (65×690×628) and the HeLa ERR_SEG masks
//! (20×700×1100), fetched by scripts/fetch-ctc.sh. The peer (bench/peer_track.py, copied from
//! Petri's reference script) measures every frame with regionprops and links consecutive
//! frames with SciPy's linear_sum_assignment (30 px gate). Petri's `link` does that and more:
//! per-frame measurements, gated Hungarian linking with gap closing and division detection,
//! relabelling every pixel to track ids, and the positions and lineage tables.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use petri_api::{Axis, Pixel, Stack};
use petri_track::ctc::read_labels_tiff;
use petri_track::link::{LinkParams, link};
use petri_track::load_ctc::{Kind, load_ctc};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let python = arg(&args, "--python", "/work/venv/bin/python");
    let ctc = arg(&args, "--ctc", &format!("{home}/.cache/petri-testdata/ctc"));
    let repeats: usize = arg(&args, "--repeats", "5").parse().expect("--repeats: a number");
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peer_track.py");
    eprintln!("running the Python peer...");
    let out = Command::new(&python)
        .arg(&peer)
        .args(["--ctc", &ctc, "--repeats", &repeats.to_string()])
        .output()
        .expect("cannot run the Python peer");
    if !out.status.success() {
        panic!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let peer_lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();

    println!("| input | shape | reference (scikit-image + SciPy) ms | Petri track.link ms | speed-up |");
    println!("|---|---|---:|---:|---:|");
    for v in &peer_lines {
        let name = v["input"].as_str().unwrap();
        let labels: Stack = match name {
            "sim_ctc_tra_gt" => load_ctc(&Path::new(&ctc).join("fluo_sim_tra"), Kind::GroundTruth).unwrap().0,
            _ => {
                let (px, [t, y, x]) =
                    read_labels_tiff(&Path::new(&ctc).join("fluo_hela/Fluo_Hela_02_ERR_SEG.tif")).unwrap();
                Stack::new([t, 1, 1, y, x], &[Axis::T], u32::into_buffer(px)).unwrap()
            }
        };
        let p = LinkParams::default();
        let run = || link(&labels, None, None, &p).unwrap();
        let r = run();
        let mut ts: Vec<f64> = (0..repeats)
            .map(|_| {
                let t0 = Instant::now();
                std::hint::black_box(run());
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ts.sort_by(|a, b| a.total_cmp(b));
        let ours = ts[ts.len() / 2];
        let py = v["median_ms"].as_f64().unwrap();
        println!("| {name} | {} | {py:.1} | {ours:.1} | {:.1}× |", v["shape"].as_str().unwrap(), py / ours);
        eprintln!("{name}: {} tracks; reference made {} frame-to-frame links", r.tracks.len(), v["links"]);
    }
}
