//! The boundary between the spectral algorithms and the caller's linear
//! operator (a Hessian-vector product in practice): every operator output
//! and every caller-given start vector is checked here, so that a wrong
//! length or a NaN from a diverged model becomes an error naming the
//! problem instead of a silently wrong spectrum.

use crate::error::{Error, Result};
use crate::linalg::vector::{axpy, gaussian, norm, scale};
use crate::rng::Rng;

/// A linear operator on `f64` vectors of length `n`, given as a closure.
pub type Operator<'a> = dyn FnMut(&[f64]) -> Result<Vec<f64>> + 'a;

/// `op(x)`, checked to be a finite vector of length `n`.
pub(crate) fn apply(op: &mut Operator<'_>, x: &[f64], n: usize) -> Result<Vec<f64>> {
    let y = op(x)?;
    if y.len() != n {
        return Err(Error::shape(format!(
            "the linear operator returned a vector of length {} for a \
             {n}-parameter model",
            y.len()
        )));
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(Error::msg(format!(
            "the linear operator returned a non-finite value ({}) at index {i} \
             of {n}; the model or its loss has probably diverged",
            y[i]
        )));
    }
    Ok(y)
}

/// The unit start vector of an iteration: a Gaussian random direction from
/// `rng`, or, given a warm start (checked), the normalized warm start plus
/// a Gaussian direction of the same norm.
///
/// The random half is what lets a warm-started solve find an eigenvector
/// the warm start lacks (after two eigenvalues cross, the previous top
/// eigenvector belongs to the second one): the start's component along
/// every eigenvector is then about `1/sqrt(2)` of what a cold start would
/// have, as likely to lead to the top eigenvalues, while it still starts
/// close to the eigenvectors it already knows. Measured miss rates are in
/// BENCHMARKS.md.
pub(crate) fn start_vector(n: usize, start: Option<&[f64]>, rng: &mut Rng) -> Result<Vec<f64>> {
    let mut v = gaussian(n, rng);
    unit(&mut v, "random start vector")?;
    if let Some(s) = start {
        if s.len() != n {
            return Err(Error::shape(format!(
                "start vector has length {} for a {n}-parameter model",
                s.len()
            )));
        }
        if s.iter().any(|x| !x.is_finite()) {
            return Err(Error::msg("start vector has non-finite entries"));
        }
        let mut w = s.to_vec();
        unit(&mut w, "start vector")?;
        axpy(1.0, &w, &mut v);
        unit(&mut v, "start vector")?;
    }
    Ok(v)
}

/// Scales `v` to unit length; a zero vector is an error naming `what`.
fn unit(v: &mut [f64], what: &str) -> Result<()> {
    let len = norm(v);
    if len == 0.0 {
        return Err(Error::msg(format!("{what} is zero")));
    }
    scale(1.0 / len, v);
    Ok(())
}
