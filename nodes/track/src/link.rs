//! `track.link`: follows labelled objects through a time-lapse.
//!
//! Frame by frame, the tracks still alive are assigned to the new frame's objects by minimum
//! total cost (centroid distance in physical units, or 1 − IoU) with the Hungarian algorithm on
//! a rectangular matrix, gated by a maximum displacement. A track missing for up to `max_gap`
//! frames can still be re-linked (gap closing); after that it is lost (MIA's rule). A track
//! that disappears, or that continues into one object while a second unclaimed object of
//! similar size appears near it, becomes a mother with two daughter tracks. Object classes are
//! tracked independently. Rules in docs/algorithms/track.md.

use std::sync::Arc;

use petri_api::{
    ColumnData, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Table, Value,
};
use rustc_hash::FxHashMap;

use crate::assign::assign;
use crate::objects::{Obj, frame_objects};
use crate::tracks::{Track, tracks_table};

/// What a link costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Euclidean distance between centroids, in physical units.
    Distance,
    /// 1 − IoU of the two objects' masks (objects must overlap).
    Iou,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LinkParams {
    /// Largest centroid displacement of a link, in the labels' physical units.
    pub max_distance: f64,
    /// Largest number of missing frames a track may bridge.
    pub max_gap: usize,
    pub divisions: bool,
    /// Largest distance between a mother's last position and each daughter.
    pub division_distance: f64,
    /// How close the daughters' combined area must be to the mother's: min/max of the two
    /// must be at least this.
    pub division_size_ratio: f64,
    pub cost: Cost,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            max_distance: 30.0,
            max_gap: 2,
            divisions: true,
            division_distance: 40.0,
            division_size_ratio: 0.6,
            cost: Cost::Distance,
        }
    }
}

/// The tracks found, before any pixel is relabelled.
#[derive(Clone, Debug, PartialEq)]
pub struct Lineage {
    /// `assign[t][k]`: the track id of object `k` of frame `t` (objects sorted by label).
    pub assign: Vec<Vec<u32>>,
    /// Sorted by id (ids are 1, 2, 3, ... in order of creation).
    pub tracks: Vec<Track>,
    /// Class of each track, parallel to `tracks`.
    pub classes: Vec<u32>,
}

struct Rec {
    id: u32,
    class: u32,
    parent: u32,
    /// (frame, object index) of each detection, in frame order.
    det: Vec<(usize, usize)>,
    /// Divided: a mother is never extended again.
    closed: bool,
}

impl Rec {
    fn last(&self) -> (usize, usize) {
        self.det[self.det.len() - 1]
    }
}

fn dist(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Overlap counts between the objects of two frames: (label in a, label in b) → pixels.
pub type Overlaps = FxHashMap<(u32, u32), u64>;

/// Links objects frame to frame. `overlap(a, b)` gives the overlap counts of frames a and b
/// (only called for `Cost::Iou`).
pub fn link_objects(
    objs: &[Vec<Obj>],
    p: &LinkParams,
    overlap: &mut dyn FnMut(usize, usize) -> Overlaps,
) -> Result<Lineage, String> {
    let mut recs: Vec<Rec> = Vec::new();
    let mut assign_all: Vec<Vec<u32>> = Vec::with_capacity(objs.len());
    let mut cache: FxHashMap<(usize, usize), Overlaps> = FxHashMap::default();
    for (t, frame) in objs.iter().enumerate() {
        // What each object of this frame becomes: continues a track (rec index), or starts a
        // new one with a parent (rec index of the mother) or without.
        let mut cont: Vec<Option<usize>> = vec![None; frame.len()];
        let mut mother: Vec<Option<usize>> = vec![None; frame.len()];
        if t > 0 {
            let mut classes: Vec<u32> = frame.iter().map(|o| o.class).collect();
            classes.sort_unstable();
            classes.dedup();
            for &c in &classes {
                let rows: Vec<usize> = (0..recs.len())
                    .filter(|&r| {
                        let rec = &recs[r];
                        rec.class == c && !rec.closed && rec.last().0 + 1 + p.max_gap >= t
                    })
                    .collect();
                let cols: Vec<usize> = (0..frame.len()).filter(|&k| frame[k].class == c).collect();
                if cols.is_empty() {
                    continue;
                }
                // Admissible pairs and their costs.
                let mut pairs: Vec<(usize, usize, f64)> = Vec::new();
                for (i, &r) in rows.iter().enumerate() {
                    let (lf, lk) = recs[r].last();
                    let last = &objs[lf][lk];
                    let ov = if p.cost == Cost::Iou {
                        Some(cache.entry((lf, t)).or_insert_with(|| overlap(lf, t)) as &Overlaps)
                    } else {
                        None
                    };
                    for (j, &k) in cols.iter().enumerate() {
                        let d = dist(&last.pos, &frame[k].pos);
                        if d > p.max_distance {
                            continue;
                        }
                        match ov {
                            None => pairs.push((i, j, d)),
                            Some(ov) => {
                                let n = ov.get(&(last.label, frame[k].label)).copied().unwrap_or(0);
                                if n > 0 {
                                    let iou = n as f64 / (last.area + frame[k].area - n) as f64;
                                    pairs.push((i, j, 1.0 - iou));
                                }
                            }
                        }
                    }
                }
                let links = assign(&pairs)?;
                let mut linked_row: Vec<Option<usize>> = vec![None; rows.len()];
                for &(i, j) in &links {
                    linked_row[i] = Some(cols[j]);
                    cont[cols[j]] = Some(rows[i]);
                }
                if !p.divisions {
                    continue;
                }
                // Divisions: a track seen in the previous frame with an unclaimed object near it.
                let unclaimed: Vec<usize> = cols.iter().copied().filter(|&k| cont[k].is_none()).collect();
                let mut cand: Vec<(f64, u32, u32, usize, usize)> = Vec::new();
                for (i, &r) in rows.iter().enumerate() {
                    let (lf, lk) = recs[r].last();
                    if lf + 1 != t {
                        continue;
                    }
                    for &u in &unclaimed {
                        let d = dist(&objs[lf][lk].pos, &frame[u].pos);
                        if d <= p.division_distance {
                            cand.push((d, recs[r].id, frame[u].label, i, u));
                        }
                    }
                }
                cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
                // Daughters together are about as large as their mother was.
                let ratio_ok = |m: u64, a: u64, b: u64| {
                    let d = a + b;
                    (m.min(d) as f64) >= p.division_size_ratio * m.max(d) as f64
                };
                let mut used = vec![false; frame.len()];
                let mut divided = vec![false; rows.len()];
                for &(_, _, _, i, u) in &cand {
                    if divided[i] || used[u] {
                        continue;
                    }
                    let r = rows[i];
                    let (lf, lk) = recs[r].last();
                    let mpos = objs[lf][lk].pos;
                    let marea = objs[lf][lk].area;
                    let sister = match linked_row[i] {
                        Some(a) => (dist(&mpos, &frame[a].pos) <= p.division_distance
                            && ratio_ok(marea, frame[a].area, frame[u].area))
                        .then_some(a),
                        None => unclaimed
                            .iter()
                            .copied()
                            .filter(|&v| v != u && !used[v] && ratio_ok(marea, frame[v].area, frame[u].area))
                            .map(|v| (dist(&mpos, &frame[v].pos), frame[v].label, v))
                            .filter(|e| e.0 <= p.division_distance)
                            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                            .map(|e| e.2),
                    };
                    if let Some(s) = sister {
                        divided[i] = true;
                        used[u] = true;
                        used[s] = true;
                        cont[s] = None;
                        mother[s] = Some(r);
                        mother[u] = Some(r);
                        recs[r].closed = true;
                    }
                }
            }
        }
        // Apply: continuing objects join their track; the others start tracks in label order.
        let mut ids = vec![0u32; frame.len()];
        for k in 0..frame.len() {
            match cont[k] {
                Some(r) => {
                    recs[r].det.push((t, k));
                    ids[k] = recs[r].id;
                }
                None => {
                    let id = u32::try_from(recs.len() + 1).map_err(|_| "more than 4294967295 tracks".to_string())?;
                    let parent = mother[k].map_or(0, |m| recs[m].id);
                    recs.push(Rec { id, class: frame[k].class, parent, det: vec![(t, k)], closed: false });
                    ids[k] = id;
                }
            }
        }
        assign_all.push(ids);
    }
    let tracks =
        recs.iter().map(|r| Track { id: r.id, begin: r.det[0].0, end: r.last().0, parent: r.parent }).collect();
    let classes = recs.iter().map(|r| r.class).collect();
    Ok(Lineage { assign: assign_all, tracks, classes })
}

/// Overlap counts between frames `a` and `b` of a T×volume label buffer.
pub fn frame_overlaps(labels: &[u32], vlen: usize, a: usize, b: usize) -> Overlaps {
    let la = &labels[a * vlen..(a + 1) * vlen];
    let lb = &labels[b * vlen..(b + 1) * vlen];
    let mut m: Overlaps = FxHashMap::default();
    let mut cur = (0u32, 0u32);
    let mut cnt = 0u64;
    for (&x, &y) in la.iter().zip(lb) {
        if (x, y) == cur {
            cnt += 1;
            continue;
        }
        if cur.0 != 0 && cur.1 != 0 && cnt > 0 {
            *m.entry(cur).or_default() += cnt;
        }
        cur = (x, y);
        cnt = 1;
    }
    if cur.0 != 0 && cur.1 != 0 && cnt > 0 {
        *m.entry(cur).or_default() += cnt;
    }
    m
}

/// Everything `track.link` outputs.
#[derive(Clone, Debug)]
pub struct Linked {
    pub labels: Stack,
    pub tracks: Vec<Track>,
    pub positions: Table,
    pub lineage: Table,
}

/// Tracks the objects of a label time-lapse (T×Y×X or T×Z×Y×X).
pub fn link(
    labels: &Stack,
    image: Option<&Stack>,
    classes: Option<&Stack>,
    p: &LinkParams,
) -> Result<Linked, NodeError> {
    let objs = frame_objects(labels, image, classes)?;
    let lab = labels.pixels::<u32>().ok_or_else(|| NodeError::input("labels", "expected u32 labels"))?;
    let vlen = labels.volume_len();
    let lin = link_objects(&objs, p, &mut |a, b| frame_overlaps(lab, vlen, a, b)).map_err(NodeError::failed)?;

    // Relabel pixels: per frame, input label → track id.
    let out = crate::util::par_filled(vlen, labels.t(), |t, o| {
        let l = &lab[t * vlen..(t + 1) * vlen];
        let max = objs[t].last().map_or(0, |ob| ob.label) as usize;
        if max < (1 << 20) {
            // A direct table: one load per pixel, no branch.
            let mut table = vec![0u32; max + 1];
            for (ob, &id) in objs[t].iter().zip(&lin.assign[t]) {
                table[ob.label as usize] = id;
            }
            for (d, &s) in o.iter_mut().zip(l) {
                *d = table[s as usize];
            }
        } else {
            let map: FxHashMap<u32, u32> = objs[t].iter().zip(&lin.assign[t]).map(|(ob, &id)| (ob.label, id)).collect();
            let mut prev = (0u32, 0u32);
            for (d, &s) in o.iter_mut().zip(l) {
                if s != prev.0 {
                    prev = (s, map.get(&s).copied().unwrap_or(0));
                }
                *d = prev.1;
            }
        }
    });
    let relabelled = labels.with_pixels(out).map_err(|e| NodeError::failed(e.to_string()))?;
    let positions = positions_table(&objs, &lin, labels.is_3d(), image.is_some(), classes.is_some());
    let lineage = lineage_table(&lin, &objs);
    Ok(Linked { labels: relabelled, tracks: lin.tracks, positions, lineage })
}

/// One row per detection, sorted by track then frame.
fn positions_table(objs: &[Vec<Obj>], lin: &Lineage, three_d: bool, intensity: bool, classes: bool) -> Table {
    let mut rows: Vec<(u32, usize, &Obj)> = Vec::new();
    for (t, frame) in objs.iter().enumerate() {
        for (k, o) in frame.iter().enumerate() {
            rows.push((lin.assign[t][k], t, o));
        }
    }
    rows.sort_by_key(|r| (r.0, r.1));
    let mut table = Table::new();
    let mut push = |name: &str, d: ColumnData| {
        let _ = table.push(name, d);
    };
    push("track_id", ColumnData::I64(rows.iter().map(|r| r.0 as i64).collect()));
    push("frame", ColumnData::I64(rows.iter().map(|r| r.1 as i64).collect()));
    push("label", ColumnData::I64(rows.iter().map(|r| r.2.label as i64).collect()));
    push("area", ColumnData::F64(rows.iter().map(|r| r.2.area as f64).collect()));
    let axes: &[usize] = if three_d { &[0, 1, 2] } else { &[1, 2] };
    for (i, &a) in axes.iter().enumerate() {
        push(&format!("centroid-{i}"), ColumnData::F64(rows.iter().map(|r| r.2.centroid[a]).collect()));
    }
    for (i, &a) in axes.iter().enumerate() {
        push(&format!("position-{i}"), ColumnData::F64(rows.iter().map(|r| r.2.pos[a]).collect()));
    }
    if intensity {
        push("intensity_mean", ColumnData::F64(rows.iter().map(|r| r.2.intensity.unwrap_or(0.0)).collect()));
    }
    if classes {
        push("class", ColumnData::I64(rows.iter().map(|r| r.2.class as i64).collect()));
    }
    table
}

/// One row per track: its place in the lineage.
fn lineage_table(lin: &Lineage, objs: &[Vec<Obj>]) -> Table {
    let n = lin.tracks.len();
    let mut detections = vec![0i64; n];
    for frame in &lin.assign {
        for &id in frame {
            detections[id as usize - 1] += 1;
        }
    }
    let _ = objs;
    let mut daughters: Vec<Vec<u32>> = vec![Vec::new(); n];
    for tr in &lin.tracks {
        if tr.parent != 0 {
            daughters[tr.parent as usize - 1].push(tr.id);
        }
    }
    // Ids are creation order, so a parent's id is always smaller than its daughters'.
    let mut generation = vec![0i64; n];
    let mut root = vec![0i64; n];
    for tr in &lin.tracks {
        let i = tr.id as usize - 1;
        if tr.parent == 0 {
            root[i] = tr.id as i64;
        } else {
            let pi = tr.parent as usize - 1;
            generation[i] = generation[pi] + 1;
            root[i] = root[pi];
        }
    }
    let col = |f: &dyn Fn(&Track) -> i64| ColumnData::I64(lin.tracks.iter().map(f).collect());
    let mut table = Table::new();
    let mut push = |name: &str, d: ColumnData| {
        let _ = table.push(name, d);
    };
    push("track_id", col(&|t| t.id as i64));
    push("parent", col(&|t| t.parent as i64));
    push("begin", col(&|t| t.begin as i64));
    push("end", col(&|t| t.end as i64));
    push("detections", ColumnData::I64(detections.clone()));
    push("missing_frames", col(&|t| (t.end - t.begin + 1) as i64 - detections[t.id as usize - 1]));
    push(
        "daughters",
        ColumnData::Str(
            daughters.iter().map(|d| d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")).collect(),
        ),
    );
    push("generation", ColumnData::I64(generation));
    push("root", ColumnData::I64(root));
    push("class", ColumnData::I64(lin.classes.iter().map(|&c| c as i64).collect()));
    table
}

pub struct Link;

impl Node for Link {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "track.link",
            1,
            "track",
            "Follows objects through a time-lapse: links each frame's objects to the next (Hungarian \
             assignment), bridges short gaps and detects cell divisions. Gives every track its own id.",
        )
        .input("labels", PortType::Labels, "Objects of every time point (time-lapse labels, 2-D or 3-D over time).")
        .optional_input(
            "image",
            PortType::Image,
            "Intensity image of the same size; adds each object's mean intensity.",
        )
        .optional_input(
            "classes",
            PortType::Labels,
            "Class of every pixel (e.g. 1 = dividing cells, 2 = other cells). Objects take the most frequent class \
             under them, and each class is tracked on its own.",
        )
        .output("labels", PortType::Labels, "The objects relabelled so that one id is one track through time.")
        .output("tracks", PortType::Tracks, "One row per track: id, first frame, last frame, parent track (0 = none).")
        .output(
            "positions",
            PortType::Table,
            "One row per object and frame: track_id, frame, original label, area, centroid (pixels) and position \
             (physical units).",
        )
        .output(
            "lineage",
            PortType::Table,
            "One row per track: parent, first and last frame, number of detections and missing frames, daughters, \
             generation and root of its lineage tree, class.",
        )
        .param(
            ParamSpec::float(
                "max_distance",
                30.0,
                "Farthest an object may move from one frame to the next and still be linked, in the image's \
                 physical units (pixels if uncalibrated).",
            )
            .greater_than(0.0),
        )
        .param(
            ParamSpec::int(
                "max_gap",
                2,
                "How many frames an object may be missing (not segmented) and still be re-linked to its track; \
                 after that its track ends. 0 = no gap closing.",
            )
            .min(0.0),
        )
        .param(ParamSpec::bool(
            "divisions",
            true,
            "Detect cell divisions: a cell that is replaced by two new cells near it becomes the mother of two \
             daughter tracks.",
        ))
        .param(
            ParamSpec::float(
                "division_distance",
                40.0,
                "Farthest each daughter may be from the mother's last position, in physical units.",
            )
            .greater_than(0.0),
        )
        .param(
            ParamSpec::float(
                "division_size_ratio",
                0.6,
                "How well the two daughters' combined area must match the mother's last area: the smaller of \
                 the two divided by the larger must be at least this (0 = any sizes, 1 = exactly equal).",
            )
            .range(0.0, 1.0),
        )
        .param(ParamSpec::choice(
            "cost",
            &["distance", "iou"],
            "distance",
            "What makes a link cheap: 'distance' between object centres, or 'iou' (overlap of the object masks; \
             objects must overlap from one frame to the next).",
        ))
    }

    fn run(&self, ctx: &NodeCtx, params: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let labels = inputs.labels("labels")?;
        let image = inputs.opt("image", Inputs::image)?;
        let classes = inputs.opt("classes", Inputs::labels)?;
        let p = LinkParams {
            max_distance: params.f64("max_distance")?,
            max_gap: params.usize("max_gap")?,
            divisions: params.bool("divisions")?,
            division_distance: params.f64("division_distance")?,
            division_size_ratio: params.f64("division_size_ratio")?,
            cost: match params.str("cost")? {
                "iou" => Cost::Iou,
                _ => Cost::Distance,
            },
        };
        if labels.t() < 2 {
            ctx.log("the labels have a single time point: every object is its own track");
        }
        ctx.progress(0.0, "linking");
        let r = link(labels, image, classes, &p)?;
        ctx.progress(1.0, format!("{} tracks", r.tracks.len()));
        Ok(Outputs::new()
            .with("labels", Value::Labels(r.labels))
            .with("tracks", Value::Tracks(Arc::new(tracks_table(&r.tracks))))
            .with("positions", Value::Table(Arc::new(r.positions)))
            .with("lineage", Value::Table(Arc::new(r.lineage))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_api::{Axis, Pixel};

    /// A T×H×W label movie of discs: `discs[t]` lists (label, cy, cx, radius) at frame t.
    pub(crate) fn movie(h: usize, w: usize, discs: &[Vec<(u32, f64, f64, f64)>]) -> Stack {
        let mut v = vec![0u32; discs.len() * h * w];
        for (t, ds) in discs.iter().enumerate() {
            for &(l, cy, cx, r) in ds {
                for y in 0..h {
                    for x in 0..w {
                        if (y as f64 - cy).powi(2) + (x as f64 - cx).powi(2) <= r * r {
                            v[t * h * w + y * w + x] = l;
                        }
                    }
                }
            }
        }
        Stack::new([discs.len(), 1, 1, h, w], &[Axis::T], u32::into_buffer(v)).unwrap()
    }

    /// Track id of the object whose pixel (y, x) is at frame t.
    fn id_at(s: &Stack, t: usize, y: usize, x: usize) -> u32 {
        s.plane::<u32>(t, 0, 0).unwrap()[y * s.x() + x]
    }

    #[test]
    fn crossing_paths_keep_their_identity() {
        // Two discs pass each other on rows 8 px apart (radius 3); per-frame label ids are
        // shuffled, so only the linking can keep identities.
        let frames: Vec<Vec<(u32, f64, f64, f64)>> = (0..8)
            .map(|t| {
                let s = t as f64 * 6.0;
                let (a, b) = if t % 2 == 0 { (1, 2) } else { (7, 3) };
                vec![(a, 20.0, 10.0 + s, 3.0), (b, 28.0, 55.0 - s, 3.0)]
            })
            .collect();
        let m = movie(70, 70, &frames);
        let r = link(&m, None, None, &LinkParams { max_distance: 12.0, ..LinkParams::default() }).unwrap();
        assert_eq!(r.tracks.len(), 2, "{:?}", r.tracks);
        for t in 0..8 {
            let s = t * 6;
            assert_eq!(id_at(&r.labels, t, 20, 10 + s), 1, "frame {t}");
            assert_eq!(id_at(&r.labels, t, 28, 55 - s), 2, "frame {t}");
        }
    }

    #[test]
    fn gap_closing_bridges_up_to_max_gap_frames() {
        // A disc missing on frames 2..2+k.
        for (k, max_gap, same) in [(1, 2, true), (2, 2, true), (3, 2, false), (1, 0, false)] {
            let frames: Vec<Vec<(u32, f64, f64, f64)>> = (0..8)
                .map(|t| if (2..2 + k).contains(&t) { vec![] } else { vec![(4, 20.0, 10.0 + 2.0 * t as f64, 3.0)] })
                .collect();
            let m = movie(40, 40, &frames);
            let r = link(&m, None, None, &LinkParams { max_gap, ..LinkParams::default() }).unwrap();
            let a = id_at(&r.labels, 0, 20, 10);
            let b = id_at(&r.labels, 7, 20, 24);
            assert_eq!(a == b, same, "gap {k}, max_gap {max_gap}: {:?}", r.tracks);
            if same {
                assert_eq!(r.tracks, vec![Track { id: 1, begin: 0, end: 7, parent: 0 }]);
                let missing = r.lineage.column("missing_frames").unwrap().number(0);
                assert_eq!(missing, Some(k as f64));
            }
        }
    }

    #[test]
    fn division_makes_a_mother_and_two_daughters() {
        // One disc for 4 frames, then two smaller discs 8 px either side, moving apart.
        let mut frames: Vec<Vec<(u32, f64, f64, f64)>> = (0..4).map(|_| vec![(1, 30.0, 30.0, 6.0)]).collect();
        for t in 0..4 {
            let d = 8.0 + 2.0 * t as f64;
            frames.push(vec![(5, 30.0, 30.0 - d, 4.0), (6, 30.0, 30.0 + d, 4.0)]);
        }
        let m = movie(60, 60, &frames);
        let r = link(&m, None, None, &LinkParams::default()).unwrap();
        assert_eq!(
            r.tracks,
            vec![
                Track { id: 1, begin: 0, end: 3, parent: 0 },
                Track { id: 2, begin: 4, end: 7, parent: 1 },
                Track { id: 3, begin: 4, end: 7, parent: 1 },
            ]
        );
        assert_eq!(r.lineage.column("daughters").unwrap().cell(0), "2 3");
        assert_eq!(r.lineage.column("generation").unwrap().number(2), Some(1.0));
        // Without divisions one daughter continues the mother's track.
        let r = link(&m, None, None, &LinkParams { divisions: false, ..LinkParams::default() }).unwrap();
        assert_eq!(r.tracks.len(), 2);
        assert!(r.tracks.iter().all(|t| t.parent == 0));
        // A strict size gate refuses daughters much smaller together than their mother.
        let mut frames2 = frames.clone();
        frames2[4] = vec![(5, 30.0, 22.0, 4.0), (6, 30.0, 38.0, 2.0)];
        let m2 = movie(60, 60, &frames2);
        let r = link(&m2, None, None, &LinkParams { division_size_ratio: 0.8, ..LinkParams::default() }).unwrap();
        assert!(r.tracks.iter().all(|t| t.parent == 0), "{:?}", r.tracks);
        let r = link(&m2, None, None, &LinkParams { division_size_ratio: 0.5, ..LinkParams::default() }).unwrap();
        assert_eq!(r.tracks.iter().filter(|t| t.parent == 1).count(), 2, "{:?}", r.tracks);
        // Beyond the division distance it is not a division.
        let r = link(&m, None, None, &LinkParams { division_distance: 5.0, ..LinkParams::default() }).unwrap();
        assert!(r.tracks.iter().all(|t| t.parent == 0), "{:?}", r.tracks);
    }

    #[test]
    fn classes_are_tracked_independently() {
        // Two discs swap places between frames 0 and 1; only the class map tells them apart.
        let frames =
            vec![vec![(1, 20.0, 15.0, 3.0), (2, 20.0, 25.0, 3.0)], vec![(1, 20.0, 24.0, 3.0), (2, 20.0, 16.0, 3.0)]];
        let m = movie(40, 40, &frames);
        let cls: Vec<u32> = m.pixels::<u32>().unwrap().to_vec();
        let cls = m.with_pixels(cls).unwrap();
        let r = link(&m, None, Some(&cls), &LinkParams { divisions: false, ..LinkParams::default() }).unwrap();
        assert_eq!(id_at(&r.labels, 0, 20, 15), id_at(&r.labels, 1, 20, 24));
        let plain = link(&m, None, None, &LinkParams { divisions: false, ..LinkParams::default() }).unwrap();
        assert_eq!(id_at(&plain.labels, 0, 20, 15), id_at(&plain.labels, 1, 20, 16));
        assert!(r.positions.column("class").is_some());
    }

    #[test]
    fn iou_cost_needs_overlap() {
        let frames: Vec<Vec<(u32, f64, f64, f64)>> = (0..5)
            .map(|t| vec![(1, 12.0, 10.0 + 2.0 * t as f64, 4.0), (2, 28.0, 30.0 - 2.0 * t as f64, 4.0)])
            .collect();
        let m = movie(40, 40, &frames);
        let r = link(&m, None, None, &LinkParams { cost: Cost::Iou, ..LinkParams::default() }).unwrap();
        assert_eq!(r.tracks.len(), 2);
        assert_eq!((id_at(&r.labels, 4, 12, 18), id_at(&r.labels, 4, 28, 22)), (1, 2));
        // Jumps without overlap are not links with the IoU cost.
        let frames: Vec<Vec<(u32, f64, f64, f64)>> =
            (0..3).map(|t| vec![(1, 20.0, 5.0 + 12.0 * t as f64, 3.0)]).collect();
        let m = movie(40, 40, &frames);
        let r = link(&m, None, None, &LinkParams { cost: Cost::Iou, ..LinkParams::default() }).unwrap();
        assert_eq!(r.tracks.len(), 3);
    }

    #[test]
    fn matches_reference_frame_to_frame_links() {
        // The reference linked SIM+ ground-truth centroids (30 px gate, SciPy's assignment);
        // the same centroids through Petri's assignment must give the same links.
        let cents = petri_testkit::read_csv(&petri_testkit::reference("tracking/sim_ctc_tra_gt", "centroids.csv"));
        let links = petri_testkit::read_csv(&petri_testkit::reference("tracking/sim_ctc_tra_gt", "links.csv"));
        let nt = cents.iter().map(|r| r["t"] as usize).max().unwrap() + 1;
        let mut objs: Vec<Vec<Obj>> = vec![Vec::new(); nt];
        for r in &cents {
            let c = [0.0, r["centroid-0"], r["centroid-1"]];
            objs[r["t"] as usize].push(Obj {
                label: r["label"] as u32,
                area: r["area"] as u64,
                centroid: c,
                pos: c,
                class: 0,
                intensity: None,
            });
        }
        let mut n = 0;
        for t in 0..nt - 1 {
            let pairs: Vec<(usize, usize, f64)> = objs[t]
                .iter()
                .enumerate()
                .flat_map(|(i, a)| {
                    objs[t + 1].iter().enumerate().filter_map(move |(j, b)| {
                        let d = dist(&a.pos, &b.pos);
                        (d <= 30.0).then_some((i, j, d))
                    })
                })
                .collect();
            let mut ours: Vec<(u32, u32)> =
                assign(&pairs).unwrap().into_iter().map(|(i, j)| (objs[t][i].label, objs[t + 1][j].label)).collect();
            ours.sort_unstable();
            let mut want: Vec<(u32, u32)> = links
                .iter()
                .filter(|r| r["t"] as usize == t)
                .map(|r| (r["label_t"] as u32, r["label_t1"] as u32))
                .collect();
            want.sort_unstable();
            assert_eq!(ours, want, "frame {t}");
            n += ours.len();
        }
        assert_eq!(n, 2543);
    }
}
