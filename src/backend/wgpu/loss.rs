//! Launches `shaders/loss.wgsl`: the loss heads fused with their gradient
//! (one thread per output row, then `member_reduce` for each member's mean)
//! and the loss Hessian applied to an output tangent.

use super::context::grid;
use super::reduce::{member_reduce, MemberOp};
use super::{bits, Wgpu, WgpuTensor};
use crate::backend::shapes::{loss_tangent, one_label_per_row, squared_loss_targets_shared};
use crate::error::Result;
use crate::nn::loss::LossKind;
use crate::tensor::Tensor;

/// The shader's `Params`, after the CPU reference's checks of the target.
fn params(kind: LossKind, f: &WgpuTensor, target: &WgpuTensor) -> Result<[u32; 8]> {
    let (e, rows, k) = f.as_batched()?;
    let inv_b = 1.0 / rows.max(1) as f64;
    let (kind_id, shared, lscale, gscale) = match kind {
        LossKind::CrossEntropy => {
            one_label_per_row("cross-entropy", target.shape(), f.shape(), rows)?;
            (0, true, 1.0, inv_b)
        }
        LossKind::Mse | LossKind::MseMean => {
            let shared = squared_loss_targets_shared(target.shape(), f.shape(), e, rows, k)?;
            // Mse: 0.5 * sum_k (f - y)^2; MseMean: mean over outputs of (f - y)^2.
            if kind == LossKind::Mse {
                (1, shared, 0.5, inv_b)
            } else {
                (2, shared, 1.0 / k as f64, 2.0 / (rows.max(1) * k) as f64)
            }
        }
    };
    Ok([
        rows as u32,
        k as u32,
        kind_id,
        shared as u32,
        (e * rows) as u32,
        bits(inv_b),
        bits(lscale),
        bits(gscale),
    ])
}

pub fn loss(
    be: &Wgpu,
    kind: LossKind,
    f: &WgpuTensor,
    target: &WgpuTensor,
) -> Result<(WgpuTensor, WgpuTensor)> {
    let (e, rows, k) = f.as_batched()?;
    let p = params(kind, f, target)?;
    let grad = be.alloc(f.numel())?;
    let row_loss = be.alloc(e * rows)?;
    if e * rows > 0 && k > 0 {
        be.launch(
            "loss",
            "loss_rows",
            &p,
            &[
                (1, f.storage().buffer()),
                (2, target.storage().buffer()),
                (4, grad.buffer()),
                (5, row_loss.buffer()),
            ],
            grid(e * rows),
            &[],
        )?;
    }
    // Each member's mean over its rows, summed in a fixed order.
    let losses = member_reduce(
        be,
        row_loss.buffer(),
        None,
        e,
        rows,
        MemberOp::Sum,
        1.0 / rows.max(1) as f64,
        false,
    )?;
    Ok((
        Tensor::from_parts(vec![e], losses),
        Tensor::from_parts(f.shape().to_vec(), grad),
    ))
}

pub fn loss_hvp(
    be: &Wgpu,
    kind: LossKind,
    f: &WgpuTensor,
    target: &WgpuTensor,
    f_dot: &WgpuTensor,
) -> Result<WgpuTensor> {
    let (e, rows, k) = f.as_batched()?;
    loss_tangent(f.shape(), f_dot.shape())?;
    let p = params(kind, f, target)?;
    let out = be.alloc(f.numel())?;
    if e * rows > 0 && k > 0 {
        be.launch(
            "loss",
            "loss_hvp",
            &p,
            &[
                (1, f.storage().buffer()),
                (3, f_dot.storage().buffer()),
                (4, out.buffer()),
            ],
            grid(e * rows),
            &[],
        )?;
    }
    Ok(Tensor::from_parts(f.shape().to_vec(), out))
}
