//! Fused bias add and activation, `post = act(z + bias_multiplier * b)`, one
//! op so the pre-activation is computed once and kept for backward.

use super::Op;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::tensor::Tensor;

pub struct BiasAct<B: Backend> {
    pub activation: Activation,
    pub bias_multiplier: f64,
    pre: Option<Tensor<B>>,
}

impl<B: Backend> BiasAct<B> {
    pub fn new(activation: Activation, bias_multiplier: f64) -> Self {
        BiasAct {
            activation,
            bias_multiplier,
            pre: None,
        }
    }
}

impl<B: Backend> Op<B> for BiasAct<B> {
    fn name(&self) -> &'static str {
        "bias_act"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let (z, b) = match inputs {
            [z] => (*z, None),
            [z, b] => (*z, Some(*b)),
            _ => return Err(Error::msg("bias_act takes (z) or (z, b)")),
        };
        let (pre, post) = be.bias_act(z, b, self.bias_multiplier, self.activation)?;
        self.pre = Some(pre);
        Ok(post)
    }

    fn vjp(
        &self,
        be: &B,
        inputs: &[&Tensor<B>],
        output: &Tensor<B>,
        g_out: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>> {
        let pre = self
            .pre
            .as_ref()
            .ok_or_else(|| Error::msg("bias_act: backward before forward"))?;
        let g_pre = be.act_backward(pre, output, g_out, self.activation)?;
        let db = if inputs.len() == 2 && needs[1] {
            let db = be.sum_rows(&g_pre, self.bias_multiplier)?;
            Some(db.reshape(inputs[1].shape())?)
        } else {
            None
        };
        let mut out = vec![if needs[0] { Some(g_pre) } else { None }];
        if inputs.len() == 2 {
            out.push(db);
        }
        Ok(out)
    }
}
