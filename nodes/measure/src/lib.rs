//! Petri's `measure` nodes: per-object measurements and segmentation scores.

use petri_api::{Registry, RegistryError};

pub mod accum;
pub mod regions;
pub mod shape;

/// Registers every node of this crate (one line per node).
pub fn register(r: &mut Registry) -> Result<(), RegistryError> {
    r.register(regions::Regions)?;
    Ok(())
}
