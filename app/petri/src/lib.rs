//! The `petri` application: the registry of every node crate, and the command line.
//! `petri run graph.ron` and the GUI run graphs through the same engine, identically.

pub mod cli;
pub mod nodes_doc;

use petri_api::{Registry, RegistryError};

/// Every node type Petri ships, one line per node crate.
pub fn registry() -> Result<Registry, RegistryError> {
    let mut r = Registry::new();
    petri_io::register(&mut r)?;
    petri_image::register(&mut r)?;
    petri_label::register(&mut r)?;
    petri_measure::register(&mut r)?;
    petri_track::register(&mut r)?;
    petri_learn::register(&mut r)?;
    Ok(r)
}
