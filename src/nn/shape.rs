//! The shape of one example's features where two layers meet: a vector, a
//! 1-D signal `[c, l]` or an image `[c, h, w]`, named as PyTorch names them
//! (channels first). Between layers lmech stores signals and images
//! channels-last (`[l, c]`, `[h, w, c]`), so a convolution is one GEMM and
//! per-channel ops read contiguous rows; the data comes channels-first and
//! `Flatten` returns to that order, so dense weights match PyTorch's.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    Flat(usize),
    Signal { c: usize, l: usize },
    Image { c: usize, h: usize, w: usize },
}

impl Shape {
    /// From PyTorch-style dimensions: `[d]`, `[c, l]` or `[c, h, w]`.
    pub fn from_dims(key: &str, dims: &[usize]) -> Result<Shape> {
        if dims.contains(&0) {
            return Err(Error::config(key, format!("{dims:?} has a zero dimension")));
        }
        match *dims {
            [d] => Ok(Shape::Flat(d)),
            [c, l] => Ok(Shape::Signal { c, l }),
            [c, h, w] => Ok(Shape::Image { c, h, w }),
            _ => Err(Error::config(
                key,
                format!("expected [features], [channels, length] or [channels, height, width], got {dims:?}"),
            )),
        }
    }

    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Flat(d) => vec![d],
            Shape::Signal { c, l } => vec![c, l],
            Shape::Image { c, h, w } => vec![c, h, w],
        }
    }

    pub fn features(&self) -> usize {
        self.dims().iter().product()
    }

    /// Channels of a signal or image; a vector's features.
    pub fn channels(&self) -> usize {
        match *self {
            Shape::Flat(d) => d,
            Shape::Signal { c, .. } | Shape::Image { c, .. } => c,
        }
    }

    /// Positions that share per-channel weights: 1 for a vector.
    pub fn positions(&self) -> usize {
        self.features() / self.channels()
    }

    /// `(c, h, w)` of an image, `(c, 1, l)` of a signal.
    pub fn grid(&self) -> Option<(usize, usize, usize)> {
        match *self {
            Shape::Flat(_) => None,
            Shape::Signal { c, l } => Some((c, 1, l)),
            Shape::Image { c, h, w } => Some((c, h, w)),
        }
    }

    /// The same kind of shape with `c` channels on an `h x w` grid.
    pub fn with_grid(&self, c: usize, h: usize, w: usize) -> Shape {
        match self {
            Shape::Signal { .. } => Shape::Signal { c, l: w },
            _ => Shape::Image { c, h, w },
        }
    }

    /// `3x32x32`, `1x64` or `100`, for messages.
    pub fn describe(&self) -> String {
        let d: Vec<String> = self.dims().iter().map(|v| v.to_string()).collect();
        d.join("x")
    }
}
