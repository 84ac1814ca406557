//! `io.save_ctc`: writes tracked labels in the Cell Tracking Challenge result format
//! (`maskNNN.tif` + `res_track.txt`), ready for the CTC's evaluation tools.

use std::path::Path;
use std::sync::Arc;

use petri_api::{
    FileRef, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value,
};
use rayon::prelude::*;

use crate::ctc::{encode_u16, format_tracks, split_gaps, write_atomic};
use crate::tracks::{Track, tracks_from_table};

/// Writes `labels` (T×Y×X or T×Z×Y×X, pixel values = track ids) and `tracks` into `folder`.
/// Tracks with missing frames are split into parent-linked segments as the format requires.
/// Earlier `maskNNN.tif` files in the folder that this run does not rewrite are removed, so the
/// folder holds exactly one result. Returns the tracks as written.
pub fn save_ctc(labels: &Stack, tracks: &[Track], folder: &Path) -> Result<Vec<Track>, NodeError> {
    let lab = labels.pixels::<u32>().ok_or_else(|| NodeError::input("labels", "expected u32 labels"))?;
    if labels.c() != 1 {
        return Err(NodeError::input("labels", "CTC masks hold one channel"));
    }
    let vlen = labels.volume_len();
    let mut lab = lab.to_vec();
    let ctc_tracks = split_gaps(&mut lab, vlen, tracks).map_err(|e| NodeError::input("tracks", e))?;
    if let Some(t) = ctc_tracks.iter().find(|t| t.id > u16::MAX as u32) {
        return Err(NodeError::input(
            "labels",
            format!("track id {} does not fit the CTC's 16-bit masks (at most 65535 tracks)", t.id),
        ));
    }
    let nt = labels.t();
    let width = format!("{}", nt.saturating_sub(1)).len().max(3);
    let name = |t: usize| format!("mask{t:0width$}.tif");
    std::fs::create_dir_all(folder).map_err(|e| NodeError::io(folder, e))?;
    let zyx = labels.zyx();
    (0..nt).into_par_iter().try_for_each(|t| {
        let data: Vec<u16> = lab[t * vlen..(t + 1) * vlen].iter().map(|&v| v as u16).collect();
        let path = folder.join(name(t));
        let bytes = encode_u16(&data, zyx).map_err(|e| NodeError::io(&path, e))?;
        write_atomic(&path, &bytes).map_err(|e| NodeError::io(&path, e))
    })?;
    // Stale masks of an earlier, longer result would be read as extra frames.
    if let Ok(rd) = std::fs::read_dir(folder) {
        let keep: std::collections::BTreeSet<String> = (0..nt).map(name).collect();
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            let is_mask = n
                .strip_prefix("mask")
                .and_then(|r| r.strip_suffix(".tif"))
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
            if is_mask && !keep.contains(&n) {
                std::fs::remove_file(e.path()).map_err(|err| NodeError::io(e.path(), err))?;
            }
        }
    }
    let txt = folder.join("res_track.txt");
    write_atomic(&txt, format_tracks(&ctc_tracks).as_bytes()).map_err(|e| NodeError::io(&txt, e))?;
    Ok(ctc_tracks)
}

pub struct SaveCtc;

impl Node for SaveCtc {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "io.save_ctc",
            1,
            "io",
            "Saves tracked objects in the Cell Tracking Challenge format (maskNNN.tif files and res_track.txt), \
             for the CTC's evaluation tools and other trackers.",
        )
        .input("labels", PortType::Labels, "Tracked labels: each pixel value is a track id (from track.link).")
        .input("tracks", PortType::Tracks, "The tracks (id, first frame, last frame, parent) of those labels.")
        .output("file", PortType::File, "The res_track.txt written (the masks are beside it).")
        .param(ParamSpec::output_path(
            "folder",
            "ctc",
            &[],
            "Folder to write the masks and res_track.txt into (created if needed; an earlier CTC result there is \
             replaced). Relative paths are relative to the run's output folder.",
        ))
    }

    fn run(&self, _ctx: &NodeCtx, params: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let labels = inputs.labels("labels")?;
        let tracks = match inputs.get("tracks") {
            Some(Value::Tracks(t)) | Some(Value::Table(t)) => {
                tracks_from_table(t).map_err(|e| NodeError::input("tracks", e))?
            }
            Some(v) => return Err(NodeError::input("tracks", format!("expected tracks, got {}", v.summary()))),
            None => return Err(NodeError::input("tracks", "not connected")),
        };
        let folder = params.path("folder")?;
        save_ctc(labels, &tracks, &folder)?;
        let txt = folder.join("res_track.txt");
        let f = FileRef::of(&txt).map_err(|e| NodeError::io(&txt, e))?;
        Ok(Outputs::new().with("file", Value::File(Arc::new(f))))
    }
}
