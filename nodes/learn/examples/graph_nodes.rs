//! The learning part of `graphs/examples/nuclei-unet.ron` (dataset → augment → model → train →
//! predict), run through the same node adapters with the parameters read from the graph file,
//! to time it without building the whole `petri` binary:
//!
//! ```text
//! RAYON_NUM_THREADS=2 /usr/bin/time -v cargo run --release -p petri-learn --example graph_nodes
//! ```
//! The rest of the graph (loading, distance transform, seeds, watershed, measurement, metrics,
//! saving) is classical image processing on one 512×512 image and takes well under a second.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use petri_api::{Inputs, Node, NodeCtx, ParamValue, Params, Value};
use petri_learn::{augment, dataset, model_nodes, predict, train};
use serde::Deserialize;

#[derive(Deserialize)]
struct NodeDef {
    params: BTreeMap<String, ron::Value>,
}

#[derive(Deserialize)]
struct Graph {
    nodes: BTreeMap<String, NodeDef>,
}

fn to_param(v: &ron::Value) -> ParamValue {
    match v {
        ron::Value::Bool(b) => ParamValue::Bool(*b),
        ron::Value::Number(n) => match n {
            ron::Number::F32(_) | ron::Number::F64(_) => ParamValue::Float(n.into_f64()),
            _ => ParamValue::Int(n.into_f64() as i64),
        },
        ron::Value::String(s) => ParamValue::Str(s.clone()),
        ron::Value::Seq(s) => ParamValue::List(s.iter().map(to_param).collect()),
        _ => ParamValue::Null,
    }
}

/// The node's defaults overridden by the graph's parameters (checked like the engine does).
fn params(n: &dyn Node, g: &Graph, id: &str, extra: &[(&str, ParamValue)]) -> Params {
    let spec = n.spec();
    let mut m: BTreeMap<String, ParamValue> = spec.params.iter().map(|p| (p.name.clone(), p.default.clone())).collect();
    let given = g.nodes.get(id).map(|d| d.params.clone()).unwrap_or_default();
    let given = given
        .iter()
        .map(|(k, v)| (k.clone(), to_param(v)))
        .chain(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    for (k, v) in given {
        let ps = spec.param_spec(&k).unwrap_or_else(|| panic!("{id}: no parameter {k}"));
        m.insert(k.clone(), ps.check(&v).unwrap_or_else(|e| panic!("{id}.{k}: {e}")));
    }
    Params::new(m)
}

fn inputs(v: Vec<(&str, Value)>) -> Inputs {
    Inputs::new(v.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("graphs/examples/nuclei-unet.ron")).unwrap();
    let g: Graph = ron::from_str(&text).unwrap();
    let img = dataset::read_tiff(&root.join("assets/samples/nuclei2d.tif")).unwrap();
    let lab = dataset::read_tiff(&root.join("assets/samples/nuclei2d_labels.tif")).unwrap();
    let ctx = NodeCtx::detached();
    let t0 = Instant::now();
    let d = dataset::DatasetNode;
    let ds = d
        .run(
            &ctx,
            &params(&d, &g, "dataset", &[]),
            &inputs(vec![("images", Value::Image(img.clone())), ("labels", Value::Labels(lab))]),
        )
        .unwrap()
        .get("dataset")
        .unwrap()
        .clone();
    let a = augment::Augment;
    let ds = a
        .run(&ctx, &params(&a, &g, "augment", &[]), &inputs(vec![("dataset", ds)]))
        .unwrap()
        .get("dataset")
        .unwrap()
        .clone();
    let m = model_nodes::UNet2d;
    let model = m.run(&ctx, &params(&m, &g, "model", &[]), &Inputs::default()).unwrap().get("model").unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let t = train::Train;
    let tp = params(&t, &g, "train", &[("checkpoint_dir", ParamValue::Str(dir.path().to_string_lossy().into()))]);
    let t1 = Instant::now();
    let out = t.run(&ctx, &tp, &inputs(vec![("model", model), ("dataset", ds)])).unwrap();
    let t_train = t1.elapsed().as_secs_f64();
    let Some(Value::Table(h)) = out.get("history") else { panic!("no history") };
    let trained = out.get("model").unwrap().clone();
    let pr = predict::Predict;
    let t2 = Instant::now();
    let out = pr
        .run(&ctx, &params(&pr, &g, "predict", &[]), &inputs(vec![("model", trained), ("image", Value::Image(img))]))
        .unwrap();
    let t_pred = t2.elapsed().as_secs_f64();
    let Some(Value::Labels(l)) = out.get("labels") else { panic!("no labels") };
    println!(
        "nuclei-unet learning nodes: {} epochs, train {t_train:.1} s, predict {}×{} with the graph's settings {t_pred:.1} s, total {:.1} s",
        h.n_rows(),
        l.y(),
        l.x(),
        t0.elapsed().as_secs_f64()
    );
}
