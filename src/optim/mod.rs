//! Optimizers: full-batch GD, SGD with heavy-ball or Nesterov momentum, Adam,
//! AdamW and RMSProp, with weight decay and a learning-rate schedule. The update
//! arithmetic is a fused backend op; this module owns the state buffers and
//! the per-parameter learning rate (base lr x schedule x the
//! parametrization's per-layer scale, per ensemble member).

pub mod schedule;

use crate::backend::{AdamHyper, Backend, SgdHyper};
use crate::error::{Error, Result};
use crate::nn::parametrization::OptimFamily;
use crate::tensor::{join_members, split_members, Tensor};
pub use schedule::Schedule;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Gradient descent; full batch unless a batch size is set.
    Gd,
    Sgd,
    Adam,
    AdamW,
    /// PyTorch's `RMSprop` without momentum or centering:
    /// `nu = alpha nu + (1 - alpha) g^2`, `w -= lr g / (sqrt(nu) + eps)`.
    RmsProp,
}

impl OptimizerKind {
    pub const NAMES: [&'static str; 5] = ["gd", "sgd", "adam", "adamw", "rmsprop"];

    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Gd => "gd",
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
            OptimizerKind::RmsProp => "rmsprop",
        }
    }

    pub fn parse(key: &str, s: &str) -> Result<Self> {
        match s {
            "gd" => Ok(OptimizerKind::Gd),
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            "rmsprop" => Ok(OptimizerKind::RmsProp),
            _ => Err(Error::config(
                key,
                format!(
                    "unknown optimizer {s:?}; expected one of {}",
                    Self::NAMES.join(", ")
                ),
            )),
        }
    }

    pub fn family(self) -> OptimFamily {
        match self {
            OptimizerKind::Gd | OptimizerKind::Sgd => OptimFamily::Sgd,
            OptimizerKind::Adam | OptimizerKind::AdamW | OptimizerKind::RmsProp => {
                OptimFamily::Adam
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct OptimHyper {
    pub kind: OptimizerKind,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub beta1: f64,
    /// Adam's second-moment decay; RMSProp's `alpha` (the same average).
    pub beta2: f64,
    pub eps: f64,
}

impl OptimHyper {
    pub fn new(kind: OptimizerKind) -> Self {
        OptimHyper {
            kind,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            beta1: 0.9,
            // PyTorch's defaults: Adam's beta2, RMSprop's alpha.
            beta2: if kind == OptimizerKind::RmsProp {
                0.99
            } else {
                0.999
            },
            eps: 1e-8,
        }
    }
}

pub struct Optimizer<B: Backend> {
    pub hyper: OptimHyper,
    pub schedule: Schedule,
    /// Base learning rate of each ensemble member.
    pub base_lr: Vec<f64>,
    lr_scales: Vec<f64>,
    state: Vec<(Tensor<B>, Tensor<B>)>,
    steps_done: u64,
}

impl<B: Backend> Optimizer<B> {
    /// State for `params`, whose learning rates are scaled by `lr_scales`
    /// (one per parameter tensor).
    pub fn new(
        be: &B,
        hyper: OptimHyper,
        schedule: Schedule,
        base_lr: Vec<f64>,
        params: &[&Tensor<B>],
        lr_scales: Vec<f64>,
    ) -> Result<Self> {
        if lr_scales.len() != params.len() {
            return Err(Error::msg(
                "one learning-rate scale per parameter tensor is needed",
            ));
        }
        let state = params
            .iter()
            .map(|p| -> Result<_> {
                Ok(match hyper.kind {
                    OptimizerKind::Adam | OptimizerKind::AdamW | OptimizerKind::RmsProp => {
                        (be.zeros(p.shape())?, be.zeros(p.shape())?)
                    }
                    _ if hyper.momentum != 0.0 => (be.zeros(p.shape())?, be.zeros(&[0])?),
                    _ => (be.zeros(&[0])?, be.zeros(&[0])?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Optimizer {
            hyper,
            schedule,
            base_lr,
            lr_scales,
            state,
            steps_done: 0,
        })
    }

    pub fn steps_done(&self) -> u64 {
        self.steps_done
    }

    /// Continue as if `steps` updates had been made (restarting from a
    /// checkpoint whose state buffers were put back with `state_mut`).
    pub fn set_steps_done(&mut self, steps: u64) {
        self.steps_done = steps;
    }

    /// Per parameter, the state buffers: the momentum buffer, or Adam's first
    /// and second moments; unused buffers are empty tensors.
    pub fn state(&self) -> &[(Tensor<B>, Tensor<B>)] {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut [(Tensor<B>, Tensor<B>)] {
        &mut self.state
    }

    /// The learning rate of each member at the next step, before per-layer
    /// scales.
    pub fn current_lr(&self) -> Vec<f64> {
        let f = self.schedule.factor(self.steps_done);
        self.base_lr.iter().map(|lr| lr * f).collect()
    }

    /// Every ensemble member's optimizer (its learning rate, its state, the
    /// steps done), for members that train as separate models
    /// (`Model::split_members`).
    pub fn split_members(&self, be: &B) -> Result<Vec<Optimizer<B>>> {
        let e = self.base_lr.len();
        let mut states = vec![Vec::with_capacity(self.state.len()); e];
        for (s1, s2) in &self.state {
            let firsts = split_members(be, s1, e)?;
            for (m, (a, b)) in firsts
                .into_iter()
                .zip(split_members(be, s2, e)?)
                .enumerate()
            {
                states[m].push((a, b));
            }
        }
        Ok(states
            .into_iter()
            .zip(&self.base_lr)
            .map(|(state, &lr)| Optimizer {
                hyper: self.hyper.clone(),
                schedule: self.schedule.clone(),
                base_lr: vec![lr],
                lr_scales: self.lr_scales.clone(),
                state,
                steps_done: self.steps_done,
            })
            .collect())
    }

    /// Put back the members' state and step count after `split_members`.
    pub fn join_members(&mut self, be: &B, members: &[Optimizer<B>]) -> Result<()> {
        if members.len() != self.base_lr.len() {
            return Err(Error::msg(format!(
                "internal: joining {} optimizers into an ensemble of {}",
                members.len(),
                self.base_lr.len()
            )));
        }
        for (i, (s1, s2)) in self.state.iter_mut().enumerate() {
            let firsts: Vec<&Tensor<B>> = members.iter().map(|m| &m.state[i].0).collect();
            let seconds: Vec<&Tensor<B>> = members.iter().map(|m| &m.state[i].1).collect();
            *s1 = join_members(be, &firsts)?;
            *s2 = join_members(be, &seconds)?;
        }
        // A member that left the ensemble (diverged) stops stepping; the rest
        // agree.
        self.steps_done = members.iter().map(|m| m.steps_done).max().unwrap_or(0);
        Ok(())
    }

    /// Apply one update to `params` with gradients `grads` (same order).
    pub fn step(&mut self, be: &B, params: Vec<&mut Tensor<B>>, grads: &[Tensor<B>]) -> Result<()> {
        if params.len() != grads.len() || params.len() != self.state.len() {
            return Err(Error::msg(
                "optimizer: parameters, gradients and state differ in number",
            ));
        }
        let lr_now = self.current_lr();
        self.steps_done += 1;
        for (((p, g), (s1, s2)), scale) in params
            .into_iter()
            .zip(grads)
            .zip(self.state.iter_mut())
            .zip(&self.lr_scales)
        {
            let lr: Vec<f64> = lr_now.iter().map(|l| l * scale).collect();
            match self.hyper.kind {
                OptimizerKind::Gd | OptimizerKind::Sgd => {
                    let hp = SgdHyper {
                        lr: &lr,
                        momentum: self.hyper.momentum,
                        nesterov: self.hyper.nesterov,
                        weight_decay: self.hyper.weight_decay,
                    };
                    be.sgd_update(p, g, s1, &hp)?;
                }
                OptimizerKind::Adam | OptimizerKind::AdamW => {
                    let hp = AdamHyper {
                        lr: &lr,
                        beta1: self.hyper.beta1,
                        beta2: self.hyper.beta2,
                        eps: self.hyper.eps,
                        weight_decay: self.hyper.weight_decay,
                        decoupled: self.hyper.kind == OptimizerKind::AdamW,
                        step: self.steps_done,
                    };
                    be.adam_update(p, g, s1, s2, &hp)?;
                }
                OptimizerKind::RmsProp => {
                    // Adam's kernel with beta1 = 0 (the first moment is the
                    // gradient itself) and a step count whose bias
                    // corrections are exactly 1 (0^n and alpha^n underflow
                    // to 0 for n = 2^31 - 1): PyTorch's RMSprop update, with
                    // no new kernel on any backend. Its first buffer holds
                    // the last gradient.
                    let hp = AdamHyper {
                        lr: &lr,
                        beta1: 0.0,
                        beta2: self.hyper.beta2,
                        eps: self.hyper.eps,
                        weight_decay: self.hyper.weight_decay,
                        decoupled: false,
                        step: i32::MAX as u64,
                    };
                    be.adam_update(p, g, s1, s2, &hp)?;
                }
            }
        }
        Ok(())
    }
}
