//! Side-by-side benchmark of the image nodes against scikit-image.
//!
//! ```text
//! cargo run --release -p petri-image --example bench -- CELLS3D.tif FRAME2D.tif \
//!     [--python /work/venv/bin/python] [--threads 2] [--repeats 5] [--out docs/benchmarks/image.md]
//! ```
//! For every op and input it runs the scikit-image peer (`nodes/image/bench/peer.py`, one process
//! per op, 1 warm-up + median of N) and then the Rust function (same protocol, rayon pool of
//! `--threads` threads), compares the two results pixel by pixel, and prints/writes a table with
//! the ratio skimage / petri. Multi-page 2-D inputs (a time-lapse) use their first plane.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use petri_api::Stack;
use petri_image::{background, clahe, gaussian, mean, median, normalize, threshold, unsharp};

type Op = fn(&Stack) -> Stack;

/// (peer op name, label, which inputs: 2 = 2-D only, 3 = 3-D only, 0 = both, Rust function).
fn ops() -> Vec<(&'static str, &'static str, u8, Op)> {
    use background::BackgroundMethod::*;
    vec![
        ("gaussian_s2", "gaussian σ=2", 0, |s| gaussian::gaussian(s, [2.0; 3], 4.0).unwrap()),
        ("median_3", "median 3 (box)", 0, |s| median::median(s, 3).unwrap()),
        ("median_5", "median 5 (box)", 2, |s| median::median(s, 5).unwrap()),
        ("mean_3", "mean 3 (box)", 0, |s| mean::mean(s, 3).unwrap()),
        ("clahe", "CLAHE clip 0.01, kernel shape/8", 0, |s| clahe::clahe(s, None, 0.01, 256).unwrap()),
        ("normalize", "normalize 1–99.8 %", 0, |s| normalize::normalize(s, 1.0, 99.8, false).unwrap()),
        ("unsharp_r2", "unsharp r=2 amount 1", 0, |s| unsharp::unsharp(s, 2.0, 1.0).unwrap()),
        ("otsu", "threshold otsu (+mask)", 0, |s| threshold::threshold(s, threshold::Method::Otsu).unwrap().0),
        ("li", "threshold li (+mask)", 0, |s| threshold::threshold(s, threshold::Method::Li).unwrap().0),
        ("triangle", "threshold triangle (+mask)", 0, |s| {
            threshold::threshold(s, threshold::Method::Triangle).unwrap().0
        }),
        ("local_b35", "threshold local, block 35 gaussian", 0, |s| {
            threshold::threshold_local(s, 35, 0.0, threshold::LocalMethod::Gaussian).unwrap()
        }),
        ("rolling_ball_r5", "background rolling ball r=5 (bg)", 3, |s| {
            background::background(s, RollingBall, 5.0).unwrap().1
        }),
        ("rolling_ball_r25", "background rolling ball r=25 (bg)", 2, |s| {
            background::background(s, RollingBall, 25.0).unwrap().1
        }),
        ("tophat_r3", "background white top-hat r=3", 3, |s| background::background(s, TopHat, 3.0).unwrap().0),
        ("tophat_r15", "background white top-hat r=15", 2, |s| background::background(s, TopHat, 15.0).unwrap().0),
    ]
}

fn load(path: &Path) -> (Stack, bool) {
    let (shape, v) = petri_testkit::read_tiff_f64(path);
    let plane = shape[1] * shape[2];
    let multi = shape[0] > 1;
    let to = |v: &[f64]| v.iter().map(|&x| x as u16).collect::<Vec<u16>>();
    (
        if multi {
            Stack::from_3d(shape[0], shape[1], shape[2], to(&v)).unwrap()
        } else {
            Stack::from_2d(shape[1], shape[2], to(&v[..plane])).unwrap()
        },
        multi,
    )
}

fn time(repeats: usize, mut f: impl FnMut() -> Stack) -> (f64, f64, Stack) {
    let mut out = f();
    let mut ts = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        out = f();
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ts.sort_by(f64::total_cmp);
    (ts[ts.len() / 2], ts[0], out)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let (mut python, mut threads, mut repeats, mut out_md) = ("python3".to_string(), 2usize, 5usize, None::<PathBuf>);
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--python" => python = it.next().expect("--python PATH").clone(),
            "--threads" => threads = it.next().and_then(|s| s.parse().ok()).expect("--threads N"),
            "--repeats" => repeats = it.next().and_then(|s| s.parse().ok()).expect("--repeats N"),
            "--out" => out_md = it.next().map(PathBuf::from),
            "--only" => only = it.next().cloned(),
            _ => pos.push(a.clone()),
        }
    }
    assert!(
        pos.len() == 2,
        "usage: bench CELLS3D.tif FRAME2D.tif [--python P] [--threads N] [--repeats N] [--out FILE]"
    );
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().expect("rayon pool");
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peer.py");
    let tmp = std::env::temp_dir().join(format!("petri-image-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");

    let (img3, _) = load(Path::new(&pos[0]));
    let (full2, multi2) = load(Path::new(&pos[1]));
    let img2 = if multi2 {
        let [_, _, _, h, w] = full2.dims();
        Stack::from_2d(h, w, full2.plane::<u16>(0, 0, 0).unwrap().to_vec()).unwrap()
    } else {
        full2
    };
    let inputs = [("cells3d", &pos[0], &img3, 3u8, false), ("2-D frame", &pos[1], &img2, 2u8, multi2)];
    let load_before = loadavg();
    let mut rows = Vec::new();
    println!(
        "{:38} {:12} {:>12} {:>12} {:>8} {:>8}  result",
        "op", "input", "skimage ms", "petri ms", "ratio", "(min)"
    );
    for (name, path, img, nd, frame0) in inputs {
        for (op, label, which, f) in ops() {
            if which != 0 && which != nd || only.as_deref().is_some_and(|o| !op.contains(o)) {
                continue;
            }
            let out_tif = tmp.join(format!("{op}_{nd}d.tif"));
            let mut cmd = Command::new(&python);
            cmd.arg(&peer).arg(op).arg(path).arg(&out_tif).arg("--repeats").arg(repeats.to_string());
            if frame0 {
                cmd.arg("--frame0");
            }
            cmd.env("OMP_NUM_THREADS", threads.to_string()).env("OPENBLAS_NUM_THREADS", "1");
            let res = cmd.output().expect("running the python peer");
            if !res.status.success() {
                eprintln!("peer failed for {op}: {}", String::from_utf8_lossy(&res.stderr));
                continue;
            }
            let j: serde_json::Value = serde_json::from_slice(&res.stdout).expect("peer JSON");
            let peer_ms = j["median_ms"].as_f64().unwrap_or(f64::NAN);
            let peer_min = j["min_ms"].as_f64().unwrap_or(f64::NAN);
            let (ms, min, out) = time(repeats, || f(img));
            let (_, want) = petri_testkit::read_tiff_f64(&out_tif);
            let got = out.buffer().to_f64_vec();
            let same = if got.len() != want.len() {
                format!("size {} vs {}", got.len(), want.len())
            } else {
                let n = got.iter().zip(&want).filter(|(a, b)| a != b).count();
                let d = petri_testkit::max_abs_diff(&got, &want);
                if n == 0 { "identical".to_string() } else { format!("{n} px differ, max abs diff {d:.2e}") }
            };
            let ratio = peer_ms / ms;
            let ratio_min = peer_min / min;
            println!("{label:38} {name:12} {peer_ms:12.2} {ms:12.2} {ratio:8.1} {ratio_min:8.1}  {same}");
            rows.push((label, name, img.describe(), peer_ms, ms, ratio, ratio_min, same));
        }
    }
    let load_after = loadavg();
    let _ = std::fs::remove_dir_all(&tmp);
    if let Some(md) = out_md {
        let mut s = String::new();
        s += "# Image nodes vs scikit-image\n\n";
        s += "Generated by `nodes/image/examples/bench.rs` (do not edit by hand):\n\n";
        s += &format!(
            "```\ncargo run --release -p petri-image --example bench -- {} {} --python {python} --threads {threads} --repeats {repeats} --out <this file>\n```\n\n",
            pos[0], pos[1]
        );
        s += &format!(
            "Protocol: for each op the scikit-image peer (`nodes/image/bench/peer.py`, scikit-image 0.26 / scipy 1.17, \
             OMP_NUM_THREADS={threads}) runs first, then the Rust function with a rayon pool of {threads} threads; each \
             side does 1 warm-up and reports the median of {repeats} runs (wall clock). The result column compares the two \
             outputs pixel by pixel. Machine: 2 cores shared with other jobs; load average before {load_before}, after \
             {load_after} — absolute times are noisy, the ratio is the figure to read (both sides ran back to back).\n\n"
        );
        s += "Inputs: `cells3d` is the 3-D confocal nuclei stack of `/work/shared/data/nuclei3d_cells3d/image.tif`; the \
              2-D frame is time point 0 of the Cell Tracking Challenge sequence Fluo-N2DL-HeLa 02 (fetched by \
              `/work/shared/data/fetch-ctc.sh`; not redistributable, so not in the repository). Every op runs per image \
              with the parameters in the first column; thresholds include making the mask (`img > t`) on both sides. \
              Python peer calls: `filters.gaussian(float64, σ, mode='nearest', preserve_range=True)`, \
              `filters.median(img, ones((k,)*ndim), mode='nearest', behavior='ndimage')`, `ndi.uniform_filter(float64, k, \
              mode='nearest')`, `exposure.equalize_adapthist(img, clip_limit=0.01)`, csbdeep-style percentile \
              normalisation in float32, `filters.unsharp_mask(float64, r, 1, preserve_range=True)`, \
              `threshold_otsu/li/triangle`, `threshold_local(img, 35)`, `restoration.rolling_ball(img, radius=r)` (its \
              OpenMP loop uses the same thread count) and `morphology.white_tophat(img, disk(r)/ball(r))`.\n\n";
        s += "A `result` other than `identical` is the count of differing pixels and the largest difference: the \
              Gaussian-based ops store f64 results as f32 and one value in ~4 million lands on the other side of an f32 \
              rounding boundary (|Δ| = one f32 ulp at that intensity).\n\n";
        s += "| op | input | skimage ms (median) | petri ms (median) | speed-up (medians) | speed-up (best runs) | result vs skimage |\n|---|---|---:|---:|---:|---:|---|\n";
        for (label, name, desc, p, m, r, rm, same) in &rows {
            s += &format!("| {label} | {name} ({desc}) | {p:.1} | {m:.1} | {r:.1}× | {rm:.1}× | {same} |\n");
        }
        std::fs::write(&md, s).expect("writing the markdown");
        println!("wrote {}", md.display());
    }
}
