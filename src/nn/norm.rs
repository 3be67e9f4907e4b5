//! LayerNorm and RMSNorm over the channels at each position (the features
//! of a vector): PyTorch's `nn.LayerNorm(c)` / `nn.RMSNorm(c)` applied
//! channels-last, with an optional gain (role: gain, starts at 1) and bias
//! (role: shift, starts at 0). Recorded as the row normalization op, the
//! per-channel gain and the bias add; the gain's per-example gradient is
//! `sum_p d_ip * y_ip`, the bias's `sum_p d_ip`.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::dense::bias_act;
use crate::nn::layer::{per_example, per_position, ParamDecl, Recorder, Role, Site};
use crate::nn::shape::Shape;
use crate::tape::{Mul, NormRows, Var};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    Layer,
    Rms,
}

pub struct NormLayer {
    pub kind: NormKind,
    pub channels: usize,
    pub gain: bool,
    pub bias: bool,
    pub eps: f64,
}

impl NormLayer {
    pub fn build(
        key: &str,
        kind: NormKind,
        gain: bool,
        bias: bool,
        eps: f64,
        input: Shape,
    ) -> Result<(Self, Shape)> {
        if !(eps >= 0.0 && eps.is_finite()) {
            return Err(Error::config(key, format!("eps must be >= 0, got {eps}")));
        }
        if kind == NormKind::Layer && input.channels() < 2 {
            return Err(Error::config(
                key,
                format!(
                    "layer_norm over {} channel normalizes every value to 0",
                    input.channels()
                ),
            ));
        }
        let layer = NormLayer {
            kind,
            channels: input.channels(),
            gain,
            bias,
            eps,
        };
        Ok((layer, input))
    }

    pub fn params(&self) -> Vec<ParamDecl> {
        affine_params(self.channels, self.gain, self.bias)
    }

    pub fn record<B: Backend>(
        &self,
        rec: &mut Recorder<B>,
        x: Var,
        p: &[Var],
        (first, group): (usize, usize),
        input: Shape,
    ) -> Result<Var> {
        let positions = input.positions();
        let rows = per_position(rec, x, input)?;
        let center = self.kind == NormKind::Layer;
        let y = rec
            .tape
            .apply(Box::new(NormRows::new(center, self.eps)), &[rows])?;
        let h = gain_and_shift(rec, y, p, (first, group), positions, (self.gain, self.bias))?;
        per_example(rec, h, input)
    }
}

/// A normalization's gain (role: gain, `weight`) and bias (role: shift,
/// `bias`), `[channels]` each, as the ones present.
pub fn affine_params(channels: usize, gain: bool, bias: bool) -> Vec<ParamDecl> {
    let mut out = Vec::new();
    if gain {
        out.push(ParamDecl::new("weight", vec![channels], Role::Gain));
    }
    if bias {
        out.push(ParamDecl::new("bias", vec![channels], Role::Shift));
    }
    out
}

/// `y * gamma + beta` on normalized rows `y` (each part only if present,
/// `p` the layer's parameters in `affine_params` order, starting at model
/// parameter `first`), with the sites per-sample observers read.
pub fn gain_and_shift<B: Backend>(
    rec: &mut Recorder<B>,
    y: Var,
    p: &[Var],
    (first, group): (usize, usize),
    positions: usize,
    (gain, bias): (bool, bool),
) -> Result<Var> {
    let mut h = y;
    let mut param = first;
    if gain {
        h = rec.tape.apply(Box::new(Mul), &[y, p[0]])?;
        rec.sites.push(Site::Gain {
            normalized: y,
            product: h,
            positions,
            param,
            group,
        });
        param += 1;
    }
    if bias {
        h = bias_act(rec, h, Some(p[param - first]), Activation::Identity, 1.0)?;
        rec.sites.push(Site::Shift {
            product: h,
            positions,
            param,
            group,
        });
    }
    Ok(h)
}
