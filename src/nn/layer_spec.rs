//! The config form of a layer, one `[[model.layers]]` table: `kind` names
//! the layer and the other keys its settings. Parsed one table at a time so
//! an error names `model.layers[i]`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

fn last() -> i64 {
    -1
}

fn eps() -> f64 {
    1e-5
}

fn momentum() -> f64 {
    0.1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `nn.Linear(in, width)`, then the activation if one is named.
    Dense {
        width: usize,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation: Option<String>,
    },
    /// `nn.Conv1d` on `[c, l]` signals.
    Conv1d {
        channels: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation: Option<String>,
    },
    /// `nn.Conv2d` on `[c, h, w]` images (square kernels).
    Conv2d {
        channels: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation: Option<String>,
    },
    /// Max pooling over a window (stride defaults to the kernel, as in
    /// PyTorch); 1-D or 2-D as the input is.
    MaxPool {
        kernel: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
    },
    /// Average pooling (`count_include_pad`, PyTorch's default).
    AvgPool {
        kernel: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
        #[serde(default)]
        padding: usize,
    },
    /// The mean over all positions: `[c, h, w]` -> `[c]`.
    GlobalAvgPool,
    /// `[c, h, w]` -> `[c * h * w]` in PyTorch's order.
    Flatten,
    /// A pointwise activation on its own.
    Activation { activation: String },
    /// `nn.LayerNorm(channels)` at each position (over the features of a
    /// vector).
    LayerNorm {
        #[serde(default = "yes")]
        gain: bool,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default = "eps")]
        eps: f64,
    },
    /// `nn.RMSNorm(channels)` at each position.
    RmsNorm {
        #[serde(default = "yes")]
        gain: bool,
        #[serde(default)]
        bias: bool,
        #[serde(default = "eps")]
        eps: f64,
    },
    /// `nn.BatchNorm1d/2d(c)`: batch statistics in training, running
    /// statistics (PyTorch's momentum) in evaluation.
    BatchNorm {
        #[serde(default = "yes")]
        gain: bool,
        #[serde(default = "yes")]
        bias: bool,
        #[serde(default = "eps")]
        eps: f64,
        #[serde(default = "momentum")]
        momentum: f64,
    },
    /// Multi-head self-attention over the positions of a `[channels,
    /// length]` sequence: `heads`, `head_dim` (default channels / heads),
    /// `causal` (default true), `bias` on the projections (default false).
    Attention {
        heads: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head_dim: Option<usize>,
        #[serde(default = "yes")]
        causal: bool,
        #[serde(default)]
        bias: bool,
    },
    /// `nn.Embedding(vocab, width)`: the data's `[T]` token ids to a
    /// `[width, T]` sequence; only as the first layer.
    Embedding { vocab: usize, width: usize },
    /// A learned vector per position added to a `[width, T]` sequence.
    PositionEmbedding,
    /// The readout to the vocabulary of the first layer's embedding, at
    /// every position of a `[width, T]` sequence (or on a `[width]`
    /// vector): its own `[vocab, width]` weight (`nn.Linear(width, vocab)`,
    /// `bias` optional), or with `tied = true` the embedding's weight
    /// itself (no bias); only in the top-level layer list.
    Unembedding {
        #[serde(default)]
        tied: bool,
        #[serde(default)]
        bias: bool,
    },
    /// The `[channels]` vector at one position of a sequence (`index`,
    /// negative from the end; default -1, the last).
    PickPosition {
        #[serde(default = "last")]
        index: i64,
    },
    /// `x + f(x)` with `f` the `layers`; when `f` changes the shape the skip
    /// path is projected (a 1x1 convolution with `f`'s stride, or a dense
    /// layer), and `projection = true` asks for it always. An activation,
    /// if named, follows the sum (as in ResNets).
    Residual {
        layers: Vec<LayerSpec>,
        #[serde(default)]
        projection: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation: Option<String>,
    },
}

impl LayerSpec {
    /// Parse one `[[model.layers]]` table; `key` (`model.layers[3]`) names
    /// it in errors.
    pub fn parse(key: &str, v: &toml::Value) -> Result<LayerSpec> {
        let text =
            toml::to_string(v).map_err(|e| Error::config(key, format!("not a table: {e}")))?;
        toml::from_str(&text).map_err(|e| Error::config(key, e.message().to_string()))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Conv1d { .. } => "conv1d",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool { .. } => "max_pool",
            LayerSpec::AvgPool { .. } => "avg_pool",
            LayerSpec::GlobalAvgPool => "global_avg_pool",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Activation { .. } => "activation",
            LayerSpec::LayerNorm { .. } => "layer_norm",
            LayerSpec::RmsNorm { .. } => "rms_norm",
            LayerSpec::BatchNorm { .. } => "batch_norm",
            LayerSpec::Attention { .. } => "attention",
            LayerSpec::Embedding { .. } => "embedding",
            LayerSpec::PositionEmbedding => "position_embedding",
            LayerSpec::Unembedding { .. } => "unembedding",
            LayerSpec::PickPosition { .. } => "pick_position",
            LayerSpec::Residual { .. } => "residual",
        }
    }
}
