//! Power iteration for the eigenvalue of largest magnitude (the sharpness
//! `|lambda_max|` of a Hessian). It stops on PyHessian's rule (the value
//! settled) and, so that a value that merely stalled is not reported as
//! converged, on a residual within `tol` too. Lanczos converges faster and finds
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
    /// its magnitude between two iterations (PyHessian's rule) and the
    /// relative residual is at most `tol`.
    pub tol: f64,
    /// Seed of the random start vector.
    pub seed: u64,
    /// Warm start, e.g. the previous top eigenvector; need not be unit. A
    /// random direction of the same norm is mixed in, as for Lanczos.
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
    /// Whether both stopping rules were met before `max_iter`: PyHessian's
    /// on the value, and a residual of at most `tol`, so that an eigenvalue
    /// lies within `tol * |value|` of `value`. PyHessian's rule alone stops
    /// on a value that merely stalled (a start close to another
    /// eigenvector).
    pub converged: bool,
    /// `||A v - value v|| / |value|`: how far `vector` is from an
    /// eigenvector, and the relative distance from `value` to the nearest
    /// eigenvalue. The rule on `value` can be met while this is large (e.g.
    /// when `lambda` and `-lambda` are both dominant), so report it.
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
        let residual = relative_residual(&v, &w, value);
        let converged = length == 0.0 || (settled && residual <= opts.tol);
        if converged || matvecs >= opts.max_iter {
            return Ok(PowerResult {
                value,
                vector: v,
                matvecs,
                converged,
                residual,
            });
        }
        previous = Some(value);
        scale(1.0 / length, &mut w);
        v = w;
    }
}

/// `||A v - value v|| / |value|` from `A v`, without another operator call.
fn relative_residual(v: &[f64], av: &[f64], value: f64) -> f64 {
    let mut r = av.to_vec();
    axpy(-value, v, &mut r);
    let r = norm(&r);
    if r == 0.0 {
        0.0
    } else {
        r / value.abs()
    }
}
