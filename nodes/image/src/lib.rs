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

    /// Every node runs with its default parameters on a small 2-D and 3-D image and a two-frame
    /// time series, and returns exactly its declared outputs with their declared types.
    #[test]
    fn every_node_runs_with_defaults() {
        use petri_api::{Axis, Inputs, NodeCtx, Params, Stack, Value};
        let mut r = petri_api::Registry::new();
        super::register(&mut r).unwrap();
        let px = |n: usize| (0..n).map(|i| ((i * 7919) % 251) as u16).collect::<Vec<_>>();
        let imgs = [
            Stack::from_2d(20, 30, px(600)).unwrap(),
            Stack::from_3d(4, 20, 30, px(2400)).unwrap(),
            Stack::new([2, 1, 1, 20, 30], &[Axis::T], petri_api::Buffer::U16(std::sync::Arc::new(px(1200)))).unwrap(),
        ];
        for spec in r.specs() {
            let entry = r.get(&spec.type_id).unwrap();
            let mut params = Params::default();
            for p in &spec.params {
                params.set(&p.name, p.default.clone());
            }
            if spec.type_id == "image.background" {
                params.set("radius", petri_api::ParamValue::Float(3.0));
            }
            for img in &imgs {
                let inputs = Inputs::new([("image".to_string(), Value::Image(img.clone()))].into());
                let out = entry
                    .node
                    .run(&NodeCtx::detached(), &params, &inputs)
                    .unwrap_or_else(|e| panic!("{}: {e}", spec.type_id));
                assert_eq!(out.values().len(), spec.outputs.len(), "{}", spec.type_id);
                for port in &spec.outputs {
                    let v = out.get(&port.name).unwrap_or_else(|| panic!("{}: no output {}", spec.type_id, port.name));
                    assert_eq!(v.port_type(), port.ty, "{}.{}", spec.type_id, port.name);
                    if let Some(s) = v.as_stack() {
                        assert!(s.same_shape(img), "{}: output shape", spec.type_id);
                    }
                }
            }
        }
    }
}
