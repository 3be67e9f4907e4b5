//! Reductions over the last dimension that pooling is made of: `RowMax`
//! (max pooling: im2col, then the max of each channel's window) and
//! `RowMean` (average pooling, global average pooling). `[M, R, K]` becomes
//! `[M, R, 1]`. The max is piecewise linear: its tangent picks the input
//! tangent at the maximum and its vjp places the cotangent there, with no
//! second-order term; the mean is linear.

use super::op::{linear_vjp_tangent, one_input, CotangentPair, TangentArgs};
use super::Op;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

fn row_len<B: Backend>(x: &Tensor<B>) -> usize {
    *x.shape().last().unwrap_or(&1)
}

#[derive(Default)]
pub struct RowMax<B: Backend> {
    arg: Option<Tensor<B>>,
}

impl<B: Backend> RowMax<B> {
    pub fn new() -> Self {
        RowMax { arg: None }
    }

    fn arg(&self) -> Result<&Tensor<B>> {
        self.arg
            .as_ref()
            .ok_or_else(|| Error::msg("row_max: backward before forward"))
    }

    fn place(&self, be: &B, g: &Tensor<B>, like: &Tensor<B>) -> Result<Tensor<B>> {
        let arg = self.arg()?;
        be.row_place(&g.clone().reshape(arg.shape())?, arg, row_len(like))?
            .reshape(like.shape())
    }
}

impl<B: Backend> Op<B> for RowMax<B> {
    fn name(&self) -> &'static str {
        "row_max"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let (max, arg) = be.row_max(one_input("row_max", inputs)?)?;
        self.arg = Some(arg);
        Ok(max)
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
            Some(self.place(be, g, inputs[0])?)
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
        tangents[0].map(|t| be.row_pick(t, self.arg()?)).transpose()
    }

    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        let x = args.inputs[0];
        linear_vjp_tangent(args, |g| self.place(be, g, x))
    }
}

/// The mean of each row, as a product with a column of `1/K` (so it runs
/// as a GEMM on every backend).
pub struct RowMean;

impl RowMean {
    fn mean<B: Backend>(be: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        let k = row_len(x);
        let ones = be.from_f64(&[k, 1], &vec![1.0; k])?;
        be.matmul(x, false, &ones, false, 1.0 / k as f64)
    }

    fn spread<B: Backend>(be: &B, g: &Tensor<B>, like: &Tensor<B>) -> Result<Tensor<B>> {
        let k = row_len(like);
        let ones = be.from_f64(&[1, k], &vec![1.0; k])?;
        let rows: usize = like.numel() / k.max(1);
        let g = g.clone().reshape(&[rows, 1])?;
        be.matmul(&g, false, &ones, false, 1.0 / k as f64)?
            .reshape(like.shape())
    }
}

impl<B: Backend> Op<B> for RowMean {
    fn name(&self) -> &'static str {
        "row_mean"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        Self::mean(be, one_input("row_mean", inputs)?)
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
            Some(Self::spread(be, g, inputs[0])?)
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
        tangents[0].map(|t| Self::mean(be, t)).transpose()
    }

    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        let x = args.inputs[0];
        linear_vjp_tangent(args, |g| Self::spread(be, g, x))
    }
}
