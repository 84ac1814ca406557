//! Petri's `track` nodes: linking objects through time, and the Cell Tracking Challenge
//! file format.

use petri_api::{Registry, RegistryError};

pub mod assign;
pub mod link;
pub mod objects;
pub mod tracks;

/// Registers every node of this crate (one line per node).
pub fn register(r: &mut Registry) -> Result<(), RegistryError> {
    r.register(link::Link)?;
    Ok(())
}
