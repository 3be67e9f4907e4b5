//! What every layer kind declares, and the built layer: its parameters with
//! their roles (parametrizations are tables over roles and fan-in), how it
//! records itself on the tape, and the sites per-sample observers and the
//! NTK read back from a forward pass. Each kind lives in its own file.

use crate::backend::Backend;
use crate::error::Result;
use crate::nn::activation_layer::ActLayer;
use crate::nn::attention::AttentionLayer;
use crate::nn::batch_norm::BatchNormLayer;
use crate::nn::conv::ConvLayer;
use crate::nn::dense::DenseLayer;
use crate::nn::embedding::EmbeddingLayer;
use crate::nn::flatten::FlattenLayer;
use crate::nn::norm::NormLayer;
use crate::nn::parametrization::{LayerScale, Parametrization};
use crate::nn::pick_position::PickPositionLayer;
use crate::nn::pool::PoolLayer;
use crate::nn::position_embedding::PositionEmbeddingLayer;
use crate::nn::residual::ResidualLayer;
use crate::nn::shape::Shape;
use crate::nn::unembedding::UnembeddingLayer;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// What a parameter is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A dense or convolution weight; the parametrization scales it by its
    /// position (input, hidden, output) and fan-in.
    Weight,
    /// The bias of a weight layer.
    Bias,
    /// A normalization's gain (starts at 1).
    Gain,
    /// A normalization's bias (starts at 0).
    Shift,
}

/// One parameter of one ensemble member.
#[derive(Clone, Debug)]
pub struct ParamDecl {
    /// The last part of its PyTorch name (`weight`, `bias`).
    pub suffix: &'static str,
    pub shape: Vec<usize>,
    /// The same values in the PyTorch module's layout (a convolution's
    /// `[out, in, kh, kw]`).
    pub torch_shape: Vec<usize>,
    pub role: Role,
}

impl ParamDecl {
    pub fn new(suffix: &'static str, shape: Vec<usize>, role: Role) -> Self {
        ParamDecl {
            suffix,
            torch_shape: shape.clone(),
            shape,
            role,
        }
    }
}

/// Where an observer finds a parameter's per-example gradients after a
/// forward and backward pass. `positions` is how many rows per example the
/// operands have (1 for a vector, h*w for a feature map).
#[derive(Clone, Debug)]
pub enum Site {
    /// `z = m a W^T` (rows of `input` are a_ip, of `z`'s cotangent d_ip),
    /// with the layer's bias (if any) added to z; `output` is after the
    /// activation.
    Linear {
        input: Var,
        product: Var,
        output: Var,
        positions: usize,
        multiplier: f64,
        bias_multiplier: f64,
        weight: usize,
        bias: Option<usize>,
        group: usize,
        /// How the weight parameter is stored (an embedding's is `[in,
        /// out]`), for per-example gradients in its layout.
        layout: crate::nn::dense::WeightLayout,
    },
    /// `y * gamma`: example i's gradient is `sum_p d_ip * y_ip`.
    Gain {
        normalized: Var,
        product: Var,
        positions: usize,
        param: usize,
        group: usize,
    },
    /// `+ beta`: example i's gradient is `sum_p d_ip`.
    Shift {
        product: Var,
        positions: usize,
        param: usize,
        group: usize,
    },
}

/// Which statistics normalization by batch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The batch's own (training, and every curvature measurement: the
    /// full-batch loss with batch statistics is a function of the weights).
    Train,
    /// The running statistics (evaluation).
    Eval,
}

/// The tape a forward pass records on, and what it finds on the way.
pub struct Recorder<'t, B: Backend> {
    pub tape: &'t mut Tape<B>,
    /// Examples in the batch.
    pub batch: usize,
    pub mode: Mode,
    /// The model's buffers (BatchNorm's running statistics).
    pub buffers: &'t [Tensor<B>],
    pub sites: Vec<Site>,
    /// (first buffer, the `[M, rows, channels]` input) of each BatchNorm
    /// that used batch statistics, for the running statistics' update.
    pub batch_stats: Vec<(usize, Var)>,
    /// Each attention layer's probabilities `[M B H, T, T]` (rows: query
    /// positions) and its heads, for the attention entropy.
    pub attention: Vec<(Var, usize)>,
}

/// A built layer.
pub enum Layer {
    Dense(DenseLayer),
    Conv(ConvLayer),
    Pool(PoolLayer),
    Flatten(FlattenLayer),
    Act(ActLayer),
    Norm(NormLayer),
    BatchNorm(BatchNormLayer),
    Attention(AttentionLayer),
    Embedding(EmbeddingLayer),
    PositionEmbedding(PositionEmbeddingLayer),
    PickPosition(PickPositionLayer),
    Unembedding(UnembeddingLayer),
    Residual(ResidualLayer),
}

impl Layer {
    /// The weight products this layer holds (a dense or convolution layer
    /// one, attention its four projections), as (fan-in, scale) in
    /// parameter order: each takes a place in the parametrization's walk.
    pub fn weight_parts_mut(&mut self) -> Vec<(usize, &mut LayerScale)> {
        match self {
            Layer::Dense(l) => vec![(l.fan_in, &mut l.scale)],
            Layer::Conv(l) => vec![(l.fan_in, &mut l.scale)],
            // One weight row per token: fan-in 1 (see `embedding`).
            Layer::Embedding(l) => vec![(1, &mut l.scale)],
            Layer::Unembedding(l) => vec![(l.width, &mut l.scale)],
            Layer::Attention(l) => l
                .proj
                .iter_mut()
                .map(|p| (p.fan_in, &mut p.scale))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// What a parametrization changes beyond the table's scales, once they
    /// are set: attention's score factor and muP query init, the
    /// embedding's PyTorch init under SP.
    pub fn parametrize(&mut self, p: Parametrization) {
        match self {
            Layer::Attention(l) => l.parametrize(p),
            Layer::Embedding(l) => l.parametrize(p),
            _ => {}
        }
    }

    /// Their scales.
    pub fn weight_parts(&self) -> Vec<&LayerScale> {
        match self {
            Layer::Dense(l) => vec![&l.scale],
            Layer::Conv(l) => vec![&l.scale],
            Layer::Embedding(l) => vec![&l.scale],
            Layer::Unembedding(l) => vec![&l.scale],
            Layer::Attention(l) => l.proj.iter().map(|p| &p.scale).collect(),
            _ => Vec::new(),
        }
    }
}

/// A layer in place: its config key (`model.layers[3]`), its PyTorch module
/// path (`layers.3`), its shapes, and where its parameters start in the
/// model's list and which parameter group (per-layer statistics) they are.
pub struct Node {
    pub layer: Layer,
    pub key: String,
    pub path: String,
    pub input: Shape,
    pub output: Shape,
    pub first_param: usize,
    pub group: usize,
    /// Where its buffers start in the model's list.
    pub first_buffer: usize,
}

impl Node {
    /// This layer's own parameters (a residual block's are in its nodes).
    pub fn params(&self) -> Vec<ParamDecl> {
        match &self.layer {
            Layer::Dense(l) => l.params(),
            Layer::Conv(l) => l.params(),
            Layer::Norm(l) => l.params(),
            Layer::BatchNorm(l) => l.params(),
            Layer::Attention(l) => l.params(),
            Layer::Embedding(l) => l.params(),
            Layer::PositionEmbedding(l) => l.params(),
            Layer::Unembedding(l) => l.params(),
            Layer::Pool(_)
            | Layer::Flatten(_)
            | Layer::Act(_)
            | Layer::PickPosition(_)
            | Layer::Residual(_) => Vec::new(),
        }
    }

    /// Record the layer on `rec`'s tape; `params` are every parameter of
    /// the model, in order.
    pub fn record<B: Backend>(&self, rec: &mut Recorder<B>, x: Var, params: &[Var]) -> Result<Var> {
        let own = &params[self.first_param..self.first_param + self.params().len()];
        let at = (self.first_param, self.group);
        match &self.layer {
            Layer::Dense(l) => l.record(rec, x, own, at),
            Layer::Conv(l) => l.record(rec, x, own, at, self.input),
            Layer::Pool(l) => l.record(rec, x, self.input),
            Layer::Flatten(l) => l.record(rec, x, self.input),
            Layer::Act(l) => l.record(rec, x),
            Layer::Norm(l) => l.record(rec, x, own, at, self.input),
            Layer::BatchNorm(l) => {
                l.record(rec, x, own, (at.0, at.1, self.first_buffer), self.input)
            }
            Layer::Attention(l) => l.record(rec, x, own, at, self.input),
            Layer::Embedding(l) => l.record(rec, x, own, at),
            Layer::PositionEmbedding(l) => l.record(rec, x, own, at),
            Layer::PickPosition(l) => l.record(rec, x),
            Layer::Unembedding(l) => l.record(rec, x, (own, params), at, self.input),
            Layer::Residual(l) => l.record(rec, x, params),
        }
    }

    /// This layer's buffers: (name suffix, values per member, initial value).
    pub fn buffers(&self) -> Vec<(&'static str, usize, f64)> {
        match &self.layer {
            Layer::BatchNorm(l) => l.buffers(),
            _ => Vec::new(),
        }
    }

    /// The nodes of this layer and everything inside it, in parameter order.
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a Node>) {
        out.push(self);
        if let Layer::Residual(r) = &self.layer {
            for n in r.body.iter().chain(r.projection.as_deref()) {
                n.walk(out);
            }
        }
    }
}

/// `[M, B, features]` rows as `[M, B * positions, channels]`, for per-channel
/// ops; `M` is kept (1 for data shared by the ensemble).
pub fn per_position<B: Backend>(rec: &mut Recorder<B>, x: Var, shape: Shape) -> Result<Var> {
    let lead = lead_dims(rec.tape.value(x).shape());
    let mut dims = lead;
    dims.extend([rec.batch * shape.positions(), shape.channels()]);
    reshape(rec, x, dims)
}

/// Back to `[M, B, features]`.
pub fn per_example<B: Backend>(rec: &mut Recorder<B>, x: Var, shape: Shape) -> Result<Var> {
    let mut dims = lead_dims(rec.tape.value(x).shape());
    dims.extend([rec.batch, shape.features()]);
    reshape(rec, x, dims)
}

/// The ensemble dimension of a rank-3 activation (none for shared data).
fn lead_dims(shape: &[usize]) -> Vec<usize> {
    if shape.len() >= 3 {
        vec![shape[0]]
    } else {
        Vec::new()
    }
}

/// `[n, r, c]` -> `[n, c, r]` (the input may have any shape holding those
/// values).
pub fn transpose<B: Backend>(
    rec: &mut Recorder<B>,
    x: Var,
    (n, r, c): (usize, usize, usize),
) -> Result<Var> {
    let shape = vec![n, c, r];
    rec.tape
        .apply(Box::new(crate::tape::Transpose { n, r, c, shape }), &[x])
}

pub fn reshape<B: Backend>(rec: &mut Recorder<B>, x: Var, dims: Vec<usize>) -> Result<Var> {
    if rec.tape.value(x).shape() == dims.as_slice() {
        return Ok(x);
    }
    rec.tape
        .apply(Box::new(crate::tape::Reshape { shape: dims }), &[x])
}
