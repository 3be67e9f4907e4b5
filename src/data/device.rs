//! A data set on a backend: its inputs, loss targets and class labels
//! uploaded once, whole or in chunks, and the evaluation that reads them.
//! Training uploads each mini-batch as it is drawn; everything measured over
//! a fixed set (the training and test losses and accuracies, the observers'
//! data) is uploaded once per run and kept, because re-uploading it at every
//! measurement is a real cost on a GPU (a host-to-device copy of the whole
//! set, and on wgpu a staging buffer per copy).

use crate::backend::Backend;
use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};
use crate::nn::loss::{labels_correct, LossKind, LossRows, IGNORED};
use crate::nn::model::Model;
use crate::tensor::Tensor;

/// A data set on the device: inputs, loss targets and (where accuracy
/// applies) class labels, `[B]` or `[B, T]` for sequences.
#[derive(Clone)]
pub(crate) struct DeviceData<B: Backend> {
    /// The labels accuracy is a fraction of (`Targets::scored`).
    pub scored: usize,
    pub x: Tensor<B>,
    pub target: Tensor<B>,
    pub labels: Option<Tensor<B>>,
}

/// Sequence labels as a device stores them: an ignored position as
/// [`IGNORED`].
fn positions_f64(y: &[Option<usize>]) -> Vec<f64> {
    y.iter().map(|l| l.map_or(IGNORED, |c| c as f64)).collect()
}

/// Class labels for accuracy, with their shape: the labels themselves, one
/// per position for sequences, or the argmax of one-hot targets.
fn class_labels(ds: &Dataset) -> Option<(Vec<f64>, Vec<usize>)> {
    let as_f64 = |y: &[usize]| y.iter().map(|&c| c as f64).collect();
    match &ds.y {
        Targets::Labels { y, .. } => Some((as_f64(y), vec![ds.n])),
        Targets::Sequence { y, t, .. } => Some((positions_f64(y), vec![ds.n, *t])),
        Targets::Values { y, k } if *k > 1 => {
            let mut out = Vec::with_capacity(ds.n);
            for row in y.chunks(*k) {
                let ones = row.iter().filter(|&&v| v == 1.0).count();
                let zeros = row.iter().filter(|&&v| v == 0.0).count();
                if ones != 1 || ones + zeros != *k {
                    return None;
                }
                out.push(row.iter().position(|&v| v == 1.0)? as f64);
            }
            Some((out, vec![ds.n]))
        }
        Targets::Values { .. } => None,
    }
}

/// The loss head's targets for `ds`, as (values, shape): class indices for
/// cross-entropy (`[n]`, or `[n, t]` for sequences, an ignored position as
/// [`IGNORED`]), float values for the squared losses.
pub(crate) fn loss_target(ds: &Dataset, loss: LossKind) -> Result<(Vec<f64>, Vec<usize>)> {
    let as_f64 = |y: &[usize]| y.iter().map(|&c| c as f64).collect();
    match (&ds.y, loss) {
        (Targets::Labels { y, .. }, LossKind::CrossEntropy) => Ok((as_f64(y), vec![ds.n])),
        (Targets::Sequence { y, t, .. }, LossKind::CrossEntropy) => {
            Ok((positions_f64(y), vec![ds.n, *t]))
        }
        (Targets::Sequence { .. }, _) => Err(Error::config(
            "train.loss",
            format!(
                "{} cannot take the data's labels per position; sequence labels need xent",
                loss.name()
            ),
        )),
        (Targets::Values { .. }, LossKind::CrossEntropy) => Err(Error::config(
            "train.loss",
            "xent needs integer class labels, but the data has float targets; use mse or mse_mean",
        )),
        (Targets::Labels { .. }, _) => Err(Error::config(
            "train.loss",
            format!(
                "{} needs float targets, but the data has class labels; set data.one_hot = true",
                loss.name()
            ),
        )),
        (Targets::Values { y, k }, _) => Ok((y.clone(), vec![ds.n, *k])),
    }
}

impl<B: Backend> DeviceData<B> {
    /// `ds`'s rows `rows` (all of them for None), uploaded.
    pub fn upload(be: &B, ds: &Dataset, loss: LossKind, rows: Option<&[usize]>) -> Result<Self> {
        let sub;
        let ds = match rows {
            Some(r) => {
                sub = ds.subset(r);
                &sub
            }
            None => ds,
        };
        let (x, target) = upload_inputs_and_targets(be, ds, loss)?;
        let labels = match class_labels(ds) {
            Some((l, shape)) => Some(be.from_f64(&shape, &l)?),
            None => None,
        };
        Ok(DeviceData {
            scored: ds.y.scored(),
            x,
            target,
            labels,
        })
    }
}

/// `ds`'s inputs `[n, d]` and loss targets (`loss_target`), uploaded: what
/// a loss needs, without the class labels accuracy needs. Public for the
/// Python package, which measures on data sets given as arrays.
pub fn upload_inputs_and_targets<B: Backend>(
    be: &B,
    ds: &Dataset,
    loss: LossKind,
) -> Result<(Tensor<B>, Tensor<B>)> {
    let (t, shape) = loss_target(ds, loss)?;
    Ok((be.from_f64(&[ds.n, ds.d], &ds.x)?, be.from_f64(&shape, &t)?))
}

/// Rows per evaluation chunk of a lone model: bounds the activations an
/// evaluation holds.
const EVAL_ROWS: usize = 4096;

/// Fewest rows per evaluation chunk of an ensemble, so its products stay
/// large enough to run near the machine's speed.
const EVAL_ROWS_MIN: usize = 256;

/// Rows per evaluation chunk for an ensemble of `members`: a packed
/// ensemble evaluates every member on each chunk at once, so the chunk
/// shrinks with the ensemble and the activations stay those of `EVAL_ROWS`
/// rows of one model (down to `EVAL_ROWS_MIN` rows).
pub(crate) fn eval_rows(members: usize) -> usize {
    (EVAL_ROWS / members.max(1)).max(EVAL_ROWS_MIN)
}

/// A whole data set on a backend, in chunks of at most `rows` examples.
pub(crate) struct DeviceSet<B: Backend> {
    pub chunks: Vec<DeviceData<B>>,
}

impl<B: Backend> DeviceSet<B> {
    pub fn upload(be: &B, ds: &Dataset, loss: LossKind, rows: usize) -> Result<Self> {
        let mut chunks = Vec::new();
        for start in (0..ds.n).step_by(rows.max(1)) {
            let idx: Vec<usize> = (start..(start + rows).min(ds.n)).collect();
            chunks.push(DeviceData::upload(be, ds, loss, Some(&idx))?);
        }
        Ok(DeviceSet { chunks })
    }

    /// Each member's mean loss and accuracy over the set. Both are means
    /// over the scored labels (the kept positions of sequences), so a chunk
    /// weighs by its count.
    pub fn evaluate(
        &self,
        be: &B,
        model: &Model<B>,
        loss: LossKind,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let e = model.ensemble;
        let mut total = vec![0.0; e];
        let mut correct = vec![0.0; e];
        let mut scored = 0;
        let mut has_acc = true;
        for d in &self.chunks {
            let f = model.predict(be, &d.x)?;
            let head = LossRows::new(be, loss, &f, &d.target)?;
            let (l, _) = head.loss(be)?;
            for (t, l) in total.iter_mut().zip(be.to_f64(&l)?) {
                *t += l * head.scored() as f64;
            }
            scored += head.scored();
            match &d.labels {
                Some(lab) => {
                    for (c, k) in correct.iter_mut().zip(labels_correct(be, &f, lab)?) {
                        *c += k;
                    }
                }
                None => has_acc = false,
            }
        }
        // load() refuses a set with nothing scored; max(1) keeps 0 / 0 out.
        let n = scored.max(1) as f64;
        let mean = |v: Vec<f64>| v.into_iter().map(|x| x / n).collect::<Vec<_>>();
        Ok((mean(total), has_acc.then(|| mean(correct))))
    }
}

/// The set in `slot`, uploaded by `make` the first time it is asked for.
pub(crate) fn cached<B: Backend>(
    slot: &mut Option<DeviceSet<B>>,
    make: impl FnOnce() -> Result<DeviceSet<B>>,
) -> Result<&DeviceSet<B>> {
    if slot.is_none() {
        *slot = Some(make()?);
    }
    Ok(slot.as_ref().expect("filled above"))
}
