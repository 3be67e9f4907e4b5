//! Power iteration for the eigenvalue of largest magnitude (the sharpness
//! `|lambda_max|` of a Hessian), with PyHessian's stopping rule so that
//! numbers are comparable with that tool. Lanczos converges faster and finds
//! the algebraically largest eigenvalues; power iteration is the cheap,
//! memory-free baseline (two vectors of length n).

use crate::error::{Error, Result};
use crate::linalg::operator::{apply, start_vector, Operator};
use crate::linalg::vector::{axpy, dot, norm, scale};
use crate::rng::Rng;

/// Settings of `power_iteration`.
#[derive(Debug, Clone)]
pub struct PowerOptions {
    /// Most operator calls.
    pub max_iter: usize,
    /// Converged when the Rayleigh quotient changes by at most `tol` times
    /// its magnitude between two iterations (PyHessian's rule).
    pub tol: f64,
    /// Seed of the random start vector.
    pub seed: u64,
    /// Warm start, e.g. the previous top eigenvector; need not be unit.
    pub start: Option<Vec<f64>>,
}

/// The dominant eigenpair found by `power_iteration`.
#[derive(Debug, Clone)]
pub struct PowerResult {
    /// Rayleigh quotient `v . A v` of `vector` (signed).
    pub value: f64,
    /// Unit vector whose Rayleigh quotient is `value`.
    pub vector: Vec<f64>,
    /// Operator calls made.
    pub matvecs: usize,
    /// Whether the stopping rule was met before `max_iter`.
    pub converged: bool,
    /// `||A v - value v|| / |value|`: how far `vector` is from an
    /// eigenvector. The rule on `value` can be met while this is large
    /// (e.g. when `lambda` and `-lambda` are both dominant), so report it.
    pub residual: f64,
}

/// Power iteration `v <- A v / ||A v||` on the symmetric operator `op` on
/// `R^n`. The returned pair is the last iterate and its Rayleigh quotient,
/// with the residual measured from the same operator call (no extra
/// matvec). If `A v` is exactly zero the iteration stops there with value 0
/// and residual 0 (the zero operator, or a start in the null space).
pub fn power_iteration(
    n: usize,
    op: &mut Operator<'_>,
    opts: &PowerOptions,
) -> Result<PowerResult> {
    if n == 0 {
        return Err(Error::msg("power iteration on a 0-parameter model"));
    }
    if opts.max_iter == 0 {
        return Err(Error::config(
            "max_iter",
            "power iteration needs max_iter >= 1",
        ));
    }
    if opts.tol.is_nan() || opts.tol < 0.0 {
        return Err(Error::config(
            "tol",
            format!("tolerance must be >= 0, got {}", opts.tol),
        ));
    }
    let mut rng = Rng::stream(opts.seed, "power");
    let mut v = start_vector(n, opts.start.as_deref(), &mut rng)?;
    let mut previous: Option<f64> = None;
    let mut matvecs = 0;
    loop {
        let mut w = apply(op, &v, n)?;
        matvecs += 1;
        let value = dot(&v, &w);
        let length = norm(&w);
        let settled = previous.is_some_and(|p| (value - p).abs() <= opts.tol * value.abs());
        if settled || length == 0.0 || matvecs >= opts.max_iter {
            // w becomes the residual A v - value v.
            axpy(-value, &v, &mut w);
            let r = norm(&w);
            return Ok(PowerResult {
                value,
                vector: v,
                matvecs,
                converged: settled || length == 0.0,
                residual: if r == 0.0 { 0.0 } else { r / value.abs() },
            });
        }
        previous = Some(value);
        scale(1.0 / length, &mut w);
        v = w;
    }
}
