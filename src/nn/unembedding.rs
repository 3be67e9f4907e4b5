//! The unembedding: the readout from a `[width, T]` sequence (or a
//! `[width]` vector) to logits over the vocabulary of the model's
//! embedding, at every position. Untied it is `nn.Linear(width, vocab)`
//! with its own `[vocab, width]` weight (role: weight, fan-in `width`) and
//! an optional bias. Tied (`tied = true`, GPT-2's `lm_head.weight =
//! wte.weight`) it reads the embedding's `[vocab, width]` weight itself:
//! it declares no parameter, and the one parameter gets its gradient from
//! both uses (the tape sums them; per-sample norms and the NTK sum the two
//! sites' per-example gradients, see `observe::sites`).
//!
//! Both are recorded as the dense product of the rows with the weight in
//! `nn.Linear`'s layout, so every derivative comes from the dense
//! machinery.
//!
//! The parametrization: it is the output layer of the walk. Tied, the
//! weight keeps the embedding's init and learning rate (the input layer's,
//! as in muP's shared readout) and only the forward multiplier is the
//! readout's: `multiplier * sigma_out / sigma_embedding`, which gives the
//! logits at init the untied readout's scale (under muP `1 / sqrt(width
//! m)`, a `1/m` law as Tensor Programs V asks of a tied readout). Under SP
//! the multiplier is 1, what PyTorch's tied model computes.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::dense::{linear_site, WeightLayout};
use crate::nn::layer::{per_example, per_position, ParamDecl, Recorder, Role};
use crate::nn::parametrization::{Init, LayerScale, Parametrization};
use crate::nn::shape::Shape;
use crate::tape::Var;

pub struct UnembeddingLayer {
    pub vocab: usize,
    pub width: usize,
    pub bias: bool,
    /// The embedding's weight (model parameter index, parameter group)
    /// when tied; set once the graph's parameters are placed.
    pub tied: Option<(usize, usize)>,
    /// Whether the spec asked for the tie.
    pub wants_tie: bool,
    pub scale: LayerScale,
}

impl UnembeddingLayer {
    /// `embedding` is the model's first-layer (vocab, width), if it has one.
    pub fn build(
        key: &str,
        tied: bool,
        bias: bool,
        embedding: Option<(usize, usize)>,
        input: Shape,
    ) -> Result<(Self, Shape)> {
        let Some((vocab, emb_width)) = embedding else {
            return Err(Error::config(
                key,
                "an unembedding maps to the vocabulary of the model's embedding, and the first layer is not an embedding",
            ));
        };
        let width = input.channels();
        let Some(out) = logits_shape(vocab, input) else {
            return Err(Error::config(
                key,
                format!(
                    "an unembedding takes a [width, length] sequence or a vector, but its input has shape {}",
                    input.describe()
                ),
            ));
        };
        if tied && width != emb_width {
            return Err(Error::config(
                format!("{key}.tied"),
                format!("a tied unembedding reads the embedding's [{vocab}, {emb_width}] weight, but its input has {width} channels"),
            ));
        }
        if tied && bias {
            return Err(Error::config(
                format!("{key}.bias"),
                "a tied unembedding has no bias (the embedding's weight is its only parameter)",
            ));
        }
        let layer = UnembeddingLayer {
            vocab,
            width,
            bias,
            tied: None,
            wants_tie: tied,
            scale: LayerScale::unit(),
        };
        Ok((layer, out))
    }

    pub fn params(&self) -> Vec<ParamDecl> {
        if self.wants_tie {
            return Vec::new();
        }
        let mut out = vec![ParamDecl::new(
            "weight",
            vec![self.vocab, self.width],
            Role::Weight,
        )];
        if self.bias {
            out.push(ParamDecl::new("bias", vec![self.vocab], Role::Bias));
        }
        out
    }

    /// Tie to the embedding's weight: its parameter index and group, and
    /// its init, from which the forward multiplier follows.
    pub fn tie(&mut self, param: usize, group: usize, embedding_init: Init, p: Parametrization) {
        self.tied = Some((param, group));
        let (own, shared) = (init_std(self.scale.weight_init), init_std(embedding_init));
        if p == Parametrization::Standard {
            self.scale.multiplier = 1.0;
        } else if shared > 0.0 {
            self.scale.multiplier *= own / shared;
        }
    }

    /// `own` are its own parameters, `all` every parameter of the model
    /// (the tied weight's place); `at` is its own (first parameter, group).
    pub fn record<B: Backend>(
        &self,
        rec: &mut Recorder<B>,
        x: Var,
        (own, all): (&[Var], &[Var]),
        at: (usize, usize),
        input: Shape,
    ) -> Result<Var> {
        let ((first, group), weights) = match self.tied {
            Some((param, group)) => ((param, group), std::slice::from_ref(&all[param])),
            None if self.wants_tie => {
                return Err(Error::msg("internal: a tied unembedding was never tied"))
            }
            None => (at, own),
        };
        let rows = per_position(rec, x, input)?;
        let site = (first, group, input.positions());
        let z = linear_site(
            rec,
            rows,
            weights,
            &self.scale,
            Activation::Identity,
            site,
            WeightLayout::OutIn,
        )?;
        let out = logits_shape(self.vocab, input)
            .ok_or_else(|| Error::msg("internal: an unembedding on an image"))?;
        per_example(rec, z, out)
    }
}

/// `vocab` logits at each position of a sequence, or for a vector; none
/// for an image.
fn logits_shape(vocab: usize, input: Shape) -> Option<Shape> {
    match input {
        Shape::Flat(_) => Some(Shape::Flat(vocab)),
        Shape::Signal { l, .. } => Some(Shape::Signal { c: vocab, l }),
        Shape::Image { .. } => None,
    }
}

/// The standard deviation of an init distribution.
fn init_std(init: Init) -> f64 {
    match init {
        Init::Uniform { bound } => bound / 3f64.sqrt(),
        Init::Normal { std } => std,
        Init::Zeros | Init::Constant { .. } => 0.0,
    }
}
