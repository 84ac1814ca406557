//! Checking a document against the registry and compiling it into an executable plan.
//!
//! Every problem becomes a [`Diagnostic`] naming the node and the port or parameter. All
//! problems are collected (not just the first), so the GUI can mark every bad node at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use petgraph::graph::{DiGraph, NodeIndex};
use petri_api::{Entry, ParamErrorKind, ParamKind, ParamValue, Params, PathMode, PortType, Registry};

use crate::doc::{GraphDoc, PortRef, valid_node_id};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DiagKind {
    BadNodeId,
    UnknownType,
    NewerNodeVersion,
    MigrationFailed,
    UnknownNode,
    UnknownPort,
    PortTypeMismatch,
    InputFedTwice,
    Cycle,
    MissingInput,
    UnknownParam,
    WrongKind,
    OutOfRange,
    NotFinite,
    MissingValue,
    MissingFile,
    OutputOutsideFolder,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub node: Option<String>,
    /// Port or parameter name.
    pub field: Option<String>,
    pub kind: DiagKind,
    pub message: String,
}

impl Diagnostic {
    fn new(kind: DiagKind, node: &str, field: Option<&str>, message: impl Into<String>) -> Diagnostic {
        Diagnostic { node: Some(node.into()), field: field.map(String::from), kind, message: message.into() }
    }

    /// Whether this problem stops `petri run`. An unknown node type does not: it loads as a
    /// placeholder and blocks only its own downstream branch.
    pub fn blocks_run(&self) -> bool {
        self.kind != DiagKind::UnknownType
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.node, &self.field) {
            (Some(n), Some(p)) => write!(f, "node '{n}', '{p}': {}", self.message),
            (Some(n), None) => write!(f, "node '{n}': {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Brings every known node's parameters up to its type's current version (`Node::migrate`,
/// one version at a time). Unknown types are left exactly as they are.
pub fn upgrade_nodes(doc: &mut GraphDoc, registry: &Registry) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for (id, n) in doc.nodes.iter_mut() {
        let Some(entry) = registry.get(&n.type_id) else { continue };
        let current = entry.spec.version;
        if n.version > current {
            diags.push(Diagnostic::new(
                DiagKind::NewerNodeVersion,
                id,
                None,
                format!(
                    "{} version {} was written by a newer Petri; this Petri knows it up to version {current}",
                    n.type_id, n.version
                ),
            ));
            continue;
        }
        while n.version < current {
            if let Err(e) = entry.node.migrate(n.version, &mut n.params) {
                diags.push(Diagnostic::new(
                    DiagKind::MigrationFailed,
                    id,
                    None,
                    format!("cannot upgrade {} from version {}: {e}", n.type_id, n.version),
                ));
                break;
            }
            n.version += 1;
        }
    }
    diags
}

/// Where relative paths point, and which parameters the user set on the command line.
#[derive(Clone, Debug)]
pub struct PathContext {
    /// The graph file's folder: relative input paths in the file resolve against it.
    pub graph_dir: PathBuf,
    /// The output folder: relative output paths in the file resolve against it, and may not
    /// leave it.
    pub out_dir: PathBuf,
    /// The working directory, for paths given on the command line.
    pub cwd: PathBuf,
    /// (node, parameter) pairs set by the user (`--set`): trusted, resolved against `cwd`.
    pub user_set: BTreeSet<(String, String)>,
}

impl PathContext {
    /// Paths for a graph file at `graph_path`, outputs in `out_dir` or `<graph folder>/out`.
    pub fn for_graph(graph_path: &Path, out_dir: Option<&Path>) -> PathContext {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let graph_dir = normalize(&cwd.join(graph_path.parent().unwrap_or(Path::new(""))));
        let out_dir = match out_dir {
            Some(o) => normalize(&cwd.join(o)),
            None => graph_dir.join("out"),
        };
        PathContext { graph_dir, out_dir, cwd, user_set: BTreeSet::new() }
    }
}

/// Lexical normalisation: removes `.` and resolves `..` without touching the file system.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A path relative to `base` if it lies below it (for saving paths chosen in the GUI).
pub fn relativize(path: &Path, base: &Path) -> PathBuf {
    let (p, b) = (normalize(path), normalize(base));
    let pc: Vec<_> = p.components().collect();
    let bc: Vec<_> = b.components().collect();
    let common = pc.iter().zip(&bc).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return p;
    }
    let mut out = PathBuf::new();
    for _ in common..bc.len() {
        out.push("..");
    }
    for c in &pc[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// A node ready to run: its implementation, checked parameters (defaults filled in, paths
/// resolved), the values that enter its cache key, and where each input comes from.
#[derive(Clone)]
pub struct CompiledNode {
    pub id: String,
    pub type_id: String,
    /// `None` for a node of unknown type (a placeholder).
    pub entry: Option<Entry>,
    pub params: Params,
    /// Parameters as they enter the cache key: input paths as written (their content is
    /// fingerprinted), output paths resolved (writing elsewhere is a different result).
    pub key_params: BTreeMap<String, ParamValue>,
    /// Input port → the output feeding it.
    pub inputs: BTreeMap<String, PortRef>,
    /// Names of the parameters that are input paths. When the node fingerprints what it reads,
    /// these stay out of its key: the same bytes under another name give the same result.
    pub read_paths: BTreeSet<String>,
}

#[derive(Clone)]
pub struct Compiled {
    /// Node ids in a deterministic topological order (ties broken by id).
    pub order: Vec<String>,
    pub nodes: BTreeMap<String, CompiledNode>,
    /// Problems that did not stop compilation (unknown node types).
    pub warnings: Vec<Diagnostic>,
}

impl Compiled {
    /// Ids of the nodes whose outputs feed `id`.
    pub fn upstream(&self, id: &str) -> BTreeSet<String> {
        self.nodes.get(id).map(|n| n.inputs.values().map(|p| p.node.clone()).collect()).unwrap_or_default()
    }
}

/// Checks `doc` and compiles it. Returns every problem found; unknown node types are
/// warnings (placeholders), everything else is an error.
pub fn compile(doc: &GraphDoc, registry: &Registry, paths: &PathContext) -> Result<Compiled, Vec<Diagnostic>> {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut nodes: BTreeMap<String, CompiledNode> = BTreeMap::new();

    // Nodes and parameters.
    for (id, n) in &doc.nodes {
        if !valid_node_id(id) {
            diags.push(Diagnostic::new(
                DiagKind::BadNodeId,
                id,
                None,
                "node names use letters, digits, '_' and '-' (no spaces or dots), starting with a letter",
            ));
        }
        let Some(entry) = registry.get(&n.type_id) else {
            diags.push(Diagnostic::new(
                DiagKind::UnknownType,
                id,
                None,
                format!(
                    "unknown node type '{}' (from a newer Petri or a plugin); it is kept as is but cannot run",
                    n.type_id
                ),
            ));
            nodes.insert(
                id.clone(),
                CompiledNode {
                    id: id.clone(),
                    type_id: n.type_id.clone(),
                    entry: None,
                    params: Params::default(),
                    key_params: BTreeMap::new(),
                    inputs: BTreeMap::new(),
                    read_paths: BTreeSet::new(),
                },
            );
            continue;
        };
        let spec = &entry.spec;
        if n.version > spec.version {
            diags.push(Diagnostic::new(
                DiagKind::NewerNodeVersion,
                id,
                None,
                format!("{} version {} is newer than this Petri's (version {})", n.type_id, n.version, spec.version),
            ));
        }
        for name in n.params.keys() {
            if spec.param_spec(name).is_none() {
                let known: Vec<&str> = spec.params.iter().map(|p| p.name.as_str()).collect();
                diags.push(Diagnostic::new(
                    DiagKind::UnknownParam,
                    id,
                    Some(name),
                    format!("{} has no parameter '{name}' (it has: {})", n.type_id, known.join(", ")),
                ));
            }
        }
        let mut values = BTreeMap::new();
        let mut key_params = BTreeMap::new();
        let read_paths: BTreeSet<String> = spec
            .params
            .iter()
            .filter(|p| matches!(p.kind, ParamKind::Path { mode: PathMode::Read { .. }, .. }))
            .map(|p| p.name.clone())
            .collect();
        for p in &spec.params {
            let given = n.params.get(&p.name).unwrap_or(&p.default);
            let v = match p.check_kind(given) {
                Ok(v) => v,
                Err(e) => {
                    let kind = match e.kind {
                        ParamErrorKind::WrongKind => DiagKind::WrongKind,
                        ParamErrorKind::OutOfRange => DiagKind::OutOfRange,
                        ParamErrorKind::NotFinite => DiagKind::NotFinite,
                        ParamErrorKind::Required => DiagKind::MissingValue,
                    };
                    diags.push(Diagnostic::new(kind, id, Some(&p.name), e.message));
                    continue;
                }
            };
            let (run_v, key_v) = match (&p.kind, &v) {
                (ParamKind::Path { mode, .. }, ParamValue::Str(s)) if !s.is_empty() => {
                    match resolve_path(id, &p.name, s, mode, paths) {
                        Ok(resolved) => {
                            let r = ParamValue::Str(resolved.to_string_lossy().into_owned());
                            match mode {
                                PathMode::Write => (r.clone(), r),
                                PathMode::Read { .. } => (r, v.clone()),
                            }
                        }
                        Err(d) => {
                            diags.push(d);
                            continue;
                        }
                    }
                }
                _ => (v.clone(), v.clone()),
            };
            values.insert(p.name.clone(), run_v);
            key_params.insert(p.name.clone(), key_v);
        }
        nodes.insert(
            id.clone(),
            CompiledNode {
                id: id.clone(),
                type_id: n.type_id.clone(),
                entry: Some(entry.clone()),
                params: Params::new(values),
                key_params,
                inputs: BTreeMap::new(),
                read_paths,
            },
        );
    }

    // Wires.
    for e in &doc.edges {
        let (Some(src), Some(dst)) = (nodes.get(&e.from.node), nodes.get(&e.to.node)) else {
            let missing = if nodes.contains_key(&e.from.node) { &e.to.node } else { &e.from.node };
            diags.push(Diagnostic {
                node: Some(missing.clone()),
                field: None,
                kind: DiagKind::UnknownNode,
                message: format!("the wire {} → {} refers to a node that does not exist", e.from, e.to),
            });
            continue;
        };
        let out_ty = match &src.entry {
            Some(en) => match en.spec.output_spec(&e.from.port) {
                Some(p) => Some(p.ty),
                None => {
                    let known: Vec<&str> = en.spec.outputs.iter().map(|p| p.name.as_str()).collect();
                    diags.push(Diagnostic::new(
                        DiagKind::UnknownPort,
                        &e.from.node,
                        Some(&e.from.port),
                        format!("{} has no output '{}' (outputs: {})", src.type_id, e.from.port, known.join(", ")),
                    ));
                    continue;
                }
            },
            None => None,
        };
        let in_ty = match &dst.entry {
            Some(en) => match en.spec.input_spec(&e.to.port) {
                Some(p) => Some(p.ty),
                None => {
                    let known: Vec<&str> = en.spec.inputs.iter().map(|p| p.name.as_str()).collect();
                    diags.push(Diagnostic::new(
                        DiagKind::UnknownPort,
                        &e.to.node,
                        Some(&e.to.port),
                        format!("{} has no input '{}' (inputs: {})", dst.type_id, e.to.port, known.join(", ")),
                    ));
                    continue;
                }
            },
            None => None,
        };
        if let (Some(o), Some(i)) = (out_ty, in_ty) {
            if !i.accepts(o) {
                diags.push(Diagnostic::new(
                    DiagKind::PortTypeMismatch,
                    &e.to.node,
                    Some(&e.to.port),
                    format!("input '{}' takes {} but {} gives {}", e.to.port, describe(i), e.from, describe(o)),
                ));
                continue;
            }
        }
        let Some(dst) = nodes.get_mut(&e.to.node) else { continue };
        if let Some(prev) = dst.inputs.insert(e.to.port.clone(), e.from.clone()) {
            diags.push(Diagnostic::new(
                DiagKind::InputFedTwice,
                &e.to.node,
                Some(&e.to.port),
                format!("input '{}' is fed by both {prev} and {}", e.to.port, e.from),
            ));
        }
    }

    // Required inputs.
    for n in nodes.values() {
        let Some(en) = &n.entry else { continue };
        for p in &en.spec.inputs {
            if p.required && !n.inputs.contains_key(&p.name) {
                diags.push(Diagnostic::new(
                    DiagKind::MissingInput,
                    &n.id,
                    Some(&p.name),
                    format!("required input '{}' ({}) is not connected", p.name, describe(p.ty)),
                ));
            }
        }
    }

    // Cycles, with petgraph; then a deterministic Kahn order.
    let mut g: DiGraph<&str, ()> = DiGraph::new();
    let idx: BTreeMap<&str, NodeIndex> = nodes.keys().map(|k| (k.as_str(), g.add_node(k.as_str()))).collect();
    for n in nodes.values() {
        for src in n.inputs.values() {
            if let (Some(&a), Some(&b)) = (idx.get(src.node.as_str()), idx.get(n.id.as_str())) {
                g.add_edge(a, b, ());
            }
        }
    }
    for scc in petgraph::algo::tarjan_scc(&g) {
        let self_loop = scc.len() == 1 && g.contains_edge(scc[0], scc[0]);
        if scc.len() > 1 || self_loop {
            let mut names: Vec<&str> = scc.iter().map(|&i| g[i]).collect();
            names.sort();
            diags.push(Diagnostic {
                node: Some(names[0].to_string()),
                field: None,
                kind: DiagKind::Cycle,
                message: format!("the graph has a cycle through {}", names.join(" → ")),
            });
        }
    }

    let (errors, warnings): (Vec<_>, Vec<_>) = diags.into_iter().partition(|d| d.blocks_run());
    if !errors.is_empty() {
        let mut errors = errors;
        errors.sort();
        errors.extend(warnings);
        return Err(errors);
    }
    let order = topo_order(&nodes);
    Ok(Compiled { order, nodes, warnings })
}

fn describe(t: PortType) -> String {
    match t {
        PortType::Image => "an image".into(),
        PortType::Mask => "a mask".into(),
        PortType::Labels => "labels".into(),
        PortType::Table => "a table".into(),
        PortType::File => "a file".into(),
        PortType::Stack => "an image, mask or labels".into(),
        PortType::Tracks => "tracks".into(),
        PortType::Dataset => "a dataset".into(),
        PortType::Model => "a model".into(),
    }
}

/// Kahn's algorithm with the ready set ordered by id: the same graph always runs (and prints)
/// in the same order.
fn topo_order(nodes: &BTreeMap<String, CompiledNode>) -> Vec<String> {
    let mut indeg: BTreeMap<&str, usize> = nodes.keys().map(|k| (k.as_str(), 0)).collect();
    let mut consumers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in nodes.values() {
        let srcs: BTreeSet<&str> = n.inputs.values().map(|p| p.node.as_str()).collect();
        for s in srcs {
            *indeg.entry(n.id.as_str()).or_default() += 1;
            consumers.entry(s).or_default().push(n.id.as_str());
        }
    }
    let mut ready: BTreeSet<&str> = indeg.iter().filter(|(_, d)| **d == 0).map(|(k, _)| *k).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(n) = ready.pop_first() {
        order.push(n.to_string());
        for c in consumers.get(n).into_iter().flatten() {
            if let Some(d) = indeg.get_mut(c) {
                *d -= 1;
                if *d == 0 {
                    ready.insert(c);
                }
            }
        }
    }
    order
}

fn resolve_path(
    node: &str,
    param: &str,
    value: &str,
    mode: &PathMode,
    ctx: &PathContext,
) -> Result<PathBuf, Diagnostic> {
    let p = Path::new(value);
    let user = ctx.user_set.contains(&(node.to_string(), param.to_string()));
    match mode {
        PathMode::Read { folder } => {
            let base = if user { &ctx.cwd } else { &ctx.graph_dir };
            let full = normalize(&base.join(p));
            let ok = if *folder { full.exists() } else { full.is_file() || full.is_dir() && value.ends_with(".zarr") };
            if !ok {
                let how = if p.is_absolute() {
                    String::new()
                } else if user {
                    " (relative to the working directory)".into()
                } else {
                    format!(" (\"{value}\" relative to the graph's folder {})", ctx.graph_dir.display())
                };
                return Err(Diagnostic::new(
                    DiagKind::MissingFile,
                    node,
                    Some(param),
                    format!("file not found: {}{how}", full.display()),
                ));
            }
            Ok(full)
        }
        PathMode::Write => {
            if user {
                return Ok(normalize(&ctx.cwd.join(p)));
            }
            let full = normalize(&ctx.out_dir.join(p));
            if p.is_absolute() || !full.starts_with(&ctx.out_dir) {
                return Err(Diagnostic::new(
                    DiagKind::OutputOutsideFolder,
                    node,
                    Some(param),
                    format!(
                        "\"{value}\" leaves the output folder {}; a graph file may only write inside it \
                         (choose another place with --out, or set this path yourself with --set)",
                        ctx.out_dir.display()
                    ),
                ));
            }
            Ok(full)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_and_relativize() {
        assert_eq!(normalize(Path::new("/a/b/../c/./d")), PathBuf::from("/a/c/d"));
        assert_eq!(relativize(Path::new("/a/b/c.tif"), Path::new("/a/d")), PathBuf::from("../b/c.tif"));
        assert_eq!(relativize(Path::new("/a/d/c.tif"), Path::new("/a/d")), PathBuf::from("c.tif"));
    }

    #[test]
    fn output_paths_stay_inside_the_output_folder() {
        let ctx = PathContext {
            graph_dir: "/g".into(),
            out_dir: "/g/out".into(),
            cwd: "/w".into(),
            user_set: [("s".to_string(), "path".to_string())].into(),
        };
        assert_eq!(
            resolve_path("n", "path", "a/b.tif", &PathMode::Write, &ctx).unwrap(),
            PathBuf::from("/g/out/a/b.tif")
        );
        for bad in ["../x.tif", "/etc/passwd", "a/../../x"] {
            let d = resolve_path("n", "path", bad, &PathMode::Write, &ctx).unwrap_err();
            assert_eq!(d.kind, DiagKind::OutputOutsideFolder, "{bad}");
        }
        // The user may write anywhere from the command line.
        assert_eq!(resolve_path("s", "path", "../x.tif", &PathMode::Write, &ctx).unwrap(), PathBuf::from("/x.tif"));
    }
}
