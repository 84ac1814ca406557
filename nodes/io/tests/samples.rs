//! The bundled samples and the shared real data load exactly as tifffile reads them.

mod common;

use std::path::Path;

use petri_api::NodeCtx;
use petri_io::{LoadOptions, load_stack};

#[test]
fn samples_match_tifffile() {
    let exp = petri_testkit::read_json(&common::fixture("samples_expected.json"));
    let files = exp["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for e in files {
        let name = e["file"].as_str().unwrap();
        let s = load_stack(&petri_testkit::sample(name), &LoadOptions::default(), &NodeCtx::detached()).unwrap();
        common::check_expected(&s, e, name);
    }
}

/// Runs when the shared data folder sits beside the repository (`../shared/data`), as on the
/// developers' machines and in CI; says so and passes otherwise.
#[test]
fn shared_data_matches_tifffile() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if !base.is_dir() {
        eprintln!("SKIPPED shared_data_matches_tifffile: {} not found", base.display());
        return;
    }
    let exp = petri_testkit::read_json(&common::fixture("shared_expected.json"));
    let mut n = 0;
    for e in exp["files"].as_array().unwrap() {
        let name = e["file"].as_str().unwrap();
        let p = base.join(name);
        if !p.exists() {
            eprintln!("SKIPPED {name}: not in {}", base.display());
            continue;
        }
        let s = load_stack(&p, &LoadOptions::default(), &NodeCtx::detached()).unwrap();
        common::check_expected(&s, e, name);
        n += 1;
    }
    eprintln!("checked {n} shared files against tifffile");
}
