//! The example graphs run on the bundled data and give the numbers the peers give.

use std::path::Path;

use petri_tests::{petri, root};

fn run_example(name: &str, out: &Path, extra: &[&str]) {
    let g = root().join("graphs/examples").join(name);
    let mut args = vec!["run", g.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = petri(&args, out.parent().unwrap());
    assert_eq!(o.code, 0, "{name}: {}", o.stderr);
}

fn metrics(path: &Path) -> std::collections::BTreeMap<String, f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

#[test]
fn nuclei_watershed_matches_scikit_image() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    run_example("nuclei-watershed.ron", &out, &[]);
    // Labels: equal to scikit-image's watershed up to relabelling, except tie pixels.
    let (_, ours) = petri_testkit::read_tiff_f64(&out.join("nuclei-watershed/labels.tif"));
    let (_, theirs) = petri_testkit::read_tiff_f64(&petri_testkit::reference("nuclei2d_dsb2018", "watershed.tif"));
    let ours: Vec<u32> = ours.iter().map(|&v| v as u32).collect();
    let theirs: Vec<u32> = theirs.iter().map(|&v| v as u32).collect();
    let fg = theirs.iter().filter(|&&v| v != 0).count();
    let bad = petri_testkit::label_mismatches(&ours, &theirs);
    assert!((bad as f64) <= 0.005 * fg as f64, "{bad} of {fg} foreground pixels differ");
    // Metrics against the manual ground truth, as scikit-image scores its own result.
    let m = metrics(&out.join("nuclei-watershed/metrics.csv"));
    let r = petri_testkit::read_json(&petri_testkit::reference("nuclei2d_dsb2018", "results.json"));
    let want = &r["metrics_watershed_vs_gt"];
    assert_eq!(m["n_prediction"], r["n_watershed"].as_f64().unwrap());
    assert!((m["foreground_iou"] - want["foreground_iou"].as_f64().unwrap()).abs() < 1e-9);
    assert!((m["f1@0.5"] - want["match@0.5"]["f1"].as_f64().unwrap()).abs() < 0.02, "F1@0.5 {}", m["f1@0.5"]);
    assert!((m["ctc_seg"] - want["ctc_seg"].as_f64().unwrap()).abs() < 0.01, "SEG {}", m["ctc_seg"]);
    let rows = petri_testkit::read_csv(&out.join("nuclei-watershed/regions.csv"));
    assert_eq!(rows.len(), 139);
}

#[test]
fn track_nuclei_recovers_the_true_lineage() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    run_example("track-nuclei.ron", &out, &[]);
    let read = |p: &Path| -> Vec<[u32; 4]> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Vec<u32> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
                [v[0], v[1], v[2], v[3]]
            })
            .collect()
    };
    let ours = read(&out.join("track-nuclei/ctc/res_track.txt"));
    let truth = read(&root().join("assets/samples/timelapse_tracks.txt"));
    // Same tracks (begin, end) and the same number of divisions (daughters with a parent).
    let spans = |v: &[[u32; 4]]| {
        let mut s: Vec<(u32, u32)> = v.iter().map(|t| (t[1], t[2])).collect();
        s.sort();
        s
    };
    assert_eq!(spans(&ours), spans(&truth));
    let daughters = |v: &[[u32; 4]]| v.iter().filter(|t| t[3] != 0).count();
    assert_eq!(daughters(&ours), daughters(&truth));
    assert!(out.join("track-nuclei/ctc/mask029.tif").exists());
    assert!(out.join("track-nuclei/tracks.csv").exists() && out.join("track-nuclei/lineage.csv").exists());
}

#[test]
fn convert_writes_the_same_pixels() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let target = work.path().join("converted.tif");
    run_example(
        "convert.ron",
        &out,
        &["--set", &format!("save.path={}", target.display()), "--set", "save.compression=lzw"],
    );
    let (s1, a) = petri_testkit::read_tiff_f64(&target);
    let (s2, b) = petri_testkit::read_tiff_f64(&root().join("assets/samples/nuclei3d_synthetic.tif"));
    assert_eq!(s1, s2);
    assert_eq!(a, b);
}
