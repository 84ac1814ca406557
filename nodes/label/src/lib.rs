//! Petri's `label` nodes: connected components, distance transform, seeds, watershed,
//! relabelling, boundaries, expansion, border clearing and morphology on masks and labels.

use petri_api::{Registry, RegistryError};

pub mod boundaries;
pub mod clear_border;
pub mod close;
pub mod connected_components;
pub mod dilate;
pub mod distance_transform;
pub mod edt;
pub mod erode;
pub mod expand;
pub mod fill_holes;
pub mod morphology;
pub mod open;
pub mod queue;
pub mod relabel;
pub mod remove_small_holes;
pub mod remove_small_objects;
pub mod seeds;
pub mod util;
pub mod watershed;

/// Registers every node of this crate (one line per node).
pub fn register(r: &mut Registry) -> Result<(), RegistryError> {
    r.register(connected_components::ConnectedComponents)?;
    r.register(distance_transform::DistanceTransform)?;
    r.register(seeds::Seeds)?;
    r.register(watershed::Watershed)?;
    r.register(relabel::Relabel)?;
    r.register(boundaries::Boundaries)?;
    r.register(expand::Expand)?;
    r.register(clear_border::ClearBorder)?;
    r.register(erode::Erode)?;
    r.register(erode::ErodeLabels)?;
    r.register(dilate::Dilate)?;
    r.register(dilate::DilateLabels)?;
    r.register(open::Open)?;
    r.register(open::OpenLabels)?;
    r.register(close::Close)?;
    r.register(close::CloseLabels)?;
    r.register(fill_holes::FillHoles)?;
    r.register(fill_holes::FillHolesLabels)?;
    r.register(remove_small_objects::RemoveSmallObjects)?;
    r.register(remove_small_objects::RemoveSmallObjectsLabels)?;
    r.register(remove_small_holes::RemoveSmallHoles)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_node_registers_with_a_valid_spec() {
        let mut r = petri_api::Registry::new();
        super::register(&mut r).unwrap();
        assert_eq!(r.specs().count(), 21);
        for s in r.specs() {
            assert!(!s.doc.is_empty() && s.params.iter().all(|p| !p.doc.is_empty()), "{}", s.type_id);
        }
    }
}
