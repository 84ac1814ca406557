//! `model.unet2d`, `model.unet3d`, `model.unet3d_anisotropic`: untrained networks, weights
//! initialised from a seed.

use std::sync::Arc;

use candle_core::Device;
use petri_api::{Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Value};

use crate::model::{ModelConfig, Net};
use crate::unet::{Decoder, Dims, Padding, UNetConfig};

/// The architecture from a model node's parameters.
pub fn unet_config(dims: Dims, p: &Params) -> Result<UNetConfig, NodeError> {
    Ok(UNetConfig {
        dims,
        in_channels: p.usize("in_channels")?,
        classes: p.usize("classes")?,
        depth: p.usize("depth")?,
        base_filters: p.usize("base_filters")?,
        batch_norm: p.bool("batch_norm")?,
        dropout: p.f64("dropout")?,
        padding: if p.str("padding")? == "valid" { Padding::Valid } else { Padding::Same },
        decoder: if p.str("decoder")? == "upsample_conv" { Decoder::UpsampleConv } else { Decoder::TransposedConv },
    })
}

fn unet_spec(id: &str, doc: &str, depth: i64) -> NodeSpec {
    NodeSpec::new(id, 1, "model", doc)
        .output("model", PortType::Model, "The untrained network (feed it to learn.train).")
        .param(ParamSpec::int("in_channels", 1, "Channels of the input images.").range(1.0, 64.0))
        .param(ParamSpec::int(
            "classes",
            2,
            "Output classes including background (2 for foreground/background, 3 for instance borders).",
        )
        .range(2.0, 255.0))
        .param(ParamSpec::int("depth", depth, "Resolution levels (each halves the size): more sees larger context.").range(1.0, 7.0))
        .param(ParamSpec::int("base_filters", 32, "Filters in the first level (doubling each level): more is slower but more capable.").range(1.0, 256.0))
        .param(ParamSpec::bool("batch_norm", true, "Batch normalisation after each convolution (trains faster and more stably)."))
        .param(ParamSpec::float("dropout", 0.0, "Dropout probability at the bottleneck (regularisation).").range(0.0, 0.9))
        .param(ParamSpec::choice(
            "padding",
            &["same", "valid"],
            "same",
            "same: output as large as the input; valid: no padding (the original U-Net), the output is smaller.",
        ))
        .param(ParamSpec::choice(
            "decoder",
            &["transposed_conv", "upsample_conv"],
            "transposed_conv",
            "How the decoder upsamples: a learned transposed convolution, or nearest-neighbour upsampling then a convolution.",
        ))
        .param(ParamSpec::int("seed", 0, "Random seed of the initial weights.").min(0.0))
}

fn make(dims: Dims, p: &Params) -> Result<Outputs, NodeError> {
    let cfg = unet_config(dims, p)?;
    let net = Net::init(ModelConfig::new(cfg, p.i64("seed")? as u64), &Device::Cpu)?;
    Ok(Outputs::new().with("model", Value::Model(Arc::new(net.to_model()?))))
}

pub struct UNet2d;
impl Node for UNet2d {
    fn spec(&self) -> NodeSpec {
        unet_spec("model.unet2d", "A 2-D U-Net for segmenting images (or 3-D stacks slice by slice).", 4)
    }
    fn run(&self, _ctx: &NodeCtx, p: &Params, _i: &Inputs) -> Result<Outputs, NodeError> {
        make(Dims::Two, p)
    }
}

pub struct UNet3d;
impl Node for UNet3d {
    fn spec(&self) -> NodeSpec {
        unet_spec("model.unet3d", "A 3-D U-Net for segmenting volumes with roughly cubic voxels.", 3)
    }
    fn run(&self, _ctx: &NodeCtx, p: &Params, _i: &Inputs) -> Result<Outputs, NodeError> {
        make(Dims::Three, p)
    }
}

pub struct UNet3dAnisotropic;
impl Node for UNet3dAnisotropic {
    fn spec(&self) -> NodeSpec {
        unet_spec(
            "model.unet3d_anisotropic",
            "A 3-D U-Net for volumes whose slices are about twice as far apart as their pixels (first and last level work in 2-D).",
            3,
        )
    }
    fn run(&self, _ctx: &NodeCtx, p: &Params, _i: &Inputs) -> Result<Outputs, NodeError> {
        make(Dims::Anisotropic, p)
    }
}
