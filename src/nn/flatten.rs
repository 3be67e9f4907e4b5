//! Flatten, PyTorch's `nn.Flatten()`: a signal or image becomes a vector in
//! channels-first order (c, then h, then w), so the dense weight after it is
//! the one PyTorch would have. Since lmech stores feature maps channels-last
//! this is a transpose per example; a vector passes through unchanged.

use crate::backend::Backend;
use crate::error::Result;
use crate::nn::layer::Recorder;
use crate::nn::shape::Shape;
use crate::tape::{Transpose, Var};

pub struct FlattenLayer;

impl FlattenLayer {
    pub fn build(input: Shape) -> (Self, Shape) {
        (FlattenLayer, Shape::Flat(input.features()))
    }

    pub fn record<B: Backend>(&self, rec: &mut Recorder<B>, x: Var, input: Shape) -> Result<Var> {
        to_channels_first(rec, x, input)
    }
}

/// `[.., B, positions * c]` channels-last to channels-first (a no-op with
/// one channel or one position).
pub fn to_channels_first<B: Backend>(rec: &mut Recorder<B>, x: Var, shape: Shape) -> Result<Var> {
    let (p, c) = (shape.positions(), shape.channels());
    if p == 1 || c == 1 {
        return Ok(x);
    }
    let out_shape = rec.tape.value(x).shape().to_vec();
    let n = rec.tape.value(x).numel() / (p * c);
    rec.tape.apply(
        Box::new(Transpose {
            n,
            r: p,
            c,
            shape: out_shape,
        }),
        &[x],
    )
}

/// Channels-first data (`[B, c * positions]`, as loaded) to channels-last.
pub fn to_channels_last<B: Backend>(rec: &mut Recorder<B>, x: Var, shape: Shape) -> Result<Var> {
    let (p, c) = (shape.positions(), shape.channels());
    if p == 1 || c == 1 {
        return Ok(x);
    }
    let out_shape = rec.tape.value(x).shape().to_vec();
    let n = rec.tape.value(x).numel() / (p * c);
    rec.tape.apply(
        Box::new(Transpose {
            n,
            r: c,
            c: p,
            shape: out_shape,
        }),
        &[x],
    )
}
