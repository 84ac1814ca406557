//! Tracks as Petri passes them between nodes (`Value::Tracks`): a table with columns
//! `id, begin, end, parent` (CTC's res_track.txt), plus helpers shared by the track nodes.

use petri_api::{ColumnData, Table};

/// One track: an id that labels the same object through time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Track {
    pub id: u32,
    /// First and last frame with a detection (inclusive).
    pub begin: usize,
    pub end: usize,
    /// The track this one divided from (0 = none).
    pub parent: u32,
}

/// The `Tracks` table (sorted by id).
pub fn tracks_table(tracks: &[Track]) -> Table {
    let mut t: Vec<Track> = tracks.to_vec();
    t.sort();
    let col = |f: &dyn Fn(&Track) -> i64| ColumnData::I64(t.iter().map(f).collect());
    let mut table = Table::new();
    // Equal lengths by construction: these pushes cannot fail.
    let _ = table.push("id", col(&|x| x.id as i64));
    let _ = table.push("begin", col(&|x| x.begin as i64));
    let _ = table.push("end", col(&|x| x.end as i64));
    let _ = table.push("parent", col(&|x| x.parent as i64));
    table
}

/// Reads a `Tracks` table back, checking its columns and values.
pub fn tracks_from_table(t: &Table) -> Result<Vec<Track>, String> {
    let get = |name: &str| -> Result<Vec<i64>, String> {
        match t.column(name) {
            Some(ColumnData::I64(v)) => Ok(v.clone()),
            Some(ColumnData::F64(v)) if v.iter().all(|x| x.fract() == 0.0 && x.is_finite()) => {
                Ok(v.iter().map(|&x| x as i64).collect())
            }
            Some(_) => Err(format!("column '{name}' must hold whole numbers")),
            None => Err(format!("the tracks table has no '{name}' column (expected id, begin, end, parent)")),
        }
    };
    let (id, begin, end, parent) = (get("id")?, get("begin")?, get("end")?, get("parent")?);
    let mut out = Vec::with_capacity(id.len());
    for i in 0..id.len() {
        let bad = |what: &str| format!("track on row {i} (id {}): {what}", id[i]);
        if id[i] <= 0 || id[i] > u32::MAX as i64 {
            return Err(bad("ids must be between 1 and 4294967295"));
        }
        if begin[i] < 0 || end[i] < begin[i] {
            return Err(bad(&format!("begin {} and end {} are not a valid frame range", begin[i], end[i])));
        }
        if parent[i] < 0 || parent[i] > u32::MAX as i64 || parent[i] == id[i] {
            return Err(bad(&format!("invalid parent {}", parent[i])));
        }
        out.push(Track { id: id[i] as u32, begin: begin[i] as usize, end: end[i] as usize, parent: parent[i] as u32 });
    }
    let mut ids: Vec<u32> = out.iter().map(|t| t.id).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("track id {} appears twice", w[0]));
    }
    Ok(out)
}

/// Recomputes begin/end of every id present in a T×volume label buffer; ids not present are
/// dropped. Parents are taken from `old` by id (0 if the parent disappeared).
pub fn tracks_from_labels(labels: &[u32], vlen: usize, old: &[Track]) -> Vec<Track> {
    use rustc_hash::FxHashMap;
    let mut range: FxHashMap<u32, (usize, usize)> = FxHashMap::default();
    for (t, frame) in labels.chunks_exact(vlen).enumerate() {
        let mut prev = 0u32;
        for &v in frame {
            if v != 0 && v != prev {
                let e = range.entry(v).or_insert((t, t));
                e.1 = t;
            }
            prev = v;
        }
    }
    let parents: FxHashMap<u32, u32> = old.iter().map(|t| (t.id, t.parent)).collect();
    let mut out: Vec<Track> = range
        .iter()
        .map(|(&id, &(b, e))| {
            let p = parents.get(&id).copied().unwrap_or(0);
            Track { id, begin: b, end: e, parent: if range.contains_key(&p) { p } else { 0 } }
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trip_and_validation() {
        let tr = vec![Track { id: 2, begin: 3, end: 5, parent: 1 }, Track { id: 1, begin: 0, end: 2, parent: 0 }];
        let t = tracks_table(&tr);
        assert_eq!(t.column("id").unwrap(), &ColumnData::I64(vec![1, 2]));
        let back = tracks_from_table(&t).unwrap();
        assert_eq!(back, vec![tr[1], tr[0]]);
        let bad = Table::new().with("id", ColumnData::I64(vec![1])).unwrap();
        assert!(tracks_from_table(&bad).unwrap_err().contains("no 'begin' column"));
        let dup = tracks_table(&[tr[0], tr[0]]);
        assert!(tracks_from_table(&dup).unwrap_err().contains("twice"));
    }
}
