//! Loss kinds and their names in configs. The kernels live in each backend
//! (`loss` op); this file fixes the conventions they implement, and how
//! sequence labels are read as one row per position, their ignored
//! positions masked out, above the kernels (`LossRows`).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Softmax cross-entropy on integer labels, mean over examples; with
    /// sequence labels, mean over every position that is not ignored (see
    /// [`LossRows`]).
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

/// How an ignored position of sequence labels is stored in a target tensor
/// on a device (`Targets::Sequence`'s `None`): a label no class can be, so
/// it is never counted right.
pub const IGNORED: f64 = -1.0;

/// The logit an ignored row is given at column 0 after being zeroed, so
/// that its softmax is exactly one-hot (e^-1024 is 0 in f16, f32 and f64)
/// and its loss, gradient and Hessian are exactly zero whatever the kernel.
const IGNORED_LOGIT: f64 = 1024.0;

/// The views of outputs `f` and `target` the loss kernels see. Under
/// cross-entropy, sequence labels `[B, T]` make outputs `[E, B, T*V]` (each
/// example's T positions of V logits, channels-last) into `[E, B*T, V]` and
/// the labels into `[B*T]`: the kernels' mean over rows is then the mean
/// over all B*T positions, which is the mean over examples of each one's
/// mean over its positions, so one sequence still weighs as one example.
/// Anything else is returned as it is. Reshapes are metadata only, and
/// the kernels are untouched, so every backend gets sequences at once.
fn position_views<B: Backend>(
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

/// The loss of outputs `f` against `target` as the backend's loss kernels
/// compute it, with ignored positions of sequence labels (label
/// [`IGNORED`], or any negative one) masked out above the kernels: the loss
/// is the mean over the K kept positions of the whole batch, PyTorch's
/// `cross_entropy(..., ignore_index)` with the mean reduction, and 0 (with
/// a zero gradient) when K = 0.
///
/// The kernels see every row: an ignored row is zeroed and given the logit
/// [`IGNORED_LOGIT`] at class 0 with label 0, so it adds exactly 0 to their
/// mean over the R rows, which is then scaled by R / K. The gradient and
/// the Hessian-vector product are the kernels' times R / K on kept rows
/// and 0 on ignored ones: the chain rule through "zero the ignored rows",
/// so every curvature product follows. With nothing ignored this is the
/// kernels' own result, untouched.
pub struct LossRows<B: Backend> {
    kind: LossKind,
    /// `f` as the kernels see it (`position_views`, ignored rows replaced).
    f: Tensor<B>,
    target: Tensor<B>,
    /// The shape of `f` as given, that gradients come back in.
    shape: Vec<usize>,
    /// With ignored rows: R / K (0 when K = 0) on each kept row and 0 on
    /// each ignored one, `[E * R]`, and R / K itself.
    mask: Option<(Tensor<B>, f64)>,
    scored: usize,
}

impl<B: Backend> LossRows<B> {
    /// Reads sequence labels back to the host (`B * T` values) to find the
    /// ignored positions; other targets are not read.
    pub fn new(be: &B, kind: LossKind, f: &Tensor<B>, target: &Tensor<B>) -> Result<Self> {
        let (fv, tv) = position_views(kind, f, target)?;
        let rows = fv.as_batched()?.1;
        let plain = LossRows {
            kind,
            f: fv,
            target: tv,
            shape: f.shape().to_vec(),
            mask: None,
            scored: rows,
        };
        if kind != LossKind::CrossEntropy || target.shape().len() != 2 {
            return Ok(plain);
        }
        let labels = be.to_f64(&plain.target)?;
        if labels.iter().all(|&l| l >= 0.0) {
            return Ok(plain);
        }
        plain.masked(be, &labels)
    }

    /// The kernels' view with the rows whose label is negative replaced.
    fn masked(self, be: &B, labels: &[f64]) -> Result<Self> {
        let (e, r, v) = self.f.as_batched()?;
        let kept = labels.iter().filter(|&&l| l >= 0.0).count();
        let scale = if kept == 0 {
            0.0
        } else {
            r as f64 / kept as f64
        };
        let per_row = |on_kept: f64, on_ignored: f64| -> Vec<f64> {
            let one: Vec<f64> = labels
                .iter()
                .map(|&l| if l >= 0.0 { on_kept } else { on_ignored })
                .collect();
            one.repeat(e)
        };
        let rows = |x: &Tensor<B>| x.clone().reshape(&[e * r, v]);
        let mut f =
            be.scale_members(&rows(&self.f)?, &be.from_f64(&[e * r], &per_row(1.0, 0.0))?)?;
        let at = be.from_f64(&[e * r, 1], &vec![0.0; e * r])?;
        let logit = be.from_f64(&[e * r, 1], &per_row(0.0, IGNORED_LOGIT))?;
        be.axpy(&mut f, 1.0, &be.row_place(&logit, &at, v)?)?;
        let target: Vec<f64> = labels.iter().map(|&l| l.max(0.0)).collect();
        Ok(LossRows {
            f: f.reshape(self.f.shape())?,
            target: be.from_f64(&[r], &target)?,
            mask: Some((be.from_f64(&[e * r], &per_row(scale, 0.0))?, scale)),
            scored: kept,
            ..self
        })
    }

    /// How many rows the mean is over: the kept positions of sequence
    /// labels, else the examples.
    pub fn scored(&self) -> usize {
        self.scored
    }

    /// Each member's mean loss `[E]` and its gradient in `f`'s shape.
    pub fn loss(&self, be: &B) -> Result<(Tensor<B>, Tensor<B>)> {
        let (loss, grad) = be.loss(self.kind, &self.f, &self.target)?;
        let Some((_, scale)) = &self.mask else {
            return Ok((loss, grad.reshape(&self.shape)?));
        };
        let e = loss.numel();
        let loss = be.scale_members(&loss, &be.from_f64(&[e], &vec![*scale; e])?)?;
        Ok((loss, self.on_kept_rows(be, grad)?))
    }

    /// The Hessian of each member's mean loss with respect to `f` applied
    /// to `f_dot` (in `f`'s shape).
    pub fn hvp(&self, be: &B, f_dot: &Tensor<B>) -> Result<Tensor<B>> {
        let fd = f_dot.clone().reshape(self.f.shape())?;
        let h = be.loss_hvp(self.kind, &self.f, &self.target, &fd)?;
        match &self.mask {
            None => h.reshape(&self.shape),
            Some(_) => self.on_kept_rows(be, h),
        }
    }

    /// A kernel result per row, scaled by R / K on kept rows and zeroed on
    /// ignored ones, in `f`'s shape.
    fn on_kept_rows(&self, be: &B, x: Tensor<B>) -> Result<Tensor<B>> {
        let Some((mask, _)) = &self.mask else {
            return x.reshape(&self.shape);
        };
        let rows = mask.numel();
        let width = x.numel() / rows.max(1);
        be.scale_members(&x.reshape(&[rows, width])?, mask)?
            .reshape(&self.shape)
    }
}

/// How many rows a loss on `target` averages over, for weighing chunks of
/// a data set: the kept positions of sequence labels (read back to the
/// host), else `examples`.
pub fn scored_rows<B: Backend>(
    be: &B,
    kind: LossKind,
    target: &Tensor<B>,
    examples: usize,
) -> Result<usize> {
    if kind != LossKind::CrossEntropy || target.shape().len() != 2 {
        return Ok(examples);
    }
    Ok(be.to_f64(target)?.iter().filter(|&&l| l >= 0.0).count())
}

/// Per member, how many labels the argmax of outputs `f` gets right: one
/// label per example for `labels` `[B]`, one per position for sequence
/// labels `[B, T]`, where an ignored position (a negative label) is never
/// counted. Divided by the scored labels (`Targets::scored`) this is the
/// accuracy: for sequences, the fraction of kept positions right.
pub fn labels_correct<B: Backend>(be: &B, f: &Tensor<B>, labels: &Tensor<B>) -> Result<Vec<f64>> {
    let (fv, lv) = position_views(LossKind::CrossEntropy, f, labels)?;
    be.count_correct(&fv, &lv)
}
