//! Fused bias add and activation, `post = act(z + bias_multiplier * b)`, one
//! op so the pre-activation is computed once and kept for backward.

use super::op::{CotangentPair, Curvature, TangentArgs};
use super::Op;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::tensor::Tensor;

pub struct BiasAct<B: Backend> {
    pub activation: Activation,
    pub bias_multiplier: f64,
    pre: Option<Tensor<B>>,
    pre_dot: Option<Tensor<B>>,
}

impl<B: Backend> BiasAct<B> {
    pub fn new(activation: Activation, bias_multiplier: f64) -> Self {
        BiasAct {
            activation,
            bias_multiplier,
            pre: None,
            pre_dot: None,
        }
    }

    fn pre(&self) -> Result<&Tensor<B>> {
        self.pre
            .as_ref()
            .ok_or_else(|| Error::msg("bias_act: backward before forward"))
    }

    /// The bias cotangent `bias_multiplier * sum over rows of g_pre`, shaped
    /// like the bias.
    fn bias_grad(&self, be: &B, g_pre: &Tensor<B>, bias: &Tensor<B>) -> Result<Tensor<B>> {
        be.sum_rows(g_pre, self.bias_multiplier)?
            .reshape(bias.shape())
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
        let g_pre = be.act_backward(self.pre()?, output, g_out, self.activation)?;
        let db = if inputs.len() == 2 && needs[1] {
            Some(self.bias_grad(be, &g_pre, inputs[1])?)
        } else {
            None
        };
        let mut out = vec![if needs[0] { Some(g_pre) } else { None }];
        if inputs.len() == 2 {
            out.push(db);
        }
        Ok(out)
    }

    fn jvp(
        &mut self,
        be: &B,
        inputs: &[&Tensor<B>],
        tangents: &[Option<&Tensor<B>>],
        output: &Tensor<B>,
    ) -> Result<Option<Tensor<B>>> {
        let z_dot = tangents[0].cloned();
        let b_dot = tangents.get(1).copied().flatten();
        let pre_dot = match (z_dot, b_dot) {
            (z_dot, Some(bd)) => {
                let base = match z_dot {
                    Some(t) => t,
                    None => be.zeros(inputs[0].shape())?,
                };
                Some(
                    be.bias_act(&base, Some(bd), self.bias_multiplier, Activation::Identity)?
                        .0,
                )
            }
            (z_dot, None) => z_dot,
        };
        let out = match &pre_dot {
            Some(pd) => Some(be.act_backward(self.pre()?, output, pd, self.activation)?),
            None => None,
        };
        self.pre_dot = pre_dot;
        Ok(out)
    }

    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        let pre = self.pre()?;
        let (post, g) = (args.output, args.g_out);
        let bias_wanted = args.inputs.len() == 2 && args.cotangent_needed[1];
        let g_pre = if args.cotangent_needed[0] || bias_wanted {
            Some(be.act_backward(pre, post, g, self.activation)?)
        } else {
            None
        };
        // Tangent of g * act'(pre): g_dot * act'(pre) always, plus
        // g * act''(pre) * pre_dot for the Hessian.
        let g_pre_dot = match (args.mode, &self.pre_dot) {
            (Curvature::Hessian, Some(pd)) => {
                let gd = match args.g_out_dot {
                    Some(gd) => gd.clone(),
                    None => be.zeros(g.shape())?,
                };
                Some(be.act_backward_tangent(pre, post, g, &gd, pd, self.activation)?)
            }
            _ => match args.g_out_dot {
                Some(gd) => Some(be.act_backward(pre, post, gd, self.activation)?),
                None => None,
            },
        };
        let bias = if args.inputs.len() == 2 && args.needs[1] {
            let db_dot = match &g_pre_dot {
                Some(t) => Some(self.bias_grad(be, t, args.inputs[1])?),
                None => None,
            };
            let db = match (&g_pre, bias_wanted) {
                (Some(gp), true) => Some(self.bias_grad(be, gp, args.inputs[1])?),
                _ => None,
            };
            (db, db_dot)
        } else {
            (None, None)
        };
        let mut out = vec![if args.needs[0] {
            (g_pre.filter(|_| args.cotangent_needed[0]), g_pre_dot)
        } else {
            (None, None)
        }];
        if args.inputs.len() == 2 {
            out.push(bias);
        }
        Ok(out)
    }
}
