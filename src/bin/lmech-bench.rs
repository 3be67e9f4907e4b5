//! `lmech-bench`: runs ONE lmech workload at ONE size and prints one JSON
//! line with its timings and the process's peak memory. It is the lmech side
//! of `bench/compare.sh` (the driver, `bench/compare.py`, runs it as a
//! subprocess alternately with the PyTorch twin in
//! `bench/pytorch/workloads.py`), so that each measurement is a fresh
//! process whose peak resident set is that workload's.
//!
//! ```sh
//! lmech-bench --workload hvp --width 1024 --depth 3 --batch 1000 --input 784 \
//!     --threads 2 --reps 5 --warmup 2
//! ```
//!
//! The model is a tanh MLP `input -> width x (depth - 1) -> classes` with
//! biases and the standard parametrization (PyTorch's `nn.Linear` init), or
//! with `--arch cnn|resnet` that preset (ReLU, `--norm`) on `3 x s x s`
//! images (`--input 3*s*s`), f32,
//! softmax cross-entropy, on random Gaussian inputs and uniform random labels
//! drawn from `lmech::rng::Rng` with a fixed seed. With `--arch transformer`
//! it is the `transformer` preset exactly as `[model] arch = "transformer"`
//! gives it (`transformer_spec`): `--depth` pre-norm blocks of width
//! `--width`, 4 causal heads, an MLP of 4 width with the config's default
//! activation, `--norm` (default layer) before each block and at the end,
//! a readout at every position; on `--input` = T random token ids of a
//! `--vocab`-token vocabulary per example, with next-token labels (the
//! same stream shifted by one) and the cross-entropy over all B*T
//! positions. Workloads:
//!
//! - `train_step`: forward, backward and an SGD update (lr 1e-3); the
//!   value is the last call's loss (at init: about ln(classes), ln(vocab)).
//! - `forward_backward`: forward and backward (the gradient); the value is
//!   the loss.
//! - `hvp`: one Hessian-vector product at a fresh point
//!   (`LossOnData::product_tensors`, forward-over-reverse, from scratch).
//! - `hvp_warm`: a repeated product at one point (the forward values and the
//!   gradient's cotangents reused, as in a Lanczos or power loop).
//! - `sharpness_power`: the top Hessian eigenvalue by power iteration to
//!   relative tolerance `--tol` (PyHessian's rule), products on host vectors.
//! - `sharpness_lanczos`: the same by Lanczos, k = 1, eigenvalue error bound
//!   `--tol`.
//! - `lanczos_basis`: Lanczos's own cost without the model: `--max-iter`
//!   steps (tolerance 0, so it never stops early) on a diagonal operator of
//!   the model's parameter count, whose product costs one pass over a
//!   vector; what is left is the basis's re-orthogonalization and the small
//!   tridiagonal eigensolves (no PyTorch twin).
//! - `hutchinson`: Hutchinson's Hessian trace estimate, `--probes` products.
//! - `per_sample_norms`: per-example gradient norms on the whole batch.
//! - `ntk`: the empirical NTK (per output and its trace) on the whole batch
//!   (refused for the transformer: one backward pass per output, T*vocab
//!   of them).
//! - `gd_run`: `--steps` full-batch GD steps (lr `--lr`), the loss read back
//!   to the host every step as a training loop logging it would.
//! - `gemm`: one `width x width` by `width x width` matmul (`--batch`,
//!   `--depth` and `--input` unused) with the GEMM kind `--gemm` (CUDA:
//!   `simt`, `tc-tf32`, `tc-bf16`, or `cublas` as the baseline); the JSON
//!   adds `tflops`.
//!
//! `--ensemble E` trains E models at once (seeds `--seed` to `--seed`+E-1,
//! one shared batch, as a sweep packs its runs): packed tensors `[E, ...]`
//! by default, or with `--members-apart` each member's step on one thread
//! (`lmech::member_steps`, what the CPU trainer does between the steps it
//! logs); `train_step`, `forward_backward` and `gd_run` only.
//!
//! On a GPU (`--device cuda[:N]`) every timed call ends with a stream
//! synchronization, so times are the GPU's.
//!
//! Each timed call includes everything a user's call would do (e.g. a
//! sharpness run builds its `LossOnData` and does its first, cold product);
//! the model and data are built once, outside the timing. `--save-model PATH`
//! also writes the model at init as an lmech checkpoint (safetensors), so
//! that `bench/pytorch/workloads.py --check-twin PATH` can prove its PyTorch
//! twin computes the same function. `--warmup` untimed
//! calls come first. With `--time-budget S`, once the first call has been
//! timed, the remaining warm-up calls are dropped and the repetitions cut to
//! fit about S seconds (at least one), so that huge sizes still finish; the
//! JSON says how many ran.
//!
//! Output: `{"workload", "median_ms", "min_ms", "max_ms", "reps", "times_ms",
//! "peak_rss_mib", "rss_before_setup_mib", "params", "value", "hvps"...}`;
//! the iterative workloads (sharpness, Hutchinson, `lanczos_basis`) add
//! `op_ms`, the last timed call's time inside operator products, and
//! `outside_op_ms`, the rest of that call (the algorithm's own vector work).
//! `peak_rss_mib` is the process's VmHWM (Linux /proc/self/status) at the
//! end. For a device this build does not have, the line is
//! `{"workload", "device", "unavailable": "<reason>"}` and the exit status 0;
//! an error while running prints `{"workload", "error": "<message>"}` and
//! exits 1.

use clap::{Parser, ValueEnum};
use lmech::backend::cuda::{Cuda, GemmKind};
use lmech::backend::device::{Device, DeviceRequest};
use lmech::backend::profile::{self, Part, ProcessTimes};
use lmech::backend::wgpu::Wgpu;
use lmech::config::ModelConfig;
use lmech::curvature::{unflatten, LossOnData};
use lmech::linalg::{
    hutchinson_trace, lanczos_in, power_iteration, BasisStorage, LanczosOptions, PowerOptions,
};
use lmech::member_steps::MemberSteps;
use lmech::nn::activation::Activation;
use lmech::nn::checkpoint::checkpoint_contents;
use lmech::nn::graph::ModelSpec;
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::nn::parametrization::Parametrization;
use lmech::nn::presets::{self, PresetKeys};
use lmech::nn::shape::Shape;
use lmech::observe::ntk::empirical_ntk;
use lmech::observe::per_sample::per_sample_norms;
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::rng::Rng;
use lmech::run::save_checkpoint;
use lmech::tape::Curvature;
use lmech::{Backend, Cpu, DType, Tensor};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
enum Workload {
    TrainStep,
    ForwardBackward,
    Hvp,
    HvpWarm,
    SharpnessPower,
    SharpnessLanczos,
    LanczosBasis,
    Hutchinson,
    PerSampleNorms,
    Ntk,
    GdRun,
    Gemm,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::TrainStep => "train_step",
            Workload::ForwardBackward => "forward_backward",
            Workload::Hvp => "hvp",
            Workload::HvpWarm => "hvp_warm",
            Workload::SharpnessPower => "sharpness_power",
            Workload::SharpnessLanczos => "sharpness_lanczos",
            Workload::LanczosBasis => "lanczos_basis",
            Workload::Hutchinson => "hutchinson",
            Workload::PerSampleNorms => "per_sample_norms",
            Workload::Ntk => "ntk",
            Workload::GdRun => "gd_run",
            Workload::Gemm => "gemm",
        }
    }
}

/// One lmech workload at one size, timed; prints one JSON line.
#[derive(Parser, Debug)]
#[command(name = "lmech-bench", version)]
struct Args {
    #[arg(long, value_enum)]
    workload: Workload,
    /// Hidden width; the channels of a CNN or ResNet.
    #[arg(long)]
    width: usize,
    /// Number of dense layers (depth - 1 hidden layers); a CNN's
    /// convolutions; a ResNet's 6n+2.
    #[arg(long)]
    depth: usize,
    /// The model: `mlp` (tanh), the `cnn` / `resnet` presets (ReLU, on
    /// `3 x s x s` images with `--input 3*s*s`; the CNN max-pools), or the
    /// `transformer` preset (on `--input` tokens per example).
    #[arg(long, default_value = "mlp", value_parser = ["mlp", "cnn", "resnet", "transformer"])]
    arch: String,
    /// Normalization after each convolution (none, batch, layer or rms;
    /// default none), or before each transformer block and at its end
    /// (layer, rms or none; default layer).
    #[arg(long)]
    norm: Option<String>,
    /// Examples in the batch (the whole data set for the curvature workloads).
    #[arg(long)]
    batch: usize,
    /// Input dimension; the transformer's sequence length T.
    #[arg(long)]
    input: usize,
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Tokens of the transformer's vocabulary (its embedding's rows and its
    /// readout's outputs at each position).
    #[arg(long, default_value_t = 64)]
    vocab: usize,
    /// Also write the model at init as an lmech checkpoint to this path.
    #[arg(long)]
    save_model: Option<std::path::PathBuf>,
    /// Worker threads (rayon); default: rayon's choice (the core count).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed repetitions.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Untimed calls before the timed ones.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// cpu, auto, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Seed of the model, data and random directions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Relative tolerance of the sharpness workloads.
    #[arg(long, default_value_t = 1e-3)]
    tol: f64,
    /// Most Hessian-vector products per sharpness run; the steps of
    /// `lanczos_basis`.
    #[arg(long, default_value_t = 200)]
    max_iter: usize,
    /// Storage of the Lanczos basis: auto (what the observers choose: f32
    /// for this f32 operator when `--tol` >= 1e-5), f32 or f64.
    #[arg(long, default_value = "auto")]
    basis: String,
    /// Probes of the Hutchinson trace estimate.
    #[arg(long, default_value_t = 10)]
    probes: usize,
    /// Steps of `gd_run`.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Learning rate of `gd_run` (`train_step` uses 1e-3).
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// Seconds the timed calls may take in all (see the module docs); 0: no cap.
    #[arg(long, default_value_t = 0.0)]
    time_budget: f64,
    /// CUDA GEMM kernel: simt, tc-tf32, tc-bf16 or cublas (the baseline).
    #[arg(long, default_value = "simt")]
    gemm: String,
    /// Also report where the timed calls' time went (`split` in the JSON:
    /// ms per call in each part of `lmech::backend::profile`, `host` for the
    /// rest, the process's system time and page faults, fresh buffers).
    #[arg(long)]
    split: bool,
    /// Members of a packed ensemble (seeds seed..seed+E, the same batch for
    /// all, as a sweep packs runs that differ in seed and learning rate);
    /// `train_step`, `forward_backward` and `gd_run` only.
    #[arg(long, default_value_t = 1)]
    ensemble: usize,
    /// `train_step` of an ensemble with its members stepped apart, one
    /// member per thread, as the CPU trainer steps between logged steps
    /// (`lmech::member_steps`); without it, the packed step.
    #[arg(long)]
    members_apart: bool,
}

/// A `Vm...:` field of /proc/self/status in MiB (Linux only).
fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What one call of a workload reports besides its time.
#[derive(Default)]
struct CallInfo {
    value: Option<f64>,
    hvps: Option<usize>,
    converged: Option<bool>,
    /// `--split`: where the timed calls' time went (set by `time_calls`).
    split: Option<Value>,
    /// Seconds spent inside the operator (the products) during the call.
    op_seconds: Option<f64>,
}

/// An operator that adds the time spent in each of its calls to `spent`.
fn timed<'a>(
    mut op: impl FnMut(&[f64]) -> lmech::Result<Vec<f64>> + 'a,
    spent: &'a mut f64,
) -> impl FnMut(&[f64]) -> lmech::Result<Vec<f64>> + 'a {
    move |v| {
        let started = Instant::now();
        let out = op(v);
        *spent += started.elapsed().as_secs_f64();
        out
    }
}

/// The top eigenvalue of `op` on `R^n` by Lanczos to `tol`, with the time
/// spent inside `op`.
fn top_eigenvalue(
    a: &Args,
    n: usize,
    tol: f64,
    op: impl FnMut(&[f64]) -> lmech::Result<Vec<f64>>,
) -> lmech::Result<CallInfo> {
    let mut spent = 0.0;
    let mut op = timed(op, &mut spent);
    let opts = LanczosOptions {
        k: 1,
        max_iter: a.max_iter,
        tol,
        seed: a.seed.wrapping_add(3),
        start: None,
    };
    let storage = match a.basis.as_str() {
        "auto" => BasisStorage::for_operator(false, tol),
        "f32" => BasisStorage::F32,
        "f64" => BasisStorage::F64,
        other => {
            return Err(lmech::Error::config(
                "basis",
                format!("`{other}`: expected auto, f32 or f64"),
            ))
        }
    };
    let r = lanczos_in(n, &mut op, &opts, storage)?;
    drop(op);
    Ok(CallInfo {
        value: r.values.first().copied(),
        hvps: Some(r.matvecs),
        converged: Some(r.converged),
        op_seconds: Some(spent),
        ..CallInfo::default()
    })
}

/// A diagonal operator with eigenvalues spread over `(0, 1]`: its product
/// is one pass over the vector, so a Lanczos run on it is Lanczos's own cost.
fn diagonal(v: &[f64]) -> lmech::Result<Vec<f64>> {
    let n = v.len() as f64;
    Ok(v.iter()
        .enumerate()
        .map(|(i, x)| x * (i + 1) as f64 / n)
        .collect())
}

struct Setup<B: Backend> {
    be: B,
    model: Model<B>,
    x: Tensor<B>,
    labels: Tensor<B>,
}

/// The benchmarked model: the tanh MLP, a convolutional preset on square
/// 3-channel images, or the transformer.
fn model_spec(a: &Args) -> lmech::Result<ModelSpec> {
    match a.arch.as_str() {
        "mlp" => Ok(MlpSpec::new(a.input, a.width, a.depth, a.classes, Activation::Tanh).into()),
        "transformer" => transformer_spec(a),
        _ => conv_spec(a),
    }
}

/// `--norm`, or the architecture's default: LayerNorm for the transformer
/// (GPT-2's pre-norm blocks), none for the convolutional presets.
fn norm(a: &Args) -> &str {
    match (&a.norm, a.arch.as_str()) {
        (Some(n), _) => n,
        (None, "transformer") => "layer",
        (None, _) => "none",
    }
}

fn conv_spec(a: &Args) -> lmech::Result<ModelSpec> {
    let side = ((a.input / 3) as f64).sqrt().round() as usize;
    if 3 * side * side != a.input {
        return Err(lmech::Error::msg(format!(
            "--arch {} needs --input 3*s*s (3-channel square images), got {}",
            a.arch, a.input
        )));
    }
    let keys = PresetKeys {
        arch: &a.arch,
        width: a.width,
        depth: a.depth,
        kernel: 3,
        pool: "max",
        norm: norm(a),
        activation: "relu",
        bias: true,
        outputs: a.classes,
        one_d: false,
        transformer: Default::default(),
    };
    Ok(ModelSpec {
        input: Shape::Image {
            c: 3,
            h: side,
            w: side,
        },
        layers: presets::layers(&keys)?,
        parametrization: Parametrization::Standard,
        width: a.width,
        base_width: a.width,
    })
}

/// The transformer preset through the path a config takes
/// (`ModelConfig::spec`), so that every key not set here (4 heads, causal
/// attention, pre-norm, an MLP of 4 width, biases) is the preset's default
/// and the benchmark measures the model a user's `[model] arch =
/// "transformer"` gets, with `activation = "gelu"` (the config's default is
/// tanh, which no transformer uses). The readout is per position: the
/// data's outputs are `vocab` logits at each of the T positions.
fn transformer_spec(a: &Args) -> lmech::Result<ModelSpec> {
    let model = ModelConfig::default();
    if a.width % model.heads != 0 {
        return Err(lmech::Error::msg(format!(
            "--arch transformer splits --width into {} heads: expected a multiple of {}, got {}",
            model.heads, model.heads, a.width
        )));
    }
    if a.input == 0 {
        return Err(lmech::Error::msg(
            "--arch transformer reads --input as T, the tokens per example: expected at least 1, got 0",
        ));
    }
    if a.vocab < 2 {
        return Err(lmech::Error::msg(format!(
            "--vocab: expected at least 2 tokens, got {}",
            a.vocab
        )));
    }
    if !["layer", "rms", "none"].contains(&norm(a)) {
        return Err(lmech::Error::msg(format!(
            "--arch transformer takes --norm layer, rms or none (batch normalization mixes \
             the examples), got {}",
            norm(a)
        )));
    }
    let model = ModelConfig {
        arch: Some("transformer".into()),
        width: a.width,
        depth: a.depth,
        base_width: a.width,
        norm: norm(a).into(),
        vocab: Some(a.vocab),
        activation: "gelu".into(),
        ..model
    };
    let outputs = Shape::Signal {
        c: a.vocab,
        l: a.input,
    };
    model.spec(Shape::Flat(a.input), outputs, Parametrization::Standard)
}

/// Inputs and labels: Gaussian inputs and uniform class labels, or for the
/// transformer a stream of uniform token ids per example, the first T as
/// the input and the last T (the next tokens) as its labels `[B, T]`.
fn data(a: &Args) -> (Vec<usize>, Vec<f64>, Vec<usize>, Vec<f64>) {
    let mut rng = Rng::new(a.seed.wrapping_add(1));
    if a.arch != "transformer" {
        let x = (0..a.batch * a.input).map(|_| rng.normal()).collect();
        let labels = (0..a.batch).map(|_| rng.below(a.classes) as f64).collect();
        return (vec![a.batch, a.input], x, vec![a.batch], labels);
    }
    let t = a.input;
    let (mut x, mut labels) = (
        Vec::with_capacity(a.batch * t),
        Vec::with_capacity(a.batch * t),
    );
    for _ in 0..a.batch {
        let stream: Vec<f64> = (0..=t).map(|_| rng.below(a.vocab) as f64).collect();
        x.extend_from_slice(&stream[..t]);
        labels.extend_from_slice(&stream[1..]);
    }
    (vec![a.batch, t], x, vec![a.batch, t], labels)
}

fn setup<B: Backend>(be: B, a: &Args) -> lmech::Result<Setup<B>> {
    let seeds: Vec<u64> = (0..a.ensemble as u64).map(|m| a.seed + m).collect();
    let model = Model::init(&be, model_spec(a)?, &seeds)?;
    if let Some(path) = &a.save_model {
        let (tensors, meta) = checkpoint_contents(&be, &model, "")?;
        save_checkpoint(path, &tensors, &meta)?;
    }
    let (x_shape, x, label_shape, labels) = data(a);
    let x = be.from_f64(&x_shape, &x)?;
    let labels = be.from_f64(&label_shape, &labels)?;
    Ok(Setup {
        be,
        model,
        x,
        labels,
    })
}

fn loss_on_data<B: Backend>(s: &Setup<B>) -> lmech::Result<LossOnData<'_, B>> {
    LossOnData::new(
        &s.be,
        &s.model,
        LossKind::CrossEntropy,
        vec![(s.x.clone(), s.labels.clone())],
    )
}

/// A random Gaussian direction, per parameter tensor, and its flat form.
type Direction<B> = (Vec<Tensor<B>>, Vec<f64>);

fn direction<B: Backend>(s: &Setup<B>, seed: u64) -> lmech::Result<Direction<B>> {
    let mut rng = Rng::new(seed);
    let n = s.model.param_count();
    let flat: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    Ok((unflatten(&s.be, &flat, &s.model.params())?, flat))
}

/// `v . Hv / |v|^2`, the Rayleigh quotient of a product, as a sanity value.
fn rayleigh<B: Backend>(be: &B, v: &[f64], hv: &[Tensor<B>]) -> lmech::Result<f64> {
    let mut flat = Vec::with_capacity(v.len());
    for t in hv {
        flat.extend(be.to_f64(t)?);
    }
    let num: f64 = v.iter().zip(&flat).map(|(a, b)| a * b).sum();
    let den: f64 = v.iter().map(|a| a * a).sum();
    Ok(num / den)
}

fn first_loss<B: Backend>(be: &B, loss: &Tensor<B>) -> lmech::Result<f64> {
    Ok(be.to_f64(loss)?[0])
}

/// Waits for a device's queued work (a no-op on the CPU).
type Sync<'a> = &'a dyn Fn() -> lmech::Result<()>;

/// Times `call` per the arguments, each call followed by `sync`; returns the
/// times in seconds and the last call's info.
fn time_calls(
    a: &Args,
    sync: Sync,
    mut call: impl FnMut() -> lmech::Result<CallInfo>,
) -> lmech::Result<(Vec<f64>, CallInfo, usize)> {
    let mut warmup = a.warmup;
    let mut reps = a.reps.max(1);
    let mut info = CallInfo::default();
    let mut times = Vec::with_capacity(reps);
    let mut first = true;
    let mut warm_done = 0;
    let mut split_from = None;
    while warm_done < warmup || times.len() < reps {
        if a.split && warm_done >= warmup && times.is_empty() {
            split_from = Some(start_split());
        }
        let started = Instant::now();
        info = black_box(call()?);
        sync()?;
        let t = started.elapsed().as_secs_f64();
        if warm_done < warmup {
            warm_done += 1;
        } else {
            times.push(t);
        }
        if first && a.time_budget > 0.0 {
            first = false;
            // Cut the rest to fit the budget (the first call counts as a
            // warm-up when there was one).
            let fit = ((a.time_budget / t.max(1e-9)).floor() as usize).max(1);
            if fit < reps + (warmup - warm_done) {
                warmup = warm_done;
                reps = fit.min(reps);
            }
        }
    }
    if let Some(from) = split_from {
        info.split = Some(finish_split(from, &times));
    }
    Ok((times, info, warm_done))
}

/// Turns the profiler on from zero; returns the process's times now.
fn start_split() -> Option<ProcessTimes> {
    profile::reset();
    profile::enable(true);
    ProcessTimes::now()
}

/// The profiler's parts per timed call (ms), `host` for what no part
/// covers, and the process's CPU time, page faults and fresh buffers per
/// call.
fn finish_split(from: Option<ProcessTimes>, times: &[f64]) -> Value {
    profile::enable(false);
    let s = profile::snapshot();
    let calls = times.len().max(1) as f64;
    let per_call_ms = |seconds: f64| seconds * 1e3 / calls;
    let wall: f64 = times.iter().sum();
    let mut out = Map::new();
    for part in Part::ALL {
        let seconds = s.seconds[part.index()];
        if seconds > 0.0 {
            out.insert(format!("{}_ms", part.name()), json!(per_call_ms(seconds)));
        }
    }
    out.insert(
        "host_ms".into(),
        json!(per_call_ms((wall - s.total()).max(0.0))),
    );
    let ops: u64 = s.calls.iter().sum();
    out.insert("ops".into(), json!(ops as f64 / calls));
    out.insert(
        "fresh_buffers".into(),
        json!(s.fresh_buffers as f64 / calls),
    );
    let mib = s.fresh_bytes as f64 / (1u64 << 20) as f64;
    out.insert("fresh_mib".into(), json!(mib / calls));
    if let (Some(from), Some(now)) = (from, ProcessTimes::now()) {
        let d = now.since(&from);
        out.insert("user_ms".into(), json!(per_call_ms(d.user_seconds)));
        out.insert("sys_ms".into(), json!(per_call_ms(d.sys_seconds)));
        out.insert("minor_faults".into(), json!(d.minor_faults as f64 / calls));
    }
    Value::Object(out)
}

fn run<B: Backend>(a: &Args, be: B, sync: Sync) -> lmech::Result<Map<String, Value>> {
    if a.workload == Workload::Ntk && a.arch == "transformer" {
        return Err(lmech::Error::msg(
            "--workload ntk compares a classifier's per-output kernels; a sequence model \
             has T*vocab outputs per example (one backward pass each), so it is not run on \
             --arch transformer",
        ));
    }
    let packs = matches!(
        a.workload,
        Workload::TrainStep | Workload::ForwardBackward | Workload::GdRun
    );
    if a.members_apart && a.workload != Workload::TrainStep {
        return Err(lmech::Error::msg(
            "--members-apart times train_step only (forward, backward and update per member)",
        ));
    }
    if a.ensemble == 0 || (a.ensemble > 1 && !packs) {
        return Err(lmech::Error::msg(format!(
            "--ensemble {}: a packed ensemble needs at least one member and runs only \
             train_step, forward_backward and gd_run",
            a.ensemble
        )));
    }
    let rss_before = proc_status_mib("VmRSS:");
    let described = be.describe();
    let mut s = setup(be, a)?;
    let params = s.model.param_count();
    let be = s.be.clone();
    let (times, info, warm_done) = match a.workload {
        Workload::TrainStep | Workload::ForwardBackward | Workload::GdRun => {
            let gd = a.workload == Workload::GdRun;
            let (kind, lr) = if gd {
                (OptimizerKind::Gd, a.lr)
            } else {
                (OptimizerKind::Sgd, 1e-3)
            };
            let n_params = s.model.params().len();
            let mut opt = Optimizer::new(
                &be,
                OptimHyper::new(kind),
                Schedule::Constant,
                vec![lr; a.ensemble],
                &s.model.params(),
                vec![1.0; n_params],
            )?;
            let update = a.workload != Workload::ForwardBackward;
            let steps = if gd { a.steps.max(1) } else { 1 };
            let Setup {
                be,
                model,
                x,
                labels,
            } = &mut s;
            if a.members_apart {
                // The CPU trainer's quiet steps (`lmech::member_steps`):
                // each member's forward, backward and update on one thread.
                let mut apart = MemberSteps::split(be, model, &opt)?;
                let done = vec![false; a.ensemble];
                let (times, info, warm_done) = time_calls(a, sync, || {
                    let losses = apart.step(be, x, labels, LossKind::CrossEntropy, &done)?;
                    Ok(CallInfo {
                        value: losses.first().copied(),
                        ..CallInfo::default()
                    })
                })?;
                (times, info, warm_done)
            } else {
                let mut last_loss = None;
                let (times, mut info, warm_done) = time_calls(a, sync, || {
                    let mut loss = 0.0;
                    for _ in 0..steps {
                        let pass = model.loss_pass(be, x, labels, LossKind::CrossEntropy, true)?;
                        if update {
                            opt.step(be, model.params_mut(), &pass.grads)?;
                        }
                        if gd {
                            // A training loop reads its loss back every step.
                            loss = first_loss(be, &pass.loss)?;
                        } else {
                            black_box(&pass);
                            last_loss = Some(pass.loss);
                        }
                    }
                    Ok(CallInfo {
                        value: gd.then_some(loss),
                        ..CallInfo::default()
                    })
                })?;
                // Read back after the timing, which a single step does not include.
                if let Some(loss) = &last_loss {
                    info.value = Some(first_loss(be, loss)?);
                }
                (times, info, warm_done)
            }
        }
        Workload::Hvp | Workload::HvpWarm => {
            let (v, v_flat) = direction(&s, a.seed.wrapping_add(2))?;
            // Warm: one LossOnData for every call, its first product made
            // here, untimed, so the calls reuse the tape. Cold: each call
            // starts at a fresh point.
            let warm = match a.workload {
                Workload::HvpWarm => {
                    let lod = loss_on_data(&s)?;
                    lod.product_tensors(&v, Curvature::Hessian)?;
                    Some(lod)
                }
                _ => None,
            };
            let mut last = None;
            let r = time_calls(a, sync, || {
                let fresh;
                let lod = match &warm {
                    Some(lod) => lod,
                    None => {
                        fresh = loss_on_data(&s)?;
                        &fresh
                    }
                };
                last = Some(lod.product_tensors(&v, Curvature::Hessian)?);
                Ok(CallInfo {
                    hvps: Some(1),
                    ..CallInfo::default()
                })
            })?;
            let value = rayleigh(&be, &v_flat, last.as_deref().unwrap_or(&[]))?;
            (
                r.0,
                CallInfo {
                    value: Some(value),
                    ..r.1
                },
                r.2,
            )
        }
        Workload::SharpnessPower => time_calls(a, sync, || {
            let lod = loss_on_data(&s)?;
            let mut spent = 0.0;
            let mut op = timed(|v: &[f64]| lod.product(v, Curvature::Hessian), &mut spent);
            let opts = PowerOptions {
                max_iter: a.max_iter,
                tol: a.tol,
                seed: a.seed.wrapping_add(3),
                start: None,
            };
            let r = power_iteration(lod.dim(), &mut op, &opts)?;
            drop(op);
            Ok(CallInfo {
                value: Some(r.value),
                hvps: Some(r.matvecs),
                converged: Some(r.converged),
                op_seconds: Some(spent),
                ..CallInfo::default()
            })
        })?,
        Workload::SharpnessLanczos => time_calls(a, sync, || {
            let lod = loss_on_data(&s)?;
            top_eigenvalue(a, lod.dim(), a.tol, |v| lod.product(v, Curvature::Hessian))
        })?,
        Workload::LanczosBasis => time_calls(a, sync, || top_eigenvalue(a, params, 0.0, diagonal))?,
        Workload::Hutchinson => time_calls(a, sync, || {
            let lod = loss_on_data(&s)?;
            let mut spent = 0.0;
            let mut op = timed(|v: &[f64]| lod.product(v, Curvature::Hessian), &mut spent);
            let r = hutchinson_trace(lod.dim(), &mut op, a.probes, a.seed.wrapping_add(4))?;
            drop(op);
            Ok(CallInfo {
                value: Some(r.estimate),
                hvps: Some(r.matvecs),
                converged: None,
                op_seconds: Some(spent),
                ..CallInfo::default()
            })
        })?,
        Workload::PerSampleNorms => time_calls(a, sync, || {
            let r = per_sample_norms(&s.be, &s.model, &s.x, &s.labels, LossKind::CrossEntropy)?;
            Ok(CallInfo {
                value: Some(r.mean_norm()),
                ..CallInfo::default()
            })
        })?,
        Workload::Gemm => {
            let mut rng = Rng::new(a.seed.wrapping_add(5));
            let n = a.width;
            let mut matrix = || -> lmech::Result<Tensor<B>> {
                let v: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
                be.from_f64(&[n, n], &v)
            };
            let (x, y) = (matrix()?, matrix()?);
            time_calls(a, sync, || {
                black_box(be.matmul(&x, false, &y, false, 1.0)?);
                Ok(CallInfo::default())
            })?
        }
        Workload::Ntk => time_calls(a, sync, || {
            let k = empirical_ntk(&s.be, &s.model, &s.x)?;
            // Mean diagonal of the trace kernel: sum over outputs of the
            // mean squared norm of d f_k(x_i) / d theta.
            let diag: f64 = (0..k.n).map(|i| k.trace[i * k.n + i]).sum::<f64>() / k.n as f64;
            Ok(CallInfo {
                value: Some(diag),
                ..CallInfo::default()
            })
        })?,
    };
    let peak = proc_status_mib("VmHWM:");
    let ms: Vec<f64> = times.iter().map(|t| t * 1e3).collect();
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        0.5 * (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2])
    };
    let mut out = Map::new();
    out.insert("median_ms".into(), json!(median));
    out.insert("min_ms".into(), json!(sorted[0]));
    out.insert("max_ms".into(), json!(sorted[sorted.len() - 1]));
    out.insert("reps".into(), json!(ms.len()));
    out.insert("warmup".into(), json!(warm_done));
    out.insert("times_ms".into(), json!(ms));
    out.insert("peak_rss_mib".into(), json!(peak));
    out.insert("rss_before_setup_mib".into(), json!(rss_before));
    out.insert("params".into(), json!(params));
    out.insert("threads".into(), json!(rayon::current_num_threads()));
    out.insert("device".into(), json!(a.device));
    out.insert("backend".into(), json!(described));
    if a.workload == Workload::Gemm {
        let flops = 2.0 * (a.width as f64).powi(3);
        out.insert("tflops".into(), json!(flops / (median * 1e-3) / 1e12));
        if a.device.starts_with("cuda") {
            out.insert("gemm".into(), json!(a.gemm));
        }
    }
    out.insert("dtype".into(), json!("f32"));
    out.insert("arch".into(), json!(a.arch));
    if a.arch != "mlp" {
        out.insert("norm".into(), json!(norm(a)));
    }
    if a.arch == "transformer" {
        out.insert("vocab".into(), json!(a.vocab));
    }
    if let Some(v) = info.value {
        out.insert("value".into(), json!(v));
    }
    if let Some(h) = info.hvps {
        out.insert("hvps".into(), json!(h));
    }
    if let Some(c) = info.converged {
        out.insert("converged".into(), json!(c));
    }
    if let Some(split) = info.split {
        out.insert("split".into(), split);
    }
    if let (Some(op), Some(last)) = (info.op_seconds, ms.last()) {
        out.insert("op_ms".into(), json!(op * 1e3));
        out.insert("outside_op_ms".into(), json!(last - op * 1e3));
    }
    Ok(out)
}

fn main() -> ExitCode {
    let a = Args::parse();
    let mut line = Map::new();
    line.insert("workload".into(), json!(a.workload.name()));
    let request = match DeviceRequest::parse(&a.device) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let device = match request.resolve() {
        Ok((device, _)) => device,
        Err(e) => {
            line.insert("device".into(), json!(a.device));
            line.insert("unavailable".into(), json!(e.to_string()));
            println!("{}", Value::Object(line));
            return ExitCode::SUCCESS;
        }
    };
    if let Some(n) = a.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot start {n} threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match device {
        Device::Cpu => run(&a, Cpu::f32(), &|| Ok(())),
        Device::Cuda(i) => GemmKind::parse("--gemm", &a.gemm)
            .and_then(|kind| Cuda::new(i, DType::F32)?.with_gemm(kind))
            .and_then(|be| run(&a, be.clone(), &|| be.synchronize())),
        Device::Wgpu => {
            Wgpu::new(DType::F32).and_then(|be| run(&a, be.clone(), &|| be.synchronize()))
        }
    };
    match result {
        Ok(fields) => {
            line.extend(fields);
            println!("{}", Value::Object(line));
            ExitCode::SUCCESS
        }
        Err(e) => {
            line.insert("error".into(), json!(e.to_string()));
            println!("{}", Value::Object(line));
            ExitCode::FAILURE
        }
    }
}
