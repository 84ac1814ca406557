//! `measure.metrics`: scores a predicted segmentation against ground-truth labels.
//!
//! Every score comes from one overlap (contingency) table. Definitions, conventions and the
//! values chosen where a ratio would be 0/0 are in docs/algorithms/measure.md.

use std::sync::Arc;

use petri_api::{
    ColumnData, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, ParamValue, Params, PortType, Stack,
    Table, Value,
};
use rustc_hash::FxHashMap;

use crate::contingency::{Contingency, Keep};

/// The default IoU thresholds for object matching.
pub const DEFAULT_THRESHOLDS: [f64; 3] = [0.5, 0.75, 0.9];

/// Object matching at one IoU threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Matching {
    pub threshold: f64,
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    /// tp / number of predicted objects (0 when nothing is predicted).
    pub precision: f64,
    /// tp / number of true objects.
    pub recall: f64,
    /// 2·tp / (2·tp + fp + fn).
    pub f1: f64,
    /// Mean IoU of the matched pairs (0 when nothing matches).
    pub mean_matched_iou: f64,
}

/// All scores of one image or volume.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    pub n_truth: u64,
    pub n_prediction: u64,
    pub foreground_iou: f64,
    pub foreground_dice: f64,
    pub adapted_rand_error: f64,
    pub adapted_rand_precision: f64,
    pub adapted_rand_recall: f64,
    pub v_rand: f64,
    pub v_rand_split: f64,
    pub v_rand_merge: f64,
    pub ctc_seg: f64,
    pub matching: Vec<Matching>,
}

/// Why an image cannot be scored.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScoreError {
    #[error("the ground truth has no labelled object in the scored pixels, so there is nothing to score against")]
    NoTruth,
    #[error("the Hungarian matching failed: {0}")]
    Matching(String),
}

/// `a / b` for exact integer counts (below 2^53 they convert to f64 exactly, so this equals
/// numpy's float result bit for bit); `when_zero` if `b` is 0.
fn ratio(a: u128, b: u128, when_zero: f64) -> f64 {
    if b == 0 { when_zero } else { a as f64 / b as f64 }
}

/// Scores one image or volume from its overlap table.
pub fn scores_from(c: &Contingency, thresholds: &[f64]) -> Result<Scores, ScoreError> {
    // Object sizes over the scored pixels.
    let mut tsize: FxHashMap<u32, u64> = FxHashMap::default();
    let mut psize: FxHashMap<u32, u64> = FxHashMap::default();
    // Pred sizes restricted to truth foreground (the Rand scores' column sums).
    let mut psize_fg: FxHashMap<u32, u64> = FxHashMap::default();
    let (mut inter, mut a_fg, mut b_fg) = (0u64, 0u64, 0u64);
    for &(g, p, n) in &c.entries {
        *tsize.entry(g).or_default() += n;
        *psize.entry(p).or_default() += n;
        if g != 0 {
            *psize_fg.entry(p).or_default() += n;
            a_fg += n;
        }
        if p != 0 {
            b_fg += n;
        }
        if g != 0 && p != 0 {
            inter += n;
        }
    }
    let n_truth = tsize.keys().filter(|&&g| g != 0).count() as u64;
    let n_prediction = psize.keys().filter(|&&p| p != 0).count() as u64;
    if n_truth == 0 {
        return Err(ScoreError::NoTruth);
    }
    let sq = |x: u64| (x as u128) * (x as u128);

    // Foreground overlap.
    let union = a_fg + b_fg - inter;
    let foreground_iou = ratio(inter as u128, union as u128, 1.0);
    let foreground_dice = ratio(2 * inter as u128, (a_fg + b_fg) as u128, 1.0);

    // scikit-image's adapted Rand error: truth 0 ignored, prediction 0 is a segment; pairs of
    // distinct pixels (Σn² − Σn).
    let fg = c.entries.iter().filter(|e| e.0 != 0);
    let sum_p: u128 = fg.clone().map(|e| sq(e.2) - e.2 as u128).sum();
    let sum_a: u128 = tsize.iter().filter(|e| *e.0 != 0).map(|e| sq(*e.1) - *e.1 as u128).sum();
    let sum_b: u128 = psize_fg.values().map(|&b| sq(b) - b as u128).sum();
    let adapted_rand_precision = ratio(sum_p, sum_a, 1.0);
    let adapted_rand_recall = ratio(sum_p, sum_b, 1.0);
    let denom = 0.5 * sum_a as f64 + 0.5 * sum_b as f64;
    let adapted_rand_error = if denom == 0.0 { 0.0 } else { 1.0 - sum_p as f64 / denom };

    // V_Rand (ISBI 2012 / SNEMI3D foreground-restricted, N² normalisation): truth 0 ignored,
    // predicted background pixels count as singletons.
    let c0: u128 = fg.clone().filter(|e| e.1 == 0).map(|e| e.2 as u128).sum();
    let s_ab: u128 = fg.clone().filter(|e| e.1 != 0).map(|e| sq(e.2)).sum::<u128>() + c0;
    let s_a: u128 = tsize.iter().filter(|e| *e.0 != 0).map(|e| sq(*e.1)).sum();
    let s_b: u128 = psize_fg.iter().filter(|e| *e.0 != 0).map(|e| sq(*e.1)).sum::<u128>() + c0;
    let v_rand_split = ratio(s_ab, s_a, 1.0);
    let v_rand_merge = ratio(s_ab, s_b, 1.0);
    let v_rand = s_ab as f64 / (0.5 * s_a as f64 + 0.5 * s_b as f64);

    // CTC SEG: each true object's Jaccard with the predicted object covering more than half
    // of it (0 if none); mean over true objects.
    let mut seg: FxHashMap<u32, f64> = tsize.keys().filter(|&&g| g != 0).map(|&g| (g, 0.0)).collect();
    for &(g, p, n) in &c.entries {
        if g == 0 || p == 0 {
            continue;
        }
        let gs = tsize[&g];
        if 2 * n > gs {
            seg.insert(g, n as f64 / (gs + psize[&p] - n) as f64);
        }
    }
    let mut seg_vals: Vec<(u32, f64)> = seg.into_iter().collect();
    seg_vals.sort_unstable_by_key(|e| e.0);
    let ctc_seg = seg_vals.iter().map(|e| e.1).sum::<f64>() / seg_vals.len() as f64;

    let pairs = hungarian_pairs(c, &tsize, &psize)?;
    let matching = thresholds
        .iter()
        .map(|&t| {
            let ious: Vec<f64> = pairs.iter().copied().filter(|&iou| iou >= t).collect();
            let tp = ious.len() as u64;
            let fp = n_prediction - tp;
            let fn_ = n_truth - tp;
            Matching {
                threshold: t,
                tp,
                fp,
                fn_,
                precision: ratio(tp as u128, n_prediction as u128, 0.0),
                recall: ratio(tp as u128, n_truth as u128, 0.0),
                f1: ratio(2 * tp as u128, (2 * tp + fp + fn_) as u128, 0.0),
                mean_matched_iou: if tp == 0 { 0.0 } else { ious.iter().sum::<f64>() / tp as f64 },
            }
        })
        .collect();

    Ok(Scores {
        n_truth,
        n_prediction,
        foreground_iou,
        foreground_dice,
        adapted_rand_error,
        adapted_rand_precision,
        adapted_rand_recall,
        v_rand,
        v_rand_split,
        v_rand_merge,
        ctc_seg,
        matching,
    })
}

/// One-to-one matching of true and predicted objects that maximises the total IoU (SciPy's
/// `linear_sum_assignment` through the `lsap` crate). Objects that overlap nothing cannot
/// change the optimum, so the problem is solved separately on each connected group of
/// overlapping objects, which keeps the matrices small. Returns the IoU of every matched pair
/// (in ascending order of truth id).
fn hungarian_pairs(
    c: &Contingency,
    tsize: &FxHashMap<u32, u64>,
    psize: &FxHashMap<u32, u64>,
) -> Result<Vec<f64>, ScoreError> {
    let overlaps: Vec<(u32, u32, u64)> = c.entries.iter().copied().filter(|e| e.0 != 0 && e.1 != 0).collect();
    // Union-find over truth ids (nodes 0..nt) and predicted ids (nt..nt+np).
    let mut tix: FxHashMap<u32, usize> = FxHashMap::default();
    let mut pix: FxHashMap<u32, usize> = FxHashMap::default();
    let mut tids = Vec::new();
    let mut pids = Vec::new();
    for &(g, p, _) in &overlaps {
        tix.entry(g).or_insert_with(|| {
            tids.push(g);
            tids.len() - 1
        });
        pix.entry(p).or_insert_with(|| {
            pids.push(p);
            pids.len() - 1
        });
    }
    let nt = tids.len();
    let mut parent: Vec<usize> = (0..nt + pids.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for &(g, p, _) in &overlaps {
        let (a, b) = (find(&mut parent, tix[&g]), find(&mut parent, nt + pix[&p]));
        if a != b {
            parent[a.max(b)] = a.min(b);
        }
    }
    // Group the overlaps by component (root), keeping the truth-id order inside each.
    let mut groups: FxHashMap<usize, Vec<(u32, u32, f64)>> = FxHashMap::default();
    for &(g, p, n) in &overlaps {
        let root = find(&mut parent, tix[&g]);
        let iou = n as f64 / (tsize[&g] + psize[&p] - n) as f64;
        groups.entry(root).or_default().push((g, p, iou));
    }
    let mut roots: Vec<usize> = groups.keys().copied().collect();
    roots.sort_unstable();
    let mut out: Vec<(u32, f64)> = Vec::new();
    for root in roots {
        let group = &groups[&root];
        if group.len() == 1 {
            out.push((group[0].0, group[0].2));
            continue;
        }
        let mut gs: Vec<u32> = group.iter().map(|e| e.0).collect();
        let mut ps: Vec<u32> = group.iter().map(|e| e.1).collect();
        gs.sort_unstable();
        gs.dedup();
        ps.sort_unstable();
        ps.dedup();
        let (nr, nc) = (gs.len(), ps.len());
        let mut m = vec![0.0f64; nr * nc];
        for &(g, p, iou) in group {
            let (i, j) = (gs.binary_search(&g).unwrap_or(0), ps.binary_search(&p).unwrap_or(0));
            m[i * nc + j] = iou;
        }
        let (rows, cols) = lsap::solve(nr, nc, &m, true).map_err(|e| ScoreError::Matching(format!("{e:?}")))?;
        for (r, c) in rows.into_iter().zip(cols) {
            out.push((gs[r], m[r * nc + c]));
        }
    }
    out.sort_by_key(|e| e.0);
    Ok(out.into_iter().map(|e| e.1).collect())
}

/// Scores `prediction` against `truth` per time point. `ignore` (same shape, non-zero =
/// ignore) and `ignore_unlabelled` (score only where the truth is labelled) restrict the
/// scored pixels. Frames whose truth has no object are skipped (ground truth often annotates
/// only some frames); if no frame can be scored, that is an error.
pub fn metrics(
    prediction: &Stack,
    truth: &Stack,
    ignore: Option<&Stack>,
    ignore_unlabelled: bool,
    thresholds: &[f64],
) -> Result<Vec<(usize, Scores)>, NodeError> {
    let pred = prediction.pixels::<u32>().ok_or_else(|| NodeError::input("prediction", "expected u32 labels"))?;
    let tru = truth.pixels::<u32>().ok_or_else(|| NodeError::input("truth", "expected u32 labels"))?;
    for (port, s) in [("prediction", prediction), ("truth", truth)] {
        if s.c() != 1 {
            return Err(NodeError::input(port, format!("labels have {} channels; score one channel at a time", s.c())));
        }
    }
    if prediction.dims() != truth.dims() {
        return Err(NodeError::input(
            "prediction",
            format!(
                "prediction is {} but truth is {}: they must have the same shape",
                prediction.describe(),
                truth.describe()
            ),
        ));
    }
    let ign = match ignore {
        Some(m) => {
            if m.dims() != truth.dims() {
                return Err(NodeError::input(
                    "ignore",
                    format!(
                        "mask is {} but truth is {}: they must have the same shape",
                        m.describe(),
                        truth.describe()
                    ),
                ));
            }
            Some(m.pixels::<u8>().ok_or_else(|| NodeError::input("ignore", "expected a u8 mask"))?)
        }
        None => None,
    };
    let vlen = truth.volume_len();
    let mut out = Vec::new();
    for t in 0..truth.t() {
        let r = t * vlen..(t + 1) * vlen;
        let keep = match (ign, ignore_unlabelled) {
            (None, false) => Keep::All,
            (None, true) => Keep::TruthLabelled,
            (Some(m), false) => Keep::NotIgnored(&m[r.clone()]),
            (Some(m), true) => Keep::NotIgnoredAndLabelled(&m[r.clone()]),
        };
        let c = Contingency::new(&tru[r.clone()], &pred[r], keep);
        match scores_from(&c, thresholds) {
            Ok(s) => out.push((t, s)),
            Err(ScoreError::NoTruth) => continue,
            Err(e) => return Err(NodeError::failed(e.to_string())),
        }
    }
    if out.is_empty() {
        return Err(NodeError::input("truth", ScoreError::NoTruth.to_string()));
    }
    Ok(out)
}

/// The long-format table: one row per metric (and frame, for time-lapses).
pub fn scores_table(frames: &[(usize, Scores)], with_frame: bool) -> Table {
    let mut frame_col = Vec::new();
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (t, s) in frames {
        let mut row = |name: String, v: f64| {
            frame_col.push(*t as i64);
            names.push(name);
            values.push(v);
        };
        row("n_truth".into(), s.n_truth as f64);
        row("n_prediction".into(), s.n_prediction as f64);
        row("foreground_iou".into(), s.foreground_iou);
        row("foreground_dice".into(), s.foreground_dice);
        row("adapted_rand_error".into(), s.adapted_rand_error);
        row("adapted_rand_precision".into(), s.adapted_rand_precision);
        row("adapted_rand_recall".into(), s.adapted_rand_recall);
        row("v_rand".into(), s.v_rand);
        row("v_rand_split".into(), s.v_rand_split);
        row("v_rand_merge".into(), s.v_rand_merge);
        row("ctc_seg".into(), s.ctc_seg);
        for m in &s.matching {
            let t = m.threshold;
            row(format!("tp@{t}"), m.tp as f64);
            row(format!("fp@{t}"), m.fp as f64);
            row(format!("fn@{t}"), m.fn_ as f64);
            row(format!("precision@{t}"), m.precision);
            row(format!("recall@{t}"), m.recall);
            row(format!("f1@{t}"), m.f1);
            row(format!("mean_matched_iou@{t}"), m.mean_matched_iou);
        }
    }
    let mut table = Table::new();
    // Column lengths agree by construction, so these pushes cannot fail.
    if with_frame {
        let _ = table.push("frame", ColumnData::I64(frame_col));
    }
    let _ = table.push("metric", ColumnData::Str(names));
    let _ = table.push("value", ColumnData::F64(values));
    table
}

pub struct Metrics;

impl Node for Metrics {
    fn spec(&self) -> NodeSpec {
        let thresholds = ParamSpec {
            default: ParamValue::List(DEFAULT_THRESHOLDS.iter().map(|&t| ParamValue::Float(t)).collect()),
            ..ParamSpec::floats(
                "thresholds",
                0.5,
                10,
                "IoU levels at which a predicted object counts as a correct match for a true object \
                 (one or several, between 0 and 1). Precision, recall and F1 are reported at each.",
            )
            .greater_than(0.0)
        };
        let thresholds = ParamSpec {
            kind: match thresholds.kind {
                petri_api::ParamKind::Floats { min, min_exclusive, max_len, .. } => {
                    petri_api::ParamKind::Floats { min, max: Some(1.0), min_exclusive, max_len }
                }
                k => k,
            },
            ..thresholds
        };
        NodeSpec::new(
            "measure.metrics",
            1,
            "measure",
            "Scores a segmentation against ground truth: foreground IoU and Dice, object precision/recall/F1 \
             with one-to-one matching, adapted Rand error, V_Rand and the Cell Tracking Challenge SEG score.",
        )
        .input("prediction", PortType::Labels, "The segmentation to score (0 = background).")
        .input("truth", PortType::Labels, "Ground-truth labels of the same size (0 = background or unlabelled).")
        .optional_input(
            "ignore",
            PortType::Mask,
            "Pixels to leave out of every score (1 = ignore), e.g. regions nobody annotated.",
        )
        .output(
            "table",
            PortType::Table,
            "One row per score: columns metric and value (and frame for a time-lapse). Per-threshold scores \
             are named like f1@0.5.",
        )
        .param(ParamSpec::bool(
            "ignore_unlabelled",
            false,
            "Score only the pixels the ground truth labels. Use it for sparse annotations (EM neuron labels \
             that cover only part of the image), so unannotated areas count neither for nor against.",
        ))
        .param(thresholds)
    }

    fn run(&self, ctx: &NodeCtx, params: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let prediction = inputs.labels("prediction")?;
        let truth = inputs.labels("truth")?;
        let ignore = inputs.opt("ignore", Inputs::mask)?;
        let thresholds = params.floats("thresholds")?;
        if let Some(t) = thresholds.iter().find(|t| !(**t > 0.0 && **t <= 1.0)) {
            return Err(NodeError::param("thresholds", format!("must be between 0 (excluded) and 1, got {t}")));
        }
        let frames = metrics(prediction, truth, ignore, params.bool("ignore_unlabelled")?, &thresholds)?;
        if frames.len() < truth.t() {
            ctx.log(format!(
                "{} of {} frames have no ground-truth object and were not scored",
                truth.t() - frames.len(),
                truth.t()
            ));
        }
        let table = scores_table(&frames, truth.t() > 1);
        Ok(Outputs::new().with("table", Value::Table(Arc::new(table))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petri_testkit::{read_stack, reference, sample};

    /// Python's json writes NaN (where the reference leaves a 0/0 undefined); read it as null.
    fn read_json(path: &std::path::Path) -> serde_json::Value {
        let s = std::fs::read_to_string(path).unwrap();
        serde_json::from_str(&s.replace("NaN", "null")).unwrap()
    }

    fn check(s: &Scores, want: &serde_json::Value, what: &str) {
        let close = |name: &str, got: f64, w: &serde_json::Value| {
            let w = w.as_f64().unwrap_or_else(|| panic!("{what}: {name} missing"));
            assert!((got - w).abs() < 1e-12, "{what}: {name} = {got}, want {w}");
        };
        close("foreground_iou", s.foreground_iou, &want["foreground_iou"]);
        close("foreground_dice", s.foreground_dice, &want["foreground_dice"]);
        close("adapted_rand_error", s.adapted_rand_error, &want["adapted_rand_error"]);
        close("adapted_rand_precision", s.adapted_rand_precision, &want["adapted_rand_precision"]);
        close("adapted_rand_recall", s.adapted_rand_recall, &want["adapted_rand_recall"]);
        close("ctc_seg", s.ctc_seg, &want["ctc_seg"]);
        for m in &s.matching {
            let w = &want[format!("match@{}", m.threshold)];
            assert_eq!(m.tp, w["tp"].as_u64().unwrap(), "{what}: tp@{}", m.threshold);
            assert_eq!(m.fp, w["fp"].as_u64().unwrap(), "{what}: fp@{}", m.threshold);
            assert_eq!(m.fn_, w["fn"].as_u64().unwrap(), "{what}: fn@{}", m.threshold);
            close("precision", m.precision, &w["precision"]);
            close("recall", m.recall, &w["recall"]);
            close("f1", m.f1, &w["f1"]);
            if w["mean_matched_iou"].is_null() {
                // The reference's NaN for "no match"; Petri defines it as 0.
                assert_eq!((m.tp, m.mean_matched_iou), (0, 0.0), "{what}");
            } else {
                close("mean_matched_iou", m.mean_matched_iou, &w["mean_matched_iou"]);
            }
        }
        if let Some(v) = want.get("v_rand") {
            close("v_rand", s.v_rand, v);
            close("v_rand_split", s.v_rand_split, &want["v_rand_split"]);
            close("v_rand_merge", s.v_rand_merge, &want["v_rand_merge"]);
        }
    }

    fn score(pred: &Stack, truth: &Stack) -> Scores {
        metrics(pred, truth, None, false, &DEFAULT_THRESHOLDS).unwrap().remove(0).1
    }

    #[test]
    fn matches_reference_results_json() {
        for (ds, gt, preds) in [
            (
                "nuclei2d_dsb2018",
                "nuclei2d_labels.tif",
                [("watershed.tif", "metrics_watershed_vs_gt"), ("cc_conn8.tif", "metrics_cc_vs_gt")],
            ),
            (
                "nuclei3d_synthetic_stardist",
                "nuclei3d_synthetic_labels.tif",
                [("watershed.tif", "metrics_watershed_vs_gt"), ("cc_conn26.tif", "metrics_cc_vs_gt")],
            ),
        ] {
            let res = read_json(&reference(ds, "results.json"));
            let truth = read_stack::<u32>(&sample(gt));
            for (p, key) in preds {
                let pred = read_stack::<u32>(&reference(ds, p));
                check(&score(&pred, &truth), &res[key], &format!("{ds} {p}"));
            }
            let s = score(&truth, &truth);
            assert_eq!(s.ctc_seg, res["metrics_gt_vs_gt"]["ctc_seg"].as_f64().unwrap());
            assert_eq!((s.v_rand, s.adapted_rand_error, s.matching[2].f1), (1.0, 0.0, 1.0));
        }
    }

    #[test]
    fn matches_python_on_sparse_em_labels() {
        // tests/fixtures/measure/make_metrics_em.py computes these with scikit-image and numpy.
        let f = petri_testkit::fixtures().join("measure");
        let want = read_json(&f.join("metrics_em.json"));
        let em = f.join("em_cremi_c_z4");
        let truth = read_stack::<u32>(&em.join("labels_z4.tif"));
        let pred = read_stack::<u32>(&em.join("cc_conn8.tif"));
        for (key, unl) in [("all_pixels", false), ("ignore_unlabelled", true)] {
            let s = metrics(&pred, &truth, None, unl, &DEFAULT_THRESHOLDS).unwrap().remove(0).1;
            check(&s, &want[key], key);
        }
        // The same restriction through an explicit ignore mask.
        let mask: Vec<u8> = truth.pixels::<u32>().unwrap().iter().map(|&v| (v == 0) as u8).collect();
        let mask = truth.with_pixels(mask).unwrap();
        let s = metrics(&pred, &truth, Some(&mask), false, &DEFAULT_THRESHOLDS).unwrap().remove(0).1;
        check(&s, &want["ignore_unlabelled"], "ignore mask");
        // And V_Rand on the dsb2018 watershed, from the same script.
        let truth = read_stack::<u32>(&sample("nuclei2d_labels.tif"));
        let pred = read_stack::<u32>(&reference("nuclei2d_dsb2018", "watershed.tif"));
        check(&score(&pred, &truth), &want["dsb2018_watershed"], "dsb2018 watershed");
    }

    #[test]
    fn bad_and_degenerate_inputs() {
        let t = Stack::from_2d::<u32>(2, 2, vec![1, 1, 0, 2]).unwrap();
        let other = Stack::from_2d::<u32>(2, 3, vec![0; 6]).unwrap();
        let e = metrics(&other, &t, None, false, &DEFAULT_THRESHOLDS).unwrap_err().to_string();
        assert!(e.contains("input 'prediction'") && e.contains("same shape"), "{e}");
        // No true object: a clear error, not NaN.
        let zero = Stack::from_2d::<u32>(2, 2, vec![0; 4]).unwrap();
        let e = metrics(&t, &zero, None, false, &DEFAULT_THRESHOLDS).unwrap_err().to_string();
        assert!(e.contains("input 'truth'") && e.contains("no labelled object"), "{e}");
        // Nothing predicted: defined values, no NaN anywhere.
        let s = score(&zero, &t);
        assert_eq!((s.foreground_iou, s.foreground_dice, s.ctc_seg), (0.0, 0.0, 0.0));
        assert_eq!((s.matching[0].precision, s.matching[0].recall, s.matching[0].mean_matched_iou), (0.0, 0.0, 0.0));
        let table = scores_table(&[(0, s)], false);
        match table.column("value").unwrap() {
            ColumnData::F64(v) => assert!(v.iter().all(|x| x.is_finite())),
            _ => panic!(),
        }
        // Single-pixel objects only: the adapted Rand ratios are 0/0 and defined as 1.
        let dots = Stack::from_2d::<u32>(1, 3, vec![1, 0, 2]).unwrap();
        let s = score(&dots, &dots);
        assert_eq!((s.adapted_rand_error, s.adapted_rand_precision, s.v_rand), (0.0, 1.0, 1.0));
    }

    #[test]
    fn time_lapse_skips_frames_without_truth() {
        use petri_api::{Axis, Pixel};
        let truth = Stack::new([2, 1, 1, 1, 3], &[Axis::T], u32::into_buffer(vec![0, 0, 0, 1, 1, 0])).unwrap();
        let pred = Stack::new([2, 1, 1, 1, 3], &[Axis::T], u32::into_buffer(vec![4, 0, 0, 7, 7, 7])).unwrap();
        let f = metrics(&pred, &truth, None, false, &[0.5]).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, 1);
        assert!((f[0].1.foreground_iou - 2.0 / 3.0).abs() < 1e-15);
        let table = scores_table(&f, true);
        assert_eq!(table.columns()[0].name, "frame");
    }
}
