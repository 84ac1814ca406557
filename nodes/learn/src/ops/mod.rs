//! Tensor operations candle 0.11 lacks or gets wrong on the CPU, as custom ops with their own
//! backward passes:
//!
//! - [`conv`]: N-D convolution (2-D and 3-D, stride 1, per-axis zero padding) by tiled
//!   im2col + `gemm`, forward and backward. candle's own conv2d backward runs its input
//!   gradient through a naive `conv_transpose2d` loop (2–3 % of peak here) and it has no conv3d.
//! - [`pool`]: max pooling with kernel = stride (2-D, 3-D, anisotropic 1×2×2). candle's
//!   `max_pool2d` backward scales gradients by 1/(k·k); there is no `max_pool3d`.
//! - [`upsample`]: nearest-neighbour upsampling (2-D / 3-D, per-axis factors) and the k = s
//!   transposed convolution, both with gradients.
//! - [`norm`]: batch normalisation fused with ReLU, forward and backward in one pass each.
//! - [`fused`]: convolution + batch norm + ReLU as one autograd node (training).
//! - [`cat`]: channel concatenation (skip connections) with contiguous gradients.
//!
//! Each public function picks the implementation from the tensor's device: the custom ops on
//! the CPU, a composition of candle's built-in ops elsewhere (CUDA), so the same model code
//! runs on both. The compositions are tested on the CPU against the custom ops.

pub mod cat;
pub mod conv;
pub mod fused;
pub mod norm;
pub mod pool;
pub mod upsample;
pub mod winograd;

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{CpuStorage, Layout, Result};

/// Wall time spent in each custom kernel (nanoseconds), for the benchmark's profile.
pub static PROFILE: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];
/// Names of the [`PROFILE`] slots.
pub const PROFILE_NAMES: [&str; 11] = [
    "conv fwd",
    "conv bwd input",
    "conv bwd weight",
    "bn fwd",
    "bn bwd",
    "pool fwd+bwd",
    "upsample",
    "other",
    "wino kernels*",
    "wino in+gemm*",
    "wino out*",
];

/// Adds the time since `t0` to profile slot `slot`.
pub(crate) fn prof(slot: usize, t0: std::time::Instant) {
    PROFILE[slot].fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// (name, seconds) of every profile slot, and resets them.
pub fn take_profile() -> Vec<(&'static str, f64)> {
    PROFILE_NAMES.iter().zip(&PROFILE).map(|(n, a)| (*n, a.swap(0, Ordering::Relaxed) as f64 * 1e-9)).collect()
}

/// The f32 values of a CPU storage in the layout's logical (row-major) order; borrows when the
/// layout is already contiguous.
pub(crate) fn f32_contiguous<'a>(s: &'a CpuStorage, l: &Layout) -> Result<std::borrow::Cow<'a, [f32]>> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("petri-learn ops work on f32 tensors only, got another dtype"),
    };
    let n = l.shape().elem_count();
    if l.is_contiguous() {
        let o = l.start_offset();
        return Ok(std::borrow::Cow::Borrowed(&data[o..o + n]));
    }
    // Strided copy with an odometer over the dimensions.
    let dims = l.dims();
    let stride = l.stride();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; dims.len()];
    let mut off = l.start_offset();
    for _ in 0..n {
        out.push(data[off]);
        for a in (0..dims.len()).rev() {
            idx[a] += 1;
            off += stride[a];
            if idx[a] < dims[a] {
                break;
            }
            off -= stride[a] * dims[a];
            idx[a] = 0;
        }
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// A raw pointer that may cross threads: each parallel task writes a disjoint part of the
/// buffer it points into (stated at every use).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Spatial dims of an (N, C, spatial...) tensor padded to three (D, H, W), 2-D as D = 1.
pub(crate) fn spatial3(dims: &[usize]) -> Result<[usize; 3]> {
    match dims.len() {
        4 => Ok([1, dims[2], dims[3]]),
        5 => Ok([dims[2], dims[3], dims[4]]),
        r => candle_core::bail!("expected a 4-D (N,C,H,W) or 5-D (N,C,D,H,W) tensor, got rank {r}"),
    }
}

/// Deterministic test inputs shared by the kernels' tests.
#[cfg(test)]
pub(crate) mod test_data {
    /// `n` values in [−1, 1) from a fixed linear congruential sequence.
    pub(crate) fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }
}
