//! The architectures a `[model]` table names with `arch`, as layer lists:
//! - `mlp`: `depth` dense layers of `width` (the MLP lmech always had);
//! - `cnn`: Cohen et al. (2021)'s network: `depth` (default 2) 3x3
//!   convolutions of `width` channels (32), each followed by the
//!   normalization and a 2x2 pooling, then flatten and a dense readout;
//! - `vgg`: VGG-style stages of `depth` convolutions each (channels
//!   width, 2 width, 4 width, ...), pooling between stages, global average
//!   pooling and a dense readout;
//! - `resnet`: He et al. (2016)'s CIFAR ResNet-(6n+2): a 3x3 stem of
//!   `width` channels (16), three stages of n basic blocks (width, 2 width,
//!   4 width; stride 2 into the second and third), global average pooling,
//!   a dense readout; `depth` is 6n+2 (20, 32, 44, ...).
//! - `transformer`: a GPT-style model on token ids: an embedding of
//!   `vocab` tokens into `width` channels, learned positions, `depth`
//!   blocks of `heads`-head attention and an MLP of `mlp_width` (4 width)
//!   over positions, each in a residual, normalized before (`pre`) or
//!   after (`post`) as `norm_position` says, and a readout: at every
//!   position (1x1 convolution) for sequence targets, else at the last
//!   position.
//!
//! Normalization (`norm`: none, batch, layer, rms) follows each convolution.

use crate::error::{Error, Result};
use crate::nn::layer_spec::LayerSpec;

/// The keys researchers vary, as `[model]` gives them.
pub struct PresetKeys<'a> {
    pub arch: &'a str,
    pub width: usize,
    pub depth: usize,
    pub kernel: usize,
    pub pool: &'a str,
    pub norm: &'a str,
    pub activation: &'a str,
    pub bias: bool,
    pub outputs: usize,
    /// Whether the input is a 1-D signal (conv1d) rather than an image.
    pub one_d: bool,
    pub transformer: TransformerKeys,
}

/// The keys only the `transformer` preset reads.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerKeys {
    pub heads: usize,
    /// The MLP's hidden width (default 4 width).
    pub mlp_width: Option<usize>,
    /// Normalize after each residual sum (the original Transformer) rather
    /// than before each block (GPT-2).
    pub post_norm: bool,
    pub causal: bool,
    /// Tokens the embedding knows (required).
    pub vocab: Option<usize>,
    /// The data has a label at every position (a readout per position).
    pub per_position: bool,
    /// The readout is the embedding's weight (a tied unembedding).
    pub tied: bool,
}

impl Default for TransformerKeys {
    fn default() -> Self {
        TransformerKeys {
            heads: 4,
            mlp_width: None,
            post_norm: false,
            causal: true,
            vocab: None,
            per_position: false,
            tied: false,
        }
    }
}

pub const ARCHS: [&str; 5] = ["mlp", "cnn", "vgg", "resnet", "transformer"];

pub fn layers(k: &PresetKeys) -> Result<Vec<LayerSpec>> {
    if k.width == 0 || k.depth == 0 {
        return Err(Error::config(
            "model.depth",
            "width and depth must be at least 1",
        ));
    }
    match k.arch {
        "mlp" => Ok(mlp(k)),
        "cnn" => Ok(cnn(k)?),
        "vgg" => Ok(vgg(k)?),
        "resnet" => resnet(k),
        "transformer" => crate::nn::transformer_preset::layers(k),
        a => Err(Error::config(
            "model.arch",
            format!(
                "unknown architecture {a:?}; expected one of {}",
                ARCHS.join(", ")
            ),
        )),
    }
}

fn act(k: &PresetKeys) -> Option<String> {
    Some(k.activation.to_string())
}

fn mlp(k: &PresetKeys) -> Vec<LayerSpec> {
    let mut out: Vec<LayerSpec> = (1..k.depth)
        .map(|_| LayerSpec::Dense {
            width: k.width,
            bias: k.bias,
            activation: act(k),
        })
        .collect();
    out.push(LayerSpec::Dense {
        width: k.outputs,
        bias: k.bias,
        activation: None,
    });
    out
}

fn conv(
    k: &PresetKeys,
    channels: usize,
    kernel: usize,
    stride: usize,
    activation: Option<String>,
) -> LayerSpec {
    // BatchNorm removes a per-channel constant: a bias before it is dead.
    let (padding, bias) = (kernel / 2, k.bias && k.norm != "batch");
    if k.one_d {
        LayerSpec::Conv1d {
            channels,
            kernel,
            stride,
            padding,
            bias,
            activation,
        }
    } else {
        LayerSpec::Conv2d {
            channels,
            kernel,
            stride,
            padding,
            bias,
            activation,
        }
    }
}

/// The normalization after a convolution, if any.
pub(crate) fn norm(k: &PresetKeys) -> Result<Option<LayerSpec>> {
    match k.norm {
        "none" => Ok(None),
        "layer" => Ok(Some(LayerSpec::LayerNorm {
            gain: true,
            bias: true,
            eps: 1e-5,
        })),
        "rms" => Ok(Some(LayerSpec::RmsNorm {
            gain: true,
            bias: false,
            eps: 1e-5,
        })),
        "batch" => Ok(Some(LayerSpec::BatchNorm {
            gain: true,
            bias: true,
            eps: 1e-5,
            momentum: 0.1,
        })),
        n => Err(Error::config(
            "model.norm",
            format!(
                "unknown normalization {n:?}; expected \"none\", \"batch\", \"layer\" or \"rms\""
            ),
        )),
    }
}

/// A convolution, its normalization and its activation (after the norm).
fn conv_block(
    k: &PresetKeys,
    channels: usize,
    stride: usize,
    out: &mut Vec<LayerSpec>,
) -> Result<()> {
    match norm(k)? {
        None => out.push(conv(k, channels, k.kernel, stride, act(k))),
        Some(n) => {
            out.push(conv(k, channels, k.kernel, stride, None));
            out.push(n);
            out.push(LayerSpec::Activation {
                activation: k.activation.to_string(),
            });
        }
    }
    Ok(())
}

fn pool(k: &PresetKeys) -> Result<Option<LayerSpec>> {
    match k.pool {
        "max" => Ok(Some(LayerSpec::MaxPool {
            kernel: 2,
            stride: None,
        })),
        "avg" => Ok(Some(LayerSpec::AvgPool {
            kernel: 2,
            stride: None,
            padding: 0,
        })),
        "none" => Ok(None),
        p => Err(Error::config(
            "model.pool",
            format!("expected \"max\", \"avg\" or \"none\", got {p:?}"),
        )),
    }
}

fn cnn(k: &PresetKeys) -> Result<Vec<LayerSpec>> {
    let mut out = Vec::new();
    for _ in 0..k.depth {
        conv_block(k, k.width, 1, &mut out)?;
        out.extend(pool(k)?);
    }
    out.push(LayerSpec::Flatten);
    out.push(LayerSpec::Dense {
        width: k.outputs,
        bias: k.bias,
        activation: None,
    });
    Ok(out)
}

/// Stages of `depth` convolutions; `k.kernel` squared windows; three stages.
fn vgg(k: &PresetKeys) -> Result<Vec<LayerSpec>> {
    let mut out = Vec::new();
    for stage in 0..3 {
        for _ in 0..k.depth {
            conv_block(k, k.width << stage, 1, &mut out)?;
        }
        if stage < 2 {
            out.extend(pool(k)?);
        }
    }
    out.push(LayerSpec::GlobalAvgPool);
    out.push(LayerSpec::Dense {
        width: k.outputs,
        bias: k.bias,
        activation: None,
    });
    Ok(out)
}

fn resnet(k: &PresetKeys) -> Result<Vec<LayerSpec>> {
    if k.depth < 8 || (k.depth - 2) % 6 != 0 {
        return Err(Error::config(
            "model.depth",
            format!(
                "a CIFAR ResNet has depth 6n+2 (8, 14, 20, 32, ...), got {}",
                k.depth
            ),
        ));
    }
    let blocks = (k.depth - 2) / 6;
    let mut out = Vec::new();
    conv_block(k, k.width, 1, &mut out)?;
    for stage in 0..3 {
        for b in 0..blocks {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            let channels = k.width << stage;
            let mut body = Vec::new();
            conv_block(k, channels, stride, &mut body)?;
            match norm(k)? {
                None => body.push(conv(k, channels, k.kernel, 1, None)),
                Some(n) => {
                    body.push(conv(k, channels, k.kernel, 1, None));
                    body.push(n);
                }
            }
            out.push(LayerSpec::Residual {
                layers: body,
                projection: false,
                activation: act(k),
            });
        }
    }
    out.push(LayerSpec::GlobalAvgPool);
    out.push(LayerSpec::Dense {
        width: k.outputs,
        bias: k.bias,
        activation: None,
    });
    Ok(out)
}
