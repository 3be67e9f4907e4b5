//! The dense layer, PyTorch's `nn.Linear` followed by an optional
//! activation: `act(m x W^T + m_b b)`, W `[E, out, in]` (role: weight,
//! fan-in `in`), b `[E, out]` (role: bias). A vector in, a vector out. Per
//! example its weight gradient is `m d_i a_i^T`, so per-sample norms and the
//! NTK need only a_i and d_i (DESIGN.md, 5).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::layer::{ParamDecl, Recorder, Role, Site};
use crate::nn::parametrization::LayerScale;
use crate::nn::shape::Shape;
use crate::tape::{BiasAct, Dense, Var};

pub struct DenseLayer {
    pub fan_in: usize,
    pub width: usize,
    pub bias: bool,
    pub activation: Activation,
    pub scale: LayerScale,
}

impl DenseLayer {
    pub fn build(
        key: &str,
        width: usize,
        bias: bool,
        activation: Activation,
        input: Shape,
    ) -> Result<(Self, Shape)> {
        let Shape::Flat(fan_in) = input else {
            return Err(Error::config(
                key,
                format!(
                    "a dense layer takes a vector, but its input is a {} feature map; put a flatten or global_avg_pool layer before it",
                    input.describe()
                ),
            ));
        };
        if width == 0 {
            return Err(Error::config(key, "width must be at least 1"));
        }
        let layer = DenseLayer {
            fan_in,
            width,
            bias,
            activation,
            scale: LayerScale::unit(),
        };
        Ok((layer, Shape::Flat(width)))
    }

    pub fn params(&self) -> Vec<ParamDecl> {
        let mut out = vec![ParamDecl::new(
            "weight",
            vec![self.width, self.fan_in],
            Role::Weight,
        )];
        if self.bias {
            out.push(ParamDecl::new("bias", vec![self.width], Role::Bias));
        }
        out
    }

    pub fn record<B: Backend>(
        &self,
        rec: &mut Recorder<B>,
        x: Var,
        p: &[Var],
        (first, group): (usize, usize),
    ) -> Result<Var> {
        let at = (first, group, 1);
        linear(rec, x, p, &self.scale, self.activation, at)
    }
}

/// `act(m a W^T + m_b b)` on rows `a` (`positions` rows per example; `p` is
/// the weight and, if any, the bias, the first at model parameter
/// `first`), recorded with the site per-sample observers read. Dense and
/// convolution layers (on im2col's patches) share it.
pub fn linear<B: Backend>(
    rec: &mut Recorder<B>,
    a: Var,
    p: &[Var],
    scale: &LayerScale,
    act: Activation,
    at: (usize, usize, usize),
) -> Result<Var> {
    linear_site(rec, a, p, scale, act, at, WeightLayout::OutIn)
}

/// How the weight parameter behind a product is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[out, in]`, as `nn.Linear` stores it and the product reads it.
    OutIn,
    /// `[in, out]` (`nn.Embedding`'s `[vocab, width]`): the product reads
    /// its transpose, taken on the tape.
    Transposed,
}

/// [`linear`] with `p[0]` the `[out, in]` matrix the product reads, taken
/// from a parameter stored as `layout` says.
pub fn linear_site<B: Backend>(
    rec: &mut Recorder<B>,
    a: Var,
    p: &[Var],
    scale: &LayerScale,
    act: Activation,
    (first, group, positions): (usize, usize, usize),
    layout: WeightLayout,
) -> Result<Var> {
    let z = rec.tape.apply(
        Box::new(Dense {
            multiplier: scale.multiplier,
        }),
        &[a, p[0]],
    )?;
    let bias = p.get(1).copied();
    let output = bias_act(rec, z, bias, act, scale.bias_multiplier)?;
    rec.sites.push(Site::Linear {
        input: a,
        product: z,
        output,
        positions,
        multiplier: scale.multiplier,
        bias_multiplier: scale.bias_multiplier,
        weight: first,
        bias: bias.map(|_| first + 1),
        group,
        layout,
    });
    Ok(output)
}

/// `act(z + m_b b)` as one fused op, or `z` itself when there is neither.
pub fn bias_act<B: Backend>(
    rec: &mut Recorder<B>,
    z: Var,
    b: Option<Var>,
    act: Activation,
    mb: f64,
) -> Result<Var> {
    match (b, act) {
        (None, Activation::Identity) => Ok(z),
        (None, act) => rec.tape.apply(Box::new(BiasAct::new(act, 1.0)), &[z]),
        (Some(b), act) => rec.tape.apply(Box::new(BiasAct::new(act, mb)), &[z, b]),
    }
}
