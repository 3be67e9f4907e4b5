//! Ops that only move values: `Reshape` (free: the storage is shared) and
//! `Transpose` of each matrix in a batch. Both are linear and orthogonal, so
//! their vjp is the inverse move and every tangent moves the same way.

use super::op::{linear_vjp_tangent, one_input, CotangentPair, TangentArgs};
use super::Op;
use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tensor;

/// A new shape for the same values.
pub struct Reshape {
    pub shape: Vec<usize>,
}

impl<B: Backend> Op<B> for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }

    fn forward(&mut self, _be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let x = one_input("reshape", inputs)?;
        (*x).clone().reshape(&self.shape)
    }

    fn vjp(
        &self,
        _be: &B,
        inputs: &[&Tensor<B>],
        _o: &Tensor<B>,
        g: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>> {
        let back = |t: &Tensor<B>| t.clone().reshape(inputs[0].shape());
        Ok(vec![if needs[0] { Some(back(g)?) } else { None }])
    }

    fn jvp(
        &mut self,
        _be: &B,
        _i: &[&Tensor<B>],
        tangents: &[Option<&Tensor<B>>],
        _o: &Tensor<B>,
    ) -> Result<Option<Tensor<B>>> {
        tangents[0]
            .map(|t| t.clone().reshape(&self.shape))
            .transpose()
    }

    fn vjp_tangent(&self, _be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        linear_vjp_tangent(args, |t| t.clone().reshape(args.inputs[0].shape()))
    }
}

/// `[n, r, c]` matrices transposed to `[n, c, r]`; the input may have any
/// shape holding `n * r * c` values and the output is given `shape`.
pub struct Transpose {
    pub n: usize,
    pub r: usize,
    pub c: usize,
    pub shape: Vec<usize>,
}

impl Transpose {
    fn forward_move<B: Backend>(&self, be: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        be.transpose(&x.clone().reshape(&[self.n, self.r, self.c])?)?
            .reshape(&self.shape)
    }

    fn back_move<B: Backend>(&self, be: &B, g: &Tensor<B>, like: &Tensor<B>) -> Result<Tensor<B>> {
        be.transpose(&g.clone().reshape(&[self.n, self.c, self.r])?)?
            .reshape(like.shape())
    }
}

impl<B: Backend> Op<B> for Transpose {
    fn name(&self) -> &'static str {
        "transpose"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let x = one_input("transpose", inputs)?;
        self.forward_move(be, x)
    }

    fn vjp(
        &self,
        be: &B,
        inputs: &[&Tensor<B>],
        _o: &Tensor<B>,
        g: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>> {
        Ok(vec![if needs[0] {
            Some(self.back_move(be, g, inputs[0])?)
        } else {
            None
        }])
    }

    fn jvp(
        &mut self,
        be: &B,
        _i: &[&Tensor<B>],
        tangents: &[Option<&Tensor<B>>],
        _o: &Tensor<B>,
    ) -> Result<Option<Tensor<B>>> {
        tangents[0].map(|t| self.forward_move(be, t)).transpose()
    }

    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        let x = args.inputs[0];
        linear_vjp_tangent(args, |t| self.back_move(be, t, x))
    }
}
