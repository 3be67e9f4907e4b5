//! Criterion benchmark of lmech's curvature workloads on the MLP
//! 784-1024-1024-10, tanh, f32, softmax cross-entropy, random data, on the
//! CPU: the gradient, one Hessian-vector product (forward-over-reverse, with
//! tensors and through a flat host vector), per-sample gradient norms at
//! batch 256, and the sharpness (top Hessian eigenvalue) to 1e-3 by Lanczos
//! and by power iteration. Its PyTorch twin is bench/pytorch/curvature.py.
//!
//! ```sh
//! cargo bench --bench curvature               # everything, ~1.5 min
//! cargo bench --bench curvature -- per_sample # one workload
//! ```
//!
//! Before timing, each workload runs once untimed and prints one line to
//! stderr: its peak memory growth (Linux: the process's VmHWM after resetting
//! it through /proc/self/clear_refs, less VmRSS before the call) and, for the
//! sharpness runs, the number of Hessian-vector products they took. Setup is
//! lazy and outside the measurement, so a filter builds only what the
//! selected workloads need. The memory line is exact only in a process that
//! runs one workload: memory freed by an earlier one stays resident (the
//! allocator keeps it) and is reused without raising the peak.
//!
//! The sharpness runs take tens of HVPs (seconds) each, too long for
//! criterion's minimum of 10 samples within this bench's budget of a few
//! minutes: they are timed by hand after the criterion group, the median of
//! three runs (see `sharpness`).

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion};
use lmech::curvature::{flatten, unflatten, LossOnData};
use lmech::linalg::{lanczos, power_iteration, LanczosOptions, PowerOptions};
use lmech::nn::activation::Activation;
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::observe::per_sample::per_sample_norms;
use lmech::rng::Rng;
use lmech::tape::Curvature;
use lmech::{Backend, Cpu, Tensor};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BATCH: usize = 1000;
const PER_SAMPLE_BATCH: usize = 256;
const SHARPNESS_TOL: f64 = 1e-3;
const SEED: u64 = 7;
/// Cap on HVPs per sharpness run (both methods converge well before it here).
const SHARPNESS_MAX_ITER: usize = 200;
const SHARPNESS_REPS: usize = 3;
const GROUP: &str = "mlp_784_1024_1024_10_tanh_f32";

struct Setup {
    be: Cpu,
    model: Model<Cpu>,
    x: Tensor<Cpu>,
    labels: Tensor<Cpu>,
    /// A random Hessian-vector product direction, as tensors and flat.
    v: Vec<Tensor<Cpu>>,
    v_host: Vec<f64>,
}

fn data(be: &Cpu, rows: usize, seed: u64) -> (Tensor<Cpu>, Tensor<Cpu>) {
    let mut rng = Rng::new(seed);
    let x: Vec<f64> = (0..rows * 784).map(|_| rng.normal()).collect();
    let labels: Vec<f64> = (0..rows).map(|_| rng.below(10) as f64).collect();
    (
        be.from_f64(&[rows, 784], &x).unwrap(),
        be.from_f64(&[rows], &labels).unwrap(),
    )
}

fn setup(rows: usize) -> Setup {
    let be = Cpu::f32();
    let spec = MlpSpec::new(784, 1024, 3, 10, Activation::Tanh);
    let model = Model::init(&be, spec, &[0]).unwrap();
    let (x, labels) = data(&be, rows, 1);
    let mut rng = Rng::new(2);
    let n = model.param_count();
    let v_host: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let v = unflatten(&be, &v_host, &model.params()).unwrap();
    Setup {
        be,
        model,
        x,
        labels,
        v,
        v_host,
    }
}

fn big() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| setup(BATCH))
}

fn small() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| setup(PER_SAMPLE_BATCH))
}

fn loss_on_data(s: &Setup) -> LossOnData<'_, Cpu> {
    LossOnData::new(
        &s.be,
        &s.model,
        LossKind::CrossEntropy,
        vec![(s.x.clone(), s.labels.clone())],
    )
    .unwrap()
}

/// A `VmXXX:` field of /proc/self/status, in KiB (Linux only).
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `f` once and prints the growth of the process's peak resident set
/// over its resident set before the call, in MiB.
fn report_peak<R>(name: &str, f: impl FnOnce() -> R) -> R {
    // Writing 5 resets VmHWM to the current VmRSS (Linux >= 4.0).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = proc_status_kib("VmRSS:");
    let hwm_before = proc_status_kib("VmHWM:");
    let r = f();
    let after = proc_status_kib("VmHWM:");
    match (before, hwm_before, after) {
        (Some(b), Some(hb), Some(a)) => {
            // Without the reset, VmHWM may already be above this call's peak.
            let base = if reset { b } else { hb };
            eprintln!(
                "[memory] {name}: peak RSS growth {:.1} MiB (VmRSS before {:.1} MiB, VmHWM after {:.1} MiB{})",
                a.saturating_sub(base) as f64 / 1024.0,
                b as f64 / 1024.0,
                a as f64 / 1024.0,
                if reset { "" } else { ", VmHWM not reset" }
            );
        }
        _ => eprintln!("[memory] {name}: /proc/self/status not readable"),
    }
    r
}

/// Times `f` on the setup `data()` builds (outside the timing), after
/// printing the peak memory growth of its first call.
fn bench<R>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    data: fn() -> &'static Setup,
    f: impl Fn(&'static Setup) -> R,
) {
    let mut first = true;
    g.bench_function(name, |b| {
        let s = data();
        if first {
            first = false;
            report_peak(name, || f(s));
        }
        b.iter(|| black_box(f(s)))
    });
}

/// How a sharpness run ended.
struct Sharpness {
    value: f64,
    hvps: usize,
    converged: bool,
}

fn lanczos_run(s: &Setup, max_iter: usize) -> Sharpness {
    let lod = loss_on_data(s);
    let mut op = |v: &[f64]| lod.product(v, Curvature::Hessian);
    let opts = LanczosOptions {
        k: 1,
        max_iter,
        tol: SHARPNESS_TOL,
        seed: SEED,
        start: None,
    };
    let r = lanczos(lod.dim(), &mut op, &opts).unwrap();
    Sharpness {
        value: r.values[0],
        hvps: r.matvecs,
        converged: r.converged,
    }
}

fn power_run(s: &Setup, max_iter: usize) -> Sharpness {
    let lod = loss_on_data(s);
    let mut op = |v: &[f64]| lod.product(v, Curvature::Hessian);
    let opts = PowerOptions {
        max_iter,
        tol: SHARPNESS_TOL,
        seed: SEED,
        start: None,
    };
    let r = power_iteration(lod.dim(), &mut op, &opts).unwrap();
    Sharpness {
        value: r.value,
        hvps: r.matvecs,
        converged: r.converged,
    }
}

fn curvature(c: &mut Criterion) {
    let mut g = c.benchmark_group(GROUP);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    bench(&mut g, "gradient_loss_pass_b1000", big, |s| {
        s.model
            .loss_pass(&s.be, &s.x, &s.labels, LossKind::CrossEntropy, true)
            .unwrap()
    });
    bench(&mut g, "gradient_loss_on_data_b1000", big, |s| {
        loss_on_data(s).gradient().unwrap()
    });
    bench(&mut g, "hvp_tensors_b1000", big, |s| {
        loss_on_data(s)
            .product_tensors(&s.v, Curvature::Hessian)
            .unwrap()
    });
    {
        // Repeated products at one point, as in a Lanczos or power loop: the
        // forward values and the gradient's signals are reused.
        let s = big();
        let lod = loss_on_data(s);
        lod.product_tensors(&s.v, Curvature::Hessian).unwrap();
        g.bench_function("hvp_tensors_warm_b1000", |b| {
            b.iter(|| black_box(lod.product_tensors(&s.v, Curvature::Hessian).unwrap()))
        });
    }
    bench(&mut g, "hvp_host_vector_b1000", big, |s| {
        loss_on_data(s)
            .product(&s.v_host, Curvature::Hessian)
            .unwrap()
    });
    bench(&mut g, "host_flatten_unflatten", big, |s| {
        // The host round trip `product` adds to `product_tensors`.
        let t = unflatten(&s.be, &s.v_host, &s.model.params()).unwrap();
        flatten(&s.be, &t).unwrap()
    });
    bench(&mut g, "per_sample_norms_b256", small, |s| {
        per_sample_norms(&s.be, &s.model, &s.x, &s.labels, LossKind::CrossEntropy).unwrap()
    });
    g.finish();
}

/// The sharpness runs, timed by hand: `SHARPNESS_REPS` runs each, the
/// median and every run printed, the first run's peak memory and HVP count
/// printed to stderr. They follow criterion's command line loosely: a
/// positional filter selects them by substring, `--list` lists them, and
/// test mode (`cargo test --benches`, no `--bench`) runs each once with a
/// 3-HVP cap as a smoke test.
fn sharpness() {
    const VALUE_OPTIONS: &[&str] = &[
        "--save-baseline",
        "-s",
        "--baseline",
        "-b",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--output-format",
        "--color",
        "-c",
        "--plotting-backend",
        "--format",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let mut filter = None;
    let mut skip_value = false;
    for a in &args {
        if skip_value {
            skip_value = false;
        } else if VALUE_OPTIONS.contains(&a.as_str()) {
            skip_value = true;
        } else if !a.starts_with('-') {
            filter = Some(a.clone());
        }
    }
    let test = has("--test") || !has("--bench");
    type Run = fn(&Setup, usize) -> Sharpness;
    for (name, run) in [
        ("sharpness_lanczos_b1000", lanczos_run as Run),
        ("sharpness_power_b1000", power_run as Run),
    ] {
        let id = format!("{GROUP}/{name}");
        if filter.as_ref().is_some_and(|f| !id.contains(f.as_str())) {
            continue;
        }
        if has("--list") {
            println!("{id}: benchmark");
            continue;
        }
        if test {
            let r = run(big(), 3);
            println!("Testing {id}\nSuccess ({} HVPs)\n", r.hvps);
            continue;
        }
        let mut times = Vec::new();
        let s = big();
        for rep in 0..SHARPNESS_REPS {
            let started = Instant::now();
            let r = if rep == 0 {
                report_peak(name, || run(s, SHARPNESS_MAX_ITER))
            } else {
                run(s, SHARPNESS_MAX_ITER)
            };
            times.push(started.elapsed().as_secs_f64());
            if rep == 0 {
                eprintln!(
                    "[hvps] {name}: {} Hessian-vector products, lambda_max = {:.6}, converged = {}",
                    r.hvps, r.value, r.converged
                );
            }
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "{id}\n                        time:   median {:.3} s of {SHARPNESS_REPS} runs ({})",
            sorted[sorted.len() / 2],
            times
                .iter()
                .map(|t| format!("{t:.3} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

criterion_group!(benches, curvature);

fn main() {
    benches();
    sharpness();
    Criterion::default().configure_from_args().final_summary();
}
