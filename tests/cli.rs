//! The `lmech` command line end to end: the example configs run and leave a
//! complete run directory, the checkpoint rebuilds the trained function from
//! its metadata alone, bad input fails with a message naming the culprit
//! (never a panic), divergence is recorded, finished runs are not
//! overwritten, and results do not depend on the number of threads.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{npy_bytes, temp_dir};
use lmech::config::Config;
use lmech::data::Targets;
use lmech::nn::activation::Activation;
use lmech::run::{load_checkpoint, NamedTensor, TensorData};
use serde_json::Value as Json;

// ---------------------------------------------------------------- helpers

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn lmech(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmech"))
        .args(args)
        .output()
        .expect("cannot start the lmech binary")
}

/// `lmech [global...] train CONFIG --out OUT --quiet --set S...`.
fn train_with(global: &[&str], config: &Path, out: &Path, sets: &[&str]) -> Output {
    let mut args: Vec<String> = global.iter().map(|s| s.to_string()).collect();
    args.push("train".into());
    args.push(config.display().to_string());
    args.push("--out".into());
    args.push(out.display().to_string());
    args.push("--quiet".into());
    for s in sets {
        args.push("--set".into());
        args.push(s.to_string());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    lmech(&refs)
}

fn train(config: &Path, out: &Path, sets: &[&str]) -> Output {
    train_with(&[], config, out, sets)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Panics with the process output unless it exited 0.
fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "lmech failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("panicked"));
}

/// The run must fail cleanly: non-zero exit, no panic, and a message on
/// stderr that mentions every one of `mentions`.
fn assert_clean_failure(out: &Output, mentions: &[&str]) {
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure, got {}:\nstdout: {}\nstderr: {stderr}",
        out.status,
        text(&out.stdout)
    );
    assert_ne!(
        out.status.code(),
        Some(101),
        "exit code 101 is a panic:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "lmech panicked instead of reporting an error:\n{stderr}"
    );
    assert!(stderr.contains("error"), "no error message:\n{stderr}");
    for m in mentions {
        assert!(
            stderr.contains(m),
            "stderr does not mention {m:?}:\n{stderr}"
        );
    }
}

fn read_jsonl(path: &Path) -> Vec<serde_json::Map<String, Json>> {
    let body = fs::read_to_string(path).unwrap();
    assert!(
        body.ends_with('\n'),
        "{} is not newline-terminated",
        path.display()
    );
    body.lines()
        .enumerate()
        .map(|(i, l)| match serde_json::from_str::<Json>(l) {
            Ok(Json::Object(m)) => m,
            other => panic!(
                "{} line {}: not a JSON object: {other:?}",
                path.display(),
                i + 1
            ),
        })
        .collect()
}

fn read_json(path: &Path) -> serde_json::Map<String, Json> {
    let body = fs::read_to_string(path).unwrap();
    match serde_json::from_str::<Json>(&body) {
        Ok(Json::Object(m)) => m,
        other => panic!("{}: not a JSON object: {other:?}", path.display()),
    }
}

fn num(v: &Json) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

/// What the metrics of a run should hold.
struct Expect {
    steps: u64,
    /// Records carry `train_acc` / `test_acc` where they are evaluated.
    accuracy: bool,
    /// The run has a test set.
    test: bool,
}

/// Checks every file of a finished run directory; returns the metrics.
fn check_run_dir(dir: &Path, expect: &Expect) -> Vec<serde_json::Map<String, Json>> {
    for f in [
        "config.toml",
        "metrics.jsonl",
        "metrics.csv",
        "summary.json",
        "model.safetensors",
        "loss.svg",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing from {}", dir.display());
    }

    // config.toml is TOML and reads back as a config.
    let cfg_text = fs::read_to_string(dir.join("config.toml")).unwrap();
    let table: toml::Table = toml::from_str(&cfg_text).expect("config.toml is not TOML");
    for section in ["model", "data", "optim", "train"] {
        assert!(
            table.get(section).is_some_and(|v| v.is_table()),
            "[{section}] missing"
        );
    }
    let cfg = Config::load(&dir.join("config.toml"), &[]).unwrap();
    assert_eq!(cfg.train.steps, expect.steps);

    // metrics.jsonl: one object per logged step, in order, the last at the
    // final step.
    let records = read_jsonl(&dir.join("metrics.jsonl"));
    assert!(records.len() >= 2, "only {} records", records.len());
    let mut prev = None;
    for r in &records {
        let step = r["step"].as_u64().expect("step is an integer");
        if let Some(p) = prev {
            assert!(step > p, "steps not increasing: {p} then {step}");
        }
        prev = Some(step);
        let loss = num(&r["loss"]);
        assert!(loss.is_finite() && loss >= 0.0, "loss {loss}");
        // With eval_every = 0 every record is evaluated; otherwise at least
        // the first and the last are.
        let evaluated = r.contains_key("test_loss") || !expect.test;
        if expect.accuracy && evaluated {
            let a = num(&r["train_acc"]);
            assert!((0.0..=1.0).contains(&a), "train_acc {a}");
        }
        if !expect.accuracy {
            assert!(!r.contains_key("train_acc") && !r.contains_key("test_acc"));
        }
        if expect.test && r.contains_key("test_loss") {
            assert!(num(&r["test_loss"]).is_finite());
            if expect.accuracy {
                let a = num(&r["test_acc"]);
                assert!((0.0..=1.0).contains(&a), "test_acc {a}");
            }
        }
        if !expect.test {
            assert!(!r.contains_key("test_loss") && !r.contains_key("test_acc"));
        }
    }
    let (first, last) = (&records[0], &records[records.len() - 1]);
    assert_eq!(first["step"], 0);
    assert_eq!(last["step"].as_u64(), Some(expect.steps));
    if expect.test {
        assert!(first.contains_key("test_loss") && last.contains_key("test_loss"));
    }
    if expect.accuracy {
        assert!(first.contains_key("train_acc") && last.contains_key("train_acc"));
    }

    // metrics.csv: a header starting with `step`, one row per record, every
    // row as wide as the header, and the same steps and losses.
    let csv = fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("empty metrics.csv")
        .split(',')
        .collect();
    assert_eq!(header[0], "step");
    assert!(header.contains(&"loss"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), records.len(), "csv rows vs jsonl lines");
    let loss_col = header.iter().position(|h| *h == "loss").unwrap();
    let jsonl = fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    for ((row, rec), line) in rows.iter().zip(&records).zip(jsonl.lines()) {
        assert_eq!(row.len(), header.len());
        assert_eq!(
            row[0].parse::<u64>().unwrap(),
            rec["step"].as_u64().unwrap()
        );
        assert_eq!(
            row[loss_col].parse::<f64>().unwrap().to_bits(),
            raw_number(line, "loss").to_bits(),
            "csv {row:?} vs jsonl {line}"
        );
    }

    // summary.json: flat hyperparameters, the final metrics.
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["status"], "finished");
    for key in [
        "lr",
        "width",
        "depth",
        "activation",
        "parametrization",
        "optimizer",
        "seed",
    ] {
        assert!(summary.contains_key(key), "summary.json lacks `{key}`");
    }
    assert_eq!(num(&summary["lr"]), cfg.optim.lr);
    assert_eq!(summary["width"].as_u64(), Some(cfg.model.width as u64));
    assert_eq!(summary["depth"].as_u64(), Some(cfg.model.depth as u64));
    assert_eq!(summary["activation"], cfg.model.activation.as_str());
    assert_eq!(
        summary["parametrization"],
        cfg.model.parametrization.as_str()
    );
    assert_eq!(summary["optimizer"], cfg.optim.name.as_str());
    assert_eq!(summary["seed"].as_u64(), Some(cfg.seed));
    let fin = summary["final"].as_object().expect("`final` is an object");
    assert_eq!(fin["step"].as_u64(), Some(expect.steps));
    assert_eq!(fin["loss"], last["loss"]);

    // model.safetensors: PyTorch names and shapes, and the metadata needed
    // to rebuild the function.
    let (tensors, meta) = load_checkpoint(&dir.join("model.safetensors")).unwrap();
    let net = HostMlp::new(&tensors, &meta);
    assert_eq!(net.sizes.len(), cfg.model.depth + 1);
    assert!(net.sizes[1..net.sizes.len() - 1]
        .iter()
        .all(|&w| w == cfg.model.width));
    assert_eq!(meta["activation"], cfg.model.activation);
    assert_eq!(meta["parametrization"], cfg.model.parametrization);
    assert_eq!(
        tensors.len(),
        2 * cfg.model.depth,
        "a weight and a bias per layer"
    );

    let svg = fs::read_to_string(dir.join("loss.svg")).unwrap();
    assert!(svg.contains("<svg"), "loss.svg is not an SVG");
    records
}

/// The number `key` of a JSON line, read from its text with Rust's exact
/// float parser (serde_json's default parser may be off by an ulp).
fn raw_number(line: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let start = line
        .find(&pat)
        .unwrap_or_else(|| panic!("no `{key}` in {line}"))
        + pat.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    let raw = rest[..end].trim_matches('"');
    raw.parse()
        .unwrap_or_else(|e| panic!("`{key}` = {raw:?} in {line}: {e}"))
}

/// The line of `metrics.jsonl` at `step`.
fn jsonl_line(dir: &Path, step: u64) -> String {
    let body = fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let prefix = format!("{{\"step\":{step},");
    body.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no record at step {step}"))
        .to_string()
}

fn loss_at(records: &[serde_json::Map<String, Json>], step: u64, key: &str) -> f64 {
    let r = records
        .iter()
        .find(|r| r["step"].as_u64() == Some(step))
        .unwrap_or_else(|| panic!("no record at step {step}"));
    num(&r[key])
}

// ------------------------------------------------- the MLP, rebuilt on the host

fn tensor_f64(t: &NamedTensor) -> Vec<f64> {
    match &t.data {
        TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::F64(v) => v.clone(),
    }
}

/// An MLP rebuilt from a checkpoint and its metadata alone:
/// `z = multiplier[l] * h W^T + bias_multiplier[l] * b`, the activation
/// between layers and none after the last.
struct HostMlp {
    sizes: Vec<usize>,
    activation: Activation,
    multipliers: Vec<f64>,
    bias_multipliers: Vec<f64>,
    weights: Vec<Vec<f64>>,
    biases: Vec<Vec<f64>>,
}

impl HostMlp {
    /// Also checks names, shapes and metadata keys.
    fn new(tensors: &[NamedTensor], meta: &BTreeMap<String, String>) -> Self {
        for key in [
            "layer_sizes",
            "activation",
            "parametrization",
            "multipliers",
            "bias_multipliers",
        ] {
            assert!(meta.contains_key(key), "checkpoint metadata lacks `{key}`");
        }
        let sizes: Vec<usize> = serde_json::from_str(&meta["layer_sizes"]).unwrap();
        let multipliers: Vec<f64> = serde_json::from_str(&meta["multipliers"]).unwrap();
        let bias_multipliers: Vec<f64> = serde_json::from_str(&meta["bias_multipliers"]).unwrap();
        let layers = sizes.len() - 1;
        assert!(layers >= 1);
        assert_eq!(multipliers.len(), layers);
        assert_eq!(bias_multipliers.len(), layers);
        let activation = Activation::parse("activation", &meta["activation"]).unwrap();
        let find = |name: &str| {
            tensors
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| panic!("checkpoint has no tensor `{name}`"))
        };
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for l in 0..layers {
            let w = find(&format!("layers.{l}.weight"));
            assert_eq!(
                w.shape,
                vec![sizes[l + 1], sizes[l]],
                "layers.{l}.weight [out, in]"
            );
            let b = find(&format!("layers.{l}.bias"));
            assert_eq!(b.shape, vec![sizes[l + 1]], "layers.{l}.bias");
            weights.push(tensor_f64(w));
            biases.push(tensor_f64(b));
        }
        HostMlp {
            sizes,
            activation,
            multipliers,
            bias_multipliers,
            weights,
            biases,
        }
    }

    /// Outputs `[n, out]` for row-major inputs `[n, d]`.
    fn forward(&self, x: &[f64], n: usize) -> Vec<f64> {
        let layers = self.sizes.len() - 1;
        let mut h = x.to_vec();
        for l in 0..layers {
            let (fan_in, fan_out) = (self.sizes[l], self.sizes[l + 1]);
            assert_eq!(h.len(), n * fan_in);
            let w = &self.weights[l];
            let mut z = vec![0.0; n * fan_out];
            for i in 0..n {
                let row = &h[i * fan_in..(i + 1) * fan_in];
                for o in 0..fan_out {
                    let wr = &w[o * fan_in..(o + 1) * fan_in];
                    let dot: f64 = row.iter().zip(wr).map(|(a, b)| a * b).sum();
                    let mut v =
                        self.multipliers[l] * dot + self.bias_multipliers[l] * self.biases[l][o];
                    if l + 1 < layers {
                        v = self.activation.apply(v);
                    }
                    z[i * fan_out + o] = v;
                }
            }
            h = z;
        }
        h
    }
}

/// Mean loss (xent on labels, or `0.5 * ||f - y||^2` for mse) and, for
/// labels, the accuracy.
fn host_loss(f: &[f64], y: &Targets, n: usize, kind: &str) -> (f64, Option<f64>) {
    match (y, kind) {
        (Targets::Labels { y, classes }, "xent") => {
            let k = *classes;
            let (mut total, mut correct) = (0.0, 0usize);
            for (i, &label) in y.iter().enumerate() {
                let row = &f[i * k..(i + 1) * k];
                let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                total += lse - row[label];
                let argmax = (0..k).fold(0, |a, j| if row[j] > row[a] { j } else { a });
                correct += usize::from(argmax == label);
            }
            (total / n as f64, Some(correct as f64 / n as f64))
        }
        (Targets::Values { y, .. }, "mse") => {
            let sq: f64 = f.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
            (0.5 * sq / n as f64, None)
        }
        _ => panic!("host_loss: unsupported loss {kind} for these targets"),
    }
}

/// Trains `config` for `steps` steps, rebuilds the network from the
/// checkpoint and checks that it computes the logged training loss `key`
/// at the final step to relative precision `tol`.
fn check_checkpoint_function(config: &Path, sets: &[&str], steps: u64, key: &str, tol: f64) {
    let dir = temp_dir("rebuild");
    let out = dir.join("run");
    let steps_set = format!("train.steps={steps}");
    let mut all = vec![steps_set.as_str()];
    all.extend_from_slice(sets);
    assert_success(&train(config, &out, &all));

    let cfg = Config::load(&out.join("config.toml"), &[]).unwrap();
    let split = lmech::data::load(&cfg.data, cfg.seed).unwrap();
    let ds = &split.train;
    let (tensors, meta) = load_checkpoint(&out.join("model.safetensors")).unwrap();
    let want_f64 = cfg.dtype == "f64";
    assert!(tensors
        .iter()
        .all(|t| matches!(t.data, TensorData::F64(_)) == want_f64));
    let net = HostMlp::new(&tensors, &meta);
    assert_eq!(net.sizes[0], ds.d);
    assert_eq!(*net.sizes.last().unwrap(), ds.out_dim());
    let f = net.forward(&ds.x, ds.n);
    let (loss, acc) = host_loss(&f, &ds.y, ds.n, &cfg.train.loss);

    let records = read_jsonl(&out.join("metrics.jsonl"));
    let logged = raw_number(&jsonl_line(&out, steps), key);
    let rel = (loss - logged).abs() / logged.abs().max(1e-300);
    assert!(
        rel <= tol,
        "checkpoint computes loss {loss:.17e}, the run logged {logged:.17e} (rel. error {rel:e} > {tol:e})"
    );
    // The function has moved away from its initialization.
    assert!(loss < loss_at(&records, 0, key));
    if let Some(acc) = acc {
        let logged_acc = loss_at(&records, steps, "train_acc");
        assert!(
            (acc - logged_acc).abs() <= 1.0 / ds.n as f64 + 1e-12,
            "accuracy {acc} vs logged {logged_acc}"
        );
    }
}

// ---------------------------------------------------------------- examples

#[test]
fn digits_gd_example_writes_a_complete_run_dir() {
    let dir = temp_dir("digits");
    let out = dir.join("run");
    let res = train(
        &example("digits_gd.toml"),
        &out,
        &["train.steps=30", "model.width=128", "train.log_every=10"],
    );
    assert_success(&res);
    assert!(text(&res.stdout).contains("finished 30 steps"));
    let records = check_run_dir(
        &out,
        &Expect {
            steps: 30,
            accuracy: true,
            test: true,
        },
    );
    assert_eq!(records.len(), 4, "steps 0, 10, 20, 30");
    // The overrides are what ran and what was recorded.
    let table: toml::Table =
        toml::from_str(&fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
    assert_eq!(table["model"]["width"].as_integer(), Some(128));
    assert_eq!(table["train"]["steps"].as_integer(), Some(30));
    assert_eq!(table["train"]["log_every"].as_integer(), Some(10));
    assert_eq!(table["data"]["test_fraction"].as_float(), Some(0.2));
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["width"], 128);
    assert_eq!(summary["optimizer"], "gd");
    let (tensors, _) = load_checkpoint(&out.join("model.safetensors")).unwrap();
    let w0 = tensors
        .iter()
        .find(|t| t.name == "layers.0.weight")
        .unwrap();
    assert_eq!(w0.shape, vec![128, 64]);
    // Full-batch GD at this learning rate makes steady progress.
    let (l0, l30) = (loss_at(&records, 0, "loss"), loss_at(&records, 30, "loss"));
    assert!(l30 < 0.5 * l0, "loss {l0} -> {l30}");
    assert!(loss_at(&records, 30, "test_acc") > 0.5);
}

#[test]
fn teacher_student_example_writes_a_complete_run_dir() {
    let dir = temp_dir("teacher");
    let out = dir.join("run");
    let res = train(
        &example("teacher_student_sgd.toml"),
        &out,
        &["train.steps=30", "train.log_every=10"],
    );
    assert_success(&res);
    let records = check_run_dir(
        &out,
        &Expect {
            steps: 30,
            accuracy: false,
            test: true,
        },
    );
    // Mini-batch run: the full training set is evaluated where the test set
    // is (eval_every = 200 > 30: at the first and the final step only).
    for r in &records {
        let step = r["step"].as_u64().unwrap();
        let evaluated = step == 0 || step == 30;
        assert_eq!(r.contains_key("train_loss"), evaluated, "step {step}");
        assert_eq!(r.contains_key("test_loss"), evaluated, "step {step}");
    }
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["optimizer"], "sgd");
    assert_eq!(num(&summary["momentum"]), 0.9);
    let (l0, l30) = (
        loss_at(&records, 0, "train_loss"),
        loss_at(&records, 30, "train_loss"),
    );
    assert!(l30 < 0.5 * l0, "train loss {l0} -> {l30}");
}

#[test]
fn mup_adam_example_writes_a_complete_run_dir() {
    let dir = temp_dir("mup");
    let out = dir.join("run");
    let res = train(
        &example("mup_adam.toml"),
        &out,
        &["train.steps=30", "train.log_every=1"],
    );
    assert_success(&res);
    let records = check_run_dir(
        &out,
        &Expect {
            steps: 30,
            accuracy: true,
            test: true,
        },
    );
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["parametrization"], "mup");
    assert_eq!(summary["optimizer"], "adam");
    let (_, meta) = load_checkpoint(&out.join("model.safetensors")).unwrap();
    assert_eq!(meta["parametrization"], "mup");
    // Warmup: the logged learning rate rises to the peak, then decays.
    let lrs: Vec<f64> = records
        .iter()
        .filter_map(|r| r.get("lr").map(num))
        .collect();
    // Every record but the final one (which makes no update) has its lr.
    assert_eq!(
        lrs.len(),
        30,
        "an lr in every record of a step that updates"
    );
    assert!(records.last().unwrap().get("lr").is_none());
    assert!(
        (lrs[0] - 0.01 / 20.0).abs() < 1e-9,
        "first warmup lr {}",
        lrs[0]
    );
    let peak = lrs.iter().cloned().fold(0.0, f64::max);
    assert!((peak - 0.01).abs() < 1e-9, "peak lr {peak}");
    assert!(
        lrs[29] < 0.05 * peak,
        "cosine decay: lr {} at step 29",
        lrs[29]
    );
    assert!(loss_at(&records, 30, "train_loss") < loss_at(&records, 0, "train_loss"));
}

#[test]
fn the_examples_parse_and_validate() {
    for name in [
        "digits_gd.toml",
        "teacher_student_sgd.toml",
        "mup_adam.toml",
        "cnn_cifar5k.toml",
    ] {
        let cfg = Config::load(&example(name), &[]).unwrap();
        cfg.resolve()
            .unwrap_or_else(|e| panic!("examples/{name}: {e}"));
    }
    // The CIFAR-10 CNN's layers fit CIFAR-10's shape.
    let cfg = Config::load(&example("cnn_cifar5k.toml"), &[]).unwrap();
    let shape = cfg.data.input_shape(3072).unwrap();
    let spec = cfg
        .model
        .spec(
            shape,
            lmech::nn::shape::Shape::Flat(10),
            lmech::nn::parametrization::Parametrization::Standard,
        )
        .unwrap();
    assert_eq!(
        lmech::nn::model::Model::init(&lmech::Cpu::f32(), spec, &[0])
            .unwrap()
            .param_count(),
        32 * 27 + 32 + 32 * 32 * 9 + 32 + 32 * 64 * 10 + 10
    );
}

// ------------------------------------------------------- checkpoint function

#[test]
fn checkpoint_rebuilds_the_tanh_network_in_f32() {
    check_checkpoint_function(
        &example("digits_gd.toml"),
        &["model.width=128"],
        12,
        "loss",
        1e-4,
    );
}

#[test]
fn checkpoint_rebuilds_the_ntk_network_in_f64() {
    // Full-batch GD with momentum on the teacher-student task, NTK
    // multipliers 1/sqrt(fan_in) on every layer.
    check_checkpoint_function(
        &example("teacher_student_sgd.toml"),
        &[
            "dtype=\"f64\"",
            "model.parametrization=\"ntk\"",
            "model.width=64",
            "train.batch_size=0",
            "optim.lr=0.2",
        ],
        15,
        "loss",
        1e-9,
    );
}

#[test]
fn checkpoint_rebuilds_the_mup_network_in_f64() {
    // Mini-batch Adam: the final record's `train_loss` is the loss of the
    // whole training set under the final weights.
    check_checkpoint_function(
        &example("mup_adam.toml"),
        &["dtype=\"f64\"", "model.width=96", "optim.warmup_steps=5"],
        15,
        "train_loss",
        1e-9,
    );
}

#[test]
fn checkpoint_rebuilds_the_mean_field_network_in_f64() {
    // Mean field: the output multiplier is 1/fan_in, not 1/sqrt(fan_in).
    check_checkpoint_function(
        &example("digits_gd.toml"),
        &[
            "dtype=\"f64\"",
            "model.parametrization=\"mf\"",
            "model.width=48",
            "model.activation=\"gelu\"",
            "optim.lr=20.0",
        ],
        20,
        "loss",
        1e-9,
    );
}

// ---------------------------------------------------------------- bad input

/// Writes `body` as `name` in `dir` and returns its path.
fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    path
}

/// A `.npy` file (format 1.0) of little-endian values with dtype `descr`.
fn f64_bytes(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (i as f64 * 0.1).to_le_bytes())
        .collect()
}

fn i64_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as i64 % 3).to_le_bytes()).collect()
}

fn npy_config(dir: &Path, x: &Path, y: &Path) -> PathBuf {
    write_config(
        dir,
        "npy.toml",
        &format!(
            "[model]\nwidth = 8\n[data]\nsource = \"npy\"\nx_path = {:?}\ny_path = {:?}\n\
             [train]\nsteps = 2\n",
            x.display().to_string(),
            y.display().to_string()
        ),
    )
}

/// Runs `lmech train` on a bad input and checks that it fails cleanly,
/// mentioning `mentions`, without creating a run directory: configs and
/// data are checked before anything is written.
fn train_fails(config: &Path, sets: &[&str], mentions: &[&str]) {
    let dir = temp_dir("bad");
    let out = dir.join("run");
    let res = train(config, &out, sets);
    assert_clean_failure(&res, mentions);
    assert!(!out.exists(), "a failed start left {}", out.display());
}

#[test]
fn unknown_model_key_in_the_file_is_named_with_its_line() {
    let dir = temp_dir("unknown-key");
    let cfg = write_config(
        &dir,
        "typo.toml",
        "seed = 1\n\n[model]\nwidht = 64\n\n[train]\nsteps = 2\n",
    );
    // The line number is that of the user's file.
    train_fails(&cfg, &[], &["widht", "typo.toml", "line 4", "width"]);
}

#[test]
fn wrong_type_in_the_file_is_named_with_its_line() {
    let dir = temp_dir("wrong-type");
    let cfg = write_config(
        &dir,
        "wt.toml",
        "[train]\nsteps = 2\n[model]\nwidth = \"big\"\n",
    );
    train_fails(&cfg, &[], &["wt.toml", "line 4", "width", "big"]);
    // The same mistake from the command line names the dotted key.
    train_fails(
        &example("digits_gd.toml"),
        &["model.width=\"big\""],
        &["model.width", "big"],
    );
}

#[test]
fn zero_width_is_rejected() {
    train_fails(
        &example("digits_gd.toml"),
        &["model.width=0"],
        &["model.width"],
    );
}

#[test]
fn negative_learning_rate_is_rejected() {
    train_fails(
        &example("teacher_student_sgd.toml"),
        &["optim.lr=-0.1"],
        &["optim.lr", "-0.1"],
    );
}

#[test]
fn unknown_activation_is_rejected() {
    train_fails(
        &example("digits_gd.toml"),
        &["model.activation=\"sigmoid\""],
        &["model.activation", "sigmoid", "tanh"],
    );
}

#[test]
fn unknown_set_key_is_rejected() {
    train_fails(
        &example("digits_gd.toml"),
        &["model.widht=3"],
        &["model.widht", "--set"],
    );
    train_fails(&example("digits_gd.toml"), &["bogus=3"], &["bogus"]);
}

#[test]
fn malformed_set_is_rejected() {
    train_fails(
        &example("digits_gd.toml"),
        &["model.width"],
        &["model.width", "key=value"],
    );
    train_fails(
        &example("digits_gd.toml"),
        &["model..width=3"],
        &["model..width"],
    );
}

#[test]
fn missing_config_file_is_named() {
    let dir = temp_dir("missing-config");
    let path = dir.join("nope.toml");
    train_fails(&path, &[], &["nope.toml"]);
}

#[test]
fn missing_data_file_is_named() {
    let dir = temp_dir("missing-data");
    let x = dir.join("absent_x.npy");
    let y = dir.join("absent_y.npy");
    let cfg = npy_config(&dir, &x, &y);
    train_fails(&cfg, &[], &["absent_x.npy"]);
}

#[test]
fn truncated_npy_file_is_named() {
    let dir = temp_dir("truncated");
    let x = dir.join("x.npy");
    let y = dir.join("y.npy");
    let mut xb = npy_bytes("<f8", &[5, 3], &f64_bytes(15));
    xb.truncate(xb.len() - 20);
    fs::write(&x, xb).unwrap();
    fs::write(&y, npy_bytes("<i8", &[5], &i64_bytes(5))).unwrap();
    let cfg = npy_config(&dir, &x, &y);
    train_fails(&cfg, &[], &["x.npy", "truncated"]);
}

#[test]
fn npy_files_with_different_n_are_rejected() {
    let dir = temp_dir("mismatch");
    let x = dir.join("x.npy");
    let y = dir.join("y.npy");
    fs::write(&x, npy_bytes("<f8", &[5, 3], &f64_bytes(15))).unwrap();
    fs::write(&y, npy_bytes("<i8", &[4], &i64_bytes(4))).unwrap();
    let cfg = npy_config(&dir, &x, &y);
    train_fails(&cfg, &[], &["x.npy", "y.npy", "[5, 3]", "[4]"]);

    // The same pair with matching N trains (the helpers write valid files).
    fs::write(&y, npy_bytes("<i8", &[5], &i64_bytes(5))).unwrap();
    let out = dir.join("run");
    assert_success(&train(&cfg, &out, &[]));
    assert!(out.join("summary.json").is_file());
}

#[test]
fn cuda_without_a_driver_is_refused_with_a_hint() {
    if lmech::backend::cuda::driver_present() {
        println!("skipped: a CUDA driver is present, so --device cuda does not fail here");
        return;
    }
    let dir = temp_dir("cuda");
    let out = dir.join("run");
    for device in ["cuda", "cuda:3"] {
        let mut args = vec![
            "train".to_string(),
            example("digits_gd.toml").display().to_string(),
        ];
        args.extend(
            [
                "--out",
                &out.display().to_string(),
                "--quiet",
                "--device",
                device,
            ]
            .map(String::from),
        );
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let res = lmech(&refs);
        assert_clean_failure(&res, &[device, "no CUDA driver found", "--device cpu"]);
        assert!(!out.join("summary.json").exists());
    }
}

#[test]
fn mse_on_class_labels_asks_for_one_hot() {
    train_fails(
        &example("digits_gd.toml"),
        &["train.loss=\"mse\""],
        &["train.loss", "one_hot"],
    );
}

// ------------------------------------------------ divergence and overwriting

#[test]
fn divergence_is_recorded_and_exits_zero() {
    let dir = temp_dir("diverge");
    let out = dir.join("run");
    let res = train(
        &example("teacher_student_sgd.toml"),
        &out,
        &[
            "optim.name=\"gd\"",
            "optim.momentum=0.0",
            "optim.lr=1e4",
            "train.batch_size=0",
            "train.steps=50",
            "train.log_every=1",
        ],
    );
    assert_success(&res);
    assert!(
        text(&res.stdout).contains("diverged"),
        "{}",
        text(&res.stdout)
    );

    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["status"], "diverged");
    let at = summary["diverged_at_step"]
        .as_u64()
        .expect("diverged_at_step is an integer");
    assert!((1..50).contains(&at), "diverged at step {at}");
    assert!(summary.contains_key("reason"));
    assert!(!out.join("model.safetensors").exists());
    assert!(out.join("loss.svg").is_file());

    // Every record before the divergence is kept, in both files.
    let records = read_jsonl(&out.join("metrics.jsonl"));
    let finite: Vec<u64> = records
        .iter()
        .filter(|r| r["loss"].as_f64().is_some_and(f64::is_finite))
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        finite,
        (0..at).collect::<Vec<_>>(),
        "records before divergence"
    );
    assert!(records.len() as u64 <= at + 1);
    let last = &records[records.len() - 1];
    assert!(last["step"].as_u64().unwrap() <= at);
    let csv = fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("step,"));
    assert_eq!(csv.lines().count(), records.len() + 1);
}

#[test]
fn a_finished_run_is_not_overwritten() {
    let dir = temp_dir("overwrite");
    let out = dir.join("run");
    let cfg = example("digits_gd.toml");
    assert_success(&train(&cfg, &out, &["train.steps=3", "model.width=32"]));
    let snapshot = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    };
    let before = snapshot(&out);
    assert!(before.contains_key("summary.json") && before.contains_key("model.safetensors"));

    let res = train(&cfg, &out, &["train.steps=5", "model.width=16"]);
    assert_clean_failure(&res, &["summary.json", "refusing to overwrite"]);
    assert_eq!(snapshot(&out), before, "the finished run was modified");
}

// --------------------------------------------------------------- determinism

/// Runs `config` with `--threads 1` and `--threads 2` and checks that the
/// metrics (all but wall-clock time) and the checkpoint are bit-identical.
fn check_thread_determinism(config: &Path, sets: &[&str]) {
    let dir = temp_dir("threads");
    let mut logs = Vec::new();
    let mut ckpts = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.join(format!("t{threads}"));
        let res = train_with(&["--threads", threads], config, &out, sets);
        assert_success(&res);
        let summary = read_json(&out.join("summary.json"));
        assert!(
            summary["device"]
                .as_str()
                .unwrap()
                .contains(&format!("{threads} thread")),
            "{}",
            summary["device"]
        );
        // Each line without its wall-clock time.
        let lines: Vec<String> = fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let t = l.find(",\"time_s\":").expect("a time_s in every record");
                let end = l[t + 1..].find([',', '}']).unwrap() + t + 1;
                format!("{}{}", &l[..t], &l[end..])
            })
            .collect();
        logs.push(lines);
        ckpts.push(load_checkpoint(&out.join("model.safetensors")).unwrap().0);
    }
    assert!(logs[0].len() >= 2);
    for (a, b) in logs[0].iter().zip(&logs[1]) {
        // The same text is the same float; the loss first, for a clear
        // message.
        let (la, lb) = (raw_number(a, "loss"), raw_number(b, "loss"));
        assert_eq!(la.to_bits(), lb.to_bits(), "loss: {a} vs {b}");
        assert_eq!(a, b, "metrics differ between 1 and 2 threads");
    }
    assert_eq!(logs[0].len(), logs[1].len());
    assert_eq!(ckpts[0].len(), ckpts[1].len());
    for (a, b) in ckpts[0].iter().zip(&ckpts[1]) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.shape, b.shape);
        let bits = |t: &NamedTensor| -> Vec<u64> {
            match &t.data {
                TensorData::F32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
                TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
            }
        };
        assert!(
            bits(a) == bits(b),
            "tensor {} differs between 1 and 2 threads",
            a.name
        );
    }
}

#[test]
fn full_batch_gd_is_bit_identical_across_thread_counts() {
    // 1438 x 64 -> 256 -> 256 -> 10: the products are large enough for the
    // matmul to split across threads.
    check_thread_determinism(
        &example("digits_gd.toml"),
        &["train.steps=20", "train.log_every=5"],
    );
}

#[test]
fn minibatch_sgd_is_bit_identical_across_thread_counts() {
    check_thread_determinism(
        &example("teacher_student_sgd.toml"),
        &[
            "train.steps=20",
            "train.log_every=5",
            "train.eval_every=10",
            "train.batch_size=256",
        ],
    );
}

#[test]
fn minibatch_adam_is_bit_identical_across_thread_counts() {
    check_thread_determinism(
        &example("mup_adam.toml"),
        &[
            "train.steps=20",
            "optim.warmup_steps=5",
            "train.log_every=5",
        ],
    );
}

// ------------------------------------------------------------------ devices

#[test]
fn devices_lists_the_cpu() {
    let res = lmech(&["devices"]);
    assert_success(&res);
    let stdout = text(&res.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("cpu")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("cuda")), "{stdout}");
    let res = lmech(&["--threads", "1", "devices"]);
    assert_success(&res);
    assert!(
        text(&res.stdout).contains("cpu: 1 threads"),
        "{}",
        text(&res.stdout)
    );
}

#[test]
fn a_checkpoint_loads_back_into_the_same_model() {
    let dir = temp_dir("reload");
    let out = dir.join("run");
    let res = train(
        &example("mup_adam.toml"),
        &out,
        &["train.steps=30", "dtype=\"f64\""],
    );
    assert_success(&res);
    let be = lmech::Cpu::f64();
    let model: lmech::nn::model::Model<lmech::Cpu> =
        lmech::nn::checkpoint::load_model(&be, &out.join("model.safetensors")).unwrap();
    let (tensors, _) = load_checkpoint(&out.join("model.safetensors")).unwrap();
    for (name, p) in model.param_names().iter().zip(model.params()) {
        let t = tensors.iter().find(|t| &t.name == name).unwrap();
        let want = match &t.data {
            TensorData::F64(v) => v.clone(),
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        };
        assert_eq!(lmech::Backend::to_f64(&be, p).unwrap(), want, "{name}");
    }
    assert_eq!(model.spec.parametrization.name(), "mup");
    let err = match lmech::nn::checkpoint::load_model(&be, &out.join("summary.json")) {
        Ok(_) => panic!("summary.json loaded as a checkpoint"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("summary.json"), "{err}");
}

#[test]
fn the_main_job_prints_the_edge_of_stability_table() {
    let dir = temp_dir("eos-cli");
    let out = dir.join("eos");
    let out_s = out.to_string_lossy().into_owned();
    let args = [
        "eos",
        "--quiet",
        "--steps",
        "150",
        "--lrs",
        "0.2,0.3",
        "--out",
        out_s.as_str(),
    ];
    let res = lmech(&args);
    assert_success(&res);
    let stdout = text(&res.stdout);
    assert!(
        stdout.contains("2/eta") && stdout.contains("0.3"),
        "{stdout}"
    );
    for f in [
        "eos.csv",
        "eos_lr0.2.svg",
        "eos_lr0.3.svg",
        "lr_0.2/metrics.jsonl",
        "lr_0.3/summary.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let csv = fs::read_to_string(out.join("eos.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // A second run into the same directory is refused, the first kept.
    let again = lmech(&args);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already holds an eos experiment"));
    assert_eq!(fs::read_to_string(out.join("eos.csv")).unwrap(), csv);
    // Bad learning rates are refused before anything is written.
    let bad = dir.join("bad");
    let bad_s = bad.to_string_lossy().into_owned();
    let res = lmech(&["eos", "--quiet", "--lrs", "0", "--out", bad_s.as_str()]);
    assert!(!res.status.success() && text(&res.stderr).contains("--lrs"));
    assert!(!bad.exists());
}

#[test]
fn eos_runs_on_any_config_and_refuses_what_has_no_threshold() {
    let dir = temp_dir("eos-config");
    let config = dir.join("teacher.toml");
    fs::write(
        &config,
        "name = \"teacher\"\n[model]\nwidth = 16\n[data]\nsource = \"teacher_student\"\n\
         n = 100\ninput_dim = 6\noutput_dim = 2\n[optim]\nname = \"gd\"\nlr = 0.5\n\
         [train]\nsteps = 40\nloss = \"mse\"\n",
    )
    .unwrap();
    let out = dir.join("eos");
    let args = [
        "eos",
        config.to_str().unwrap(),
        "--quiet",
        "--every",
        "20",
        "--set",
        "model.depth=2",
        "--out",
        out.to_str().unwrap(),
    ];
    let res = lmech(&args);
    assert_success(&res);
    let stdout = text(&res.stdout);
    // Without --lrs: the config's rate times 1, 1.4 and 2.
    for lr in ["lr_0.5", "lr_0.7", "lr_1"] {
        let run = out.join(lr);
        let cfg = Config::load(&run.join("config.toml"), &[]).unwrap();
        assert_eq!(cfg.data.source, "teacher_student", "{lr}");
        assert_eq!(cfg.model.depth, 2, "{lr}");
        let metrics = fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let measured = metrics
            .lines()
            .filter(|l| l.contains("\"sharpness\""))
            .count();
        assert_eq!(
            measured, 3,
            "{lr}: sharpness at steps 0, 20, 40:\n{metrics}"
        );
    }
    assert!(stdout.contains("0.7"), "{stdout}");
    assert_eq!(
        fs::read_to_string(out.join("eos.csv"))
            .unwrap()
            .lines()
            .count(),
        4
    );

    let adam = dir.join("adam");
    let res = lmech(&[
        "eos",
        config.to_str().unwrap(),
        "--quiet",
        "--set",
        "optim.name=adam",
        "--out",
        adam.to_str().unwrap(),
    ]);
    assert_clean_failure(&res, &["optim.name", "gd"]);
    assert!(!adam.exists());
    let res = lmech(&["eos", config.to_str().unwrap(), "--width", "8"]);
    assert!(!res.status.success());
}

#[test]
fn checkpoint_at_keeps_the_weights_behind_each_logged_loss() {
    use lmech::curvature::LossOnData;
    use lmech::nn::loss::LossKind;
    use lmech::Backend;
    let dir = temp_dir("checkpoint-at");
    let out = dir.join("run");
    let res = train(
        &example("digits_gd.toml"),
        &out,
        &[
            "dtype=\"f64\"",
            "model.width=16",
            "train.steps=20",
            "train.checkpoint_at=[0, 7, 20]",
            "train.checkpoint_per_decade=1",
        ],
    );
    assert_success(&res);
    let cfg = Config::load(&out.join("config.toml"), &[]).unwrap();
    let split = lmech::data::load(&cfg.data, cfg.data_seed()).unwrap();
    let ds = &split.train;
    let Targets::Labels { y, .. } = &ds.y else {
        panic!("digits have labels")
    };
    let be = lmech::Cpu::f64();
    let labels: Vec<f64> = y.iter().map(|&c| c as f64).collect();
    let metrics = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let logged = |step: u64| -> f64 {
        metrics
            .lines()
            .map(|l| serde_json::from_str::<Json>(l).unwrap())
            .find(|r| r["step"] == step)
            .unwrap_or_else(|| panic!("no record of step {step}"))["loss"]
            .as_f64()
            .unwrap()
    };
    // checkpoint_at, and steps 0, 1, 10, 100, ... from checkpoint_per_decade = 1.
    let mut kept: Vec<u64> = fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name["step_".len()..name.len() - ".safetensors".len()]
                .parse()
                .unwrap()
        })
        .collect();
    kept.sort();
    assert_eq!(kept, [0, 1, 7, 10, 20]);
    for step in [0, 7, 20] {
        let path = out.join(format!("checkpoints/step_{step}.safetensors"));
        let model = lmech::nn::checkpoint::load_model(&be, &path).unwrap();
        let x = be.from_f64(&[ds.n, ds.d], &ds.x).unwrap();
        let t = be.from_f64(&[ds.n], &labels).unwrap();
        let lod = LossOnData::new(&be, &model, LossKind::CrossEntropy, vec![(x, t)]).unwrap();
        let (loss, _) = lod.gradient().unwrap();
        let want = logged(step);
        assert!(
            (loss - want).abs() <= 1e-12 * want,
            "step {step}: checkpoint gives {loss}, metrics say {want}"
        );
    }
    let last = fs::read(out.join("checkpoints/step_20.safetensors")).unwrap();
    assert_eq!(last, fs::read(out.join("model.safetensors")).unwrap());

    // train.steps = 0 keeps the initial weights and logs the initial loss.
    let init = dir.join("init");
    assert_success(&train(
        &example("digits_gd.toml"),
        &init,
        &["train.steps=0"],
    ));
    assert!(init.join("model.safetensors").exists());
    let lines = fs::read_to_string(init.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    let res = train(
        &example("digits_gd.toml"),
        &dir.join("late"),
        &["train.steps=10", "train.checkpoint_at=[11]"],
    );
    assert_clean_failure(&res, &["train.checkpoint_at", "11"]);
}

#[test]
fn probing_gpus_prints_no_error_without_xdg_runtime_dir() {
    // Mesa's Vulkan drivers try Wayland while wgpu lists adapters, and
    // libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set" on
    // a headless machine unless lmech gives it a directory.
    let res = Command::new(env!("CARGO_BIN_EXE_lmech"))
        .arg("devices")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert_success(&res);
    let stderr = text(&res.stderr);
    assert!(!stderr.to_lowercase().contains("error"), "{stderr}");
}

#[test]
fn auto_keeps_f64_runs_on_the_cpu_whatever_gpus_are_present() {
    use lmech::backend::device::{Device, DeviceRequest};
    use lmech::DType;
    let (device, why) = DeviceRequest::Auto.resolve_for(DType::F64).unwrap();
    assert_eq!(device, Device::Cpu);
    assert!(why.contains("f64"), "{why}");
    // A device asked for by name is not second-guessed: the backend itself
    // refuses a dtype it cannot hold.
    let (device, _) = DeviceRequest::Cpu.resolve_for(DType::F16).unwrap();
    assert_eq!(device, Device::Cpu);
}

// ---------------------------------------------------------------- bad data

/// `lmech train` on `x` and `y` must exit with status 1 before writing a
/// run directory, naming `mentions`.
fn train_refuses_data(dir: &Path, x: &Path, y: &Path, sets: &[&str], mentions: &[&str]) {
    let out = dir.join("run");
    let res = train(&npy_config(dir, x, y), &out, sets);
    assert_eq!(res.status.code(), Some(1), "{}", text(&res.stderr));
    assert_clean_failure(&res, mentions);
    assert!(!out.exists(), "a refused start left {}", out.display());
}

#[test]
fn nan_input_fails_naming_the_file_instead_of_diverging() {
    let dir = temp_dir("nan-input");
    let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
    let mut values: Vec<f64> = (0..15).map(|i| i as f64 * 0.1).collect();
    values[3 * 3 + 2] = f64::NAN;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    fs::write(&x, npy_bytes("<f8", &[5, 3], &bytes)).unwrap();
    fs::write(&y, npy_bytes("<i8", &[5], &i64_bytes(5))).unwrap();
    train_refuses_data(
        &dir,
        &x,
        &y,
        &["data.scale=0.5"],
        &["x.npy", "x[3, 2]", "row 3, column 2", "NaN"],
    );
}

#[test]
fn label_beyond_num_classes_fails_naming_the_file() {
    let dir = temp_dir("label-range");
    let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
    fs::write(&x, npy_bytes("<f8", &[5, 3], &f64_bytes(15))).unwrap();
    let labels: Vec<u8> = [0i64, 1, 99, 2, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    fs::write(&y, npy_bytes("<i8", &[5], &labels)).unwrap();
    train_refuses_data(
        &dir,
        &x,
        &y,
        &["data.num_classes=10"],
        &["y.npy", "label 99 at row 2", "data.num_classes = 10"],
    );
}

#[test]
fn inferred_class_count_is_said_once_on_stderr() {
    let dir = temp_dir("classes-inferred");
    let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
    fs::write(&x, npy_bytes("<f8", &[5, 3], &f64_bytes(15))).unwrap();
    fs::write(&y, npy_bytes("<i8", &[5], &i64_bytes(5))).unwrap();
    let cfg = npy_config(&dir, &x, &y);
    let res = train(&cfg, &dir.join("run"), &[]);
    assert_success(&res);
    let stderr = text(&res.stderr);
    let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with("data: ")).collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].contains("3 classes inferred from the train labels in")
            && said[0].contains(&y.display().to_string())
            && said[0].contains("data.num_classes"),
        "{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");

    // Declared, the count is not said.
    let res = train(&cfg, &dir.join("run2"), &["data.num_classes=4"]);
    assert_success(&res);
    assert!(
        !text(&res.stderr).contains("inferred"),
        "{}",
        text(&res.stderr)
    );
}
