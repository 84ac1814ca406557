//! `petri run` end to end on the bundled example, with its disk cache and JSON report, checked
//! against scikit-image's results on the same image.

use std::collections::BTreeMap;
use std::path::Path;

use petri_tests::{petri, root};

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn statuses(r: &serde_json::Value) -> BTreeMap<String, String> {
    r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap().to_string(), n["status"].as_str().unwrap().to_string()))
        .collect()
}

fn executed(r: &serde_json::Value) -> Vec<String> {
    statuses(r).into_iter().filter(|(_, s)| s == "executed").map(|(k, _)| k).collect()
}

#[test]
fn example_runs_matches_scikit_image_and_caches_on_disk() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let graph = root().join("graphs/examples/nuclei-threshold.ron");
    let g = graph.to_str().unwrap();
    let out = w.join("out");
    let cache = w.join("cache");
    let rep = w.join("report.json");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "run",
            g,
            "--out",
            out.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--report",
            rep.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        petri(&refs, w)
    };

    let o = run(&[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = report(&rep);
    assert_eq!(r["ok"], true);
    assert!(r["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(r["nodes"].as_array().unwrap().len(), 7);
    assert_eq!(executed(&r).len(), 7);
    for n in r["nodes"].as_array().unwrap() {
        for k in ["id", "type", "status", "seconds", "error"] {
            assert!(n.get(k).is_some(), "report node lacks {k}");
        }
    }

    // The outputs match scikit-image: labels exactly (same numbering), regions per label.
    let labels_path = out.join("nuclei-threshold/labels.tif");
    let (shape, ours) = petri_testkit::read_tiff_f64(&labels_path);
    assert_eq!(shape, vec![1, 512, 512]);
    let (_, theirs) = petri_testkit::read_tiff_f64(&petri_testkit::reference("nuclei2d_dsb2018", "cc_conn8.tif"));
    assert_eq!(ours, theirs, "labels differ from skimage.measure.label");
    let csv = out.join("nuclei-threshold/regions.csv");
    let rows = petri_testkit::read_csv(&csv);
    let reference = petri_testkit::read_csv(&petri_testkit::reference("nuclei2d_dsb2018", "regionprops_cc.csv"));
    assert_eq!(rows.len(), reference.len());
    assert_eq!(rows.len(), 88);
    for (a, b) in rows.iter().zip(&reference) {
        for (col, v) in b {
            let ours = a.get(col).unwrap_or_else(|| panic!("column {col} missing"));
            assert!((ours - v).abs() < 1e-9, "{col}: {ours} vs {v}");
        }
    }

    // Second identical run: nothing executes.
    let o = run(&[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = report(&rep);
    assert!(executed(&r).is_empty(), "second run executed {:?}", executed(&r));
    assert!(statuses(&r).values().all(|s| s == "cached"));

    // One parameter changed: that node and what follows, not the loader.
    let o = run(&["--set", "smooth.sigma=2"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = report(&rep);
    assert_eq!(executed(&r), ["label", "measure", "save_labels", "save_table", "smooth", "threshold"]);

    // A deleted output file is written again; nothing else runs.
    std::fs::remove_file(&csv).unwrap();
    let o = run(&["--set", "smooth.sigma=2"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(executed(&report(&rep)), ["save_table"]);
    assert!(csv.exists());

    // Changing the input image's bytes re-runs the loader and everything after it.
    // (Same file name in another folder: for folders the loader's fingerprint includes names.)
    std::fs::create_dir_all(w.join("elsewhere")).unwrap();
    let img = w.join("elsewhere/nuclei2d.tif");
    std::fs::copy(root().join("assets/samples/nuclei2d.tif"), &img).unwrap();
    let o = run(&["--set", &format!("load.path={}", img.display())]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Same bytes elsewhere reuse every cached result; only the writers run again, because the
    // sigma = 2 run overwrote their files since the sigma = 1 results were cached.
    let before = executed(&report(&rep));
    assert_eq!(before, ["save_labels", "save_table"], "same bytes in another folder reuse the cache");
    let mut bytes = std::fs::read(&img).unwrap();
    let n = bytes.len();
    bytes[n - 1] = bytes[n - 1].wrapping_add(1);
    std::fs::write(&img, bytes).unwrap();
    let o = run(&["--set", &format!("load.path={}", img.display())]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(executed(&report(&rep)).len(), 7);
}

#[test]
fn run_to_a_target_runs_only_what_it_needs() {
    let work = tempfile::tempdir().unwrap();
    let graph = root().join("graphs/examples/nuclei-threshold.ron");
    let rep = work.path().join("r.json");
    let out = work.path().join("out");
    let o = petri(
        &[
            "run",
            graph.to_str().unwrap(),
            "--target",
            "threshold",
            "--out",
            out.to_str().unwrap(),
            "--report",
            rep.to_str().unwrap(),
        ],
        work.path(),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = report(&rep);
    assert_eq!(statuses(&r).keys().cloned().collect::<Vec<_>>(), ["load", "smooth", "threshold"]);
    assert!(!out.join("nuclei-threshold/labels.tif").exists());
}
