//! Fuzzes the whole TIFF read path (structure scan, ImageJ/OME/plain series, decoding) on
//! arbitrary bytes. Any single allocation beyond the documented bound (≤ 65536 × input size for
//! the image, plus codec state) aborts through `limit_alloc`, which libFuzzer reports as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petri_api::NodeCtx;

mod limit_alloc;

#[global_allocator]
static ALLOC: limit_alloc::Limit = limit_alloc::Limit;

fuzz_target!(|data: &[u8]| {
    let ctx = NodeCtx::detached();
    // Series 0 and 1 exercise the multi-series paths; errors are expected, panics are not.
    for series in 0..2 {
        let _ = petri_io::load::load_tiff_bytes(data, series, "", &ctx);
    }
});
