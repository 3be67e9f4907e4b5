//! Per-example gradients read from one forward and backward pass, site by
//! site (`nn::layer::Site`), without a `[batch, params]` array unless a
//! caller asks for one. For a weight used once per example the squared
//! norm is `m^2 |a_i|^2 |d_i|^2`; for one shared over P positions (a
//! convolution) it is either the ghost norm `m^2 sum_{p,q} (a_ip . a_iq)
//! (d_ip . d_iq)` (cost B P^2 (K + C)) or the norm of the materialized
//! `m sum_p d_ip a_ip^T` (cost B P K C), whichever is cheaper. Gains and
//! shifts sum their per-position products over positions. A weight read by
//! two sites (a tied embedding and unembedding) has as example i's
//! gradient the sum of the two, whose norm has cross terms: such weights
//! are materialized, summed and then measured (`shared_gradients`).
//! Cotangents `d` here are of the batch-mean loss; callers rescale.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::dense::WeightLayout;
use crate::nn::layer::Site;
use crate::tape::{Grads, Tape, Var};
use crate::tensor::Tensor;

/// How a site's per-example norms were computed, for the cost record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// One row per example: `|a_i|^2 |d_i|^2`.
    Outer,
    /// Position Gram matrices per example.
    Ghost,
    /// The per-example gradient built, then its norm taken.
    Materialized,
    /// A gain's or shift's per-channel sums.
    Direct,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Outer => "outer",
            Method::Ghost => "ghost",
            Method::Materialized => "materialized",
            Method::Direct => "direct",
        }
    }
}

/// The values a site's derivatives are read from.
pub struct View<'a, B: Backend> {
    pub tape: &'a Tape<B>,
    pub grads: &'a Grads<B>,
    /// Examples in the batch.
    pub batch: usize,
}

impl<B: Backend> View<'_, B> {
    fn cot(&self, v: Var) -> Result<&Tensor<B>> {
        self.grads
            .get(v)
            .ok_or_else(|| Error::msg("internal: a layer got no backprop signal"))
    }

    /// `v`'s rows as `[batch, positions, cols]`.
    fn per_example(&self, t: &Tensor<B>, positions: usize) -> Result<Tensor<B>> {
        let cols = *t.shape().last().unwrap_or(&1);
        t.clone().reshape(&[self.batch, positions, cols])
    }

    /// `sum_p x_ip` for each example: `[1, batch, cols]`.
    fn position_sums(&self, be: &B, t: &Tensor<B>, positions: usize) -> Result<Tensor<B>> {
        let s = be.sum_rows(&self.per_example(t, positions)?, 1.0)?;
        let cols = *s.shape().last().unwrap_or(&1);
        s.reshape(&[1, self.batch, cols])
    }
}

/// The per-example squared norms of a site's parameter gradients (weight
/// and bias together), of the batch-mean loss, and how they were computed.
pub fn sq_norms<B: Backend>(be: &B, v: &View<B>, site: &Site) -> Result<(Vec<f64>, Method)> {
    match *site {
        Site::Linear {
            input,
            product,
            positions,
            multiplier: m,
            bias_multiplier: mb,
            bias,
            ..
        } => {
            let d = v.cot(product)?;
            let a = v.tape.value(input);
            let bias_sq = |d: &Tensor<B>| -> Result<Vec<f64>> {
                match bias {
                    None => Ok(vec![0.0; v.batch]),
                    Some(_) => Ok(be
                        .to_f64(&be.row_sq_norms(&v.position_sums(be, d, positions)?)?)?
                        .into_iter()
                        .map(|x| mb * mb * x)
                        .collect()),
                }
            };
            let (w, method) = if positions == 1 {
                let dn = be.to_f64(&be.row_sq_norms(d)?)?;
                let an = be.to_f64(&be.row_sq_norms(a)?)?;
                (
                    dn.iter().zip(&an).map(|(x, y)| x * y).collect::<Vec<f64>>(),
                    Method::Outer,
                )
            } else {
                shared_weight_sq_norms(be, v, a, d, positions)?
            };
            let b = bias_sq(d)?;
            Ok((
                w.iter().zip(&b).map(|(w, b)| m * m * w + b).collect(),
                method,
            ))
        }
        Site::Gain {
            normalized,
            product,
            positions,
            ..
        } => {
            let g = be.mul(v.cot(product)?, v.tape.value(normalized))?;
            Ok((
                be.to_f64(&be.row_sq_norms(&v.position_sums(be, &g, positions)?)?)?,
                Method::Direct,
            ))
        }
        Site::Shift {
            product, positions, ..
        } => {
            let s = v.position_sums(be, v.cot(product)?, positions)?;
            Ok((be.to_f64(&be.row_sq_norms(&s)?)?, Method::Direct))
        }
    }
}

/// `|sum_p d_ip a_ip^T|^2` per example, by the cheaper of the ghost norm
/// and materialization.
fn shared_weight_sq_norms<B: Backend>(
    be: &B,
    v: &View<B>,
    a: &Tensor<B>,
    d: &Tensor<B>,
    positions: usize,
) -> Result<(Vec<f64>, Method)> {
    let (k, c) = (
        *a.shape().last().unwrap_or(&1),
        *d.shape().last().unwrap_or(&1),
    );
    let a3 = v.per_example(a, positions)?;
    let d3 = v.per_example(d, positions)?;
    if positions * (k + c) < k * c {
        let ga = be.matmul(&a3, false, &a3, true, 1.0)?;
        let gd = be.matmul(&d3, false, &d3, true, 1.0)?;
        Ok((be.to_f64(&be.dot_members(&ga, &gd)?)?, Method::Ghost))
    } else {
        let g = be.matmul(&d3, true, &a3, false, 1.0)?;
        Ok((be.sum_sq(&g)?, Method::Materialized))
    }
}

/// Each example's gradient of the site's parameters, `(param, [batch,
/// numel])` with the weight in its parameter's layout, of the batch-mean
/// loss.
pub fn gradients<B: Backend>(be: &B, v: &View<B>, site: &Site) -> Result<Vec<(usize, Tensor<B>)>> {
    let flat = |t: Tensor<B>| -> Result<Tensor<B>> {
        let n = t.numel() / v.batch;
        t.reshape(&[1, v.batch, n])
    };
    let scaled = |t: Tensor<B>, s: f64| -> Result<Tensor<B>> {
        let one = be.from_f64(&[1], &[s])?;
        be.scale_members(&t, &one)
    };
    match *site {
        Site::Linear {
            input,
            product,
            positions,
            multiplier: m,
            bias_multiplier: mb,
            weight,
            bias,
            layout,
            ..
        } => {
            let d = v.cot(product)?;
            let a3 = v.per_example(v.tape.value(input), positions)?;
            let d3 = v.per_example(d, positions)?;
            let g = be.matmul(&d3, true, &a3, false, m)?;
            let g = match layout {
                WeightLayout::OutIn => g,
                WeightLayout::Transposed => be.transpose(&g)?,
            };
            let g = flat(g)?;
            let mut out = vec![(weight, g)];
            if let Some(b) = bias {
                out.push((b, scaled(v.position_sums(be, d, positions)?, mb)?));
            }
            Ok(out)
        }
        Site::Gain {
            normalized,
            product,
            positions,
            param,
            ..
        } => {
            let g = be.mul(v.cot(product)?, v.tape.value(normalized))?;
            Ok(vec![(param, v.position_sums(be, &g, positions)?)])
        }
        Site::Shift {
            product,
            positions,
            param,
            ..
        } => Ok(vec![(
            param,
            v.position_sums(be, v.cot(product)?, positions)?,
        )]),
    }
}

/// The weight parameters that more than one site reads (a tied
/// unembedding's), in ascending order.
pub fn shared_weights(sites: &[Site]) -> Vec<usize> {
    let mut weights: Vec<usize> = sites
        .iter()
        .filter_map(|s| match *s {
            Site::Linear { weight, .. } => Some(weight),
            _ => None,
        })
        .collect();
    weights.sort_unstable();
    let mut shared: Vec<usize> = weights
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    shared.dedup();
    shared
}

/// Whether `site` reads one of the `shared` weights.
pub fn reads_shared(site: &Site, shared: &[usize]) -> bool {
    matches!(*site, Site::Linear { weight, .. } if shared.binary_search(&weight).is_ok())
}

/// Each example's gradient of every parameter of the sites that read a
/// `shared` weight, summed over those sites: `(param, group, [1, batch,
/// numel])`, of the batch-mean loss.
pub fn shared_gradients<B: Backend>(
    be: &B,
    v: &View<B>,
    sites: &[Site],
    shared: &[usize],
) -> Result<Vec<(usize, usize, Tensor<B>)>> {
    let mut out: Vec<(usize, usize, Tensor<B>)> = Vec::new();
    for site in sites.iter().filter(|s| reads_shared(s, shared)) {
        for (param, g) in gradients(be, v, site)? {
            match out.iter_mut().find(|(p, _, _)| *p == param) {
                Some((_, _, sum)) => be.axpy(sum, 1.0, &g)?,
                None => out.push((param, group(site), g)),
            }
        }
    }
    Ok(out)
}

/// The site's parameter group (for per-layer statistics).
pub fn group(site: &Site) -> usize {
    match *site {
        Site::Linear { group, .. } | Site::Gain { group, .. } | Site::Shift { group, .. } => group,
    }
}
