//! Tracking verification on the Cell Tracking Challenge's Fluo-N2DH-SIM+ ground truth.
//!
//! The data may not be redistributed, so the test fetches it itself with
//! `scripts/fetch-ctc.sh` into `~/.cache/petri-testdata/ctc` (or `$PETRI_CTC_DATA`) and prints
//! a clear SKIPPED line when it cannot. Every frame's ids are replaced by random ones, so only
//! the tracker can recover the tracks; then:
//! * identity must be kept on ≥ 99 % of the ground truth's non-division links;
//! * ≥ 90 % of the divisions of man_track.txt must be found;
//! * py-ctcmetrics (installed by `scripts/score_ctc.sh` into a private venv, when python3 and
//!   PyPI are reachable) must give TRA ≥ 0.98.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use petri_api::{Pixel, Stack};
use petri_track::link::{LinkParams, link};
use petri_track::load_ctc::{Kind, load_ctc};
use petri_track::save_ctc::save_ctc;

use common::{correspondence, evaluate, scramble};

fn cache() -> PathBuf {
    match std::env::var_os("PETRI_CTC_DATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/petri-testdata/ctc"),
    }
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// The SIM+ TRA folder, fetched if needed; `None` (with a SKIPPED message) if impossible.
pub fn sim_tra() -> Option<PathBuf> {
    let dir = cache().join("fluo_sim_tra");
    if !dir.join("man_track.txt").is_file() {
        eprintln!("fetching the CTC sample data into {} ...", cache().display());
        let ok = Command::new("bash")
            .arg(scripts().join("fetch-ctc.sh"))
            .arg(cache())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok || !dir.join("man_track.txt").is_file() {
            eprintln!(
                "SKIPPED: the CTC SIM+ data is not in {} and scripts/fetch-ctc.sh could not fetch it \
                 (needs python3 with pip and network access to PyPI)",
                dir.display()
            );
            return None;
        }
    }
    Some(dir)
}

#[test]
fn sim_plus_tracks_are_recovered_from_scrambled_ids() {
    let Some(tra) = sim_tra() else { return };
    let (gt, gt_tracks) = load_ctc(&tra, Kind::GroundTruth).unwrap();
    let scrambled = scramble(&gt, 7);
    // Default parameters (30 px links, 40 px divisions, pixel units as SIM+ is uncalibrated).
    let r = link(&scrambled, None, None, &LinkParams::default()).unwrap();
    let made = r.tracks.iter().filter(|t| t.parent != 0).count() / 2;
    let s = evaluate(&gt, &gt_tracks, &r.labels, &r.tracks);
    let identity = s.kept as f64 / s.links as f64;
    let div = s.found as f64 / s.divisions as f64;
    eprintln!(
        "SIM+: identity kept on {}/{} non-division links ({:.4}); divisions found {}/{} ({:.3}), {} made; \
         {} tracks (truth {})",
        s.kept,
        s.links,
        identity,
        s.found,
        s.divisions,
        div,
        made,
        r.tracks.len(),
        gt_tracks.len()
    );
    assert!(identity >= 0.99, "identity {identity}");
    assert!(div >= 0.90, "divisions {div}");

    // The CTC's own metrics on the saved result.
    let out = tempfile::tempdir().unwrap();
    save_ctc(&r.labels, &r.tracks, out.path()).unwrap();
    let venv = cache().join("venv-ctcmetrics");
    let res = Command::new("bash").arg(scripts().join("score_ctc.sh")).arg(out.path()).arg(&tra).arg(&venv).output();
    match res {
        Ok(o) if o.status.success() => {
            let line = String::from_utf8_lossy(&o.stdout);
            let v: serde_json::Value = serde_json::from_str(line.trim()).expect("score_ctc.sh prints JSON");
            eprintln!("py-ctcmetrics: {v}");
            assert_eq!(v["Valid"].as_f64(), Some(1.0), "the CTC result is not valid: {v}");
            let tra_score = v["TRA"].as_f64().unwrap();
            assert!(tra_score >= 0.98, "TRA {tra_score}");
        }
        Ok(o) => eprintln!(
            "SKIPPED py-ctcmetrics scoring: scripts/score_ctc.sh failed (needs python3 and PyPI the first time): {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => eprintln!("SKIPPED py-ctcmetrics scoring: cannot run bash: {e}"),
    }
}

#[test]
fn scrambling_really_scrambles() {
    let lab =
        Stack::new([2, 1, 1, 1, 4], &[petri_api::Axis::T], u32::into_buffer(vec![1, 1, 2, 0, 1, 2, 2, 0])).unwrap();
    let s = scramble(&lab, 1);
    let c = correspondence(&lab, &s);
    assert_eq!(c[0].len(), 2);
    // Masks are unchanged; ids are a bijection per frame.
    let px = s.pixels::<u32>().unwrap();
    assert_eq!(px[0], px[1]);
    assert_ne!(px[0], px[2]);
    assert_eq!(px[3], 0);
}
