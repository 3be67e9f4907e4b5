//! Loss heads fused with their gradient: softmax cross-entropy (stable
//! log-sum-exp) and the two squared-error conventions. Each returns the
//! per-member mean loss and d(mean loss)/df in one pass over the outputs.

use super::pointwise::for_rows;
use super::recycle::scratch;
use super::{rows_per_task, Cpu, Elem, PAR_MIN_ELEMS};
use crate::backend::shapes::{loss_tangent, one_label_per_row, squared_loss_targets_shared};
use crate::error::{Error, Result};
use crate::nn::loss::LossKind;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// `f(row_index, row, row's value)` over the rows of `out` and one value
/// per row, in parallel when the work is large enough.
fn for_rows_with<T: Elem>(
    out: &mut [T],
    per_row: &mut [T],
    row_len: usize,
    f: impl Fn(usize, &mut [T], &mut T) + Sync,
) {
    if row_len == 0 {
        return;
    }
    if out.len() < PAR_MIN_ELEMS {
        out.chunks_mut(row_len)
            .zip(per_row.iter_mut())
            .enumerate()
            .for_each(|(i, (r, v))| f(i, r, v));
    } else {
        out.par_chunks_mut(row_len)
            .zip(per_row.par_iter_mut())
            .enumerate()
            .with_min_len(rows_per_task(row_len))
            .for_each(|(i, (r, v))| f(i, r, v));
    }
}

pub fn loss<T: Elem>(
    kind: LossKind,
    f: &Tensor<Cpu>,
    target: &Tensor<Cpu>,
) -> Result<(Tensor<Cpu>, Tensor<Cpu>)> {
    let (e, rows, k) = f.as_batched()?;
    let fv = T::view(f.storage())?;
    let tv = T::view(target.storage())?;
    let mut grad = scratch(fv.len());
    grad.copy_from_slice(fv);
    // One loss value per row, summed afterwards in row order so the result
    // does not depend on how rows were spread over threads.
    let mut row_loss = vec![T::ZERO; e * rows];
    let inv_b = T::from_f64(1.0 / rows.max(1) as f64);
    match kind {
        LossKind::CrossEntropy => {
            one_label_per_row("cross-entropy", target.shape(), f.shape(), rows)?;
            if let Some(bad) = tv
                .iter()
                .find(|&&l| l.to_f64() < 0.0 || l.to_f64() >= k as f64)
            {
                return Err(Error::shape(format!(
                    "label {:?} out of range for {k} classes",
                    bad
                )));
            }
            // One pass per row: the softmax's exponentials give both the
            // gradient and the log-sum-exp of the loss.
            for_rows_with(&mut grad, &mut row_loss, k, |r, g, l| {
                let label = tv[r % rows].to_f64() as usize;
                let mut mx = g[0];
                for &v in g.iter() {
                    mx = mx.max(v);
                }
                let f_label = g[label];
                let mut s = T::ZERO;
                for v in g.iter_mut() {
                    *v = (*v - mx).exp();
                    s += *v;
                }
                *l = mx + s.ln() - f_label;
                for v in g.iter_mut() {
                    *v = *v / s * inv_b;
                }
                g[label] = g[label] - inv_b;
            });
        }
        LossKind::Mse | LossKind::MseMean => {
            let shared = squared_loss_targets_shared(target.shape(), f.shape(), e, rows, k)?;
            // Mse: 0.5 * sum_k (f - y)^2, mean over examples.
            // MseMean: mean over examples and outputs of (f - y)^2.
            let (lscale, gscale) = match kind {
                LossKind::Mse => (T::from_f64(0.5), inv_b),
                _ => (
                    T::from_f64(1.0 / k as f64),
                    T::from_f64(2.0 / (rows.max(1) * k) as f64),
                ),
            };
            let toff = |r: usize| if shared { (r % rows) * k } else { r * k };
            for_rows_with(&mut grad, &mut row_loss, k, |r, g, l| {
                let t = &tv[toff(r)..toff(r) + k];
                let mut s = T::ZERO;
                for (v, &y) in g.iter_mut().zip(t) {
                    let d = *v - y;
                    s += d * d;
                    *v = d * gscale;
                }
                *l = lscale * s;
            });
        }
    }
    let losses: Vec<T> = (0..e)
        .map(|m| {
            let mut s = T::ZERO;
            for &l in &row_loss[m * rows..(m + 1) * rows] {
                s += l;
            }
            s * inv_b
        })
        .collect();
    Ok((
        Tensor::from_parts(vec![e], T::wrap(losses)),
        Tensor::from_parts(f.shape().to_vec(), T::wrap(grad)),
    ))
}

pub fn loss_hvp<T: Elem>(
    kind: LossKind,
    f: &Tensor<Cpu>,
    target: &Tensor<Cpu>,
    f_dot: &Tensor<Cpu>,
) -> Result<Tensor<Cpu>> {
    let (_, rows, k) = f.as_batched()?;
    loss_tangent(f.shape(), f_dot.shape())?;
    let fv = T::view(f.storage())?;
    let inv_b = T::from_f64(1.0 / rows.max(1) as f64);
    let mut out = scratch(f_dot.numel());
    out.copy_from_slice(T::view(f_dot.storage())?);
    match kind {
        LossKind::CrossEntropy => {
            one_label_per_row("cross-entropy", target.shape(), f.shape(), rows)?;
            // H = (diag(p) - p p^T) / B for each row's softmax p.
            for_rows(&mut out, k, |r, d| {
                let row = &fv[r * k..(r + 1) * k];
                let mut mx = row[0];
                for &v in row {
                    mx = mx.max(v);
                }
                let mut s = T::ZERO;
                // The row's probabilities, on the stack for up to 64 classes
                // (an allocation per row would cost more than the row).
                let (mut stack, mut heap) = ([T::ZERO; 64], Vec::new());
                let p: &mut [T] = if k <= stack.len() {
                    &mut stack[..k]
                } else {
                    heap.resize(k, T::ZERO);
                    &mut heap
                };
                for (pj, &v) in p.iter_mut().zip(row) {
                    *pj = (v - mx).exp();
                    s += *pj;
                }
                let mut pd = T::ZERO;
                for (pj, &dj) in p.iter_mut().zip(d.iter()) {
                    *pj = *pj / s;
                    pd += *pj * dj;
                }
                for (dj, &pj) in d.iter_mut().zip(p.iter()) {
                    *dj = pj * (*dj - pd) * inv_b;
                }
            });
        }
        LossKind::Mse | LossKind::MseMean => {
            let scale = if kind == LossKind::Mse {
                inv_b
            } else {
                T::from_f64(2.0 / (rows.max(1) * k) as f64)
            };
            for v in out.iter_mut() {
                *v = *v * scale;
            }
        }
    }
    Ok(Tensor::from_parts(f.shape().to_vec(), T::wrap(out)))
}
