//! Convolution + training-mode batch norm + ReLU as one autograd node.
//!
//! Why: candle's autograd allocates a zero tensor and adds into it for every input of every
//! node, on one thread; between a convolution and its batch norm that is a full extra pass over
//! the largest activations of the network, forward and backward. Fused, the pre-norm activations
//! stay inside the op (kept for the backward pass) and the arithmetic is exactly that of the
//! separate [`super::conv`] and [`super::norm`] ops (bit-for-bit equal, tested).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Result, Shape, Tensor};

use super::conv::{ConvBwdInput, ConvBwdWeight, conv_forward, geo_of, out_shape};
use super::f32_contiguous;
use super::norm::{BnBwd, bn_apply, channel_stats};

/// Pre-norm activations and batch statistics of the last forward pass.
type Saved = Arc<Mutex<Option<(Tensor, Vec<(f64, f64)>)>>>;

struct ConvBnRelu {
    pad: [usize; 3],
    saved: Saved,
}

impl CustomOp3 for ConvBnRelu {
    fn name(&self) -> &'static str {
        "petri-conv-bn-relu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let t0 = std::time::Instant::now();
        let g = geo_of(l1, l2, self.pad)?;
        let x = f32_contiguous(s1, l1)?;
        let w = f32_contiguous(s2, l2)?;
        let gb = f32_contiguous(s3, l3)?;
        if gb.len() != 2 * g.cout {
            candle_core::bail!("conv + batch norm: {} channels but {} norm parameters", g.cout, gb.len());
        }
        let z = conv_forward(&x, &w, &g);
        super::prof(0, t0);
        let t1 = std::time::Instant::now();
        let o = g.out();
        let (n, c, v) = (g.n, g.cout, o[0] * o[1] * o[2]);
        let stats = channel_stats(&z, n, c, v);
        let y = bn_apply(&z, n, c, v, &stats, &gb[..c], &gb[c..], true);
        let shape = out_shape(&g, l1.dims().len());
        let zt = Tensor::from_vec(z, shape.clone(), &Device::Cpu)?;
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some((zt, stats));
        super::prof(3, t1);
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        gb: &Tensor,
        res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let t0 = std::time::Instant::now();
        let Some((z, stats)) = self.saved.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            candle_core::bail!("conv + batch norm: backward pass without a forward pass");
        };
        let c = w.dim(0)?;
        let gamma = gb.narrow(0, 0, c)?.to_vec1::<f32>()?;
        let flat = z.apply_op3_no_bwd(res, dy, &BnBwd { relu: true, stats, gamma })?;
        let m = z.elem_count();
        let dz = flat.narrow(0, 0, m)?.reshape(z.shape())?;
        let dgb = flat.narrow(0, m, 2 * c)?;
        super::prof(4, t0);
        let dx = if x.track_op() {
            Some(dz.apply_op2_no_bwd(w, &ConvBwdInput { pad: self.pad, x_shape: x.shape().clone() })?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(&dz, &ConvBwdWeight { pad: self.pad, w_shape: w.shape().clone() })?)
        } else {
            None
        };
        Ok((dx, dw, Some(dgb)))
    }
}

/// Training-mode `relu(bn(conv(x, w)))` with batch statistics, as one node on the CPU: returns
/// the output and the batch's per-channel (mean, biased variance) for the running averages.
/// `None` off the CPU (the caller runs the separate ops).
pub fn conv_bn_relu_train(
    x: &Tensor,
    w: &Tensor,
    pad: [usize; 3],
    gamma: &Tensor,
    beta: &Tensor,
) -> Result<Option<(Tensor, Vec<(f64, f64)>)>> {
    if !x.device().is_cpu() {
        return Ok(None);
    }
    let pad = if x.rank() == 4 { [0, pad[1], pad[2]] } else { pad };
    let saved: Saved = Arc::new(Mutex::new(None));
    let gb = Tensor::cat(&[gamma, beta], 0)?;
    let y = x.apply_op3(w, &gb, ConvBnRelu { pad, saved: saved.clone() })?;
    let stats = saved.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|s| s.1.clone()).unwrap_or_default();
    Ok(Some((y, stats)))
}
