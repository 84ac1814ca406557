//! The graph document: what a graph file holds, and the edits the GUI makes to it.
//!
//! Everything is keyed by name and kept in sorted maps, so saving is deterministic and a diff
//! of two files shows what changed. Layout is kept apart from the nodes: moving a node touches
//! only `layout`, and never a cache key.

use std::collections::{BTreeMap, BTreeSet};

use petri_api::ParamValue;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    pub name: String,
    pub description: String,
    pub authors: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeDoc {
    /// Stable node type id, e.g. "image.gaussian".
    pub type_id: String,
    /// The node type's version the parameters were written for.
    pub version: u32,
    /// Parameters as written in the file (paths relative to the graph file). Parameters left
    /// out take their default.
    pub params: BTreeMap<String, ParamValue>,
}

impl NodeDoc {
    pub fn new(type_id: &str, version: u32) -> NodeDoc {
        NodeDoc { type_id: type_id.into(), version, params: BTreeMap::new() }
    }

    pub fn with(mut self, name: &str, v: ParamValue) -> NodeDoc {
        self.params.insert(name.into(), v);
        self
    }
}

/// One end of a wire: a node id and a port name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRef {
    pub node: String,
    pub port: String,
}

impl PortRef {
    pub fn new(node: &str, port: &str) -> PortRef {
        PortRef { node: node.into(), port: port.into() }
    }
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.node, self.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Edge {
    pub from: PortRef,
    pub to: PortRef,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pos {
    pub x: f64,
    pub y: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphDoc {
    pub meta: Meta,
    pub nodes: BTreeMap<String, NodeDoc>,
    /// Kept sorted (by destination, then source) so saves are canonical.
    pub edges: Vec<Edge>,
    pub layout: BTreeMap<String, Pos>,
}

/// Node ids are user-visible names: letters, digits, `_` and `-`, starting with a letter or `_`.
/// No dots (the CLI's `--set NODE.PARAM=...` splits on the first dot) and no spaces.
pub fn valid_node_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        && id.len() <= 64
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EditError {
    #[error("there is no node '{0}'")]
    NoNode(String),
    #[error("a node named '{0}' already exists")]
    Exists(String),
    #[error("'{0}' is not a valid node name (letters, digits, '_' and '-', no spaces or dots)")]
    BadId(String),
}

impl GraphDoc {
    pub fn sort_edges(&mut self) {
        self.edges.sort_by(|a, b| (&a.to, &a.from).cmp(&(&b.to, &b.from)));
        self.edges.dedup();
    }

    pub fn add_node(&mut self, id: &str, node: NodeDoc, pos: Pos) -> Result<(), EditError> {
        if !valid_node_id(id) {
            return Err(EditError::BadId(id.into()));
        }
        if self.nodes.contains_key(id) {
            return Err(EditError::Exists(id.into()));
        }
        self.nodes.insert(id.into(), node);
        self.layout.insert(id.into(), pos);
        Ok(())
    }

    /// Removes a node, its wires and its layout entry.
    pub fn remove_node(&mut self, id: &str) -> Result<NodeDoc, EditError> {
        let n = self.nodes.remove(id).ok_or_else(|| EditError::NoNode(id.into()))?;
        self.edges.retain(|e| e.from.node != id && e.to.node != id);
        self.layout.remove(id);
        Ok(n)
    }

    /// Renames a node everywhere (wires, layout). Cache keys do not contain ids, so a rename
    /// re-runs nothing.
    pub fn rename_node(&mut self, old: &str, new: &str) -> Result<(), EditError> {
        if old == new {
            return Ok(());
        }
        if !valid_node_id(new) {
            return Err(EditError::BadId(new.into()));
        }
        if self.nodes.contains_key(new) {
            return Err(EditError::Exists(new.into()));
        }
        let n = self.nodes.remove(old).ok_or_else(|| EditError::NoNode(old.into()))?;
        self.nodes.insert(new.into(), n);
        if let Some(p) = self.layout.remove(old) {
            self.layout.insert(new.into(), p);
        }
        for e in &mut self.edges {
            if e.from.node == old {
                e.from.node = new.into();
            }
            if e.to.node == old {
                e.to.node = new.into();
            }
        }
        self.sort_edges();
        Ok(())
    }

    /// Connects `from` to `to`, replacing any wire already feeding `to` (an input takes one wire).
    pub fn connect(&mut self, from: PortRef, to: PortRef) {
        self.edges.retain(|e| e.to != to);
        self.edges.push(Edge { from, to });
        self.sort_edges();
    }

    pub fn disconnect(&mut self, to: &PortRef) -> Option<Edge> {
        let i = self.edges.iter().position(|e| &e.to == to)?;
        Some(self.edges.remove(i))
    }

    pub fn set_param(&mut self, node: &str, name: &str, v: ParamValue) -> Result<(), EditError> {
        let n = self.nodes.get_mut(node).ok_or_else(|| EditError::NoNode(node.into()))?;
        n.params.insert(name.into(), v);
        Ok(())
    }

    /// The wire feeding an input, if any.
    pub fn source_of(&self, to: &PortRef) -> Option<&PortRef> {
        self.edges.iter().find(|e| &e.to == to).map(|e| &e.from)
    }

    /// The node and everything downstream of it.
    pub fn descendants(&self, id: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![id.to_string()];
        while let Some(n) = stack.pop() {
            if out.insert(n.clone()) {
                stack.extend(self.edges.iter().filter(|e| e.from.node == n).map(|e| e.to.node.clone()));
            }
        }
        out
    }

    /// The node and everything upstream of it.
    pub fn ancestors(&self, id: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![id.to_string()];
        while let Some(n) = stack.pop() {
            if out.insert(n.clone()) {
                stack.extend(self.edges.iter().filter(|e| e.to.node == n).map(|e| e.from.node.clone()));
            }
        }
        out
    }

    /// A free id based on `base` ("gaussian", "gaussian_2", ...).
    pub fn fresh_id(&self, base: &str) -> String {
        let base: String =
            base.chars().map(|c| if c.is_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
        let base = if valid_node_id(&base) { base } else { format!("n_{base}") };
        if !self.nodes.contains_key(&base) {
            return base;
        }
        (2..).map(|i| format!("{base}_{i}")).find(|c| !self.nodes.contains_key(c)).unwrap_or(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_wires_consistent() {
        let mut g = GraphDoc::default();
        g.add_node("a", NodeDoc::new("t.a", 1), Pos::default()).unwrap();
        g.add_node("b", NodeDoc::new("t.b", 1), Pos::default()).unwrap();
        assert_eq!(g.add_node("a", NodeDoc::new("t.a", 1), Pos::default()), Err(EditError::Exists("a".into())));
        assert_eq!(g.add_node("x.y", NodeDoc::new("t.a", 1), Pos::default()), Err(EditError::BadId("x.y".into())));
        g.connect(PortRef::new("a", "out"), PortRef::new("b", "in"));
        g.connect(PortRef::new("a", "out2"), PortRef::new("b", "in"));
        assert_eq!(g.edges.len(), 1, "an input takes one wire");
        g.rename_node("a", "c").unwrap();
        assert_eq!(g.edges[0].from, PortRef::new("c", "out2"));
        assert!(g.layout.contains_key("c"));
        assert_eq!(g.descendants("c"), ["b", "c"].iter().map(|s| s.to_string()).collect());
        g.remove_node("c").unwrap();
        assert!(g.edges.is_empty());
        assert_eq!(g.fresh_id("b"), "b_2");
    }
}
