//! The interface every recorded op implements: forward, reverse (vjp),
//! forward-mode tangent (jvp), and the tangent of the reverse pass, which
//! together give Hessian-vector products by Pearlmutter's R-op: one
//! forward-with-tangent pass and one backward-with-tangent pass, with no
//! second-order graph (DESIGN.md, 4).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Which curvature the backward-with-tangent pass computes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Curvature {
    /// The full Hessian of the loss.
    Hessian,
    /// The Gauss-Newton matrix J^T H_loss J: the tangent of the backward
    /// pass keeps only the loss head's second derivative and propagates it
    /// linearly, dropping the network's own second-order terms.
    GaussNewton,
}

/// Everything the tangent of an op's reverse pass may need.
pub struct TangentArgs<'a, B: Backend> {
    pub inputs: &'a [&'a Tensor<B>],
    /// Tangent of each input (None: zero).
    pub tangents: &'a [Option<&'a Tensor<B>>],
    pub output: &'a Tensor<B>,
    /// Cotangent of the output and its tangent (None: zero).
    pub g_out: &'a Tensor<B>,
    pub g_out_dot: Option<&'a Tensor<B>>,
    pub needs: &'a [bool],
    /// Whether each input's plain cotangent is wanted (an HVP needs only
    /// the tangents at the parameters, so their gradients are skipped).
    pub cotangent_needed: &'a [bool],
    pub mode: Curvature,
}

/// An input's cotangent and the cotangent's tangent.
pub type CotangentPair<B> = (Option<Tensor<B>>, Option<Tensor<B>>);

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

    /// The output's tangent given the inputs' tangents (None: zero), called
    /// right after `forward`; an op may keep tangents its reverse tangent
    /// needs. Returns None when the output's tangent is zero.
    fn jvp(
        &mut self,
        be: &B,
        inputs: &[&Tensor<B>],
        tangents: &[Option<&Tensor<B>>],
        output: &Tensor<B>,
    ) -> Result<Option<Tensor<B>>>;

    /// The reverse pass and its tangent together: for each input, its
    /// cotangent and the tangent of that cotangent.
    fn vjp_tangent(&self, be: &B, args: &TangentArgs<B>) -> Result<Vec<CotangentPair<B>>>;
}

/// The single input of a one-input op's forward pass (`name takes (x)`
/// otherwise).
pub fn one_input<'a, B: Backend>(name: &str, inputs: &[&'a Tensor<B>]) -> Result<&'a Tensor<B>> {
    match inputs {
        [x] => Ok(x),
        _ => Err(Error::msg(format!("{name} takes (x)"))),
    }
}

/// The reverse pass and its tangent for a one-input op whose vjp is a fixed
/// linear map `back` of the output cotangent (a linear op, or a piecewise
/// linear one on its recorded piece): no second-order term, so the
/// cotangent and its tangent both go through `back`.
pub fn linear_vjp_tangent<B: Backend>(
    args: &TangentArgs<B>,
    back: impl Fn(&Tensor<B>) -> Result<Tensor<B>>,
) -> Result<Vec<CotangentPair<B>>> {
    if !args.needs[0] {
        return Ok(vec![(None, None)]);
    }
    let cot = if args.cotangent_needed[0] {
        Some(back(args.g_out)?)
    } else {
        None
    };
    Ok(vec![(cot, args.g_out_dot.map(back).transpose()?)])
}

/// The same for a one-input op whose vjp at its recorded point is a
/// linear map `back` of the cotangent that also depends on the input (a
/// row normalization, a softmax): the cotangent's tangent adds, for the
/// Hessian, `second(g, x_dot)`, the change of `back(g)` along the input
/// tangent with `g` fixed.
pub fn curved_vjp_tangent<B: Backend>(
    be: &B,
    args: &TangentArgs<B>,
    back: impl Fn(&Tensor<B>) -> Result<Tensor<B>>,
    second: impl Fn(&Tensor<B>, &Tensor<B>) -> Result<Tensor<B>>,
) -> Result<Vec<CotangentPair<B>>> {
    let mut out = linear_vjp_tangent(args, &back)?;
    if let (Curvature::Hessian, Some(xd), true) = (args.mode, args.tangents[0], args.needs[0]) {
        let extra = second(args.g_out, xd)?;
        let (_, dot) = &mut out[0];
        *dot = super::add_optional(be, dot.take(), Some(extra))?;
    }
    Ok(out)
}
