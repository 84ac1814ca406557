//! Fuzzes the OME-XML parser and the plane → IFD mapping built from it.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod limit_alloc;

#[global_allocator]
static ALLOC: limit_alloc::Limit = limit_alloc::Limit;

fuzz_target!(|data: &[u8]| {
    // First byte: the file's page count (0–255), the rest: the XML.
    let Some((&pages, xml)) = data.split_first() else { return };
    let Ok(xml) = std::str::from_utf8(xml) else { return };
    if let Ok(images) = petri_io::ome::parse(xml) {
        for img in &images {
            if let Ok(map) = petri_io::ome::image_pages(img, pages as usize, "f.ome.tif") {
                assert!(map.iter().all(|&p| p < pages as usize));
            }
        }
    }
});
