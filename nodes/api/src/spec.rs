//! `NodeSpec`: everything the engine, the CLI, the GUI and the docs know about a node type
//! without running it.

use serde::Serialize;

use crate::param::ParamSpec;

/// The closed set of things a wire can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    Image,
    Mask,
    Labels,
    Table,
    File,
    /// Any N-D array: an image, a mask or labels (writers and viewers take this).
    Stack,
    /// Tracks over time: a table with columns id, begin, end, parent (CTC's res_track.txt).
    Tracks,
    /// Training data: image/target pairs with their settings.
    Dataset,
    /// A network: configuration and weights.
    Model,
}

impl PortType {
    pub fn name(self) -> &'static str {
        match self {
            PortType::Image => "image",
            PortType::Mask => "mask",
            PortType::Labels => "labels",
            PortType::Table => "table",
            PortType::File => "file",
            PortType::Stack => "stack",
            PortType::Tracks => "tracks",
            PortType::Dataset => "dataset",
            PortType::Model => "model",
        }
    }

    /// Whether an output of type `from` may feed an input of this type.
    /// Besides equal types: a mask is an image of 0/1, labels are a mask where ≠ 0, tracks are a
    /// table, and a
    /// `stack` port takes any of image, mask and labels.
    /// The conversions happen in [`crate::Inputs`], so every node sees the type it declared.
    pub fn accepts(self, from: PortType) -> bool {
        self == from
            || matches!(
                (self, from),
                (PortType::Image, PortType::Mask)
                    | (PortType::Mask, PortType::Labels)
                    | (PortType::Table, PortType::Tracks)
                    | (PortType::Stack, PortType::Image | PortType::Mask | PortType::Labels)
            )
    }
}

impl std::fmt::Display for PortType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PortSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: PortType,
    /// Inputs only: whether the node can run without it.
    pub required: bool,
    pub doc: String,
}

/// How the engine may reuse a node's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CachePolicy {
    /// Cache in memory, and on disk when the run has a cache folder (the default).
    Normal,
    /// Always keep results on disk, in the default cache folder if the run names none
    /// (expensive nodes such as training: a later edit downstream never recomputes them).
    Disk,
    /// Never reuse (cheap, or reads something that cannot be fingerprinted).
    Never,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeSpec {
    /// Stable, hand-chosen id such as `"image.gaussian"`. Never a Rust path; never renamed.
    #[serde(rename = "type")]
    pub type_id: String,
    /// Bumped when parameters change meaning; old files are migrated by the node.
    pub version: u32,
    pub category: String,
    pub doc: String,
    pub inputs: Vec<PortSpec>,
    pub outputs: Vec<PortSpec>,
    pub params: Vec<ParamSpec>,
    #[serde(skip)]
    pub cache: CachePolicy,
}

impl NodeSpec {
    pub fn new(type_id: &str, version: u32, category: &str, doc: &str) -> NodeSpec {
        NodeSpec {
            type_id: type_id.into(),
            version,
            category: category.into(),
            doc: doc.into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Vec::new(),
            cache: CachePolicy::Normal,
        }
    }

    pub fn input(mut self, name: &str, ty: PortType, doc: &str) -> Self {
        self.inputs.push(PortSpec { name: name.into(), ty, required: true, doc: doc.into() });
        self
    }

    pub fn optional_input(mut self, name: &str, ty: PortType, doc: &str) -> Self {
        self.inputs.push(PortSpec { name: name.into(), ty, required: false, doc: doc.into() });
        self
    }

    pub fn output(mut self, name: &str, ty: PortType, doc: &str) -> Self {
        self.outputs.push(PortSpec { name: name.into(), ty, required: true, doc: doc.into() });
        self
    }

    pub fn param(mut self, p: ParamSpec) -> Self {
        self.params.push(p);
        self
    }

    pub fn cache(mut self, policy: CachePolicy) -> Self {
        self.cache = policy;
        self
    }

    pub fn input_spec(&self, name: &str) -> Option<&PortSpec> {
        self.inputs.iter().find(|p| p.name == name)
    }

    pub fn output_spec(&self, name: &str) -> Option<&PortSpec> {
        self.outputs.iter().find(|p| p.name == name)
    }

    pub fn param_spec(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}
