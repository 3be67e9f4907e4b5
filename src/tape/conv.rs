//! The patch matrix of a convolution (im2col) as a tape op. It is linear, so
//! its vjp is the adjoint col2im, its jvp is itself, and the tangent of its
//! vjp is col2im of the cotangent's tangent; a convolution is this op
//! followed by `Dense` with the `[c_out, c_in * kh * kw]` weight.

use super::op::{linear_vjp_tangent, one_input, CotangentPair, TangentArgs};
use super::Op;
use crate::backend::{Backend, Window};
use crate::error::Result;
use crate::tensor::Tensor;

pub struct Im2col {
    pub window: Window,
}

impl Im2col {
    fn adjoint<B: Backend>(&self, be: &B, g: &Tensor<B>, like: &Tensor<B>) -> Result<Tensor<B>> {
        be.col2im(g, &self.window)?.reshape(like.shape())
    }
}

impl<B: Backend> Op<B> for Im2col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let x = one_input("im2col", inputs)?;
        be.im2col(x, &self.window)
    }

    fn vjp(
        &self,
        be: &B,
        inputs: &[&Tensor<B>],
        _output: &Tensor<B>,
        g_out: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>> {
        Ok(vec![if needs[0] {
            Some(self.adjoint(be, g_out, inputs[0])?)
        } else {
            None
        }])
    }

    fn jvp(
        &mut self,
        be: &B,
        _inputs: &[&Tensor<B>],
        tangents: &[Option<&Tensor<B>>],
        _output: &Tensor<B>,
    ) -> Result<Option<Tensor<B>>> {
        tangents[0].map(|t| be.im2col(t, &self.window)).transpose()
    }

    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        let x = args.inputs[0];
        linear_vjp_tangent(args, |g| self.adjoint(be, g, x))
    }
}
