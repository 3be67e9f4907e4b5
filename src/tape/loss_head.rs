//! The loss as the tape's root: per-member mean loss `[E]` from outputs
//! `[E, B, K]` and a fixed target. Its gradient is computed in the forward
//! kernel (fused) and scaled by the incoming per-member cotangent; its
//! Hessian-vector product is the loss head's own kernel. Sequence labels
//! reach the kernels as one row per position, their ignored positions
//! masked out (`LossRows`), and what comes back is returned in the outputs'
//! own shape.

use super::op::{CotangentPair, TangentArgs};
use super::{add_optional, Op};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::loss::{LossKind, LossRows};
use crate::tensor::Tensor;

pub struct LossHead<B: Backend> {
    pub kind: LossKind,
    target: Tensor<B>,
    /// The kernels' view of the outputs, kept for the curvature products.
    rows: Option<LossRows<B>>,
    grad: Option<Tensor<B>>,
    f_dot: Option<Tensor<B>>,
}

impl<B: Backend> LossHead<B> {
    pub fn new(kind: LossKind, target: Tensor<B>) -> Self {
        LossHead {
            kind,
            target,
            rows: None,
            grad: None,
            f_dot: None,
        }
    }

    fn grad(&self) -> Result<&Tensor<B>> {
        self.grad
            .as_ref()
            .ok_or_else(|| Error::msg("loss: backward before forward"))
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
        let rows = LossRows::new(be, self.kind, f, &self.target)?;
        let (loss, grad) = rows.loss(be)?;
        self.grad = Some(grad);
        self.rows = Some(rows);
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
        Ok(vec![Some(be.scale_members(self.grad()?, g_out)?)])
    }

    fn jvp(
        &mut self,
        be: &B,
        _inputs: &[&Tensor<B>],
        tangents: &[Option<&Tensor<B>>],
        _output: &Tensor<B>,
    ) -> Result<Option<Tensor<B>>> {
        self.f_dot = tangents[0].cloned();
        match tangents[0] {
            Some(fd) => Ok(Some(be.dot_members(self.grad()?, fd)?)),
            None => Ok(None),
        }
    }

    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        if !args.needs[0] {
            return Ok(vec![(None, None)]);
        }
        let grad = self.grad()?;
        let g_f = be.scale_members(grad, args.g_out)?;
        // Tangent of g_L * grad(f): g_L_dot * grad + g_L * H_L f_dot, the
        // loss head's curvature in both the Hessian and Gauss-Newton modes.
        let from_seed = match args.g_out_dot {
            Some(gd) => Some(be.scale_members(grad, gd)?),
            None => None,
        };
        let from_curv = match &self.f_dot {
            Some(fd) => {
                let rows = self
                    .rows
                    .as_ref()
                    .ok_or_else(|| Error::msg("loss: backward before forward"))?;
                Some(be.scale_members(&rows.hvp(be, fd)?, args.g_out)?)
            }
            None => None,
        };
        Ok(vec![(Some(g_f), add_optional(be, from_seed, from_curv)?)])
    }
}
