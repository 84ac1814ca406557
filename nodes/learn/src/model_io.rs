//! `io.load_model` / `io.save_model`: a network on disk is `NAME.safetensors` (weights, with the
//! configuration also in its metadata) plus `NAME.ron` (the configuration, human-readable:
//! architecture, classes, normalisation, patch size, training history). Only safetensors is
//! ever read; weights are checked against the configuration before use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use petri_api::{
    FileRef, Inputs, Model, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Value,
};

use crate::model::{ModelConfig, Net, embedded_config, write_atomic};

fn paths(p: &Path) -> (PathBuf, PathBuf) {
    let stem = if p.extension().is_some_and(|e| e == "ron" || e == "safetensors") {
        p.with_extension("")
    } else {
        p.to_path_buf()
    };
    (stem.with_extension("safetensors"), stem.with_extension("ron"))
}

/// Writes a model; returns the weights file's path.
pub fn save_model(m: &Model, path: &Path) -> Result<PathBuf, NodeError> {
    let (st, ron) = paths(path);
    write_atomic(&st, &m.weights)?;
    write_atomic(&ron, m.config.as_bytes())?;
    Ok(st)
}

/// Reads and validates a model (either file of the pair, or their common stem).
pub fn load_model(path: &Path) -> Result<Model, NodeError> {
    let (st, ronp) = paths(path);
    let bytes = std::fs::read(&st).map_err(|e| NodeError::io(&st, e))?;
    if safetensors::SafeTensors::deserialize(&bytes).is_err() {
        return Err(NodeError::io(&st, "not a valid safetensors file (corrupt or truncated)"));
    }
    let config = match std::fs::read_to_string(&ronp) {
        Ok(s) => s,
        Err(_) => embedded_config(&bytes)
            .ok_or_else(|| NodeError::io(&ronp, "missing, and the weights file carries no Petri configuration"))?,
    };
    ModelConfig::from_ron(&config).map_err(|e| NodeError::io(&ronp, e))?;
    let m = Model { config, weights: Arc::new(bytes) };
    // Build it once: names and shapes must match the architecture.
    Net::from_model(&m, &Device::Cpu).map_err(|e| NodeError::io(&st, e.to_string()))?;
    Ok(m)
}

pub struct LoadModel;
impl Node for LoadModel {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new("io.load_model", 1, "io", "Loads a trained network saved by io.save_model (safetensors + RON).")
            .output("model", PortType::Model, "The network.")
            .param(ParamSpec::input_path(
                "path",
                "",
                &["safetensors", "ron"],
                "The model's .safetensors (or .ron) file.",
            ))
    }
    fn fingerprint(&self, p: &Params) -> Result<Option<petri_api::Fingerprint>, NodeError> {
        let (st, ron) = paths(&p.path("path")?);
        let mut h = blake3::Hasher::new();
        for f in [st, ron] {
            if let Ok((d, _)) = petri_api::hash_file(&f) {
                h.update(d.as_bytes());
            }
        }
        Ok(Some(*h.finalize().as_bytes()))
    }
    fn run(&self, _ctx: &NodeCtx, p: &Params, _i: &Inputs) -> Result<Outputs, NodeError> {
        let m = load_model(&p.path("path")?)?;
        Ok(Outputs::new().with("model", Value::Model(Arc::new(m))))
    }
}

pub struct SaveModel;
impl Node for SaveModel {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "io.save_model",
            1,
            "io",
            "Saves a network: weights (.safetensors) and settings (.ron) side by side.",
        )
        .input("model", PortType::Model, "The network to save.")
        .output("file", PortType::File, "The weights file written.")
        .param(ParamSpec::output_path(
            "output_path",
            "model.safetensors",
            &["safetensors"],
            "Where to save (the .ron goes beside it).",
        ))
    }
    fn run(&self, _ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let Some(Value::Model(m)) = inputs.get("model") else {
            return Err(NodeError::input("model", "not connected"));
        };
        let path = save_model(m, &p.path("output_path")?)?;
        let f = FileRef::of(&path).map_err(|e| NodeError::io(&path, e))?;
        Ok(Outputs::new().with("file", Value::File(Arc::new(f))))
    }
}
