//! The token embedding, PyTorch's `nn.Embedding(vocab, width)`: a `[T]`
//! vector of token ids (the data's integers, stored as values) in, a
//! `[channels = width, length = T]` sequence out. Its weight is `[vocab,
//! width]` (role: weight, in `nn.Embedding`'s layout, so checkpoints need
//! no conversion).
//!
//! Recorded as a product, not a gather: the ids become one-hot rows
//! (`row_place` of ones, a constant) and `onehot W` is the dense product
//! with the weight's transpose. So every backend, HVP, Gauss-Newton product,
//! per-sample norm and NTK comes from the dense machinery: the site is a
//! linear one with T positions whose input Gram `a_it . a_is` is 1 exactly
//! when tokens t and s are equal, and it says the weight is stored
//! transposed so full per-example gradients come out in `[vocab, width]`.
//! The product costs `B T vocab width` where a gather would cost
//! `B T width`; for the vocabularies of the built-in tasks (a few hundred)
//! that is small next to attention.
//!
//! In the parametrization's walk it is the input layer with fan-in 1 (each
//! row reads one weight row): N(0, 1) under muP, NTK and mean field, and
//! PyTorch's own N(0, 1) under SP rather than `nn.Linear`'s uniform.

use crate::backend::{Backend, DType};
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::dense::{linear_site, WeightLayout};
use crate::nn::layer::{per_example, transpose, ParamDecl, Recorder, Role};
use crate::nn::parametrization::{Init, LayerScale, Parametrization};
use crate::nn::shape::Shape;
use crate::tape::Var;

/// Every integer up to this is exact in f16 (11 significant bits).
const F16_EXACT: usize = 2048;

pub struct EmbeddingLayer {
    pub vocab: usize,
    pub width: usize,
    /// T, the tokens per example.
    pub positions: usize,
    pub scale: LayerScale,
}

impl EmbeddingLayer {
    pub fn build(key: &str, vocab: usize, width: usize, input: Shape) -> Result<(Self, Shape)> {
        let Shape::Flat(t) = input else {
            return Err(Error::config(
                key,
                format!(
                    "an embedding takes a vector of token ids, but its input has shape {}",
                    input.describe()
                ),
            ));
        };
        if vocab == 0 || width == 0 {
            return Err(Error::config(key, "vocab and width must be at least 1"));
        }
        let layer = EmbeddingLayer {
            vocab,
            width,
            positions: t,
            scale: LayerScale::unit(),
        };
        Ok((layer, Shape::Signal { c: width, l: t }))
    }

    pub fn params(&self) -> Vec<ParamDecl> {
        vec![ParamDecl::new(
            "weight",
            vec![self.vocab, self.width],
            Role::Weight,
        )]
    }

    /// PyTorch's `nn.Embedding` init under SP (the table's uniform is
    /// `nn.Linear`'s).
    pub fn parametrize(&mut self, p: Parametrization) {
        if p == Parametrization::Standard {
            self.scale.weight_init = Init::Normal { std: 1.0 };
        }
    }

    /// `x` holds the ids, `[B, T]` (shared by the ensemble) or `[M, B, T]`.
    pub fn record<B: Backend>(
        &self,
        rec: &mut Recorder<B>,
        x: Var,
        p: &[Var],
        (first, group): (usize, usize),
    ) -> Result<Var> {
        let be = rec.tape.backend().clone();
        if be.dtype() == DType::F16 && self.vocab > F16_EXACT {
            return Err(Error::config(
                "dtype",
                format!(
                    "f16 holds token ids exactly only up to {F16_EXACT}, and the vocabulary has {}; use f32",
                    self.vocab
                ),
            ));
        }
        let ids = rec.tape.value(x).clone();
        let mut rows = ids.shape()[..ids.shape().len() - 2].to_vec();
        rows.extend([rec.batch * self.positions, 1]);
        let ids = ids.reshape(&rows)?;
        let ones = be.from_f64(&rows, &vec![1.0; ids.numel()])?;
        let onehot = be.row_place(&ones, &ids, self.vocab)?;
        let onehot = rec.tape.leaf(onehot, false);
        let w = p[0];
        let members = rec.tape.value(w).shape()[0];
        let (v, d) = (self.vocab, self.width);
        let w_t = transpose(rec, w, (members, v, d))?;
        let at = (first, group, self.positions);
        let layout = WeightLayout::Transposed;
        let h = linear_site(
            rec,
            onehot,
            &[w_t],
            &self.scale,
            Activation::Identity,
            at,
            layout,
        )?;
        let out = Shape::Signal {
            c: d,
            l: self.positions,
        };
        per_example(rec, h, out)
    }
}
