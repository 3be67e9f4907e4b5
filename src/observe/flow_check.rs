//! Config-time refusals of `[observe.central_flow]`: the flow is derived
//! for full-batch GD and RMSProp (no momentum) at a constant learning rate,
//! the same for every parameter, without weight decay. Anything else is a
//! config error naming the key, before training starts.

use super::flow_optimizer::FlowOptimizer;
use crate::config::{Config, Resolved};
use crate::error::{Error, Result};
use crate::optim::{OptimizerKind, Schedule};

/// What the configured central flow follows, or None when it is off.
/// `full_batch`: whether every step trains on the whole training set;
/// `lr_scales`: the parametrization's per-parameter learning-rate factors.
pub fn central_flow_optimizer(
    cfg: &Config,
    res: &Resolved,
    full_batch: bool,
    lr_scales: &[f64],
) -> Result<Option<FlowOptimizer>> {
    if cfg.observe.central_flow.is_none() {
        return Ok(None);
    }
    let o = &cfg.optim;
    let refuse =
        |key: &str, why: String| Err(Error::config(key, format!("observe.central_flow: {why}")));
    let opt =
        match res.optim.kind {
            OptimizerKind::Gd if o.momentum != 0.0 => {
                return refuse(
                    "optim.momentum",
                    format!(
                "the central flow is derived for plain GD and RMSProp; momentum {} is not covered",
                o.momentum
            ),
                )
            }
            OptimizerKind::Gd => FlowOptimizer::Gd { eta: o.lr },
            OptimizerKind::RmsProp if res.optim.beta2 == 0.0 => return refuse(
                "optim.alpha",
                "nu's ODE has rate (1 - alpha) / alpha; alpha = 0 (nu = g^2 each step) has no flow"
                    .into(),
            ),
            OptimizerKind::RmsProp => FlowOptimizer::RmsProp {
                lr: o.lr,
                alpha: res.optim.beta2,
                eps: res.optim.eps,
            },
            other => {
                return refuse(
                    "optim.name",
                    format!(
                        "the central flow is derived for gd and rmsprop, not {}",
                        other.name()
                    ),
                )
            }
        };
    if !full_batch {
        return refuse(
            "train.batch_size",
            format!(
                "the flow follows full-batch training; batch_size {} samples mini-batches \
                 (set it to 0)",
                cfg.train.batch_size
            ),
        );
    }
    if o.weight_decay != 0.0 {
        return refuse(
            "optim.weight_decay",
            format!(
                "the flow has no weight decay term; set it to 0, got {}",
                o.weight_decay
            ),
        );
    }
    if res.schedule != Schedule::Constant {
        return refuse(
            "optim.schedule",
            "the flow holds the learning rate constant; use schedule = \"constant\" with \
             warmup_steps = 0"
                .into(),
        );
    }
    if let Some(s) = lr_scales.iter().find(|&&s| s != 1.0) {
        return refuse(
            "model.parametrization",
            format!(
                "{} scales some layers' learning rates (by {s}); the flow takes one rate for \
                 every parameter (use sp)",
                cfg.model.parametrization
            ),
        );
    }
    Ok(Some(opt))
}
