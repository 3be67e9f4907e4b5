//! The empirical neural tangent kernel on n examples, Theta_k(i, j) =
//! <d f_k(x_i)/d theta, d f_k(x_j)/d theta> for each output k and its trace
//! over outputs, built from per-layer Gram matrices of the layer inputs and
//! backprop signals: for a dense layer with multiplier m the contribution is
//! m^2 (D_k D_k^T) .* (A A^T), plus m_b^2 D_k D_k^T for its bias — one
//! backward pass per output, no n x P Jacobian. A weight shared over P
//! positions (a convolution) takes the same Gram matrices over all n P rows
//! summed in P x P blocks (the ghost form), or the Gram matrix of its
//! materialized per-example gradients, whichever costs less (`Ntk::methods`
//! says which); gains and shifts use their per-example gradients, and so
//! does a weight two sites read (a tied embedding), summed over its sites.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::layer::Site;
use crate::nn::model::Model;
use crate::observe::sites::{self, Method, View};
use crate::tape::Tape;
use crate::tensor::Tensor;

/// Gram matrices, row-major `n x n`.
pub struct Ntk {
    pub n: usize,
    /// One per output.
    pub per_output: Vec<Vec<f64>>,
    /// Sum over outputs.
    pub trace: Vec<f64>,
    /// How each layer site's contribution was computed.
    pub methods: Vec<Method>,
}

impl Ntk {
    /// ||a - b||_F / ||b||_F of the trace kernels: the kernel's relative
    /// movement from `b` (e.g. at initialization).
    pub fn relative_change(&self, from: &Ntk) -> Result<f64> {
        if self.n != from.n {
            return Err(Error::shape(format!(
                "NTKs on {} and {} examples",
                self.n, from.n
            )));
        }
        let diff: f64 = self
            .trace
            .iter()
            .zip(&from.trace)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let base: f64 = from.trace.iter().map(|b| b * b).sum();
        Ok((diff / base).sqrt())
    }
}

/// The empirical NTK of `model` (one member) on inputs `x` `[n, d]`.
pub fn empirical_ntk<B: Backend>(be: &B, model: &Model<B>, x: &Tensor<B>) -> Result<Ntk> {
    if model.ensemble != 1 {
        return Err(Error::msg(
            "the NTK is measured one model at a time (ensemble of 1)",
        ));
    }
    super::per_sample::refuse_mixing(model, "the empirical NTK and per-example gradients")?;
    let n = x.shape().first().copied().unwrap_or(0);
    let outputs = model.outputs();
    let mut tape = Tape::new(be.clone());
    let xv = tape.leaf(x.clone(), false);
    let vars = model.forward(&mut tape, xv, true)?;
    // Gram matrices of the layer inputs (over all n * positions rows),
    // shared by all outputs, where that is the cheaper way.
    let shared = sites::shared_weights(&vars.sites);
    let mut methods = Vec::with_capacity(vars.sites.len());
    let input_grams = vars
        .sites
        .iter()
        .map(|site| {
            let method = if sites::reads_shared(site, &shared) {
                Method::Materialized
            } else {
                site_method(&tape, site, n)
            };
            methods.push(method);
            match (site, method) {
                (Site::Linear { input, .. }, Method::Outer | Method::Ghost) => {
                    let a = tape.value(*input);
                    Ok(Some(be.to_f64(&be.matmul(a, false, a, true, 1.0)?)?))
                }
                _ => Ok(None),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let mut per_output = Vec::with_capacity(outputs);
    let mut trace = vec![0.0; n * n];
    for k in 0..outputs {
        let mut seed = vec![0.0; n * outputs];
        for i in 0..n {
            seed[i * outputs + k] = 1.0;
        }
        let grads = tape.backward(vars.output, be.from_f64(&[1, n, outputs], &seed)?)?;
        let view = View {
            tape: &tape,
            grads: &grads,
            batch: n,
        };
        let mut theta = shared_weight_gram(be, &view, &vars.sites, &shared)?;
        for (site, gram) in vars.sites.iter().zip(&input_grams) {
            if sites::reads_shared(site, &shared) {
                continue;
            }
            let part = match (site, gram) {
                (
                    Site::Linear {
                        product,
                        multiplier,
                        bias_multiplier,
                        bias,
                        positions,
                        ..
                    },
                    Some(gram),
                ) => {
                    let d = grads
                        .get(*product)
                        .ok_or_else(|| Error::msg("internal: no layer signal"))?;
                    let dd = be.to_f64(&be.matmul(d, false, d, true, 1.0)?)?;
                    let mb2 = if bias.is_some() {
                        bias_multiplier.powi(2)
                    } else {
                        0.0
                    };
                    let m2 = multiplier.powi(2);
                    let rows: Vec<f64> = dd
                        .iter()
                        .zip(gram)
                        .map(|(dv, av)| dv * (m2 * av + mb2))
                        .collect();
                    block_sums(&rows, n, *positions)
                }
                _ => materialized_gram(be, &view, site)?,
            };
            for (t, v) in theta.iter_mut().zip(&part) {
                *t += v;
            }
        }
        for (t, v) in trace.iter_mut().zip(&theta) {
            *t += v;
        }
        per_output.push(theta);
    }
    Ok(Ntk {
        n,
        per_output,
        trace,
        methods,
    })
}

/// How a site's contribution is computed: from Gram matrices of the layer
/// inputs and signals over all `n * P` rows (`Outer` for P = 1, `Ghost`),
/// costing (nP)^2 (K + C) per output, or from materialized per-example
/// gradients, costing n P K C + n^2 K C; whichever is cheaper.
fn site_method<B: Backend>(tape: &Tape<B>, site: &Site, n: usize) -> Method {
    let Site::Linear {
        input,
        product,
        positions,
        ..
    } = *site
    else {
        return Method::Direct;
    };
    if positions == 1 {
        return Method::Outer;
    }
    let k = *tape.value(input).shape().last().unwrap_or(&1);
    let c = *tape.value(product).shape().last().unwrap_or(&1);
    let rows = n * positions;
    // The row Gram matrices live on the host: keep them under 64M entries.
    let fits = rows * rows <= 1 << 26;
    if fits && rows * rows * (k + c) < n * positions * k * c + n * n * k * c {
        Method::Ghost
    } else {
        Method::Materialized
    }
}

/// The `n x n` sums of the `P x P` blocks of an `nP x nP` matrix (the rows
/// of example i are `i * P .. (i + 1) * P`).
fn block_sums(m: &[f64], n: usize, p: usize) -> Vec<f64> {
    if p == 1 {
        return m.to_vec();
    }
    let rows = n * p;
    let mut out = vec![0.0; n * n];
    for (r, row) in m.chunks(rows).enumerate() {
        for (c, v) in row.iter().enumerate() {
            out[(r / p) * n + c / p] += v;
        }
    }
    out
}

/// `G G^T` of the per-example gradients of the weights several sites read
/// (a tied embedding), each summed over its sites; zeros when none is.
fn shared_weight_gram<B: Backend>(
    be: &B,
    view: &View<B>,
    all: &[Site],
    shared: &[usize],
) -> Result<Vec<f64>> {
    let grads = sites::shared_gradients(be, view, all, shared)?;
    gram_sum(be, grads.into_iter().map(|(_, _, g)| g), view.batch)
}

/// `G G^T` of the site's per-example gradients `G` (`[n, params]`), for
/// weights shared over positions, gains and shifts.
fn materialized_gram<B: Backend>(be: &B, view: &View<B>, site: &Site) -> Result<Vec<f64>> {
    let grads = sites::gradients(be, view, site)?;
    gram_sum(be, grads.into_iter().map(|(_, g)| g), view.batch)
}

/// `sum G G^T` over per-example gradient blocks `G` (`[n, numel]` each).
fn gram_sum<B: Backend>(
    be: &B,
    grads: impl Iterator<Item = Tensor<B>>,
    n: usize,
) -> Result<Vec<f64>> {
    let mut out = vec![0.0; n * n];
    for g in grads {
        let gram = be.to_f64(&be.matmul(&g, false, &g, true, 1.0)?)?;
        for (o, v) in out.iter_mut().zip(&gram) {
            *o += v;
        }
    }
    Ok(out)
}
