//! `learn.predict`: applies a trained network to whole images of any size — overlapping tiles
//! blended with linear ramps (no seams; DeepMIB's overlap option), optional test-time
//! augmentation (the 8 flips/rotations of the Y–X plane in 2-D, the 8 axis flips in 3-D,
//! averaged; as MIA), class probabilities (f32) and their argmax labels. A 2-D network runs
//! slice by slice over a 3-D stack; every time point is predicted in one run; the input
//! normalisation stored with the model is reapplied.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use petri_api::{
    Axis, Buffer, Inputs, Node, NodeCtx, NodeError, NodeSpec, Outputs, ParamSpec, Params, PortType, Stack, Value,
};

use crate::dataset::normalise;
use crate::model::{Net, net_input};
use crate::train::node_device;

#[derive(Clone, Debug)]
pub struct PredictOptions {
    /// Network input tile (D, H, W); `None` = the training patch size (at least 256² / 64³
    /// where the image is that large, for speed).
    pub tile: Option<[usize; 3]>,
    /// Fraction of a tile shared with its neighbour.
    pub overlap: f64,
    pub tta: bool,
    pub batch: usize,
}

fn cerr(e: candle_core::Error) -> NodeError {
    NodeError::failed(e.to_string())
}

/// Reflect index into 0..n (repeatedly, for tiles larger than the image).
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let p = 2 * (n as isize - 1);
    let m = i.rem_euclid(p);
    (if m < n as isize { m } else { p - m }) as usize
}

/// D4 (2-D) or flip (3-D) transform number `k` of a (C, D, H, W) block; `inverse` undoes it.
fn transform(v: &[f32], c: usize, dims: [usize; 3], k: usize, three_d: bool, inverse: bool) -> (Vec<f32>, [usize; 3]) {
    let [d, h, w] = dims;
    let (fz, fy, fx, tr) =
        if three_d { (k & 4 != 0, k & 2 != 0, k & 1 != 0, false) } else { (false, k & 2 != 0, k & 1 != 0, k & 4 != 0) };
    // Forward: transpose (if any) then flips; inverse: flips then transpose.
    let flip = |v: &[f32], dims: [usize; 3]| -> Vec<f32> {
        let [d, h, w] = dims;
        let mut out = vec![0f32; v.len()];
        for ch in 0..c {
            for z in 0..d {
                for y in 0..h {
                    for x in 0..w {
                        let (sz, sy, sx) = (
                            if fz { d - 1 - z } else { z },
                            if fy { h - 1 - y } else { y },
                            if fx { w - 1 - x } else { x },
                        );
                        out[((ch * d + z) * h + y) * w + x] = v[((ch * d + sz) * h + sy) * w + sx];
                    }
                }
            }
        }
        out
    };
    let transpose = |v: &[f32], dims: [usize; 3]| -> (Vec<f32>, [usize; 3]) {
        let [d, h, w] = dims;
        let mut out = vec![0f32; v.len()];
        for ch in 0..c {
            for z in 0..d {
                for y in 0..h {
                    for x in 0..w {
                        out[((ch * d + z) * w + x) * h + y] = v[((ch * d + z) * h + y) * w + x];
                    }
                }
            }
        }
        (out, [d, w, h])
    };
    if !inverse {
        let (v, dims) = if tr { transpose(v, [d, h, w]) } else { (v.to_vec(), [d, h, w]) };
        (flip(&v, dims), dims)
    } else {
        let v = flip(v, [d, h, w]);
        if tr { transpose(&v, [d, h, w]) } else { (v, [d, h, w]) }
    }
}

/// Class probabilities (K × D·H·W) of one normalised volume (C × D·H·W).
pub fn predict_volume(
    net: &Net,
    img: &[f32],
    c: usize,
    dims: [usize; 3],
    o: &PredictOptions,
    dev: &Device,
    ctx: &NodeCtx,
) -> Result<Vec<f32>, NodeError> {
    let arch = &net.cfg.architecture;
    let three_d = arch.three_d();
    let k = arch.classes;
    // A 2-D network on a 3-D stack: slice by slice.
    if !three_d && dims[0] > 1 {
        let pv = dims[1] * dims[2];
        let vol = dims[0] * pv;
        let mut out = vec![0f32; k * vol];
        for z in 0..dims[0] {
            let mut sl = Vec::with_capacity(c * pv);
            for ch in 0..c {
                sl.extend_from_slice(&img[ch * vol + z * pv..ch * vol + (z + 1) * pv]);
            }
            let p = predict_volume(net, &sl, c, [1, dims[1], dims[2]], o, dev, ctx)?;
            for kk in 0..k {
                out[kk * vol + z * pv..kk * vol + (z + 1) * pv].copy_from_slice(&p[kk * pv..(kk + 1) * pv]);
            }
        }
        return Ok(out);
    }
    if three_d && dims[0] == 1 {
        return Err(NodeError::input("image", "this is a 3-D network but the image is 2-D (one Z slice)"));
    }
    // Tile geometry.
    let want = o.tile.or(net.cfg.patch_size).unwrap_or(if three_d { [64, 64, 64] } else { [1, 256, 256] });
    let mut want = want;
    if !three_d {
        want[0] = 1;
    }
    // Larger tiles are faster (less overlap); but never much larger than the image.
    let min_fast = if three_d { [64, 96, 96] } else { [1, 512, 512] };
    for a in 0..3 {
        if o.tile.is_none() {
            want[a] = want[a].max(min_fast[a].min(dims[a]));
        }
    }
    let tin = arch
        .input_size_for(want)
        .ok_or_else(|| NodeError::param("tile_size", "no valid network input near this tile size"))?;
    let tout =
        arch.output_size(tin).ok_or_else(|| NodeError::param("tile_size", "tile size invalid for this network"))?;
    let margin = [0, 1, 2].map(|a| (tin[a] - tout[a]) / 2);
    let starts = |n: usize, t: usize| -> Vec<usize> {
        if n <= t {
            return vec![0];
        }
        let step = ((t as f64 * (1.0 - o.overlap)).round() as usize).clamp(1, t);
        let mut v: Vec<usize> = (0..n - t).step_by(step).collect();
        v.push(n - t);
        v.dedup();
        v
    };
    let (sz, sy, sx) = (starts(dims[0], tout[0]), starts(dims[1], tout[1]), starts(dims[2], tout[2]));
    let mut tiles = Vec::new();
    for &z in &sz {
        for &y in &sy {
            for &x in &sx {
                tiles.push([z, y, x]);
            }
        }
    }
    // Blending ramp per axis: weight rises linearly over the overlap width.
    let ramp = |t: usize, n: usize| -> Vec<f32> {
        let r = ((t as f64 * o.overlap).round() as usize).max(1);
        (0..t)
            .map(|i| (((i + 1).min(t - i)) as f32 / r as f32).min(1.0))
            .map(|v| if n <= t { 1.0 } else { v })
            .collect()
    };
    let (rz, ry, rx) = (ramp(tout[0], dims[0]), ramp(tout[1], dims[1]), ramp(tout[2], dims[2]));
    let vol = dims[0] * dims[1] * dims[2];
    let mut acc = vec![0f32; k * vol];
    let mut wsum = vec![0f32; vol];
    let tin_v = tin[0] * tin[1] * tin[2];
    let tout_v = tout[0] * tout[1] * tout[2];
    let ntta = if o.tta { 8 } else { 1 };
    let square = tin[1] == tin[2];
    let bs = o.batch.max(1);
    let mut done = 0;
    for chunk in tiles.chunks(bs) {
        ctx.check_cancel()?;
        // Gather input tiles (reflect-padded).
        let inputs: Vec<Vec<f32>> = chunk
            .iter()
            .map(|s| {
                let mut t = vec![0f32; c * tin_v];
                for ch in 0..c {
                    for z in 0..tin[0] {
                        let iz = reflect(s[0] as isize + z as isize - margin[0] as isize, dims[0]);
                        for y in 0..tin[1] {
                            let iy = reflect(s[1] as isize + y as isize - margin[1] as isize, dims[1]);
                            let row = &img[ch * vol + (iz * dims[1] + iy) * dims[2]..][..dims[2]];
                            let dst = &mut t[((ch * tin[0] + z) * tin[1] + y) * tin[2]..][..tin[2]];
                            for (x, d) in dst.iter_mut().enumerate() {
                                *d = row[reflect(s[2] as isize + x as isize - margin[2] as isize, dims[2])];
                            }
                        }
                    }
                }
                t
            })
            .collect();
        let mut probs = vec![vec![0f32; k * tout_v]; chunk.len()];
        for tt in 0..ntta {
            if !three_d && tt & 4 != 0 && !square {
                continue;
            }
            let mut xs = Vec::with_capacity(chunk.len() * c * tin_v);
            for t in &inputs {
                xs.extend(transform(t, c, tin, tt, three_d, false).0);
            }
            let shape = if three_d {
                vec![chunk.len(), c, tin[0], tin[1], tin[2]]
            } else {
                vec![chunk.len(), c, tin[1], tin[2]]
            };
            let x = Tensor::from_vec(xs, shape, dev).map_err(cerr)?;
            let logits = net.unet.forward_t(&x, false).map_err(cerr)?;
            let p = candle_nn::ops::softmax(&logits, 1)
                .and_then(|p| p.flatten_all())
                .and_then(|p| p.to_vec1::<f32>())
                .map_err(cerr)?;
            // Output tile dims under the transform (transposed tiles swap H and W).
            let odims = if !three_d && tt & 4 != 0 { [tout[0], tout[2], tout[1]] } else { tout };
            for (b, pr) in probs.iter_mut().enumerate() {
                let back = transform(&p[b * k * tout_v..(b + 1) * k * tout_v], k, odims, tt, three_d, true).0;
                pr.iter_mut().zip(&back).for_each(|(a, v)| *a += v);
            }
        }
        let used = if !three_d && !square { 4 } else { ntta } as f32;
        for (s, pr) in chunk.iter().zip(&probs) {
            for z in 0..tout[0] {
                let gz = s[0] + z;
                if gz >= dims[0] {
                    continue;
                }
                for y in 0..tout[1] {
                    let gy = s[1] + y;
                    if gy >= dims[1] {
                        continue;
                    }
                    for x in 0..tout[2] {
                        let gx = s[2] + x;
                        if gx >= dims[2] {
                            continue;
                        }
                        let w = rz[z] * ry[y] * rx[x];
                        let gi = (gz * dims[1] + gy) * dims[2] + gx;
                        let ti = (z * tout[1] + y) * tout[2] + x;
                        for kk in 0..k {
                            acc[kk * vol + gi] += w * pr[kk * tout_v + ti] / used;
                        }
                        wsum[gi] += w;
                    }
                }
            }
        }
        done += chunk.len();
        ctx.progress(done as f64 / tiles.len() as f64, format!("tile {done}/{}", tiles.len()));
    }
    for kk in 0..k {
        for (a, &w) in acc[kk * vol..(kk + 1) * vol].iter_mut().zip(&wsum) {
            *a /= w.max(1e-12);
        }
    }
    Ok(acc)
}

/// Probabilities (T, K, Z, Y, X) and argmax labels of a stack.
pub fn predict(
    net: &Net,
    image: &Stack,
    o: &PredictOptions,
    dev: &Device,
    ctx: &NodeCtx,
) -> Result<(Stack, Stack), NodeError> {
    let arch = &net.cfg.architecture;
    let c = image.c();
    if c != arch.in_channels {
        return Err(NodeError::input(
            "image",
            format!("the network takes {} channel(s) but the image has {c}", arch.in_channels),
        ));
    }
    let k = arch.classes;
    let dims = [image.z(), image.y(), image.x()];
    let vol = image.volume_len();
    let px = image.buffer().to_f32();
    let mut probs = Vec::with_capacity(image.t() * k * vol);
    let mut labels = Vec::with_capacity(image.t() * vol);
    for t in 0..image.t() {
        let v = &px[t * c * vol..(t + 1) * c * vol];
        let norm = normalise(v, c, &net.cfg.normalisation);
        let p = predict_volume(net, &norm, c, dims, o, dev, ctx)?;
        for i in 0..vol {
            let mut best = 0;
            for kk in 1..k {
                if p[kk * vol + i] > p[best * vol + i] {
                    best = kk;
                }
            }
            labels.push(best as u32);
        }
        probs.extend(p);
    }
    let mut axes = vec![Axis::C];
    if image.t() > 1 {
        axes.push(Axis::T);
    }
    if dims[0] > 1 {
        axes.push(Axis::Z);
    }
    let [tn, _, zn, yn, xn] = image.dims();
    let ps = Stack::new([tn, k, zn, yn, xn], &axes, Buffer::F32(Arc::new(probs)))
        .map_err(|e| NodeError::failed(e.to_string()))?
        .with_voxel_size(image.voxel_size().clone())
        .with_channel_names(net.cfg.class_names.clone())
        .map_err(|e| NodeError::failed(e.to_string()))?;
    let laxes: Vec<Axis> = axes.into_iter().filter(|a| *a != Axis::C).collect();
    let ls = Stack::new([tn, 1, zn, yn, xn], &laxes, Buffer::U32(Arc::new(labels)))
        .map_err(|e| NodeError::failed(e.to_string()))?
        .with_voxel_size(image.voxel_size().clone());
    Ok((ps, ls))
}

pub struct Predict;

impl Node for Predict {
    fn spec(&self) -> NodeSpec {
        NodeSpec::new(
            "learn.predict",
            1,
            "learn",
            "Segments images with a trained network, tile by tile without seams.",
        )
        .input("model", PortType::Model, "A trained network.")
        .input("image", PortType::Image, "Image(s) to segment; every time point is processed.")
        .output("probabilities", PortType::Image, "Probability of every class per pixel (f32, classes as channels).")
        .output("labels", PortType::Labels, "The most probable class per pixel (0 = background).")
        .param(
            ParamSpec::floats(
                "tile_size",
                0.0,
                3,
                "Tile size fed to the network (one number or Z, Y, X; 0 = automatic).",
            )
            .min(0.0),
        )
        .param(
            ParamSpec::float(
                "overlap",
                0.25,
                "Fraction of each tile shared with its neighbours, blended to avoid seams.",
            )
            .range(0.0, 0.75),
        )
        .param(ParamSpec::bool(
            "test_time_augmentation",
            false,
            "Average the predictions of flipped and rotated copies (8× slower, usually a little more accurate).",
        ))
        .param(ParamSpec::int("batch_size", 2, "Tiles processed together.").range(1.0, 256.0))
        .param(ParamSpec::string(
            "device",
            "",
            "Run on this device instead of the run's (cpu, cuda, cuda:N); empty = the run's.",
        ))
    }

    fn run(&self, ctx: &NodeCtx, p: &Params, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let dev = node_device(ctx, p)?;
        let Some(Value::Model(m)) = inputs.get("model") else {
            return Err(NodeError::input("model", "not connected"));
        };
        let net = net_input(m, &dev, "model")?;
        let image = inputs.image("image")?;
        let ts = p.floats("tile_size")?;
        let tile = if ts.iter().all(|&v| v <= 0.0) {
            None
        } else {
            let v: Vec<usize> = ts.iter().map(|&v| v.max(1.0) as usize).collect();
            Some(match v.len() {
                1 => [v[0]; 3],
                2 => [1, v[0], v[1]],
                _ => [v[0], v[1], v[2]],
            })
        };
        let o = PredictOptions {
            tile,
            overlap: p.f64("overlap")?,
            tta: p.bool("test_time_augmentation")?,
            batch: p.usize("batch_size")?,
        };
        let (probs, labels) = predict(&net, image, &o, &dev, ctx)?;
        Ok(Outputs::new().with("probabilities", Value::Image(probs)).with("labels", Value::Labels(labels)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_invert() {
        let v: Vec<f32> = (0..2 * 3 * 4 * 4).map(|i| i as f32).collect();
        for three_d in [false, true] {
            for k in 0..8 {
                let (t, d) = transform(&v, 2, [3, 4, 4], k, three_d, false);
                let (b, _) = transform(&t, 2, d, k, three_d, true);
                assert_eq!(b, v, "k {k} 3d {three_d}");
            }
        }
        assert_eq!(reflect(-1, 5), 1);
        assert_eq!(reflect(5, 5), 3);
        assert_eq!(reflect(9, 5), 1);
    }
}
