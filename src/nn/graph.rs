//! Building a model's layer graph from its spec: each layer's output shape
//! from its input shape (a misfit is a config error naming
//! `model.layers[i]` and both shapes), parameter names as the equivalent
//! PyTorch module names them, and each parameter's init and learning-rate
//! scale from the parametrization's table over roles, positions and fan-in.

use crate::error::{Error, Result};
use crate::nn::activation::Activation;
use crate::nn::activation_layer::ActLayer;
use crate::nn::attention::{AttentionLayer, AttentionSettings};
use crate::nn::batch_norm::BatchNormLayer;
use crate::nn::conv::{ConvLayer, ConvSettings};
use crate::nn::dense::DenseLayer;
use crate::nn::embedding::EmbeddingLayer;
use crate::nn::flatten::FlattenLayer;
use crate::nn::layer::{Layer, Node, Role};
use crate::nn::layer_spec::LayerSpec;
use crate::nn::mlp::MlpSpec;
use crate::nn::norm::{NormKind, NormLayer};
use crate::nn::parametrization::{Init, LayerScale, Parametrization, Position};
use crate::nn::pick_position::PickPositionLayer;
use crate::nn::pool::{PoolKind, PoolLayer};
use crate::nn::position_embedding::PositionEmbeddingLayer;
use crate::nn::residual::ResidualLayer;
use crate::nn::shape::Shape;
use crate::nn::unembedding::UnembeddingLayer;

/// Everything that defines a model's function and parametrization.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// One example's input, as the data gives it.
    pub input: Shape,
    pub layers: Vec<LayerSpec>,
    pub parametrization: Parametrization,
    /// The width (channels) muP and mean-field scale with, and its base.
    pub width: usize,
    pub base_width: usize,
}

impl ModelSpec {
    /// The MLP this spec is, if it is one: vector input, dense layers only,
    /// one activation on all but the last, the same bias setting on all.
    pub fn as_mlp(&self) -> Option<MlpSpec> {
        let Shape::Flat(d) = self.input else {
            return None;
        };
        let mut sizes = vec![d];
        let (mut act, mut bias) = (None, None);
        for (i, l) in self.layers.iter().enumerate() {
            let LayerSpec::Dense {
                width,
                bias: b,
                activation,
            } = l
            else {
                return None;
            };
            let last = i + 1 == self.layers.len();
            if last != activation.is_none() || *bias.get_or_insert(*b) != *b {
                return None;
            }
            if let Some(a) = activation {
                if act.get_or_insert_with(|| a.clone()) != a {
                    return None;
                }
            }
            sizes.push(*width);
        }
        let activation = match act {
            Some(a) => Activation::parse("activation", &a).ok()?,
            None => Activation::Tanh,
        };
        let mlp = MlpSpec {
            sizes,
            activation,
            bias: bias?,
            parametrization: self.parametrization,
            base_width: self.base_width,
        };
        (ModelSpec::from(mlp.clone()) == *self).then_some(mlp)
    }
}

/// One parameter of the model (per ensemble member).
#[derive(Clone, Debug)]
pub struct ParamInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub torch_shape: Vec<usize>,
    pub role: Role,
    pub init: Init,
    pub lr_sgd: f64,
    pub lr_adam: f64,
    /// The parameter group (a layer with parameters) it belongs to.
    pub group: usize,
}

/// One buffer of the model (per ensemble member): state that is not
/// trained by gradients (BatchNorm's running statistics).
#[derive(Clone, Debug)]
pub struct BufferInfo {
    pub name: String,
    pub len: usize,
    pub init: f64,
}

pub struct Graph {
    pub nodes: Vec<Node>,
    pub output: Shape,
    pub params: Vec<ParamInfo>,
    pub buffers: Vec<BufferInfo>,
    /// The module path of each parameter group (`layers.3`).
    pub groups: Vec<String>,
}

impl Graph {
    pub fn build(spec: &ModelSpec) -> Result<Graph> {
        if spec.layers.is_empty() {
            return Err(Error::config(
                "model.layers",
                "a model needs at least one layer",
            ));
        }
        if spec.base_width == 0 || spec.width == 0 {
            return Err(Error::config(
                "model.base_width",
                "width and base width must be at least 1",
            ));
        }
        check_token_layers(&spec.layers, "model.layers", true)?;
        let embedding = match spec.layers.first() {
            Some(LayerSpec::Embedding { vocab, width }) => Some((*vocab, *width)),
            _ => None,
        };
        let (mut nodes, output) = build_nodes(
            &spec.layers,
            spec.input,
            ("model.layers", "layers"),
            embedding,
        )?;
        let mut g = Graph {
            nodes: Vec::new(),
            output,
            params: Vec::new(),
            buffers: Vec::new(),
            groups: Vec::new(),
        };
        let weights = count_weight_layers(&nodes);
        let mut seen = 0;
        let m = spec.width as f64 / spec.base_width as f64;
        assign(
            &mut nodes,
            &mut g,
            spec.parametrization,
            m,
            weights,
            &mut seen,
        );
        tie_unembeddings(&mut nodes, &g, spec.parametrization);
        g.nodes = nodes;
        Ok(g)
    }

    /// The momentum of the BatchNorm whose buffers start at `first_buffer`.
    pub fn momentum_of(&self, first_buffer: usize) -> f64 {
        self.all_nodes()
            .into_iter()
            .find_map(|n| match &n.layer {
                Layer::BatchNorm(l) if n.first_buffer == first_buffer => Some(l.momentum),
                _ => None,
            })
            .unwrap_or(0.1)
    }

    /// The first BatchNorm layer's config key: a layer that mixes the
    /// examples of a batch, so per-example quantities are undefined.
    pub fn mixing_layer(&self) -> Option<&str> {
        self.all_nodes()
            .into_iter()
            .find(|n| matches!(n.layer, Layer::BatchNorm(_)))
            .map(|n| n.key.as_str())
    }

    /// The scales of the dense and convolution layers, in order.
    pub fn weight_scales(&self) -> Vec<&LayerScale> {
        self.all_nodes()
            .into_iter()
            .flat_map(|n| n.layer.weight_parts())
            .collect()
    }

    /// The same, to edit (a checkpoint's multipliers).
    pub fn weight_scales_mut(&mut self) -> Vec<&mut LayerScale> {
        fn collect<'a>(nodes: &'a mut [Node], out: &mut Vec<&'a mut LayerScale>) {
            for n in nodes {
                match &mut n.layer {
                    Layer::Residual(r) => {
                        collect(&mut r.body, out);
                        if let Some(p) = r.projection.as_deref_mut() {
                            collect(std::slice::from_mut(p), out);
                        }
                    }
                    other => out.extend(other.weight_parts_mut().into_iter().map(|(_, s)| s)),
                }
            }
        }
        let mut out = Vec::new();
        collect(&mut self.nodes, &mut out);
        out
    }

    /// Every node, residual blocks' insides included, in parameter order.
    pub fn all_nodes(&self) -> Vec<&Node> {
        let mut out = Vec::new();
        for n in &self.nodes {
            n.walk(&mut out);
        }
        out
    }
}

fn activation(key: &str, name: &Option<String>) -> Result<Activation> {
    match name {
        None => Ok(Activation::Identity),
        Some(s) => Activation::parse(&format!("{key}.activation"), s),
    }
}

/// Token layers in their places: an embedding (it reads the data's ids)
/// only first, an unembedding (it maps to the model's vocabulary) only in
/// the top-level list.
fn check_token_layers(specs: &[LayerSpec], key: &str, top: bool) -> Result<()> {
    for (i, spec) in specs.iter().enumerate() {
        let key = format!("{key}[{i}]");
        match spec {
            LayerSpec::Embedding { .. } if !(top && i == 0) => {
                return Err(Error::config(
                    &key,
                    "an embedding reads the data's token ids, so it must be the first layer",
                ))
            }
            LayerSpec::Unembedding { .. } if !top => {
                return Err(Error::config(
                    &key,
                    "an unembedding maps to the vocabulary, so it belongs in the model's top-level layer list",
                ))
            }
            LayerSpec::Residual { layers, .. } => {
                check_token_layers(layers, &format!("{key}.layers"), false)?
            }
            _ => {}
        }
    }
    Ok(())
}

/// `embedding` is the first layer's (vocab, width), for unembeddings.
fn build_nodes(
    specs: &[LayerSpec],
    input: Shape,
    (key, path): (&str, &str),
    embedding: Option<(usize, usize)>,
) -> Result<(Vec<Node>, Shape)> {
    let mut nodes = Vec::with_capacity(specs.len());
    let mut shape = input;
    for (i, spec) in specs.iter().enumerate() {
        let at = (format!("{key}[{i}]"), format!("{path}.{i}"));
        let node = build_node(spec, shape, (&at.0, &at.1), embedding)?;
        shape = node.output;
        nodes.push(node);
    }
    Ok((nodes, shape))
}

fn node(layer: Layer, key: &str, path: &str, input: Shape, output: Shape) -> Node {
    Node {
        layer,
        key: key.into(),
        path: path.into(),
        input,
        output,
        first_param: 0,
        group: 0,
        first_buffer: 0,
    }
}

fn build_node(
    spec: &LayerSpec,
    input: Shape,
    (key, path): (&str, &str),
    embedding: Option<(usize, usize)>,
) -> Result<Node> {
    let (layer, output) = match spec {
        LayerSpec::Dense {
            width,
            bias,
            activation: a,
        } => {
            let (l, out) = DenseLayer::build(key, *width, *bias, activation(key, a)?, input)?;
            (Layer::Dense(l), out)
        }
        LayerSpec::Conv1d {
            channels,
            kernel,
            stride,
            padding,
            bias,
            activation: a,
        }
        | LayerSpec::Conv2d {
            channels,
            kernel,
            stride,
            padding,
            bias,
            activation: a,
        } => {
            let dims = if matches!(spec, LayerSpec::Conv1d { .. }) {
                1
            } else {
                2
            };
            let s = ConvSettings {
                dims,
                channels: *channels,
                kernel: *kernel,
                stride: *stride,
                padding: *padding,
                bias: *bias,
                activation: activation(key, a)?,
            };
            let (l, out) = ConvLayer::build(key, s, input)?;
            (Layer::Conv(l), out)
        }
        LayerSpec::MaxPool { kernel, stride } => {
            pool(key, PoolKind::Max, Some(*kernel), *stride, 0, input)?
        }
        LayerSpec::AvgPool {
            kernel,
            stride,
            padding,
        } => pool(key, PoolKind::Avg, Some(*kernel), *stride, *padding, input)?,
        LayerSpec::GlobalAvgPool => pool(key, PoolKind::Avg, None, Some(1), 0, input)?,
        LayerSpec::Flatten => {
            let (l, out) = FlattenLayer::build(input);
            (Layer::Flatten(l), out)
        }
        LayerSpec::Activation { activation: a } => {
            let act = Activation::parse(&format!("{key}.activation"), a)?;
            (Layer::Act(ActLayer { activation: act }), input)
        }
        LayerSpec::LayerNorm { gain, bias, eps } => {
            norm(key, NormKind::Layer, *gain, *bias, *eps, input)?
        }
        LayerSpec::RmsNorm { gain, bias, eps } => {
            norm(key, NormKind::Rms, *gain, *bias, *eps, input)?
        }
        LayerSpec::BatchNorm {
            gain,
            bias,
            eps,
            momentum,
        } => {
            let (l, out) = BatchNormLayer::build(key, *gain, *bias, *eps, *momentum, input)?;
            (Layer::BatchNorm(l), out)
        }
        LayerSpec::Attention {
            heads,
            head_dim,
            causal,
            bias,
        } => {
            let s = AttentionSettings {
                heads: *heads,
                head_dim: *head_dim,
                causal: *causal,
                bias: *bias,
            };
            let (l, out) = AttentionLayer::build(key, s, input)?;
            (Layer::Attention(l), out)
        }
        LayerSpec::Embedding { vocab, width } => {
            let (l, out) = EmbeddingLayer::build(key, *vocab, *width, input)?;
            (Layer::Embedding(l), out)
        }
        LayerSpec::PositionEmbedding => {
            let (l, out) = PositionEmbeddingLayer::build(key, input)?;
            (Layer::PositionEmbedding(l), out)
        }
        LayerSpec::PickPosition { index } => {
            let (l, out) = PickPositionLayer::build(key, *index, input)?;
            (Layer::PickPosition(l), out)
        }
        LayerSpec::Unembedding { tied, bias } => {
            let (l, out) = UnembeddingLayer::build(key, *tied, *bias, embedding, input)?;
            (Layer::Unembedding(l), out)
        }
        LayerSpec::Residual {
            layers,
            projection,
            activation: a,
        } => {
            let act = activation(key, a)?;
            return residual((key, path), layers, *projection, act, input);
        }
    };
    Ok(node(layer, key, path, input, output))
}

fn pool(
    key: &str,
    kind: PoolKind,
    kernel: Option<usize>,
    stride: Option<usize>,
    padding: usize,
    input: Shape,
) -> Result<(Layer, Shape)> {
    let stride = stride.or(kernel).unwrap_or(1);
    let (l, out) = PoolLayer::build(
        key,
        PoolLayer {
            kind,
            kernel,
            stride,
            padding,
        },
        input,
    )?;
    Ok((Layer::Pool(l), out))
}

fn norm(
    key: &str,
    kind: NormKind,
    gain: bool,
    bias: bool,
    eps: f64,
    input: Shape,
) -> Result<(Layer, Shape)> {
    let (l, out) = NormLayer::build(key, kind, gain, bias, eps, input)?;
    Ok((Layer::Norm(l), out))
}

fn residual(
    (key, path): (&str, &str),
    layers: &[LayerSpec],
    projection: bool,
    act: Activation,
    input: Shape,
) -> Result<Node> {
    if layers.is_empty() {
        return Err(Error::config(
            key,
            "a residual block needs at least one layer",
        ));
    }
    let at = (format!("{key}.layers"), format!("{path}.body"));
    let (body, out) = build_nodes(layers, input, (&at.0, &at.1), None)?;
    let projection = if projection || out != input {
        Some(Box::new(skip_projection(key, path, input, out)?))
    } else {
        None
    };
    let layer = Layer::Residual(ResidualLayer {
        body,
        projection,
        activation: act,
    });
    Ok(node(layer, key, path, input, out))
}

/// The skip path's projection from `input` to `out`: a bias-free 1x1
/// convolution with the stride that gives `out`'s grid, or a dense layer.
fn skip_projection(key: &str, path: &str, input: Shape, out: Shape) -> Result<Node> {
    let key = format!("{key}.projection");
    let path = format!("{path}.projection");
    let misfit = || {
        Error::config(
            &key,
            format!(
                "the skip path cannot be projected from {} to {}",
                input.describe(),
                out.describe()
            ),
        )
    };
    let layer = match (input.grid(), out.grid()) {
        (None, None) => Layer::Dense(
            DenseLayer::build(&key, out.channels(), false, Activation::Identity, input)?.0,
        ),
        (Some((_, h, w)), Some((c, oh, ow))) => {
            let fits = |s: usize| (h - 1) / s + 1 == oh && (w - 1) / s + 1 == ow;
            let stride = (1..=w).find(|&s| fits(s)).ok_or_else(misfit)?;
            let dims = if matches!(input, Shape::Signal { .. }) {
                1
            } else {
                2
            };
            let s = ConvSettings {
                dims,
                channels: c,
                kernel: 1,
                stride,
                padding: 0,
                bias: false,
                activation: Activation::Identity,
            };
            let (l, got) = ConvLayer::build(&key, s, input)?;
            if got != out {
                return Err(misfit());
            }
            Layer::Conv(l)
        }
        _ => return Err(misfit()),
    };
    Ok(node(layer, &key, &path, input, out))
}

/// Point each tied unembedding (top level only) at the first layer's
/// embedding weight, now that parameters have their places.
fn tie_unembeddings(nodes: &mut [Node], g: &Graph, p: Parametrization) {
    let Some((first, rest)) = nodes.split_first_mut() else {
        return;
    };
    if !matches!(first.layer, Layer::Embedding(_)) {
        return;
    }
    let weight = &g.params[first.first_param];
    for n in rest {
        if let Layer::Unembedding(u) = &mut n.layer {
            if u.wants_tie {
                u.tie(first.first_param, weight.group, weight.init, p);
            }
        }
    }
}

fn count_weight_layers(nodes: &[Node]) -> usize {
    let mut all = Vec::new();
    for n in nodes {
        n.walk(&mut all);
    }
    all.iter().map(|n| n.layer.weight_parts().len()).sum()
}

/// Give every node its parameters' place, group and scales, in walk order.
fn assign(
    nodes: &mut [Node],
    g: &mut Graph,
    p: Parametrization,
    m: f64,
    weights: usize,
    seen: &mut usize,
) {
    for n in nodes.iter_mut() {
        let decls = n.params();
        if !decls.is_empty() {
            n.first_param = g.params.len();
            n.group = g.groups.len();
            g.groups.push(n.path.clone());
        }
        for (fan_in, s) in n.layer.weight_parts_mut() {
            *s = p.scale(Position::of(*seen, weights), fan_in, m);
            *seen += 1;
        }
        n.layer.parametrize(p);
        let scales: Vec<LayerScale> = n.layer.weight_parts().into_iter().cloned().collect();
        n.first_buffer = g.buffers.len();
        for (suffix, len, init) in n.buffers() {
            g.buffers.push(BufferInfo {
                name: format!("{}.{suffix}", n.path),
                len,
                init,
            });
        }
        let (vec_sgd, vec_adam) = p.vector_lr(m);
        // A weight takes the next part's scale; its bias follows it.
        let mut part: Option<usize> = None;
        for d in decls {
            if d.role == Role::Weight {
                part = Some(part.map_or(0, |i| i + 1));
            }
            let scale = part.and_then(|i| scales.get(i));
            let (init, lr_sgd, lr_adam) = match (d.role, scale) {
                (Role::Weight, Some(s)) => (s.weight_init, s.weight_lr_sgd, s.weight_lr_adam),
                (Role::Bias, Some(s)) => (s.bias_init, s.bias_lr_sgd, s.bias_lr_adam),
                (Role::Gain, _) => (Init::Constant { value: 1.0 }, vec_sgd, vec_adam),
                _ => (Init::Zeros, vec_sgd, vec_adam),
            };
            g.params.push(ParamInfo {
                name: format!("{}.{}", n.path, d.suffix),
                shape: d.shape,
                torch_shape: d.torch_shape,
                role: d.role,
                init,
                lr_sgd,
                lr_adam,
                group: n.group,
            });
        }
        if let Layer::Residual(r) = &mut n.layer {
            assign(&mut r.body, g, p, m, weights, seen);
            if let Some(proj) = r.projection.as_deref_mut() {
                assign(std::slice::from_mut(proj), g, p, m, weights, seen);
            }
        }
    }
}
