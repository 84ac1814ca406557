//! The nodes through their `Node` adapters: parameters by name, ports, clear errors.
use std::collections::BTreeMap;

use petri_api::{Inputs, Node, NodeCtx, ParamValue, Params, Stack, Value};
use petri_learn::{augment, dataset, model_io, model_nodes, predict, train};

fn params(n: &dyn Node, set: &[(&str, ParamValue)]) -> Params {
    let spec = n.spec();
    let mut m: BTreeMap<String, ParamValue> = spec.params.iter().map(|p| (p.name.clone(), p.default.clone())).collect();
    for (k, v) in set {
        assert!(spec.param_spec(k).is_some(), "no parameter {k}");
        let v = spec.param_spec(k).unwrap().check(v).unwrap();
        m.insert(k.to_string(), v);
    }
    Params::new(m)
}

fn inputs(v: Vec<(&str, Value)>) -> Inputs {
    Inputs::new(v.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn image() -> (Stack, Stack) {
    let img: Vec<f32> = (0..48 * 40).map(|i| if (i / 40 / 8 + i % 40 / 8) % 2 == 0 { 200.0 } else { 10.0 }).collect();
    let lab: Vec<u32> = img.iter().map(|&v| (v > 100.0) as u32).collect();
    (Stack::from_2d(48, 40, img).unwrap(), Stack::from_2d(48, 40, lab).unwrap())
}

#[test]
fn pipeline_through_nodes() {
    let ctx = NodeCtx::detached();
    let (im, lb) = image();
    let d = dataset::DatasetNode;
    let out = d
        .run(
            &ctx,
            &params(
                &d,
                &[
                    ("patch_size", ParamValue::List(vec![ParamValue::Int(16), ParamValue::Int(16)])),
                    ("patches_per_epoch", ParamValue::Int(8)),
                ],
            ),
            &inputs(vec![("images", Value::Image(im.clone())), ("labels", Value::Labels(lb.clone()))]),
        )
        .unwrap();
    let ds = out.get("dataset").unwrap().clone();
    let a = augment::Augment;
    let out =
        a.run(&ctx, &params(&a, &[("preview_samples", ParamValue::Int(3))]), &inputs(vec![("dataset", ds)])).unwrap();
    let Some(Value::Image(pv)) = out.get("preview") else { panic!() };
    assert_eq!(pv.dims(), [3, 2, 1, 16, 16]);
    let ds = out.get("dataset").unwrap().clone();
    let m = model_nodes::UNet2d;
    let mp = params(&m, &[("depth", ParamValue::Int(2)), ("base_filters", ParamValue::Int(4))]);
    let model = m.run(&ctx, &mp, &Inputs::default()).unwrap().get("model").unwrap().clone();
    // Same seed → same weights.
    let model2 = m.run(&ctx, &mp, &Inputs::default()).unwrap().get("model").unwrap().clone();
    let (Value::Model(x), Value::Model(y)) = (&model, &model2) else { panic!() };
    assert_eq!(x.weights, y.weights);
    let t = train::Train;
    assert_eq!(t.spec().cache, petri_api::CachePolicy::Disk);
    let dir = tempfile::tempdir().unwrap();
    let tp = params(
        &t,
        &[
            ("epochs", ParamValue::Int(2)),
            ("checkpoint_dir", ParamValue::Str(dir.path().to_string_lossy().into())),
            ("loss", ParamValue::Str("focal".into())),
            ("optimizer", ParamValue::Str("sgd".into())),
            ("learning_rate", ParamValue::Float(0.05)),
        ],
    );
    let out = t.run(&ctx, &tp, &inputs(vec![("model", model.clone()), ("dataset", ds.clone())])).unwrap();
    let Some(Value::Table(h)) = out.get("history") else { panic!() };
    assert_eq!(h.n_rows(), 2);
    assert!(dir.path().join("last.ron").exists());
    let trained = out.get("model").unwrap().clone();
    let pr = predict::Predict;
    let out = pr
        .run(&ctx, &params(&pr, &[]), &inputs(vec![("model", trained.clone()), ("image", Value::Image(im.clone()))]))
        .unwrap();
    let Some(Value::Labels(l)) = out.get("labels") else { panic!() };
    assert_eq!([l.y(), l.x()], [48, 40]);
    // Save and load through the io nodes.
    let s = model_io::SaveModel;
    let path = dir.path().join("net.safetensors");
    let out = s
        .run(
            &ctx,
            &params(&s, &[("output_path", ParamValue::Str(path.to_string_lossy().into()))]),
            &inputs(vec![("model", trained)]),
        )
        .unwrap();
    assert!(matches!(out.get("file"), Some(Value::File(_))));
    let lm = model_io::LoadModel;
    let lp = params(&lm, &[("path", ParamValue::Str(path.to_string_lossy().into()))]);
    assert!(lm.fingerprint(&lp).unwrap().is_some());
    assert!(matches!(lm.run(&ctx, &lp, &Inputs::default()).unwrap().get("model"), Some(Value::Model(_))));
    // A cancelled training stops with Cancelled.
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let cctx = NodeCtx::new(cancel, std::sync::Arc::new(|_| {}), petri_api::Device::Cpu, std::env::temp_dir());
    let e = t.run(&cctx, &tp, &inputs(vec![("model", model), ("dataset", ds)])).unwrap_err();
    assert!(matches!(e, petri_api::NodeError::Cancelled));
}

#[test]
fn clear_errors() {
    let ctx = NodeCtx::detached();
    let (im, _) = image();
    let d = dataset::DatasetNode;
    let small = Stack::from_2d(8, 8, vec![0u32; 64]).unwrap();
    let e = d
        .run(
            &ctx,
            &params(&d, &[]),
            &inputs(vec![("images", Value::Image(im.clone())), ("labels", Value::Labels(small))]),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("labels"), "{e}");
    // A 3-class dataset into a 2-class network.
    let (im, lb) = image();
    let ds = d
        .run(
            &ctx,
            &params(
                &d,
                &[("classes_from", ParamValue::Str("instance_borders".into())), ("patch_size", ParamValue::Int(16))],
            ),
            &inputs(vec![("images", Value::Image(im)), ("labels", Value::Labels(lb))]),
        )
        .unwrap()
        .get("dataset")
        .unwrap()
        .clone();
    let m = model_nodes::UNet2d;
    let model = m
        .run(
            &ctx,
            &params(&m, &[("depth", ParamValue::Int(2)), ("base_filters", ParamValue::Int(2))]),
            &Inputs::default(),
        )
        .unwrap();
    let t = train::Train;
    let e = t
        .run(
            &ctx,
            &params(&t, &[("epochs", ParamValue::Int(1)), ("checkpoint_dir", ParamValue::Str(String::new()))]),
            &inputs(vec![("model", model.get("model").unwrap().clone()), ("dataset", ds)]),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("classes"), "{e}");
    let e = t
        .run(&ctx, &params(&t, &[("device", ParamValue::Str("cuda:0".into()))]), &Inputs::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("CUDA") || e.contains("model"), "{e}");
}
