//! Petri's `image` nodes: filters and thresholds for 2-D and 3-D microscopy images.

use petri_api::{Registry, RegistryError};

pub mod background;
pub mod clahe;
pub mod gaussian;
pub mod hist;
pub mod mean;
pub mod median;
pub mod morph;
pub mod normalize;
pub mod sep;
pub mod threshold;
pub mod unsharp;
pub mod util;

/// Registers every node of this crate (one line per node).
pub fn register(r: &mut Registry) -> Result<(), RegistryError> {
    r.register(background::Background)?;
    r.register(clahe::Clahe)?;
    r.register(gaussian::Gaussian)?;
    r.register(mean::Mean)?;
    r.register(median::Median)?;
    r.register(normalize::Normalize)?;
    r.register(threshold::Threshold)?;
    r.register(unsharp::Unsharp)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn registers_valid_specs() {
        let mut r = petri_api::Registry::new();
        super::register(&mut r).unwrap();
        let ids: Vec<&str> = r.specs().map(|s| s.type_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "image.background",
                "image.clahe",
                "image.gaussian",
                "image.mean",
                "image.median",
                "image.normalize",
                "image.threshold",
                "image.unsharp"
            ]
        );
        // Every parameter and port carries a doc (its GUI tooltip).
        for s in r.specs() {
            assert!(!s.doc.is_empty());
            assert!(s.params.iter().all(|p| !p.doc.is_empty()), "{}", s.type_id);
            assert!(s.inputs.iter().chain(&s.outputs).all(|p| !p.doc.is_empty()), "{}", s.type_id);
        }
    }
}
