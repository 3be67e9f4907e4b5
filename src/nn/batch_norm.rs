//! BatchNorm, PyTorch's `nn.BatchNorm1d/2d(c)`: each channel normalized
//! over the batch (and positions) with the batch's statistics in training
//! (biased variance), with the running statistics in evaluation, then a
//! gain (role: gain) and bias (role: shift). Running statistics are buffers
//! (`running_mean`, `running_var`, unbiased, momentum as PyTorch's), updated
//! by training steps only. The batch normalization is the row normalization
//! of the transposed `[channels, rows]` activations, so it shares that op's
//! kernels and second derivative. It mixes the examples of a batch:
//! per-example gradients and the NTK are not defined for it.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::dense::bias_act;
use crate::nn::layer::{per_example, per_position, Mode, ParamDecl, Recorder};
use crate::nn::norm::{affine_params, gain_and_shift};
use crate::nn::shape::Shape;
use crate::tape::{Mul, NormRows, Transpose, Var};

pub struct BatchNormLayer {
    pub channels: usize,
    pub gain: bool,
    pub bias: bool,
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNormLayer {
    pub fn build(
        key: &str,
        gain: bool,
        bias: bool,
        eps: f64,
        momentum: f64,
        input: Shape,
    ) -> Result<(Self, Shape)> {
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(Error::config(key, format!("eps must be > 0, got {eps}")));
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(Error::config(
                key,
                format!("momentum must be in [0, 1], got {momentum}"),
            ));
        }
        let layer = BatchNormLayer {
            channels: input.channels(),
            gain,
            bias,
            eps,
            momentum,
        };
        Ok((layer, input))
    }

    pub fn params(&self) -> Vec<ParamDecl> {
        affine_params(self.channels, self.gain, self.bias)
    }

    /// The running mean and variance, each `[channels]` per member.
    pub fn buffers(&self) -> Vec<(&'static str, usize, f64)> {
        vec![
            ("running_mean", self.channels, 0.0),
            ("running_var", self.channels, 1.0),
        ]
    }

    pub fn record<B: Backend>(
        &self,
        rec: &mut Recorder<B>,
        x: Var,
        p: &[Var],
        (first, group, first_buffer): (usize, usize, usize),
        input: Shape,
    ) -> Result<Var> {
        let positions = input.positions();
        let rows = per_position(rec, x, input)?;
        let y = match rec.mode {
            Mode::Train => {
                rec.batch_stats.push((first_buffer, rows));
                self.batch_normalized(rec, rows)?
            }
            Mode::Eval => self.running_normalized(rec, rows, first_buffer)?,
        };
        let h = gain_and_shift(rec, y, p, (first, group), positions, (self.gain, self.bias))?;
        per_example(rec, h, input)
    }

    /// `[M, R, C]` rows normalized per channel over the R rows.
    fn batch_normalized<B: Backend>(&self, rec: &mut Recorder<B>, rows: Var) -> Result<Var> {
        let shape = rec.tape.value(rows).shape().to_vec();
        let c = self.channels;
        let r = rec.tape.value(rows).numel() / c;
        let m = if shape.len() >= 3 { shape[0] } else { 1 };
        let r_per = r / m;
        let t_shape = if shape.len() >= 3 {
            vec![m, c, r_per]
        } else {
            vec![c, r_per]
        };
        let t = rec.tape.apply(
            Box::new(Transpose {
                n: m,
                r: r_per,
                c,
                shape: t_shape,
            }),
            &[rows],
        )?;
        let n = rec
            .tape
            .apply(Box::new(NormRows::new(true, self.eps)), &[t])?;
        rec.tape.apply(
            Box::new(Transpose {
                n: m,
                r: c,
                c: r_per,
                shape,
            }),
            &[n],
        )
    }

    /// `(x - running_mean) / sqrt(running_var + eps)`, the statistics held
    /// constant.
    fn running_normalized<B: Backend>(
        &self,
        rec: &mut Recorder<B>,
        rows: Var,
        first_buffer: usize,
    ) -> Result<Var> {
        let be = rec.tape.backend().clone();
        let mean = be.to_f64(&rec.buffers[first_buffer])?;
        let var = be.to_f64(&rec.buffers[first_buffer + 1])?;
        let scale: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let shift: Vec<f64> = mean.iter().zip(&scale).map(|(m, s)| -m * s).collect();
        let members = mean.len() / self.channels;
        let s = rec
            .tape
            .leaf(be.from_f64(&[members, self.channels], &scale)?, false);
        let b = rec
            .tape
            .leaf(be.from_f64(&[members, self.channels], &shift)?, false);
        let scaled = rec.tape.apply(Box::new(Mul), &[rows, s])?;
        bias_act(rec, scaled, Some(b), Activation::Identity, 1.0)
    }
}
