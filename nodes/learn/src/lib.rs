//! Petri's `learn` nodes: datasets, augmentation, U-Nets, training and prediction on candle.

pub mod ops;

use petri_api::{Registry, RegistryError};

/// Registers every node of this crate (one line per node).
pub fn register(_r: &mut Registry) -> Result<(), RegistryError> {
    Ok(())
}
