//! The loss as the tape's root: per-member mean loss `[E]` from outputs
//! `[E, B, K]` and a fixed target. Its gradient is computed in the forward
//! kernel (fused) and scaled by the incoming per-member cotangent.

use super::Op;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::loss::LossKind;
use crate::tensor::Tensor;

pub struct LossHead<B: Backend> {
    pub kind: LossKind,
    target: Tensor<B>,
    grad: Option<Tensor<B>>,
}

impl<B: Backend> LossHead<B> {
    pub fn new(kind: LossKind, target: Tensor<B>) -> Self {
        LossHead {
            kind,
            target,
            grad: None,
        }
    }
}

impl<B: Backend> Op<B> for LossHead<B> {
    fn name(&self) -> &'static str {
        "loss"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let [f] = inputs else {
            return Err(Error::msg("loss takes (f)"));
        };
        let (loss, grad) = be.loss(self.kind, f, &self.target)?;
        self.grad = Some(grad);
        Ok(loss)
    }

    fn vjp(
        &self,
        be: &B,
        _inputs: &[&Tensor<B>],
        _output: &Tensor<B>,
        g_out: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>> {
        if !needs[0] {
            return Ok(vec![None]);
        }
        let grad = self
            .grad
            .as_ref()
            .ok_or_else(|| Error::msg("loss: backward before forward"))?;
        Ok(vec![Some(be.scale_members(grad, g_out)?)])
    }
}
