//! The run configuration: a TOML file, optionally edited by `--set key=value`
//! overrides, resolved into typed settings. Unknown keys and wrong types are
//! rejected by the TOML reader (naming the key and line); impossible values
//! are rejected by `validate`, naming the key as `section.key`.

use crate::backend::DType;
use crate::data::DataConfig;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::graph::{Graph, ModelSpec};
use crate::nn::layer_spec::LayerSpec;
use crate::nn::loss::LossKind;
use crate::nn::parametrization::Parametrization;
use crate::nn::presets::{self, PresetKeys, TransformerKeys};
use crate::nn::shape::Shape;
use crate::observe::ObserveConfig;
use crate::optim::{OptimHyper, OptimizerKind, Schedule};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A label for the run, used in plot titles.
    pub name: Option<String>,
    /// Seed of the weight init, data shuffling and synthetic data.
    pub seed: u64,
    /// Storage precision: "f32", "f64" (CPU only) or "f16" (wgpu on adapters
    /// with SHADER_F16; computed in f32).
    pub dtype: String,
    pub model: ModelConfig,
    pub data: DataConfig,
    pub optim: OptimConfig,
    pub train: TrainConfig,
    /// Measurements taken during training (none unless a sub-table is set).
    pub observe: ObserveConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A preset (`nn::presets`): "mlp" (unset: the MLP, or the explicit
    /// `layers`), "cnn", "vgg" or "resnet".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Hidden width; the channels of a convolutional preset's first stage.
    pub width: usize,
    /// Number of dense layers (depth 1 is a linear model); a CNN's
    /// convolutions, a VGG stage's, a ResNet's 6n+2.
    pub depth: usize,
    pub activation: String,
    pub bias: bool,
    /// "sp", "ntk", "mup" or "mf".
    pub parametrization: String,
    /// The width at which muP and mean-field learning rates are unscaled.
    pub base_width: usize,
    /// Convolutional presets: the kernel size.
    #[serde(skip_serializing_if = "is_three")]
    pub kernel: usize,
    /// Convolutional presets: "max", "avg" or "none".
    #[serde(skip_serializing_if = "is_max")]
    pub pool: String,
    /// Convolutional presets: "none", "layer" or "rms" after each convolution.
    #[serde(skip_serializing_if = "is_none_str")]
    pub norm: String,
    /// The transformer preset: attention heads per block.
    #[serde(skip_serializing_if = "is_four")]
    pub heads: usize,
    /// The transformer preset: the MLP's hidden width (default 4 width).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mlp_width: Option<usize>,
    /// The transformer preset: "pre" (normalize before each block, GPT-2)
    /// or "post" (after each residual sum).
    #[serde(skip_serializing_if = "is_pre")]
    pub norm_position: String,
    /// The transformer preset: a causal attention mask.
    #[serde(skip_serializing_if = "is_true")]
    pub causal: bool,
    /// The transformer preset: the tokens its embedding knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab: Option<usize>,
    /// The transformer preset: read out through the embedding's weight
    /// (a tied unembedding) instead of a readout of its own.
    #[serde(skip_serializing_if = "is_false")]
    pub tied: bool,
    /// Any other model, layer by layer (`[[model.layers]]`, `nn::layer_spec`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<toml::Value>,
}

fn is_three(k: &usize) -> bool {
    *k == 3
}

fn is_four(k: &usize) -> bool {
    *k == 4
}

fn is_pre(s: &str) -> bool {
    s == "pre"
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_max(s: &str) -> bool {
    s == "max"
}

fn is_none_str(s: &str) -> bool {
    s == "none"
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: None,
            width: 128,
            depth: 3,
            activation: "tanh".into(),
            bias: true,
            parametrization: "sp".into(),
            base_width: 64,
            kernel: 3,
            pool: "max".into(),
            norm: "none".into(),
            heads: 4,
            mlp_width: None,
            norm_position: "pre".into(),
            causal: true,
            vocab: None,
            tied: false,
            layers: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// "gd", "sgd", "adam", "adamw" or "rmsprop".
    pub name: String,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// RMSProp's decay of the squared-gradient average (PyTorch's `alpha`).
    pub alpha: f64,
    pub eps: f64,
    /// "constant" or "cosine".
    pub schedule: String,
    pub warmup_steps: u64,
    /// Cosine decays to `lr * min_lr_factor`.
    pub min_lr_factor: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            name: "gd".into(),
            lr: 0.1,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            alpha: 0.99,
            eps: 1e-8,
            schedule: "constant".into(),
            warmup_steps: 0,
            min_lr_factor: 0.0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub steps: u64,
    /// Examples per step; 0 means the whole training set (full batch).
    pub batch_size: usize,
    /// "xent", "mse" or "mse_mean".
    pub loss: String,
    /// Log a metrics record every this many steps (and at the last).
    pub log_every: u64,
    /// Evaluate on the full train and test sets every this many steps; 0
    /// means at every log.
    pub eval_every: u64,
    /// Write `model.safetensors` at the end.
    pub checkpoint: bool,
    /// Save `resume.safetensors` (weights, optimizer state, step) every this
    /// many steps, so that an interrupted run restarts from there; 0 = never.
    pub checkpoint_every: u64,
    /// Steps whose weights (before that step's update, as the step's logged
    /// loss) are kept as `checkpoints/step_{s}.safetensors`.
    pub checkpoint_at: Vec<u64>,
    /// Also keep the weights at log-spaced steps, the grid of
    /// `[observe] log_spaced`: every step below this number, then about
    /// this many per decade (0 = none).
    pub checkpoint_per_decade: u32,
}

impl TrainConfig {
    /// Whether the weights at `step` are kept as a checkpoint file.
    pub fn checkpoint_due(&self, step: u64) -> bool {
        self.checkpoint_at.contains(&step)
            || (self.checkpoint_per_decade > 0
                && crate::observe::config::log_step(step, self.checkpoint_per_decade))
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 1000,
            batch_size: 0,
            loss: "xent".into(),
            log_every: 10,
            eval_every: 0,
            checkpoint: true,
            checkpoint_every: 0,
            checkpoint_at: Vec::new(),
            checkpoint_per_decade: 0,
        }
    }
}

/// The typed, checked form of a `Config`.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub dtype: DType,
    pub activation: Activation,
    pub parametrization: Parametrization,
    pub loss: LossKind,
    pub optim: OptimHyper,
    pub schedule: Schedule,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: None,
            seed: 0,
            dtype: "f32".into(),
            model: ModelConfig::default(),
            data: DataConfig::default(),
            optim: OptimConfig::default(),
            train: TrainConfig::default(),
            observe: ObserveConfig::default(),
        }
    }
}

impl Config {
    /// Read a TOML file and apply `key=value` overrides (dotted keys, values
    /// in TOML syntax; a value that is not valid TOML is taken as a string).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text, overrides).map_err(|e| match e {
            Error::Msg(m) => Error::msg(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    pub fn from_toml_str(text: &str, overrides: &[String]) -> Result<Self> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Error::msg(format!("invalid TOML: {e}")))?;
        if overrides.is_empty() {
            // Read the text itself, so that an unknown key or a wrong type is
            // reported at its line in the user's file.
            return toml::from_str(text).map_err(|e| Error::msg(format!("bad config: {e}")));
        }
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        if let Ok(cfg) = Self::from_table(&table) {
            return Ok(cfg);
        }
        // Blame the file (at its own line) or the first override that makes
        // the config unreadable; line numbers of the merged table would point
        // into text the user never saw.
        toml::from_str::<Config>(text).map_err(|e| Error::msg(format!("bad config: {e}")))?;
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Error::msg(format!("invalid TOML: {e}")))?;
        for o in overrides {
            apply_override(&mut table, o)?;
            if let Err(e) = Self::from_table(&table) {
                let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k).trim();
                return Err(Error::config(
                    key,
                    format!("{} (from --set {o})", e.message().trim_end()),
                ));
            }
        }
        Err(Error::msg(
            "internal: the overrides failed together but not one by one",
        ))
    }

    fn from_table(table: &toml::Table) -> std::result::Result<Self, toml::de::Error> {
        let text = toml::to_string(table).map_err(serde::de::Error::custom)?;
        toml::from_str(&text)
    }

    /// The seed of data shuffling, batch order and synthetic data.
    pub fn data_seed(&self) -> u64 {
        self.data.seed.unwrap_or(self.seed)
    }

    /// What runs must share to train as one ensemble: everything but the
    /// per-member scalars (model seed, learning rate, name), with the data
    /// seed made explicit, so that two runs with equal keys see the same
    /// data in the same order.
    pub fn ensemble_key(&self) -> Result<String> {
        let mut c = self.clone();
        c.data.seed = Some(self.data_seed());
        c.seed = 0;
        c.optim.lr = 1.0;
        c.name = None;
        c.to_toml()
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| Error::msg(format!("cannot write the config as TOML: {e}")))
    }

    /// Check every value and parse the named choices.
    pub fn resolve(&self) -> Result<Resolved> {
        let dtype = match self.dtype.as_str() {
            "f32" => DType::F32,
            "f64" => DType::F64,
            "f16" => DType::F16,
            s => {
                return Err(Error::config(
                    "dtype",
                    format!("expected \"f32\", \"f64\" or \"f16\", got {s:?}"),
                ))
            }
        };
        let m = &self.model;
        if m.width == 0 {
            return Err(Error::config("model.width", "must be at least 1, got 0"));
        }
        if m.depth == 0 {
            return Err(Error::config(
                "model.depth",
                "must be at least 1 (the number of dense layers), got 0",
            ));
        }
        if m.base_width == 0 {
            return Err(Error::config(
                "model.base_width",
                "must be at least 1, got 0",
            ));
        }
        let activation = Activation::parse("model.activation", &m.activation)?;
        let parametrization = Parametrization::parse("model.parametrization", &m.parametrization)?;
        let o = &self.optim;
        let kind = OptimizerKind::parse("optim.name", &o.name)?;
        positive_finite("optim.lr", o.lr)?;
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(Error::config(
                "optim.momentum",
                format!("must be in [0, 1), got {}", o.momentum),
            ));
        }
        if o.nesterov && o.momentum == 0.0 {
            return Err(Error::config(
                "optim.nesterov",
                "Nesterov momentum needs optim.momentum > 0",
            ));
        }
        if o.momentum != 0.0 && matches!(kind, OptimizerKind::Adam | OptimizerKind::AdamW) {
            return Err(Error::config(
                "optim.momentum",
                "Adam has no momentum setting; use optim.beta1",
            ));
        }
        if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
            return Err(Error::config(
                "optim.weight_decay",
                format!("must be >= 0, got {}", o.weight_decay),
            ));
        }
        if o.momentum != 0.0 && kind == OptimizerKind::RmsProp {
            return Err(Error::config(
                "optim.momentum",
                "rmsprop has no momentum here (PyTorch's RMSprop momentum buffer is not \
                 implemented); set it to 0",
            ));
        }
        for (key, b) in [
            ("optim.beta1", o.beta1),
            ("optim.beta2", o.beta2),
            ("optim.alpha", o.alpha),
        ] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::config(key, format!("must be in [0, 1), got {b}")));
            }
        }
        positive_finite("optim.eps", o.eps)?;
        if !(0.0..=1.0).contains(&o.min_lr_factor) {
            return Err(Error::config(
                "optim.min_lr_factor",
                format!("must be in [0, 1], got {}", o.min_lr_factor),
            ));
        }
        let t = &self.train;
        if let Some(s) = t.checkpoint_at.iter().find(|&&s| s > t.steps) {
            return Err(Error::config(
                "train.checkpoint_at",
                format!("step {s} is past the last step, train.steps = {}", t.steps),
            ));
        }
        if t.checkpoint_every > 0 && self.observe.any() {
            return Err(Error::config(
                "train.checkpoint_every",
                "cannot be used with [observe]: observers keep state (warm starts, the initial NTK) \
                 that a restart would lose; set it to 0",
            ));
        }
        if t.log_every == 0 {
            return Err(Error::config(
                "train.log_every",
                "must be at least 1, got 0",
            ));
        }
        if o.warmup_steps > t.steps {
            return Err(Error::config(
                "optim.warmup_steps",
                format!(
                    "{} warmup steps exceed train.steps = {}",
                    o.warmup_steps, t.steps
                ),
            ));
        }
        let schedule = Schedule::parse(
            "optim.schedule",
            &o.schedule,
            o.warmup_steps,
            t.steps,
            o.min_lr_factor,
        )?;
        let loss = LossKind::parse("train.loss", &t.loss)?;
        self.data.validate()?;
        let optim = OptimHyper {
            kind,
            momentum: o.momentum,
            nesterov: o.nesterov,
            weight_decay: o.weight_decay,
            beta1: o.beta1,
            beta2: if kind == OptimizerKind::RmsProp {
                o.alpha
            } else {
                o.beta2
            },
            eps: o.eps,
        };
        Ok(Resolved {
            dtype,
            activation,
            parametrization,
            loss,
            optim,
            schedule,
        })
    }
}

impl ModelConfig {
    /// The model this table describes, for inputs of `input` per example and
    /// outputs of shape `outputs` (the data's, `Dataset::out_shape`): a
    /// preset or the explicit layer list, checked layer by layer against
    /// the shapes, and its last layer against `outputs`.
    /// The transformer preset's keys, checked.
    fn transformer_keys(&self, outputs: Shape) -> Result<TransformerKeys> {
        let post_norm = match self.norm_position.as_str() {
            "pre" => false,
            "post" => true,
            other => {
                return Err(Error::config(
                    "model.norm_position",
                    format!("expected \"pre\" or \"post\", got {other:?}"),
                ))
            }
        };
        Ok(TransformerKeys {
            heads: self.heads,
            mlp_width: self.mlp_width,
            post_norm,
            causal: self.causal,
            vocab: self.vocab,
            tied: self.tied,
            per_position: matches!(outputs, Shape::Signal { .. }),
        })
    }

    pub fn spec(
        &self,
        input: Shape,
        outputs: Shape,
        parametrization: Parametrization,
    ) -> Result<ModelSpec> {
        let is_mlp = self.layers.is_empty() && self.arch.as_deref().unwrap_or("mlp") == "mlp";
        // An MLP reads every example as one vector, in the data's order.
        let input = if is_mlp {
            Shape::Flat(input.features())
        } else {
            input
        };
        let layers = if self.layers.is_empty() {
            let keys = PresetKeys {
                arch: self.arch.as_deref().unwrap_or("mlp"),
                width: self.width,
                depth: self.depth,
                kernel: self.kernel,
                pool: &self.pool,
                norm: &self.norm,
                activation: &self.activation,
                bias: self.bias,
                // A preset ends in a dense readout; a signal's channels
                // are its outputs at each position.
                outputs: outputs.channels(),
                one_d: matches!(input, Shape::Signal { .. }),
                transformer: self.transformer_keys(outputs)?,
            };
            presets::layers(&keys)?
        } else {
            if let Some(a) = &self.arch {
                return Err(Error::config(
                    "model.arch",
                    format!("set either model.arch ({a:?}) or [[model.layers]], not both"),
                ));
            }
            self.layers
                .iter()
                .enumerate()
                .map(|(i, v)| LayerSpec::parse(&format!("model.layers[{i}]"), v))
                .collect::<Result<_>>()?
        };
        // An MLP scales with its hidden width; depth 1 has none.
        let width = if is_mlp && self.depth == 1 {
            self.base_width
        } else {
            self.width
        };
        let spec = ModelSpec {
            input,
            layers,
            parametrization,
            width,
            base_width: self.base_width,
        };
        let graph = Graph::build(&spec)?;
        if graph.output != outputs {
            return Err(Error::config(
                "model.layers",
                format!(
                    "the last layer gives {} per example, but the data has {}",
                    layer_output(graph.output),
                    data_output(outputs)
                ),
            ));
        }
        Ok(spec)
    }
}

/// A last layer's output shape, for the misfit message.
fn layer_output(shape: Shape) -> String {
    match shape {
        Shape::Flat(k) => format!("{k} values"),
        Shape::Signal { c, l } => format!("{c} channels at {l} positions ({c}x{l})"),
        Shape::Image { .. } => format!("a {} image", shape.describe()),
    }
}

/// The output the data's targets call for, for the misfit message.
fn data_output(shape: Shape) -> String {
    match shape {
        Shape::Flat(k) => format!("{k} outputs"),
        Shape::Signal { c, l } => {
            format!("{l} positions x {c} classes (an output of {c} channels at {l} positions)")
        }
        Shape::Image { .. } => format!("outputs of shape {}", shape.describe()),
    }
}

fn positive_finite(key: &str, v: f64) -> Result<()> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(Error::config(
            key,
            format!("must be a positive number, got {v}"),
        ))
    }
}

/// Set `a.b.c = value` in `table`, creating tables on the way.
fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| Error::config(assignment, "an override must look like key=value"))?;
    let key = key.trim();
    let raw = raw.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::config(
            key,
            "an override key must be dotted names like model.width",
        ));
    }
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| Error::config(key, format!("`{p}` is a value, not a section")))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}
