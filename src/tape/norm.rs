//! Row normalization as a tape op: LayerNorm's `(x - mean) / sqrt(var +
//! eps)` with `center`, RMSNorm's `x / sqrt(mean(x^2) + eps)` without, over
//! the last dimension (batch normalization applies it to the transpose).
//! The gain and bias are separate ops (`Mul`, `BiasAct`). The Jacobian is
//! symmetric, so the vjp and the jvp are the same product; the vjp's
//! tangent adds the curvature term `norm_rows_second` for the Hessian.

use super::op::{curved_vjp_tangent, one_input, CotangentPair, TangentArgs};
use super::Op;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub struct NormRows<B: Backend> {
    pub center: bool,
    pub eps: f64,
    scale: Option<Tensor<B>>,
}

impl<B: Backend> NormRows<B> {
    pub fn new(center: bool, eps: f64) -> Self {
        NormRows {
            center,
            eps,
            scale: None,
        }
    }

    fn scale(&self) -> Result<&Tensor<B>> {
        self.scale
            .as_ref()
            .ok_or_else(|| Error::msg("norm_rows: backward before forward"))
    }

    /// The per-row inverse scale `s` of the last forward pass.
    pub fn inverse_scale(&self) -> Option<&Tensor<B>> {
        self.scale.as_ref()
    }
}

impl<B: Backend> Op<B> for NormRows<B> {
    fn name(&self) -> &'static str {
        "norm_rows"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let x = one_input("norm_rows", inputs)?;
        let (y, s) = be.norm_rows(x, self.center, self.eps)?;
        self.scale = Some(s);
        Ok(y)
    }

    fn vjp(
        &self,
        be: &B,
        _i: &[&Tensor<B>],
        output: &Tensor<B>,
        g: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>> {
        Ok(vec![if needs[0] {
            Some(be.norm_rows_j(output, self.scale()?, g, self.center)?)
        } else {
            None
        }])
    }

    fn jvp(
        &mut self,
        be: &B,
        _i: &[&Tensor<B>],
        tangents: &[Option<&Tensor<B>>],
        output: &Tensor<B>,
    ) -> Result<Option<Tensor<B>>> {
        tangents[0]
            .map(|t| be.norm_rows_j(output, self.scale()?, t, self.center))
            .transpose()
    }

    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        let (y, s) = (args.output, self.scale()?);
        curved_vjp_tangent(
            be,
            args,
            |g| be.norm_rows_j(y, s, g, self.center),
            |g, xd| be.norm_rows_second(y, s, g, xd, self.center),
        )
    }
}
