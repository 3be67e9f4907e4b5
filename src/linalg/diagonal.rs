//! Hutchinson's estimator of a matrix's diagonal (Bekas, Kokiopoulou and
//! Saad 2007): `diag(A) = E[z * (A z)]` for Rademacher probes z, since
//! `z_i (A z)_i = a_ii + sum_{j != i} a_ij z_i z_j` and `z_i^2 = 1`. Entry
//! i's variance per probe is `sum_{j != i} a_ij^2`, so a diagonal operator
//! comes out exact from one probe. PyHessian's and BackPACK's diagonal
//! estimates are this one.
//!
//! The probes are the ones `hutchinson_trace` draws for the same seed (same
//! stream, same signs per draw), so the estimate's sum is the trace
//! estimate: `sum_i z_i (A z)_i = z^T A z` probe by probe.

use crate::error::Result;
use crate::linalg::operator::{apply, Operator};
use crate::linalg::trace::check_probes;
use crate::linalg::vector::rademacher;
use crate::rng::Rng;

/// A Monte Carlo estimate of a diagonal.
#[derive(Debug, Clone)]
pub struct DiagonalEstimate {
    /// Mean of `z * (A z)` over the probes, per entry.
    pub estimate: Vec<f64>,
    /// Each entry's standard error of the mean (sample standard deviation
    /// over `sqrt(probes)`); NaN for a single probe.
    pub std_error: Vec<f64>,
    /// Probes used (= operator calls).
    pub probes: usize,
}

/// Hutchinson's estimate of the diagonal of the operator `op` on `R^n`
/// from `probes` Rademacher probes drawn from `seed`; the per-entry mean
/// and variance are accumulated in one pass (Welford), holding O(n).
pub fn hutchinson_diagonal(
    n: usize,
    op: &mut Operator<'_>,
    probes: usize,
    seed: u64,
) -> Result<DiagonalEstimate> {
    check_probes(n, probes, "diagonal")?;
    let mut rng = Rng::stream(seed, "hutchinson");
    let mut mean = vec![0.0; n];
    let mut m2 = vec![0.0; n];
    for k in 1..=probes {
        let z = rademacher(n, &mut rng);
        let az = apply(op, &z, n)?;
        for i in 0..n {
            let s = z[i] * az[i];
            let delta = s - mean[i];
            mean[i] += delta / k as f64;
            m2[i] += delta * (s - mean[i]);
        }
    }
    let count = probes as f64;
    let std_error = m2
        .iter()
        .map(|&m| {
            if probes > 1 {
                (m / (count - 1.0) / count).sqrt()
            } else {
                f64::NAN
            }
        })
        .collect();
    Ok(DiagonalEstimate {
        estimate: mean,
        std_error,
        probes,
    })
}
