//! Per-example gradients from each layer's inputs a_i and backprop signals
//! d_i, without materializing a `[batch, params]` array: the weight
//! gradient of example i is `m d_i a_i^T` (m the layer's forward
//! multiplier), so its squared norm is `m^2 |d_i|^2 |a_i|^2`, and the bias
//! gradient's is `m_b^2 |d_i|^2` (DESIGN.md, 5); weights shared over
//! positions, gains and shifts are in `sites`. Gradient-noise statistics
//! (McCandlish et al. 2018) follow from these norms and the mean gradient.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::loss::LossKind;
use crate::nn::model::{Forward, Model};
use crate::observe::sites::{self, Method, View};
use crate::tape::{LossHead, Tape};
use crate::tensor::Tensor;

/// Squared norms of each example's loss gradient (the gradient of its own
/// loss, not of the batch mean), per layer and in total.
pub struct PerSampleNorms {
    /// `per_layer[l][i]`: layer l's weights and bias, example i.
    pub per_layer: Vec<Vec<f64>>,
    pub total: Vec<f64>,
    /// Squared norm of the batch-mean gradient.
    pub mean_grad_sq: f64,
    /// How each layer's weight norms were computed (`sites::Method`).
    pub methods: Vec<Method>,
}

impl PerSampleNorms {
    pub fn batch(&self) -> usize {
        self.total.len()
    }

    /// Mean over examples of |g_i|.
    pub fn mean_norm(&self) -> f64 {
        self.total.iter().map(|v| v.sqrt()).sum::<f64>() / self.batch().max(1) as f64
    }

    /// tr(Sigma): the per-example gradients' total variance, unbiased,
    /// `(sum |g_i|^2 - B |g_mean|^2) / (B - 1)`.
    pub fn variance(&self) -> f64 {
        let b = self.batch() as f64;
        (self.total.iter().sum::<f64>() - b * self.mean_grad_sq) / (b - 1.0).max(1.0)
    }

    /// McCandlish et al.'s simple noise scale B = tr(Sigma) / |G|^2.
    pub fn noise_scale(&self) -> f64 {
        self.variance() / self.mean_grad_sq
    }
}

/// One backward pass over a batch, keeping the layer signals.
struct Signals<B: Backend> {
    tape: Tape<B>,
    vars: Forward,
    grads: crate::tape::Grads<B>,
    rows: usize,
}

impl<B: Backend> Signals<B> {
    fn view(&self) -> View<'_, B> {
        View {
            tape: &self.tape,
            grads: &self.grads,
            batch: self.rows,
        }
    }
}

fn signals<B: Backend>(
    be: &B,
    model: &Model<B>,
    x: &Tensor<B>,
    target: &Tensor<B>,
    kind: LossKind,
) -> Result<Signals<B>> {
    if model.ensemble != 1 {
        return Err(Error::msg(
            "per-sample gradients are measured one model at a time (ensemble of 1)",
        ));
    }
    refuse_mixing(model, "per-sample gradients")?;
    let rows = x.shape().first().copied().unwrap_or(0);
    if rows < 2 {
        return Err(Error::msg(
            "per-sample statistics need at least two examples",
        ));
    }
    let mut tape = Tape::new(be.clone());
    let xv = tape.leaf(x.clone(), false);
    let vars = model.forward(&mut tape, xv, true)?;
    let loss = tape.apply(
        Box::new(LossHead::new(kind, target.clone())),
        &[vars.output],
    )?;
    let grads = tape.backward(loss, be.from_f64(&[1], &[1.0])?)?;
    Ok(Signals {
        tape,
        vars,
        grads,
        rows,
    })
}

/// Per-example gradient norms on a batch `x` with targets `target`.
pub fn per_sample_norms<B: Backend>(
    be: &B,
    model: &Model<B>,
    x: &Tensor<B>,
    target: &Tensor<B>,
    kind: LossKind,
) -> Result<PerSampleNorms> {
    let s = signals(be, model, x, target, kind)?;
    // d_i of the batch-mean loss is 1/B of example i's own signal.
    let b2 = (s.rows * s.rows) as f64;
    let groups = model.graph.groups.len();
    let mut per_layer = vec![vec![0.0; s.rows]; groups];
    let mut methods = vec![Method::Direct; groups];
    let shared = sites::shared_weights(&s.vars.sites);
    for site in &s.vars.sites {
        if sites::reads_shared(site, &shared) {
            continue;
        }
        let (norms, method) = sites::sq_norms(be, &s.view(), site)?;
        let g = sites::group(site);
        for (acc, v) in per_layer[g].iter_mut().zip(&norms) {
            *acc += b2 * v;
        }
        if method != Method::Direct {
            methods[g] = method;
        }
    }
    for (_, g, grad) in sites::shared_gradients(be, &s.view(), &s.vars.sites, &shared)? {
        let norms = be.to_f64(&be.row_sq_norms(&grad)?)?;
        for (acc, v) in per_layer[g].iter_mut().zip(&norms) {
            *acc += b2 * v;
        }
        methods[g] = Method::Materialized;
    }
    let mut total = vec![0.0; s.rows];
    for layer in &per_layer {
        for (t, v) in total.iter_mut().zip(layer) {
            *t += v;
        }
    }
    let mut mean_grad_sq = 0.0;
    for v in &s.vars.params {
        let g = s
            .grads
            .get(*v)
            .ok_or_else(|| Error::msg("internal: a parameter got no gradient"))?;
        mean_grad_sq += be.sum_sq(g)?[0];
    }
    Ok(PerSampleNorms {
        per_layer,
        total,
        mean_grad_sq,
        methods,
    })
}

/// The full per-example gradients `[B][P]` (in `Model::params()` order),
/// for small models: refused when B x P exceeds `max_entries`.
pub fn per_sample_gradients<B: Backend>(
    be: &B,
    model: &Model<B>,
    x: &Tensor<B>,
    target: &Tensor<B>,
    kind: LossKind,
    max_entries: usize,
) -> Result<Vec<Vec<f64>>> {
    let p = model.param_count();
    let rows = x.shape().first().copied().unwrap_or(0);
    if rows.saturating_mul(p) > max_entries {
        return Err(Error::msg(format!(
            "full per-sample gradients of {rows} examples x {p} parameters exceed the limit of {max_entries} values; \
             use the per-sample norms instead"
        )));
    }
    let s = signals(be, model, x, target, kind)?;
    let bsz = s.rows as f64;
    let mut blocks: Vec<Option<Vec<f64>>> = vec![None; model.params().len()];
    for site in &s.vars.sites {
        // A tied weight's sites add up.
        for (param, g) in sites::gradients(be, &s.view(), site)? {
            let g = be.to_f64(&g)?;
            match &mut blocks[param] {
                Some(sum) => sum.iter_mut().zip(&g).for_each(|(s, v)| *s += v),
                None => blocks[param] = Some(g),
            }
        }
    }
    let mut out = vec![Vec::with_capacity(p); s.rows];
    for block in blocks {
        let block =
            block.ok_or_else(|| Error::msg("internal: a parameter has no per-example gradient"))?;
        let n = block.len() / s.rows;
        for (i, g) in out.iter_mut().enumerate() {
            g.extend(block[i * n..(i + 1) * n].iter().map(|v| v * bsz));
        }
    }
    Ok(out)
}

/// An error when the model has a layer that mixes the examples of a batch
/// (BatchNorm), for which `what` (per-example quantities) is not defined.
pub fn refuse_mixing<B: Backend>(model: &Model<B>, what: &str) -> Result<()> {
    match model.graph.mixing_layer() {
        None => Ok(()),
        Some(key) => Err(Error::config(
            key,
            format!(
                "{what} are not defined for a model with BatchNorm: it mixes the examples of a batch \
                 (losses, gradients, HVPs and spectra work; use layer_norm or rms_norm for per-example measurements)"
            ),
        )),
    }
}
