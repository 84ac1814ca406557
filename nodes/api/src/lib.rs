//! The node API: everything a node crate needs, and nothing of the engine.
//!
//! Node crates depend on this crate only (never on the engine, petgraph or iced), so a node
//! can be written, tested and benchmarked as a plain function plus a thin [`Node`] adapter.

mod codec;
pub mod fsutil;
pub mod mem;
mod node;
mod param;
mod registry;
mod spec;
mod stack;
mod table;
mod value;

pub use node::{Device, Inputs, Node, NodeCtx, NodeError, NodeEvent, Outputs};
pub use param::{ParamError, ParamErrorKind, ParamKind, ParamSpec, ParamValue, Params, PathMode};
pub use registry::{Entry, Registry, RegistryError};
pub use spec::{CachePolicy, NodeSpec, PortSpec, PortType};
pub use stack::{Axis, Buffer, DType, Pixel, Stack, StackError, VoxelSize};
pub use table::{Column, ColumnData, Table};
pub use value::{Dataset, FileRef, Fingerprint, Model, Value, hash_file};

/// Re-exported so node crates use the same ndarray as the API's views.
pub use ndarray;
