//! Runs the configured observers at their scheduled steps and writes what
//! they measure into the step's metrics record, with each measurement's
//! cost in Hessian-vector products and seconds. Holds what observers carry
//! between steps: the previous top eigenvector (Lanczos warm start), the NTK
//! at the first measurement, initial weights and recent parameters.

use super::config::{ObserveConfig, SpectrumTop};
use super::flow_observer::FlowObserver;
use super::flow_optimizer::FlowOptimizer;
use super::ntk::{empirical_ntk, Ntk};
use super::per_sample::per_sample_norms;
use super::sites::Method;
use super::stats::{activation_stats, cosine, distance_from, weight_norms};
use super::uploads::Uploads;
use crate::backend::Backend;
use crate::curvature::{flatten, LossOnData};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::linalg::{self, LanczosOptions, PowerOptions};
use crate::nn::loss::LossKind;
use crate::nn::model::Model;
use crate::run::{write_atomic, Record};
use crate::tape::Curvature;
use crate::tensor::Tensor;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

pub struct Observers<B: Backend> {
    cfg: ObserveConfig,
    seed: u64,
    loss: LossKind,
    /// The training set, and what of it is on the device.
    data: Uploads<B>,
    dir: PathBuf,
    warm: Option<Vec<f64>>,
    warm_gn: Option<Vec<f64>>,
    ntk0: Option<Ntk>,
    init_weights: Vec<Tensor<B>>,
    /// Parameters at recent steps, newest last, for update alignment.
    recent: Vec<(u64, Vec<f64>)>,
    central_flow: Option<FlowObserver<B>>,
}

impl<B: Backend> Observers<B> {
    pub fn new(
        cfg: ObserveConfig,
        model: &Model<B>,
        train: &Dataset,
        loss: LossKind,
        seed: u64,
        dir: PathBuf,
        flow: Option<FlowOptimizer>,
    ) -> Result<Self> {
        cfg.validate(model.param_count(), train.n)?;
        check_examples_separate(&cfg, model, train.n)?;
        let central_flow = match (&cfg.central_flow, flow) {
            (Some(c), Some(opt)) => Some(FlowObserver::new(c.clone(), opt)),
            (Some(_), None) => {
                return Err(Error::config(
                    "observe.central_flow",
                    "needs the optimizer the flow follows (gd or rmsprop)",
                ))
            }
            (None, _) => None,
        };
        Ok(Observers {
            central_flow,
            cfg,
            seed,
            loss,
            data: Uploads::new(train, loss),
            dir,
            warm: None,
            warm_gn: None,
            ntk0: None,
            init_weights: model.weights().into_iter().cloned().collect(),
            recent: Vec::new(),
        })
    }

    fn due(&self, every: Option<u64>, log_spaced: Option<bool>, step: u64, total: u64) -> bool {
        self.cfg.due(every, log_spaced, step, total)
    }

    /// Whether any observer measures at `step`.
    pub fn any_due(&self, step: u64, total: u64) -> bool {
        let c = &self.cfg;
        let d = |e, l| self.due(e, l, step, total);
        c.sharpness
            .as_ref()
            .is_some_and(|s| d(s.every, s.log_spaced))
            || c.gn_sharpness
                .as_ref()
                .is_some_and(|s| d(s.every, s.log_spaced))
            || c.hessian_trace
                .as_ref()
                .is_some_and(|s| d(s.every, s.log_spaced))
            || c.spectrum
                .as_ref()
                .is_some_and(|s| d(s.every, s.log_spaced))
            || c.per_sample
                .as_ref()
                .is_some_and(|s| d(s.every, s.log_spaced))
            || c.ntk.as_ref().is_some_and(|s| d(s.every, s.log_spaced))
            || c.coord.as_ref().is_some_and(|s| d(s.every, s.log_spaced))
            || c.weights.as_ref().is_some_and(|s| d(s.every, s.log_spaced))
            || c.central_flow
                .as_ref()
                .is_some_and(|s| d(s.every, s.log_spaced))
    }

    /// Called before the update of `step`: keeps the parameters the update
    /// alignment of the next two steps will need.
    pub fn before_update(&mut self, be: &B, model: &Model<B>, step: u64, total: u64) -> Result<()> {
        let Some(w) = &self.cfg.weights else {
            return Ok(());
        };
        let soon = (0..=2).any(|a| self.due(w.every, w.log_spaced, step + a, total));
        if soon {
            let theta = flatten(be, &model.params().into_iter().cloned().collect::<Vec<_>>())?;
            self.recent.push((step, theta));
            if self.recent.len() > 3 {
                self.recent.remove(0);
            }
        }
        Ok(())
    }

    /// Take every measurement due at `step` (parameters as they are before
    /// that step's update) and add it to `rec`.
    pub fn observe(
        &mut self,
        be: &B,
        model: &Model<B>,
        step: u64,
        total: u64,
        rec: &mut Record,
    ) -> Result<()> {
        let cfg = self.cfg.clone();
        if let Some(s) = &cfg.sharpness {
            if self.due(s.every, s.log_spaced, step, total) {
                self.top_eigen(be, model, s, Curvature::Hessian, "sharpness", rec)?;
            }
        }
        if let Some(s) = &cfg.gn_sharpness {
            if self.due(s.every, s.log_spaced, step, total) {
                self.top_eigen(be, model, s, Curvature::GaussNewton, "gn_sharpness", rec)?;
            }
        }
        if let Some(t) = &cfg.hessian_trace {
            if self.due(t.every, t.log_spaced, step, total) {
                let started = Instant::now();
                let n = t.n.unwrap_or(self.data.train().n);
                let lod = LossOnData::new(be, model, self.loss, self.data.chunks(be, n, t.chunk)?)?;
                let mut op = |v: &[f64]| lod.product(v, Curvature::Hessian);
                let est = linalg::hutchinson_trace(lod.dim(), &mut op, t.probes, self.seed ^ step)?;
                rec.set("hessian_trace", est.estimate);
                rec.set("hessian_trace_std_error", est.std_error);
                rec.set("hessian_trace_hvps", lod.products() as u64);
                rec.set("hessian_trace_seconds", started.elapsed().as_secs_f64());
            }
        }
        if let Some(d) = &cfg.spectrum {
            if self.due(d.every, d.log_spaced, step, total) {
                let started = Instant::now();
                let n = d.n.unwrap_or(self.data.train().n);
                let lod = LossOnData::new(be, model, self.loss, self.data.chunks(be, n, d.chunk)?)?;
                let mut op = |v: &[f64]| lod.product(v, Curvature::Hessian);
                let density = linalg::slq(lod.dim(), &mut op, d.probes, d.steps, self.seed ^ step)?;
                let line = serde_json::json!({"step": step, "nodes": density.nodes, "weights": density.weights});
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("spectrum.jsonl"))
                    .map_err(|e| Error::io(self.dir.join("spectrum.jsonl"), e))?;
                writeln!(f, "{line}").map_err(|e| Error::io(self.dir.join("spectrum.jsonl"), e))?;
                rec.set("spectrum_hvps", lod.products() as u64);
                rec.set("spectrum_seconds", started.elapsed().as_secs_f64());
            }
        }
        if let Some(b) = &cfg.per_sample {
            if self.due(b.every, b.log_spaced, step, total) {
                let started = Instant::now();
                let (x, t) = self.data.first(be, b.n)?;
                let norms = per_sample_norms(be, model, &x, &t, self.loss)?;
                rec.set("per_sample_grad_norm_mean", norms.mean_norm());
                for (l, layer) in norms.per_layer.iter().enumerate() {
                    let mean = layer.iter().map(|v| v.sqrt()).sum::<f64>() / layer.len() as f64;
                    rec.set(format!("per_sample_grad_norm_mean.{l}"), mean);
                }
                // The cost record: how many layers took each route.
                for m in [Method::Ghost, Method::Materialized] {
                    let count = norms.methods.iter().filter(|&&x| x == m).count();
                    rec.set(format!("per_sample_{}_layers", m.name()), count as u64);
                }
                rec.set("grad_noise_var", norms.variance());
                rec.set("grad_noise_scale", norms.noise_scale());
                rec.set("per_sample_seconds", started.elapsed().as_secs_f64());
            }
        }
        if let Some(k) = &cfg.ntk {
            if self.due(k.every, k.log_spaced, step, total) {
                let started = Instant::now();
                let x = self.data.inputs(be, k.n)?;
                let ntk = empirical_ntk(be, model, &x)?;
                let eig = top_of_dense(&ntk.trace, ntk.n, k.k, self.seed)?;
                rec.set("ntk_top", eig[0]);
                if k.k > 1 {
                    for (i, v) in eig.iter().enumerate() {
                        rec.set(format!("ntk_top_k.{i}"), *v);
                    }
                }
                let tr: f64 = (0..ntk.n).map(|i| ntk.trace[i * ntk.n + i]).sum();
                rec.set("ntk_trace", tr);
                match &self.ntk0 {
                    Some(k0) => rec.set("ntk_rel_change", ntk.relative_change(k0)?),
                    None => {
                        rec.set("ntk_rel_change", 0.0);
                        self.ntk0 = Some(ntk);
                    }
                }
                rec.set("ntk_seconds", started.elapsed().as_secs_f64());
            }
        }
        if let Some(b) = &cfg.coord {
            if self.due(b.every, b.log_spaced, step, total) {
                let x = self.data.inputs(be, b.n)?;
                let stats = activation_stats(be, model, &x)?;
                for (l, (pre, post)) in stats.coord_l1.into_iter().enumerate() {
                    rec.set(format!("coord_l1.{l}"), post);
                    rec.set(format!("coord_l1_pre.{l}"), pre);
                }
                for (a, heads) in stats.attention_entropy.into_iter().enumerate() {
                    for (h, e) in heads.into_iter().enumerate() {
                        rec.set(format!("attn_entropy.{a}.{h}"), e);
                    }
                }
            }
        }
        if let Some(c) = &cfg.central_flow {
            if self.due(c.every, c.log_spaced, step, total) {
                if let Some(flow) = self.central_flow.as_mut() {
                    flow.observe(be, model, &mut self.data, self.loss, self.seed, step, rec)?;
                }
            }
        }
        if let Some(w) = &cfg.weights {
            if self.due(w.every, w.log_spaced, step, total) {
                for (l, v) in weight_norms(be, model)?.into_iter().enumerate() {
                    rec.set(format!("weight_norm.{l}"), v);
                }
                for (l, v) in distance_from(be, model, &self.init_weights)?
                    .into_iter()
                    .enumerate()
                {
                    rec.set(format!("dist_from_init.{l}"), v);
                }
                // cos(theta_t - theta_{t-1}, theta_{t-1} - theta_{t-2}).
                let theta = flatten(be, &model.params().into_iter().cloned().collect::<Vec<_>>())?;
                let prev: Vec<&(u64, Vec<f64>)> =
                    self.recent.iter().filter(|(s, _)| *s < step).collect();
                if let [.., (s2, t2), (s1, t1)] = prev.as_slice() {
                    if *s1 + 1 == step && *s2 + 2 == step {
                        let u: Vec<f64> = theta.iter().zip(t1.iter()).map(|(a, b)| a - b).collect();
                        let v: Vec<f64> = t1.iter().zip(t2.iter()).map(|(a, b)| a - b).collect();
                        rec.set("update_cos", cosine(&u, &v));
                    }
                }
            }
        }
        Ok(())
    }

    fn top_eigen(
        &mut self,
        be: &B,
        model: &Model<B>,
        s: &SpectrumTop,
        mode: Curvature,
        name: &str,
        rec: &mut Record,
    ) -> Result<()> {
        let started = Instant::now();
        let n = s.n.unwrap_or(self.data.train().n);
        let lod = LossOnData::new(be, model, self.loss, self.data.chunks(be, n, s.chunk)?)?;
        let mut op = |v: &[f64]| lod.product(v, mode);
        let warm = if mode == Curvature::Hessian {
            &mut self.warm
        } else {
            &mut self.warm_gn
        };
        let start = if s.warm_start { warm.clone() } else { None };
        let (values, residual, error, converged, next_warm) = if s.method == "power" {
            let opts = PowerOptions {
                max_iter: s.max_iter,
                tol: s.tol,
                seed: self.seed,
                start,
            };
            let r = linalg::power_iteration(lod.dim(), &mut op, &opts)?;
            (vec![r.value], r.residual, r.residual, r.converged, r.vector)
        } else {
            let opts = LanczosOptions {
                k: s.k,
                max_iter: s.max_iter,
                tol: s.tol,
                seed: self.seed,
                start,
            };
            let storage = lod.basis_storage(opts.tol);
            let r = linalg::lanczos_in(lod.dim(), &mut op, &opts, storage)?;
            let worst = r.residuals.iter().cloned().fold(0.0, f64::max);
            let error = r.bounds.iter().cloned().fold(0.0, f64::max);
            let next = r.next_start();
            (r.values, worst, error, r.converged, next)
        };
        *warm = Some(next_warm);
        rec.set(name, values[0]);
        if values.len() > 1 {
            let key = if mode == Curvature::Hessian {
                "hessian_top_k"
            } else {
                "gn_top_k"
            };
            for (i, v) in values.iter().enumerate() {
                rec.set(format!("{key}.{i}"), *v);
            }
        }
        rec.set(format!("{name}_residual"), residual);
        rec.set(format!("{name}_error_bound"), error);
        rec.set(format!("{name}_converged"), converged as u64);
        rec.set(format!("{name}_hvps"), lod.products() as u64);
        rec.set(format!("{name}_seconds"), started.elapsed().as_secs_f64());
        Ok(())
    }

    /// The NTK at the first measurement, for callers that save it.
    pub fn initial_ntk(&self) -> Option<&Ntk> {
        self.ntk0.as_ref()
    }

    /// Write the first NTK's trace kernel as JSON beside the metrics.
    pub fn save_initial_ntk(&self) -> Result<()> {
        if let Some(k) = &self.ntk0 {
            let json = serde_json::json!({"n": k.n, "trace": k.trace});
            write_atomic(&self.dir.join("ntk_init.json"), json.to_string().as_bytes())?;
        }
        Ok(())
    }
}

/// The k largest eigenvalues of a dense symmetric n x n matrix: exactly for
/// small n, by Lanczos on its matvec otherwise.
fn top_of_dense(a: &[f64], n: usize, k: usize, seed: u64) -> Result<Vec<f64>> {
    if n <= 300 {
        return Ok(linalg::sym_eigen(a, n)?
            .values
            .into_iter()
            .take(k)
            .collect());
    }
    let mut op = |v: &[f64]| -> Result<Vec<f64>> {
        Ok((0..n)
            .map(|i| {
                a[i * n..(i + 1) * n]
                    .iter()
                    .zip(v)
                    .map(|(x, y)| x * y)
                    .sum()
            })
            .collect())
    };
    let opts = LanczosOptions {
        k,
        max_iter: (4 * k + 40).min(n),
        tol: 1e-8,
        seed,
        start: None,
    };
    Ok(linalg::lanczos(n, &mut op, &opts)?.values)
}

/// For a model with BatchNorm (it mixes the examples of a batch): per-sample
/// norms and the NTK are refused, naming the observer and the layer, and so
/// is a curvature observer whose `chunk` would split its examples (of the
/// `train_n` training examples): each chunk would be measured with its own
/// batch statistics, a different function from the loss over all of them.
pub fn check_examples_separate<B: Backend>(
    cfg: &ObserveConfig,
    model: &Model<B>,
    train_n: usize,
) -> Result<()> {
    let Some(layer) = model.graph.mixing_layer() else {
        return Ok(());
    };
    let curvature = [
        (
            "observe.sharpness",
            cfg.sharpness.as_ref().map(|s| (s.n, s.chunk)),
        ),
        (
            "observe.gn_sharpness",
            cfg.gn_sharpness.as_ref().map(|s| (s.n, s.chunk)),
        ),
        (
            "observe.hessian_trace",
            cfg.hessian_trace.as_ref().map(|t| (t.n, t.chunk)),
        ),
        (
            "observe.spectrum",
            cfg.spectrum.as_ref().map(|d| (d.n, d.chunk)),
        ),
        (
            "observe.central_flow",
            cfg.central_flow.as_ref().map(|c| (None, c.chunk)),
        ),
    ];
    for (key, on) in curvature {
        let Some((n, chunk)) = on else { continue };
        let n = n.unwrap_or(train_n).min(train_n);
        if chunk < n {
            return Err(Error::config(
                &format!("{key}.chunk"),
                format!(
                    "{layer} is BatchNorm: chunks of {chunk} examples would each be measured with                      their own batch statistics, not the loss over all {n}; set chunk to at least {n}                      (or n to at most {chunk})"
                ),
            ));
        }
    }
    for (key, on) in [
        ("observe.per_sample", cfg.per_sample.is_some()),
        ("observe.ntk", cfg.ntk.is_some()),
    ] {
        if on {
            return Err(Error::config(
                key,
                format!(
                    "{layer} is BatchNorm, which mixes the examples of a batch, so per-example gradients \
                     and the NTK are not defined; use layer_norm or rms_norm, or drop this observer"
                ),
            ));
        }
    }
    Ok(())
}
