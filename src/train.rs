//! The training runner behind `lmech train`: load data, build the model and
//! optimizer on the chosen backend, loop over steps, log metrics, detect
//! divergence, and leave a complete run directory (config, metrics, summary,
//! checkpoint, plot). The loop knows nothing of what observers measure.

use crate::backend::cpu::Cpu;
use crate::backend::device::Device;
use crate::backend::wgpu::Wgpu;
use crate::backend::{Backend, DType};
use crate::config::{Config, Resolved};
use crate::data;
use crate::data::device::{cached, eval_rows, DeviceData, DeviceSet};
use crate::error::{Error, Result};
use crate::member_steps::MemberSteps;
use crate::nn::loss::labels_correct;
use crate::nn::model::Model;
use crate::observe::Observers;
use crate::optim::Optimizer;
use crate::resume;
use crate::rng::Rng;
use crate::run::{self, MetricsLog, Progress, Record, Status, Summary};
use rayon::prelude::*;
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

/// The CPU backend for a config's dtype: f16 is refused with a config error
/// naming `dtype`, before anything is written.
fn cpu(dtype: DType) -> Result<Cpu> {
    if dtype == DType::F16 {
        return Err(crate::backend::cpu::f16_refused());
    }
    Ok(Cpu::new(dtype))
}

/// Train the run described by `cfg`, writing its run directory.
pub fn train(cfg: &Config, opts: &RunOptions) -> Result<RunReport> {
    let res = cfg.resolve()?;
    match opts.device {
        Device::Cpu => train_on(cpu(res.dtype)?, cfg, &res, opts),
        Device::Cuda(i) => train_on(
            crate::backend::cuda::Cuda::new(i, res.dtype)?,
            cfg,
            &res,
            opts,
        ),
        Device::Wgpu => train_on(Wgpu::new(res.dtype)?, cfg, &res, opts),
    }
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
    if let Some(seed) = cfg.data.seed {
        h.insert("data_seed".into(), seed.into());
    }
    h
}

fn train_on<B: Backend>(
    be: B,
    cfg: &Config,
    res: &Resolved,
    opts: &RunOptions,
) -> Result<RunReport> {
    let member = Member {
        cfg: cfg.clone(),
        out: opts.out.clone(),
    };
    let mut reports = train_members_on(
        be,
        std::slice::from_ref(&member),
        res,
        opts.progress,
        &|| Ok(()),
        &mut |_, _| Ok(()),
    )?;
    reports
        .pop()
        .ok_or_else(|| Error::msg("internal: a run without a report"))
}

/// One model of an ensemble: its config and its run directory.
#[derive(Clone, Debug)]
pub struct Member {
    pub cfg: Config,
    pub out: PathBuf,
}

/// Called with a member's index and report as soon as its run directory is
/// complete: a diverged member before the others finish.
pub type OnMemberDone<'a> = dyn FnMut(usize, &RunReport) -> Result<()> + 'a;

/// Train `members` as one ensemble (leading dimension E = `members.len()`)
/// in the same kernel launches. Their configs must have equal
/// `Config::ensemble_key`s: they differ only in model seed and learning rate.
/// Each member gets a run directory of its own, exactly as `train` would
/// write it (its `wall_seconds` is the ensemble's). A member whose loss
/// becomes non-finite is recorded as diverged while the others go on; the
/// ops are per member, so its NaNs cannot reach them.
pub fn train_ensemble(
    members: &[Member],
    device: Device,
    progress: bool,
    on_done: &mut OnMemberDone,
) -> Result<Vec<RunReport>> {
    train_ensemble_guarded(members, device, progress, &|| Ok(()), on_done)
}

/// Checked before every step: an error stops the training there (a sweep
/// worker that lost its claim on the runs stops training them).
pub type Guard<'a> = dyn Fn() -> Result<()> + 'a;

/// `train_ensemble`, stopping with `guard`'s error as soon as it has one.
pub fn train_ensemble_guarded(
    members: &[Member],
    device: Device,
    progress: bool,
    guard: &Guard,
    on_done: &mut OnMemberDone,
) -> Result<Vec<RunReport>> {
    let first = members
        .first()
        .ok_or_else(|| Error::msg("an ensemble needs at least one member"))?;
    let res = first.cfg.resolve()?;
    let key = first.cfg.ensemble_key()?;
    for m in &members[1..] {
        m.cfg.resolve()?;
        if m.cfg.ensemble_key()? != key {
            return Err(Error::msg(format!(
                "{} and {} differ in more than seed and learning rate; they cannot train as one ensemble",
                first.out.display(),
                m.out.display()
            )));
        }
    }
    match device {
        Device::Cpu => train_members_on(cpu(res.dtype)?, members, &res, progress, guard, on_done),
        Device::Wgpu => {
            let be = Wgpu::new(res.dtype)?;
            train_members_on(be, members, &res, progress, guard, on_done)
        }
        Device::Cuda(i) => {
            let be = crate::backend::cuda::Cuda::new(i, res.dtype)?;
            train_members_on(be, members, &res, progress, guard, on_done)
        }
    }
}

/// The files and state of one member's run.
struct MemberRun {
    dir: PathBuf,
    config_toml: String,
    hyperparams: serde_json::Map<String, serde_json::Value>,
    /// Write `model.safetensors` at the end.
    checkpoint: bool,
    log: MetricsLog,
    last: Record,
    done: bool,
}

/// A member's run in its prepared directory `dir`: its config written, its
/// log reopened with the records before `start_step` (a restart's).
fn open_member_run(
    dir: PathBuf,
    config_toml: String,
    m: &Member,
    start_step: u64,
) -> Result<MemberRun> {
    let earlier = if start_step > 0 {
        resume::records_before(&dir, start_step)?
    } else {
        Vec::new()
    };
    run::write_atomic(&dir.join("config.toml"), config_toml.as_bytes())?;
    let log = resume::reopen_log(&dir, &earlier)?;
    Ok(MemberRun {
        dir,
        config_toml,
        hyperparams: hyperparams(&m.cfg),
        checkpoint: m.cfg.train.checkpoint,
        log,
        last: earlier.last().cloned().unwrap_or_else(|| Record::new(0)),
        done: false,
    })
}

/// Member `e`'s weights as a safetensors checkpoint at `path`, named and
/// annotated as PyTorch's `nn.Linear` stack loads them.
fn save_weights<B: Backend>(
    be: &B,
    model: &Model<B>,
    e: usize,
    run: &MemberRun,
    path: &Path,
) -> Result<()> {
    let (tensors, meta) = member_checkpoint(be, model, e, run)?;
    run::save_checkpoint(path, &tensors, &meta)
}

/// Member `e`'s checkpoint contents, read from the backend.
fn member_checkpoint<B: Backend>(
    be: &B,
    model: &Model<B>,
    e: usize,
    run: &MemberRun,
) -> Result<CheckpointContents> {
    let member = model.member(be, e)?;
    crate::nn::checkpoint::checkpoint_contents(be, &member, &run.config_toml)
}

/// The subdirectory of a run directory that holds its step checkpoints.
pub const STEP_CHECKPOINTS: &str = "checkpoints";

/// Keeps every live member's weights at `step` (`train.checkpoint_at`).
fn save_step_checkpoints<B: Backend>(
    be: &B,
    model: &Model<B>,
    runs: &[MemberRun],
    step: u64,
) -> Result<()> {
    for (e, run) in runs.iter().enumerate().filter(|(_, r)| !r.done) {
        let dir = run.dir.join(STEP_CHECKPOINTS);
        std::fs::create_dir_all(&dir).map_err(|err| Error::io(&dir, err))?;
        save_weights(
            be,
            model,
            e,
            run,
            &dir.join(format!("step_{step}.safetensors")),
        )?;
    }
    Ok(())
}

fn finish_member<B: Backend>(
    be: &B,
    model: &Model<B>,
    e: usize,
    run: &mut MemberRun,
    status: Status,
    steps_done: u64,
    started: Instant,
) -> Result<RunReport> {
    let weights = final_weights(be, model, e, run, &status)?;
    let device = be.describe();
    write_member_results(run, weights, status, steps_done, started, &device)
}

/// Member `e`'s checkpoint contents, read from the backend, when its run
/// keeps its final weights.
fn final_weights<B: Backend>(
    be: &B,
    model: &Model<B>,
    e: usize,
    run: &MemberRun,
    status: &Status,
) -> Result<Option<CheckpointContents>> {
    if !(run.checkpoint && matches!(status, Status::Finished)) {
        return Ok(None);
    }
    member_checkpoint(be, model, e, run).map(Some)
}

/// The tensors and metadata of a safetensors checkpoint, on the host.
type CheckpointContents = (Vec<run::NamedTensor>, BTreeMap<String, String>);

/// Writes a finished member's results (CSV, plots, checkpoint, summary)
/// and marks it done. Host work only, so members may finish in parallel.
fn write_member_results(
    run: &mut MemberRun,
    weights: Option<CheckpointContents>,
    status: Status,
    steps_done: u64,
    started: Instant,
    device: &str,
) -> Result<RunReport> {
    run.done = true;
    run.log.write_csv()?;
    run::plot_loss(&run.dir, &run.log)?;
    run::plot_accuracy(&run.dir, &run.log)?;
    run::plot_central_flow(&run.dir, &run.log)?;
    if let Some((tensors, meta)) = weights {
        run::save_checkpoint(&run.dir.join("model.safetensors"), &tensors, &meta)?;
    }
    resume::remove(&run.dir)?;
    let summary = Summary {
        status: status.clone(),
        hyperparams: run.hyperparams.clone(),
        final_metrics: run.last.clone(),
        steps_done,
        wall_seconds: started.elapsed().as_secs_f64(),
        device: device.to_string(),
    };
    summary.write(&run.dir)?;
    let final_metrics = run
        .last
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|v| (k.to_string(), v)))
        .collect();
    Ok(RunReport {
        dir: run.dir.clone(),
        status,
        steps_done,
        final_metrics,
        records: run.log.records().to_vec(),
    })
}

/// Finishes every member still training after the last step: each one's
/// weights are read from the backend in turn, then their files (CSV,
/// plots, checkpoint, summary: about 7 synced files each) are written in
/// parallel, and each finished one is handed to `on_done` in member order.
/// A member whose files fail does not keep the others from `on_done`;
/// the first failure is returned after them.
fn finish_all<B: Backend>(
    be: &B,
    model: &Model<B>,
    runs: &mut [MemberRun],
    reports: &mut [Option<RunReport>],
    steps_done: u64,
    started: Instant,
    on_done: &mut OnMemberDone,
) -> Result<()> {
    let mut live = Vec::new();
    for (e, run) in runs.iter_mut().enumerate().filter(|(_, r)| !r.done) {
        let weights = final_weights(be, model, e, run, &Status::Finished)?;
        live.push((e, run, weights));
    }
    let device = be.describe();
    let written: Vec<(usize, Result<RunReport>)> = live
        .into_par_iter()
        .map(|(e, run, weights)| {
            let report =
                write_member_results(run, weights, Status::Finished, steps_done, started, &device);
            (e, report)
        })
        .collect();
    let mut first_err = None;
    for (e, report) in written {
        match report.and_then(|report| on_done(e, &report).map(|()| report)) {
            Ok(report) => reports[e] = Some(report),
            Err(err) => {
                first_err.get_or_insert(err);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// A model that starts with an embedding reads the data as token ids: every
/// value of the train and test inputs must be one below its vocabulary
/// (backends index with them). The message names the key that set the
/// vocabulary (`model.vocab` for a preset) and, for a built-in task, which
/// ids its inputs hold.
/// The progress bar at `step`, with the loss of the first member still
/// training.
fn update_progress(progress: &Option<Progress>, runs: &[MemberRun], step: u64, losses: &[f64]) {
    if let Some(p) = progress {
        let shown = runs.iter().position(|r| !r.done).unwrap_or(0);
        p.update(step, losses[shown]);
    }
}

/// Finish the members whose training loss first became NaN or infinite at
/// `step` (their last record is that loss).
#[allow(clippy::too_many_arguments)]
fn retire_diverged<B: Backend>(
    be: &B,
    model: &Model<B>,
    runs: &mut [MemberRun],
    reports: &mut [Option<RunReport>],
    losses: &[f64],
    step: u64,
    started: Instant,
    on_done: &mut OnMemberDone,
) -> Result<()> {
    for (e, run) in runs.iter_mut().enumerate() {
        if run.done || losses[e].is_finite() {
            continue;
        }
        run.log.log(&Record::new(step).with("loss", losses[e]))?;
        let status = Status::Diverged {
            step,
            reason: format!("training loss became {} at step {step}", losses[e]),
        };
        let report = finish_member(be, model, e, run, status, step, started)?;
        on_done(e, &report)?;
        reports[e] = Some(report);
    }
    Ok(())
}

fn check_ids_fit(
    cfg: &Config,
    spec: &crate::nn::graph::ModelSpec,
    split: &data::Split,
) -> Result<()> {
    let Some(crate::nn::layer_spec::LayerSpec::Embedding { vocab, .. }) = spec.layers.first()
    else {
        return Ok(());
    };
    let key = if cfg.model.arch.is_some() {
        "model.vocab"
    } else {
        "model.layers[0].vocab"
    };
    let ids = match cfg.data.input_vocab() {
        Some((needed, what)) => format!(
            " (source '{}' holds {what}: a vocab of {needed})",
            cfg.data.source
        ),
        None => String::new(),
    };
    let sets = [
        ("training data", Some(&split.train)),
        ("test data", split.test.as_ref()),
    ];
    for (what, ds) in sets {
        if let Some(ds) = ds {
            let what = format!("{what}{ids}");
            data::check_token_ids(&ds.x, ds.n, ds.d, *vocab, &what, key)?;
        }
    }
    Ok(())
}

fn train_members_on<B: Backend>(
    be: B,
    members: &[Member],
    res: &Resolved,
    show_progress: bool,
    guard: &Guard,
    on_done: &mut OnMemberDone,
) -> Result<Vec<RunReport>> {
    let started = Instant::now();
    let cfg = &members[0].cfg;
    let ensemble = members.len();
    // Data problems are found before the run directories are touched.
    let split = data::load(&cfg.data, cfg.data_seed())?;
    let train_ds = &split.train;
    if train_ds.n == 0 {
        return Err(Error::config("data", "the training set is empty"));
    }
    let loss = res.loss;
    let mut batcher = Batcher::new(train_ds.n, cfg.train.batch_size, cfg.data_seed());
    let full_batch = batcher.full_batch();
    // Full-batch GD trains on the whole set, uploaded once here; the
    // evaluation sets are uploaded when first evaluated and kept.
    let full = match full_batch {
        true => Some(DeviceData::upload(&be, train_ds, loss, None)?),
        false => None,
    };
    let (mut train_eval, mut test_eval) = (None, None);
    let input = cfg.data.input_shape(train_ds.d)?;
    let spec = cfg
        .model
        .spec(input, train_ds.out_shape(), res.parametrization)?;
    check_ids_fit(cfg, &spec, &split)?;
    let seeds: Vec<u64> = members.iter().map(|m| m.cfg.seed).collect();
    let mut model = Model::init(&be, spec, &seeds)?;
    let family = res.optim.kind.family();
    let mut opt = Optimizer::new(
        &be,
        res.optim.clone(),
        res.schedule.clone(),
        members.iter().map(|m| m.cfg.optim.lr).collect(),
        &model.params(),
        model.lr_scales(family),
    )?;

    if cfg.observe.any() && ensemble > 1 {
        return Err(Error::config(
            "observe",
            "observers measure one model at a time; train runs with observers one by one",
        ));
    }
    cfg.observe.validate(model.param_count(), train_ds.n)?;
    crate::observe::check_examples_separate(&cfg.observe, &model, train_ds.n)?;
    let flow =
        crate::observe::central_flow_optimizer(cfg, res, full_batch, &model.lr_scales(family))?;
    // Each member's directory and files are independent host work, done
    // in parallel: 64 members' synced files took 0.1 s one after another.
    let dirs = members
        .par_iter()
        .map(|m| Ok((run::prepare_run_dir(&m.out)?, m.cfg.to_toml()?)))
        .collect::<Result<Vec<_>>>()?;
    let start_step = resume::restore(&be, &mut model, &mut opt, &dirs)?;
    let mut runs = dirs
        .into_par_iter()
        .zip(members)
        .map(|((dir, config_toml), m)| open_member_run(dir, config_toml, m, start_step))
        .collect::<Result<Vec<_>>>()?;
    // A restarted run's clock goes on from its last record.
    let time_offset = runs[0]
        .last
        .get("time_s")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let mut observers = if cfg.observe.any() {
        Some(Observers::new(
            cfg.observe.clone(),
            &model,
            train_ds,
            loss,
            cfg.seed,
            runs[0].dir.clone(),
            flow,
        )?)
    } else {
        None
    };
    let steps = cfg.train.steps;
    let label = cfg.name.clone().unwrap_or_else(|| "train".into());
    let progress = if show_progress {
        Some(Progress::new(steps, &label))
    } else {
        None
    };
    if !full_batch {
        for _ in 0..start_step {
            batcher.next();
        }
    }
    let eval_every = if cfg.train.eval_every == 0 {
        cfg.train.log_every
    } else {
        cfg.train.eval_every
    };
    let checkpoint_every = cfg.train.checkpoint_every;
    let mut reports: Vec<Option<RunReport>> = vec![None; ensemble];

    // Steps that neither log, evaluate, checkpoint nor finish train the
    // members apart where the backend is faster that way (`member_steps`);
    // `apart` holds them between such steps and is joined back into
    // `model` and `opt` before any other step.
    let mut apart: Option<MemberSteps<B>> = None;
    // LMECH_MEMBERS_APART=0 keeps every step packed (to benchmark the two).
    let can_step_apart = ensemble > 1
        && observers.is_none()
        && be.steps_members_apart()
        && std::env::var("LMECH_MEMBERS_APART").map_or(true, |v| v != "0");
    for step in start_step..=steps {
        guard()?;
        let is_final = step == steps;
        let checkpoint_now =
            checkpoint_every > 0 && step > start_step && step % checkpoint_every == 0 && !is_final;
        let observe_now = observers.as_ref().is_some_and(|o| o.any_due(step, steps));
        let keep_now = cfg.train.checkpoint_due(step);
        let log_now = is_final || step % cfg.train.log_every == 0 || observe_now || keep_now;
        let eval_now = is_final || step % eval_every == 0;
        let batch;
        let data = match &full {
            Some(full) => full,
            None => {
                batch = DeviceData::upload(&be, train_ds, loss, Some(&batcher.next()))?;
                &batch
            }
        };
        if can_step_apart && !(log_now || checkpoint_now) {
            let members = match &mut apart {
                Some(m) => m,
                None => apart.insert(MemberSteps::split(&be, &model, &opt)?),
            };
            let done: Vec<bool> = runs.iter().map(|r| r.done).collect();
            let losses = members.step(&be, &data.x, &data.target, loss, &done)?;
            if runs
                .iter()
                .zip(&losses)
                .any(|(r, l)| !r.done && !l.is_finite())
            {
                members.join(&be, &mut model, &mut opt)?;
                retire_diverged(
                    &be,
                    &model,
                    &mut runs,
                    &mut reports,
                    &losses,
                    step,
                    started,
                    on_done,
                )?;
            }
            if runs.iter().all(|r| r.done) {
                break;
            }
            update_progress(&progress, &runs, step, &losses);
            continue;
        }
        if let Some(members) = apart.take() {
            members.join(&be, &mut model, &mut opt)?;
        }
        if checkpoint_now {
            for (e, run) in runs.iter().enumerate().filter(|(_, r)| !r.done) {
                resume::save(&be, &model, &opt, e, &run.dir, step, &run.config_toml)?;
            }
            let dirs: Vec<&Path> = runs
                .iter()
                .filter(|r| !r.done)
                .map(|r| r.dir.as_path())
                .collect();
            resume::promote(&dirs)?;
        }

        let pass = model.loss_pass(&be, &data.x, &data.target, loss, !is_final)?;
        if !is_final {
            model.track_batch_stats(&be, &pass.batch_stats)?;
        }
        let losses = be.to_f64(&pass.loss)?;
        retire_diverged(
            &be,
            &model,
            &mut runs,
            &mut reports,
            &losses,
            step,
            started,
            on_done,
        )?;
        let mut recs: Vec<Record> = losses
            .iter()
            .map(|&l| Record::new(step).with("loss", l))
            .collect();
        if runs.iter().all(|r| r.done) {
            break;
        }
        if keep_now {
            save_step_checkpoints(&be, &model, &runs, step)?;
        }
        if log_now {
            if !is_final {
                // The rate of the update this step makes.
                for (rec, lr) in recs.iter_mut().zip(opt.current_lr()) {
                    rec.set("lr", lr);
                }
            }
            if eval_now {
                let (train_loss, train_acc) = if full_batch {
                    let acc = match &data.labels {
                        Some(l) => Some(
                            labels_correct(&be, &pass.output, l)?
                                .iter()
                                .map(|c| c / data.scored.max(1) as f64)
                                .collect(),
                        ),
                        None => None,
                    };
                    (None, acc)
                } else {
                    let set = cached(&mut train_eval, || {
                        DeviceSet::upload(&be, train_ds, loss, eval_rows(ensemble))
                    })?;
                    let (l, a) = set.evaluate(&be, &model, loss)?;
                    (Some(l), a)
                };
                for (e, rec) in recs.iter_mut().enumerate() {
                    if let Some(l) = &train_loss {
                        rec.set("train_loss", l[e]);
                    }
                    if let Some(a) = &train_acc {
                        rec.set("train_acc", a[e]);
                    }
                }
                if let Some(test) = &split.test {
                    let set = cached(&mut test_eval, || {
                        DeviceSet::upload(&be, test, loss, eval_rows(ensemble))
                    })?;
                    let (l, a) = set.evaluate(&be, &model, loss)?;
                    for (e, rec) in recs.iter_mut().enumerate() {
                        rec.set("test_loss", l[e]);
                        if let Some(a) = &a {
                            rec.set("test_acc", a[e]);
                        }
                    }
                }
            }
        }
        if let Some(o) = observers.as_mut() {
            if observe_now {
                o.observe(&be, &model, step, steps, &mut recs[0])?;
            }
            if !is_final {
                o.before_update(&be, &model, step, steps)?;
            }
        }
        if !is_final {
            if log_now {
                let mut sq = vec![0.0; ensemble];
                for g in &pass.grads {
                    for (s, v) in sq.iter_mut().zip(be.sum_sq(g)?) {
                        *s += v;
                    }
                }
                for (rec, s) in recs.iter_mut().zip(sq) {
                    rec.set("grad_norm", s.sqrt());
                }
            }
            opt.step(&be, model.params_mut(), &pass.grads)?;
        }
        if log_now {
            let t = time_offset + started.elapsed().as_secs_f64();
            for (run, mut rec) in runs.iter_mut().zip(recs) {
                if run.done {
                    continue;
                }
                rec.set("time_s", t);
                run.log.log(&rec)?;
                run.last = rec;
            }
        }
        update_progress(&progress, &runs, step, &losses);
    }
    if let Some(p) = &progress {
        let diverged = runs.iter().filter(|r| r.done).count();
        p.finish(&match (ensemble, diverged) {
            (1, 0) => "finished".to_string(),
            (1, _) => format!(
                "diverged at step {}",
                reports[0].as_ref().map_or(0, |r| r.steps_done)
            ),
            (_, d) => format!("finished; {d} of {ensemble} members diverged"),
        });
    }
    finish_all(
        &be,
        &model,
        &mut runs,
        &mut reports,
        opt.steps_done(),
        started,
        on_done,
    )?;
    reports
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::msg("internal: a member without a report")))
        .collect()
}

/// Train from a config file path with overrides; used by the CLI and tests.
pub fn train_file(path: &Path, overrides: &[String], opts: &RunOptions) -> Result<RunReport> {
    let cfg = Config::load(path, overrides)?;
    train(&cfg, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::activation::Activation;
    use crate::nn::mlp::MlpSpec;

    fn member_run(dir: PathBuf) -> MemberRun {
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = resume::reopen_log(&dir, &[]).unwrap();
        let last = Record::new(3).with("loss", 0.5);
        log.log(&last).unwrap();
        MemberRun {
            dir,
            config_toml: String::new(),
            hyperparams: Default::default(),
            checkpoint: true,
            log,
            last,
            done: false,
        }
    }

    /// A member whose files cannot be written (its directory is gone) fails
    /// alone: the members before and after it are written and handed to
    /// `on_done` in member order, with their checkpoints, and the failure
    /// comes back after them.
    #[test]
    fn a_member_whose_files_fail_keeps_no_other_from_committing() {
        let root = std::env::temp_dir().join(format!("lmech-finish-all-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let be = Cpu::f64();
        let model =
            Model::init(&be, MlpSpec::new(3, 4, 2, 2, Activation::Tanh), &[0, 1, 2]).unwrap();
        let mut runs: Vec<MemberRun> = (0..3)
            .map(|e| member_run(root.join(format!("m{e}"))))
            .collect();
        std::fs::remove_dir_all(&runs[1].dir).unwrap();
        let mut reports = vec![None, None, None];
        let mut done = Vec::new();
        let err = finish_all(
            &be,
            &model,
            &mut runs,
            &mut reports,
            3,
            Instant::now(),
            &mut |e, report| {
                assert!(report.dir.join("summary.json").exists());
                assert!(report.dir.join("model.safetensors").exists());
                done.push(e);
                Ok(())
            },
        )
        .unwrap_err();
        assert_eq!(done, vec![0, 2]);
        assert!(err.to_string().contains("m1"), "{err}");
        assert!(reports[0].is_some() && reports[1].is_none() && reports[2].is_some());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
