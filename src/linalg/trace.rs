//! Hutchinson's stochastic trace estimator: `tr(A) = E[z^T A z]` for random
//! sign vectors `z` (Rademacher probes, which give the smallest variance
//! among i.i.d. probes: `2 sum_{i != j} a_ij^2` per probe, so a diagonal
//! operator's trace comes out exact).

use crate::error::{Error, Result};
use crate::linalg::operator::{apply, Operator};
use crate::linalg::vector::{dot, rademacher};
use crate::rng::Rng;

/// A Monte Carlo estimate of a trace.
#[derive(Debug, Clone)]
pub struct TraceEstimate {
    /// Mean of `z^T A z` over the probes.
    pub estimate: f64,
    /// Standard error of the mean (sample standard deviation over
    /// `sqrt(probes)`); NaN for a single probe, where it is unknown.
    pub std_error: f64,
    /// Probes used.
    pub probes: usize,
    /// Operator calls made (one per probe).
    pub matvecs: usize,
}

/// Refuses an estimate (`what`: trace, diagonal) of a 0-parameter model or
/// from no probes.
pub(crate) fn check_probes(n: usize, probes: usize, what: &str) -> Result<()> {
    if n == 0 {
        return Err(Error::msg(format!(
            "{what} estimate of a 0-parameter model"
        )));
    }
    if probes == 0 {
        return Err(Error::config("probes", "need at least 1 probe"));
    }
    Ok(())
}

/// Hutchinson's estimate of `tr(A)` for the operator `op` on `R^n` from
/// `probes` Rademacher probes drawn from `seed`.
pub fn hutchinson_trace(
    n: usize,
    op: &mut Operator<'_>,
    probes: usize,
    seed: u64,
) -> Result<TraceEstimate> {
    check_probes(n, probes, "trace")?;
    let mut rng = Rng::stream(seed, "hutchinson");
    let mut samples = Vec::with_capacity(probes);
    for _ in 0..probes {
        let z = rademacher(n, &mut rng);
        let az = apply(op, &z, n)?;
        samples.push(dot(&z, &az));
    }
    let count = probes as f64;
    let estimate = samples.iter().sum::<f64>() / count;
    let std_error = if probes > 1 {
        let var = samples.iter().map(|s| (s - estimate).powi(2)).sum::<f64>() / (count - 1.0);
        (var / count).sqrt()
    } else {
        f64::NAN
    };
    Ok(TraceEstimate {
        estimate,
        std_error,
        probes,
        matvecs: probes,
    })
}
