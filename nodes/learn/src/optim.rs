//! Optimisers (Adam, AdamW, SGD with momentum) and learning-rate schedules, with state that
//! can be saved in a checkpoint and restored exactly.
//!
//! Hand-written rather than candle-nn's `AdamW`: its moments are private (a resumed run could
//! not continue bit for bit), and candle-nn has no SGD with momentum (`candle-optimisers` pins
//! an older candle).

use std::collections::{BTreeMap, HashMap};

use candle_core::{Result, Tensor, Var, backprop::GradStore};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    AdamW,
    /// SGD with (heavy-ball) momentum, weight decay as L2.
    Sgd,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    Constant,
    /// Multiply the rate by `factor` every `every` epochs (DeepMIB's piecewise schedule).
    Step {
        every: usize,
        factor: f64,
    },
    /// Cosine decay from the base rate to `min_lr` over the run.
    Cosine {
        min_lr: f64,
    },
}

impl Schedule {
    /// The rate for `epoch` (0-based) of `epochs`.
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, factor } => base * factor.powi((epoch / every.max(1)) as i32),
            Schedule::Cosine { min_lr } => {
                let t = if epochs <= 1 { 0.0 } else { epoch as f64 / (epochs - 1) as f64 };
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// An optimiser over named variables (sorted by name, so the update order is fixed).
pub struct Optimizer {
    pub cfg: OptimizerConfig,
    vars: Vec<(String, Var)>,
    /// First moment (Adam) or velocity (SGD) per variable.
    m: Vec<Vec<f32>>,
    /// Second moment (Adam).
    v: Vec<Vec<f32>>,
    pub step: u64,
    pub lr: f64,
}

impl Optimizer {
    pub fn new(cfg: OptimizerConfig, vars: BTreeMap<String, Var>) -> Optimizer {
        let vars: Vec<(String, Var)> = vars.into_iter().collect();
        let m = vars.iter().map(|(_, v)| vec![0f32; v.elem_count()]).collect();
        let v = if cfg.kind == OptimizerKind::Sgd {
            vec![Vec::new(); vars.len()]
        } else {
            vars.iter().map(|(_, v)| vec![0f32; v.elem_count()]).collect()
        };
        let lr = cfg.lr;
        Optimizer { cfg, vars, m, v, step: 0, lr }
    }

    /// One update from the gradients of a loss.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.cfg.clone();
        let lr = self.lr as f32;
        let t = self.step as i32;
        let (b1, b2) = (c.beta1 as f32, c.beta2 as f32);
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            let mut p = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let wd = c.weight_decay as f32;
            match c.kind {
                OptimizerKind::Adam | OptimizerKind::AdamW => {
                    let (m, v) = (&mut self.m[i], &mut self.v[i]);
                    let step = (self.lr / bc1) as f32;
                    let sbc2 = bc2.sqrt() as f32;
                    let eps = c.eps as f32;
                    let adamw = c.kind == OptimizerKind::AdamW;
                    p.par_iter_mut().zip(m.par_iter_mut()).zip(v.par_iter_mut()).zip(g.par_iter()).for_each(
                        |(((p, m), v), &g)| {
                            let g = if adamw { g } else { g + wd * *p };
                            *m = b1 * *m + (1.0 - b1) * g;
                            *v = b2 * *v + (1.0 - b2) * g * g;
                            if adamw {
                                *p *= 1.0 - lr * wd;
                            }
                            *p -= step * *m / ((*v).sqrt() / sbc2 + eps);
                        },
                    );
                }
                OptimizerKind::Sgd => {
                    let m = &mut self.m[i];
                    let mom = c.momentum as f32;
                    let first = self.step == 1;
                    p.par_iter_mut().zip(m.par_iter_mut()).zip(g.par_iter()).for_each(|((p, m), &g)| {
                        let g = g + wd * *p;
                        *m = if first { g } else { mom * *m + g };
                        *p -= lr * *m;
                    });
                }
            }
            var.set(&Tensor::from_vec(p, var.shape(), var.device())?)?;
        }
        Ok(())
    }

    /// The optimiser's moments as named tensors (for a checkpoint).
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, (name, var)) in self.vars.iter().enumerate() {
            out.insert(
                format!("optim.m.{name}"),
                Tensor::from_slice(&self.m[i], var.shape(), &candle_core::Device::Cpu)?,
            );
            if !self.v[i].is_empty() {
                out.insert(
                    format!("optim.v.{name}"),
                    Tensor::from_slice(&self.v[i], var.shape(), &candle_core::Device::Cpu)?,
                );
            }
        }
        Ok(out)
    }

    /// Restores moments saved by [`Optimizer::state_tensors`].
    pub fn load_state(&mut self, t: &HashMap<String, Tensor>, step: u64, lr: f64) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let m = t.get(&format!("optim.m.{name}"));
            let Some(m) = m else { candle_core::bail!("checkpoint lacks optimiser state for '{name}'") };
            if m.elem_count() != var.elem_count() {
                candle_core::bail!("checkpoint optimiser state for '{name}' has the wrong size");
            }
            self.m[i] = m.flatten_all()?.to_vec1::<f32>()?;
            if !self.v[i].is_empty() {
                let Some(v) = t.get(&format!("optim.v.{name}")) else {
                    candle_core::bail!("checkpoint lacks optimiser state for '{name}'")
                };
                self.v[i] = v.flatten_all()?.to_vec1::<f32>()?;
            }
        }
        self.step = step;
        self.lr = lr;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedules() {
        let s = Schedule::Step { every: 2, factor: 0.5 };
        assert_eq!(s.lr(1.0, 0, 10), 1.0);
        assert_eq!(s.lr(1.0, 3, 10), 0.5);
        assert_eq!(s.lr(1.0, 4, 10), 0.25);
        let c = Schedule::Cosine { min_lr: 0.0 };
        assert!((c.lr(1.0, 0, 11) - 1.0).abs() < 1e-12);
        assert!((c.lr(1.0, 5, 11) - 0.5).abs() < 1e-12);
        assert!(c.lr(1.0, 10, 11).abs() < 1e-12);
    }

    /// One Adam step moves each weight by ≈ lr against its gradient's sign; SGD by lr·g.
    #[test]
    fn optimisers_minimise_a_quadratic() {
        for kind in [OptimizerKind::Adam, OptimizerKind::AdamW, OptimizerKind::Sgd] {
            let x = Var::from_vec(vec![3f32, -2.0], 2, &Device::Cpu).unwrap();
            let cfg = OptimizerConfig {
                kind,
                lr: 0.1,
                weight_decay: 0.0,
                momentum: 0.9,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            };
            let mut o = Optimizer::new(cfg, BTreeMap::from([("x".to_string(), x.clone())]));
            let loss0 = x.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            for i in 0..200 {
                let l = x.sqr().unwrap().sum_all().unwrap();
                o.step(&l.backward().unwrap()).unwrap();
                if i == 0 && kind != OptimizerKind::Sgd {
                    let v = x.to_vec1::<f32>().unwrap();
                    assert!((v[0] - 2.9).abs() < 1e-4 && (v[1] + 1.9).abs() < 1e-4, "{v:?}");
                }
            }
            let loss = x.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(loss < loss0 * 1e-2, "{kind:?}: {loss}");
        }
    }
}
