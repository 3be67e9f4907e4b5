//! One position of a sequence: `[channels, T]` in, the `[channels]` vector
//! at position `index` out (negative counts from the end, as in Python;
//! -1, the last, is the answer token of a modular-arithmetic problem).
//! PyTorch's `x[:, :, index]` on `[N, channels, T]`.
//!
//! Recorded as a product with a constant one-hot selector, after moving
//! the positions last (`[M B, T, c] -> [M B, c, T]`): two linear tape ops
//! with every derivative, on every backend, costing `B T c`. It holds no
//! parameters, so it adds no site; the gradient flows to position `index`
//! only.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::layer::{reshape, Recorder};
use crate::nn::shape::Shape;
use crate::tape::{Dense, Transpose, Var};

pub struct PickPositionLayer {
    /// The position, from the start.
    pub index: usize,
    pub channels: usize,
    pub positions: usize,
}

impl PickPositionLayer {
    pub fn build(key: &str, index: i64, input: Shape) -> Result<(Self, Shape)> {
        let Shape::Signal { c, l } = input else {
            return Err(Error::config(
                key,
                format!(
                    "pick_position takes a [channels, length] sequence, but its input has shape {}",
                    input.describe()
                ),
            ));
        };
        let from_start = if index < 0 { l as i64 + index } else { index };
        if from_start < 0 || from_start >= l as i64 {
            return Err(Error::config(
                format!("{key}.index"),
                format!("position {index} is outside a sequence of {l} positions"),
            ));
        }
        let layer = PickPositionLayer {
            index: from_start as usize,
            channels: c,
            positions: l,
        };
        Ok((layer, Shape::Flat(c)))
    }

    pub fn record<B: Backend>(&self, rec: &mut Recorder<B>, x: Var) -> Result<Var> {
        let shape = rec.tape.value(x).shape().to_vec();
        let lead = &shape[..shape.len() - 2];
        let seqs = lead.iter().product::<usize>() * rec.batch;
        let (t, c) = (self.positions, self.channels);
        let moved = rec.tape.apply(
            Box::new(Transpose {
                n: seqs,
                r: t,
                c,
                shape: vec![seqs * c, t],
            }),
            &[x],
        )?;
        let be = rec.tape.backend().clone();
        let mut e = vec![0.0; t];
        e[self.index] = 1.0;
        let selector = rec.tape.leaf(be.from_f64(&[1, t], &e)?, false);
        let picked = rec
            .tape
            .apply(Box::new(Dense { multiplier: 1.0 }), &[moved, selector])?;
        let mut dims = lead.to_vec();
        dims.extend([rec.batch, c]);
        reshape(rec, picked, dims)
    }
}
