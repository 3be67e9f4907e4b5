//! Multi-head self-attention over the positions of a sequence: a
//! `[channels = d, length = T]` signal (channels-last rows inside, one row
//! per position), out the same shape. Four `nn.Linear`-named projections
//! (`q`, `k`, `v` from d to heads * head_dim, `o` back to d; role: weight,
//! each with its own fan-in and position in the parametrization's walk
//! order), scores `scale * q k^T` per head with `scale = 1/sqrt(head_dim)`
//! (SP, NTK) or `1/head_dim` (muP and mean field, Tensor Programs V), an
//! optional causal mask, the row softmax, and the values.
//!
//! Recorded from existing tape ops only: heads are split by two batched
//! transposes (`[M B, T, H dh] -> [M B, H dh, T] -> [M B H, T, dh]`; the
//! first already gives the values' transpose the context product needs)
//! and merged by two more; scores and context are `Dense` products of two
//! activations. So HVPs, Gauss-Newton products and every backend come for
//! free (`tests/attention_gradcheck.rs` checks the composition). The four
//! projections are shared over the T positions, so per-sample norms and
//! the NTK read them as sites with T positions, like a convolution's.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::dense::{linear, DenseLayer};
use crate::nn::layer::{per_example, per_position, reshape, transpose, ParamDecl, Recorder, Role};
use crate::nn::parametrization::{Init, LayerScale, Parametrization};
use crate::nn::shape::Shape;
use crate::tape::{Dense, Softmax, Var};

/// The projections' parameter names, in parameter order.
const NAMES: [(&str, &str); 4] = [
    ("q.weight", "q.bias"),
    ("k.weight", "k.bias"),
    ("v.weight", "v.bias"),
    ("o.weight", "o.bias"),
];

pub struct AttentionLayer {
    /// d, the input and output channels.
    pub width: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub causal: bool,
    pub bias: bool,
    /// T, the sequence length.
    pub positions: usize,
    /// q, k, v, o.
    pub proj: [DenseLayer; 4],
    /// The scores' factor, set with the parametrization.
    pub score_scale: f64,
}

pub struct AttentionSettings {
    pub heads: usize,
    pub head_dim: Option<usize>,
    pub causal: bool,
    pub bias: bool,
}

impl AttentionLayer {
    pub fn build(key: &str, s: AttentionSettings, input: Shape) -> Result<(Self, Shape)> {
        let Shape::Signal { c: width, l } = input else {
            return Err(Error::config(
                key,
                format!(
                    "attention takes a [channels, length] sequence, but its input has shape {}",
                    input.describe()
                ),
            ));
        };
        if s.heads == 0 {
            return Err(Error::config(key, "heads must be at least 1"));
        }
        let head_dim = match s.head_dim {
            Some(0) => return Err(Error::config(key, "head_dim must be at least 1")),
            Some(h) => h,
            None if width % s.heads == 0 => width / s.heads,
            None => {
                return Err(Error::config(
                    key,
                    format!(
                        "{} channels do not split into {} heads; set head_dim",
                        width, s.heads
                    ),
                ))
            }
        };
        let inner = s.heads * head_dim;
        let proj = |fan_in: usize, out: usize| DenseLayer {
            fan_in,
            width: out,
            bias: s.bias,
            activation: Activation::Identity,
            scale: LayerScale::unit(),
        };
        let layer = AttentionLayer {
            width,
            heads: s.heads,
            head_dim,
            causal: s.causal,
            bias: s.bias,
            positions: l,
            proj: [
                proj(width, inner),
                proj(width, inner),
                proj(width, inner),
                proj(inner, width),
            ],
            score_scale: 1.0 / (head_dim as f64).sqrt(),
        };
        Ok((layer, input))
    }

    pub fn params(&self) -> Vec<ParamDecl> {
        let mut out = Vec::new();
        for (p, (w, b)) in self.proj.iter().zip(NAMES) {
            out.push(ParamDecl::new(w, vec![p.width, p.fan_in], Role::Weight));
            if self.bias {
                out.push(ParamDecl::new(b, vec![p.width], Role::Bias));
            }
        }
        out
    }

    /// The parametrization's attention rules once the projections have
    /// their scales: muP's (and mean field's) `1/head_dim` scores and
    /// zero-initialized queries (Tensor Programs V), else `1/sqrt(head_dim)`.
    pub fn parametrize(&mut self, p: Parametrization) {
        let mu = matches!(p, Parametrization::Mup | Parametrization::MeanField);
        let dh = self.head_dim as f64;
        self.score_scale = if mu { 1.0 / dh } else { 1.0 / dh.sqrt() };
        if matches!(p, Parametrization::Mup) {
            self.proj[0].scale.weight_init = Init::Zeros;
        }
    }

    /// Each projection's weight index (model parameter) from `first`.
    fn weight_at(&self, first: usize, i: usize) -> usize {
        first + i * if self.bias { 2 } else { 1 }
    }

    pub fn record<B: Backend>(
        &self,
        rec: &mut Recorder<B>,
        x: Var,
        p: &[Var],
        (first, group): (usize, usize),
        input: Shape,
    ) -> Result<Var> {
        let rows = per_position(rec, x, input)?;
        let per = if self.bias { 2 } else { 1 };
        let project = |rec: &mut Recorder<B>, a: Var, i: usize| {
            let at = (self.weight_at(first, i), group, self.positions);
            linear(
                rec,
                a,
                &p[i * per..(i + 1) * per],
                &self.proj[i].scale,
                Activation::Identity,
                at,
            )
        };
        let q = project(rec, rows, 0)?;
        let k = project(rec, rows, 1)?;
        let v = project(rec, rows, 2)?;
        let ctx = self.mix(rec, q, k, v)?;
        let out = project(rec, ctx, 3)?;
        per_example(rec, out, input)
    }

    /// `softmax(scale q k^T) v` per head: `[M, B T, H dh]` projections in,
    /// `[M, B T, H dh]` context out.
    fn mix<B: Backend>(&self, rec: &mut Recorder<B>, q: Var, k: Var, v: Var) -> Result<Var> {
        let shape = rec.tape.value(q).shape().to_vec();
        let members = if shape.len() >= 3 { shape[0] } else { 1 };
        let (t, inner) = (self.positions, self.heads * self.head_dim);
        let seqs = members * rec.batch;
        let q = self.heads_transposed(rec, q, seqs)?;
        let q = transpose(rec, q, (seqs * self.heads, self.head_dim, t))?;
        let k = self.heads_transposed(rec, k, seqs)?;
        let k = transpose(rec, k, (seqs * self.heads, self.head_dim, t))?;
        let v_t = self.heads_transposed(rec, v, seqs)?;
        let scores = rec.tape.apply(
            Box::new(Dense {
                multiplier: self.score_scale,
            }),
            &[q, k],
        )?;
        let probs = rec.tape.apply(
            Box::new(Softmax {
                causal: self.causal,
            }),
            &[scores],
        )?;
        rec.attention.push((probs, self.heads));
        let ctx = rec
            .tape
            .apply(Box::new(Dense { multiplier: 1.0 }), &[probs, v_t])?;
        let ctx = transpose(rec, ctx, (seqs * self.heads, t, self.head_dim))?;
        let ctx = reshape(rec, ctx, vec![seqs, inner, t])?;
        let ctx = transpose(rec, ctx, (seqs, inner, t))?;
        let mut dims = if shape.len() >= 3 {
            vec![members]
        } else {
            Vec::new()
        };
        dims.extend([rec.batch * t, inner]);
        reshape(rec, ctx, dims)
    }

    /// `[M, B T, H dh]` -> `[M B H, dh, T]`: each head's transpose.
    fn heads_transposed<B: Backend>(
        &self,
        rec: &mut Recorder<B>,
        x: Var,
        seqs: usize,
    ) -> Result<Var> {
        let (t, inner) = (self.positions, self.heads * self.head_dim);
        let x = reshape(rec, x, vec![seqs, t, inner])?;
        let x = transpose(rec, x, (seqs, t, inner))?;
        reshape(rec, x, vec![seqs * self.heads, self.head_dim, t])
    }
}
