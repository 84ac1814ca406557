//! Petri's `io` nodes: reading microscopy images (TIFF/ImageJ, PNG, JPEG, BMP, folders) into
//! canonical stacks, and writing ImageJ TIFFs and CSV tables. See docs/io.md.

pub mod imagej;
pub mod layout;
pub mod load;
pub mod load_labels;
pub mod load_stack;
pub mod lzw;
pub mod ome;
pub mod raster;
pub mod save_png;
pub mod save_table;
pub mod save_tiff;
pub mod save_zarr;
pub mod tiffread;
pub mod tiffwrite;
pub mod util;
pub mod zarr;

pub use load::{LoadOptions, Source};
pub use load_labels::load_labels;
pub use load_stack::load_stack;
pub use save_table::save_table;
pub use save_tiff::{StackKind, TiffFormat, save_tiff, save_tiff_as};
pub use tiffwrite::Compression;

use petri_api::{Registry, RegistryError};

/// Registers every node of this crate (one line per node).
pub fn register(r: &mut Registry) -> Result<(), RegistryError> {
    r.register(load_stack::LoadStack)?;
    r.register(load_labels::LoadLabels)?;
    r.register(save_tiff::SaveTiff)?;
    r.register(save_table::SaveTable)?;
    r.register(save_png::SavePng)?;
    r.register(save_zarr::SaveZarr)?;
    Ok(())
}
