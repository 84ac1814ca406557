//! Fuzzes the whole TIFF read path (structure scan, ImageJ/OME/plain series, decoding) on
//! arbitrary bytes. Run with a malloc limit so any allocation beyond the documented bound
//! (≤ 65536 × input size for the image, plus codec state) is reported as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petri_api::NodeCtx;

fuzz_target!(|data: &[u8]| {
    let ctx = NodeCtx::detached();
    // Series 0 and 1 exercise the multi-series paths; errors are expected, panics are not.
    for series in 0..2 {
        let _ = petri_io::load::load_tiff_bytes(data, series, "", &ctx);
    }
});
