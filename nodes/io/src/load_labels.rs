//! `io.load_labels`: reads a label image (instance or class ids) as u32 labels.

use std::path::Path;

use petri_api::{
    Buffer, Fingerprint, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, Params, PortType, Stack, Value,
};

use crate::load::{self, LoadOptions};
use crate::load_stack::{loader_fingerprint, loader_params, options};

/// Converts a loaded image to labels (u32). Integer images convert exactly; float images must
/// hold only whole numbers in 0..=4294967295.
pub fn to_labels(stack: &Stack) -> Result<Stack, String> {
    let v: Vec<u32> = match stack.buffer() {
        Buffer::U8(v) => v.iter().map(|&x| x as u32).collect(),
        Buffer::U16(v) => v.iter().map(|&x| x as u32).collect(),
        Buffer::U32(v) => v.to_vec(),
        Buffer::F32(v) => {
            let mut out = Vec::with_capacity(v.len());
            for (i, &x) in v.iter().enumerate() {
                if !(x.is_finite() && x.fract() == 0.0) {
                    return Err(format!("is not a label image: pixel {i} holds {x}, and labels must be whole numbers"));
                }
                if x < 0.0 {
                    return Err(format!("is not a label image: pixel {i} holds the negative value {x}"));
                }
                if x > u32::MAX as f32 {
                    return Err(format!("is not a label image: pixel {i} holds {x}, larger than any label id"));
                }
                out.push(x as u32);
            }
            out
        }
    };
    stack.with_pixels(v).map_err(|e| e.to_string())
}

/// Reads `path` as labels.
pub fn load_labels(path: &Path, opts: &LoadOptions, ctx: &NodeCtx) -> Result<Stack, NodeError> {
    let s = load::load_stack(path, opts, ctx)?;
    to_labels(&s).map_err(|m| NodeError::io(path, m))
}

pub struct LoadLabels;

impl Node for LoadLabels {
    fn spec(&self) -> NodeSpec {
        loader_params(NodeSpec::new(
            "io.load_labels",
            1,
            "io",
            "Reads a label image (each object or class has its own whole-number id, 0 = background), e.g. \
             ground truth from Fiji, CellProfiler or napari.",
        ))
        .output("labels", PortType::Labels, "The labels (0 = background).")
    }

    fn run(&self, ctx: &NodeCtx, params: &Params, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        let path = params.path("path")?;
        let labels = load_labels(&path, &options(params)?, ctx)?;
        Ok(Outputs::new().with("labels", Value::Labels(labels)))
    }

    fn fingerprint(&self, params: &Params) -> Result<Option<Fingerprint>, NodeError> {
        loader_fingerprint(params)
    }
}
