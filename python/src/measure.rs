//! The measurements of `lmech.Model` on a data set given as arrays, for a
//! model on any backend: the data set is checked and uploaded by the
//! engine's own code (`Dataset::new`, `upload_inputs_and_targets`), and each
//! measurement is the engine's function (`LossOnData`, `linalg`,
//! `observe`), timed and with its count of curvature products.

use crate::arrays::HostArray;
use lmech::curvature::LossOnData;
use lmech::data::{upload_inputs_and_targets, Dataset, Targets};
use lmech::linalg::{
    self, DiagonalEstimate, LanczosOptions, LanczosResult, SpectralDensity, TraceEstimate,
};
use lmech::nn::loss::LossKind;
use lmech::nn::model::Model;
use lmech::observe::ntk::{empirical_ntk, Ntk};
use lmech::observe::per_sample::{per_sample_gradients, per_sample_norms, PerSampleNorms};
use lmech::tape::Curvature;
use lmech::{Backend, Error, Result, Tensor};
use std::time::Instant;

/// Rows per device chunk of a data set: bounds the activations one
/// forward pass holds; a data set within one chunk keeps its tape between
/// products (see `LossOnData`).
pub const CHUNK_ROWS: usize = 4096;

/// What a measurement cost.
pub struct Cost {
    pub products: usize,
    pub seconds: f64,
}

/// Examples and features of inputs `[n, ...]`.
fn rows_and_features(x: &HostArray) -> Result<(usize, usize)> {
    match x.shape.split_first() {
        Some((&n, rest)) if !rest.is_empty() => Ok((n, rest.iter().product())),
        _ => Err(Error::shape(format!(
            "inputs x must be [n, features...], got shape {:?}",
            x.shape
        ))),
    }
}

/// A class label or an ignored position (negative) read from a float.
fn label(v: f64, i: usize) -> Result<Option<usize>> {
    if v.fract() != 0.0 || !v.is_finite() {
        return Err(Error::shape(format!(
            "targets y[{i}] = {v}: cross-entropy needs integer class labels"
        )));
    }
    Ok((v >= 0.0).then_some(v as usize))
}

/// The data set `(x, y)` for a model with `outputs` outputs and loss
/// `kind`: class labels `[n]` (or `[n, t]` per position, negative =
/// ignored) for cross-entropy, values `[n, k]` for the squared losses.
pub fn dataset(kind: LossKind, outputs: usize, x: &HostArray, y: &HostArray) -> Result<Dataset> {
    let (n, d) = rows_and_features(x)?;
    if y.shape.first() != Some(&n) {
        return Err(Error::shape(format!(
            "targets y have shape {:?} for {n} examples",
            y.shape
        )));
    }
    let per_row: usize = y.shape[1..].iter().product();
    let targets = if kind == LossKind::CrossEntropy {
        let labels = (y.values.iter().enumerate())
            .map(|(i, &v)| label(v, i))
            .collect::<Result<Vec<_>>>()?;
        if y.shape.len() == 1 {
            let y = labels.into_iter().map(|l| {
                l.ok_or_else(|| {
                    Error::shape(
                        "targets y: a negative label (ignored positions need y of shape [n, t])",
                    )
                })
            });
            Targets::Labels {
                y: y.collect::<Result<_>>()?,
                classes: outputs,
            }
        } else {
            Targets::Sequence {
                y: labels,
                t: per_row,
                classes: outputs / per_row.max(1),
            }
        }
    } else {
        Targets::Values {
            y: y.values.clone(),
            k: per_row,
        }
    };
    Dataset::new(x.values.clone(), n, d, targets)
}

/// `ds` on the device in chunks of at most `CHUNK_ROWS` examples.
pub fn chunks<B: Backend>(
    be: &B,
    ds: &Dataset,
    kind: LossKind,
) -> Result<Vec<(Tensor<B>, Tensor<B>)>> {
    (0..ds.n)
        .step_by(CHUNK_ROWS)
        .map(|start| {
            let idx: Vec<usize> = (start..(start + CHUNK_ROWS).min(ds.n)).collect();
            upload_inputs_and_targets(be, &ds.subset(&idx), kind)
        })
        .collect()
}

fn curvature(gauss_newton: bool) -> Curvature {
    if gauss_newton {
        Curvature::GaussNewton
    } else {
        Curvature::Hessian
    }
}

/// Runs `f` on the loss of `model` over `ds`, timing it and counting its
/// curvature products.
fn on_loss<B: Backend, T>(
    be: &B,
    model: &Model<B>,
    kind: LossKind,
    ds: &Dataset,
    f: impl FnOnce(&LossOnData<'_, B>) -> Result<T>,
) -> Result<(T, Cost)> {
    let started = Instant::now();
    let lod = LossOnData::new(be, model, kind, chunks(be, ds, kind)?)?;
    let out = f(&lod)?;
    let cost = Cost {
        products: lod.products(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((out, cost))
}

/// The mean loss over `ds` and its flattened gradient.
pub fn gradient<B: Backend>(
    be: &B,
    model: &Model<B>,
    kind: LossKind,
    ds: &Dataset,
) -> Result<((f64, Vec<f64>), Cost)> {
    on_loss(be, model, kind, ds, |lod| {
        let (loss, grads) = lod.gradient()?;
        Ok((loss, lmech::curvature::flatten(be, &grads)?))
    })
}

/// The Hessian (or Gauss-Newton) products with `vs`: one direction `[P]`
/// or `k` of them (`[k, P]` row-major), all on one `LossOnData`: with the
/// data in one chunk, every product after the first reuses its tape.
pub fn products<B: Backend>(
    be: &B,
    model: &Model<B>,
    kind: LossKind,
    ds: &Dataset,
    vs: &HostArray,
    gauss_newton: bool,
) -> Result<(Vec<f64>, Cost)> {
    on_loss(be, model, kind, ds, |lod| {
        let p = lod.dim();
        match vs.shape[..] {
            [n] if n != p => {
                return Err(Error::shape(format!(
                    "v has {n} values for a {p}-parameter model"
                )))
            }
            [_] => {}
            [_, _] if p == 0 => {
                return Err(Error::msg("curvature products of a 0-parameter model"));
            }
            [_, n] if n == p => {}
            _ => {
                return Err(Error::shape(format!(
                    "directions of shape {:?} for a {p}-parameter model (need [k, {p}])",
                    vs.shape
                )))
            }
        }
        let mut out = Vec::with_capacity(vs.values.len());
        // (max: a 0-parameter model's one empty direction has no chunks)
        for v in vs.values.chunks(p.max(1)) {
            out.extend(lod.product(v, curvature(gauss_newton))?);
        }
        Ok(out)
    })
}

/// Top-k eigenpairs by Lanczos.
pub fn eigs<B: Backend>(
    be: &B,
    model: &Model<B>,
    kind: LossKind,
    ds: &Dataset,
    opts: &LanczosOptions,
    gauss_newton: bool,
) -> Result<(LanczosResult, Cost)> {
    on_loss(be, model, kind, ds, |lod| {
        let mut op = |v: &[f64]| lod.product(v, curvature(gauss_newton));
        linalg::lanczos_in(lod.dim(), &mut op, opts, lod.basis_storage(opts.tol))
    })
}

/// Hutchinson's trace estimate.
pub fn trace<B: Backend>(
    be: &B,
    model: &Model<B>,
    kind: LossKind,
    ds: &Dataset,
    probes: usize,
    seed: u64,
    gauss_newton: bool,
) -> Result<(TraceEstimate, Cost)> {
    on_loss(be, model, kind, ds, |lod| {
        let mut op = |v: &[f64]| lod.product(v, curvature(gauss_newton));
        linalg::hutchinson_trace(lod.dim(), &mut op, probes, seed)
    })
}

/// Hutchinson's estimate of the diagonal of `H` (or `G`).
pub fn diagonal<B: Backend>(
    be: &B,
    model: &Model<B>,
    kind: LossKind,
    ds: &Dataset,
    probes: usize,
    seed: u64,
    gauss_newton: bool,
) -> Result<(DiagonalEstimate, Cost)> {
    on_loss(be, model, kind, ds, |lod| {
        let mut op = |v: &[f64]| lod.product(v, curvature(gauss_newton));
        linalg::hutchinson_diagonal(lod.dim(), &mut op, probes, seed)
    })
}

/// The spectral density by stochastic Lanczos quadrature.
pub fn density<B: Backend>(
    be: &B,
    model: &Model<B>,
    kind: LossKind,
    ds: &Dataset,
    probes: usize,
    steps: usize,
    seed: u64,
) -> Result<(SpectralDensity, Cost)> {
    on_loss(be, model, kind, ds, |lod| {
        let mut op = |v: &[f64]| lod.product(v, Curvature::Hessian);
        linalg::slq(lod.dim(), &mut op, probes, steps, seed)
    })
}

/// Per-example squared gradient norms, per layer and in total, on the
/// whole of `ds` as one batch.
pub fn per_sample<B: Backend>(
    be: &B,
    model: &Model<B>,
    kind: LossKind,
    ds: &Dataset,
) -> Result<(PerSampleNorms, Cost)> {
    let started = Instant::now();
    let (x, t) = upload_inputs_and_targets(be, ds, kind)?;
    let norms = per_sample_norms(be, model, &x, &t, kind)?;
    let cost = Cost {
        products: 0,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((norms, cost))
}

/// Each example's full loss gradient `[n][P]` (in `param_names` order),
/// on the whole of `ds` as one batch; refused past `max_entries` values.
pub fn per_sample_grads<B: Backend>(
    be: &B,
    model: &Model<B>,
    kind: LossKind,
    ds: &Dataset,
    max_entries: usize,
) -> Result<(Vec<Vec<f64>>, Cost)> {
    let started = Instant::now();
    let (x, t) = upload_inputs_and_targets(be, ds, kind)?;
    let grads = per_sample_gradients(be, model, &x, &t, kind, max_entries)?;
    let cost = Cost {
        products: 0,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((grads, cost))
}

/// Uploads inputs `[n, ...]` as `[n, features]`.
fn inputs<B: Backend>(be: &B, x: &HostArray) -> Result<Tensor<B>> {
    let (n, d) = rows_and_features(x)?;
    be.from_f64(&[n, d], &x.values)
}

/// The empirical NTK on inputs `x`.
pub fn ntk<B: Backend>(be: &B, model: &Model<B>, x: &HostArray) -> Result<(Ntk, Cost)> {
    let started = Instant::now();
    let k = empirical_ntk(be, model, &inputs(be, x)?)?;
    let cost = Cost {
        products: 0,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((k, cost))
}

/// Outputs `[n, outputs]` of a single model (`[E, n, outputs]` for an
/// ensemble checkpoint) on inputs `x`.
pub fn forward<B: Backend>(
    be: &B,
    model: &Model<B>,
    x: &HostArray,
) -> Result<(Vec<f64>, Vec<usize>)> {
    let y = model.predict(be, &inputs(be, x)?)?;
    let mut shape = y.shape().to_vec();
    if model.ensemble == 1 && shape.len() == 3 {
        shape.remove(0);
    }
    Ok((be.to_f64(&y)?, shape))
}
