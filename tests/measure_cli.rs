//! `lmech measure` end to end: a trained digits checkpoint's observables
//! against the dense Hessian of its training loss on the same examples
//! (f64), the JSON written beside the checkpoint, and bad requests refused
//! with a message naming the option.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::temp_dir;
use lmech::config::Config;
use lmech::curvature::LossOnData;
use lmech::data;
use lmech::linalg::sym_eigen;
use lmech::nn::checkpoint::load_model;
use lmech::tape::Curvature;
use lmech::{Cpu, DType};
use serde_json::Value;

fn lmech(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmech"))
        .args(args)
        .output()
        .expect("cannot start the lmech binary")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "lmech failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small f64 digits MLP (64 -> 8 -> 10), trained 30 GD steps.
fn trained(dir: &Path) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits_gd.toml");
    let out = dir.display().to_string();
    ok(&lmech(&[
        "train",
        config.to_str().unwrap(),
        "--out",
        &out,
        "--quiet",
        "--device",
        "cpu",
        "--set",
        "dtype=\"f64\"",
        "--set",
        "model.width=8",
        "--set",
        "model.depth=2",
        "--set",
        "train.steps=30",
    ]));
}

/// Eigenvalues (descending) and trace of the Hessian of the run's training
/// loss on its first `n` training examples.
fn dense_hessian(run: &Path, n: usize) -> (Vec<f64>, f64) {
    let path = run.join("model.safetensors");
    let cfg = Config::load(&run.join("config.toml"), &[]).unwrap();
    let res = cfg.resolve().unwrap();
    let ds = data::load(&cfg.data, cfg.data_seed())
        .unwrap()
        .train
        .take_first(n);
    let be = Cpu::new(DType::F64);
    let model = load_model(&be, &path).unwrap();
    let chunk = data::upload_inputs_and_targets(&be, &ds, res.loss).unwrap();
    let lod = LossOnData::new(&be, &model, res.loss, vec![chunk]).unwrap();
    let p = lod.dim();
    let mut h = vec![0.0; p * p];
    for i in 0..p {
        let mut e = vec![0.0; p];
        e[i] = 1.0;
        let col = lod.product(&e, Curvature::Hessian).unwrap();
        for (j, v) in col.iter().enumerate() {
            h[j * p + i] = *v;
        }
    }
    let trace = (0..p).map(|i| h[i * p + i]).sum();
    (sym_eigen(&h, p).unwrap().values, trace)
}

#[test]
fn measure_matches_the_dense_hessian_and_writes_json_beside_the_checkpoint() {
    let tmp = temp_dir("measure");
    let run = tmp.join("run");
    trained(&run);
    let out = lmech(&[
        "measure",
        run.to_str().unwrap(),
        "--observe",
        "sharpness,eigs,gn_eigs,trace,density,per_sample",
        "--n",
        "200",
        "--k",
        "3",
        "--tol",
        "1e-10",
        "--max-iter",
        "300",
        "--probes",
        "100",
        "--steps",
        "20",
    ]);
    ok(&out);
    let file = run.join("model.measure.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["examples"], 200);
    assert_eq!(doc["loss"], "xent");
    let obs = &doc["observables"];
    let (exact, trace) = dense_hessian(&run, 200);

    let top = obs["sharpness"]["values"][0].as_f64().unwrap();
    assert!(
        (top - exact[0]).abs() <= 1e-8 * exact[0],
        "{top} vs {}",
        exact[0]
    );
    for i in 0..3 {
        let v = obs["eigs"]["values"][i].as_f64().unwrap();
        assert!(
            (v - exact[i]).abs() <= 1e-8 * exact[0],
            "eig {i}: {v} vs {}",
            exact[i]
        );
    }
    // The Gauss-Newton matrix is PSD and its top eigenvalue is near the
    // Hessian's on a trained net, not equal to it.
    let gn = obs["gn_eigs"]["values"][0].as_f64().unwrap();
    assert!(
        gn > 0.0 && (gn - exact[0]).abs() < 0.5 * exact[0],
        "{gn} vs {}",
        exact[0]
    );
    let est = obs["trace"]["estimate"].as_f64().unwrap();
    let se = obs["trace"]["std_error"].as_f64().unwrap();
    assert!(
        (est - trace).abs() < 4.0 * se,
        "trace {est} +- {se} vs {trace}"
    );
    assert_eq!(obs["trace"]["hvps"], 100);
    for w in obs["density"]["weights"].as_array().unwrap() {
        let sum: f64 = w
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-10);
    }
    assert_eq!(obs["per_sample"]["norms"].as_array().unwrap().len(), 200);
    assert!(obs["per_sample"]["mean_norm"].as_f64().unwrap() > 0.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("model.measure.json"), "{stdout}");
}

#[test]
fn bad_requests_name_the_option() {
    let tmp = temp_dir("measure-bad");
    let run = tmp.join("run");
    trained(&run);
    let out = lmech(&["measure", run.to_str().unwrap(), "--observe", "curvature"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--observe") && err.contains("curvature"),
        "{err}"
    );
    let out = lmech(&["measure", run.to_str().unwrap(), "--data", "valid"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data"));
    let out = lmech(&["measure", tmp.join("nothing").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
