//! A catalogue of broken graph files and bad command lines: each gives a clear message, exit
//! code 2, and never a Rust panic.

use petri_tests::{petri, root};

fn expected(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap_or("");
    let frag = first.strip_prefix("// expect: ").unwrap_or_else(|| panic!("{}: no `// expect:` line", path.display()));
    frag.split('|').map(|s| s.trim().to_string()).collect()
}

#[test]
fn every_broken_graph_is_refused_with_a_clear_message() {
    let dir = root().join("tests/fixtures/broken");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the catalogue should hold at least 15 broken files, has {}", files.len());
    let work = tempfile::tempdir().unwrap();
    for f in &files {
        let frags = expected(f);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for cmd in ["validate", "run"] {
            let mut args = vec![cmd, f.to_str().unwrap()];
            let out_dir = work.path().join("out");
            if cmd == "run" {
                args.extend(["--out", out_dir.to_str().unwrap()]);
            }
            let o = petri(&args, work.path());
            assert_eq!(o.code, 2, "{name} ({cmd}): exit code {} instead of 2\n{}", o.code, o.stderr);
            assert!(
                frags.iter().any(|fr| o.stderr.contains(fr.as_str())),
                "{name} ({cmd}): the message should contain {frags:?}:\n{}",
                o.stderr
            );
            assert!(
                o.stderr.contains(&name) || o.stderr.contains("broken"),
                "{name}: message should name the file:\n{}",
                o.stderr
            );
        }
    }
    // Nothing was written outside the output folder.
    assert!(!std::path::Path::new("/tmp/petri-evil.tif").exists());
}

#[test]
fn bad_command_lines_exit_with_2() {
    let example = root().join("graphs/examples/nuclei-threshold.ron");
    let ex = example.to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "smooth.sigma=-1"], "must be greater than 0"),
        (&["--set", "smooth.sigma=abc"], "smooth.sigma=abc"),
        (&["--set", "smooth.sigma=[1.0, 2.0, 3.0, 4.0]"], "1 to 3 numbers"),
        (&["--set", "nosuch.sigma=1"], "no node 'nosuch'"),
        (&["--set", "smooth.nosuch=1"], "has no parameter 'nosuch'"),
        (&["--set", "smooth=1"], "NODE.PARAM=VALUE"),
        (&["--set", "smooth.sigma"], "NODE.PARAM=VALUE"),
        (&["--set", "threshold.method=magic"], "must be one of"),
        (&["--set", "load.path=does-not-exist.tif"], "file not found"),
        (&["--set", "label.connectivity=8"], "must be one of"),
        (&["--target", "nosuch"], "no node 'nosuch'"),
        (&["--jobs", "0"], "--jobs"),
        (&["--device", "tpu"], "unknown device"),
    ];
    for (extra, frag) in cases {
        let mut args = vec!["run", ex, "--out", out];
        args.extend_from_slice(extra);
        let o = petri(&args, work.path());
        assert_eq!(o.code, 2, "{extra:?}: exit {} \n{}", o.code, o.stderr);
        assert!(o.stderr.contains(frag), "{extra:?}: expected '{frag}' in:\n{}", o.stderr);
    }
    let o = petri(&["run", "no-such-graph.ron"], work.path());
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("no-such-graph.ron") && o.stderr.contains("cannot read"), "{}", o.stderr);
    let o = petri(&["frobnicate"], work.path());
    assert_eq!(o.code, 2, "clap usage errors exit with 2");
}

#[test]
fn a_corrupt_input_image_fails_the_loader_with_exit_2() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("bad.tif"), b"II*\0this is not really a tiff").unwrap();
    let g = root().join("graphs/examples/nuclei-threshold.ron");
    let o = petri(
        &["run", g.to_str().unwrap(), "--set", "load.path=bad.tif", "--out", work.path().join("out").to_str().unwrap()],
        work.path(),
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("bad.tif"), "the message names the file:\n{}", o.stderr);
    assert!(o.stderr.contains("load"), "the message names the node:\n{}", o.stderr);
}
