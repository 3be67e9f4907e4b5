//! Feature and weight statistics: each layer's mean |h| of pre- and
//! post-activations on a batch (muP's coordinate check: O(1) in width under
//! muP), weight norms, distance from initialization, and the alignment of
//! consecutive updates.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::mlp::Mlp;
use crate::tensor::Tensor;

/// Mean |pre-activation| and mean |post-activation| of every layer (the
/// last layer's are the outputs), for member 0.
pub fn coordinate_l1<B: Backend>(be: &B, model: &Mlp<B>, x: &Tensor<B>) -> Result<Vec<(f64, f64)>> {
    let layers = model.spec.layers();
    let mut h = x.clone();
    let mut out = Vec::with_capacity(layers);
    for l in 0..layers {
        let z = be.matmul(
            &h,
            false,
            &model.weights[l],
            true,
            model.scales[l].multiplier,
        )?;
        let act = if l + 1 == layers {
            Activation::Identity
        } else {
            model.spec.activation
        };
        let (pre, post) = be.bias_act(
            &z,
            model.biases[l].as_ref(),
            model.scales[l].bias_multiplier,
            act,
        )?;
        let per = (pre.numel() / model.ensemble).max(1) as f64;
        out.push((be.sum_abs(&pre)?[0] / per, be.sum_abs(&post)?[0] / per));
        h = post;
    }
    Ok(out)
}

/// Frobenius norm of each layer's weight (member 0).
pub fn weight_norms<B: Backend>(be: &B, model: &Mlp<B>) -> Result<Vec<f64>> {
    model
        .weights
        .iter()
        .map(|w| Ok(be.sum_sq(w)?[0].sqrt()))
        .collect()
}

/// ||W_l - W_l(0)||_F for each layer, given the initial weights.
pub fn distance_from<B: Backend>(be: &B, model: &Mlp<B>, init: &[Tensor<B>]) -> Result<Vec<f64>> {
    if init.len() != model.weights.len() {
        return Err(Error::msg("initial weights do not match the model"));
    }
    model
        .weights
        .iter()
        .zip(init)
        .map(|(w, w0)| {
            let mut d = w.clone();
            be.axpy(&mut d, -1.0, w0)?;
            Ok(be.sum_sq(&d)?[0].sqrt())
        })
        .collect()
}

/// cos(u, v) of two flat vectors (0 when either is zero).
pub fn cosine(u: &[f64], v: &[f64]) -> f64 {
    let dot: f64 = u.iter().zip(v).map(|(a, b)| a * b).sum();
    let nu: f64 = u.iter().map(|a| a * a).sum::<f64>().sqrt();
    let nv: f64 = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    if nu == 0.0 || nv == 0.0 {
        0.0
    } else {
        dot / (nu * nv)
    }
}
