//! The Cell Tracking Challenge (CTC) file format: one 16-bit label TIFF per frame
//! (`maskNNN.tif` for results, `man_trackNNN.tif` for tracking ground truth; 3-D frames are
//! multi-page) whose pixel values are track ids, and a text file (`res_track.txt` /
//! `man_track.txt`) with one line `L B E P` per track: label, first frame, last frame, parent
//! (0 = none). A track must be present in every frame from B to E, so a track with a gap is
//! stored as two tracks, the second having the first as parent.
//!
//! TIFFs are read and written with the `tiff` crate directly (node crates do not depend on
//! each other, so `petri-io` is not used); every write is atomic.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::encoder::{TiffEncoder, colortype};

use crate::tracks::Track;

// Atomic writes: the one shared writer of every node (temporary file, fsync, rename).
pub use petri_api::fsutil::write_atomic;

/// Encodes a Z×Y×X volume of 16-bit labels as an uncompressed TIFF, one page per z.
pub fn encode_u16(data: &[u16], zyx: [usize; 3]) -> Result<Vec<u8>, String> {
    let [nz, ny, nx] = zyx;
    let mut buf = Cursor::new(Vec::new());
    {
        let mut enc = TiffEncoder::new(&mut buf).map_err(|e| format!("TIFF encoder: {e}"))?;
        let plane = ny * nx;
        for z in 0..nz {
            enc.write_image::<colortype::Gray16>(nx as u32, ny as u32, &data[z * plane..(z + 1) * plane])
                .map_err(|e| format!("TIFF write failed: {e}"))?;
        }
    }
    Ok(buf.into_inner())
}

/// Reads a label TIFF (every page, as Z) into u32. Accepts 8-, 16- and 32-bit unsigned
/// integer pixels. Returns the pixels and (z, y, x).
pub fn read_labels_tiff(path: &Path) -> Result<(Vec<u32>, [usize; 3]), String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut dec = Decoder::new(std::io::BufReader::new(f))
        .map_err(|e| format!("not a readable TIFF: {e}"))?
        .with_limits(Limits::unlimited());
    let (w, h) = dec.dimensions().map_err(|e| e.to_string())?;
    let mut out: Vec<u32> = Vec::new();
    let mut pages = 0usize;
    loop {
        let (pw, ph) = dec.dimensions().map_err(|e| e.to_string())?;
        if (pw, ph) != (w, h) {
            return Err(format!("page {pages} is {pw}×{ph} but page 0 is {w}×{h}"));
        }
        match dec.read_image().map_err(|e| format!("page {pages}: {e}"))? {
            DecodingResult::U8(v) => out.extend(v.into_iter().map(u32::from)),
            DecodingResult::U16(v) => out.extend(v.into_iter().map(u32::from)),
            DecodingResult::U32(v) => out.extend(v),
            _ => return Err(format!("page {pages}: labels must be 8-, 16- or 32-bit unsigned integers")),
        }
        pages += 1;
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| format!("page {pages}: {e}"))?;
    }
    let want = pages * h as usize * w as usize;
    if out.len() != want {
        return Err(format!("expected {want} pixels (one grey channel), got {}", out.len()));
    }
    Ok((out, [pages, h as usize, w as usize]))
}

/// `L B E P` lines.
pub fn format_tracks(tracks: &[Track]) -> String {
    let mut t = tracks.to_vec();
    t.sort();
    t.iter().map(|x| format!("{} {} {} {}\n", x.id, x.begin, x.end, x.parent)).collect()
}

/// Parses `L B E P` lines (blank lines ignored).
pub fn parse_tracks(text: &str) -> Result<Vec<Track>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("line {}: expected four whole numbers 'label begin end parent', got '{line}'", i + 1);
        if v.len() != 4 {
            return Err(bad());
        }
        let n: Vec<u64> = v.iter().map(|s| s.parse::<u64>()).collect::<Result<_, _>>().map_err(|_| bad())?;
        if n[0] == 0 || n[0] > u32::MAX as u64 || n[3] > u32::MAX as u64 || n[2] < n[1] {
            return Err(format!("line {}: invalid track '{line}' (label ≥ 1, end ≥ begin)", i + 1));
        }
        out.push(Track { id: n[0] as u32, begin: n[1] as usize, end: n[2] as usize, parent: n[3] as u32 });
    }
    Ok(out)
}

/// Frame files `<prefix>NNN.tif` in `dir`, by frame number. Errors if a number is missing.
pub fn frame_files(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut found: Vec<(usize, PathBuf)> = Vec::new();
    for e in rd {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name.strip_prefix(prefix).and_then(|r| r.strip_suffix(".tif").or(r.strip_suffix(".tiff")))
        else {
            continue;
        };
        if let Ok(n) = num.parse::<usize>()
            && num.chars().all(|c| c.is_ascii_digit())
        {
            found.push((n, e.path()));
        }
    }
    found.sort();
    for (i, (n, p)) in found.iter().enumerate() {
        if *n != i {
            return Err(format!(
                "frame {i} is missing (found {} next); expected {prefix}{i:03}.tif",
                p.file_name().and_then(|s| s.to_str()).unwrap_or("?")
            ));
        }
    }
    Ok(found.into_iter().map(|e| e.1).collect())
}

/// Makes tracks CTC-valid: every track present in each frame from its first to its last. A
/// track with missing frames is cut into segments; later segments get new ids (after the
/// largest id) and the previous segment as parent, and their pixels are relabelled. Daughters
/// point to their mother's last segment. `labels` is T×volume.
///
/// Parents come from `tracks` by id; every id in `labels` must have a row there.
pub fn split_gaps(labels: &mut [u32], vlen: usize, tracks: &[Track]) -> Result<Vec<Track>, String> {
    let nt = labels.len() / vlen.max(1);
    let parent_of: FxHashMap<u32, u32> = tracks.iter().map(|t| (t.id, t.parent)).collect();
    // Frames where each id is present.
    let mut frames: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
    for t in 0..nt {
        let mut seen: Vec<u32> = Vec::new();
        let mut prev = 0;
        for &v in &labels[t * vlen..(t + 1) * vlen] {
            if v != 0 && v != prev {
                seen.push(v);
            }
            prev = v;
        }
        seen.sort_unstable();
        seen.dedup();
        for v in seen {
            if !parent_of.contains_key(&v) {
                return Err(format!("label {v} in frame {t} has no row in the tracks table"));
            }
            frames.entry(v).or_default().push(t);
        }
    }
    let mut ids: Vec<u32> = frames.keys().copied().collect();
    ids.sort_unstable();
    let mut next = ids.last().copied().unwrap_or(0);
    let mut out: Vec<Track> = Vec::new();
    let mut last_segment: FxHashMap<u32, u32> = FxHashMap::default();
    // (frame, old id) → new id, for the pixels to relabel.
    let mut remap: Vec<FxHashMap<u32, u32>> = vec![FxHashMap::default(); nt];
    for &id in &ids {
        let fr = &frames[&id];
        let mut start = 0;
        let mut seg_id = id;
        let mut prev_seg = 0u32;
        for i in 1..=fr.len() {
            if i == fr.len() || fr[i] != fr[i - 1] + 1 {
                if prev_seg != 0 {
                    next = next.checked_add(1).ok_or("too many tracks for 32-bit ids")?;
                    seg_id = next;
                    for &f in &fr[start..i] {
                        remap[f].insert(id, seg_id);
                    }
                }
                out.push(Track { id: seg_id, begin: fr[start], end: fr[i - 1], parent: prev_seg });
                prev_seg = seg_id;
                start = i;
            }
        }
        last_segment.insert(id, prev_seg);
    }
    // Original parents (first segments only), pointing to the mother's last segment; a parent
    // that is absent from the labels, or that does not end before the child begins, is dropped.
    let ends: FxHashMap<u32, usize> = out.iter().map(|t| (t.id, t.end)).collect();
    for t in out.iter_mut() {
        if t.parent == 0 && ids.binary_search(&t.id).is_ok() {
            let p = parent_of.get(&t.id).copied().unwrap_or(0);
            if let Some(&seg) = last_segment.get(&p)
                && ends.get(&seg).is_some_and(|&e| e < t.begin)
            {
                t.parent = seg;
            }
        }
    }
    for (t, map) in remap.iter().enumerate() {
        if map.is_empty() {
            continue;
        }
        for v in &mut labels[t * vlen..(t + 1) * vlen] {
            if let Some(&n) = map.get(v) {
                *v = n;
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiff_round_trip_multi_page() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/mask000.tif");
        let data: Vec<u16> = (0..2 * 3 * 4).map(|i| (i * 1000) as u16).collect();
        write_atomic(&p, &encode_u16(&data, [2, 3, 4]).unwrap()).unwrap();
        let (v, zyx) = read_labels_tiff(&p).unwrap();
        assert_eq!(zyx, [2, 3, 4]);
        assert_eq!(v, data.iter().map(|&x| x as u32).collect::<Vec<_>>());
        assert!(std::fs::read_dir(p.parent().unwrap()).unwrap().count() == 1, "no temporary file left");
        std::fs::write(dir.path().join("bad.tif"), b"II*\0garbage").unwrap();
        assert!(read_labels_tiff(&dir.path().join("bad.tif")).is_err());
    }

    #[test]
    fn track_text_and_frame_files() {
        let t = parse_tracks("1 0 4 0\n\n2 5 9 1\n").unwrap();
        assert_eq!(format_tracks(&t), "1 0 4 0\n2 5 9 1\n");
        assert!(parse_tracks("1 0 x 0").unwrap_err().contains("line 1"));
        assert!(parse_tracks("1 5 4 0").unwrap_err().contains("end ≥ begin"));
        let dir = tempfile::tempdir().unwrap();
        for n in ["mask000.tif", "mask001.tif", "mask003.tif", "other.tif"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let e = frame_files(dir.path(), "mask").unwrap_err();
        assert!(e.contains("frame 2 is missing"), "{e}");
    }

    #[test]
    fn gaps_become_parent_linked_segments() {
        // 5 frames of 2 pixels: id 7 present at 0,1 then 3,4 (gap at 2); id 9 daughter of 7 at 4.
        let mut lab = vec![7, 0, 7, 0, 0, 0, 7, 0, 7, 9];
        let tracks = [Track { id: 7, begin: 0, end: 4, parent: 0 }, Track { id: 9, begin: 4, end: 4, parent: 7 }];
        let out = split_gaps(&mut lab, 2, &tracks).unwrap();
        assert_eq!(
            out,
            vec![
                Track { id: 7, begin: 0, end: 1, parent: 0 },
                Track { id: 9, begin: 4, end: 4, parent: 0 },
                Track { id: 10, begin: 3, end: 4, parent: 7 },
            ]
        );
        assert_eq!(lab, vec![7, 0, 7, 0, 0, 0, 10, 0, 10, 9]);
        let e = split_gaps(&mut [5, 0], 2, &tracks).unwrap_err();
        assert!(e.contains("label 5 in frame 0"), "{e}");
    }
}
