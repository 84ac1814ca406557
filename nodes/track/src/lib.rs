//! Petri's `track` nodes: linking objects through time, and the Cell Tracking Challenge
//! file format.

use petri_api::{Registry, RegistryError};

pub mod assign;
pub mod ctc;
pub mod link;
pub mod load_ctc;
pub mod objects;
pub mod reassign;
pub mod save_ctc;
pub mod tracks;
mod util;

/// Registers every node of this crate (one line per node).
pub fn register(r: &mut Registry) -> Result<(), RegistryError> {
    r.register(link::Link)?;
    r.register(save_ctc::SaveCtc)?;
    r.register(load_ctc::LoadCtc)?;
    Ok(())
}
