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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use petri_api::{Axis, Inputs, NodeCtx, ParamValue, Params, Pixel, Registry, Stack, Value};

    fn bundled(file: &str) -> Stack {
        let (shape, px) = petri_testkit::read_tiff_f64(&petri_testkit::sample(file));
        Stack::new(
            [shape[0], 1, 1, shape[1], shape[2]],
            &[Axis::T],
            u32::into_buffer(px.iter().map(|&v| v as u32).collect()),
        )
        .unwrap()
    }

    /// The example graph's chain through the `Node` trait with default parameters:
    /// track.link on the bundled time-lapse, io.save_ctc, io.load_ctc.
    #[test]
    fn nodes_run_as_the_example_graph_uses_them() {
        let mut r = Registry::new();
        super::register(&mut r).unwrap();
        let params = |id: &str, set: &[(&str, ParamValue)]| {
            let spec = r.spec(id).unwrap();
            let mut m: BTreeMap<String, ParamValue> =
                spec.params.iter().map(|p| (p.name.clone(), p.check(&p.default).unwrap())).collect();
            for (k, v) in set {
                m.insert(k.to_string(), v.clone());
            }
            Params::new(m)
        };
        let inputs =
            |pairs: Vec<(&str, Value)>| Inputs::new(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let ctx = NodeCtx::detached();
        let labels = bundled("timelapse_labels.tif");
        let image = bundled("timelapse.tif");
        let out = r
            .get("track.link")
            .unwrap()
            .node
            .run(
                &ctx,
                &params("track.link", &[]),
                &inputs(vec![("labels", Value::Labels(labels)), ("image", Value::Image(image))]),
            )
            .unwrap();
        let Some(Value::Tracks(tracks)) = out.get("tracks") else { panic!("no tracks") };
        assert_eq!(tracks.n_rows(), 54);
        let Some(Value::Table(pos)) = out.get("positions") else { panic!("no positions") };
        assert!(pos.column("intensity_mean").is_some());
        let Some(Value::Table(lin)) = out.get("lineage") else { panic!("no lineage") };
        assert_eq!(lin.n_rows(), 54);
        let tracked = out.get("labels").unwrap().clone();

        let dir = tempfile::tempdir().unwrap();
        let folder = ParamValue::Str(dir.path().join("ctc").display().to_string());
        let saved = r
            .get("io.save_ctc")
            .unwrap()
            .node
            .run(
                &ctx,
                &params("io.save_ctc", &[("folder", folder.clone())]),
                &inputs(vec![("labels", tracked.clone()), ("tracks", Value::Tracks(tracks.clone()))]),
            )
            .unwrap();
        assert!(matches!(saved.get("file"), Some(Value::File(f)) if f.path.ends_with("res_track.txt")));
        let load = r.get("io.load_ctc").unwrap();
        let p = params("io.load_ctc", &[("folder", folder)]);
        assert!(load.node.fingerprint(&p).unwrap().is_some());
        let back = load.node.run(&ctx, &p, &inputs(vec![])).unwrap();
        let Some(Value::Labels(a)) = back.get("labels") else { panic!("no labels") };
        let b = tracked.as_stack().unwrap();
        assert_eq!(a.pixels::<u32>(), b.pixels::<u32>());
        let Some(Value::Tracks(t2)) = back.get("tracks") else { panic!("no tracks") };
        assert_eq!(t2.as_ref(), tracks.as_ref());
    }

    #[test]
    fn three_d_time_lapse_uses_physical_units_and_empty_input_is_fine() {
        use crate::link::{LinkParams, link};
        use petri_api::VoxelSize;
        // A 2-voxel-wide cube moving 1 voxel per frame along z; z spacing 5 µm, x/y 1 µm.
        let (t, d, h, w) = (4, 8, 6, 6);
        let mut v = vec![0u32; t * d * h * w];
        for f in 0..t {
            for z in f..f + 2 {
                for y in 2..4 {
                    for x in 2..4 {
                        v[((f * d + z) * h + y) * w + x] = 9;
                    }
                }
            }
        }
        let s = Stack::new([t, 1, d, h, w], &[Axis::T, Axis::Z], u32::into_buffer(v))
            .unwrap()
            .with_voxel_size(VoxelSize { z: 5.0, y: 1.0, x: 1.0, unit: "micron".into(), ..VoxelSize::default() });
        // 5 µm per frame: linked with a 6 µm gate, not with a 4 µm one.
        let r = link(&s, None, None, &LinkParams { max_distance: 6.0, ..LinkParams::default() }).unwrap();
        assert_eq!(r.tracks.len(), 1);
        assert!(r.positions.column("centroid-2").is_some());
        let r = link(&s, None, None, &LinkParams { max_distance: 4.0, ..LinkParams::default() }).unwrap();
        assert_eq!(r.tracks.len(), 4);
        // No objects at all: no tracks, labels all zero, no error.
        let empty = s.with_pixels(vec![0u32; t * d * h * w]).unwrap();
        let r = link(&empty, None, None, &LinkParams::default()).unwrap();
        assert!(r.tracks.is_empty());
        assert_eq!(r.positions.n_rows(), 0);
    }
}
