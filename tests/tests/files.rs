//! Graph files: canonical round trips, frozen fixtures of every format version, placeholders
//! for unknown node types, and the generated node reference.

use std::path::PathBuf;

use petri_engine::{Engine, NodeStatus, format, load_graph, to_text};
use petri_tests::*;

fn graph_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("graphs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "out") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "ron") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_graph_file_round_trips_byte_identically() {
    let files = graph_files();
    assert!(files.iter().any(|p| p.ends_with("examples/nuclei-threshold.ron")));
    assert!(files.iter().any(|p| p.to_string_lossy().contains("fixtures/v1/")));
    let registry = petri::registry().unwrap();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let (doc, diags) = load_graph(&f, &registry).unwrap_or_else(|e| panic!("{e}"));
        assert!(diags.is_empty(), "{}: {diags:?}", f.display());
        assert_eq!(to_text(&doc), text, "{} is not in canonical form (run petri fmt)", f.display());
        // And through a save to disk.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("g.ron");
        format::save_file(&out, &doc).unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), text);
    }
}

#[test]
fn examples_validate() {
    let work = tempfile::tempdir().unwrap();
    for f in graph_files().iter().filter(|p| p.to_string_lossy().contains("examples")) {
        let o = petri(&["validate", f.to_str().unwrap()], work.path());
        assert_eq!(o.code, 0, "{}: {}", f.display(), o.stderr);
    }
}

#[test]
fn unknown_node_types_are_kept_and_block_only_their_branch() {
    let f = root().join("graphs/fixtures/v1/unknown-node.ron");
    let text = std::fs::read_to_string(&f).unwrap();
    let registry = test_registry();
    let (doc, _) = load_graph(&f, &registry).unwrap();
    assert_eq!(doc.nodes["future"].type_id, "segment.cellpose_v9");
    // Saved back unchanged, parameters and all.
    assert_eq!(to_text(&doc), text);
    // Running: the placeholder and what follows are skipped; the other branch runs.
    let dir = tempfile::tempdir().unwrap();
    let ctx = petri_engine::PathContext::for_graph(&f, Some(&dir.path().join("out")));
    let compiled = petri_engine::compile(&doc, &registry, &ctx).unwrap();
    assert_eq!(compiled.warnings.len(), 1);
    let r = Engine::new(registry).run(&compiled, &opts(dir.path()), &mut |_| {});
    assert_eq!(r.node("future").unwrap().status, NodeStatus::Skipped);
    assert_eq!(r.node("after_future").unwrap().status, NodeStatus::Skipped);
    assert_eq!(r.node("smooth").unwrap().status, NodeStatus::Executed);
    assert!(!r.ok);
    // `petri validate` reports it as a problem.
    let o = petri(&["validate", f.to_str().unwrap()], dir.path());
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("unknown node type 'segment.cellpose_v9'"), "{}", o.stderr);
    // `petri run` runs the rest and says the branch was blocked.
    let out = dir.path().join("o");
    let o = petri(&["run", f.to_str().unwrap(), "--out", out.to_str().unwrap()], dir.path());
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("future: skipped"), "{}", o.stderr);
}

#[test]
fn fmt_is_idempotent_and_check_detects_non_canonical_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("g.ron");
    let src = std::fs::read_to_string(root().join("graphs/examples/nuclei-threshold.ron")).unwrap();
    // Scramble: one line, keys out of order, extra spaces.
    let loose = src.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    std::fs::write(&f, &loose).unwrap();
    let o = petri(&["fmt", "--check", f.to_str().unwrap()], dir.path());
    assert_eq!(o.code, 1);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), loose, "--check must not write");
    assert_eq!(petri(&["fmt", f.to_str().unwrap()], dir.path()).code, 0);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), src);
    assert_eq!(petri(&["fmt", "--check", f.to_str().unwrap()], dir.path()).code, 0);
}

#[test]
fn docs_nodes_md_is_up_to_date() {
    let registry = petri::registry().unwrap();
    let want = petri::nodes_doc::markdown(&registry);
    let have = std::fs::read_to_string(root().join("docs/nodes.md")).unwrap_or_default();
    assert!(
        have == want,
        "docs/nodes.md is stale: regenerate it with `cargo run -p petri -- nodes --markdown > docs/nodes.md`"
    );
}

#[test]
fn node_catalogue_json_has_the_documented_shape() {
    let work = tempfile::tempdir().unwrap();
    let o = petri(&["nodes", "--json"], work.path());
    assert_eq!(o.code, 0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let nodes = v.as_array().unwrap();
    assert!(nodes.len() >= 7);
    let g = nodes.iter().find(|n| n["type"] == "image.gaussian").unwrap();
    for k in ["type", "version", "category", "doc", "inputs", "outputs", "params"] {
        assert!(g.get(k).is_some(), "missing {k}");
    }
    let p = &g["params"][0];
    for k in ["name", "kind", "default", "min", "max", "choices", "doc"] {
        assert!(p.get(k).is_some(), "param missing {k}");
    }
    assert_eq!(g["inputs"][0]["required"], true);
    // Sorted by type id.
    let ids: Vec<&str> = nodes.iter().map(|n| n["type"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}
