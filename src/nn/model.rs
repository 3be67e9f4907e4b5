//! A model: a graph of layers (`graph.rs`) with its parameters, an ensemble
//! dimension E first on each (`[E, ...]`: E same-shape models computed in
//! one pass). It records its forward pass on a tape, computes losses and
//! gradients, and reports the sites per-sample observers read.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::flatten::to_channels_last;
use crate::nn::graph::{Graph, ModelSpec, ParamInfo};
use crate::nn::layer::{reshape, Layer, Mode, Recorder, Role, Site};
use crate::nn::loss::LossKind;
use crate::nn::parametrization::{Init, LayerScale, OptimFamily};
use crate::rng::Rng;
use crate::tape::{LossHead, Tape, Var};
use crate::tensor::{join_members, member_values, split_members, Tensor};

pub struct Model<B: Backend> {
    pub spec: ModelSpec,
    pub graph: Graph,
    pub ensemble: usize,
    params: Vec<Tensor<B>>,
    /// BatchNorm's running statistics, `[E, channels]` each.
    buffers: Vec<Tensor<B>>,
}

/// The tape handles of one forward pass.
pub struct Forward {
    pub output: Var,
    /// The parameters, in `params()` order.
    pub params: Vec<Var>,
    /// Where each layer's per-example gradients can be read (layer inputs
    /// a_i and backprop signals d_i, DESIGN.md, 5).
    pub sites: Vec<Site>,
    /// (first buffer, input rows) of each BatchNorm that used batch
    /// statistics.
    pub batch_stats: Vec<(usize, Var)>,
    /// Each attention layer's probabilities `[M B H, T, T]` and its heads.
    pub attention: Vec<(Var, usize)>,
}

/// One BatchNorm's statistics over a batch, per member and channel: the
/// mean and the unbiased variance (PyTorch's running-variance convention).
pub struct BatchStats {
    pub first_buffer: usize,
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
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
    /// The batch statistics of each BatchNorm (empty without one), for
    /// `track_batch_stats`.
    pub batch_stats: Vec<BatchStats>,
}

fn draw(rng: &mut Rng, init: Init, n: usize) -> Vec<f64> {
    match init {
        Init::Uniform { bound } => (0..n).map(|_| rng.uniform_range(-bound, bound)).collect(),
        Init::Normal { std } => (0..n).map(|_| std * rng.normal()).collect(),
        Init::Zeros => vec![0.0; n],
        Init::Constant { value } => vec![value; n],
    }
}

impl<B: Backend> Model<B> {
    /// Initialize E = `seeds.len()` models, member e from `seeds[e]`. Values
    /// are drawn in f64 on the host, so an f32 and an f64 model of the same
    /// seed start from the same point up to rounding.
    pub fn init(be: &B, spec: impl Into<ModelSpec>, seeds: &[u64]) -> Result<Self> {
        let spec = spec.into();
        if seeds.is_empty() {
            return Err(Error::msg("an ensemble needs at least one seed"));
        }
        let graph = Graph::build(&spec)?;
        let mut host: Vec<Vec<f64>> = vec![Vec::new(); graph.params.len()];
        for &seed in seeds {
            let mut rng = Rng::stream(seed, "init");
            for (h, p) in host.iter_mut().zip(&graph.params) {
                h.extend(draw(&mut rng, p.init, p.shape.iter().product()));
            }
        }
        let e = seeds.len();
        let params = host
            .iter()
            .zip(&graph.params)
            .map(|(h, p)| {
                let mut shape = vec![e];
                shape.extend(&p.shape);
                be.from_f64(&shape, h)
            })
            .collect::<Result<_>>()?;
        let buffers = graph
            .buffers
            .iter()
            .map(|b| be.from_f64(&[e, b.len], &vec![b.init; e * b.len]))
            .collect::<Result<_>>()?;
        Ok(Model {
            spec,
            graph,
            ensemble: e,
            params,
            buffers,
        })
    }

    /// Outputs per example.
    pub fn outputs(&self) -> usize {
        self.graph.output.features()
    }

    /// Parameters of one ensemble member.
    pub fn param_count(&self) -> usize {
        self.graph
            .params
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }

    pub fn param_info(&self) -> &[ParamInfo] {
        &self.graph.params
    }

    /// Record a forward pass of `x` (`[B, in]` shared by the ensemble, or
    /// `[E, B, in]`) on `tape`. Parameters become leaves that require
    /// gradients when `with_grad`.
    pub fn forward(&self, tape: &mut Tape<B>, x: Var, with_grad: bool) -> Result<Forward> {
        let params: Vec<Var> = self
            .params
            .iter()
            .map(|p| tape.leaf(p.clone(), with_grad))
            .collect();
        self.forward_with(tape, x, &params)
    }

    /// The forward pass with parameters already on the tape (in `params()`
    /// order), e.g. perturbed copies or values carrying tangents.
    pub fn forward_with(&self, tape: &mut Tape<B>, x: Var, params: &[Var]) -> Result<Forward> {
        self.forward_in(tape, x, params, Mode::Train)
    }

    /// The forward pass with BatchNorm using batch statistics (`Train`) or
    /// the running statistics (`Eval`).
    pub fn forward_in(
        &self,
        tape: &mut Tape<B>,
        x: Var,
        params: &[Var],
        mode: Mode,
    ) -> Result<Forward> {
        let shape = tape.value(x).shape().to_vec();
        let features = self.spec.input.features();
        if shape.last() != Some(&features) || shape.len() < 2 {
            return Err(Error::shape(format!(
                "inputs of shape {shape:?} do not fit the model, which takes {} ({features} features) per example",
                self.spec.input.describe()
            )));
        }
        if params.len() != self.params.len() {
            return Err(Error::shape(format!(
                "{} parameter tensors given, the model has {}",
                params.len(),
                self.params.len()
            )));
        }
        let mut rec = Recorder {
            tape,
            batch: shape[shape.len() - 2],
            mode,
            buffers: &self.buffers,
            sites: Vec::new(),
            batch_stats: Vec::new(),
            attention: Vec::new(),
        };
        let x = self.spread_shared_input(&mut rec, x)?;
        let mut h = to_channels_last(&mut rec, x, self.spec.input)?;
        for node in &self.graph.nodes {
            h = node.record(&mut rec, h, params)?;
        }
        Ok(Forward {
            output: h,
            params: params.to_vec(),
            sites: rec.sites,
            batch_stats: rec.batch_stats,
            attention: rec.attention,
        })
    }

    /// Data shared by the ensemble (`[B, in]`) as `[E, B, in]` when the
    /// first layer is not one that reads shared inputs itself (a dense or
    /// convolution product, pooling, flatten): normalizations and residual
    /// sums combine it with per-member values.
    fn spread_shared_input(&self, rec: &mut Recorder<B>, x: Var) -> Result<Var> {
        let shape = rec.tape.value(x).shape().to_vec();
        let reads_shared = matches!(
            self.graph.nodes.first().map(|n| &n.layer),
            Some(
                Layer::Dense(_)
                    | Layer::Conv(_)
                    | Layer::Pool(_)
                    | Layer::Flatten(_)
                    | Layer::Embedding(_)
            )
        );
        if shape.len() != 2 || reads_shared {
            return Ok(x);
        }
        let mut full = vec![self.ensemble];
        full.extend(&shape);
        if self.ensemble == 1 {
            return reshape(rec, x, full);
        }
        let be = rec.tape.backend().clone();
        let values = be.to_f64(rec.tape.value(x))?.repeat(self.ensemble);
        Ok(rec.tape.leaf(be.from_f64(&full, &values)?, false))
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
            for v in &vars.params {
                grads.push(
                    g.take(*v)
                        .ok_or_else(|| Error::msg("internal: a parameter got no gradient"))?,
                );
            }
        }
        let batch_stats = vars
            .batch_stats
            .iter()
            .map(|(b, rows)| batch_stats(be, tape.value(*rows), *b, self.ensemble))
            .collect::<Result<_>>()?;
        Ok(LossPass {
            loss: tape.value(loss).clone(),
            output: tape.value(vars.output).clone(),
            grads,
            batch_stats,
        })
    }

    /// Outputs `[E, B, out]` for inputs `x`, without gradients, with
    /// BatchNorm's running statistics (evaluation).
    pub fn predict(&self, be: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        let mut tape = Tape::new(be.clone());
        let xv = tape.leaf(x.clone(), false);
        let params: Vec<Var> = self
            .params
            .iter()
            .map(|p| tape.leaf(p.clone(), false))
            .collect();
        let vars = self.forward_in(&mut tape, xv, &params, Mode::Eval)?;
        Ok(tape.value(vars.output).clone())
    }

    /// Move BatchNorm's running statistics toward a training step's batch
    /// statistics, as PyTorch does: `running = (1 - momentum) running +
    /// momentum batch`.
    pub fn track_batch_stats(&mut self, be: &B, stats: &[BatchStats]) -> Result<()> {
        for s in stats {
            let momentum = self.graph.momentum_of(s.first_buffer);
            for (i, batch) in [&s.mean, &s.var].into_iter().enumerate() {
                let t = &mut self.buffers[s.first_buffer + i];
                let old = be.to_f64(t)?;
                let new: Vec<f64> = old
                    .iter()
                    .zip(batch)
                    .map(|(o, b)| (1.0 - momentum) * o + momentum * b)
                    .collect();
                *t = be.from_f64(t.shape(), &new)?;
            }
        }
        Ok(())
    }

    /// The buffers (BatchNorm's running statistics), in `graph.buffers`
    /// order.
    pub fn buffers(&self) -> Vec<&Tensor<B>> {
        self.buffers.iter().collect()
    }

    pub fn buffers_mut(&mut self) -> Vec<&mut Tensor<B>> {
        self.buffers.iter_mut().collect()
    }

    /// Ensemble member `e` as a model of its own (a copy).
    pub fn member(&self, be: &B, e: usize) -> Result<Model<B>> {
        let one = |t: &Tensor<B>| -> Result<Tensor<B>> {
            let mut shape = t.shape().to_vec();
            shape[0] = 1;
            be.from_f64(&shape, &member_values(be, t, e)?)
        };
        let params = self.params.iter().map(one).collect::<Result<_>>()?;
        let buffers = self.buffers.iter().map(one).collect::<Result<_>>()?;
        self.one_member(params, buffers)
    }

    /// Every member as a model of its own (copies), each tensor downloaded
    /// once (`member` for all E would download each E times).
    pub fn split_members(&self, be: &B) -> Result<Vec<Model<B>>> {
        let e = self.ensemble;
        let per_member = |ts: &[Tensor<B>]| -> Result<Vec<Vec<Tensor<B>>>> {
            let mut out = vec![Vec::with_capacity(ts.len()); e];
            for t in ts {
                for (m, part) in split_members(be, t, e)?.into_iter().enumerate() {
                    out[m].push(part);
                }
            }
            Ok(out)
        };
        let params = per_member(&self.params)?;
        let buffers = per_member(&self.buffers)?;
        params
            .into_iter()
            .zip(buffers)
            .map(|(p, b)| self.one_member(p, b))
            .collect()
    }

    /// Put back the members `split_members` made (after they trained).
    pub fn join_members(&mut self, be: &B, members: &[Model<B>]) -> Result<()> {
        if members.len() != self.ensemble {
            return Err(Error::msg(format!(
                "internal: joining {} members into an ensemble of {}",
                members.len(),
                self.ensemble
            )));
        }
        for (i, t) in self.params.iter_mut().enumerate() {
            let parts: Vec<&Tensor<B>> = members.iter().map(|m| &m.params[i]).collect();
            *t = join_members(be, &parts)?;
        }
        for (i, t) in self.buffers.iter_mut().enumerate() {
            let parts: Vec<&Tensor<B>> = members.iter().map(|m| &m.buffers[i]).collect();
            *t = join_members(be, &parts)?;
        }
        Ok(())
    }

    /// A one-member model of this model's spec and layer scales.
    fn one_member(&self, params: Vec<Tensor<B>>, buffers: Vec<Tensor<B>>) -> Result<Model<B>> {
        let mut graph = Graph::build(&self.spec)?;
        for (dst, src) in graph
            .weight_scales_mut()
            .into_iter()
            .zip(self.graph.weight_scales())
        {
            *dst = src.clone();
        }
        Ok(Model {
            spec: self.spec.clone(),
            graph,
            ensemble: 1,
            params,
            buffers,
        })
    }

    /// Parameters in checkpoint order.
    pub fn params(&self) -> Vec<&Tensor<B>> {
        self.params.iter().collect()
    }

    /// The scales of the dense and convolution layers, in order.
    pub fn layer_scales(&self) -> Vec<&LayerScale> {
        self.graph.weight_scales()
    }

    pub fn layer_scales_mut(&mut self) -> Vec<&mut LayerScale> {
        self.graph.weight_scales_mut()
    }

    /// The dense and convolution weights, in order.
    pub fn weights(&self) -> Vec<&Tensor<B>> {
        self.params
            .iter()
            .zip(&self.graph.params)
            .filter(|(_, p)| p.role == Role::Weight)
            .map(|(t, _)| t)
            .collect()
    }

    pub fn params_mut(&mut self) -> Vec<&mut Tensor<B>> {
        self.params.iter_mut().collect()
    }

    /// PyTorch module names (`layers.0.weight`), in `params()` order.
    pub fn param_names(&self) -> Vec<String> {
        self.graph.params.iter().map(|p| p.name.clone()).collect()
    }

    /// The learning-rate scale of each parameter, in `params()` order.
    pub fn lr_scales(&self, family: OptimFamily) -> Vec<f64> {
        self.graph
            .params
            .iter()
            .map(|p| match family {
                OptimFamily::Sgd => p.lr_sgd,
                OptimFamily::Adam => p.lr_adam,
            })
            .collect()
    }
}

/// The per-channel mean and unbiased variance of a BatchNorm's input rows
/// (`[M, R, C]`, M members or 1 for shared data), for each of `e` members.
fn batch_stats<B: Backend>(
    be: &B,
    rows: &Tensor<B>,
    first_buffer: usize,
    e: usize,
) -> Result<BatchStats> {
    let c = *rows.shape().last().unwrap_or(&1);
    let r = rows.numel() / c;
    let members = if rows.shape().len() >= 3 {
        rows.shape()[0]
    } else {
        1
    };
    let per = (r / members) as f64;
    let mean = be.to_f64(&be.sum_rows(rows, 1.0 / per)?)?;
    let sq = be.to_f64(&be.sum_rows(&be.mul(rows, rows)?, 1.0 / per)?)?;
    let unbias = if per > 1.0 { per / (per - 1.0) } else { 1.0 };
    let var: Vec<f64> = sq
        .iter()
        .zip(&mean)
        .map(|(s, m)| (s - m * m).max(0.0) * unbias)
        .collect();
    let spread = |v: Vec<f64>| {
        if members == 1 && e > 1 {
            v.repeat(e)
        } else {
            v
        }
    };
    Ok(BatchStats {
        first_buffer,
        mean: spread(mean),
        var: spread(var),
    })
}
