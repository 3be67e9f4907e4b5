//! What a central flow follows: full-batch GD at learning rate eta, or
//! RMSProp (PyTorch's, no momentum: `nu = alpha nu + (1 - alpha) g^2`,
//! `w -= lr g / (sqrt(nu) + eps)`). Both are preconditioned GD,
//! `w -= P^{-1} g`, with `P = I / eta` for GD and the diagonal
//! `P = (sqrt(nu) + eps) / lr` for RMSProp, stable while the top eigenvalue
//! of the preconditioned Hessian `P^{-1/2} H P^{-1/2}` is below 2. The flow
//! works in the preconditioned coordinates, with `d = P^{-1/2}` (a vector:
//! the diagonal).
//!
//! RMSProp's nu follows its own ODE (Cohen, Damian et al., arXiv:2410.24206,
//! the RMSProp section): the running average of g^2, whose time average
//! at the edge includes the oscillation's share, `E[g^2] = g^2 + diag(H
//! Sigma H)`:
//!
//! `dnu/dt = (1 - alpha) / alpha (g^2 + diag(H Sigma H) - nu)`.
//!
//! The factor is `(1 - alpha) / alpha`, not `1 - alpha`, because the nu an
//! update uses already holds that step's gradient: `nu_t - nu_{t-1} =
//! (1 - alpha) / alpha (g_t^2 - nu_t)` exactly.
//!
//! It starts where PyTorch's first update stands, `nu = (1 - alpha)
//! g(w_0)^2` (PyTorch averages into nu = 0 before its first step).

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub enum FlowOptimizer {
    Gd { eta: f64 },
    RmsProp { lr: f64, alpha: f64, eps: f64 },
}

impl FlowOptimizer {
    pub fn name(&self) -> &'static str {
        match self {
            FlowOptimizer::Gd { .. } => "gd",
            FlowOptimizer::RmsProp { .. } => "rmsprop",
        }
    }

    /// The edge of stability of the logged sharpness: 2/eta for GD (the
    /// Hessian's), 2 for RMSProp (the preconditioned Hessian's).
    pub fn threshold(&self) -> f64 {
        match self {
            FlowOptimizer::Gd { eta } => 2.0 / eta,
            FlowOptimizer::RmsProp { .. } => 2.0,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        let fine = match *self {
            FlowOptimizer::Gd { eta } => ok(eta),
            FlowOptimizer::RmsProp { lr, alpha, eps } => {
                ok(lr) && ok(eps) && alpha > 0.0 && alpha < 1.0
            }
        };
        if fine {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "central flow: {self:?} needs positive, finite rates (and alpha in (0, 1))"
            )))
        }
    }
}

/// RMSProp's state along the flow.
pub(crate) struct Nu {
    pub nu: Vec<f64>,
}

impl Nu {
    /// PyTorch's nu at its first update.
    pub fn first(alpha: f64, g: &[f64]) -> Self {
        Nu {
            nu: g.iter().map(|x| (1.0 - alpha) * x * x).collect(),
        }
    }

    /// `d = P^{-1/2} = sqrt(lr / (sqrt(nu) + eps))`.
    pub fn scale(&self, lr: f64, eps: f64) -> Vec<f64> {
        self.nu
            .iter()
            .map(|n| (lr / (n.sqrt() + eps)).sqrt())
            .collect()
    }

    /// `dnu/dt` for a gradient g and the oscillations' `diag(H Sigma H)`.
    pub fn rate(&self, alpha: f64, g: &[f64], hsh: Option<&[f64]>) -> Vec<f64> {
        (0..self.nu.len())
            .map(|p| {
                let extra = hsh.map_or(0.0, |h| h[p]);
                (1.0 - alpha) / alpha * (g[p] * g[p] + extra - self.nu[p])
            })
            .collect()
    }

    /// `d log d_p / dt` per unit of `dnu_p / dt`: `-1 / (4 sqrt(nu)
    /// (sqrt(nu) + eps))` (0 where nu is 0: such a coordinate has had no
    /// gradient, and its rate is then g^2 >= 0 at most second order).
    pub fn log_scale_slope(&self, eps: f64) -> Vec<f64> {
        self.nu
            .iter()
            .map(|&n| {
                let r = n.sqrt();
                if r > 0.0 {
                    -1.0 / (4.0 * r * (r + eps))
                } else {
                    0.0
                }
            })
            .collect()
    }

    pub fn advance(&mut self, dt: f64, rate: &[f64]) {
        for (n, r) in self.nu.iter_mut().zip(rate) {
            *n = (*n + dt * r).max(0.0);
        }
    }
}
