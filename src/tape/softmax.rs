//! Row softmax as a tape op (attention's probabilities), optionally causal
//! (see `Backend::softmax_rows`). The Jacobian `diag(y) - y y^T` is
//! symmetric, so the vjp and the jvp are the same product; the vjp's tangent
//! adds the curvature term `softmax_rows_second` for the Hessian.

use super::op::{curved_vjp_tangent, one_input, CotangentPair, TangentArgs};
use super::Op;
use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tensor;

pub struct Softmax {
    pub causal: bool,
}

impl<B: Backend> Op<B> for Softmax {
    fn name(&self) -> &'static str {
        "softmax_rows"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let x = one_input("softmax_rows", inputs)?;
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
        let y = args.output;
        curved_vjp_tangent(
            be,
            args,
            |g| be.softmax_rows_j(y, g),
            |g, xd| be.softmax_rows_second(y, g, xd),
        )
    }
}
