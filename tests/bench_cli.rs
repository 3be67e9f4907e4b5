//! `lmech-bench --arch transformer`, the lmech side of bench/compare.sh's
//! transformer rows: the model it builds is the (the preset with
//! its defaults: pre-norm LayerNorm, 4 heads, an MLP of 4 width, a readout
//! at every position; its parameter count in closed form), every workload
//! the comparison runs on it works on next-token labels, `--save-model`
//! writes that model as a checkpoint lmech reads back, and bad options fail
//! with a message naming the option. Tiny sizes: each call takes
//! milliseconds.

mod common;

use common::temp_dir;
use lmech::nn::checkpoint::load_model;
use lmech::run::load_checkpoint;
use lmech::Cpu;
use serde_json::Value as Json;
use std::process::Command;

const WIDTH: usize = 8;
const DEPTH: usize = 2;
const TOKENS: usize = 5;
const VOCAB: usize = 7;

/// Runs lmech-bench on the tiny transformer with `extra` options; its exit
/// status and its JSON line.
fn bench(workload: &str, extra: &[&str]) -> (bool, Json) {
    let size = [
        ("--width", WIDTH),
        ("--depth", DEPTH),
        ("--input", TOKENS),
        ("--vocab", VOCAB),
        ("--batch", 3),
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lmech-bench"));
    cmd.args(["--workload", workload, "--arch", "transformer"]);
    cmd.args(["--threads", "1", "--reps", "1", "--warmup", "0"]);
    cmd.args(["--steps", "2", "--max-iter", "20", "--probes", "2"]);
    // An option in `extra` replaces the size's (clap takes each once).
    for (name, value) in size.iter().filter(|(name, _)| !extra.contains(name)) {
        cmd.args([name.to_string(), value.to_string()]);
    }
    let out = cmd.args(extra).output().expect("cannot start lmech-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no JSON line; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.success(), serde_json::from_str(line).unwrap())
}

/// The preset's parameters: embedding and positions, per block q, k, v, o
/// (d x d and a bias each), the MLP d -> 4d -> d with biases and two
/// LayerNorms (gain and shift), the final LayerNorm, the readout d -> vocab.
fn transformer_params(d: usize, depth: usize, t: usize, vocab: usize) -> usize {
    let block = 4 * (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d;
    (vocab + t) * d + depth * block + 2 * d + d * vocab + vocab
}

#[test]
fn every_compared_workload_runs_on_the_transformer() {
    let want = transformer_params(WIDTH, DEPTH, TOKENS, VOCAB);
    for workload in [
        "train_step",
        "forward_backward",
        "hvp",
        "hvp_warm",
        "per_sample_norms",
        "sharpness_power",
        "sharpness_lanczos",
        "hutchinson",
        "gd_run",
    ] {
        let (ok, line) = bench(workload, &[]);
        assert!(ok, "{workload}: {line}");
        assert_eq!(line["workload"], workload);
        assert_eq!(line["params"], want, "{workload}");
        assert_eq!(line["arch"], "transformer");
        assert_eq!(line["norm"], "layer");
        assert_eq!(line["vocab"], VOCAB);
        let value = line["value"].as_f64().unwrap();
        assert!(value.is_finite(), "{workload}: {line}");
        if workload == "forward_backward" {
            // Small logits at init: the loss of a near-uniform guess.
            let uniform = (VOCAB as f64).ln();
            assert!(
                (value - uniform).abs() < 0.5,
                "loss {value} at init, ln V {uniform}"
            );
        }
    }
}

/// `lanczos_basis` (Lanczos on a diagonal operator of the model's size, no
/// PyTorch twin) runs exactly `--max-iter` steps, and the iterative
/// workloads split their time between the products and the rest.
#[test]
fn lanczos_basis_runs_its_steps_and_splits_the_time() {
    let (ok, line) = bench("lanczos_basis", &[]);
    assert!(ok, "{line}");
    assert_eq!(line["hvps"], 20, "{line}");
    assert_eq!(
        line["converged"], false,
        "tolerance 0 never converges: {line}"
    );
    for workload in ["lanczos_basis", "sharpness_lanczos", "sharpness_power"] {
        let (ok, line) = bench(workload, &[]);
        assert!(ok, "{line}");
        let (op, outside) = (&line["op_ms"], &line["outside_op_ms"]);
        let total = line["times_ms"][0].as_f64().unwrap();
        let split = op.as_f64().unwrap() + outside.as_f64().unwrap();
        assert!((split - total).abs() < 1e-6 * total.max(1.0), "{line}");
        assert!(op.as_f64().unwrap() > 0.0, "{workload}: {line}");
    }
}

#[test]
fn save_model_writes_the_benchmarked_model() {
    let dir = temp_dir("bench-save");
    let path = dir.join("model.safetensors");
    let (ok, line) = bench(
        "forward_backward",
        &["--save-model", path.to_str().unwrap()],
    );
    assert!(ok, "{line}");
    let model = load_model(&Cpu::f32(), &path).unwrap();
    assert_eq!(model.param_count() as u64, line["params"].as_u64().unwrap());
    let tensors = load_checkpoint(&path).unwrap().0;
    let shape = |name: &str| {
        tensors
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.shape.clone())
            .unwrap_or_else(|| panic!("no tensor {name}"))
    };
    assert_eq!(shape("layers.0.weight"), [VOCAB, WIDTH]);
    assert_eq!(shape("layers.1.weight"), [TOKENS, WIDTH]);
    assert_eq!(shape("layers.2.body.1.q.weight"), [WIDTH, WIDTH]);
    assert_eq!(shape("layers.3.body.1.weight"), [4 * WIDTH, WIDTH, 1]);
    // The readout after the final norm: 2 + 2 depth layers before them.
    let last = 2 + 2 * DEPTH + 1;
    assert_eq!(shape(&format!("layers.{last}.weight")), [VOCAB, WIDTH, 1]);
}

#[test]
fn bad_transformer_options_name_the_option() {
    for (extra, named) in [
        (&["--width", "6"][..], "--width"),
        (&["--norm", "batch"][..], "--norm"),
        (&["--input", "0"][..], "--input"),
        (&["--vocab", "1"][..], "--vocab"),
    ] {
        let (ok, line) = bench("hvp", extra);
        assert!(!ok, "{extra:?} was accepted: {line}");
        let error = line["error"].as_str().unwrap();
        assert!(error.contains(named), "{extra:?}: {error}");
    }
    let (ok, line) = bench("ntk", &[]);
    assert!(!ok);
    assert!(
        line["error"].as_str().unwrap().contains("T*vocab"),
        "{line}"
    );
}

/// `--split`: every timed call's time is accounted for by the profiler's
/// parts and `host`, the parts a workload uses are there (matrix products,
/// pointwise kernels, the loss, the optimizer of a training step), and
/// without `--split` there is no split.
#[test]
fn split_accounts_for_the_time_of_the_timed_calls() {
    let (ok, line) = bench("train_step", &["--split"]);
    assert!(ok, "{line}");
    let split = line["split"].as_object().expect("no split");
    let ms = |k: &str| split.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    for part in ["gemm_ms", "pointwise_ms", "loss_ms", "optimizer_ms"] {
        assert!(ms(part) > 0.0, "{part} missing: {split:?}");
    }
    let times: Vec<f64> = line["times_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let parts: f64 = split
        .iter()
        .filter(|(k, _)| k.ends_with("_ms") && !["user_ms", "sys_ms"].contains(&k.as_str()))
        .map(|(_, v)| v.as_f64().unwrap())
        .sum();
    assert!(
        (parts - mean).abs() <= 1e-6 * mean.max(1.0) + 1e-9,
        "parts {parts} ms vs mean call {mean} ms: {split:?}"
    );
    assert!(
        ms("ops") >= 10.0,
        "a training step is more than 10 ops: {split:?}"
    );
    let (_, plain) = bench("train_step", &[]);
    assert!(plain.get("split").is_none());
}

/// `--ensemble E`: the packed training step and the step with the members
/// apart (`--members-apart`) start from the same E models, so the first
/// member's loss agrees; the other workloads refuse an ensemble.
#[test]
fn an_ensemble_steps_packed_or_with_its_members_apart() {
    let (ok, packed) = bench("train_step", &["--ensemble", "3"]);
    assert!(ok, "{packed}");
    let (ok, apart) = bench("train_step", &["--ensemble", "3", "--members-apart"]);
    assert!(ok, "{apart}");
    let (a, b) = (
        packed["value"].as_f64().unwrap(),
        apart["value"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 1e-5 * a.abs(), "packed {a}, apart {b}");
    assert_eq!(packed["params"], apart["params"]);
    let (ok, line) = bench("hvp", &["--ensemble", "2"]);
    assert!(!ok);
    assert!(
        line["error"].as_str().unwrap().contains("--ensemble"),
        "{line}"
    );
    let (ok, line) = bench("forward_backward", &["--members-apart"]);
    assert!(!ok);
    assert!(
        line["error"].as_str().unwrap().contains("--members-apart"),
        "{line}"
    );
}
