//! Petri's `image` nodes: filters and thresholds for 2-D and 3-D microscopy images.

use petri_api::{Registry, RegistryError};

pub mod clahe;
pub mod gaussian;
pub mod hist;
pub mod median;
pub mod threshold;
pub mod util;

/// Registers every node of this crate (one line per node).
pub fn register(r: &mut Registry) -> Result<(), RegistryError> {
    r.register(clahe::Clahe)?;
    r.register(gaussian::Gaussian)?;
    r.register(median::Median)?;
    r.register(threshold::Threshold)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn registers_valid_specs() {
        let mut r = petri_api::Registry::new();
        super::register(&mut r).unwrap();
        assert!(r.spec("image.gaussian").is_some());
    }
}
