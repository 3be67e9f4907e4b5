//! A per-channel gain, `y = x * gamma` with `gamma` (`[E, C]`) broadcast
//! over the rows of `x` (`[E, R, C]`), or of `x`'s shape: the gain of LayerNorm, RMSNorm and
//! BatchNorm. Bilinear, so the Hessian part of its vjp's tangent is the
//! cross term; Gauss-Newton drops it, as for `Dense`.

use super::op::{CotangentPair, Curvature, TangentArgs};
use super::{add_optional as add, Op};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub struct Mul;

fn operands<'a, B: Backend>(inputs: &[&'a Tensor<B>]) -> Result<(&'a Tensor<B>, &'a Tensor<B>)> {
    match inputs {
        [x, gamma] => Ok((x, gamma)),
        _ => Err(Error::msg("mul takes (x, gamma)")),
    }
}

/// The gain's cotangent for an output cotangent `g`: `g * x`, summed over
/// the rows when the gain is broadcast over them.
fn gain_grad<B: Backend>(
    be: &B,
    g: &Tensor<B>,
    x: &Tensor<B>,
    gamma: &Tensor<B>,
) -> Result<Tensor<B>> {
    let prod = be.mul(g, x)?;
    if gamma.shape() == x.shape() {
        return Ok(prod);
    }
    be.sum_rows(&prod, 1.0)?.reshape(gamma.shape())
}

impl<B: Backend> Op<B> for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let (x, gamma) = operands(inputs)?;
        be.mul(x, gamma)
    }

    fn vjp(
        &self,
        be: &B,
        inputs: &[&Tensor<B>],
        _o: &Tensor<B>,
        g: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>> {
        let (x, gamma) = operands(inputs)?;
        let dx = if needs[0] {
            Some(be.mul(g, gamma)?)
        } else {
            None
        };
        let dg = if needs[1] {
            Some(gain_grad(be, g, x, gamma)?)
        } else {
            None
        };
        Ok(vec![dx, dg])
    }

    fn jvp(
        &mut self,
        be: &B,
        inputs: &[&Tensor<B>],
        tangents: &[Option<&Tensor<B>>],
        _o: &Tensor<B>,
    ) -> Result<Option<Tensor<B>>> {
        let (x, gamma) = operands(inputs)?;
        let a = tangents[0].map(|xd| be.mul(xd, gamma)).transpose()?;
        let b = tangents[1].map(|gd| be.mul(x, gd)).transpose()?;
        add(be, a, b)
    }

    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        let (x, gamma) = operands(args.inputs)?;
        let (g, gd) = (args.g_out, args.g_out_dot);
        let hessian = args.mode == Curvature::Hessian;
        let mut out = Vec::with_capacity(2);
        if args.needs[0] {
            let dx = if args.cotangent_needed[0] {
                Some(be.mul(g, gamma)?)
            } else {
                None
            };
            let lin = gd.map(|gd| be.mul(gd, gamma)).transpose()?;
            let cross = match (hessian, args.tangents[1]) {
                (true, Some(gam_dot)) => Some(be.mul(g, gam_dot)?),
                _ => None,
            };
            out.push((dx, add(be, lin, cross)?));
        } else {
            out.push((None, None));
        }
        if args.needs[1] {
            let dg = if args.cotangent_needed[1] {
                Some(gain_grad(be, g, x, gamma)?)
            } else {
                None
            };
            let lin = gd.map(|gd| gain_grad(be, gd, x, gamma)).transpose()?;
            let cross = match (hessian, args.tangents[0]) {
                (true, Some(xd)) => Some(gain_grad(be, g, xd, gamma)?),
                _ => None,
            };
            out.push((dg, add(be, lin, cross)?));
        } else {
            out.push((None, None));
        }
        Ok(out)
    }
}
