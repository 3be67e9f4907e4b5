//! Numerical parity with PyTorch. Each `tests/fixtures/parity/NAME.json` was
//! written by `bench/pytorch/parity.py` from the lmech checkpoint beside it
//! (`NAME.safetensors`; an MLP or a layer-graph model: a CNN with pooling and
//! LayerNorm, a ResNet with identity and projected skips, the same with
//! BatchNorm, a Conv1d net with RMSNorm, transformers, each rebuilt in
//! PyTorch by `lmech_checkpoint.load_model`): the inputs it used (x,
//! targets, a direction v, Rademacher probes) and PyTorch's float64 values
//! of the loss, gradient, Hessian- and Gauss-Newton-vector products, top
//! Hessian eigenvalues (dense `eigvalsh`), exact and Hutchinson traces,
//! per-example gradient norms, the empirical NTK, a short full-batch GD run
//! with `torch.optim.SGD`, and 10 full-batch steps each of
//! `torch.optim.Adam` and `torch.optim.AdamW`, which lmech replays with the
//! optimizer `lmech train` builds from the fixture's [optim] settings.
//! A model with BatchNorm (`"mixes_examples": true`) is checked with batch
//! statistics, has no per-example references (lmech must refuse them) and
//! adds its eval-mode outputs and the running statistics after each run.
//! Regenerate them with `bash bench/pytorch/make_parity_fixtures.sh`; this
//! test needs no PyTorch.
//!
//! Every fixture is checked with the checkpoint loaded in f64 (relative
//! errors 1e-10, eigenvalues 1e-9, Adam runs 1e-12) and in f32 (the same
//! weights and inputs rounded to f32, against the f64 references: 2e-6,
//! eigenvalues 1e-5, Adam runs 5e-4; `Tol` says why). `cargo test --release
//! --test pytorch_parity -- --nocapture` prints the table of relative
//! errors.

mod common;

use common::max_rel_err;
use lmech::config::Config;
use lmech::curvature::{flatten, LossOnData};
use lmech::linalg::{dot, lanczos, LanczosOptions};
use lmech::nn::checkpoint::load_model;
use lmech::nn::loss::LossKind;
use lmech::nn::model::Model;
use lmech::nn::parametrization::OptimFamily;
use lmech::observe::ntk::empirical_ntk;
use lmech::observe::per_sample::per_sample_norms;
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::tape::Curvature;
use lmech::{Backend, Cpu, DType, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

/// One fixture: the checkpoint, the inputs and PyTorch's reference values.
struct Fixture {
    name: String,
    checkpoint: PathBuf,
    loss: LossKind,
    params: usize,
    x_shape: Vec<usize>,
    x: Vec<f64>,
    target_shape: Vec<usize>,
    target: Vec<f64>,
    v: Vec<f64>,
    probes: Vec<Vec<f64>>,
    /// A BatchNorm model: per-example quantities are not defined.
    mixes_examples: bool,
    r: Value,
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn sizes(v: &Value) -> Vec<usize> {
    floats(v).into_iter().map(|s| s as usize).collect()
}

impl Fixture {
    fn load(path: &Path) -> Fixture {
        let text = std::fs::read_to_string(path).unwrap();
        let j: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        let inputs = &j["inputs"];
        let probes = inputs["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s.as_str()
                    .unwrap()
                    .chars()
                    .map(|c| match c {
                        '+' => 1.0,
                        '-' => -1.0,
                        _ => panic!("{}: a probe sign is {c:?}", path.display()),
                    })
                    .collect()
            })
            .collect();
        Fixture {
            name: j["name"].as_str().unwrap().to_string(),
            checkpoint: path
                .parent()
                .unwrap()
                .join(j["checkpoint"].as_str().unwrap()),
            loss: LossKind::parse("loss", j["loss"].as_str().unwrap()).unwrap(),
            params: j["params"].as_u64().unwrap() as usize,
            x_shape: sizes(&inputs["x_shape"]),
            x: floats(&inputs["x"]),
            target_shape: sizes(&inputs["target_shape"]),
            target: floats(&inputs["target"]),
            v: floats(&inputs["v"]),
            probes,
            mixes_examples: j["mixes_examples"].as_bool().unwrap_or(false),
            r: j["reference"].clone(),
        }
    }

    fn reference(&self, key: &str) -> Vec<f64> {
        floats(&self.r[key])
    }

    fn scalar(&self, key: &str) -> f64 {
        self.r[key].as_f64().unwrap()
    }
}

fn fixtures() -> Vec<PathBuf> {
    let dir = fixture_dir();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    out.sort();
    assert!(
        !out.is_empty(),
        "no parity fixtures in {}; run bench/pytorch/make_parity_fixtures.sh",
        dir.display()
    );
    out
}

fn scalar_rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-300)
}

/// Largest per-value relative error |a_i - b_i| / |b_i| (eigenvalues).
fn each_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| scalar_rel(*x, *y))
        .fold(0.0, f64::max)
}

/// Relative errors of one fixture in one precision, with their tolerances.
struct Errors {
    rows: Vec<(&'static str, f64, f64)>,
}

impl Errors {
    fn add(&mut self, what: &'static str, err: f64, tol: f64) {
        self.rows.push((what, err, tol));
    }
    fn failures(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|(_, e, t)| e.is_nan() || e > t)
            .map(|(w, e, t)| format!("{w}: {e:.2e} > {t:.0e}"))
            .collect()
    }
    fn get(&self, what: &str) -> f64 {
        self.rows.iter().find(|r| r.0 == what).unwrap().1
    }
}

/// Tolerances for one precision. Adam's update is the same arithmetic as
/// PyTorch's in another order, so its f64 runs agree to a few ulp (measured
/// at most 6.5e-16) but where a gradient is pure rounding noise: an
/// attention's key bias, which the softmax ignores, moves by
/// lr * noise / eps a step, different noise in lmech and PyTorch (1e-19 in
/// f64: 1e-13 after 10 steps, the tolerance 1e-12; about 1e-11 in f32,
/// where the rest agrees to 1e-6: 5e-5 after 10 steps, the tolerance
/// 5e-4). A run without bias correction is off by 2.8e-3 to 0.36.
struct Tol {
    values: f64,
    eigen: f64,
    lanczos_tol: f64,
    gd: f64,
    adam: f64,
}

const F64: Tol = Tol {
    values: 1e-10,
    eigen: 1e-9,
    lanczos_tol: 1e-10,
    gd: 1e-10,
    adam: 1e-12,
};
const F32: Tol = Tol {
    values: 2e-6,
    eigen: 1e-5,
    lanczos_tol: 1e-6,
    gd: 2e-6,
    adam: 5e-4,
};

fn model_and_data(be: &Cpu, fx: &Fixture) -> (Model<Cpu>, Tensor<Cpu>, Tensor<Cpu>) {
    let model = load_model(be, &fx.checkpoint)
        .unwrap_or_else(|e| panic!("{}: {e}", fx.checkpoint.display()));
    let x = be.from_f64(&fx.x_shape, &fx.x).unwrap();
    let t = be.from_f64(&fx.target_shape, &fx.target).unwrap();
    (model, x, t)
}

/// The first `rows` and the remaining rows of `data` laid out `[n, ...]`.
fn split_rows(be: &Cpu, shape: &[usize], data: &[f64], rows: usize) -> [Tensor<Cpu>; 2] {
    let per = data.len() / shape[0];
    let part = |lo: usize, hi: usize| {
        let mut s = shape.to_vec();
        s[0] = hi - lo;
        be.from_f64(&s, &data[lo * per..hi * per]).unwrap()
    };
    [part(0, rows), part(rows, shape[0])]
}

/// Every comparison for one fixture on backend `be` (f32 or f64).
fn compare(be: &Cpu, fx: &Fixture, tol: &Tol) -> Errors {
    let mut e = Errors { rows: Vec::new() };
    let (model, x, t) = model_and_data(be, fx);
    curvature_rows(&mut e, be, fx, tol, &model, &x, &t);
    if fx.mixes_examples {
        refusal_and_eval_rows(&mut e, be, fx, tol, &model, &x, &t);
    } else {
        per_example_rows(&mut e, be, fx, tol, &model, &x, &t);
    }
    gd_rows(&mut e, be, fx, tol);
    adam_rows(&mut e, be, fx, tol);
    e
}

/// Loss, gradient, HVP, GNVP, top eigenvalues and traces.
fn curvature_rows(
    e: &mut Errors,
    be: &Cpu,
    fx: &Fixture,
    tol: &Tol,
    model: &Model<Cpu>,
    x: &Tensor<Cpu>,
    t: &Tensor<Cpu>,
) {
    let kind = fx.loss;
    let lod = LossOnData::new(be, model, kind, vec![(x.clone(), t.clone())]).unwrap();
    assert_eq!(lod.dim(), fx.params, "{}: parameter count", fx.name);

    let (loss, grads) = lod.gradient().unwrap();
    e.add("loss", scalar_rel(loss, fx.scalar("loss")), tol.values);
    let grad = flatten(be, &grads).unwrap();
    e.add(
        "gradient",
        max_rel_err(&grad, &fx.reference("gradient")),
        tol.values,
    );
    let hv = lod.product(&fx.v, Curvature::Hessian).unwrap();
    e.add("HVP", max_rel_err(&hv, &fx.reference("hvp")), tol.values);
    let gv = lod.product(&fx.v, Curvature::GaussNewton).unwrap();
    e.add("GNVP", max_rel_err(&gv, &fx.reference("gnvp")), tol.values);

    // The same over two chunks (the uncached, accumulating path). With
    // BatchNorm each chunk has its own batch statistics, another function.
    if !fx.mixes_examples {
        let n = fx.x_shape[0];
        let [x0, x1] = split_rows(be, &fx.x_shape, &fx.x, n / 3);
        let [t0, t1] = split_rows(be, &fx.target_shape, &fx.target, n / 3);
        let chunked = LossOnData::new(be, model, kind, vec![(x0, t0), (x1, t1)]).unwrap();
        let (_, g2) = chunked.gradient().unwrap();
        let hv2 = chunked.product(&fx.v, Curvature::Hessian).unwrap();
        let chunk_err = max_rel_err(&flatten(be, &g2).unwrap(), &fx.reference("gradient"))
            .max(max_rel_err(&hv2, &fx.reference("hvp")));
        e.add("grad+HVP, 2 chunks", chunk_err, tol.values);
    }

    // Top eigenvalues: lmech's Lanczos against the dense eigvalsh.
    let want = fx.reference("top_eigenvalues");
    let mut op = |u: &[f64]| lod.product(u, Curvature::Hessian);
    let top = lanczos(
        fx.params,
        &mut op,
        &LanczosOptions {
            k: want.len(),
            max_iter: fx.params.min(300),
            tol: tol.lanczos_tol,
            seed: 0,
            start: None,
        },
    )
    .unwrap();
    e.add("top-k eigenvalues", each_rel(&top.values, &want), tol.eigen);

    // Hutchinson's average over the fixture's own probes.
    let samples: Vec<f64> = fx
        .probes
        .iter()
        .map(|z| dot(z, &lod.product(z, Curvature::Hessian).unwrap()))
        .collect();
    let hutch = samples.iter().sum::<f64>() / samples.len() as f64;
    e.add(
        "trace, stored probes",
        scalar_rel(hutch, fx.scalar("trace_hutchinson")),
        tol.values,
    );
    // The exact trace, sum of e_i^T H e_i (f64 only: P products).
    if be.dtype() == DType::F64 {
        let mut unit = vec![0.0; fx.params];
        let mut trace = 0.0;
        for i in 0..fx.params {
            unit[i] = 1.0;
            trace += lod.product(&unit, Curvature::Hessian).unwrap()[i];
            unit[i] = 0.0;
        }
        e.add(
            "trace, exact",
            scalar_rel(trace, fx.scalar("trace_exact")),
            tol.values,
        );
    }
}

/// Per-example gradient norms and the empirical NTK.
fn per_example_rows(
    e: &mut Errors,
    be: &Cpu,
    fx: &Fixture,
    tol: &Tol,
    model: &Model<Cpu>,
    x: &Tensor<Cpu>,
    t: &Tensor<Cpu>,
) {
    let ps = per_sample_norms(be, model, x, t, fx.loss).unwrap();
    e.add(
        "per-sample |g_i|^2",
        max_rel_err(&ps.total, &fx.reference("per_sample_sq_norms")),
        tol.values,
    );

    let ntk = empirical_ntk(be, model, x).unwrap();
    let per_output = fx.r["ntk_per_output"].as_array().unwrap();
    assert_eq!(ntk.per_output.len(), per_output.len());
    let worst = ntk
        .per_output
        .iter()
        .zip(per_output)
        .map(|(a, b)| max_rel_err(a, &floats(b)))
        .fold(0.0, f64::max);
    e.add("NTK per output", worst, tol.values);
    e.add(
        "NTK trace",
        max_rel_err(&ntk.trace, &fx.reference("ntk_trace")),
        tol.values,
    );
}

/// A BatchNorm model: per-example norms and the NTK are refused, naming the
/// layer; eval-mode outputs use the checkpoint's running statistics.
fn refusal_and_eval_rows(
    e: &mut Errors,
    be: &Cpu,
    fx: &Fixture,
    tol: &Tol,
    model: &Model<Cpu>,
    x: &Tensor<Cpu>,
    t: &Tensor<Cpu>,
) {
    let refusals = [
        per_sample_norms(be, model, x, t, fx.loss).err(),
        empirical_ntk(be, model, x).err(),
    ];
    for err in refusals {
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("model.layers[") && msg.contains("BatchNorm"),
            "{}: per-example quantities not refused: {msg:?}",
            fx.name
        );
    }
    let out = be.to_f64(&model.predict(be, x).unwrap()).unwrap();
    e.add(
        "eval-mode outputs",
        max_rel_err(&out, &fx.reference("eval_outputs")),
        tol.values,
    );
}

/// The losses before every update and after the last, the final flat
/// parameters and the running statistics of `steps` full-batch updates by
/// `opt`, in the train loop's order (a step's loss pass, the update, then
/// BatchNorm's running statistics).
fn replay(
    be: &Cpu,
    fx: &Fixture,
    model: &mut Model<Cpu>,
    opt: &mut Optimizer<Cpu>,
    steps: usize,
    x: &Tensor<Cpu>,
    t: &Tensor<Cpu>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut losses = Vec::new();
    for step in 0..=steps {
        let pass = model.loss_pass(be, x, t, fx.loss, step < steps).unwrap();
        losses.push(be.to_f64(&pass.loss).unwrap()[0]);
        if step < steps {
            opt.step(be, model.params_mut(), &pass.grads).unwrap();
            model.track_batch_stats(be, &pass.batch_stats).unwrap();
        }
    }
    let params = flatten(be, &model.params().into_iter().cloned().collect::<Vec<_>>()).unwrap();
    let buffers = flatten(
        be,
        &model.buffers().into_iter().cloned().collect::<Vec<_>>(),
    )
    .unwrap();
    (losses, params, buffers)
}

/// Row names of one optimizer's comparison: lr scales, losses, final
/// parameters, running statistics.
type RunRows = [&'static str; 4];

/// `replay` from the checkpoint's weights with the optimizer `optimizer`
/// builds for the model, against the fixture's run `key` (`reference.gd`,
/// `.adam`, ...).
fn run_rows(
    e: &mut Errors,
    be: &Cpu,
    fx: &Fixture,
    key: &str,
    rows: RunRows,
    tol: f64,
    optimizer: impl FnOnce(&Value, &Model<Cpu>) -> Optimizer<Cpu>,
) {
    let run = &fx.r[key];
    assert!(
        run.is_object(),
        "{}: no reference.{key}; regenerate it with bench/pytorch/make_parity_fixtures.sh {}",
        fx.name,
        fx.name
    );
    let (mut model, x, t) = model_and_data(be, fx);
    let mut opt = optimizer(run, &model);
    let scales = model.lr_scales(opt.hyper.kind.family());
    e.add(
        rows[0],
        max_rel_err(&scales, &floats(&run["lr_scales"])),
        1e-15,
    );
    let steps = run["steps"].as_u64().unwrap() as usize;
    let (losses, params, buffers) = replay(be, fx, &mut model, &mut opt, steps, &x, &t);
    e.add(rows[1], each_rel(&losses, &floats(&run["losses"])), tol);
    e.add(
        rows[2],
        max_rel_err(&params, &floats(&run["final_params"])),
        tol,
    );
    if fx.mixes_examples {
        e.add(
            rows[3],
            max_rel_err(&buffers, &floats(&run["final_buffers"])),
            tol,
        );
    }
}

/// Full-batch GD with the parametrization's learning-rate scales (and
/// BatchNorm's running statistics moved by each step).
fn gd_rows(e: &mut Errors, be: &Cpu, fx: &Fixture, tol: &Tol) {
    let rows = [
        "SGD lr scales",
        "GD losses",
        "GD final params",
        "GD running stats",
    ];
    run_rows(e, be, fx, "gd", rows, tol.gd, |run, model| {
        Optimizer::new(
            be,
            OptimHyper::new(OptimizerKind::Gd),
            Schedule::Constant,
            vec![run["lr"].as_f64().unwrap()],
            &model.params(),
            model.lr_scales(OptimFamily::Sgd),
        )
        .unwrap()
    });
}

/// The Adam runs every fixture records, with their rows.
const ADAM_RUNS: [(&str, RunRows); 2] = [
    (
        "adam",
        [
            "Adam lr scales",
            "Adam losses",
            "Adam final params",
            "Adam running stats",
        ],
    ),
    (
        "adamw",
        [
            "AdamW lr scales",
            "AdamW losses",
            "AdamW final params",
            "AdamW running stats",
        ],
    ),
];

/// lmech's optimizer for a recorded run, built as `lmech train` builds it:
/// the fixture's `optim` table (lmech's [optim] keys) resolved by the
/// config into the optimizer's hyperparameters and schedule, the model's
/// learning-rate scales for the optimizer's family.
fn configured_optimizer(be: &Cpu, run: &Value, model: &Model<Cpu>) -> Optimizer<Cpu> {
    let mut cfg = Config {
        optim: serde_json::from_value(run["optim"].clone())
            .unwrap_or_else(|e| panic!("{}: not an [optim] table: {e}", run["optim"])),
        ..Config::default()
    };
    cfg.train.steps = run["steps"].as_u64().unwrap();
    let res = cfg.resolve().unwrap();
    Optimizer::new(
        be,
        res.optim.clone(),
        res.schedule,
        vec![cfg.optim.lr],
        &model.params(),
        model.lr_scales(res.optim.kind.family()),
    )
    .unwrap()
}

/// torch.optim.Adam and AdamW from the checkpoint's weights against lmech's
/// Adam and AdamW with the same [optim] settings.
fn adam_rows(e: &mut Errors, be: &Cpu, fx: &Fixture, tol: &Tol) {
    for (key, rows) in ADAM_RUNS {
        run_rows(e, be, fx, key, rows, tol.adam, |run, model| {
            configured_optimizer(be, run, model)
        });
    }
}

#[test]
fn lmech_matches_pytorch_on_every_fixture() {
    let be64 = Cpu::f64();
    let be32 = Cpu::f32();
    let mut failures = Vec::new();
    for path in fixtures() {
        let fx = Fixture::load(&path);
        let e64 = compare(&be64, &fx, &F64);
        let e32 = compare(&be32, &fx, &F32);
        println!(
            "\n{} ({} params, {} examples, loss {})",
            fx.name,
            fx.params,
            fx.x_shape[0],
            fx.loss.name()
        );
        println!(
            "  {:<22} {:>10} {:>8} {:>10} {:>8}",
            "relative error", "f64", "(tol)", "f32", "(tol)"
        );
        for (what, err, tol) in &e64.rows {
            let (f32_err, f32_tol) = e32
                .rows
                .iter()
                .find(|r| r.0 == *what)
                .map(|r| (format!("{:.1e}", r.1), format!("{:.0e}", r.2)))
                .unwrap_or_else(|| ("-".into(), "".into()));
            println!("  {what:<22} {err:>10.1e} {tol:>8.0e} {f32_err:>10} {f32_tol:>8}");
        }
        for (tag, e) in [("f64", &e64), ("f32", &e32)] {
            for f in e.failures() {
                failures.push(format!("{} ({tag}) {f}", fx.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "lmech and PyTorch disagree:\n  {}",
        failures.join("\n  ")
    );
}

/// The comparison is sharp enough to see a small error on every fixture: a
/// 1e-7 relative change of the first or the last weight layer's multiplier,
/// or of the GD, Adam or AdamW learning rate, is caught; with BatchNorm, of
/// a running variance. (A BatchNorm model's first multiplier feeds a BatchNorm, which
/// undoes any scale of its input but for eps: nothing to see there.)
#[test]
fn parity_detects_small_perturbations() {
    let be = Cpu::f64();
    for path in fixtures() {
        let fx = Fixture::load(&path);
        let layers: &[&str] = if fx.mixes_examples {
            &["last"]
        } else {
            &["first", "last"]
        };
        for &layer in layers {
            let (mut model, x, t) = model_and_data(&be, &fx);
            let mut scales = model.layer_scales_mut();
            let at = if layer == "first" {
                0
            } else {
                scales.len() - 1
            };
            scales[at].multiplier *= 1.0 + 1e-7;
            let lod = LossOnData::new(&be, &model, fx.loss, vec![(x, t)]).unwrap();
            let (_, g) = lod.gradient().unwrap();
            let err = max_rel_err(&flatten(&be, &g).unwrap(), &fx.reference("gradient"));
            assert!(
                err > 10.0 * F64.values,
                "{}: {layer} multiplier: gradient error {err:.1e}",
                fx.name
            );
        }

        if fx.mixes_examples {
            let (mut model, x, _) = model_and_data(&be, &fx);
            let var = model.buffers_mut().into_iter().nth(1).unwrap();
            let mut values = be.to_f64(var).unwrap();
            values[0] *= 1.0 + 1e-7;
            *var = be.from_f64(var.shape(), &values).unwrap();
            let out = be.to_f64(&model.predict(&be, &x).unwrap()).unwrap();
            let err = max_rel_err(&out, &fx.reference("eval_outputs"));
            assert!(
                err > 10.0 * F64.values,
                "{}: running variance: eval-mode error {err:.1e}",
                fx.name
            );
        }

        let mut lr_fx = Fixture::load(&path);
        let lr = lr_fx.r["gd"]["lr"].as_f64().unwrap();
        lr_fx.r["gd"]["lr"] = Value::from(lr * (1.0 + 1e-7));
        for (key, _) in ADAM_RUNS {
            let lr = lr_fx.r[key]["optim"]["lr"].as_f64().unwrap();
            lr_fx.r[key]["optim"]["lr"] = Value::from(lr * (1.0 + 1e-7));
        }
        let e = compare(&be, &lr_fx, &F64);
        assert!(
            e.get("GD final params") > 10.0 * F64.gd,
            "{}: GD error",
            fx.name
        );
        for (key, rows) in ADAM_RUNS {
            assert!(
                e.get(rows[2]) > 10.0 * F64.adam,
                "{}: {key} error {:.1e}",
                fx.name,
                e.get(rows[2])
            );
        }
        assert!(e.get("gradient") <= F64.values);
    }
}
