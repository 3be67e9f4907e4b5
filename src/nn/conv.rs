//! The convolution layer, PyTorch's `nn.Conv1d` / `nn.Conv2d` (square
//! kernel, stride, zero padding, bias) followed by an optional activation.
//! Recorded as im2col and one GEMM with the weight `[E, out, in * k * k]`
//! (PyTorch's `[out, in, kh, kw]` read as a matrix; role: weight, fan-in
//! `in * k * k` as in Yang & Hu's tables), on channels-last feature maps,
//! so the bias and activation are the dense layer's fused op over rows.
//! Per example the weight gradient is `m sum_p d_ip a_ip^T` over positions
//! p: per-sample norms use the ghost norm or materialize it, by cost.

use crate::backend::{Backend, Window};
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::dense::linear;
use crate::nn::layer::{per_example, ParamDecl, Recorder, Role};
use crate::nn::parametrization::LayerScale;
use crate::nn::shape::Shape;
use crate::tape::{Im2col, Var};

pub struct ConvLayer {
    /// 1 (`Conv1d`) or 2 (`Conv2d`).
    pub dims: usize,
    pub in_channels: usize,
    /// Entries of one patch, `in * k * k` (`in * k` in 1-D): the fan-in.
    pub fan_in: usize,
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
    pub activation: Activation,
    pub scale: LayerScale,
}

pub struct ConvSettings {
    pub dims: usize,
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
    pub activation: Activation,
}

impl ConvLayer {
    pub fn build(key: &str, s: ConvSettings, input: Shape) -> Result<(Self, Shape)> {
        let fits = matches!(
            (s.dims, input),
            (1, Shape::Signal { .. }) | (2, Shape::Image { .. })
        );
        if !fits {
            let wants = if s.dims == 1 {
                "a [channels, length] signal"
            } else {
                "a [channels, height, width] image"
            };
            return Err(Error::config(
                key,
                format!(
                    "conv{}d takes {wants}, but its input has shape {}",
                    s.dims,
                    input.describe()
                ),
            ));
        }
        if s.channels == 0 || s.kernel == 0 || s.stride == 0 {
            return Err(Error::config(
                key,
                "channels, kernel and stride must be at least 1",
            ));
        }
        let (c, h, w) = input.grid().expect("checked above");
        let win = Window::square(1, (c, h, w), s.kernel, s.stride, s.padding);
        if win.check().is_err() {
            return Err(Error::config(
                key,
                format!(
                    "a kernel of {} with padding {} does not fit the input of shape {}",
                    s.kernel,
                    s.padding,
                    input.describe()
                ),
            ));
        }
        let out = input.with_grid(s.channels, win.out_h(), win.out_w());
        let layer = ConvLayer {
            dims: s.dims,
            in_channels: c,
            fan_in: win.patch(),
            channels: s.channels,
            kernel: s.kernel,
            stride: s.stride,
            padding: s.padding,
            bias: s.bias,
            activation: s.activation,
            scale: LayerScale::unit(),
        };
        Ok((layer, out))
    }

    fn window(&self, n: usize, input: Shape) -> Window {
        let grid = input.grid().expect("a conv input is a grid");
        Window::square(n, grid, self.kernel, self.stride, self.padding)
    }

    pub fn params(&self) -> Vec<ParamDecl> {
        let mut torch = vec![self.channels, self.in_channels];
        torch.extend(std::iter::repeat_n(self.kernel, self.dims));
        let mut out = vec![ParamDecl {
            suffix: "weight",
            shape: vec![self.channels, self.fan_in],
            torch_shape: torch,
            role: Role::Weight,
        }];
        if self.bias {
            out.push(ParamDecl::new("bias", vec![self.channels], Role::Bias));
        }
        out
    }

    pub fn record<B: Backend>(
        &self,
        rec: &mut Recorder<B>,
        x: Var,
        p: &[Var],
        (first, group): (usize, usize),
        input: Shape,
    ) -> Result<Var> {
        let win = self.window(rec.batch, input);
        let cols = rec.tape.apply(Box::new(Im2col { window: win }), &[x])?;
        let at = (first, group, win.positions());
        let post = linear(rec, cols, p, &self.scale, self.activation, at)?;
        let out = input.with_grid(self.channels, win.out_h(), win.out_w());
        per_example(rec, post, out)
    }
}
