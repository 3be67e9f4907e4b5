//! The multilayer perceptron: any depth and width, optional biases, any
//! activation and parametrization, with a leading ensemble dimension E on
//! every parameter (`W` is `[E, out, in]`, `b` is `[E, out]`). Deep linear
//! networks are the identity-activation case.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::loss::LossKind;
use crate::nn::parametrization::{Init, LayerScale, OptimFamily, Parametrization};
use crate::rng::Rng;
use crate::tape::{BiasAct, Dense, LossHead, Tape, Var};
use crate::tensor::{member_values, Tensor};

#[derive(Clone, Debug)]
pub struct MlpSpec {
    /// `[input, hidden..., output]`; the number of dense layers is
    /// `sizes.len() - 1`.
    pub sizes: Vec<usize>,
    pub activation: Activation,
    pub bias: bool,
    pub parametrization: Parametrization,
    pub base_width: usize,
}

impl MlpSpec {
    /// `depth` dense layers: input -> width -> ... -> width -> output.
    pub fn new(
        input: usize,
        width: usize,
        depth: usize,
        output: usize,
        activation: Activation,
    ) -> Self {
        let mut sizes = vec![input];
        sizes.extend(std::iter::repeat_n(width, depth.saturating_sub(1)));
        sizes.push(output);
        MlpSpec {
            sizes,
            activation,
            bias: true,
            parametrization: Parametrization::Standard,
            base_width: width,
        }
    }

    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    pub fn scales(&self) -> Vec<LayerScale> {
        self.parametrization
            .layer_scales(&self.sizes, self.base_width)
    }

    /// Parameters of one ensemble member.
    pub fn param_count(&self) -> usize {
        self.sizes
            .windows(2)
            .map(|w| w[0] * w[1] + if self.bias { w[1] } else { 0 })
            .sum()
    }
}

pub struct Mlp<B: Backend> {
    pub spec: MlpSpec,
    pub scales: Vec<LayerScale>,
    pub ensemble: usize,
    pub weights: Vec<Tensor<B>>,
    pub biases: Vec<Option<Tensor<B>>>,
}

/// The tape handles of one forward pass.
pub struct ForwardVars {
    pub output: Var,
    pub weights: Vec<Var>,
    pub biases: Vec<Option<Var>>,
    /// The input of each dense layer (a_i in DESIGN.md, 5).
    pub layer_inputs: Vec<Var>,
    /// Each dense layer's product before bias and activation; its cotangent
    /// is the backprop signal d_i.
    pub layer_products: Vec<Var>,
}

/// The result of one pass of a loss over a batch.
pub struct LossPass<B: Backend> {
    /// Per-member mean loss, `[E]`.
    pub loss: Tensor<B>,
    /// The model's outputs, `[E, B, out]`.
    pub output: Tensor<B>,
    /// Gradients of the summed member losses, in `params()` order (empty
    /// when not asked for).
    pub grads: Vec<Tensor<B>>,
}

fn draw(rng: &mut Rng, init: Init, n: usize) -> Vec<f64> {
    match init {
        Init::Uniform { bound } => (0..n).map(|_| rng.uniform_range(-bound, bound)).collect(),
        Init::Normal { std } => (0..n).map(|_| std * rng.normal()).collect(),
        Init::Zeros => vec![0.0; n],
    }
}

impl<B: Backend> Mlp<B> {
    /// Initialize E = `seeds.len()` models, member e from `seeds[e]`. Values
    /// are drawn in f64 on the host, so an f32 and an f64 model of the same
    /// seed start from the same point up to rounding.
    pub fn init(be: &B, spec: MlpSpec, seeds: &[u64]) -> Result<Self> {
        if seeds.is_empty() {
            return Err(Error::msg("an ensemble needs at least one seed"));
        }
        if spec.sizes.len() < 2 || spec.sizes.contains(&0) {
            return Err(Error::shape(format!(
                "MLP layer sizes {:?} must be at least two positive numbers",
                spec.sizes
            )));
        }
        let scales = spec.scales();
        let e = seeds.len();
        let layers = spec.layers();
        let mut w_host: Vec<Vec<f64>> = vec![Vec::new(); layers];
        let mut b_host: Vec<Vec<f64>> = vec![Vec::new(); layers];
        for &seed in seeds {
            let mut rng = Rng::stream(seed, "init");
            for l in 0..layers {
                let (fan_in, fan_out) = (spec.sizes[l], spec.sizes[l + 1]);
                w_host[l].extend(draw(&mut rng, scales[l].weight_init, fan_out * fan_in));
                if spec.bias {
                    b_host[l].extend(draw(&mut rng, scales[l].bias_init, fan_out));
                }
            }
        }
        let mut weights = Vec::with_capacity(layers);
        let mut biases = Vec::with_capacity(layers);
        for l in 0..layers {
            let (fan_in, fan_out) = (spec.sizes[l], spec.sizes[l + 1]);
            weights.push(be.from_f64(&[e, fan_out, fan_in], &w_host[l])?);
            biases.push(if spec.bias {
                Some(be.from_f64(&[e, fan_out], &b_host[l])?)
            } else {
                None
            });
        }
        Ok(Mlp {
            spec,
            scales,
            ensemble: e,
            weights,
            biases,
        })
    }

    /// Record a forward pass of `x` (`[B, in]` shared by the ensemble, or
    /// `[E, B, in]`) on `tape`. Parameters become leaves that require
    /// gradients when `with_grad`.
    pub fn forward(&self, tape: &mut Tape<B>, x: Var, with_grad: bool) -> Result<ForwardVars> {
        let params: Vec<Var> = self
            .params()
            .into_iter()
            .map(|p| tape.leaf(p.clone(), with_grad))
            .collect();
        self.forward_with(tape, x, &params)
    }

    /// The forward pass with parameters already on the tape (in `params()`
    /// order), e.g. perturbed copies or values carrying tangents.
    pub fn forward_with(&self, tape: &mut Tape<B>, x: Var, params: &[Var]) -> Result<ForwardVars> {
        let in_dim = *tape.value(x).shape().last().unwrap_or(&0);
        if in_dim != self.spec.sizes[0] {
            return Err(Error::shape(format!(
                "inputs have {in_dim} features but the model expects {}",
                self.spec.sizes[0]
            )));
        }
        let layers = self.spec.layers();
        let expected = layers * if self.spec.bias { 2 } else { 1 };
        if params.len() != expected {
            return Err(Error::shape(format!(
                "{} parameter tensors given, the model has {expected}",
                params.len()
            )));
        }
        let mut next = params.iter().copied();
        let mut h = x;
        let mut vars = ForwardVars {
            output: x,
            weights: Vec::new(),
            biases: Vec::new(),
            layer_inputs: Vec::new(),
            layer_products: Vec::new(),
        };
        for l in 0..layers {
            let w = next.next().ok_or_else(|| Error::msg("missing weight"))?;
            let b = if self.spec.bias { next.next() } else { None };
            vars.layer_inputs.push(h);
            let z = tape.apply(
                Box::new(Dense {
                    multiplier: self.scales[l].multiplier,
                }),
                &[h, w],
            )?;
            vars.layer_products.push(z);
            let act = if l + 1 == layers {
                Activation::Identity
            } else {
                self.spec.activation
            };
            h = match (b, act) {
                (None, Activation::Identity) => z,
                (None, act) => tape.apply(Box::new(BiasAct::new(act, 1.0)), &[z])?,
                (Some(b), act) => tape.apply(
                    Box::new(BiasAct::new(act, self.scales[l].bias_multiplier)),
                    &[z, b],
                )?,
            };
            vars.weights.push(w);
            vars.biases.push(b);
        }
        vars.output = h;
        Ok(vars)
    }

    /// The `kind` loss of each member on inputs `x` and `target`, with the
    /// parameter gradients when `with_grads`: the forward and backward pass
    /// of one training step.
    pub fn loss_pass(
        &self,
        be: &B,
        x: &Tensor<B>,
        target: &Tensor<B>,
        kind: LossKind,
        with_grads: bool,
    ) -> Result<LossPass<B>> {
        let mut tape = Tape::new(be.clone());
        let xv = tape.leaf(x.clone(), false);
        let vars = self.forward(&mut tape, xv, with_grads)?;
        let loss = tape.apply(
            Box::new(LossHead::new(kind, target.clone())),
            &[vars.output],
        )?;
        let mut grads = Vec::new();
        if with_grads {
            // Each member's loss gets cotangent 1: members train independently.
            let ones = be.from_f64(&[self.ensemble], &vec![1.0; self.ensemble])?;
            let mut g = tape.backward(loss, ones)?;
            for v in Self::param_vars(&vars) {
                grads.push(
                    g.take(v)
                        .ok_or_else(|| Error::msg("internal: a parameter got no gradient"))?,
                );
            }
        }
        Ok(LossPass {
            loss: tape.value(loss).clone(),
            output: tape.value(vars.output).clone(),
            grads,
        })
    }

    /// Outputs `[E, B, out]` for inputs `x`, without gradients.
    pub fn predict(&self, be: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        let mut tape = Tape::new(be.clone());
        let xv = tape.leaf(x.clone(), false);
        let vars = self.forward(&mut tape, xv, false)?;
        Ok(tape.value(vars.output).clone())
    }

    /// Ensemble member `e` as a model of its own (a copy).
    pub fn member(&self, be: &B, e: usize) -> Result<Mlp<B>> {
        let one = |t: &Tensor<B>| -> Result<Tensor<B>> {
            let mut shape = t.shape().to_vec();
            shape[0] = 1;
            be.from_f64(&shape, &member_values(be, t, e)?)
        };
        Ok(Mlp {
            spec: self.spec.clone(),
            scales: self.scales.clone(),
            ensemble: 1,
            weights: self.weights.iter().map(one).collect::<Result<_>>()?,
            biases: self
                .biases
                .iter()
                .map(|b| b.as_ref().map(one).transpose())
                .collect::<Result<_>>()?,
        })
    }

    /// Parameters in checkpoint order: layer 0 weight, layer 0 bias, layer 1...
    pub fn params(&self) -> Vec<&Tensor<B>> {
        let mut out = Vec::new();
        for (w, b) in self.weights.iter().zip(&self.biases) {
            out.push(w);
            if let Some(b) = b {
                out.push(b);
            }
        }
        out
    }

    pub fn params_mut(&mut self) -> Vec<&mut Tensor<B>> {
        let mut out = Vec::new();
        for (w, b) in self.weights.iter_mut().zip(self.biases.iter_mut()) {
            out.push(w);
            if let Some(b) = b {
                out.push(b);
            }
        }
        out
    }

    /// PyTorch `nn.Sequential`-style names, in `params()` order.
    pub fn param_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (l, b) in self.biases.iter().enumerate() {
            out.push(format!("layers.{l}.weight"));
            if b.is_some() {
                out.push(format!("layers.{l}.bias"));
            }
        }
        out
    }

    /// The learning-rate scale of each parameter, in `params()` order.
    pub fn lr_scales(&self, family: OptimFamily) -> Vec<f64> {
        let mut out = Vec::new();
        for (s, b) in self.scales.iter().zip(&self.biases) {
            out.push(s.weight_lr(family));
            if b.is_some() {
                out.push(s.bias_lr(family));
            }
        }
        out
    }

    /// The tape handles of the parameters, in `params()` order.
    pub fn param_vars(vars: &ForwardVars) -> Vec<Var> {
        let mut out = Vec::new();
        for (w, b) in vars.weights.iter().zip(&vars.biases) {
            out.push(*w);
            if let Some(b) = b {
                out.push(*b);
            }
        }
        out
    }
}
