//! Pure editing logic: undo/redo, what an edit makes stale, copy/paste, the node finder's
//! search, and moving input paths when a graph is saved to another folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use petri_api::{NodeSpec, ParamKind, ParamValue, PathMode, Registry};
use petri_engine::{GraphDoc, NodeDoc, PortRef, Pos};

// ------------------------------------------------------------------------------ undo / redo

/// Undo and redo as snapshots of the whole document (a graph is small; a snapshot is a clone).
/// Consecutive edits with the same `coalesce` tag (typing into one parameter) make one step.
#[derive(Default, Clone, Debug)]
pub struct History {
    undo: Vec<(GraphDoc, Option<String>)>,
    redo: Vec<GraphDoc>,
}

pub const HISTORY_LIMIT: usize = 500;

impl History {
    /// Records `before` (the document as it was before an edit).
    pub fn record(&mut self, before: GraphDoc, coalesce: Option<String>) {
        if let (Some(tag), Some((_, last))) = (&coalesce, self.undo.last()) {
            if last.as_ref() == Some(tag) {
                self.redo.clear();
                return;
            }
        }
        self.undo.push((before, coalesce));
        if self.undo.len() > HISTORY_LIMIT {
            self.undo.remove(0);
        }
        self.redo.clear();
    }

    /// Ends coalescing: the next edit starts a new step even with the same tag.
    pub fn seal(&mut self) {
        if let Some(last) = self.undo.last_mut() {
            last.1 = None;
        }
    }

    pub fn undo(&mut self, current: &GraphDoc) -> Option<GraphDoc> {
        let (prev, _) = self.undo.pop()?;
        self.redo.push(current.clone());
        Some(prev)
    }

    pub fn redo(&mut self, current: &GraphDoc) -> Option<GraphDoc> {
        let next = self.redo.pop()?;
        self.undo.push((current.clone(), None));
        Some(next)
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
    pub fn clear(&mut self) {
        self.undo.clear();
        self.redo.clear();
    }
}

// ------------------------------------------------------------------------------ staleness

/// Nodes whose results an edit from `old` to `new` invalidates: nodes whose type, version or
/// parameters changed, nodes whose incoming wires changed, and everything downstream of them.
/// Moving or renaming a node invalidates nothing... except that a renamed node is "new"
/// here, which is harmless (its cached result is found again by key when it runs).
pub fn stale_after(old: &GraphDoc, new: &GraphDoc) -> BTreeSet<String> {
    let incoming = |d: &GraphDoc, id: &str| -> Vec<(String, PortRef)> {
        d.edges.iter().filter(|e| e.to.node == id).map(|e| (e.to.port.clone(), e.from.clone())).collect()
    };
    let mut changed = BTreeSet::new();
    for (id, n) in &new.nodes {
        if old.nodes.get(id) != Some(n) || incoming(old, id) != incoming(new, id) {
            changed.insert(id.clone());
        }
    }
    let mut out = BTreeSet::new();
    for id in changed {
        out.extend(new.descendants(&id));
    }
    out
}

// ------------------------------------------------------------------------------ clipboard

/// A copied piece of graph: nodes, the wires between them, positions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clip {
    pub doc: GraphDoc,
}

pub fn copy(doc: &GraphDoc, ids: &BTreeSet<String>) -> Clip {
    let mut c = GraphDoc::default();
    for id in ids {
        if let Some(n) = doc.nodes.get(id) {
            c.nodes.insert(id.clone(), n.clone());
            c.layout.insert(id.clone(), doc.layout.get(id).copied().unwrap_or_default());
        }
    }
    c.edges = doc.edges.iter().filter(|e| ids.contains(&e.from.node) && ids.contains(&e.to.node)).cloned().collect();
    Clip { doc: c }
}

/// Pastes a clip with fresh ids, shifted so its top-left lands at `at` (or by +40,+40 when
/// `at` is None). Returns the new ids.
pub fn paste(doc: &mut GraphDoc, clip: &Clip, at: Option<Pos>) -> BTreeSet<String> {
    let min_x = clip.doc.layout.values().map(|p| p.x).fold(f64::MAX, f64::min);
    let min_y = clip.doc.layout.values().map(|p| p.y).fold(f64::MAX, f64::min);
    let (dx, dy) = match at {
        Some(p) if min_x.is_finite() => (p.x - min_x, p.y - min_y),
        _ => (40.0, 40.0),
    };
    let mut rename = BTreeMap::new();
    for (id, n) in &clip.doc.nodes {
        let base = strip_suffix(id);
        let new_id = doc.fresh_id(base);
        let p = clip.doc.layout.get(id).copied().unwrap_or_default();
        if doc.add_node(&new_id, n.clone(), Pos { x: p.x + dx, y: p.y + dy }).is_ok() {
            rename.insert(id.clone(), new_id);
        }
    }
    for e in &clip.doc.edges {
        if let (Some(a), Some(b)) = (rename.get(&e.from.node), rename.get(&e.to.node)) {
            doc.connect(PortRef::new(a, &e.from.port), PortRef::new(b, &e.to.port));
        }
    }
    rename.into_values().collect()
}

/// "gaussian_3" → "gaussian" (so copies are named after the original, not "gaussian_3_2").
fn strip_suffix(id: &str) -> &str {
    match id.rsplit_once('_') {
        Some((base, n)) if !base.is_empty() && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => base,
        _ => id,
    }
}

/// A new node of type `spec` with default parameters, named after the type ("gaussian").
pub fn new_node(doc: &mut GraphDoc, spec: &NodeSpec, at: Pos) -> String {
    let base = spec.type_id.rsplit('.').next().unwrap_or("node");
    let id = doc.fresh_id(base);
    let _ = doc.add_node(&id, NodeDoc::new(&spec.type_id, spec.version), at);
    id
}

// ------------------------------------------------------------------------------ finder

/// The node finder's search: every word of the query must appear in the type id, category or
/// doc (case-insensitive); matches in the name rank first, then the category, then the doc.
pub fn search<'a>(registry: &'a Registry, query: &str) -> Vec<&'a NodeSpec> {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    let mut scored: Vec<(u32, &NodeSpec)> = registry
        .specs()
        .filter_map(|s| {
            let name = s.type_id.to_lowercase();
            let cat = s.category.to_lowercase();
            let doc = s.doc.to_lowercase();
            let params: String = s.params.iter().map(|p| p.name.to_lowercase() + " ").collect();
            let mut score = 0;
            for w in &words {
                if name.rsplit('.').next().is_some_and(|n| n.starts_with(w.as_str())) {
                    score += 8;
                } else if name.contains(w.as_str()) {
                    score += 5;
                } else if cat.contains(w.as_str()) {
                    score += 3;
                } else if doc.contains(w.as_str()) || params.contains(w.as_str()) {
                    score += 1;
                } else {
                    return None;
                }
            }
            Some((score, s.as_ref()))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.type_id.cmp(&b.1.type_id)));
    scored.into_iter().map(|(_, s)| s).collect()
}

// ------------------------------------------------------------------------------ paths

/// Input paths in a graph are relative to its folder: when a graph moves from `old_dir` to
/// `new_dir` (Save As), rewrite each relative input path so it still names the same file.
pub fn rebase_input_paths(doc: &mut GraphDoc, registry: &Registry, old_dir: &Path, new_dir: &Path) {
    if old_dir == new_dir {
        return;
    }
    for n in doc.nodes.values_mut() {
        let Some(spec) = registry.spec(&n.type_id) else { continue };
        for p in &spec.params {
            if !matches!(p.kind, ParamKind::Path { mode: PathMode::Read { .. }, .. }) {
                continue;
            }
            if let Some(ParamValue::Str(s)) = n.params.get(&p.name) {
                if s.is_empty() || Path::new(s).is_absolute() {
                    continue;
                }
                let abs = petri_engine::validate::normalize(&old_dir.join(s));
                let rel = petri_engine::validate::relativize(&abs, new_dir);
                n.params.insert(p.name.clone(), ParamValue::Str(rel.to_string_lossy().into_owned()));
            }
        }
    }
}

/// A path picked in a file dialog, as stored in the graph: relative to the graph's folder
/// when there is one.
pub fn stored_path(picked: &Path, graph_dir: Option<&Path>) -> String {
    match graph_dir {
        Some(d) => petri_engine::validate::relativize(picked, d).to_string_lossy().into_owned(),
        None => picked.to_string_lossy().into_owned(),
    }
}

// ------------------------------------------------------------------------------ parameters

/// The text shown in a parameter's entry field.
pub fn param_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Null => String::new(),
        ParamValue::Str(s) => s.clone(),
        ParamValue::Float(f) => petri_engine::format::float_text(*f).trim_end_matches(".0").to_string(),
        ParamValue::List(items) => items.iter().map(param_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Reads what the user typed into a parameter's field as a value of its kind, checked
/// against its range (the same check the file loader and `--set` use).
pub fn parse_param(spec: &petri_api::ParamSpec, text: &str) -> Result<ParamValue, String> {
    let t = text.trim();
    if t.is_empty() && spec.nullable {
        return Ok(ParamValue::Null);
    }
    let num = |s: &str| -> Result<ParamValue, String> {
        let s = s.trim();
        if let Ok(i) = s.parse::<i64>() {
            return Ok(ParamValue::Int(i));
        }
        s.parse::<f64>().map(ParamValue::Float).map_err(|_| format!("'{s}' is not a number"))
    };
    let v = match &spec.kind {
        ParamKind::Int { .. } | ParamKind::Float { .. } => num(t)?,
        ParamKind::Floats { .. } => {
            let parts: Vec<&str> = t.split([',', ' ']).filter(|s| !s.is_empty()).collect();
            if parts.len() == 1 {
                num(parts[0])?
            } else {
                ParamValue::List(parts.into_iter().map(num).collect::<Result<_, _>>()?)
            }
        }
        ParamKind::Bool => match t {
            "true" => ParamValue::Bool(true),
            "false" => ParamValue::Bool(false),
            _ => return Err("expected true or false".into()),
        },
        ParamKind::Str | ParamKind::Choice(_) | ParamKind::Path { .. } => ParamValue::Str(text.to_string()),
    };
    spec.check(&v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{doc_chain, registry};

    #[test]
    fn undo_redo_and_coalescing() {
        let mut h = History::default();
        let mut doc = doc_chain();
        let d0 = doc.clone();
        h.record(doc.clone(), None);
        doc.remove_node("add2").unwrap();
        let d1 = doc.clone();
        // Two keystrokes into the same field are one step.
        h.record(doc.clone(), Some("add.amount".into()));
        doc.set_param("add", "amount", ParamValue::Float(2.0)).unwrap();
        h.record(doc.clone(), Some("add.amount".into()));
        doc.set_param("add", "amount", ParamValue::Float(2.5)).unwrap();
        let back = h.undo(&doc).unwrap();
        assert_eq!(back, d1);
        let back2 = h.undo(&back).unwrap();
        assert_eq!(back2, d0);
        assert!(!h.can_undo());
        let fwd = h.redo(&back2).unwrap();
        assert_eq!(fwd, d1);
        let fwd2 = h.redo(&fwd).unwrap();
        assert_eq!(fwd2, doc);
        assert!(!h.can_redo());
        // A new edit clears redo.
        let _ = h.undo(&fwd2).unwrap();
        h.record(d1.clone(), None);
        assert!(!h.can_redo());
    }

    #[test]
    fn an_edit_makes_the_node_and_its_descendants_stale() {
        let old = doc_chain();
        let mut new = old.clone();
        new.set_param("add", "amount", ParamValue::Float(3.0)).unwrap();
        assert_eq!(stale_after(&old, &new), ["add", "add2"].iter().map(|s| s.to_string()).collect());
        let mut moved = old.clone();
        moved.layout.insert("add".into(), Pos { x: 9.0, y: 9.0 });
        assert!(stale_after(&old, &moved).is_empty(), "moving a node re-runs nothing");
        let mut rewired = old.clone();
        rewired.connect(PortRef::new("src2", "image"), PortRef::new("add2", "image"));
        assert_eq!(stale_after(&old, &rewired), ["add2".to_string()].into());
    }

    #[test]
    fn copy_paste_keeps_inner_wires_with_fresh_ids() {
        let mut doc = doc_chain();
        let clip = copy(&doc, &["add".to_string(), "add2".to_string()].into());
        assert_eq!(clip.doc.edges.len(), 1, "only the wire inside the selection");
        let ids = paste(&mut doc, &clip, None);
        assert_eq!(ids, ["add_2".to_string(), "add2_2".to_string()].into());
        assert!(doc.edges.iter().any(|e| e.from.node == "add_2" && e.to.node == "add2_2"));
        assert_eq!(doc.layout["add_2"], Pos { x: 280.0, y: 40.0 });
        let again = paste(&mut doc, &clip, Some(Pos { x: 1000.0, y: 0.0 }));
        assert!(again.contains("add_3"), "{again:?}");
        assert_eq!(doc.layout["add_3"], Pos { x: 1000.0, y: 0.0 });
    }

    #[test]
    fn finder_searches_names_categories_and_docs() {
        let r = registry();
        let names = |q: &str| search(&r, q).iter().map(|s| s.type_id.clone()).collect::<Vec<_>>();
        assert_eq!(names("add")[0], "test.add");
        assert!(names("learn").contains(&"test.train".to_string()), "category");
        assert!(names("loss curves").contains(&"test.train".to_string()), "doc words");
        assert!(names("zzzz").is_empty());
        assert_eq!(names("").len(), r.len());
    }

    #[test]
    fn input_paths_follow_the_graph_to_a_new_folder() {
        let r = registry();
        let mut doc = doc_chain();
        doc.set_param("src", "path", ParamValue::Str("../data/a.tif".into())).unwrap();
        rebase_input_paths(&mut doc, &r, Path::new("/lab/graphs"), Path::new("/lab/graphs/mine"));
        assert_eq!(doc.nodes["src"].params["path"], ParamValue::Str("../../data/a.tif".into()));
        assert_eq!(stored_path(Path::new("/lab/data/b.tif"), Some(Path::new("/lab/graphs"))), "../data/b.tif");
    }

    #[test]
    fn typed_parameters_are_parsed_and_checked() {
        let r = registry();
        let add = r.spec("test.add").unwrap();
        let amount = add.param_spec("amount").unwrap();
        assert_eq!(parse_param(amount, "2.5"), Ok(ParamValue::Float(2.5)));
        assert_eq!(parse_param(amount, "3"), Ok(ParamValue::Float(3.0)));
        assert!(parse_param(amount, "11").unwrap_err().contains("at most 10"));
        assert!(parse_param(amount, "abc").is_err());
        let path = r.spec("test.source").unwrap().param_spec("path").unwrap();
        assert_eq!(parse_param(path, ""), Ok(ParamValue::Null));
        assert_eq!(param_text(&ParamValue::Float(2.0)), "2");
        assert_eq!(param_text(&ParamValue::Float(0.25)), "0.25");
    }
}
