//! Petri's node editor. (Being built: see issue "The node editor".)

use std::path::PathBuf;

use petri_api::Registry;

/// Opens the editor on `graph` (or a bundled example) and returns when the window closes.
pub fn run(_graph: Option<PathBuf>, _registry: Registry) -> Result<(), String> {
    Err("the editor is not part of this build yet; use `petri run GRAPH`".into())
}
