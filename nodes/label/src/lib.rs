//! Petri's `label` nodes: connected components, distance transform, seeds, watershed and
//! morphology on masks and labels.

use petri_api::{Registry, RegistryError};

pub mod connected_components;
pub mod distance_transform;
pub mod edt;
pub mod queue;
pub mod seeds;
pub mod util;
pub mod watershed;

/// Registers every node of this crate (one line per node).
pub fn register(r: &mut Registry) -> Result<(), RegistryError> {
    r.register(connected_components::ConnectedComponents)?;
    r.register(distance_transform::DistanceTransform)?;
    r.register(seeds::Seeds)?;
    r.register(watershed::Watershed)?;
    Ok(())
}
