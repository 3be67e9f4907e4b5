//! The training loss of one model on a whole data set, held as device chunks:
//! its value, gradient, and Hessian- or Gauss-Newton-vector products. The
//! loss over N examples is the chunk losses weighted by n_c / N (for
//! sequence labels, by the chunk's share of the kept positions, since each
//! chunk's loss is a mean over its own), so each chunk's backward pass is
//! seeded with that weight and the products add up.
//!
//! When the data fits in one chunk, the first product keeps its tape: the
//! forward values and the backward pass's plain cotangents do not depend on
//! the direction v, so later products at the same point recompute only the
//! tangents (as PyHessian reuses its graph). The model is borrowed for the
//! life of a `LossOnData`, so the point cannot move under the cache.

use super::flat::{flatten, unflatten};
use crate::backend::{Backend, DType};
use crate::error::{Error, Result};
use crate::linalg::BasisStorage;
use crate::nn::loss::{scored_rows, LossKind};
use crate::nn::model::Model;
use crate::tape::{Curvature, Grads, LossHead, Tape, Var};
use crate::tensor::Tensor;
use std::cell::{Cell, RefCell};

/// A one-chunk tape kept between products at the same point.
struct Cached<B: Backend> {
    tape: Tape<B>,
    params: Vec<Var>,
    loss: Var,
    grads: Grads<B>,
}

pub struct LossOnData<'a, B: Backend> {
    be: B,
    model: &'a Model<B>,
    kind: LossKind,
    /// (inputs, targets, scored rows) per chunk: the rows its loss is a
    /// mean over (`nn::loss::scored_rows`).
    chunks: Vec<(Tensor<B>, Tensor<B>, usize)>,
    examples: usize,
    /// The chunks' scored rows together.
    total: usize,
    products: Cell<usize>,
    cache: RefCell<Option<Cached<B>>>,
}

impl<'a, B: Backend> LossOnData<'a, B> {
    /// `chunks` are (inputs `[n_c, d]`, targets) pairs covering the data set.
    /// Curvature is measured for one model: an ensemble of one.
    pub fn new(
        be: &B,
        model: &'a Model<B>,
        kind: LossKind,
        chunks: Vec<(Tensor<B>, Tensor<B>)>,
    ) -> Result<Self> {
        if model.ensemble != 1 {
            return Err(Error::msg(format!(
                "curvature is measured one model at a time; this model is an ensemble of {}",
                model.ensemble
            )));
        }
        let mut examples = 0;
        let mut scored = Vec::with_capacity(chunks.len());
        for (x, t) in chunks {
            let rows = x.shape().first().copied().unwrap_or(0);
            examples += rows;
            let weight = scored_rows(be, kind, &t, rows)?;
            scored.push((x, t, weight));
        }
        let chunks = scored;
        let total = chunks.iter().map(|c| c.2).sum();
        if examples == 0 {
            return Err(Error::msg("curvature needs at least one example"));
        }
        if total == 0 {
            return Err(Error::msg(
                "curvature needs at least one scored position: every target is ignored",
            ));
        }
        Ok(LossOnData {
            be: be.clone(),
            model,
            kind,
            chunks,
            examples,
            total,
            products: Cell::new(0),
            cache: RefCell::new(None),
        })
    }

    /// Number of parameters (the dimension of the products).
    pub fn dim(&self) -> usize {
        self.model.params().iter().map(|p| p.numel()).sum()
    }

    /// The Lanczos basis that suits these products at relative tolerance
    /// `tol`: `f32` where they are computed in `f32` or `f16` (see
    /// `BasisStorage::for_operator`).
    pub fn basis_storage(&self, tol: f64) -> BasisStorage {
        BasisStorage::for_operator(self.be.dtype() == DType::F64, tol)
    }

    pub fn examples(&self) -> usize {
        self.examples
    }

    /// How many Hessian or Gauss-Newton products have been computed.
    pub fn products(&self) -> usize {
        self.products.get()
    }

    fn weight(&self, rows: usize) -> Result<Tensor<B>> {
        self.be.from_f64(&[1], &[rows as f64 / self.total as f64])
    }

    /// The mean loss over the data set and its gradient, per parameter.
    pub fn gradient(&self) -> Result<(f64, Vec<Tensor<B>>)> {
        let mut loss = 0.0;
        let mut acc: Option<Vec<Tensor<B>>> = None;
        for (x, t, rows) in &self.chunks {
            let mut tape = Tape::new(self.be.clone());
            let xv = tape.leaf(x.clone(), false);
            let vars = self.model.forward(&mut tape, xv, true)?;
            let l = tape.apply(
                Box::new(LossHead::new(self.kind, t.clone())),
                &[vars.output],
            )?;
            loss += self.be.to_f64(tape.value(l))?[0] * *rows as f64 / self.total as f64;
            let mut g = tape.backward(l, self.weight(*rows)?)?;
            let grads: Vec<Tensor<B>> = vars
                .params
                .iter()
                .copied()
                .map(|v| {
                    g.take(v)
                        .ok_or_else(|| Error::msg("internal: a parameter got no gradient"))
                })
                .collect::<Result<_>>()?;
            acc = Some(self.accumulate(acc, grads)?);
        }
        Ok((loss, acc.unwrap_or_default()))
    }

    fn accumulate(
        &self,
        acc: Option<Vec<Tensor<B>>>,
        add: Vec<Tensor<B>>,
    ) -> Result<Vec<Tensor<B>>> {
        match acc {
            None => Ok(add),
            Some(mut acc) => {
                for (a, b) in acc.iter_mut().zip(&add) {
                    self.be.axpy(a, 1.0, b)?;
                }
                Ok(acc)
            }
        }
    }

    /// `H v` or `G v` for a direction given per parameter tensor.
    pub fn product_tensors(&self, v: &[Tensor<B>], mode: Curvature) -> Result<Vec<Tensor<B>>> {
        let params = self.model.params();
        if v.len() != params.len() {
            return Err(Error::shape(format!(
                "{} direction tensors for {} parameters",
                v.len(),
                params.len()
            )));
        }
        self.products.set(self.products.get() + 1);
        if self.chunks.len() == 1 {
            return self.cached_product(v, mode);
        }
        let mut acc: Option<Vec<Tensor<B>>> = None;
        for (x, t, rows) in &self.chunks {
            let (tape, pv, l) = self.record(x, t, v)?;
            let (_, dots) =
                tape.backward_with_tangents(l, self.weight(*rows)?, None, mode, false)?;
            acc = Some(self.accumulate(acc, self.collect(&dots, &pv)?)?);
        }
        acc.ok_or_else(|| Error::msg("curvature needs at least one chunk"))
    }

    /// Forward pass of one chunk with the parameters carrying tangents `v`.
    fn record(
        &self,
        x: &Tensor<B>,
        t: &Tensor<B>,
        v: &[Tensor<B>],
    ) -> Result<(Tape<B>, Vec<Var>, Var)> {
        let mut tape = Tape::new(self.be.clone());
        let xv = tape.leaf(x.clone(), false);
        let pv = self
            .model
            .params()
            .iter()
            .zip(v)
            .map(|(p, d)| tape.leaf_with_tangent((*p).clone(), d.clone(), true))
            .collect::<Result<Vec<_>>>()?;
        let vars = self.model.forward_with(&mut tape, xv, &pv)?;
        let l = tape.apply(
            Box::new(LossHead::new(self.kind, t.clone())),
            &[vars.output],
        )?;
        Ok((tape, pv, l))
    }

    /// The parameters' cotangent tangents (zero where a parameter got none).
    fn collect(&self, dots: &Grads<B>, pv: &[Var]) -> Result<Vec<Tensor<B>>> {
        pv.iter()
            .zip(self.model.params())
            .map(|(var, p)| match dots.get(*var) {
                Some(d) => Ok(d.clone()),
                None => self.be.zeros(p.shape()),
            })
            .collect()
    }

    fn cached_product(&self, v: &[Tensor<B>], mode: Curvature) -> Result<Vec<Tensor<B>>> {
        let mut cache = self.cache.borrow_mut();
        if let Some(c) = cache.as_mut() {
            let leaves: Vec<(Var, Tensor<B>)> =
                c.params.iter().copied().zip(v.iter().cloned()).collect();
            c.tape.retangent(&leaves)?;
            let dots = c.tape.tangent_backward(c.loss, &c.grads, mode)?;
            return self.collect(&dots, &c.params);
        }
        let (x, t, rows) = &self.chunks[0];
        let (tape, params, loss) = self.record(x, t, v)?;
        // One pass gives this product and the cotangents later ones reuse
        // (the parameters' own gradients are not needed and are skipped).
        let (grads, dots) =
            tape.backward_with_tangents(loss, self.weight(*rows)?, None, mode, false)?;
        let out = self.collect(&dots, &params)?;
        *cache = Some(Cached {
            tape,
            params,
            loss,
            grads,
        });
        Ok(out)
    }

    /// `H v` or `G v` for a flat host vector `v`.
    pub fn product(&self, v: &[f64], mode: Curvature) -> Result<Vec<f64>> {
        let params = self.model.params();
        let vt = unflatten(&self.be, v, &params)?;
        flatten(&self.be, &self.product_tensors(&vt, mode)?)
    }
}
