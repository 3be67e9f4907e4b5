//! The interface every recorded op implements.

use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tensor;

pub trait Op<B: Backend>: Send {
    fn name(&self) -> &'static str;

    /// Compute the output; an op may keep what its backward pass needs
    /// (e.g. the pre-activation) in itself.
    fn forward(&mut self, be: &B, inputs: &[&Tensor<B>]) -> Result<Tensor<B>>;

    /// Cotangent of each input given the output's cotangent `g_out`; entries
    /// where `needs[i]` is false may be `None`.
    fn vjp(
        &self,
        be: &B,
        inputs: &[&Tensor<B>],
        output: &Tensor<B>,
        g_out: &Tensor<B>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<B>>>>;
}
