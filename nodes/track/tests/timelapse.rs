//! The bundled synthetic time-lapse (assets/samples/timelapse*, made by
//! examples/make_timelapse.rs) is tracked exactly from its ground-truth labels with scrambled
//! ids, with the default parameters the example graph uses.

mod common;

use petri_api::{Axis, Pixel, Stack};
use petri_track::ctc::parse_tracks;
use petri_track::link::{LinkParams, link};

use common::{evaluate, scramble};

#[test]
fn bundled_timelapse_is_tracked_exactly() {
    let (shape, px) = petri_testkit::read_tiff_f64(&petri_testkit::sample("timelapse_labels.tif"));
    let gt = Stack::new(
        [shape[0], 1, 1, shape[1], shape[2]],
        &[Axis::T],
        u32::into_buffer(px.iter().map(|&v| v as u32).collect()),
    )
    .unwrap();
    let text = std::fs::read_to_string(petri_testkit::sample("timelapse_tracks.txt")).unwrap();
    let gt_tracks = parse_tracks(&text).unwrap();
    let r = link(&scramble(&gt, 3), None, None, &LinkParams::default()).unwrap();
    let s = evaluate(&gt, &gt_tracks, &r.labels, &r.tracks);
    eprintln!(
        "timelapse: identity {}/{}, divisions {}/{}, {} tracks (truth {})",
        s.kept,
        s.links,
        s.found,
        s.divisions,
        r.tracks.len(),
        gt_tracks.len()
    );
    assert_eq!(s.kept, s.links);
    assert_eq!(s.found, s.divisions);
    assert_eq!(r.tracks.len(), gt_tracks.len());
}
