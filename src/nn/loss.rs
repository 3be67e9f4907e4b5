//! Loss kinds and their names in configs. The kernels live in each backend
//! (`loss` op); this file fixes the conventions they implement, and how
//! sequence labels are read as one example per position above the kernels.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Softmax cross-entropy on integer labels, mean over examples; with
    /// sequence labels, mean over every position (see [`position_views`]).
    CrossEntropy,
    /// `0.5 * ||f - y||^2` summed over outputs, mean over examples: the
    /// convention of the edge-of-stability literature (Cohen et al. 2021).
    Mse,
    /// Plain mean squared error: mean over examples and outputs of
    /// `(f - y)^2` (PyTorch's `nn.MSELoss()`).
    MseMean,
}

impl LossKind {
    pub const NAMES: [&'static str; 3] = ["xent", "mse", "mse_mean"];

    pub fn name(self) -> &'static str {
        match self {
            LossKind::CrossEntropy => "xent",
            LossKind::Mse => "mse",
            LossKind::MseMean => "mse_mean",
        }
    }

    pub fn parse(key: &str, s: &str) -> Result<Self> {
        match s {
            "xent" | "cross_entropy" => Ok(LossKind::CrossEntropy),
            "mse" => Ok(LossKind::Mse),
            "mse_mean" => Ok(LossKind::MseMean),
            _ => Err(Error::config(
                key,
                format!(
                    "unknown loss {s:?}; expected one of {}",
                    Self::NAMES.join(", ")
                ),
            )),
        }
    }

    pub fn needs_labels(self) -> bool {
        self == LossKind::CrossEntropy
    }
}

/// The views of outputs `f` and `target` the loss kernels see. Under
/// cross-entropy, sequence labels `[B, T]` make outputs `[E, B, T*V]` (each
/// example's T positions of V logits, channels-last) into `[E, B*T, V]` and
/// the labels into `[B*T]`: the kernels' mean over rows is then the mean
/// over all B*T positions, which is the mean over examples of each one's
/// mean over its positions, so one sequence still weighs as one example.
/// Anything else is returned as it is. Reshapes are metadata only, and
/// the kernels are untouched, so every backend gets sequences at once.
pub fn position_views<B: Backend>(
    kind: LossKind,
    f: &Tensor<B>,
    target: &Tensor<B>,
) -> Result<(Tensor<B>, Tensor<B>)> {
    let &[b, t] = target.shape() else {
        return Ok((f.clone(), target.clone()));
    };
    if kind != LossKind::CrossEntropy {
        return Ok((f.clone(), target.clone()));
    }
    let (e, rows, width) = f.as_batched()?;
    if rows != b || t == 0 || width % t != 0 {
        return Err(Error::shape(format!(
            "outputs {:?} do not fit sequence labels {:?}: each of the {b} examples needs \
             {t} positions of logits",
            f.shape(),
            target.shape()
        )));
    }
    let rows = [b * t, width / t];
    let view = if f.shape().len() == 3 {
        f.clone().reshape(&[e, rows[0], rows[1]])?
    } else {
        f.clone().reshape(&rows)?
    };
    Ok((view, target.clone().reshape(&[b * t])?))
}

/// Per member, how many examples' worth of outputs `f` is right against
/// `labels`: the rows whose argmax is the label, or for sequence labels
/// `[B, T]` the positions that are, divided by T. Divided by B this is the
/// accuracy: for sequences, the fraction of positions right.
pub fn examples_correct<B: Backend>(be: &B, f: &Tensor<B>, labels: &Tensor<B>) -> Result<Vec<f64>> {
    let (fv, lv) = position_views(LossKind::CrossEntropy, f, labels)?;
    let positions = labels.shape().get(1).copied().unwrap_or(1).max(1);
    Ok(be
        .count_correct(&fv, &lv)?
        .into_iter()
        .map(|c| c / positions as f64)
        .collect())
}
