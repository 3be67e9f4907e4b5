//! Dense layer product `z = multiplier * x W^T` with `x` `[E or 1, B, in]`
//! and `W` `[E, out, in]` (PyTorch's `nn.Linear` layout). The forward
//! multiplier is how NTK, muP and mean-field parametrizations scale a layer.

use super::Op;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub struct Dense {
    pub multiplier: f64,
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
            if x.shape().len() < g_out.shape().len() || x.shape()[0] != g_out.shape()[0] {
                return Err(Error::shape(format!(
                    "dense: the gradient of an input {:?} shared across an ensemble is not supported",
                    x.shape()
                )));
            }
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
}
