//! A packed ensemble's training steps taken one member at a time, members
//! spread over the CPU's threads.
//!
//! Packed, an ensemble's op reads and writes all E members' activations at
//! once: for a sweep's small models (width 256, batch 128, E = 64) that is
//! 8 MiB per activation, far out of cache, so every pointwise pass and the
//! update stream through memory, and each op's work is handed from the
//! calling thread to the pool and back. Stepped apart, one member's
//! forward, backward and update run on one thread while its working set
//! (a few hundred KiB) stays in cache, and the threads take whole members.
//! On one thread this alone took a quarter less CPU time than the packed
//! step (BENCHMARKS.md).
//!
//! The packed `Model` and `Optimizer` stay the run's record: `split` copies
//! the members out, `join` copies them back, around the steps that log,
//! evaluate, checkpoint or finish (those use the packed path unchanged).
//! A member trains exactly as it would alone, so results do not depend on
//! which path a step took (a member's products are the same one-member
//! products; `tests/member_steps.rs`).

use crate::backend::Backend;
use crate::error::Result;
use crate::nn::loss::LossKind;
use crate::nn::model::Model;
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// An ensemble's members as separate models and optimizers.
pub struct MemberSteps<B: Backend> {
    models: Vec<Model<B>>,
    opts: Vec<Optimizer<B>>,
}

impl<B: Backend> MemberSteps<B> {
    /// Copies of the members of `model` and `opt`.
    pub fn split(be: &B, model: &Model<B>, opt: &Optimizer<B>) -> Result<Self> {
        Ok(MemberSteps {
            models: model.split_members(be)?,
            opts: opt.split_members(be)?,
        })
    }

    /// Write the members' weights, statistics and optimizer state back.
    pub fn join(&self, be: &B, model: &mut Model<B>, opt: &mut Optimizer<B>) -> Result<()> {
        model.join_members(be, &self.models)?;
        opt.join_members(be, &self.opts)
    }

    /// One training step (forward, backward, BatchNorm's statistics, the
    /// update) of every member not `done`, in parallel, on the batch `x`
    /// (shared by all members) with loss targets `target`. Returns each
    /// member's loss (NaN for a done member). A member whose loss is not
    /// finite is left as it was before the step, where the packed path
    /// records it as diverged.
    pub fn step(
        &mut self,
        be: &B,
        x: &Tensor<B>,
        target: &Tensor<B>,
        kind: LossKind,
        done: &[bool],
    ) -> Result<Vec<f64>> {
        self.models
            .par_iter_mut()
            .zip(self.opts.par_iter_mut())
            .zip(done.par_iter())
            .map(|((model, opt), &done)| {
                if done {
                    return Ok(f64::NAN);
                }
                let pass = model.loss_pass(be, x, target, kind, true)?;
                let loss = be.to_f64(&pass.loss)?[0];
                if loss.is_finite() {
                    model.track_batch_stats(be, &pass.batch_stats)?;
                    opt.step(be, model.params_mut(), &pass.grads)?;
                }
                Ok(loss)
            })
            .collect()
    }
}
