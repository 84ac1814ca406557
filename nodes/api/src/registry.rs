//! The registry of node types: explicit registration, one line per node, duplicates refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::node::Node;
use crate::param::ParamKind;
use crate::spec::NodeSpec;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RegistryError {
    #[error("node type '{0}' is registered twice")]
    Duplicate(String),
    #[error("node type '{type_id}': {message}")]
    BadSpec { type_id: String, message: String },
}

/// A registered node type: its implementation and its spec (computed once).
#[derive(Clone)]
pub struct Entry {
    pub node: Arc<dyn Node>,
    pub spec: Arc<NodeSpec>,
}

#[derive(Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers a node type. Refuses duplicates and specs that contradict themselves
    /// (a default outside its own range, two ports or parameters with one name).
    pub fn register(&mut self, node: impl Node) -> Result<(), RegistryError> {
        let spec = node.spec();
        let id = spec.type_id.clone();
        if self.entries.contains_key(&id) {
            return Err(RegistryError::Duplicate(id));
        }
        check_spec(&spec).map_err(|message| RegistryError::BadSpec { type_id: id.clone(), message })?;
        self.entries.insert(id, Entry { node: Arc::new(node), spec: Arc::new(spec) });
        Ok(())
    }

    pub fn get(&self, type_id: &str) -> Option<&Entry> {
        self.entries.get(type_id)
    }

    pub fn spec(&self, type_id: &str) -> Option<&Arc<NodeSpec>> {
        self.entries.get(type_id).map(|e| &e.spec)
    }

    /// Every spec, sorted by type id.
    pub fn specs(&self) -> impl Iterator<Item = &Arc<NodeSpec>> {
        self.entries.values().map(|e| &e.spec)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn check_spec(spec: &NodeSpec) -> Result<(), String> {
    let valid_id = |s: &str| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
    };
    if !valid_id(&spec.type_id) || !spec.type_id.contains('.') {
        return Err("type ids are lowercase 'category.name'".into());
    }
    if spec.version == 0 {
        return Err("versions start at 1".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &spec.inputs {
        if !seen.insert(("in", p.name.as_str())) {
            return Err(format!("input '{}' declared twice", p.name));
        }
    }
    for p in &spec.outputs {
        if !seen.insert(("out", p.name.as_str())) {
            return Err(format!("output '{}' declared twice", p.name));
        }
    }
    for p in &spec.params {
        if !seen.insert(("param", p.name.as_str())) {
            return Err(format!("parameter '{}' declared twice", p.name));
        }
        if p.doc.trim().is_empty() {
            return Err(format!("parameter '{}' has no doc (it is the GUI tooltip)", p.name));
        }
        p.check(&p.default).map_err(|e| format!("default of '{}': {e}", p.name))?;
        if let ParamKind::Choice(c) = &p.kind {
            if c.is_empty() {
                return Err(format!("choice parameter '{}' offers nothing", p.name));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Inputs, NodeCtx, NodeError, Outputs, ParamSpec, Params};

    struct Dummy(&'static str, f64);
    impl Node for Dummy {
        fn spec(&self) -> NodeSpec {
            NodeSpec::new(self.0, 1, "test", "dummy").param(ParamSpec::float("x", self.1, "x").range(0.0, 1.0))
        }
        fn run(&self, _: &NodeCtx, _: &Params, _: &Inputs) -> Result<Outputs, NodeError> {
            Ok(Outputs::new())
        }
    }

    #[test]
    fn duplicates_and_bad_specs_are_refused() {
        let mut r = Registry::new();
        r.register(Dummy("test.a", 0.5)).unwrap();
        assert_eq!(r.register(Dummy("test.a", 0.5)), Err(RegistryError::Duplicate("test.a".into())));
        assert!(matches!(r.register(Dummy("test.b", 2.0)), Err(RegistryError::BadSpec { .. })));
        assert!(matches!(r.register(Dummy("Test::B", 0.0)), Err(RegistryError::BadSpec { .. })));
        assert_eq!(r.len(), 1);
    }
}
