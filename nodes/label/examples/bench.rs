//! petri-label benchmark, side by side with scikit-image/scipy (`bench/peer.py`).
//!
//! `bench/run.sh` runs the peer (which prepares the inputs exactly like the reference pipeline
//! and times skimage) and then this program on the same files, in the same run:
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p petri-label --example bench -- DIR [--md OUT.md] [--only hela2d,erode,open]
//! ```
//!
//! Every op is timed as the median of at least 5 runs (more for fast ops, see [`time`]) after a warm-up, and its result is checked against
//! the peer's output (exactly, or with the documented tolerance).

use std::path::{Path, PathBuf};
use std::time::Instant;

use petri_api::{NodeCtx, Stack};
use petri_label::boundaries::{BoundaryMode, boundaries};
use petri_label::clear_border::clear_border;
use petri_label::connected_components::connected_components;
use petri_label::distance_transform::distance_transform;
use petri_label::expand::expand_labels;
use petri_label::morphology::*;
use petri_label::relabel::{RelabelOrder, relabel};
use petri_label::seeds::{SeedMethod, SeedOpts, seeds};
use petri_label::util::Connectivity;
use petri_label::watershed::{WatershedOpts, watershed};
use petri_testkit::{label_mismatches, read_stack};

/// CPU time of the whole process (all threads), in ms.
fn cpu_ms() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: plain syscall writing into a local struct.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 * 1e-6
}

/// Median wall-clock and CPU (all threads) ms after a warm-up, and the last result: at least 5
/// runs, more (up to 100) until 0.3 s have been spent, as `bench/peer.py` does for skimage.
fn time<R>(f: impl Fn() -> R) -> ((f64, f64), R) {
    let _ = f();
    let (mut ts, mut cs) = (Vec::new(), Vec::new());
    let mut last = None;
    while ts.len() < 5 || (ts.iter().sum::<f64>() < 300.0 && ts.len() < 100) {
        let (t, c) = (Instant::now(), cpu_ms());
        let r = f();
        ts.push(t.elapsed().as_secs_f64() * 1e3);
        cs.push(cpu_ms() - c);
        last = Some(r);
    }
    ts.sort_by(f64::total_cmp);
    cs.sort_by(f64::total_cmp);
    // Median as Python's `statistics.median` (mean of the middle two for an even count).
    let median = |v: &[f64]| (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0;
    ((median(&ts), median(&cs)), last.expect("ran 5 times"))
}

fn u32s(s: &Stack) -> &[u32] {
    s.pixels::<u32>().expect("u32 stack")
}

fn exact<T: PartialEq>(a: &[T], b: &[T]) -> String {
    let n = a.iter().zip(b).filter(|(x, y)| x != y).count();
    if n == 0 { "identical".into() } else { format!("**{n} px differ**") }
}

struct Row {
    input: String,
    key: &'static str,
    ms: (f64, f64),
    check: String,
}

fn bench_input(dir: &Path, name: &str, only: &[String]) -> Vec<Row> {
    let d = dir.join(name);
    let mask = read_stack::<u8>(&d.join("mask.tif"));
    let cc = read_stack::<u32>(&d.join("cc.tif"));
    let edt = read_stack::<f32>(&d.join("edt.tif"));
    let markers = read_stack::<u32>(&d.join("markers.tif"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("timing.json")).expect("timing.json")).expect("json");
    let md = meta["meta"]["min_distance"].as_u64().unwrap_or(5) as usize;
    let sh = mask.zyx();
    let m = mask.pixels::<u8>().expect("u8 mask");
    let lab = u32s(&cc);
    let fg = m.iter().filter(|&&v| v != 0).count();
    let out = |k: &str| read_stack::<u32>(&d.join(format!("out_{k}.tif")));
    let out8 = |k: &str| out(k).pixels::<u32>().expect("u32").iter().map(|&v| v as u8).collect::<Vec<u8>>();
    let ctx = NodeCtx::detached();
    let want = |k: &str| only.is_empty() || only.iter().any(|o| o == k);
    let mut rows = Vec::new();
    let mut push = |key: &'static str, ms: (f64, f64), check: String| {
        eprintln!("{name:10} {key:22} {:9.2} ms (cpu {:.2})  {check}", ms.0, ms.1);
        rows.push(Row { input: name.to_string(), key, ms, check });
    };

    if want("cc_full") {
        let (ms, r) = time(|| connected_components(&mask, Connectivity::Full).expect("cc"));
        push("cc_full", ms, exact(u32s(&r), u32s(&out("cc_full"))));
    }
    if want("cc_face") {
        let (ms, r) = time(|| connected_components(&mask, Connectivity::Face).expect("cc"));
        push("cc_face", ms, exact(u32s(&r), u32s(&out("cc_face"))));
    }
    if want("edt") {
        let (ms, r) = time(|| distance_transform(&ctx, &mask, false).expect("edt"));
        let want = read_stack::<f32>(&d.join("out_edt.tif"));
        let diff = r
            .pixels::<f32>()
            .expect("f32")
            .iter()
            .zip(want.pixels::<f32>().expect("f32"))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        push("edt", ms, format!("max abs diff {diff:.1e}"));
    }
    let so = SeedOpts { min_distance: md, threshold_abs: None, method: SeedMethod::LocalMax };
    if want("seeds") {
        let (ms, r) = time(|| seeds(&ctx, &edt, Some(&cc), None, &so).expect("seeds"));
        push("seeds", ms, exact(u32s(&r), u32s(&markers)));
    }
    let ho = SeedOpts { method: SeedMethod::HMaxima { h: 1.0 }, ..so };
    if want("h_maxima") {
        let (ms, r) = time(|| seeds(&ctx, &edt, None, None, &ho).expect("h-maxima"));
        let hm: Vec<u8> = u32s(&r).iter().map(|&v| (v != 0) as u8).collect();
        push("h_maxima", ms, format!("{} (as a mask)", exact(&hm, &out8("h_maxima"))));
    }
    let wo = WatershedOpts { conn: Connectivity::Face, compactness: 0.0, invert: true };
    if want("watershed") {
        let (ms, r) = time(|| watershed(&ctx, &edt, &markers, Some(&mask), wo).expect("watershed"));
        let bad = label_mismatches(u32s(&r), u32s(&out("watershed")));
        push(
            "watershed",
            ms,
            format!("{bad} of {fg} fg px differ up to relabelling ({:.3} %)", 100.0 * bad as f64 / fg as f64),
        );
    }
    let gaps: Vec<u32> = lab.iter().map(|&v| v * 3).collect();
    if want("relabel") {
        let (ms, r) = time(|| relabel(&gaps, RelabelOrder::Ascending).0);
        push("relabel", ms, exact(&r, u32s(&out("relabel"))));
    }
    if want("boundaries") {
        let (ms, r) = time(|| boundaries(lab, sh, Connectivity::Face, BoundaryMode::Thick));
        push("boundaries", ms, exact(&r, &out8("boundaries")));
    }
    if want("expand") {
        let (ms, r) = time(|| expand_labels(lab, sh, 3.0, [1.0; 3]));
        let want = out("expand");
        let ties = r.iter().zip(u32s(&want)).filter(|(a, b)| a != b).count();
        push("expand", ms, format!("{ties} px differ (equidistant ties)"));
    }
    if want("clear_border") {
        let (ms, r) = time(|| clear_border(lab, sh, 0, true));
        push("clear_border", ms, exact(&r, u32s(&out("clear_border"))));
    }
    let b2 = Structuring { footprint: Footprint::Ball, radius: 2.0, spacing: [1.0; 3] };
    if want("erode") {
        let (ms, r) = time(|| erode_mask(m, sh, &b2));
        push("erode", ms, exact(&r, &out8("erode")));
    }
    if want("dilate") {
        let (ms, r) = time(|| dilate_mask(m, sh, &b2));
        push("dilate", ms, exact(&r, &out8("dilate")));
    }
    if want("open") {
        let (ms, r) = time(|| open_mask(m, sh, &b2));
        push("open", ms, exact(&r, &out8("open")));
    }
    if want("close") {
        let (ms, r) = time(|| close_mask(m, sh, &b2));
        push("close", ms, exact(&r, &out8("close")));
    }
    if want("fill_holes") {
        let (ms, r) = time(|| fill_holes_mask(m, sh));
        push("fill_holes", ms, exact(&r, &out8("fill_holes")));
    }
    if want("remove_small_objects") {
        let (ms, r) = time(|| remove_small_objects_mask(m, sh, 64, Connectivity::Face));
        push("remove_small_objects", ms, exact(&r, &out8("remove_small_objects")));
    }
    if want("remove_small_holes") {
        let (ms, r) = time(|| remove_small_holes_mask(m, sh, 64, Connectivity::Face));
        push("remove_small_holes", ms, exact(&r, &out8("remove_small_holes")));
    }
    rows
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: bench DIR [--md OUT.md]   (DIR written by bench/peer.py)");
        std::process::exit(2);
    };
    let md_out = args.iter().position(|a| a == "--md").and_then(|i| args.get(i + 1)).map(PathBuf::from);
    // `--only KEY[,KEY…]` times only those ops (and inputs named there, e.g. `--only hela2d,erode`).
    let only: Vec<String> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let inputs: Vec<&str> = ["cells3d", "hela2d"]
        .into_iter()
        .filter(|n| !only.iter().any(|o| o == "cells3d" || o == "hela2d") || only.iter().any(|o| o == n))
        .collect();
    let ops: Vec<String> = only.iter().filter(|o| *o != "cells3d" && *o != "hela2d").cloned().collect();
    let threads = rayon::current_num_threads();
    let mut table = String::new();
    table.push_str(
        "| input | op | skimage ms | petri ms | speed-up | skimage CPU ms | petri CPU ms | CPU ratio | same result? |\n",
    );
    table.push_str("|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    let mut worst = f64::INFINITY;
    for name in inputs {
        let rows = bench_input(&dir, name, &ops);
        let t: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(name).join("timing.json")).expect("timing"))
                .expect("json");
        let meta = &t["meta"];
        let shape: Vec<String> =
            meta["shape"].as_array().map(|a| a.iter().map(|v| v.to_string()).collect()).unwrap_or_default();
        for r in rows {
            let py = t["ops"][r.key]["ms"].as_f64().unwrap_or(f64::NAN);
            let py_cpu = t["ops"][r.key]["cpu_ms"].as_f64().unwrap_or(f64::NAN);
            let label = t["ops"][r.key]["label"].as_str().unwrap_or(r.key);
            let ratio = py / r.ms.0;
            worst = worst.min(ratio);
            table.push_str(&format!(
                "| {} {} | {} | {:.2} | {:.2} | **{:.1}×** | {:.2} | {:.2} | {:.1}× | {} |\n",
                r.input,
                shape.join("×"),
                label,
                py,
                r.ms.0,
                ratio,
                py_cpu,
                r.ms.1,
                py_cpu / r.ms.1,
                r.check
            ));
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let md = format!(
        "Rayon threads: {threads}; load average at the end: {}; worst wall-clock speed-up: {worst:.1}×\n\n{table}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("{md}");
    if let Some(p) = md_out {
        std::fs::write(&p, md).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}
