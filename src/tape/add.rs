//! `y = a + b` of two values of one shape: the join of a residual block.
//! Linear, so every cotangent and tangent passes through unchanged.

use super::op::{CotangentPair, TangentArgs};
use super::{add_optional, Op};
use crate::backend::shapes::same_shapes;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub struct Add;

impl<B: Backend> Op<B> for Add {
    fn name(&self) -> &'static str {
        "add"
    }

    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>> {
        let [a, b] = inputs else {
            return Err(Error::msg("add takes (a, b)"));
        };
        same_shapes("residual add", &[a.shape(), b.shape()])?;
        let mut y = (*a).clone();
        be.axpy(&mut y, 1.0, b)?;
        Ok(y)
    }

    fn vjp(
        &self,
        _be: &B,
        _i: &[&Tensor<B>],
        _o: &Tensor<B>,
        g: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>> {
        Ok(needs.iter().map(|&n| n.then(|| g.clone())).collect())
    }

    fn jvp(
        &mut self,
        be: &B,
        _i: &[&Tensor<B>],
        tangents: &[Option<&Tensor<B>>],
        _o: &Tensor<B>,
    ) -> Result<Option<Tensor<B>>> {
        add_optional(be, tangents[0].cloned(), tangents[1].cloned())
    }

    fn vjp_tangent(&self, _be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>> {
        Ok((0..2)
            .map(|i| {
                if !args.needs[i] {
                    return (None, None);
                }
                let cot = args.cotangent_needed[i].then(|| args.g_out.clone());
                (cot, args.g_out_dot.cloned())
            })
            .collect())
    }
}
