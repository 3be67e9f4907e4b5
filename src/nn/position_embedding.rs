//! The learned positional embedding: a `[width, T]` sequence in, the same
//! out, with one learned vector per position added (GPT-2's `wpe`, as a
//! parameter `weight` `[T, width]`, PyTorch's `nn.Parameter` of that shape;
//! role: shift). Each example's gradient is its own cotangent, so it is a
//! shift site with one position per example over all T x width values.
//!
//! It starts at zero (a shift's init) and learns at the vector rate of the
//! parametrization (muP: like the biases). Zero is a fine start for an
//! additive table: its gradient at position t is the signal arriving at t,
//! which differs between positions as soon as anything downstream (a
//! causal mask, the chosen output position) tells them apart.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::dense::bias_act;
use crate::nn::layer::{ParamDecl, Recorder, Role, Site};
use crate::nn::shape::Shape;
use crate::tape::Var;

pub struct PositionEmbeddingLayer {
    pub width: usize,
    pub positions: usize,
}

impl PositionEmbeddingLayer {
    pub fn build(key: &str, input: Shape) -> Result<(Self, Shape)> {
        let Shape::Signal { c, l } = input else {
            return Err(Error::config(
                key,
                format!(
                    "a position embedding takes a [channels, length] sequence, but its input has shape {}",
                    input.describe()
                ),
            ));
        };
        Ok((
            PositionEmbeddingLayer {
                width: c,
                positions: l,
            },
            input,
        ))
    }

    pub fn params(&self) -> Vec<ParamDecl> {
        // Channels-last rows are already `[T, width]` in memory.
        vec![ParamDecl {
            suffix: "weight",
            shape: vec![self.positions * self.width],
            torch_shape: vec![self.positions, self.width],
            role: Role::Shift,
        }]
    }

    pub fn record<B: Backend>(
        &self,
        rec: &mut Recorder<B>,
        x: Var,
        p: &[Var],
        (first, group): (usize, usize),
    ) -> Result<Var> {
        let h = bias_act(rec, x, Some(p[0]), Activation::Identity, 1.0)?;
        rec.sites.push(Site::Shift {
            product: h,
            positions: 1,
            param: first,
            group,
        });
        Ok(h)
    }
}
