//! `io.save_zarr`: writes an image, mask or labels as OME-Zarr (NGFF 0.5), optionally with a
//! multiscale pyramid.

use std::sync::Arc;

use petri_api::{FileRef, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Value};

use crate::save_tiff::{StackKind, storage_stack};
pub use crate::zarr::save_zarr;

pub struct SaveZarr;

impl Node for SaveZarr {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "io.save_zarr",
            1,
            "io",
            "Saves an image, mask or labels as OME-Zarr (chunked, compressed; opens in napari, Fiji's MoBIE, \
             neuroglancer), with an optional pyramid of smaller copies for fast viewing.",
        )
        .input("stack", PortType::Stack, "The image, mask or labels to save.")
        .param(ParamSpec::output_path(
            "path",
            "output.zarr",
            &["zarr"],
            "Folder to write (ending in .zarr). Relative paths are relative to the run's output folder; an existing \
             Zarr at that path is replaced.",
        ))
        .param(
            ParamSpec::int(
                "levels",
                1,
                "Resolution levels: 1 = full resolution only; each extra level halves the width and height (averaging \
                 intensities; labels and masks keep exact ids).",
            )
            .range(1.0, 10.0),
        )
        .output("file", PortType::File, "The Zarr's root metadata file (zarr.json).")
    }

    fn run(&self, _ctx: &NodeCtx, params: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (stack, value) = inputs.stack("stack")?;
        let path = params.path("path")?;
        let kind = StackKind::of(value);
        let s = storage_stack(stack, kind).map_err(|m| NodeError::io(&path, m))?;
        save_zarr(&s, &path, params.usize("levels")?, kind != StackKind::Image)?;
        let meta = path.join("zarr.json");
        let f = FileRef::of(&meta).map_err(|e| NodeError::io(&meta, e))?;
        Ok(Outputs::new().with("file", Value::File(Arc::new(f))))
    }
}
