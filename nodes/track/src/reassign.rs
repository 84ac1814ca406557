//! Track correction for the engine and the GUI: move an object (or the rest of a track) to
//! another track. A pure function: (labels, tracks) in, (labels, tracks) out.
//!
//! The edit swaps two ids in the chosen frames: pixels of track `from` become `to` and pixels
//! of `to` (if any) become `from`. So the same call fixes an identity switch (two tracks that
//! exchanged ids from some frame on), moves a mis-linked object into the right track, or, with
//! a new id, splits a track in two. Afterwards every track's first and last frame come from
//! the pixels, and parent links follow the objects: a track's parent is the track that now
//! holds the mother's last detection (dropped if that track does not end before the child
//! begins).

use petri_api::{Stack, Table};
use rustc_hash::FxHashMap;

use crate::tracks::{Track, tracks_from_labels, tracks_from_table, tracks_table};

/// Which frames an edit covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only the given frame.
    Frame,
    /// The given frame and every later one.
    FromFrame,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReassignError {
    #[error("frame {frame} does not exist (the labels have {frames} frames)")]
    NoFrame { frame: usize, frames: usize },
    #[error("track {id} has no object in frame {frame}")]
    NoObject { id: u32, frame: usize },
    #[error("the target track must differ from the object's track ({0})")]
    SameTrack(u32),
    #[error("track ids start at 1 (0 is background)")]
    ZeroId,
    #[error("the labels are not u32 labels with one channel")]
    NotLabels,
    #[error("invalid tracks table: {0}")]
    Tracks(String),
}

/// [`reassign_tracks`] on a `Tracks` table, for callers holding `Value::Tracks`.
pub fn reassign(
    labels: &Stack,
    tracks: &Table,
    frame: usize,
    from: u32,
    to: u32,
    scope: Scope,
) -> Result<(Stack, Table), ReassignError> {
    let tr = tracks_from_table(tracks).map_err(ReassignError::Tracks)?;
    let (l, t) = reassign_tracks(labels, &tr, frame, from, to, scope)?;
    Ok((l, tracks_table(&t)))
}

/// Moves the object of track `from` in `frame` (and, with [`Scope::FromFrame`], all its later
/// objects) to track `to`, swapping with whatever `to` holds there. See the module docs.
pub fn reassign_tracks(
    labels: &Stack,
    tracks: &[Track],
    frame: usize,
    from: u32,
    to: u32,
    scope: Scope,
) -> Result<(Stack, Vec<Track>), ReassignError> {
    let px = labels.pixels::<u32>().ok_or(ReassignError::NotLabels)?;
    if labels.c() != 1 {
        return Err(ReassignError::NotLabels);
    }
    if from == 0 || to == 0 {
        return Err(ReassignError::ZeroId);
    }
    if from == to {
        return Err(ReassignError::SameTrack(from));
    }
    let nt = labels.t();
    if frame >= nt {
        return Err(ReassignError::NoFrame { frame, frames: nt });
    }
    let vlen = labels.volume_len();
    if !px[frame * vlen..(frame + 1) * vlen].contains(&from) {
        return Err(ReassignError::NoObject { id: from, frame });
    }
    let affected = |t: usize| match scope {
        Scope::Frame => t == frame,
        Scope::FromFrame => t >= frame,
    };
    let swap = |v: u32| {
        if v == from {
            to
        } else if v == to {
            from
        } else {
            v
        }
    };
    let mut out = px.to_vec();
    for t in 0..nt {
        if affected(t) {
            for v in &mut out[t * vlen..(t + 1) * vlen] {
                *v = swap(*v);
            }
        }
    }
    let old: FxHashMap<u32, Track> = tracks.iter().map(|t| (t.id, *t)).collect();
    // Begins/ends from the pixels; parents recomputed below.
    let mut new = tracks_from_labels(&out, vlen, &[]);
    let ends: FxHashMap<u32, usize> = new.iter().map(|t| (t.id, t.end)).collect();
    // Old id of the object a track holds at frame `t`, and new id of an old track's object at `t`.
    let old_id_at = |id: u32, t: usize| if affected(t) { swap(id) } else { id };
    for tr in &mut new {
        // The mother of this track's first object, as the old tracks say.
        let first_old = old_id_at(tr.id, tr.begin);
        let mother = old.get(&first_old).map_or(0, |t| t.parent);
        tr.parent = 0;
        if mother != 0
            && let Some(m) = old.get(&mother)
        {
            let holder = old_id_at(mother, m.end);
            if holder != tr.id && ends.get(&holder).is_some_and(|&e| e < tr.begin) {
                tr.parent = holder;
            }
        }
    }
    let stack = labels.with_pixels(out).map_err(|_| ReassignError::NotLabels)?;
    Ok((stack, new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_api::{Axis, Pixel};

    /// T frames of 1×2 pixels.
    fn lab(frames: &[[u32; 2]]) -> Stack {
        let v: Vec<u32> = frames.iter().flatten().copied().collect();
        Stack::new([frames.len(), 1, 1, 1, 2], &[Axis::T], u32::into_buffer(v)).unwrap()
    }

    fn px(s: &Stack) -> Vec<[u32; 2]> {
        s.pixels::<u32>().unwrap().chunks(2).map(|c| [c[0], c[1]]).collect()
    }

    fn tr(id: u32, begin: usize, end: usize, parent: u32) -> Track {
        Track { id, begin, end, parent }
    }

    #[test]
    fn fixes_an_identity_switch() {
        // Tracks 1 (left) and 2 (right) swap ids from frame 2 on.
        let l = lab(&[[1, 2], [1, 2], [2, 1], [2, 1]]);
        let t = [tr(1, 0, 3, 0), tr(2, 0, 3, 0)];
        let (l2, t2) = reassign_tracks(&l, &t, 2, 2, 1, Scope::FromFrame).unwrap();
        assert_eq!(px(&l2), vec![[1, 2]; 4]);
        assert_eq!(t2, t.to_vec());
    }

    #[test]
    fn splits_a_track_with_a_new_id() {
        let l = lab(&[[1, 0], [1, 0], [1, 0]]);
        let (l2, t2) = reassign_tracks(&l, &[tr(1, 0, 2, 0)], 1, 1, 9, Scope::FromFrame).unwrap();
        assert_eq!(px(&l2), vec![[1, 0], [9, 0], [9, 0]]);
        assert_eq!(t2, vec![tr(1, 0, 0, 0), tr(9, 1, 2, 0)]);
    }

    #[test]
    fn moves_one_object_into_a_gap() {
        // Track 1 is missing at frame 1, where a spurious track 5 holds its object.
        let l = lab(&[[1, 0], [5, 0], [1, 0]]);
        let t = [tr(1, 0, 2, 0), tr(5, 1, 1, 0)];
        let (l2, t2) = reassign_tracks(&l, &t, 1, 5, 1, Scope::Frame).unwrap();
        assert_eq!(px(&l2), vec![[1, 0]; 3]);
        assert_eq!(t2, vec![tr(1, 0, 2, 0)]);
    }

    #[test]
    fn daughters_follow_their_mothers_last_object() {
        // Mother 1 (frames 0–1) divides into 2 and 3 at frame 2. Splitting the mother at
        // frame 1 gives the daughters the new id as parent.
        let l = lab(&[[1, 0], [1, 0], [2, 3], [2, 3]]);
        let t = [tr(1, 0, 1, 0), tr(2, 2, 3, 1), tr(3, 2, 3, 1)];
        let (_, t2) = reassign_tracks(&l, &t, 1, 1, 7, Scope::Frame).unwrap();
        assert_eq!(t2, vec![tr(1, 0, 0, 0), tr(2, 2, 3, 7), tr(3, 2, 3, 7), tr(7, 1, 1, 0)]);
        // Moving daughter 3 into track 2's slot swaps them; both keep mother 1.
        let (l3, t3) = reassign_tracks(&l, &t, 2, 3, 2, Scope::FromFrame).unwrap();
        assert_eq!(px(&l3)[2], [3, 2]);
        assert_eq!(t3, t.to_vec());
        // Through the Tracks table.
        let (_, table) = reassign(&l, &tracks_table(&t), 1, 1, 7, Scope::Frame).unwrap();
        assert_eq!(tracks_from_table(&table).unwrap(), t2);
    }

    #[test]
    fn refuses_bad_edits() {
        let l = lab(&[[1, 0], [1, 2]]);
        let t = [tr(1, 0, 1, 0), tr(2, 1, 1, 0)];
        assert_eq!(
            reassign_tracks(&l, &t, 0, 2, 1, Scope::Frame).unwrap_err(),
            ReassignError::NoObject { id: 2, frame: 0 }
        );
        assert_eq!(
            reassign_tracks(&l, &t, 5, 1, 2, Scope::Frame).unwrap_err(),
            ReassignError::NoFrame { frame: 5, frames: 2 }
        );
        assert_eq!(reassign_tracks(&l, &t, 0, 1, 1, Scope::Frame).unwrap_err(), ReassignError::SameTrack(1));
        assert_eq!(reassign_tracks(&l, &t, 0, 1, 0, Scope::Frame).unwrap_err(), ReassignError::ZeroId);
        let bad = Table::new();
        assert!(matches!(reassign(&l, &bad, 0, 1, 2, Scope::Frame), Err(ReassignError::Tracks(_))));
    }
}
