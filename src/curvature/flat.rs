//! Parameters as one flat host vector (in `Mlp::params()` order), the form
//! Lanczos and the other spectral algorithms work on.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Concatenate tensors into one host vector.
pub fn flatten<B: Backend>(be: &B, tensors: &[Tensor<B>]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(tensors.iter().map(|t| t.numel()).sum());
    for t in tensors {
        out.extend(be.to_f64(t)?);
    }
    Ok(out)
}

/// Split a host vector into tensors shaped like `like`.
pub fn unflatten<B: Backend>(be: &B, v: &[f64], like: &[&Tensor<B>]) -> Result<Vec<Tensor<B>>> {
    let total: usize = like.iter().map(|t| t.numel()).sum();
    if v.len() != total {
        return Err(Error::shape(format!(
            "a vector of {} values for {total} parameters",
            v.len()
        )));
    }
    let mut out = Vec::with_capacity(like.len());
    let mut at = 0;
    for t in like {
        out.push(be.from_f64(t.shape(), &v[at..at + t.numel()])?);
        at += t.numel();
    }
    Ok(out)
}
