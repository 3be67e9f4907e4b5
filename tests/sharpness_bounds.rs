//! The sharpness observer's claims, checked against tight solves at the same
//! weights: along whole edge-of-stability runs (where the top eigenvalues
//! oscillate and cross), every `sharpness` and `hessian_top_k.{i}` marked
//! converged must lie within its stated `sharpness_error_bound` of the
//! eigenvalue a cold Lanczos solve at tolerance 1e-7 finds from the
//! checkpoint of that step (`train.checkpoint_at`). The observer runs with
//! its defaults (warm starts, tol 1e-3, at most 20 HVPs) except k = 2.

use lmech::backend::device::Device;
use lmech::config::Config;
use lmech::curvature::LossOnData;
use lmech::data::{self, Targets};
use lmech::linalg::{lanczos, LanczosOptions};
use lmech::nn::checkpoint::load_model;
use lmech::nn::loss::LossKind;
use lmech::tape::Curvature;
use lmech::train::{train, RunOptions};
use lmech::{Backend, Cpu};
use std::path::Path;

mod common;

/// Measure every this many steps, and keep the weights of each measurement.
const EVERY: u64 = 5;

fn config(data: &str, lr: f64, steps: u64) -> Config {
    config_in("f64", data, lr, steps)
}

fn config_in(dtype: &str, data: &str, lr: f64, steps: u64) -> Config {
    let measured: Vec<String> = (0..=steps / EVERY)
        .map(|i| (i * EVERY).to_string())
        .collect();
    let text = format!(
        r#"
dtype = "{dtype}"
[model]
width = 16
depth = 3
activation = "tanh"
[data]
{data}
[optim]
name = "gd"
lr = {lr}
[train]
steps = {steps}
loss = "mse"
log_every = {EVERY}
checkpoint_at = [{}]
[observe]
every = {EVERY}
[observe.sharpness]
k = 2
"#,
        measured.join(", "),
        dtype = dtype,
    );
    Config::from_toml_str(&text, &[]).unwrap()
}

/// The top two Hessian eigenvalues of the training loss at a checkpoint,
/// and their relative error bound.
fn tight_top2(cfg: &Config, checkpoint: &Path) -> (Vec<f64>, f64) {
    let be = Cpu::f64();
    let model = load_model(&be, checkpoint).unwrap();
    let split = data::load(&cfg.data, cfg.data_seed()).unwrap();
    let ds = &split.train;
    let Targets::Values { y, k } = &ds.y else {
        panic!("mse needs float targets")
    };
    let x = be.from_f64(&[ds.n, ds.d], &ds.x).unwrap();
    let t = be.from_f64(&[ds.n, *k], y).unwrap();
    let lod = LossOnData::new(&be, &model, LossKind::Mse, vec![(x, t)]).unwrap();
    let mut op = |v: &[f64]| lod.product(v, Curvature::Hessian);
    let opts = LanczosOptions {
        k: 3,
        max_iter: 200,
        tol: 1e-7,
        seed: 12345,
        start: None,
    };
    let r = lanczos(lod.dim(), &mut op, &opts).unwrap();
    assert!(r.converged, "the reference solve did not converge");
    (r.values[..2].to_vec(), r.bounds[1])
}

/// Trains `cfg` and checks every converged measurement against the tight
/// solve; returns how many measurements were converged.
fn check_run(label: &str, cfg: &Config) -> usize {
    let tmp = common::temp_dir(label);
    let dir = tmp.join("run");
    let report = train(
        cfg,
        &RunOptions {
            out: dir.clone(),
            device: Device::Cpu,
            progress: false,
        },
    )
    .unwrap();
    assert!(!report.diverged(), "{label} diverged");
    let mut converged = 0;
    let mut failures = Vec::new();
    for rec in report
        .records
        .iter()
        .filter(|r| r.get("sharpness").is_some())
    {
        let get = |k: &str| rec.get(k).and_then(|v| v.as_f64()).unwrap();
        let step = get("step") as u64;
        if get("sharpness_converged") != 1.0 {
            continue;
        }
        converged += 1;
        let bound = get("sharpness_error_bound");
        let ckpt = dir.join(format!("checkpoints/step_{step}.safetensors"));
        let (exact, exact_bound) = tight_top2(cfg, &ckpt);
        for (i, lambda) in exact.iter().enumerate() {
            let theta = get(&format!("hessian_top_k.{i}"));
            // The reference is itself known to within its own bound.
            if (lambda - theta).abs() > bound * theta.abs() + exact_bound * lambda.abs() {
                failures.push(format!(
                    "step {step}: hessian_top_k.{i} = {theta} +- {:.3e}, exact {lambda}",
                    bound * theta.abs()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{label}: {} converged values outside their bounds:\n{}",
        failures.len(),
        failures.join("\n")
    );
    converged
}

const DIGITS: &str = "source = \"digits\"\nscale = 0.0625\none_hot = true\nn_train = 200";

const TEACHER: &str = "source = \"teacher_student\"\nn = 200\ninput_dim = 12\noutput_dim = 3";

#[test]
fn converged_sharpness_on_digits_lies_within_its_bound_along_eos_runs() {
    for lr in [0.2, 0.6] {
        let n = check_run(&format!("bounds-digits-{lr}"), &config(DIGITS, lr, 300));
        assert!(n >= 30, "lr {lr}: only {n} of 61 measurements converged");
    }
}

#[test]
fn converged_sharpness_on_a_teacher_student_task_lies_within_its_bound() {
    for lr in [0.6, 0.8] {
        let n = check_run(&format!("bounds-teacher-{lr}"), &config(TEACHER, lr, 300));
        assert!(n >= 30, "lr {lr}: only {n} of 61 measurements converged");
    }
}

#[test]
fn converged_sharpness_of_an_f32_run_lies_within_its_bound() {
    // An f32 model's products are computed in f32, so the observer keeps
    // its Lanczos basis in f32 (`BasisStorage::for_operator`); its bounds
    // must still hold against the f64 solve at the saved weights.
    let n = check_run("bounds-digits-f32", &config_in("f32", DIGITS, 0.6, 300));
    assert!(n >= 30, "only {n} of 61 measurements converged");
}
