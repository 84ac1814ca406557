//! The nuclei-watershed chain through the registered nodes (spec defaults + a few settings):
//! Otsu mask → connected components → distance transform → seeds → watershed, compared with
//! the reference pipeline's outputs (`reference.py`).

use std::collections::BTreeMap;

use petri_api::{Inputs, NodeCtx, ParamValue, Params, Registry, Value};
use petri_testkit::{label_mismatches, read_stack, reference};

fn run(r: &Registry, id: &str, set: &[(&str, ParamValue)], inputs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    let e = r.get(id).unwrap_or_else(|| panic!("{id} not registered"));
    let mut p = Params::new(e.spec.params.iter().map(|s| (s.name.clone(), s.default.clone())).collect());
    for (k, v) in set {
        p.set(k, v.clone());
    }
    let inputs = Inputs::new(inputs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
    e.node.run(&NodeCtx::detached(), &p, &inputs).unwrap_or_else(|err| panic!("{id}: {err}")).into_values()
}

#[test]
fn nuclei_watershed_chain_matches_reference() {
    let mut r = Registry::new();
    petri_label::register(&mut r).unwrap();
    for (ds, md) in [("nuclei2d_dsb2018", 4), ("nuclei3d_synthetic_stardist", 3)] {
        let mask = Value::Mask(read_stack::<u8>(&reference(ds, "otsu_mask_gaussian.tif")));
        let cc = run(&r, "label.connected_components", &[], &[("mask", mask.clone())]).remove("labels").unwrap();
        let dist = run(&r, "image.distance_transform", &[], &[("mask", mask.clone())]).remove("image").unwrap();
        let markers = run(
            &r,
            "label.seeds",
            &[("min_distance", ParamValue::Int(md))],
            &[("image", dist.clone()), ("labels", cc)],
        )
        .remove("markers")
        .unwrap();
        let want_markers = read_stack::<u32>(&reference(ds, "markers.tif"));
        let m = markers.as_stack().unwrap();
        assert_eq!(m.pixels::<u32>(), want_markers.pixels::<u32>(), "{ds}: seeds differ from peak_local_max");
        let ws = run(
            &r,
            "label.watershed",
            &[("invert", ParamValue::Bool(true))],
            &[("image", dist), ("markers", markers), ("mask", mask)],
        )
        .remove("labels")
        .unwrap();
        let want = read_stack::<u32>(&reference(ds, "watershed.tif"));
        let got = ws.as_stack().unwrap().pixels::<u32>().unwrap();
        let fg = got.iter().filter(|&&v| v != 0).count();
        let bad = label_mismatches(got, want.pixels::<u32>().unwrap());
        assert!(bad as f64 <= 0.005 * fg as f64, "{ds}: {bad} of {fg} foreground pixels differ");
    }
}
