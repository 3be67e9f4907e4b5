//! The training runner behind `lmech train`: load data, build the model and
//! optimizer on the chosen backend, loop over steps, log metrics, detect
//! divergence, and leave a complete run directory (config, metrics, summary,
//! checkpoint, plot). The loop knows nothing of what observers measure.

use crate::backend::cpu::Cpu;
use crate::backend::device::Device;
use crate::backend::wgpu::Wgpu;
use crate::backend::Backend;
use crate::config::{Config, Resolved};
use crate::data::{self, Dataset, Targets};
use crate::error::{Error, Result};
use crate::nn::loss::LossKind;
use crate::nn::mlp::{Mlp, MlpSpec};
use crate::observe::Observers;
use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::run::{self, MetricsLog, Progress, Record, Status, Summary};
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where and how to run.
pub struct RunOptions {
    pub out: PathBuf,
    pub device: Device,
    /// Show a progress bar (it still hides itself when stderr is not a
    /// terminal).
    pub progress: bool,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub dir: PathBuf,
    pub status: Status,
    pub steps_done: u64,
    pub final_metrics: BTreeMap<String, f64>,
    /// Every metrics record, as written to metrics.jsonl.
    pub records: Vec<Record>,
}

impl RunReport {
    pub fn diverged(&self) -> bool {
        matches!(self.status, Status::Diverged { .. })
    }
}

/// Train the run described by `cfg`, writing its run directory.
pub fn train(cfg: &Config, opts: &RunOptions) -> Result<RunReport> {
    let res = cfg.resolve()?;
    match opts.device {
        Device::Cpu => train_on(Cpu::new(res.dtype), cfg, &res, opts),
        Device::Cuda(i) => train_on(
            crate::backend::cuda::Cuda::new(i, res.dtype)?,
            cfg,
            &res,
            opts,
        ),
        Device::Wgpu => train_on(Wgpu::new(res.dtype)?, cfg, &res, opts),
    }
}

/// A data set on the device: inputs, loss targets and (where accuracy
/// applies) class labels.
struct DeviceData<B: Backend> {
    n: usize,
    x: Tensor<B>,
    target: Tensor<B>,
    labels: Option<Tensor<B>>,
}

/// Class labels for accuracy: the labels themselves, or the argmax of
/// one-hot targets.
fn class_labels(ds: &Dataset) -> Option<Vec<f64>> {
    match &ds.y {
        Targets::Labels { y, .. } => Some(y.iter().map(|&c| c as f64).collect()),
        Targets::Values { y, k } if *k > 1 => {
            let mut out = Vec::with_capacity(ds.n);
            for row in y.chunks(*k) {
                let ones = row.iter().filter(|&&v| v == 1.0).count();
                let zeros = row.iter().filter(|&&v| v == 0.0).count();
                if ones != 1 || ones + zeros != *k {
                    return None;
                }
                out.push(row.iter().position(|&v| v == 1.0)? as f64);
            }
            Some(out)
        }
        Targets::Values { .. } => None,
    }
}

/// The loss head's targets for `ds`, as (values, shape): class indices for
/// cross-entropy, float values for the squared losses.
pub(crate) fn loss_target(ds: &Dataset, loss: LossKind) -> Result<(Vec<f64>, Vec<usize>)> {
    match (&ds.y, loss) {
        (Targets::Labels { y, .. }, LossKind::CrossEntropy) => {
            Ok((y.iter().map(|&c| c as f64).collect(), vec![ds.n]))
        }
        (Targets::Values { .. }, LossKind::CrossEntropy) => Err(Error::config(
            "train.loss",
            "xent needs integer class labels, but the data has float targets; use mse or mse_mean",
        )),
        (Targets::Labels { .. }, _) => Err(Error::config(
            "train.loss",
            format!(
                "{} needs float targets, but the data has class labels; set data.one_hot = true",
                loss.name()
            ),
        )),
        (Targets::Values { y, k }, _) => Ok((y.clone(), vec![ds.n, *k])),
    }
}

impl<B: Backend> DeviceData<B> {
    fn upload(be: &B, ds: &Dataset, loss: LossKind, rows: Option<&[usize]>) -> Result<Self> {
        let sub;
        let ds = match rows {
            Some(r) => {
                sub = ds.subset(r);
                &sub
            }
            None => ds,
        };
        let (t, tshape) = loss_target(ds, loss)?;
        let labels = match class_labels(ds) {
            Some(l) => Some(be.from_f64(&[ds.n], &l)?),
            None => None,
        };
        Ok(DeviceData {
            n: ds.n,
            x: be.from_f64(&[ds.n, ds.d], &ds.x)?,
            target: be.from_f64(&tshape, &t)?,
            labels,
        })
    }
}

/// Mean loss and accuracy of member 0 over a whole data set, in chunks so
/// memory is bounded by the chunk.
fn evaluate<B: Backend>(
    be: &B,
    model: &Mlp<B>,
    ds: &Dataset,
    loss: LossKind,
) -> Result<(f64, Option<f64>)> {
    const CHUNK: usize = 4096;
    let mut total = 0.0;
    let mut correct = 0.0;
    let mut has_acc = true;
    for start in (0..ds.n).step_by(CHUNK) {
        let rows: Vec<usize> = (start..(start + CHUNK).min(ds.n)).collect();
        let d = DeviceData::upload(be, ds, loss, Some(&rows))?;
        let f = model.predict(be, &d.x)?;
        let (l, _) = be.loss(loss, &f, &d.target)?;
        total += be.to_f64(&l)?[0] * d.n as f64;
        match &d.labels {
            Some(lab) => correct += be.count_correct(&f, lab)?[0],
            None => has_acc = false,
        }
    }
    let n = ds.n.max(1) as f64;
    Ok((total / n, if has_acc { Some(correct / n) } else { None }))
}

/// Which rows each step trains on: all of them, or shuffled mini-batches
/// drawn epoch by epoch.
struct Batcher {
    n: usize,
    batch: usize,
    order: Vec<usize>,
    pos: usize,
    rng: Rng,
}

impl Batcher {
    fn new(n: usize, batch: usize, seed: u64) -> Self {
        Batcher {
            n,
            batch,
            order: Vec::new(),
            pos: 0,
            rng: Rng::stream(seed, "batches"),
        }
    }

    fn full_batch(&self) -> bool {
        self.batch == 0 || self.batch >= self.n
    }

    fn next(&mut self) -> Vec<usize> {
        if self.pos + self.batch > self.order.len() {
            self.order = (0..self.n).collect();
            self.rng.shuffle(&mut self.order);
            self.pos = 0;
        }
        let rows = self.order[self.pos..self.pos + self.batch].to_vec();
        self.pos += self.batch;
        rows
    }
}

fn hyperparams(cfg: &Config) -> serde_json::Map<String, serde_json::Value> {
    let mut h = serde_json::Map::new();
    h.insert("lr".into(), cfg.optim.lr.into());
    h.insert("width".into(), cfg.model.width.into());
    h.insert("depth".into(), cfg.model.depth.into());
    h.insert("activation".into(), cfg.model.activation.clone().into());
    h.insert(
        "parametrization".into(),
        cfg.model.parametrization.clone().into(),
    );
    h.insert("optimizer".into(), cfg.optim.name.clone().into());
    h.insert("seed".into(), cfg.seed.into());
    h.insert("batch_size".into(), cfg.train.batch_size.into());
    h.insert("loss".into(), cfg.train.loss.clone().into());
    h.insert("steps".into(), cfg.train.steps.into());
    h.insert("momentum".into(), cfg.optim.momentum.into());
    h.insert("weight_decay".into(), cfg.optim.weight_decay.into());
    h.insert("dtype".into(), cfg.dtype.clone().into());
    h.insert("data".into(), cfg.data.source.clone().into());
    h
}

fn train_on<B: Backend>(
    be: B,
    cfg: &Config,
    res: &Resolved,
    opts: &RunOptions,
) -> Result<RunReport> {
    let started = Instant::now();
    // Data problems are found before the run directory is touched.
    let split = data::load(&cfg.data, cfg.seed)?;
    let train_ds = &split.train;
    if train_ds.n == 0 {
        return Err(Error::config("data", "the training set is empty"));
    }
    let loss = res.loss;
    let full = DeviceData::upload(&be, train_ds, loss, None)?;
    let mut spec = MlpSpec::new(
        train_ds.d,
        cfg.model.width,
        cfg.model.depth,
        train_ds.out_dim(),
        res.activation,
    );
    spec.bias = cfg.model.bias;
    spec.parametrization = res.parametrization;
    spec.base_width = cfg.model.base_width;
    let mut model = Mlp::init(&be, spec, &[cfg.seed])?;
    let family = res.optim.kind.family();
    let mut opt = Optimizer::new(
        &be,
        res.optim.clone(),
        res.schedule.clone(),
        vec![cfg.optim.lr],
        &model.params(),
        model.lr_scales(family),
    )?;

    cfg.observe.validate(model.spec.param_count(), train_ds.n)?;
    let dir = run::prepare_run_dir(&opts.out)?;
    let config_toml = cfg.to_toml()?;
    run::write_atomic(&dir.join("config.toml"), config_toml.as_bytes())?;
    let mut log = MetricsLog::create(&dir)?;
    let mut observers = if cfg.observe.any() {
        Some(Observers::new(
            cfg.observe.clone(),
            &model,
            train_ds,
            loss,
            cfg.seed,
            dir.clone(),
        )?)
    } else {
        None
    };
    let steps = cfg.train.steps;
    let label = cfg.name.clone().unwrap_or_else(|| "train".into());
    let progress = if opts.progress {
        Some(Progress::new(steps, &label))
    } else {
        None
    };
    let mut batcher = Batcher::new(train_ds.n, cfg.train.batch_size, cfg.seed);
    let full_batch = batcher.full_batch();
    let eval_every = if cfg.train.eval_every == 0 {
        cfg.train.log_every
    } else {
        cfg.train.eval_every
    };
    let mut status = Status::Finished;
    let mut last = Record::new(0);

    for step in 0..=steps {
        let is_final = step == steps;
        let observe_now = observers.as_ref().is_some_and(|o| o.any_due(step, steps));
        let log_now = is_final || step % cfg.train.log_every == 0 || observe_now;
        let eval_now = is_final || step % eval_every == 0;
        let batch = if full_batch {
            None
        } else {
            Some(DeviceData::upload(
                &be,
                train_ds,
                loss,
                Some(&batcher.next()),
            )?)
        };
        let data = batch.as_ref().unwrap_or(&full);

        let pass = model.loss_pass(&be, &data.x, &data.target, loss, !is_final)?;
        let loss_value = be.to_f64(&pass.loss)?[0];

        let mut rec = Record::new(step);
        rec.set("loss", loss_value);
        if !loss_value.is_finite() {
            log.log(&rec)?;
            status = Status::Diverged {
                step,
                reason: format!("training loss became {loss_value} at step {step}"),
            };
            break;
        }
        if log_now {
            if !is_final {
                // The rate of the update this step makes.
                rec.set("lr", opt.current_lr()[0]);
            }
            if eval_now {
                let (tl, ta) = if full_batch {
                    let acc = match &data.labels {
                        Some(l) => Some(be.count_correct(&pass.output, l)?[0] / data.n as f64),
                        None => None,
                    };
                    (loss_value, acc)
                } else {
                    evaluate(&be, &model, train_ds, loss)?
                };
                if !full_batch {
                    rec.set("train_loss", tl);
                }
                if let Some(a) = ta {
                    rec.set("train_acc", a);
                }
                if let Some(test) = &split.test {
                    let (l, a) = evaluate(&be, &model, test, loss)?;
                    rec.set("test_loss", l);
                    if let Some(a) = a {
                        rec.set("test_acc", a);
                    }
                }
            }
        }
        if let Some(o) = observers.as_mut() {
            if observe_now {
                o.observe(&be, &model, step, steps, &mut rec)?;
            }
            if !is_final {
                o.before_update(&be, &model, step, steps)?;
            }
        }
        if !is_final {
            if log_now {
                let sq: f64 = pass
                    .grads
                    .iter()
                    .map(|g| be.sum_sq(g).map(|v| v[0]))
                    .sum::<Result<f64>>()?;
                rec.set("grad_norm", sq.sqrt());
            }
            opt.step(&be, model.params_mut(), &pass.grads)?;
        }
        if log_now {
            rec.set("time_s", started.elapsed().as_secs_f64());
            last = rec.clone();
            log.log(&rec)?;
        }
        if let Some(p) = &progress {
            p.update(step, loss_value);
        }
    }
    let steps_done = opt.steps_done();
    if let Some(p) = &progress {
        p.finish(
            match &status {
                Status::Finished => "finished".to_string(),
                Status::Diverged { step, .. } => format!("diverged at step {step}"),
            }
            .as_str(),
        );
    }

    log.write_csv()?;
    run::plot_loss(&dir, &log)?;
    if cfg.train.checkpoint && matches!(status, Status::Finished) {
        let (tensors, meta) =
            crate::nn::checkpoint::checkpoint_contents(&be, &model, &config_toml)?;
        run::save_checkpoint(&dir.join("model.safetensors"), &tensors, &meta)?;
    }
    let summary = Summary {
        status: status.clone(),
        hyperparams: hyperparams(cfg),
        final_metrics: last.clone(),
        steps_done,
        wall_seconds: started.elapsed().as_secs_f64(),
        device: be.describe(),
    };
    summary.write(&dir)?;
    let final_metrics = last
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|v| (k.to_string(), v)))
        .collect();
    Ok(RunReport {
        dir,
        status,
        steps_done,
        final_metrics,
        records: log.records().to_vec(),
    })
}

/// Train from a config file path with overrides; used by the CLI and tests.
pub fn train_file(path: &Path, overrides: &[String], opts: &RunOptions) -> Result<RunReport> {
    let cfg = Config::load(path, overrides)?;
    train(&cfg, opts)
}
