//! The `Node` trait and what a node sees while it runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::param::{ParamValue, Params};
use crate::spec::NodeSpec;
use crate::stack::Stack;
use crate::table::Table;
use crate::value::{Fingerprint, Value};

/// Why a node failed. The engine adds the node id; messages name the parameter, port or file.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("parameter '{name}': {message}")]
    Param { name: String, message: String },
    #[error("input '{port}': {message}")]
    Input { port: String, message: String },
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}

impl NodeError {
    pub fn param(name: &str, message: impl Into<String>) -> NodeError {
        NodeError::Param { name: name.into(), message: message.into() }
    }
    pub fn input(port: &str, message: impl Into<String>) -> NodeError {
        NodeError::Input { port: port.into(), message: message.into() }
    }
    pub fn io(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> NodeError {
        NodeError::Io { path: path.into(), message: message.to_string() }
    }
    pub fn failed(message: impl Into<String>) -> NodeError {
        NodeError::Failed(message.into())
    }
}

/// Where tensors live. Chosen in one place (the run's `--device`), carried here to nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Device, String> {
        let s = s.trim().to_ascii_lowercase();
        if s == "cpu" {
            return Ok(Device::Cpu);
        }
        if s == "cuda" {
            return Ok(Device::Cuda(0));
        }
        if let Some(n) = s.strip_prefix("cuda:") {
            return n.parse().map(Device::Cuda).map_err(|_| format!("bad CUDA device index in '{s}'"));
        }
        Err(format!("unknown device '{s}' (expected cpu, cuda or cuda:N)"))
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Something a running node reports.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    /// Fraction in [0, 1] and a short message ("epoch 3/20").
    Progress {
        fraction: f64,
        message: String,
    },
    /// A named scalar at a step (training loss, validation IoU...), for live plots.
    Metric {
        name: String,
        step: u64,
        value: f64,
    },
    Log(String),
}

type Sink = Arc<dyn Fn(NodeEvent) + Send + Sync>;

/// What a node gets besides its parameters and inputs.
#[derive(Clone)]
pub struct NodeCtx {
    cancel: Arc<AtomicBool>,
    sink: Sink,
    pub device: Device,
    /// A folder private to this run of this node, for temporary files.
    pub scratch_dir: PathBuf,
}

impl NodeCtx {
    pub fn new(cancel: Arc<AtomicBool>, sink: Sink, device: Device, scratch_dir: PathBuf) -> NodeCtx {
        NodeCtx { cancel, sink, device, scratch_dir }
    }

    /// A context that reports nowhere and is never cancelled (tests, benchmarks).
    pub fn detached() -> NodeCtx {
        NodeCtx::new(Arc::new(AtomicBool::new(false)), Arc::new(|_| {}), Device::Cpu, std::env::temp_dir())
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once the user asked to stop; call it between units of work.
    pub fn check_cancel(&self) -> Result<(), NodeError> {
        if self.is_cancelled() { Err(NodeError::Cancelled) } else { Ok(()) }
    }

    pub fn progress(&self, fraction: f64, message: impl Into<String>) {
        (self.sink)(NodeEvent::Progress { fraction: fraction.clamp(0.0, 1.0), message: message.into() });
    }

    pub fn metric(&self, name: &str, step: u64, value: f64) {
        (self.sink)(NodeEvent::Metric { name: name.into(), step, value });
    }

    pub fn log(&self, message: impl Into<String>) {
        (self.sink)(NodeEvent::Log(message.into()));
    }
}

/// A node's inputs by port name, already converted to the declared port types.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    values: BTreeMap<String, Value>,
}

impl Inputs {
    pub fn new(values: BTreeMap<String, Value>) -> Inputs {
        Inputs { values }
    }

    pub fn get(&self, port: &str) -> Option<&Value> {
        self.values.get(port)
    }

    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.values
    }

    fn missing(port: &str) -> NodeError {
        NodeError::input(port, "not connected")
    }

    fn wrong(port: &str, want: &str, got: &Value) -> NodeError {
        NodeError::input(port, format!("expected {want}, got {}", got.summary()))
    }

    /// An image input (a mask wired here arrives as a 0/1 u8 image).
    pub fn image(&self, port: &str) -> Result<&Stack, NodeError> {
        match self.values.get(port) {
            Some(Value::Image(s)) | Some(Value::Mask(s)) => Ok(s),
            Some(v) => Err(Self::wrong(port, "an image", v)),
            None => Err(Self::missing(port)),
        }
    }

    pub fn mask(&self, port: &str) -> Result<&Stack, NodeError> {
        match self.values.get(port) {
            Some(Value::Mask(s)) => Ok(s),
            Some(v) => Err(Self::wrong(port, "a mask", v)),
            None => Err(Self::missing(port)),
        }
    }

    pub fn labels(&self, port: &str) -> Result<&Stack, NodeError> {
        match self.values.get(port) {
            Some(Value::Labels(s)) => Ok(s),
            Some(v) => Err(Self::wrong(port, "labels", v)),
            None => Err(Self::missing(port)),
        }
    }

    /// A `stack` input: any of image, mask and labels, with its value to tell which.
    pub fn stack(&self, port: &str) -> Result<(&Stack, &Value), NodeError> {
        match self.values.get(port) {
            Some(v) => v.as_stack().map(|s| (s, v)).ok_or_else(|| Self::wrong(port, "an image, mask or labels", v)),
            None => Err(Self::missing(port)),
        }
    }

    pub fn table(&self, port: &str) -> Result<&Arc<Table>, NodeError> {
        match self.values.get(port) {
            Some(Value::Table(t)) => Ok(t),
            Some(v) => Err(Self::wrong(port, "a table", v)),
            None => Err(Self::missing(port)),
        }
    }

    /// An optional input: `Ok(None)` when not connected.
    pub fn opt<'a, T>(
        &'a self,
        port: &str,
        get: impl Fn(&'a Inputs, &str) -> Result<T, NodeError>,
    ) -> Result<Option<T>, NodeError> {
        if self.values.contains_key(port) { get(self, port).map(Some) } else { Ok(None) }
    }
}

/// A node's outputs by port name.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    values: BTreeMap<String, Value>,
}

impl Outputs {
    pub fn new() -> Outputs {
        Outputs::default()
    }

    pub fn with(mut self, port: &str, v: Value) -> Outputs {
        self.values.insert(port.into(), v);
        self
    }

    pub fn insert(&mut self, port: &str, v: Value) {
        self.values.insert(port.into(), v);
    }

    pub fn get(&self, port: &str) -> Option<&Value> {
        self.values.get(port)
    }

    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.values
    }

    pub fn into_values(self) -> BTreeMap<String, Value> {
        self.values
    }

    pub fn byte_size(&self) -> usize {
        self.values.values().map(Value::byte_size).sum()
    }
}

impl From<BTreeMap<String, Value>> for Outputs {
    fn from(values: BTreeMap<String, Value>) -> Outputs {
        Outputs { values }
    }
}

/// A node type. Implementations are thin adapters around plain, directly tested functions.
pub trait Node: Send + Sync + 'static {
    /// Called once, at registration.
    fn spec(&self) -> NodeSpec;

    /// Computes the outputs. Must be deterministic for given params, inputs and fingerprint.
    fn run(&self, ctx: &NodeCtx, params: &Params, inputs: &Inputs) -> Result<Outputs, NodeError>;

    /// A digest of whatever the node reads from outside the graph (files, folders), taken
    /// before it runs; part of its cache key. `None` for pure nodes.
    fn fingerprint(&self, _params: &Params) -> Result<Option<Fingerprint>, NodeError> {
        Ok(None)
    }

    /// Whether cached outputs may still be used. By default, a `File` output must still be on
    /// disk with the content the node wrote (a deleted or edited output file is written again).
    fn outputs_fresh(&self, _params: &Params, outputs: &Outputs) -> bool {
        outputs.values().values().all(|v| match v {
            Value::File(f) => f.is_intact(),
            _ => true,
        })
    }

    /// Upgrades saved parameters from an older type version, one version at a time
    /// (`from` → `from + 1`). Nodes that changed their parameters override this.
    fn migrate(&self, from: u32, _params: &mut BTreeMap<String, ParamValue>) -> Result<(), String> {
        Err(format!("no migration from version {from}"))
    }
}
