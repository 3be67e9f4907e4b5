//! Pooling layers: max and average pooling over a window (1-D or 2-D as the
//! input is) and global average pooling, PyTorch's `MaxPool`/`AvgPool`
//! (`count_include_pad`) and `AdaptiveAvgPool(1)` + flatten. No parameters.
//! Recorded as im2col and a reduction over each channel's window, so they
//! share the convolution's kernels and derivatives.

use crate::backend::{Backend, Window};
use crate::error::{Error, Result};
use crate::nn::layer::{per_example, reshape, Recorder};
use crate::nn::shape::Shape;
use crate::tape::{Im2col, RowMax, RowMean, Var};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

pub struct PoolLayer {
    pub kind: PoolKind,
    /// `None`: the whole grid (global average pooling).
    pub kernel: Option<usize>,
    pub stride: usize,
    pub padding: usize,
}

impl PoolLayer {
    pub fn build(key: &str, layer: PoolLayer, input: Shape) -> Result<(Self, Shape)> {
        let Some((c, _, _)) = input.grid() else {
            return Err(Error::config(
                key,
                format!(
                    "pooling takes a signal or an image, but its input is a vector of {}",
                    input.describe()
                ),
            ));
        };
        if layer.kernel == Some(0) || layer.stride == 0 {
            return Err(Error::config(key, "kernel and stride must be at least 1"));
        }
        let win = layer.window(1, input);
        if win.check().is_err() {
            return Err(Error::config(
                key,
                format!(
                    "a pooling window of {} with padding {} does not fit the input of shape {}",
                    layer.kernel.unwrap_or(0),
                    layer.padding,
                    input.describe()
                ),
            ));
        }
        let out = match layer.kernel {
            None => Shape::Flat(c),
            Some(_) => input.with_grid(c, win.out_h(), win.out_w()),
        };
        Ok((layer, out))
    }

    fn window(&self, n: usize, input: Shape) -> Window {
        let (c, h, w) = input.grid().expect("a pooling input is a grid");
        match self.kernel {
            None => Window {
                n,
                c,
                h,
                w,
                kh: h,
                kw: w,
                sh: 1,
                sw: 1,
                ph: 0,
                pw: 0,
            },
            Some(k) => Window::square(n, (c, h, w), k, self.stride, self.padding),
        }
    }

    pub fn record<B: Backend>(&self, rec: &mut Recorder<B>, x: Var, input: Shape) -> Result<Var> {
        let win = self.window(rec.batch, input);
        let cols = rec.tape.apply(Box::new(Im2col { window: win }), &[x])?;
        // Each (position, channel) row holds that channel's window.
        let mut dims: Vec<usize> = rec.tape.value(cols).shape().to_vec();
        let rows = dims.len() - 2;
        dims.truncate(rows);
        dims.extend([rec.batch * win.positions() * win.c, win.kh * win.kw]);
        let windows = reshape(rec, cols, dims)?;
        let pooled = match self.kind {
            PoolKind::Max => rec.tape.apply(Box::new(RowMax::new()), &[windows])?,
            PoolKind::Avg => rec.tape.apply(Box::new(RowMean), &[windows])?,
        };
        let out = match self.kernel {
            None => Shape::Flat(win.c),
            Some(_) => input.with_grid(win.c, win.out_h(), win.out_w()),
        };
        per_example(rec, pooled, out)
    }
}
