//! The `[observe]` table: which measurements to take, on which data, and
//! when. A sub-table's presence turns an observer on (`[observe.sharpness]`);
//! each inherits the table's schedule unless it sets its own.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Most examples the empirical NTK may use: its Gram matrices are n x n and
/// it needs one backward pass per output.
pub const NTK_MAX_EXAMPLES: usize = 2000;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObserveConfig {
    /// Default schedule: every this many steps (and at the last step).
    pub every: u64,
    /// Default schedule: log-spaced steps instead (about `per_decade` a
    /// decade: 0, 1, 2, ..., 10, 12, 15, ...), and the last.
    pub log_spaced: bool,
    pub per_decade: u32,
    pub sharpness: Option<SpectrumTop>,
    pub gn_sharpness: Option<SpectrumTop>,
    pub hessian_trace: Option<TraceConfig>,
    pub spectrum: Option<DensityConfig>,
    pub per_sample: Option<BatchConfig>,
    pub ntk: Option<NtkConfig>,
    pub coord: Option<BatchConfig>,
    pub weights: Option<Schedule>,
    pub central_flow: Option<CentralFlowConfig>,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            every: 10,
            log_spaced: false,
            per_decade: 10,
            sharpness: None,
            gn_sharpness: None,
            hessian_trace: None,
            spectrum: None,
            per_sample: None,
            ntk: None,
            coord: None,
            weights: None,
            central_flow: None,
        }
    }
}

/// An observer's own schedule, overriding the table's.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    pub every: Option<u64>,
    pub log_spaced: Option<bool>,
}

/// Top eigenvalues of the training-loss Hessian (`sharpness`) or
/// Gauss-Newton matrix (`gn_sharpness`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpectrumTop {
    pub every: Option<u64>,
    pub log_spaced: Option<bool>,
    /// How many top eigenvalues (`hessian_top_k.{i}` when more than one).
    pub k: usize,
    /// "lanczos" (full reorthogonalization) or "power".
    pub method: String,
    /// Relative tolerance on the residual (Lanczos) or on the change of the
    /// estimate between iterations (power).
    pub tol: f64,
    /// Most Hessian-vector products per measurement.
    pub max_iter: usize,
    /// Start from the previous measurement's top eigenvector.
    pub warm_start: bool,
    /// First n training examples (default: all of them).
    pub n: Option<usize>,
    /// Examples per pass; memory is bounded by the chunk, not by n.
    pub chunk: usize,
}

impl Default for SpectrumTop {
    fn default() -> Self {
        SpectrumTop {
            every: None,
            log_spaced: None,
            k: 1,
            method: "lanczos".into(),
            tol: 1e-3,
            max_iter: 20,
            warm_start: true,
            n: None,
            chunk: 2048,
        }
    }
}

/// Hutchinson's estimate of the Hessian trace.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    pub every: Option<u64>,
    pub log_spaced: Option<bool>,
    pub probes: usize,
    pub n: Option<usize>,
    pub chunk: usize,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            every: None,
            log_spaced: None,
            probes: 10,
            n: None,
            chunk: 2048,
        }
    }
}

/// The Hessian's spectral density by stochastic Lanczos quadrature, written
/// to `spectrum.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DensityConfig {
    pub every: Option<u64>,
    pub log_spaced: Option<bool>,
    pub probes: usize,
    /// Lanczos steps per probe.
    pub steps: usize,
    pub n: Option<usize>,
    pub chunk: usize,
}

impl Default for DensityConfig {
    fn default() -> Self {
        DensityConfig {
            every: None,
            log_spaced: None,
            probes: 4,
            steps: 30,
            n: None,
            chunk: 2048,
        }
    }
}

/// Observers measured on the first n training examples as one batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub every: Option<u64>,
    pub log_spaced: Option<bool>,
    pub n: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            every: None,
            log_spaced: None,
            n: 256,
        }
    }
}

/// The empirical NTK on the first n training examples.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NtkConfig {
    pub every: Option<u64>,
    pub log_spaced: Option<bool>,
    pub n: usize,
    /// Top eigenvalues of the trace-over-outputs kernel (`ntk_top`, and
    /// `ntk_top_k.{i}` when more than one).
    pub k: usize,
}

impl Default for NtkConfig {
    fn default() -> Self {
        NtkConfig {
            every: None,
            log_spaced: None,
            n: 100,
            k: 1,
        }
    }
}

/// The central flow of GD or RMSProp (`observe::central_flow`), integrated
/// from the initialization beside the run, with plain gradient flow.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CentralFlowConfig {
    pub every: Option<u64>,
    pub log_spaced: Option<bool>,
    /// Top eigenvectors the flow tracks: all that reach the edge must be
    /// among them, or the sharpness leaves 2/eta when the (k+1)-th arrives.
    pub k: usize,
    /// Forward-Euler substeps per training step.
    pub substeps: usize,
    /// Examples per pass (the flow always uses the whole training set, the
    /// loss full-batch training descends).
    pub chunk: usize,
}

/// The largest k the complementarity solver takes.
pub const CENTRAL_FLOW_MAX_K: usize = 8;

impl Default for CentralFlowConfig {
    fn default() -> Self {
        CentralFlowConfig {
            every: None,
            log_spaced: None,
            k: 2,
            substeps: 4,
            chunk: 2048,
        }
    }
}

impl ObserveConfig {
    pub fn any(&self) -> bool {
        self.sharpness.is_some()
            || self.gn_sharpness.is_some()
            || self.hessian_trace.is_some()
            || self.spectrum.is_some()
            || self.per_sample.is_some()
            || self.ntk.is_some()
            || self.coord.is_some()
            || self.weights.is_some()
            || self.central_flow.is_some()
    }

    /// Check against the model's parameter count and the training set's
    /// size, so an impossible measurement is refused before training.
    pub fn validate(&self, params: usize, n_train: usize) -> Result<()> {
        if self.every == 0 {
            return Err(Error::config("observe.every", "must be at least 1"));
        }
        if self.per_decade == 0 {
            return Err(Error::config("observe.per_decade", "must be at least 1"));
        }
        let schedule = |name: &str, every: Option<u64>| -> Result<()> {
            if every == Some(0) {
                return Err(Error::config(
                    format!("observe.{name}.every"),
                    "must be at least 1",
                ));
            }
            Ok(())
        };
        let subset = |name: &str, n: Option<usize>, chunk: usize| -> Result<()> {
            if chunk == 0 {
                return Err(Error::config(
                    format!("observe.{name}.chunk"),
                    "must be at least 1",
                ));
            }
            match n {
                Some(0) => Err(Error::config(
                    format!("observe.{name}.n"),
                    "must be at least 1",
                )),
                Some(n) if n > n_train => Err(Error::config(
                    format!("observe.{name}.n"),
                    format!("{n} examples asked for, the training set has {n_train}"),
                )),
                _ => Ok(()),
            }
        };
        for (name, s) in [
            ("sharpness", &self.sharpness),
            ("gn_sharpness", &self.gn_sharpness),
        ] {
            let Some(s) = s else { continue };
            schedule(name, s.every)?;
            subset(name, s.n, s.chunk)?;
            if s.k == 0 || s.k > params {
                return Err(Error::config(
                    format!("observe.{name}.k"),
                    format!(
                        "asked for {} eigenvalues of a {params}-parameter model",
                        s.k
                    ),
                ));
            }
            if s.max_iter < s.k {
                return Err(Error::config(
                    format!("observe.{name}.max_iter"),
                    format!("{} iterations cannot give {} eigenvalues", s.max_iter, s.k),
                ));
            }
            if !(s.tol > 0.0 && s.tol.is_finite()) {
                return Err(Error::config(
                    format!("observe.{name}.tol"),
                    format!("must be positive, got {}", s.tol),
                ));
            }
            match s.method.as_str() {
                "lanczos" => {}
                "power" if s.k == 1 => {}
                "power" => {
                    return Err(Error::config(
                        format!("observe.{name}.method"),
                        "power iteration finds one eigenvalue; use lanczos for k > 1",
                    ))
                }
                m => {
                    return Err(Error::config(
                        format!("observe.{name}.method"),
                        format!("unknown method {m:?}; expected lanczos or power"),
                    ))
                }
            }
        }
        if let Some(t) = &self.hessian_trace {
            schedule("hessian_trace", t.every)?;
            subset("hessian_trace", t.n, t.chunk)?;
            if t.probes == 0 {
                return Err(Error::config(
                    "observe.hessian_trace.probes",
                    "must be at least 1",
                ));
            }
        }
        if let Some(d) = &self.spectrum {
            schedule("spectrum", d.every)?;
            subset("spectrum", d.n, d.chunk)?;
            if d.probes == 0 || d.steps < 2 {
                return Err(Error::config(
                    "observe.spectrum",
                    "needs probes >= 1 and steps >= 2",
                ));
            }
        }
        for (name, b) in [("per_sample", &self.per_sample), ("coord", &self.coord)] {
            let Some(b) = b else { continue };
            schedule(name, b.every)?;
            let min = if name == "per_sample" { 2 } else { 1 };
            if b.n < min || b.n > n_train {
                return Err(Error::config(
                    format!("observe.{name}.n"),
                    format!(
                        "must be between {min} and the training set's {n_train} examples, got {}",
                        b.n
                    ),
                ));
            }
        }
        if let Some(k) = &self.ntk {
            schedule("ntk", k.every)?;
            if k.n == 0 || k.n > NTK_MAX_EXAMPLES || k.n > n_train {
                return Err(Error::config(
                    "observe.ntk.n",
                    format!(
                        "the NTK on {} examples needs {0} x {0} Gram matrices; set observe.ntk.n between 1 and {} \
                         (and at most the training set's {n_train})",
                        k.n, NTK_MAX_EXAMPLES
                    ),
                ));
            }
            if k.k == 0 || k.k > k.n {
                return Err(Error::config(
                    "observe.ntk.k",
                    format!("must be between 1 and n = {}", k.n),
                ));
            }
        }
        if let Some(w) = &self.weights {
            schedule("weights", w.every)?;
        }
        if let Some(c) = &self.central_flow {
            schedule("central_flow", c.every)?;
            subset("central_flow", None, c.chunk)?;
            if c.k == 0 || c.k > CENTRAL_FLOW_MAX_K || c.k >= params {
                return Err(Error::config(
                    "observe.central_flow.k",
                    format!(
                        "must be in 1..={CENTRAL_FLOW_MAX_K} and below the model's {params} parameters, got {}",
                        c.k
                    ),
                ));
            }
            if c.substeps == 0 {
                return Err(Error::config(
                    "observe.central_flow.substeps",
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }

    /// Whether an observer with schedule (`every`, `log_spaced`) is due at
    /// `step` of a run of `total` steps.
    pub fn due(&self, every: Option<u64>, log_spaced: Option<bool>, step: u64, total: u64) -> bool {
        if step == total {
            return true;
        }
        if log_spaced.unwrap_or(self.log_spaced) {
            log_step(step, self.per_decade)
        } else {
            step % every.unwrap_or(self.every) == 0
        }
    }
}

/// Steps 0..=9 and then about `per_decade` steps per decade: step s is on
/// the grid when it is the rounding of 10^(i / per_decade) for some i.
pub(crate) fn log_step(step: u64, per_decade: u32) -> bool {
    if step < per_decade as u64 {
        return true;
    }
    let i = (step as f64).log10() * per_decade as f64;
    [i.floor(), i.ceil()]
        .iter()
        .any(|&i| (10f64.powf(i / per_decade as f64)).round() as u64 == step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_spaced_steps_thin_out() {
        let steps: Vec<u64> = (0..1000).filter(|&s| log_step(s, 10)).collect();
        assert_eq!(&steps[..12], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13]);
        assert!(steps.len() < 45, "{steps:?}");
        assert!(steps.contains(&100) && steps.contains(&501));
    }
}
