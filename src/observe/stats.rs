//! Feature and weight statistics: each layer's mean |h| of pre- and
//! post-activations on a batch (muP's coordinate check: O(1) in width under
//! muP), each attention head's entropy, weight norms, distance from
//! initialization, and the alignment of consecutive updates.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::layer::Site;
use crate::nn::model::{Forward, Model};
use crate::tape::Tape;
use crate::tensor::Tensor;

/// What the coordinate check reads from one forward pass, for member 0.
pub struct ActivationStats {
    /// Mean |pre-activation| and mean |post-activation| of every weight
    /// layer (dense or convolution; the last layer's are the outputs).
    pub coord_l1: Vec<(f64, f64)>,
    /// The entropy (nats) of each attention layer's probabilities, per
    /// head: `-sum_k p_qk ln p_qk` averaged over the examples and the query
    /// positions q. Uniform attention over the T positions (or, causal,
    /// over the q + 1 visible ones) is the largest; a head that looks at
    /// one position has 0.
    pub attention_entropy: Vec<Vec<f64>>,
}

/// Both statistics of [`ActivationStats`] from one forward pass on `x`.
pub fn activation_stats<B: Backend>(
    be: &B,
    model: &Model<B>,
    x: &Tensor<B>,
) -> Result<ActivationStats> {
    let mut tape = Tape::new(be.clone());
    let xv = tape.leaf(x.clone(), false);
    let vars = model.forward(&mut tape, xv, false)?;
    let rows = x.shape()[x.shape().len() - 2];
    Ok(ActivationStats {
        coord_l1: coordinate_l1(be, model, &tape, &vars)?,
        attention_entropy: attention_entropy(be, &tape, &vars, rows)?,
    })
}

fn attention_entropy<B: Backend>(
    be: &B,
    tape: &Tape<B>,
    vars: &Forward,
    rows: usize,
) -> Result<Vec<Vec<f64>>> {
    let mut out = Vec::new();
    for &(probs, heads) in &vars.attention {
        let p = tape.value(probs);
        let t = p.shape()[p.shape().len() - 1];
        // Member 0's matrices come first: example-major, then head.
        let values = be.to_f64(p)?;
        let mut sums = vec![0.0; heads];
        for (m, matrix) in values.chunks(t * t).take(rows * heads).enumerate() {
            let h: f64 = matrix
                .iter()
                .filter(|&&v| v > 0.0)
                .map(|&v| -v * v.ln())
                .sum();
            sums[m % heads] += h;
        }
        let count = (rows * t) as f64;
        out.push(sums.into_iter().map(|s| s / count).collect());
    }
    Ok(out)
}

fn coordinate_l1<B: Backend>(
    be: &B,
    model: &Model<B>,
    tape: &Tape<B>,
    vars: &Forward,
) -> Result<Vec<(f64, f64)>> {
    let params = model.params();
    let mut out = Vec::new();
    for site in &vars.sites {
        let Site::Linear {
            product,
            output,
            bias,
            bias_multiplier,
            ..
        } = *site
        else {
            continue;
        };
        let z = tape.value(product);
        let pre = match bias {
            Some(b) => {
                be.bias_act(z, Some(params[b]), bias_multiplier, Activation::Identity)?
                    .0
            }
            None => z.clone(),
        };
        let per = (pre.numel() / model.ensemble).max(1) as f64;
        out.push((
            be.sum_abs(&pre)?[0] / per,
            be.sum_abs(tape.value(output))?[0] / per,
        ));
    }
    Ok(out)
}

/// Frobenius norm of each weight layer's weight (member 0).
pub fn weight_norms<B: Backend>(be: &B, model: &Model<B>) -> Result<Vec<f64>> {
    model
        .weights()
        .into_iter()
        .map(|w| Ok(be.sum_sq(w)?[0].sqrt()))
        .collect()
}

/// ||W_l - W_l(0)||_F for each weight layer, given the initial weights.
pub fn distance_from<B: Backend>(be: &B, model: &Model<B>, init: &[Tensor<B>]) -> Result<Vec<f64>> {
    let weights = model.weights();
    if init.len() != weights.len() {
        return Err(Error::msg("initial weights do not match the model"));
    }
    weights
        .into_iter()
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
