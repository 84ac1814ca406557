//! `Value`: what flows along a wire. Heavy payloads sit behind `Arc`, so passing a value to
//! several consumers, or keeping it in the cache, never copies pixels.

use std::path::PathBuf;
use std::sync::Arc;

use crate::spec::PortType;
use crate::stack::Stack;
use crate::table::Table;

/// A 32-byte digest (blake3) of something a node reads from outside the graph.
pub type Fingerprint = [u8; 32];

/// A file a node wrote: where, and the digest of what it wrote, so the engine can tell whether
/// the file on disk is still the one it made.
#[derive(Clone, Debug, PartialEq)]
pub struct FileRef {
    pub path: PathBuf,
    pub blake3: String,
    pub bytes: u64,
}

impl FileRef {
    /// Hashes `path` as it is now.
    pub fn of(path: impl Into<PathBuf>) -> std::io::Result<FileRef> {
        let path = path.into();
        let (blake3, bytes) = hash_file(&path)?;
        Ok(FileRef { path, blake3, bytes })
    }

    /// Whether the file still exists with the content recorded here.
    pub fn is_intact(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) if m.len() == self.bytes => {
                matches!(hash_file(&self.path), Ok((h, _)) if h == self.blake3)
            }
            _ => false,
        }
    }
}

/// blake3 of a file's content, streamed (hex digest, byte count).
pub fn hash_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let file = std::fs::File::open(path)?;
    let n = std::io::copy(&mut std::io::BufReader::with_capacity(1 << 20, file), &mut hasher)?;
    Ok((hasher.finalize().to_hex().to_string(), n))
}

#[derive(Clone, Debug)]
pub enum Value {
    /// Intensities (any pixel type).
    Image(Stack),
    /// A binary image: u8, 0 = background, 1 = foreground.
    Mask(Stack),
    /// Instance or class labels: u32, 0 = background.
    Labels(Stack),
    Table(Arc<Table>),
    File(Arc<FileRef>),
    /// Columns id, begin, end, parent (0 = none), one row per track.
    Tracks(Arc<Table>),
    Dataset(Arc<Dataset>),
    Model(Arc<Model>),
}

/// Training data as built by `learn.*` nodes: image/target pairs and their settings.
/// `spec` is RON text owned by the learn crate (split, patch size, classes, augmentation), so the
/// API stays free of deep-learning types while the engine can still cache and hash datasets.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub spec: String,
    pub images: Vec<Stack>,
    pub targets: Vec<Stack>,
}

/// A network: `config` is RON text (architecture, classes, normalisation, history) and
/// `weights` a safetensors file's bytes. Weights are never anything but safetensors.
#[derive(Clone, Debug)]
pub struct Model {
    pub config: String,
    pub weights: Arc<Vec<u8>>,
}

impl Value {
    pub fn port_type(&self) -> PortType {
        match self {
            Value::Image(_) => PortType::Image,
            Value::Mask(_) => PortType::Mask,
            Value::Labels(_) => PortType::Labels,
            Value::Table(_) => PortType::Table,
            Value::File(_) => PortType::File,
            Value::Tracks(_) => PortType::Tracks,
            Value::Dataset(_) => PortType::Dataset,
            Value::Model(_) => PortType::Model,
        }
    }

    /// The array inside an image, mask or labels value.
    pub fn as_stack(&self) -> Option<&Stack> {
        match self {
            Value::Image(s) | Value::Mask(s) | Value::Labels(s) => Some(s),
            _ => None,
        }
    }

    /// Approximate memory held, for the cache's byte budget.
    pub fn byte_size(&self) -> usize {
        match self {
            Value::Image(s) | Value::Mask(s) | Value::Labels(s) => s.len() * s.dtype().size(),
            Value::Table(t) => t.byte_size(),
            Value::File(f) => f.path.as_os_str().len() + 64,
            Value::Tracks(t) => t.byte_size(),
            Value::Dataset(d) => {
                d.spec.len() + d.images.iter().chain(&d.targets).map(|s| s.len() * s.dtype().size()).sum::<usize>()
            }
            Value::Model(m) => m.config.len() + m.weights.len(),
        }
    }

    /// One line for logs and previews.
    pub fn summary(&self) -> String {
        match self {
            Value::Image(s) => format!("image {}", s.describe()),
            Value::Mask(s) => format!("mask {}", s.describe()),
            Value::Labels(s) => format!("labels {}", s.describe()),
            Value::Table(t) => format!("table {} rows × {} columns", t.n_rows(), t.n_cols()),
            Value::File(f) => format!("file {} ({} bytes)", f.path.display(), f.bytes),
            Value::Tracks(t) => format!("{} tracks", t.n_rows()),
            Value::Dataset(d) => format!("dataset of {} image/target pairs", d.images.len()),
            Value::Model(m) => format!("model ({} bytes of weights)", m.weights.len()),
        }
    }

    /// Converts to the type of the input port it feeds (see [`PortType::accepts`]).
    pub fn coerce(self, to: PortType) -> Option<Value> {
        match (to, self) {
            (t, v) if v.port_type() == t => Some(v),
            (PortType::Stack, v @ (Value::Image(_) | Value::Mask(_) | Value::Labels(_))) => Some(v),
            (PortType::Image, Value::Mask(s)) => Some(Value::Image(s)),
            (PortType::Mask, Value::Labels(s)) => Value::labels_to_mask(&s).map(Value::Mask),
            (PortType::Table, Value::Tracks(t)) => Some(Value::Table(t)),
            _ => None,
        }
    }

    /// A mask from labels (foreground = label ≠ 0), used when a Labels wire feeds a Mask port.
    pub fn labels_to_mask(labels: &Stack) -> Option<Stack> {
        let px = labels.pixels::<u32>()?;
        labels.with_pixels::<u8>(px.iter().map(|&v| (v != 0) as u8).collect()).ok()
    }
}
