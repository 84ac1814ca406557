//! Petri's engine: the graph document and its file format (with migrations), validation and
//! compilation to a DAG, the memory and disk caches, and the executor with its events.
//!
//! The engine knows nodes only through `petri_api` (specs and the `Node` trait); the `petri`
//! binary assembles the registry from the node crates.

pub mod cache;
pub mod doc;
pub mod exec;
pub mod format;
pub mod migrate;
pub mod raw;
pub mod validate;

pub use cache::{DiskCache, Key, MemoryCache, key_hex};
pub use doc::{Edge, GraphDoc, Meta, NodeDoc, PortRef, Pos};
pub use exec::{Engine, Event, FailureKind, NodeReport, NodeStatus, RunOptions, RunReport};
pub use format::{LoadError, LoadErrorKind, load_file, parse_doc, save_file, to_text};
pub use validate::{Compiled, DiagKind, Diagnostic, PathContext, compile, upgrade_nodes};

/// Loads a graph file and upgrades its nodes' parameters to the registry's versions.
/// Problems with individual nodes are returned as diagnostics, not errors.
pub fn load_graph(
    path: &std::path::Path,
    registry: &petri_api::Registry,
) -> Result<(GraphDoc, Vec<Diagnostic>), LoadError> {
    let mut doc = load_file(path)?;
    let diags = upgrade_nodes(&mut doc, registry);
    Ok((doc, diags))
}
