//! Dense layer product `z = multiplier * x W^T` with `x` `[E or 1, B, in]`
//! and `W` `[E, out, in]` (PyTorch's `nn.Linear` layout). The forward
//! multiplier is how NTK, muP and mean-field parametrizations scale a layer.

use super::op::{CotangentPair, Curvature, TangentArgs};
use super::{add_optional as add, Op};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub struct Dense {
    pub multiplier: f64,
}

fn check_shared_input<B: Backend>(x: &Tensor<B>, g_out: &Tensor<B>) -> Result<()> {
    if x.shape().len() < g_out.shape().len() || x.shape()[0] != g_out.shape()[0] {
        return Err(Error::shape(format!(
            "dense: the gradient of an input {:?} shared across an ensemble is not supported",
            x.shape()
        )));
    }
    Ok(())
}

impl<B: Backend> Op<B> for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let [x, w] = inputs else {
            return Err(Error::msg("dense takes (x, W)"));
        };
        be.matmul(x, false, w, true, self.multiplier)
    }

    fn vjp(
        &self,
        be: &B,
        inputs: &[&Tensor<B>],
        _output: &Tensor<B>,
        g_out: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>> {
        let [x, w] = inputs else {
            return Err(Error::msg("dense takes (x, W)"));
        };
        let dx = if needs[0] {
            check_shared_input(x, g_out)?;
            Some(be.matmul(g_out, false, w, false, self.multiplier)?)
        } else {
            None
        };
        let dw = if needs[1] {
            Some(be.matmul(g_out, true, x, false, self.multiplier)?)
        } else {
            None
        };
        Ok(vec![dx, dw])
    }

    fn jvp(
        &mut self,
        be: &B,
        inputs: &[&Tensor<B>],
        tangents: &[Option<&Tensor<B>>],
        _output: &Tensor<B>,
    ) -> Result<Option<Tensor<B>>> {
        let [x, w] = inputs else {
            return Err(Error::msg("dense takes (x, W)"));
        };
        let a = match tangents[0] {
            Some(xd) => Some(be.matmul(xd, false, w, true, self.multiplier)?),
            None => None,
        };
        let b = match tangents[1] {
            Some(wd) => Some(be.matmul(x, false, wd, true, self.multiplier)?),
            None => None,
        };
        add(be, a, b)
    }

    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        let [x, w] = args.inputs else {
            return Err(Error::msg("dense takes (x, W)"));
        };
        let (g, gd, m) = (args.g_out, args.g_out_dot, self.multiplier);
        let hessian = args.mode == Curvature::Hessian;
        let mut out = Vec::with_capacity(2);
        if args.needs[0] {
            check_shared_input(x, g)?;
            // dx = m g W, so its tangent is m (g_dot W + g W_dot).
            let dx = if args.cotangent_needed[0] {
                Some(be.matmul(g, false, w, false, m)?)
            } else {
                None
            };
            let lin = match gd {
                Some(gd) => Some(be.matmul(gd, false, w, false, m)?),
                None => None,
            };
            let second = match (hessian, args.tangents[1]) {
                (true, Some(wd)) => Some(be.matmul(g, false, wd, false, m)?),
                _ => None,
            };
            out.push((dx, add(be, lin, second)?));
        } else {
            out.push((None, None));
        }
        if args.needs[1] {
            // dW = m g^T x, so its tangent is m (g_dot^T x + g^T x_dot).
            let dw = if args.cotangent_needed[1] {
                Some(be.matmul(g, true, x, false, m)?)
            } else {
                None
            };
            let lin = match gd {
                Some(gd) => Some(be.matmul(gd, true, x, false, m)?),
                None => None,
            };
            let second = match (hessian, args.tangents[0]) {
                (true, Some(xd)) => Some(be.matmul(g, true, xd, false, m)?),
                _ => None,
            };
            out.push((dw, add(be, lin, second)?));
        } else {
            out.push((None, None));
        }
        Ok(out)
    }
}
