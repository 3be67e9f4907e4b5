//! Launches the loss heads of `kernels/loss.cu`; conventions (mean over
//! examples, the two squared-error scalings) are those of
//! `src/backend/cpu/loss.rs`.

use super::reduce::member_mean;
use super::{grid_1d, grid_rows, launch, to_i32, Cuda, CudaTensor};
use crate::backend::shapes::{loss_tangent, one_label_per_row, squared_loss_targets_shared};
use crate::error::Result;
use crate::nn::loss::LossKind;

pub(super) fn loss(
    be: &Cuda,
    kind: LossKind,
    f: &CudaTensor,
    target: &CudaTensor,
) -> Result<(CudaTensor, CudaTensor)> {
    let (e, rows, k) = f.as_batched()?;
    let nrows = e * rows;
    let inv_b = 1.0 / rows.max(1) as f64;
    let (fb, tb) = (be.buf(f)?, be.buf(target)?);
    let mut grad = be.alloc(f.numel())?;
    let mut row_loss = be.alloc(nrows)?;
    let (nr, ri, ki) = (nrows as i64, to_i32(rows, "rows")?, to_i32(k, "k")?);
    match kind {
        LossKind::CrossEntropy => {
            one_label_per_row("cross-entropy", target.shape(), f.shape(), rows)?;
            if nrows > 0 {
                let ib = inv_b as f32;
                launch!(
                    be,
                    "loss",
                    "ce_loss",
                    grid_rows(nrows)?,
                    fb,
                    tb,
                    &mut grad,
                    &mut row_loss,
                    &nr,
                    &ri,
                    &ki,
                    &ib
                )?;
            }
        }
        LossKind::Mse | LossKind::MseMean => {
            let shared = squared_loss_targets_shared(target.shape(), f.shape(), e, rows, k)?;
            let (lscale, gscale) = match kind {
                LossKind::Mse => (0.5f32, inv_b as f32),
                _ => (
                    (1.0 / k as f64) as f32,
                    (2.0 / (rows.max(1) * k) as f64) as f32,
                ),
            };
            if nrows > 0 {
                let sh = shared as i32;
                launch!(
                    be,
                    "loss",
                    "mse_loss",
                    grid_rows(nrows)?,
                    fb,
                    tb,
                    &mut grad,
                    &mut row_loss,
                    &nr,
                    &ri,
                    &ki,
                    &sh,
                    &lscale,
                    &gscale
                )?;
            }
        }
    }
    let losses = member_mean(be, &row_loss, e, rows, inv_b)?;
    Ok((losses, be.wrap(f.shape().to_vec(), grad)))
}

pub(super) fn loss_hvp(
    be: &Cuda,
    kind: LossKind,
    f: &CudaTensor,
    target: &CudaTensor,
    f_dot: &CudaTensor,
) -> Result<CudaTensor> {
    let (e, rows, k) = f.as_batched()?;
    loss_tangent(f.shape(), f_dot.shape())?;
    let inv_b = 1.0 / rows.max(1) as f64;
    let total = f.numel();
    let mut out = be.alloc(total)?;
    let (fb, db) = (be.buf(f)?, be.buf(f_dot)?);
    match kind {
        LossKind::CrossEntropy => {
            one_label_per_row("cross-entropy", target.shape(), f.shape(), rows)?;
            let nrows = e * rows;
            if nrows > 0 {
                let (nr, ki, ib) = (nrows as i64, to_i32(k, "k")?, inv_b as f32);
                launch!(
                    be,
                    "loss",
                    "ce_hvp",
                    grid_rows(nrows)?,
                    fb,
                    db,
                    &mut out,
                    &nr,
                    &ki,
                    &ib
                )?;
            }
        }
        LossKind::Mse | LossKind::MseMean => {
            let scale = if kind == LossKind::Mse {
                inv_b as f32
            } else {
                (2.0 / (rows.max(1) * k) as f64) as f32
            };
            if total > 0 {
                let t = total as i64;
                launch!(
                    be,
                    "loss",
                    "scale_all",
                    grid_1d(total),
                    db,
                    &mut out,
                    &t,
                    &scale
                )?;
            }
        }
    }
    Ok(be.wrap(f.shape().to_vec(), out))
}
