//! U-Net 2-D, 3-D and anisotropic 3-D (Ronneberger et al. 2015; Çiçek et al. 2016; DeepMIB's
//! "3D U-Net Anisotropic"), in candle's shape: [`UNetConfig`] + [`UNet::new`] + [`UNet::forward_t`].
//!
//! Level l (0 = full resolution) has `base_filters · 2^l` channels and two 3×3(×3) convolutions,
//! each followed by batch norm (optional) and ReLU; `depth` levels, `depth − 1` 2×2(×2) max
//! poolings. The decoder upsamples (transposed convolution k = s = 2, or nearest ×2 + 3×3(×3)
//! convolution), concatenates the skip connection (centre-cropped with valid padding) and
//! applies two convolutions. A 1×1(×1) convolution gives the class logits. The anisotropic
//! variant uses 1×3×3 kernels and 1×2×2 pooling/upsampling at level 0 (for voxels about twice
//! as deep as wide). Variable names: `enc.{l}.conv1.weight`, `enc.{l}.bn1.running_mean`, `upt.{l}.weight`
//! (transposed convolution, PyTorch's (Cin, Cout, k...) layout), `up.{l}.weight`, `dec.{l}...`, `head.weight`.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::nn::{BnRelu, Conv, Dropout};
use crate::ops;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dims {
    /// 2-D images (N, C, H, W).
    Two,
    /// Isotropic 3-D volumes (N, C, D, H, W).
    Three,
    /// 3-D with the first encoder and last decoder level in 2-D (1×3×3 kernels, 1×2×2 pooling).
    Anisotropic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Padding {
    /// Zero padding: output as large as the input (needs sizes divisible by 2^(depth−1)).
    Same,
    /// No padding (the original U-Net): the output is smaller than the input.
    Valid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decoder {
    /// Transposed convolution, kernel 2 stride 2.
    TransposedConv,
    /// Nearest-neighbour ×2 upsampling followed by a 3×3(×3) convolution.
    UpsampleConv,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    pub dims: Dims,
    pub in_channels: usize,
    pub classes: usize,
    /// Number of resolution levels (pooling steps + 1).
    pub depth: usize,
    pub base_filters: usize,
    pub batch_norm: bool,
    /// Dropout probability after the bottleneck block (0 = none).
    pub dropout: f64,
    pub padding: Padding,
    pub decoder: Decoder,
}

impl UNetConfig {
    pub fn three_d(&self) -> bool {
        self.dims != Dims::Two
    }

    /// Kernel of the level's convolutions (kd, kh, kw).
    fn kernel(&self, level: usize) -> [usize; 3] {
        match self.dims {
            Dims::Two => [1, 3, 3],
            Dims::Three => [3, 3, 3],
            Dims::Anisotropic if level == 0 => [1, 3, 3],
            Dims::Anisotropic => [3, 3, 3],
        }
    }

    /// Pooling / upsampling factor between level `level` and `level + 1`.
    pub fn factor(&self, level: usize) -> [usize; 3] {
        match self.dims {
            Dims::Two => [1, 2, 2],
            Dims::Three => [2, 2, 2],
            Dims::Anisotropic if level == 0 => [1, 2, 2],
            Dims::Anisotropic => [2, 2, 2],
        }
    }

    fn pad(&self, k: [usize; 3]) -> [usize; 3] {
        match self.padding {
            Padding::Same => k.map(|k| k / 2),
            Padding::Valid => [0; 3],
        }
    }

    /// Output length along axis `a` (0 = D, 1 = H, 2 = W) for an input length, or `None` if
    /// too small or (same padding) not divisible by the poolings.
    fn axis_output(&self, a: usize, n: usize) -> Option<usize> {
        let lost = |k: usize| if self.padding == Padding::Valid { k - 1 } else { 0 };
        let mut s = n as isize;
        let mut sizes = Vec::new();
        for l in 0..self.depth {
            s -= 2 * lost(self.kernel(l)[a]) as isize;
            if s < 1 {
                return None;
            }
            sizes.push(s);
            if l + 1 < self.depth {
                let f = self.factor(l)[a] as isize;
                if s % f != 0 {
                    return None;
                }
                s /= f;
            }
        }
        for l in (0..self.depth - 1).rev() {
            let k = self.kernel(l)[a];
            s *= self.factor(l)[a] as isize;
            if self.decoder == Decoder::UpsampleConv {
                s -= lost(k) as isize;
            }
            if s > sizes[l] {
                return None;
            }
            s -= 2 * lost(k) as isize;
            if s < 1 {
                return None;
            }
        }
        Some(s as usize)
    }

    /// Output spatial size (D, H, W) for an input size, or `None` if the input is too small or
    /// (same padding) not divisible by the poolings. 2-D sizes have D = 1.
    pub fn output_size(&self, inp: [usize; 3]) -> Option<[usize; 3]> {
        let mut o = [1; 3];
        for a in 0..3 {
            if a == 0 && !self.three_d() {
                if inp[0] != 1 {
                    return None;
                }
                continue;
            }
            o[a] = self.axis_output(a, inp[a])?;
        }
        Some(o)
    }

    /// The smallest valid input whose output is at least `want` per axis (same padding: `want`
    /// rounded up to a multiple of the total pooling factor).
    pub fn input_size_for(&self, want: [usize; 3]) -> Option<[usize; 3]> {
        let mut inp = [1; 3];
        for a in 0..3 {
            if a == 0 && !self.three_d() {
                continue;
            }
            inp[a] = (want[a].max(1)..want[a].max(1) + 4096)
                .find(|&n| self.axis_output(a, n).is_some_and(|o| o >= want[a]))?;
        }
        Some(inp)
    }
}

/// conv → (BN) → ReLU, twice.
#[derive(Debug)]
struct Block {
    c1: Conv,
    n1: Option<BnRelu>,
    c2: Conv,
    n2: Option<BnRelu>,
}

impl Block {
    fn new(cfg: &UNetConfig, cin: usize, cout: usize, level: usize, vb: VarBuilder) -> Result<Block> {
        let k = cfg.kernel(level);
        let p = cfg.pad(k);
        let bias = !cfg.batch_norm;
        let td = cfg.three_d();
        Ok(Block {
            c1: Conv::new(cin, cout, k, p, bias, td, vb.pp("conv1"))?,
            n1: if cfg.batch_norm { Some(BnRelu::new(cout, vb.pp("bn1"))?) } else { None },
            c2: Conv::new(cout, cout, k, p, bias, td, vb.pp("conv2"))?,
            n2: if cfg.batch_norm { Some(BnRelu::new(cout, vb.pp("bn2"))?) } else { None },
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let step = |x: &Tensor, c: &Conv, n: &Option<BnRelu>| -> Result<Tensor> {
            match n {
                Some(n) => {
                    // Fused where possible: batch norm folded into the convolution (inference),
                    // or convolution + batch norm + ReLU as one autograd node (training).
                    let fused = if train { c.forward_bn_train(x, n)? } else { c.forward_bn_eval(x, n)? };
                    match fused {
                        Some(y) => Ok(y),
                        None => n.forward_t(&c.forward(x)?, train),
                    }
                }
                None => c.forward(x)?.relu(),
            }
        };
        let y = step(x, &self.c1, &self.n1)?;
        step(&y, &self.c2, &self.n2)
    }
}

#[derive(Debug)]
enum Up {
    Transposed { w: Tensor, b: Tensor, f: [usize; 3] },
    UpConv { conv: Conv, f: [usize; 3] },
}

impl Up {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Up::Transposed { w, b, f } => ops::upsample::conv_transpose_k_eq_s_bias(x, w, b, *f),
            Up::UpConv { conv, f } => conv.forward(&ops::upsample::upsample_nearest(x, *f)?),
        }
    }
}

#[derive(Debug)]
pub struct UNet {
    cfg: UNetConfig,
    enc: Vec<Block>,
    ups: Vec<Up>,
    dec: Vec<Block>,
    head: Conv,
    dropout: Dropout,
}

/// Centre crop of `x`'s spatial axes to `like`'s.
fn crop_to(x: &Tensor, like: &Tensor) -> Result<Tensor> {
    let mut y = x.clone();
    for a in 2..x.rank() {
        let (have, want) = (x.dim(a)?, like.dim(a)?);
        if have != want {
            y = y.narrow(a, (have - want) / 2, want)?;
        }
    }
    Ok(y)
}

impl UNet {
    pub fn new(cfg: &UNetConfig, vb: VarBuilder) -> Result<UNet> {
        if cfg.depth < 1 || cfg.base_filters < 1 || cfg.classes < 1 || cfg.in_channels < 1 {
            candle_core::bail!("U-Net: depth, base filters, classes and input channels must be at least 1");
        }
        let ch = |l: usize| cfg.base_filters << l;
        let mut enc = Vec::new();
        let mut cin = cfg.in_channels;
        for l in 0..cfg.depth {
            enc.push(Block::new(cfg, cin, ch(l), l, vb.pp(format!("enc.{l}")))?);
            cin = ch(l);
        }
        let mut ups = Vec::new();
        let mut dec = Vec::new();
        for l in (0..cfg.depth - 1).rev() {
            let f = cfg.factor(l);
            ups.push(match cfg.decoder {
                Decoder::TransposedConv => {
                    let vu = vb.pp(format!("upt.{l}"));
                    let w = if cfg.three_d() {
                        vu.get_with_hints((ch(l + 1), ch(l), f[0], f[1], f[2]), "weight", candle_nn::Init::Const(0.0))?
                    } else {
                        vu.get_with_hints((ch(l + 1), ch(l), f[1], f[2]), "weight", candle_nn::Init::Const(0.0))?
                    };
                    let b = vu.get_with_hints(ch(l), "bias", candle_nn::Init::Const(0.0))?;
                    Up::Transposed { w, b, f }
                }
                Decoder::UpsampleConv => {
                    let k = cfg.kernel(l);
                    let p = match cfg.padding {
                        Padding::Same => k.map(|k| k / 2),
                        Padding::Valid => [0; 3],
                    };
                    Up::UpConv {
                        conv: Conv::new(ch(l + 1), ch(l), k, p, true, cfg.three_d(), vb.pp(format!("up.{l}")))?,
                        f,
                    }
                }
            });
            dec.push(Block::new(cfg, 2 * ch(l), ch(l), l, vb.pp(format!("dec.{l}")))?);
        }
        let head = Conv::new(ch(0), cfg.classes, [1, 1, 1], [0; 3], true, cfg.three_d(), vb.pp("head"))?;
        Ok(UNet { cfg: cfg.clone(), enc, ups, dec, head, dropout: Dropout::new(cfg.dropout) })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }

    /// Restarts the dropout masks' random sequence (the trainer calls it before every step).
    pub fn reseed_dropout(&self, seed: u64) {
        self.dropout.reseed(seed);
    }

    /// Logits (N, classes, ...) for `x` (N, C, ...); `train` uses batch statistics (and updates
    /// the running ones) and dropout.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut skips = Vec::new();
        let mut h = x.clone();
        for (l, blk) in self.enc.iter().enumerate() {
            h = blk.forward_t(&h, train)?;
            if l + 1 < self.enc.len() {
                skips.push(h.clone());
                h = ops::pool::max_pool(&h, self.cfg.factor(l))?;
            }
        }
        h = self.dropout.forward_t(&h, train)?;
        for (up, blk) in self.ups.iter().zip(&self.dec) {
            let u = up.forward(&h)?;
            let s = skips.pop().expect("one skip per decoder level");
            let s = crop_to(&s, &u)?;
            h = blk.forward_t(&ops::cat::cat_channels(&s, &u)?, train)?;
        }
        self.head.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    pub(crate) fn peer_config() -> UNetConfig {
        UNetConfig {
            dims: Dims::Two,
            in_channels: 1,
            classes: 2,
            depth: 4,
            base_filters: 32,
            batch_norm: true,
            dropout: 0.0,
            padding: Padding::Same,
            decoder: Decoder::TransposedConv,
        }
    }

    #[test]
    fn parameter_count_matches_pytorch_peer() {
        // torch_unet.py: 4 levels, base 32, batch norm → 1.93 M parameters.
        let cfg = peer_config();
        let vm = VarMap::new();
        let _net = UNet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        let trainable: usize =
            vm.data().lock().unwrap().iter().filter(|(k, _)| !k.contains("running")).map(|(_, v)| v.elem_count()).sum();
        // PyTorch: sum(p.numel() for p in UNet2D(1, 2, 32, 4).parameters()) == 1926466.
        assert_eq!(trainable, 1_926_466);
    }

    #[test]
    fn output_sizes() {
        let mut cfg = peer_config();
        assert_eq!(cfg.output_size([1, 256, 256]), Some([1, 256, 256]));
        assert_eq!(cfg.output_size([1, 250, 256]), None);
        assert_eq!(cfg.input_size_for([1, 250, 100]), Some([1, 256, 104]));
        cfg.padding = Padding::Valid;
        cfg.depth = 5;
        cfg.base_filters = 2;
        // The original U-Net: 572 → 388.
        assert_eq!(cfg.output_size([1, 572, 572]), Some([1, 388, 388]));
        let vm = VarMap::new();
        let net = UNet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        let cfg3 = UNetConfig { depth: 2, ..cfg.clone() };
        let vm3 = VarMap::new();
        let net3 = UNet::new(&cfg3, VarBuilder::from_varmap(&vm3, DType::F32, &Device::Cpu)).unwrap();
        let x = Tensor::zeros((1, 1, 44, 36), DType::F32, &Device::Cpu).unwrap();
        let o = cfg3.output_size([1, 44, 36]).unwrap();
        assert_eq!(net3.forward_t(&x, false).unwrap().dims(), &[1, 2, o[1], o[2]]);
        drop(net);
        for dims in [Dims::Three, Dims::Anisotropic] {
            for decoder in [Decoder::TransposedConv, Decoder::UpsampleConv] {
                let c = UNetConfig { dims, depth: 3, base_filters: 2, padding: Padding::Same, decoder, ..cfg.clone() };
                let vm = VarMap::new();
                let net = UNet::new(&c, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
                let inp = if dims == Dims::Three { [8, 8, 8] } else { [4, 8, 8] };
                let x = Tensor::zeros((2, 1, inp[0], inp[1], inp[2]), DType::F32, &Device::Cpu).unwrap();
                let y = net.forward_t(&x, true).unwrap();
                assert_eq!(y.dims(), &[2, 2, inp[0], inp[1], inp[2]]);
                assert_eq!(c.output_size(inp), Some(inp));
                assert_eq!(c.output_size([2, 8, 8]).is_some(), dims == Dims::Anisotropic);
            }
        }
    }
}
