//! Petri's `measure` nodes: per-object measurements and segmentation scores.

use petri_api::{Registry, RegistryError};

pub mod accum;
pub mod contingency;
pub mod metrics;
pub mod regions;
pub mod shape;

/// Registers every node of this crate (one line per node).
pub fn register(r: &mut Registry) -> Result<(), RegistryError> {
    r.register(regions::Regions)?;
    r.register(metrics::Metrics)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use petri_api::{Inputs, NodeCtx, Params, Registry, Stack, Value};

    /// Every node registers (its spec is self-consistent) and runs through the `Node` trait with
    /// its default parameters, checked the way the engine checks them.
    #[test]
    fn nodes_register_and_run_with_defaults() {
        let mut r = Registry::new();
        super::register(&mut r).unwrap();
        let defaults = |id: &str| {
            let spec = r.spec(id).unwrap();
            Params::new(spec.params.iter().map(|p| (p.name.clone(), p.check(&p.default).unwrap())).collect())
        };
        let labels = Stack::from_2d::<u32>(2, 3, vec![1, 1, 0, 0, 2, 2]).unwrap();
        let truth = Stack::from_2d::<u32>(2, 3, vec![1, 1, 1, 0, 2, 2]).unwrap();
        let inputs = |pairs: Vec<(&str, Value)>| {
            Inputs::new(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>())
        };
        let ctx = NodeCtx::detached();
        let out = r
            .get("measure.regions")
            .unwrap()
            .node
            .run(&ctx, &defaults("measure.regions"), &inputs(vec![("labels", Value::Labels(labels.clone()))]))
            .unwrap();
        let Some(Value::Table(t)) = out.get("table") else { panic!("no table") };
        assert_eq!(t.n_rows(), 2);
        let out = r
            .get("measure.metrics")
            .unwrap()
            .node
            .run(
                &ctx,
                &defaults("measure.metrics"),
                &inputs(vec![("prediction", Value::Labels(labels)), ("truth", Value::Labels(truth))]),
            )
            .unwrap();
        let Some(Value::Table(t)) = out.get("table") else { panic!("no table") };
        let names: Vec<String> = (0..t.n_rows()).map(|i| t.column("metric").unwrap().cell(i)).collect();
        let f1 = names.iter().position(|n| n == "f1@0.5").unwrap();
        // Object 1 (IoU 2/3) and object 2 (IoU 1) both match at 0.5.
        assert_eq!(t.column("value").unwrap().number(f1), Some(1.0));
        assert!(names.contains(&"mean_matched_iou@0.9".to_string()));
    }
}
