//! The `transformer` preset: a GPT-style model on token ids as a layer
//! list. `embedding` (vocab -> width), `position_embedding`, then `depth`
//! blocks of two residuals, attention (`heads`, causal unless `causal =
//! false`) and an MLP over positions (1x1 convolutions width -> mlp_width
//! -> width, the activation between), normalized as `norm` and
//! `norm_position` say:
//! - `pre` (GPT-2): `x + f(norm(x))` for each sub-block, and a final norm;
//! - `post` (Vaswani et al. 2017): `norm(x + f(x))`;
//! - `norm = "none"`: neither (Nanda et al.'s grokking model).
//!
//! The readout is a 1x1 convolution at every position when the data has a
//! label per position (`sort`, `tokens`), else `pick_position` at the last
//! position and a dense layer (`modular`). With `tied = true` the readout
//! is instead an `unembedding` through the embedding's own weight, at every
//! position or at the last, and the data's classes must be the vocabulary.

use crate::error::{Error, Result};
use crate::nn::layer_spec::LayerSpec;
use crate::nn::presets::{norm, PresetKeys};

pub fn layers(k: &PresetKeys) -> Result<Vec<LayerSpec>> {
    let t = &k.transformer;
    let vocab = t.vocab.ok_or_else(|| {
        Error::config(
            "model.vocab",
            "the transformer preset needs the number of tokens its embedding knows",
        )
    })?;
    if k.norm == "batch" {
        return Err(Error::config(
            "model.norm",
            "batch normalization mixes the examples of a batch; a transformer takes \"layer\", \"rms\" or \"none\"",
        ));
    }
    if t.heads == 0 || k.width % t.heads != 0 {
        return Err(Error::config(
            "model.heads",
            format!("{} heads do not split a width of {}", t.heads, k.width),
        ));
    }
    let norm = norm(k)?;
    let mut out = vec![
        LayerSpec::Embedding {
            vocab,
            width: k.width,
        },
        LayerSpec::PositionEmbedding,
    ];
    for _ in 0..k.depth {
        let attention = vec![LayerSpec::Attention {
            heads: t.heads,
            head_dim: None,
            causal: t.causal,
            bias: k.bias,
        }];
        let mlp = vec![
            conv1x1(t.mlp_width.unwrap_or(4 * k.width), k, Some(k.activation)),
            conv1x1(k.width, k, None),
        ];
        for body in [attention, mlp] {
            out.extend(sub_block(body, norm.as_ref(), t.post_norm));
        }
    }
    if let (Some(n), false) = (&norm, t.post_norm) {
        out.push(n.clone());
    }
    if t.tied && k.outputs != vocab {
        return Err(Error::config(
            "model.tied",
            format!(
                "a tied readout gives logits over the {vocab} tokens of the vocabulary, but the data has {} classes",
                k.outputs
            ),
        ));
    }
    if t.tied && !t.per_position {
        out.push(LayerSpec::PickPosition { index: -1 });
    }
    if t.tied {
        out.push(LayerSpec::Unembedding {
            tied: true,
            bias: false,
        });
    } else if t.per_position {
        out.push(conv1x1(k.outputs, k, None));
    } else {
        out.push(LayerSpec::PickPosition { index: -1 });
        out.push(LayerSpec::Dense {
            width: k.outputs,
            bias: k.bias,
            activation: None,
        });
    }
    Ok(out)
}

/// `x + body(norm(x))` (pre), `norm(x + body(x))` (post), or `x + body(x)`.
fn sub_block(body: Vec<LayerSpec>, norm: Option<&LayerSpec>, post: bool) -> Vec<LayerSpec> {
    let mut layers = Vec::new();
    if let (Some(n), false) = (norm, post) {
        layers.push(n.clone());
    }
    layers.extend(body);
    let mut out = vec![LayerSpec::Residual {
        layers,
        projection: false,
        activation: None,
    }];
    if let (Some(n), true) = (norm, post) {
        out.push(n.clone());
    }
    out
}

/// A linear map at each position.
fn conv1x1(channels: usize, k: &PresetKeys, activation: Option<&str>) -> LayerSpec {
    LayerSpec::Conv1d {
        channels,
        kernel: 1,
        stride: 1,
        padding: 0,
        bias: k.bias,
        activation: activation.map(String::from),
    }
}
