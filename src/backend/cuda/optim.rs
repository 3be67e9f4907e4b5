//! Launches the fused optimizer updates of `kernels/optim.cu`, with the
//! argument checks of `src/backend/cpu/optim.rs`.

use super::context::drv;
use super::{grid_1d, launch, Cuda, CudaTensor, OrNull};
use crate::backend::shapes::{adam_members, sgd_members};
use crate::backend::{AdamHyper, SgdHyper};
use crate::error::Result;
use cudarc::driver::CudaSlice;

/// The learning rates as the kernels take them: one scalar when all members
/// share it (no upload), else a device array of E values.
fn learning_rates(be: &Cuda, lr: &[f64]) -> Result<(f32, Option<CudaSlice<f32>>)> {
    let first = lr[0] as f32;
    if lr.iter().all(|&l| l as f32 == first) {
        return Ok((first, None));
    }
    let host: Vec<f32> = lr.iter().map(|&l| l as f32).collect();
    let dev = be
        .stream()
        .clone_htod(&host)
        .map_err(|e| drv("host-to-device copy", e))?;
    Ok((first, Some(dev)))
}

pub(super) fn sgd_update(
    be: &Cuda,
    p: &mut CudaTensor,
    g: &CudaTensor,
    buf: &mut CudaTensor,
    hp: &SgdHyper,
) -> Result<()> {
    let use_momentum = hp.momentum != 0.0;
    // Without momentum the buffer is unused and may be empty.
    let e = sgd_members(p.shape(), g.shape(), buf.shape(), hp)?;
    let total = p.numel();
    if total == 0 {
        return Ok(());
    }
    let (lr, lrs) = learning_rates(be, hp.lr)?;
    let (t, per) = (total as i64, (total / e) as i64);
    let (mu, wd) = (hp.momentum as f32, hp.weight_decay as f32);
    let (um, nest) = (use_momentum as i32, hp.nesterov as i32);
    let gb = be.buf(g)?;
    let pb = be.buf_mut(p)?;
    let bb = if use_momentum {
        Some(be.buf_mut(buf)?)
    } else {
        None
    };
    launch!(
        be,
        "optim",
        "sgd_update",
        grid_1d(total),
        pb,
        gb,
        OrNull(bb),
        OrNull(lrs.as_ref()),
        &lr,
        &t,
        &per,
        &mu,
        &um,
        &nest,
        &wd
    )
}

pub(super) fn adam_update(
    be: &Cuda,
    p: &mut CudaTensor,
    g: &CudaTensor,
    m1: &mut CudaTensor,
    m2: &mut CudaTensor,
    hp: &AdamHyper,
) -> Result<()> {
    let e = adam_members(p.shape(), g.shape(), m1.shape(), m2.shape(), hp)?;
    let total = p.numel();
    if total == 0 {
        return Ok(());
    }
    let (lr, lrs) = learning_rates(be, hp.lr)?;
    let (t, per) = (total as i64, (total / e) as i64);
    let (b1, b2) = (hp.beta1 as f32, hp.beta2 as f32);
    let bc1 = (1.0 - hp.beta1.powi(hp.step as i32)) as f32;
    let bc2_sqrt = (1.0 - hp.beta2.powi(hp.step as i32)).sqrt() as f32;
    let (eps, wd, dec) = (hp.eps as f32, hp.weight_decay as f32, hp.decoupled as i32);
    let gb = be.buf(g)?;
    let pb = be.buf_mut(p)?;
    let mb = be.buf_mut(m1)?;
    let vb = be.buf_mut(m2)?;
    launch!(
        be,
        "optim",
        "adam_update",
        grid_1d(total),
        pb,
        gb,
        mb,
        vb,
        OrNull(lrs.as_ref()),
        &lr,
        &t,
        &per,
        &b1,
        &b2,
        &eps,
        &wd,
        &dec,
        &bc1,
        &bc2_sqrt
    )
}
