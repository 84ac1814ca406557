//! A network as it travels between nodes and files: [`ModelConfig`] (RON: architecture, classes,
//! input normalisation, patch size, training history) + weights as safetensors bytes.
//! Weights are only ever read from safetensors (never pickles), and every variable's name and
//! shape is checked against the configuration before use.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use petri_api::{Model, NodeError};
use serde::{Deserialize, Serialize};

use crate::unet::{UNet, UNetConfig};

/// Version of the configuration format written by this crate.
pub const FORMAT: u32 = 1;

/// How raw intensities are mapped before they enter the network (stored with the model and
/// reapplied by `learn.predict`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Normalisation {
    /// Per image and channel: the `low` and `high` percentiles map to 0 and 1 (CSBDeep style).
    Percentile { low: f64, high: f64 },
    /// The same offset and scale for every image (values measured on the training set).
    Fixed { offset: Vec<f64>, scale: Vec<f64> },
    /// Intensities used as they are.
    None,
}

/// One epoch of training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: Option<f64>,
    pub val_iou: Option<f64>,
    pub val_dice: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub format: u32,
    pub architecture: UNetConfig,
    /// One name per output class, class 0 first (usually "background").
    pub class_names: Vec<String>,
    pub normalisation: Normalisation,
    /// Patch size (D, H, W) used in training; prediction tiles default to it.
    pub patch_size: Option<[usize; 3]>,
    /// Seed the weights were initialised from.
    pub seed: u64,
    pub history: Vec<EpochRecord>,
}

impl ModelConfig {
    pub fn new(architecture: UNetConfig, seed: u64) -> ModelConfig {
        let class_names = default_class_names(architecture.classes);
        ModelConfig {
            format: FORMAT,
            architecture,
            class_names,
            normalisation: Normalisation::Percentile { low: 1.0, high: 99.8 },
            patch_size: None,
            seed,
            history: Vec::new(),
        }
    }

    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default()).unwrap_or_else(|e| format!("error: {e}"))
    }

    pub fn from_ron(s: &str) -> Result<ModelConfig, String> {
        let c: ModelConfig = ron::from_str(s).map_err(|e| format!("not a Petri model configuration: {e}"))?;
        if c.format > FORMAT {
            return Err(format!("model format {} is newer than this Petri understands ({FORMAT})", c.format));
        }
        if c.class_names.len() != c.architecture.classes {
            return Err(format!(
                "{} class names for a network with {} outputs",
                c.class_names.len(),
                c.architecture.classes
            ));
        }
        Ok(c)
    }
}

pub fn default_class_names(n: usize) -> Vec<String> {
    match n {
        2 => vec!["background".into(), "foreground".into()],
        3 => vec!["background".into(), "cell".into(), "border".into()],
        _ => (0..n).map(|i| if i == 0 { "background".into() } else { format!("class {i}") }).collect(),
    }
}

/// A network ready to run: configuration, variables and the module.
pub struct Net {
    pub cfg: ModelConfig,
    pub vars: VarMap,
    pub unet: UNet,
}

/// The one place that maps Petri's device choice onto candle's.
pub fn candle_device(d: petri_api::Device) -> Result<Device, NodeError> {
    match d {
        petri_api::Device::Cpu => Ok(Device::Cpu),
        petri_api::Device::Cuda(i) => {
            if cfg!(feature = "cuda") {
                Device::new_cuda(i).map_err(|e| NodeError::failed(format!("cannot use CUDA device {i}: {e}")))
            } else {
                Err(NodeError::failed(format!(
                    "device cuda:{i} requested but this Petri was built without CUDA (rebuild with --features cuda)"
                )))
            }
        }
    }
}

fn cerr(e: candle_core::Error) -> NodeError {
    NodeError::failed(e.to_string())
}

impl Net {
    /// A fresh network with weights initialised from `cfg.seed`.
    pub fn init(cfg: ModelConfig, dev: &Device) -> Result<Net, NodeError> {
        let vars = VarMap::new();
        let unet = UNet::new(&cfg.architecture, VarBuilder::from_varmap(&vars, DType::F32, dev)).map_err(cerr)?;
        crate::nn::init_weights(&vars, cfg.seed).map_err(cerr)?;
        Ok(Net { cfg, vars, unet })
    }

    /// Builds the network of a model value and loads its weights.
    pub fn from_model(m: &Model, dev: &Device) -> Result<Net, NodeError> {
        let cfg = ModelConfig::from_ron(&m.config).map_err(NodeError::failed)?;
        let net = Net::init(cfg, dev)?;
        let tensors = candle_core::safetensors::load_buffer(&m.weights, dev)
            .map_err(|e| NodeError::failed(format!("model weights are not a valid safetensors file: {e}")))?;
        net.load_tensors(&tensors, "")?;
        Ok(net)
    }

    /// Sets every variable from `tensors[prefix + name]`, checking names and shapes.
    pub fn load_tensors(&self, tensors: &HashMap<String, Tensor>, prefix: &str) -> Result<(), NodeError> {
        let data = self.vars.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let t = tensors.get(&format!("{prefix}{name}")).ok_or_else(|| {
                NodeError::failed(format!("the weights lack '{name}': they do not belong to this architecture"))
            })?;
            if t.dims() != var.dims() {
                return Err(NodeError::failed(format!(
                    "weight '{name}' has shape {:?} but the architecture needs {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            let t = t.to_dtype(DType::F32).and_then(|t| t.to_device(var.device())).map_err(cerr)?;
            var.set(&t).map_err(cerr)?;
        }
        Ok(())
    }

    /// A copy of every variable by name, on the CPU (running statistics included).
    pub fn tensors(&self, prefix: &str) -> Result<HashMap<String, Tensor>, NodeError> {
        let data = self.vars.data().lock().unwrap_or_else(|e| e.into_inner());
        data.iter()
            // `copy`: a snapshot, not a view that changes as training goes on.
            .map(|(k, v)| {
                Ok((
                    format!("{prefix}{k}"),
                    v.as_tensor().to_device(&Device::Cpu).and_then(|t| t.copy()).map_err(cerr)?,
                ))
            })
            .collect()
    }

    /// The model value (configuration + safetensors bytes).
    pub fn to_model(&self) -> Result<Model, NodeError> {
        let bytes = serialize_tensors(&self.tensors("")?, Some(&self.cfg.to_ron()))?;
        Ok(Model { config: self.cfg.to_ron(), weights: Arc::new(bytes) })
    }
}

/// safetensors bytes of named tensors (sorted by name inside the format), with the RON config
/// in the metadata under `petri_config` when given.
pub fn serialize_tensors(t: &HashMap<String, Tensor>, config: Option<&str>) -> Result<Vec<u8>, NodeError> {
    let meta = config.map(|c| HashMap::from([("petri_config".to_string(), c.to_string())]));
    let mut sorted: Vec<(&String, &Tensor)> = t.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    safetensors::tensor::serialize(sorted, meta).map_err(|e| NodeError::failed(format!("cannot encode weights: {e}")))
}

/// The RON config stored in a safetensors file's metadata, if any.
pub fn embedded_config(bytes: &[u8]) -> Option<String> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).ok()?;
    meta.metadata().as_ref()?.get("petri_config").cloned()
}

/// Writes `bytes` to `path` atomically (`petri_api::fsutil`: a temporary file in the same
/// folder, fsynced, renamed over `path`, folder fsynced), so an interrupted write never leaves a
/// half file under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    petri_api::fsutil::write_atomic(path, bytes).map_err(|e| NodeError::io(path, e))
}

/// The model input of a node, as a network on `dev`.
pub fn net_input(m: &Model, dev: &Device, port: &str) -> Result<Net, NodeError> {
    Net::from_model(m, dev).map_err(|e| NodeError::input(port, e.to_string()))
}
