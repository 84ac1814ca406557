//! Segmentation losses on logits (N, C, spatial...) and integer class targets (N, spatial...):
//! cross-entropy (optionally weighted per pixel: class weights and U-Net border weights),
//! soft Dice, focal. Pixels whose target is [`IGNORE`] do not count.

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

/// Target value of pixels left out of the loss (padding of a patch beyond the image).
pub const IGNORE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum LossKind {
    CrossEntropy,
    /// Cross-entropy weighted per pixel (class weights × border weights).
    WeightedCrossEntropy,
    /// 1 − mean soft Dice over classes.
    Dice,
    /// Cross-entropy + Dice (a common robust default).
    CrossEntropyDice,
    /// Focal loss (Lin et al.) with focusing parameter γ.
    Focal {
        gamma: f64,
    },
}

/// One-hot encoding (N, C, spatial...) of targets (N, spatial...), all-zero for ignored pixels,
/// plus the valid-pixel mask (N, 1, spatial...).
pub fn one_hot(
    targets: &[u32],
    n: usize,
    classes: usize,
    spatial: &[usize],
    dev: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let v: usize = spatial.iter().product();
    let mut oh = vec![0f32; n * classes * v];
    let mut valid = vec![0f32; n * v];
    for b in 0..n {
        for i in 0..v {
            let t = targets[b * v + i];
            if t != IGNORE && (t as usize) < classes {
                oh[(b * classes + t as usize) * v + i] = 1.0;
                valid[b * v + i] = 1.0;
            }
        }
    }
    let mut shape = vec![n, classes];
    shape.extend_from_slice(spatial);
    let oh = Tensor::from_vec(oh, shape.as_slice(), dev)?;
    shape[1] = 1;
    let valid = Tensor::from_vec(valid, shape.as_slice(), dev)?;
    Ok((oh, valid))
}

/// The loss value (a scalar tensor with gradients). `weights` (N, 1, spatial...) multiplies the
/// per-pixel cross-entropy (weighted and focal kinds); `None` means 1.
pub fn loss(
    kind: LossKind,
    logits: &Tensor,
    one_hot: &Tensor,
    valid: &Tensor,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, 1)?;
    let nvalid = valid.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64;
    let ce_pix = (logp.mul(one_hot)?.sum_keepdim(1)? * -1.0)?; // (N,1,...), 0 where ignored
    let ce = |w: Option<&Tensor>| -> Result<Tensor> {
        match w {
            Some(w) => {
                let wv = w.mul(valid)?;
                let denom = wv.sum_all()?.to_scalar::<f32>()?.max(1e-6) as f64;
                ce_pix.mul(&wv)?.sum_all()? / denom
            }
            None => ce_pix.sum_all()? / nvalid,
        }
    };
    let dice = || -> Result<Tensor> {
        let p = logp.exp()?.broadcast_mul(valid)?;
        let dims: Vec<usize> = (2..p.rank()).collect();
        let mut inter = p.mul(one_hot)?;
        let mut psum = p.clone();
        let mut tsum = one_hot.clone();
        for &d in dims.iter().rev() {
            inter = inter.sum(d)?;
            psum = psum.sum(d)?;
            tsum = tsum.sum(d)?;
        }
        // Sum over the batch too: one Dice per class.
        let (inter, psum, tsum) = (inter.sum(0)?, psum.sum(0)?, tsum.sum(0)?);
        let d = ((inter * 2.0)? + 1.0)?.div(&((psum + tsum)? + 1.0)?)?;
        (d.mean_all()? * -1.0)? + 1.0
    };
    match kind {
        LossKind::CrossEntropy => ce(None),
        LossKind::WeightedCrossEntropy => ce(weights),
        LossKind::Dice => dice(),
        LossKind::CrossEntropyDice => ce(weights)? + dice()?,
        LossKind::Focal { gamma } => {
            // −(1 − p_t)^γ · log p_t, p_t the probability of the true class.
            let pt = ce_pix.neg()?.exp()?;
            let f = ((pt * -1.0)? + 1.0)?.clamp(0.0, 1.0)?.powf(gamma)?.mul(&ce_pix)?;
            let f = match weights {
                Some(w) => f.mul(w)?,
                None => f,
            };
            f.sum_all()? / nvalid
        }
    }
    .and_then(|t| t.to_dtype(DType::F32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn cross_entropy_matches_hand_computation_and_ignores() {
        let dev = Device::Cpu;
        // 1 image, 2 classes, 1×3 pixels; logits (0, ln 3) → p(class 1) = 0.75.
        let l3 = 3f32.ln();
        let logits = Var::from_vec(vec![0f32, 0., 0., l3, l3, l3], (1, 2, 1, 3), &dev).unwrap();
        let (oh, valid) = one_hot(&[1, 0, IGNORE], 1, 2, &[1, 3], &dev).unwrap();
        let l = loss(LossKind::CrossEntropy, &logits, &oh, &valid, None).unwrap().to_scalar::<f32>().unwrap();
        let want = (-(0.75f64.ln()) - 0.25f64.ln()) / 2.0;
        assert!((l as f64 - want).abs() < 1e-6, "{l} vs {want}");
        let w = Tensor::new(&[[[[3f32, 1., 1.]]]], &dev).unwrap();
        let lw =
            loss(LossKind::WeightedCrossEntropy, &logits, &oh, &valid, Some(&w)).unwrap().to_scalar::<f32>().unwrap();
        let want_w = (-3.0 * 0.75f64.ln() - 0.25f64.ln()) / 4.0;
        assert!((lw as f64 - want_w).abs() < 1e-6);
        // Focal with γ = 0 is cross-entropy.
        let lf = loss(LossKind::Focal { gamma: 0.0 }, &logits, &oh, &valid, None).unwrap().to_scalar::<f32>().unwrap();
        assert!((lf - l).abs() < 1e-6);
        // Perfect prediction: Dice loss ≈ 0.
        let big = Var::from_vec(vec![-20f32, 20., 0., 20., -20., 0.], (1, 2, 1, 3), &dev).unwrap();
        let ld = loss(LossKind::Dice, &big, &oh, &valid, None).unwrap().to_scalar::<f32>().unwrap();
        assert!(ld < 1e-3, "{ld}");
        let g = loss(LossKind::CrossEntropyDice, &logits, &oh, &valid, None).unwrap().backward().unwrap();
        let gl = g.get(&logits).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // The ignored pixel gets no gradient.
        assert_eq!(gl[2], 0.0);
        assert_eq!(gl[5], 0.0);
    }
}
