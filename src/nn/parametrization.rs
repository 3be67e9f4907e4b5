//! Parametrizations as per-layer (init distribution, forward
//! multiplier, learning-rate scale), the "abc" description of Yang & Hu
//! (2021). Layer l computes `z = multiplier * h W^T + bias_multiplier * b`.
//!
//! With fan-in `n_in`, hidden width `n`, and `m = n / base_width` (the width
//! ratio to a base model, as in muTransfer), the four are:
//!
//! | | init W | multiplier | SGD lr scale | Adam lr scale |
//! |---|---|---|---|---|
//! | `sp` (PyTorch `nn.Linear`) | U(±1/sqrt(n_in)) | 1 | 1 | 1 |
//! | `ntk` (Jacot et al. 2018) | N(0, 1) | 1/sqrt(n_in) | 1 | 1 |
//! | `mup` input layer | N(0, 1/n_in) | 1 | m | 1 |
//! | `mup` hidden layers | N(0, 1/n_in) | 1 | 1 | 1/m |
//! | `mup` output layer | N(0, 1/(n_in m)) | 1 | 1/m | 1/m |
//! | `mf` input layer | N(0, 1) | 1/sqrt(n_in) | m | sqrt(m) |
//! | `mf` hidden layers | N(0, 1) | 1/sqrt(n_in) | m | 1/sqrt(m) |
//! | `mf` output layer | N(0, 1) | 1/n_in | m | 1/sqrt(m) |
//!
//! `mup` is Table 3 of Tensor Programs V (Yang et al. 2021) written relative
//! to the base width, so that at `width == base_width` it is a Gaussian
//! version of `sp`. `mf` (mean field: Mei et al. 2018, Chizat & Bach 2018 for
//! two layers) is the same limit reached through the abc symmetry
//! (a, b, c) -> (a + 1/2, b - 1/2, c - 1) for SGD and c - 1/2 for Adam: output
//! multiplier 1/n and SGD learning rate growing with n.
//!
//! Biases: `sp` draws them as PyTorch does (U(±1/sqrt(n_in))), `ntk` from
//! N(0, 1) with multiplier 1 (Jacot's beta = 1); `mup` and `mf` start them at
//! zero and give them the input layer's learning-rate scale.

use crate::error::{Error, Result};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Parametrization {
    Standard,
    Ntk,
    Mup,
    MeanField,
}

#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Init {
    Uniform {
        bound: f64,
    },
    Normal {
        std: f64,
    },
    Zeros,
    /// Every entry the same value (a normalization's gain starts at 1).
    Constant {
        value: f64,
    },
}

/// Where a weight layer sits, which is what the parametrizations' tables
/// distinguish.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// The first weight layer (of several).
    Input,
    Hidden,
    /// The last weight layer: the readout.
    Output,
    /// The only weight layer (a linear model).
    Only,
}

impl Position {
    /// Layer `l` of `layers` weight layers.
    pub fn of(l: usize, layers: usize) -> Position {
        match (l == 0, l + 1 == layers) {
            (true, true) => Position::Only,
            (true, false) => Position::Input,
            (false, true) => Position::Output,
            (false, false) => Position::Hidden,
        }
    }
}

/// Which optimizer family the learning-rate scales are for: muP and
/// mean-field scale differently under SGD and under Adam.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OptimFamily {
    Sgd,
    Adam,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LayerScale {
    pub weight_init: Init,
    pub bias_init: Init,
    pub multiplier: f64,
    pub bias_multiplier: f64,
    pub weight_lr_sgd: f64,
    pub weight_lr_adam: f64,
    pub bias_lr_sgd: f64,
    pub bias_lr_adam: f64,
}

impl LayerScale {
    /// Multipliers and learning-rate scales of 1, zero init: the start
    /// every parametrization edits.
    pub fn unit() -> Self {
        LayerScale {
            weight_init: Init::Zeros,
            bias_init: Init::Zeros,
            multiplier: 1.0,
            bias_multiplier: 1.0,
            weight_lr_sgd: 1.0,
            weight_lr_adam: 1.0,
            bias_lr_sgd: 1.0,
            bias_lr_adam: 1.0,
        }
    }

    pub fn weight_lr(&self, f: OptimFamily) -> f64 {
        match f {
            OptimFamily::Sgd => self.weight_lr_sgd,
            OptimFamily::Adam => self.weight_lr_adam,
        }
    }
    pub fn bias_lr(&self, f: OptimFamily) -> f64 {
        match f {
            OptimFamily::Sgd => self.bias_lr_sgd,
            OptimFamily::Adam => self.bias_lr_adam,
        }
    }
}

impl Parametrization {
    pub const NAMES: [&'static str; 4] = ["sp", "ntk", "mup", "mf"];

    pub fn name(self) -> &'static str {
        match self {
            Parametrization::Standard => "sp",
            Parametrization::Ntk => "ntk",
            Parametrization::Mup => "mup",
            Parametrization::MeanField => "mf",
        }
    }

    pub fn parse(key: &str, s: &str) -> Result<Self> {
        match s {
            "sp" | "standard" => Ok(Parametrization::Standard),
            "ntk" => Ok(Parametrization::Ntk),
            "mup" => Ok(Parametrization::Mup),
            "mf" | "mean_field" => Ok(Parametrization::MeanField),
            _ => Err(Error::config(
                key,
                format!(
                    "unknown parametrization {s:?}; expected one of {}",
                    Self::NAMES.join(", ")
                ),
            )),
        }
    }

    /// Scales for each layer of an MLP with layer sizes `sizes`
    /// (`[input, hidden..., output]`).
    pub fn layer_scales(self, sizes: &[usize], base_width: usize) -> Vec<LayerScale> {
        let layers = sizes.len() - 1;
        // A single layer has no width to scale with.
        let width = if layers > 1 { sizes[1] } else { base_width };
        let m = width as f64 / base_width as f64;
        (0..layers)
            .map(|l| self.scale(Position::of(l, layers), sizes[l], m))
            .collect()
    }

    /// The scales of a weight layer by its position and fan-in (a
    /// convolution's is `c_in * k * k`), with `m` the width ratio to the
    /// base model.
    pub fn scale(self, pos: Position, fan_in: usize, m: f64) -> LayerScale {
        let n_in = fan_in as f64;
        let first = matches!(pos, Position::Input | Position::Only);
        let last = matches!(pos, Position::Output | Position::Only);
        match self {
            Parametrization::Standard => {
                let bound = 1.0 / n_in.sqrt();
                LayerScale {
                    weight_init: Init::Uniform { bound },
                    bias_init: Init::Uniform { bound },
                    ..LayerScale::unit()
                }
            }
            Parametrization::Ntk => LayerScale {
                weight_init: Init::Normal { std: 1.0 },
                bias_init: Init::Normal { std: 1.0 },
                multiplier: 1.0 / n_in.sqrt(),
                ..LayerScale::unit()
            },
            Parametrization::Mup => {
                let (var, sgd, adam) = if last && !first {
                    (1.0 / (n_in * m), 1.0 / m, 1.0 / m)
                } else if first && !last {
                    (1.0 / n_in, m, 1.0)
                } else if first && last {
                    (1.0 / n_in, 1.0, 1.0)
                } else {
                    (1.0 / n_in, 1.0, 1.0 / m)
                };
                let (bias_lr_sgd, bias_lr_adam) = self.vector_lr(m);
                LayerScale {
                    weight_init: Init::Normal { std: var.sqrt() },
                    bias_init: Init::Zeros,
                    weight_lr_sgd: sgd,
                    weight_lr_adam: adam,
                    bias_lr_sgd,
                    bias_lr_adam,
                    ..LayerScale::unit()
                }
            }
            Parametrization::MeanField => {
                let multiplier = if last && !first {
                    1.0 / n_in
                } else {
                    1.0 / n_in.sqrt()
                };
                let adam = if first { m.sqrt() } else { 1.0 / m.sqrt() };
                let (bias_lr_sgd, bias_lr_adam) = self.vector_lr(m);
                LayerScale {
                    weight_init: Init::Normal { std: 1.0 },
                    bias_init: Init::Zeros,
                    multiplier,
                    weight_lr_sgd: m,
                    weight_lr_adam: adam,
                    bias_lr_sgd,
                    bias_lr_adam,
                    ..LayerScale::unit()
                }
            }
        }
    }

    /// The (SGD, Adam) learning-rate scales of vector-like parameters:
    /// biases and normalization gains and shifts (Tensor Programs V, Table
    /// 3: they behave like input weights).
    pub fn vector_lr(self, m: f64) -> (f64, f64) {
        match self {
            Parametrization::Standard | Parametrization::Ntk => (1.0, 1.0),
            Parametrization::Mup => (m, 1.0),
            Parametrization::MeanField => (m, m.sqrt()),
        }
    }
}
