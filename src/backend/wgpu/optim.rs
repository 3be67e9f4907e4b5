//! Launches `shaders/optim.wgsl`: in-place SGD and Adam/AdamW updates. The
//! per-member learning rates go up as a small buffer each call (a schedule
//! changes them every step); parameters and optimizer state stay on the
//! device, copied first only when a tape still shares them.
//!
//! Optimizer state (momentum, Adam's moments) is f32 even when parameters
//! are stored f16: Adam's second moment g^2 underflows f16 for
//! |g| < 2.4e-4, and a zero v turns the step into lr * m / eps. State made
//! in the storage dtype (`zeros`, a restart point's `from_f64`) is widened
//! on its first update.

use super::context::grid;
use super::{bits, Wgpu, WgpuTensor};
use crate::backend::shapes::{adam_members, sgd_members};
use crate::backend::{AdamHyper, SgdHyper};
use crate::error::Result;

/// The shader's `Params`: total, per, lr_len, nesterov, decoupled, momentum,
/// wd, beta1, beta2, bc1, bc2_sqrt, eps.
#[derive(Default)]
struct Params {
    total: usize,
    per: usize,
    lr_len: usize,
    nesterov: bool,
    decoupled: bool,
    momentum: f64,
    wd: f64,
    beta1: f64,
    beta2: f64,
    bc1: f64,
    bc2_sqrt: f64,
    eps: f64,
}

impl Params {
    fn words(&self) -> [u32; 12] {
        [
            self.total as u32,
            self.per.max(1) as u32,
            self.lr_len as u32,
            self.nesterov as u32,
            self.decoupled as u32,
            bits(self.momentum),
            bits(self.wd),
            bits(self.beta1),
            bits(self.beta2),
            bits(self.bc1),
            bits(self.bc2_sqrt),
            bits(self.eps),
        ]
    }
}

pub fn sgd_update(
    be: &Wgpu,
    p: &mut WgpuTensor,
    g: &WgpuTensor,
    buf: &mut WgpuTensor,
    hp: &SgdHyper,
) -> Result<()> {
    let use_momentum = hp.momentum != 0.0;
    // Without momentum the buffer is unused and may be empty.
    let e = sgd_members(p.shape(), g.shape(), buf.shape(), hp)?;
    let total = p.numel();
    if total == 0 {
        return Ok(());
    }
    let lr = be.upload_f32(hp.lr)?;
    let params = Params {
        total,
        per: total / e,
        lr_len: hp.lr.len(),
        nesterov: hp.nesterov,
        momentum: hp.momentum,
        wd: hp.weight_decay,
        ..Default::default()
    }
    .words();
    be.make_unique(p)?;
    if !use_momentum {
        return be.launch(
            "optim",
            "sgd",
            &params,
            &[
                (1, g.storage().buffer()),
                (2, lr.buffer()),
                (3, p.storage().buffer()),
            ],
            grid(total),
            &[],
        );
    }
    be.widen(buf)?;
    be.make_unique(buf)?;
    be.launch(
        "optim",
        "sgd_momentum",
        &params,
        &[
            (1, g.storage().buffer()),
            (2, lr.buffer()),
            (3, p.storage().buffer()),
            (4, buf.storage().buffer()),
        ],
        grid(total),
        &[],
    )
}

pub fn adam_update(
    be: &Wgpu,
    p: &mut WgpuTensor,
    g: &WgpuTensor,
    m1: &mut WgpuTensor,
    m2: &mut WgpuTensor,
    hp: &AdamHyper,
) -> Result<()> {
    let e = adam_members(p.shape(), g.shape(), m1.shape(), m2.shape(), hp)?;
    let total = p.numel();
    if total == 0 {
        return Ok(());
    }
    let lr = be.upload_f32(hp.lr)?;
    let params = Params {
        total,
        per: total / e,
        lr_len: hp.lr.len(),
        decoupled: hp.decoupled,
        wd: hp.weight_decay,
        beta1: hp.beta1,
        beta2: hp.beta2,
        bc1: 1.0 - hp.beta1.powi(hp.step as i32),
        bc2_sqrt: (1.0 - hp.beta2.powi(hp.step as i32)).sqrt(),
        eps: hp.eps,
        ..Default::default()
    }
    .words();
    be.make_unique(p)?;
    be.widen(m1)?;
    be.widen(m2)?;
    be.make_unique(m1)?;
    be.make_unique(m2)?;
    be.launch(
        "optim",
        "adam",
        &params,
        &[
            (1, g.storage().buffer()),
            (2, lr.buffer()),
            (3, p.storage().buffer()),
            (4, m1.storage().buffer()),
            (5, m2.storage().buffer()),
        ],
        grid(total),
        &[],
    )
}
