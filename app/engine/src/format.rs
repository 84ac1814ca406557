//! The graph file: RON, saved canonically (sorted keys, one node / wire / position per line,
//! shortest round-trip floats) so diffs are clean and `petri fmt` is idempotent.
//!
//! Loading: text → untyped value → check `format` and `version` → file migrations → document.
//! Per-node parameter migrations happen in [`crate::validate::upgrade_nodes`], which needs the
//! registry. Saving writes a temporary file beside the target, fsyncs it and renames it over.

use std::collections::BTreeMap;
use std::path::Path;

use petri_api::ParamValue;

use crate::doc::{Edge, GraphDoc, Meta, NodeDoc, PortRef, Pos};
use crate::migrate;
use crate::raw::{self, Raw};

pub const FORMAT: &str = "petri-graph";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// The file cannot be read.
    Io,
    /// Not valid RON.
    Syntax,
    /// RON, but not a Petri graph.
    NotAGraph,
    /// Written by a newer Petri.
    NewerVersion,
    /// A Petri graph with a field of the wrong shape.
    Structure,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    pub kind: LoadErrorKind,
    pub message: String,
}

impl LoadError {
    fn new(kind: LoadErrorKind, message: impl Into<String>) -> LoadError {
        LoadError { kind, message: message.into() }
    }
    fn structure(message: impl Into<String>) -> LoadError {
        LoadError::new(LoadErrorKind::Structure, message)
    }
    /// The same error, prefixed with the file it came from.
    pub fn in_file(self, path: &Path) -> LoadError {
        LoadError { kind: self.kind, message: format!("{}: {}", path.display(), self.message) }
    }
}

/// Reads and parses a graph file (no registry needed; see `validate::upgrade_nodes`).
pub fn load_file(path: &Path) -> Result<GraphDoc, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::new(LoadErrorKind::Io, format!("{}: cannot read: {e}", path.display())))?;
    parse_doc(&text).map_err(|e| e.in_file(path))
}

/// Parses graph-file text into a document.
pub fn parse_doc(text: &str) -> Result<GraphDoc, LoadError> {
    let raw = raw::parse(text).map_err(|e| LoadError::new(LoadErrorKind::Syntax, e))?;
    let Raw::Map(top) = &raw else {
        return Err(LoadError::new(
            LoadErrorKind::NotAGraph,
            format!("expected a graph (a struct), found {}", raw.kind()),
        ));
    };
    let get = |k: &str| top.iter().find(|(key, _)| *key == Raw::Str(k.into())).map(|(_, v)| v);
    match get("format") {
        Some(Raw::Str(f)) if f == FORMAT => {}
        Some(Raw::Str(f)) => {
            return Err(LoadError::new(LoadErrorKind::NotAGraph, format!("format is \"{f}\", expected \"{FORMAT}\"")));
        }
        _ => return Err(LoadError::new(LoadErrorKind::NotAGraph, format!("missing `format: \"{FORMAT}\"`"))),
    }
    let version = match get("version") {
        Some(Raw::Int(v)) if *v >= 1 => *v as u64,
        Some(v) => {
            return Err(LoadError::structure(format!("`version` must be a positive integer, found {}", v.kind())));
        }
        None => return Err(LoadError::structure("missing `version`")),
    };
    if version > migrate::CURRENT as u64 {
        return Err(LoadError::new(
            LoadErrorKind::NewerVersion,
            format!(
                "this graph file has format version {version}, but this Petri reads versions up to {}; \
                 update Petri to open it",
                migrate::CURRENT
            ),
        ));
    }
    let raw = migrate::upgrade(raw, version as u32).map_err(LoadError::structure)?;
    from_raw(&raw)
}

fn fields<'a>(what: &str, raw: &'a Raw, allowed: &[&str]) -> Result<BTreeMap<&'a str, &'a Raw>, LoadError> {
    let Raw::Map(m) = raw else {
        return Err(LoadError::structure(format!("{what}: expected a struct, found {}", raw.kind())));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let Raw::Str(k) = k else {
            return Err(LoadError::structure(format!("{what}: field names must be names, found {}", k.kind())));
        };
        if !allowed.contains(&k.as_str()) {
            return Err(LoadError::structure(format!("{what}: unknown field `{k}` (expected {})", allowed.join(", "))));
        }
        out.insert(k.as_str(), v);
    }
    Ok(out)
}

fn string(what: &str, raw: &Raw) -> Result<String, LoadError> {
    match raw {
        Raw::Str(s) => Ok(s.clone()),
        other => Err(LoadError::structure(format!("{what}: expected a string, found {}", other.kind()))),
    }
}

fn number(what: &str, raw: &Raw) -> Result<f64, LoadError> {
    match raw {
        Raw::Int(i) => Ok(*i as f64),
        Raw::Float(f) if f.is_finite() => Ok(*f),
        Raw::Float(_) => Err(LoadError::structure(format!("{what}: must be a finite number"))),
        other => Err(LoadError::structure(format!("{what}: expected a number, found {}", other.kind()))),
    }
}

fn map_entries<'a>(what: &str, raw: &'a Raw) -> Result<Vec<(String, &'a Raw)>, LoadError> {
    match raw {
        Raw::Map(m) => m
            .iter()
            .map(|(k, v)| match k {
                Raw::Str(s) => Ok((s.clone(), v)),
                other => Err(LoadError::structure(format!("{what}: keys must be strings, found {}", other.kind()))),
            })
            .collect(),
        other => Err(LoadError::structure(format!("{what}: expected a map, found {}", other.kind()))),
    }
}

fn port_ref(what: &str, raw: &Raw) -> Result<PortRef, LoadError> {
    match raw {
        Raw::Seq(v) if v.len() == 2 => {
            Ok(PortRef { node: string(&format!("{what} node"), &v[0])?, port: string(&format!("{what} port"), &v[1])? })
        }
        _ => Err(LoadError::structure(format!("{what}: expected (\"node\", \"port\")"))),
    }
}

fn from_raw(raw: &Raw) -> Result<GraphDoc, LoadError> {
    let top = fields("graph", raw, &["format", "version", "meta", "nodes", "edges", "layout"])?;
    let mut doc = GraphDoc::default();

    if let Some(m) = top.get("meta") {
        let f = fields("meta", m, &["name", "description", "authors"])?;
        doc.meta = Meta {
            name: f.get("name").map(|v| string("meta.name", v)).transpose()?.unwrap_or_default(),
            description: f.get("description").map(|v| string("meta.description", v)).transpose()?.unwrap_or_default(),
            authors: match f.get("authors") {
                None => Vec::new(),
                Some(Raw::Seq(v)) => v.iter().map(|a| string("meta.authors", a)).collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(LoadError::structure(format!("meta.authors: expected a list, found {}", other.kind())));
                }
            },
        };
    }

    if let Some(nodes) = top.get("nodes") {
        for (id, n) in map_entries("nodes", nodes)? {
            let what = format!("node \"{id}\"");
            let f = fields(&what, n, &["type", "version", "params"])?;
            let type_id = string(
                &format!("{what}: type"),
                f.get("type").ok_or_else(|| LoadError::structure(format!("{what}: missing `type`")))?,
            )?;
            let version = match f.get("version") {
                Some(Raw::Int(v)) if *v >= 1 && *v <= u32::MAX as i64 => *v as u32,
                Some(_) => return Err(LoadError::structure(format!("{what}: `version` must be a positive integer"))),
                None => return Err(LoadError::structure(format!("{what}: missing `version`"))),
            };
            let mut params = BTreeMap::new();
            if let Some(p) = f.get("params") {
                for (name, v) in map_entries(&format!("{what}: params"), p)? {
                    let pv =
                        v.to_param().map_err(|e| LoadError::structure(format!("{what}: parameter '{name}': {e}")))?;
                    params.insert(name, pv);
                }
            }
            doc.nodes.insert(id, NodeDoc { type_id, version, params });
        }
    }

    if let Some(edges) = top.get("edges") {
        let Raw::Seq(list) = edges else {
            return Err(LoadError::structure(format!("edges: expected a list, found {}", edges.kind())));
        };
        for (i, e) in list.iter().enumerate() {
            let what = format!("edge {}", i + 1);
            let f = fields(&what, e, &["from", "to"])?;
            let from = port_ref(
                &format!("{what}: from"),
                f.get("from").ok_or_else(|| LoadError::structure(format!("{what}: missing `from`")))?,
            )?;
            let to = port_ref(
                &format!("{what}: to"),
                f.get("to").ok_or_else(|| LoadError::structure(format!("{what}: missing `to`")))?,
            )?;
            doc.edges.push(Edge { from, to });
        }
        let before = doc.edges.len();
        doc.sort_edges();
        if doc.edges.len() != before {
            return Err(LoadError::structure("edges: the same wire is listed twice"));
        }
    }

    if let Some(layout) = top.get("layout") {
        for (id, p) in map_entries("layout", layout)? {
            let what = format!("layout \"{id}\"");
            let f = fields(&what, p, &["x", "y"])?;
            let x = number(
                &format!("{what}.x"),
                f.get("x").ok_or_else(|| LoadError::structure(format!("{what}: missing x")))?,
            )?;
            let y = number(
                &format!("{what}.y"),
                f.get("y").ok_or_else(|| LoadError::structure(format!("{what}: missing y")))?,
            )?;
            doc.layout.insert(id, Pos { x, y });
        }
    }
    Ok(doc)
}

// ------------------------------------------------------------------------------------ saving

/// The canonical text of a document.
pub fn to_text(doc: &GraphDoc) -> String {
    let mut s = String::new();
    s.push_str("(\n");
    s.push_str(&format!("    format: {},\n", quote(FORMAT)));
    s.push_str(&format!("    version: {},\n", migrate::CURRENT));
    s.push_str("    meta: (\n");
    s.push_str(&format!("        name: {},\n", quote(&doc.meta.name)));
    s.push_str(&format!("        description: {},\n", quote(&doc.meta.description)));
    let authors: Vec<String> = doc.meta.authors.iter().map(|a| quote(a)).collect();
    s.push_str(&format!("        authors: [{}],\n", authors.join(", ")));
    s.push_str("    ),\n");
    s.push_str("    nodes: {\n");
    for (id, n) in &doc.nodes {
        s.push_str(&format!(
            "        {}: (type: {}, version: {}, params: {}),\n",
            quote(id),
            quote(&n.type_id),
            n.version,
            value_text(&ParamValue::Map(n.params.clone()))
        ));
    }
    s.push_str("    },\n");
    s.push_str("    edges: [\n");
    let mut edges = doc.edges.clone();
    edges.sort_by(|a, b| (&a.to, &a.from).cmp(&(&b.to, &b.from)));
    for e in &edges {
        s.push_str(&format!(
            "        (from: ({}, {}), to: ({}, {})),\n",
            quote(&e.from.node),
            quote(&e.from.port),
            quote(&e.to.node),
            quote(&e.to.port)
        ));
    }
    s.push_str("    ],\n");
    s.push_str("    layout: {\n");
    for (id, p) in &doc.layout {
        s.push_str(&format!("        {}: (x: {}, y: {}),\n", quote(id), float_text(p.x), float_text(p.y)));
    }
    s.push_str("    },\n");
    s.push_str(")\n");
    s
}

/// RON text of a parameter value (one line, map keys sorted).
pub fn value_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Null => "None".into(),
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Float(f) => float_text(*f),
        ParamValue::Str(s) => quote(s),
        ParamValue::List(items) => format!("[{}]", items.iter().map(value_text).collect::<Vec<_>>().join(", ")),
        ParamValue::Map(m) => {
            format!(
                "{{{}}}",
                m.iter().map(|(k, v)| format!("{}: {}", quote(k), value_text(v))).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// Shortest text that reads back to the same f64, always with a '.' or exponent so it stays a
/// float when read back.
pub fn float_text(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let s = format!("{f:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") { s } else { format!("{s}.0") }
}

/// A RON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename; see
/// `petri_api::fsutil`). A crash or a full disk leaves the old file untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    petri_api::fsutil::write_atomic(path, bytes)
}

/// Saves a document canonically and atomically.
pub fn save_file(path: &Path, doc: &GraphDoc) -> std::io::Result<()> {
    write_atomic(path, to_text(doc).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"(
    format: "petri-graph",
    version: 1,
    meta: (
        name: "Nuclei",
        description: "a \"test\"\nline two",
        authors: ["A. Author"],
    ),
    nodes: {
        "load": (type: "io.load_stack", version: 1, params: {"path": "../x.tif"}),
        "smooth": (type: "image.gaussian", version: 1, params: {"sigma": [1.0, 2.5], "z": None}),
    },
    edges: [
        (from: ("load", "image"), to: ("smooth", "image")),
    ],
    layout: {
        "load": (x: 0.0, y: -12.5),
        "smooth": (x: 240.0, y: 1e-7),
    },
)
"#;

    #[test]
    fn canonical_text_round_trips_byte_identically() {
        let doc = parse_doc(EXAMPLE).unwrap();
        assert_eq!(to_text(&doc), EXAMPLE);
        assert_eq!(
            doc.nodes["smooth"].params["sigma"],
            ParamValue::List(vec![ParamValue::Float(1.0), ParamValue::Float(2.5)])
        );
    }

    #[test]
    fn loose_text_is_canonicalised_idempotently() {
        let loose = r#"(format:"petri-graph",version:1,nodes:{"b":(type:"t.b",version:1,params:{"k":1,"a":2.50}),"a":(type:"t.a",version:1)},
            edges:[(from:("a","o"),to:("b","i"))])"#;
        let once = to_text(&parse_doc(loose).unwrap());
        let twice = to_text(&parse_doc(&once).unwrap());
        assert_eq!(once, twice);
        assert!(once.find("\"a\": (type").unwrap() < once.find("\"b\": (type").unwrap(), "nodes sorted");
        assert!(once.contains(r#"params: {"a": 2.5, "k": 1}"#), "{once}");
    }

    #[test]
    fn errors_have_kinds() {
        let kind = |t: &str| parse_doc(t).unwrap_err().kind;
        assert_eq!(kind("(format: \"petri-graph\", version: 1,,)"), LoadErrorKind::Syntax);
        assert_eq!(kind("(format: \"other\", version: 1)"), LoadErrorKind::NotAGraph);
        assert_eq!(kind("[1, 2]"), LoadErrorKind::NotAGraph);
        let e = parse_doc("(format: \"petri-graph\", version: 7)").unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::NewerVersion);
        assert!(e.message.contains("version 7") && e.message.contains("up to 1"), "{}", e.message);
        assert_eq!(kind("(format: \"petri-graph\", version: 1, extra: 1)"), LoadErrorKind::Structure);
        assert_eq!(
            kind("(format: \"petri-graph\", version: 1, nodes: {\"a\": (type: \"x.y\")})"),
            LoadErrorKind::Structure
        );
        assert_eq!(
            kind(
                "(format: \"petri-graph\", version: 1, nodes: {\"a\": (type: \"x.y\", version: 1), \"a\": (type: \"x.y\", version: 1)})"
            ),
            LoadErrorKind::Syntax
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("g.ron");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
