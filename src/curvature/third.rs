//! Third-derivative products of a model's loss on a data set:
//! `T[d, v, .] = d/ds H(w + s d) v` at s = 0, the gradient of the curvature
//! `v^T H(w) v'` seen along `d` (T is symmetric in its three slots). The
//! central flow needs them for the gradient of `<X, U^T H U>` and for the
//! rate of change of `U^T H U` along the flow.
//!
//! They are central differences of Hessian-vector products, not a fourth
//! pass of forward mode: the tape's R-op has one tangent per value, and a
//! second one would double every op's tangent rule for one observer. The
//! difference `(H(w + h d) v - H(w - h d) v) / 2h` has a truncation error of
//! `h^2 |d|^2 / 6` times the fourth derivative and a rounding error of about
//! `eps |H v| / (h |d|)`. The step moves the weights by `h |d| = 1e-5` in f64
//! (truncation ~1e-10 relative to the loss's own length scale squared,
//! rounding ~1e-11 of `|H v|`) and by `cbrt(eps) ~ 5e-3` in f32 and f16,
//! where rounding dominates and the products are good to a few 1e-5 at
//! best: exactness checks run in f64 (`tests/third_derivative.rs`, against
//! second differences of gradients at 1e-6).
//!
//! Each displaced point is one one-chunk `LossOnData` when the data fits a
//! chunk, so the products with several `v` along one `d` reuse its forward
//! pass: k vectors along one direction cost 2 forward passes and 2k tangent
//! passes.

use super::flat::{flatten, unflatten};
use super::loss_on_data::LossOnData;
use crate::backend::{Backend, DType};
use crate::error::{Error, Result};
use crate::linalg::norm;
use crate::nn::loss::LossKind;
use crate::nn::model::Model;
use crate::tape::Curvature;
use crate::tensor::Tensor;
use std::cell::Cell;

/// How far (in parameter norm) each side of a central difference moves the
/// weights, for a backend's dtype.
pub fn third_difference_step(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-5,
        DType::F32 | DType::F16 => f32::EPSILON.cbrt() as f64,
    }
}

pub struct ThirdOnData<'a, B: Backend> {
    be: B,
    model: &'a Model<B>,
    kind: LossKind,
    chunks: Vec<(Tensor<B>, Tensor<B>)>,
    theta: Vec<f64>,
    step: f64,
    hvps: Cell<usize>,
}

impl<'a, B: Backend> ThirdOnData<'a, B> {
    /// The same data chunks as `LossOnData::new`; curvature of one model.
    pub fn new(
        be: &B,
        model: &'a Model<B>,
        kind: LossKind,
        chunks: Vec<(Tensor<B>, Tensor<B>)>,
    ) -> Result<Self> {
        if model.ensemble != 1 {
            return Err(Error::msg(format!(
                "third derivatives are measured one model at a time; this model is an ensemble of {}",
                model.ensemble
            )));
        }
        let theta = flatten(be, &model.params().into_iter().cloned().collect::<Vec<_>>())?;
        Ok(ThirdOnData {
            be: be.clone(),
            model,
            kind,
            chunks,
            theta,
            step: third_difference_step(be.dtype()),
            hvps: Cell::new(0),
        })
    }

    /// Replaces the displacement `h |d|` of each side of the difference.
    pub fn with_step(mut self, step: f64) -> Result<Self> {
        if !(step.is_finite() && step > 0.0) {
            return Err(Error::msg(format!(
                "the third-derivative step must be positive and finite, got {step}"
            )));
        }
        self.step = step;
        Ok(self)
    }

    /// Hessian-vector products spent so far.
    pub fn hvps(&self) -> usize {
        self.hvps.get()
    }

    /// `T[d, v, .]` for each `v` in `vs`, as flat vectors.
    pub fn along(&self, d: &[f64], vs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        let n = self.theta.len();
        if d.len() != n || vs.iter().any(|v| v.len() != n) {
            return Err(Error::shape(format!(
                "third-derivative directions must have {n} entries (the model's parameters)"
            )));
        }
        let len = norm(d);
        if len == 0.0 || !len.is_finite() {
            return Err(Error::msg(format!(
                "a third-derivative direction has norm {len}; it must be non-zero and finite"
            )));
        }
        let h = self.step / len;
        let plus = self.hessian_products_at(h, d, vs)?;
        let minus = self.hessian_products_at(-h, d, vs)?;
        Ok(plus
            .into_iter()
            .zip(minus)
            .map(|(p, m)| p.iter().zip(&m).map(|(a, b)| (a - b) / (2.0 * h)).collect())
            .collect())
    }

    /// `H(w + s d) v` for each `v`, at one displaced copy of the model.
    fn hessian_products_at(&self, s: f64, d: &[f64], vs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        let mut moved = self.model.member(&self.be, 0)?;
        let shifted: Vec<f64> = self.theta.iter().zip(d).map(|(w, x)| w + s * x).collect();
        let like: Vec<Tensor<B>> = self.model.params().into_iter().cloned().collect();
        let refs: Vec<&Tensor<B>> = like.iter().collect();
        for (dst, t) in moved
            .params_mut()
            .into_iter()
            .zip(unflatten(&self.be, &shifted, &refs)?)
        {
            *dst = t;
        }
        let lod = LossOnData::new(&self.be, &moved, self.kind, self.chunks.clone())?;
        let out = vs
            .iter()
            .map(|v| lod.product(v, Curvature::Hessian))
            .collect::<Result<Vec<_>>>()?;
        self.hvps.set(self.hvps.get() + lod.products());
        Ok(out)
    }
}
