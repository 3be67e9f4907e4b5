//! Row softmax as a tape op (attention's probabilities), optionally causal
//! (see `Backend::softmax_rows`). The Jacobian `diag(y) - y y^T` is
//! symmetric, so the vjp and the jvp are the same product; the vjp's tangent
//! adds the curvature term `softmax_rows_second` for the Hessian.

use super::op::{CotangentPair, Curvature, TangentArgs};
use super::{add_optional, Op};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub struct Softmax {
    pub causal: bool,
}

impl<B: Backend> Op<B> for Softmax {
    fn name(&self) -> &'static str {
        "softmax_rows"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let [x] = inputs else {
            return Err(Error::msg("softmax_rows takes (x)"));
        };
        be.softmax_rows(x, self.causal)
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
            Some(be.softmax_rows_j(output, g)?)
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
            .map(|t| be.softmax_rows_j(output, t))
            .transpose()
    }

    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        if !args.needs[0] {
            return Ok(vec![(None, None)]);
        }
        let (y, g) = (args.output, args.g_out);
        let cot = if args.cotangent_needed[0] {
            Some(be.softmax_rows_j(y, g)?)
        } else {
            None
        };
        let linear = args
            .g_out_dot
            .map(|gd| be.softmax_rows_j(y, gd))
            .transpose()?;
        let second = match (args.mode, args.tangents[0]) {
            (Curvature::Hessian, Some(xd)) => Some(be.softmax_rows_second(y, g, xd)?),
            _ => None,
        };
        Ok(vec![(cot, add_optional(be, linear, second)?)])
    }
}
