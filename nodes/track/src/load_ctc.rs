//! `io.load_ctc`: reads Cell Tracking Challenge tracking data: ground truth
//! (`man_trackNNN.tif` + `man_track.txt`, in a `TRA` folder or the folder itself) or a result
//! (`maskNNN.tif` + `res_track.txt`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use petri_api::{
    Axis, Fingerprint, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, Pixel, PortType, Stack,
    Value,
};
use rayon::prelude::*;

use crate::ctc::{frame_files, parse_tracks, read_labels_tiff};
use crate::tracks::{Track, tracks_table};

/// Which kind of CTC folder to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Auto,
    GroundTruth,
    Result,
}

/// The files a CTC folder holds: the track text file and the frame masks, in frame order.
pub fn ctc_files(folder: &Path, kind: Kind) -> Result<(PathBuf, Vec<PathBuf>), NodeError> {
    let gt_dir =
        if folder.join("TRA").join("man_track.txt").is_file() { folder.join("TRA") } else { folder.to_path_buf() };
    let gt = gt_dir.join("man_track.txt").is_file();
    let res = folder.join("res_track.txt").is_file();
    let (dir, txt, prefix) = match (kind, gt, res) {
        (Kind::GroundTruth, true, _) | (Kind::Auto, true, _) => (gt_dir.clone(), "man_track.txt", "man_track"),
        (Kind::Result, _, true) | (Kind::Auto, false, true) => (folder.to_path_buf(), "res_track.txt", "mask"),
        (Kind::GroundTruth, false, _) => {
            return Err(NodeError::io(folder, "no man_track.txt here or in TRA/ (not CTC tracking ground truth)"));
        }
        (Kind::Result, _, false) => return Err(NodeError::io(folder, "no res_track.txt here (not a CTC result)")),
        (Kind::Auto, false, false) => {
            return Err(NodeError::io(folder, "neither man_track.txt (ground truth) nor res_track.txt (result) found"));
        }
    };
    let frames = frame_files(&dir, prefix).map_err(|e| NodeError::io(&dir, e))?;
    if frames.is_empty() {
        return Err(NodeError::io(&dir, format!("no {prefix}NNN.tif files")));
    }
    Ok((dir.join(txt), frames))
}

/// Reads a CTC folder: labels T×(Z)×Y×X (u32, pixel values = track ids) and the tracks.
pub fn load_ctc(folder: &Path, kind: Kind) -> Result<(Stack, Vec<Track>), NodeError> {
    let (txt, frames) = ctc_files(folder, kind)?;
    let text = std::fs::read_to_string(&txt).map_err(|e| NodeError::io(&txt, e))?;
    let tracks = parse_tracks(&text).map_err(|e| NodeError::io(&txt, e))?;
    let vols: Vec<(Vec<u32>, [usize; 3])> =
        frames.par_iter().map(|p| read_labels_tiff(p).map_err(|e| NodeError::io(p, e))).collect::<Result<_, _>>()?;
    let zyx = vols[0].1;
    if let Some((i, v)) = vols.iter().enumerate().find(|(_, v)| v.1 != zyx) {
        return Err(NodeError::io(
            &frames[i],
            format!("frame is {:?} (z, y, x) but frame 0 is {zyx:?}: all frames must have one size", v.1),
        ));
    }
    let nt = frames.len();
    if let Some(t) = tracks.iter().find(|t| t.end >= nt) {
        return Err(NodeError::io(
            &txt,
            format!("track {} ends at frame {} but there are only {nt} frames", t.id, t.end),
        ));
    }
    let data: Vec<u32> = vols.into_iter().flat_map(|v| v.0).collect();
    let axes: &[Axis] = if zyx[0] > 1 { &[Axis::T, Axis::Z] } else { &[Axis::T] };
    let stack = Stack::new([nt, 1, zyx[0], zyx[1], zyx[2]], axes, u32::into_buffer(data))
        .map_err(|e| NodeError::io(folder, e.to_string()))?;
    Ok((stack, tracks))
}

fn kind(params: &Params) -> Result<Kind, NodeError> {
    Ok(match params.str("kind")? {
        "ground_truth" => Kind::GroundTruth,
        "result" => Kind::Result,
        _ => Kind::Auto,
    })
}

pub struct LoadCtc;

impl Node for LoadCtc {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "io.load_ctc",
            1,
            "io",
            "Reads Cell Tracking Challenge tracking data: ground truth (man_trackNNN.tif + man_track.txt) or a \
             result (maskNNN.tif + res_track.txt).",
        )
        .param(
            ParamSpec::input_path(
                "folder",
                "",
                &[],
                "The CTC folder: a result folder, a TRA ground-truth folder, or a sequence's _GT folder holding \
                 TRA. Relative paths are relative to the graph file's folder.",
            )
            .folder_ok(),
        )
        .param(ParamSpec::choice(
            "kind",
            &["auto", "ground_truth", "result"],
            "auto",
            "What to read: 'auto' takes ground truth if man_track.txt is there, else a result.",
        ))
        .output("labels", PortType::Labels, "The masks over time; each pixel value is a track id.")
        .output("tracks", PortType::Tracks, "The tracks: id, first frame, last frame, parent (0 = none).")
    }

    /// Digest of the names and contents of every file read, so edited data is read again.
    fn fingerprint(&self, params: &Params) -> Result<Option<Fingerprint>, NodeError> {
        let folder = params.path("folder")?;
        let (txt, frames) = ctc_files(&folder, kind(params)?)?;
        let mut h = blake3::Hasher::new();
        for p in std::iter::once(&txt).chain(&frames) {
            let (digest, bytes) = petri_api::hash_file(p).map_err(|e| NodeError::io(p, e))?;
            h.update(p.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
            h.update(&bytes.to_le_bytes());
            h.update(digest.as_bytes());
        }
        Ok(Some(*h.finalize().as_bytes()))
    }

    fn run(&self, _ctx: &NodeCtx, params: &Params, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (labels, tracks) = load_ctc(&params.path("folder")?, kind(params)?)?;
        Ok(Outputs::new()
            .with("labels", Value::Labels(labels))
            .with("tracks", Value::Tracks(Arc::new(tracks_table(&tracks)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::save_ctc::save_ctc;
    use std::collections::BTreeMap;

    #[test]
    fn save_then_load_round_trip_with_gap_and_division() {
        // 4 frames of 1×4: track 1 at frames 0, 1 and 3 (a gap at 2); track 5 divides into 6
        // and 7 at frame 2.
        let lab: Vec<u32> = vec![1, 0, 5, 0, 1, 0, 5, 0, 0, 6, 0, 7, 1, 6, 0, 7];
        let s = Stack::new([4, 1, 1, 1, 4], &[Axis::T], u32::into_buffer(lab)).unwrap();
        let tracks = vec![
            Track { id: 1, begin: 0, end: 3, parent: 0 },
            Track { id: 5, begin: 0, end: 1, parent: 0 },
            Track { id: 6, begin: 2, end: 3, parent: 5 },
            Track { id: 7, begin: 2, end: 3, parent: 5 },
        ];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mask009.tif"), b"stale").unwrap();
        let written = save_ctc(&s, &tracks, dir.path()).unwrap();
        assert!(!dir.path().join("mask009.tif").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("res_track.txt")).unwrap(),
            "1 0 1 0\n5 0 1 0\n6 2 3 5\n7 2 3 5\n8 3 3 1\n"
        );
        let (back, tr) = load_ctc(dir.path(), Kind::Auto).unwrap();
        assert_eq!(tr, written);
        assert_eq!(back.axes_string(), "TYX");
        assert_eq!(back.pixels::<u32>().unwrap(), &[1, 0, 5, 0, 1, 0, 5, 0, 0, 6, 0, 7, 8, 6, 0, 7]);
        // The fingerprint changes when a mask changes.
        let params = |d: &Path| {
            Params::new(BTreeMap::from([
                ("folder".to_string(), petri_api::ParamValue::Str(d.display().to_string())),
                ("kind".to_string(), petri_api::ParamValue::Str("auto".into())),
            ]))
        };
        let f1 = LoadCtc.fingerprint(&params(dir.path())).unwrap();
        save_ctc(&s.with_pixels(vec![1u32, 0, 5, 0, 1, 0, 5, 0, 0, 6, 0, 7, 1, 6, 0, 0]).unwrap(), &tracks, dir.path())
            .unwrap();
        assert_ne!(f1, LoadCtc.fingerprint(&params(dir.path())).unwrap());
    }

    #[test]
    fn clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_ctc(dir.path(), Kind::Auto).unwrap_err().to_string();
        assert!(e.contains("neither man_track.txt"), "{e}");
        std::fs::write(dir.path().join("res_track.txt"), "1 0 0 0\n").unwrap();
        std::fs::write(dir.path().join("mask000.tif"), b"not a tiff").unwrap();
        let e = load_ctc(dir.path(), Kind::Auto).unwrap_err().to_string();
        assert!(e.contains("mask000.tif") && e.contains("TIFF"), "{e}");
        let s = Stack::new([1, 1, 1, 1, 2], &[Axis::T], u32::into_buffer(vec![70000, 0])).unwrap();
        let e = save_ctc(&s, &[Track { id: 70000, begin: 0, end: 0, parent: 0 }], dir.path()).unwrap_err().to_string();
        assert!(e.contains("16-bit"), "{e}");
    }
}
