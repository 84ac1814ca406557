//! `io.load_stack`: reads a microscopy image (TIFF/ImageJ, PNG, JPEG, BMP, or a folder of
//! them) into an image with named axes and calibration.

use std::path::Path;

use petri_api::{
    Fingerprint, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value,
};

use crate::load::{self, LoadOptions};

/// Reads `path` (file or folder) as one stack. See [`crate::load`] for the rules.
pub fn load_stack(path: &Path, opts: &LoadOptions, ctx: &NodeCtx) -> Result<Stack, NodeError> {
    load::load_stack(path, opts, ctx)
}

/// The parameters shared by the loaders.
pub(crate) fn loader_params(spec: NodeSpec) -> NodeSpec {
    spec.param(
        ParamSpec::input_path(
            "path",
            "",
            &["tif", "tiff", "png", "jpg", "jpeg", "bmp", "zarr"],
            "Image file or folder to read. A folder is read as one stack of all its images (in natural \
             order: img2 before img10). Relative paths are relative to the graph file's folder.",
        )
        .folder_ok(),
    )
    .param(ParamSpec::string(
        "pattern",
        "*",
        "For a folder: which files to read, as a wildcard pattern on file names (e.g. '*_ch1.tif'). \
         Ignored for a single file.",
    ))
    .param(
        ParamSpec::int(
            "series",
            0,
            "Which image of a file that holds several (multi-series OME-TIFF, or a TIFF whose pages \
             have different sizes). 0 is the first.",
        )
        .min(0.0),
    )
    .param(ParamSpec::string(
        "axes",
        "",
        "Leave empty to take the axes from the file. Otherwise the file's dimensions in storage order, \
         ending in YX, e.g. 'TYX' for a time-lapse saved as a plain page stack, 'ZYX', or 'CZYX'. \
         Letters: T time, C channel, Z depth, Y, X.",
    ))
    .param(
        ParamSpec::floats(
            "voxel_size",
            1.0,
            3,
            "Leave empty to use the file's calibration. Otherwise the voxel size to use instead: one number \
             (same in all directions), two (Y, X) or three (Z, Y, X), in the file's unit (microns if the file \
             has none).",
        )
        .greater_than(0.0)
        .default_null(),
    )
}

pub(crate) fn options(params: &Params) -> Result<LoadOptions, NodeError> {
    Ok(LoadOptions {
        pattern: params.str("pattern")?.to_string(),
        series: params.usize("series")?,
        axes: params.str("axes")?.to_string(),
        voxel_size: if params.is_null("voxel_size") { None } else { Some(params.floats("voxel_size")?) },
    })
}

pub(crate) fn loader_fingerprint(params: &Params) -> Result<Option<Fingerprint>, NodeError> {
    let path = params.path("path")?;
    load::fingerprint(&path, params.str("pattern")?).map(Some)
}

pub struct LoadStack;

impl Node for LoadStack {
    fn spec(&self) -> NodeSpec {
        loader_params(NodeSpec::new(
            "io.load_stack",
            1,
            "io",
            "Reads a microscopy image: TIFF (ImageJ hyperstacks with their axes and calibration, multi-page, \
             compressed), PNG, JPEG, BMP, or a folder of images as one stack.",
        ))
        .output("image", PortType::Image, "The image, with its axes, pixel type and voxel size.")
    }

    fn run(&self, ctx: &NodeCtx, params: &Params, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        let path = params.path("path")?;
        let stack = load_stack(&path, &options(params)?, ctx)?;
        Ok(Outputs::new().with("image", Value::Image(stack)))
    }

    fn fingerprint(&self, params: &Params) -> Result<Option<Fingerprint>, NodeError> {
        loader_fingerprint(params)
    }
}
