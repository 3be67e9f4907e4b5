//! Observers end to end through `train`: every configured measurement lands
//! in metrics.jsonl / metrics.csv under its stable name with its cost, the
//! schedules are honoured, and impossible requests are refused at config
//! time with a message naming the key.

mod common;

use common::temp_dir;
use lmech::backend::device::Device;
use lmech::config::Config;
use lmech::run::Record;
use lmech::train::{train, RunOptions};

const BASE: &str = r#"
[model]
width = 16
depth = 3
[optim]
lr = 0.1
[train]
steps = 12
loss = "mse"
log_every = 100
[data]
scale = 0.0625
one_hot = true
n_train = 120
"#;

fn cfg(extra: &str) -> Config {
    Config::from_toml_str(&format!("{BASE}{extra}"), &[]).unwrap()
}

fn steps_with(records: &[Record], key: &str) -> Vec<u64> {
    records
        .iter()
        .filter(|r| r.get(key).is_some())
        .map(|r| r.get("step").unwrap().as_f64().unwrap() as u64)
        .collect()
}

#[test]
fn every_observer_writes_its_stable_names_and_costs() {
    let dir = temp_dir("observers");
    let c = cfg(r#"
[observe]
every = 4
[observe.sharpness]
k = 3
[observe.gn_sharpness]
method = "power"
max_iter = 50
[observe.hessian_trace]
probes = 3
[observe.spectrum]
probes = 2
steps = 8
[observe.per_sample]
n = 32
[observe.ntk]
n = 20
k = 2
[observe.coord]
n = 50
[observe.weights]
"#);
    let out = dir.join("run");
    let report = train(
        &c,
        &RunOptions {
            out: out.clone(),
            device: Device::Cpu,
            progress: false,
        },
    )
    .unwrap();
    assert!(!report.diverged());
    let names = [
        "sharpness",
        "hessian_top_k.0",
        "hessian_top_k.2",
        "sharpness_residual",
        "sharpness_converged",
        "sharpness_hvps",
        "sharpness_seconds",
        "gn_sharpness",
        "gn_sharpness_hvps",
        "hessian_trace",
        "hessian_trace_hvps",
        "spectrum_hvps",
        "per_sample_grad_norm_mean",
        "per_sample_grad_norm_mean.0",
        "grad_noise_scale",
        "ntk_top",
        "ntk_top_k.1",
        "ntk_rel_change",
        "coord_l1.0",
        "coord_l1_pre.1",
        "weight_norm.2",
        "dist_from_init.0",
    ];
    for name in names {
        assert_eq!(
            steps_with(&report.records, name),
            vec![0, 4, 8, 12],
            "{name}"
        );
    }
    // Alignment of consecutive updates needs two earlier steps.
    assert_eq!(steps_with(&report.records, "update_cos"), vec![4, 8, 12]);
    let r0 = &report.records[0];
    let top: Vec<f64> = (0..3)
        .map(|i| {
            r0.get(&format!("hessian_top_k.{i}"))
                .unwrap()
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(top[0] >= top[1] && top[1] >= top[2], "{top:?}");
    assert_eq!(r0.get("sharpness").unwrap().as_f64(), Some(top[0]));
    assert_eq!(r0.get("ntk_rel_change").unwrap().as_f64(), Some(0.0));
    let later = &report.records[report.records.len() - 1];
    assert!(later.get("ntk_rel_change").unwrap().as_f64().unwrap() > 0.0);
    assert!(later.get("dist_from_init.0").unwrap().as_f64().unwrap() > 0.0);
    // The CSV carries the same columns, and the density went to its file.
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for name in names {
        assert!(
            header.split(',').any(|h| h == name),
            "{name} missing from the CSV header"
        );
    }
    let spectrum = std::fs::read_to_string(out.join("spectrum.jsonl")).unwrap();
    assert_eq!(spectrum.lines().count(), 4);
    let line: serde_json::Value = serde_json::from_str(spectrum.lines().next().unwrap()).unwrap();
    assert_eq!(line["nodes"].as_array().unwrap().len(), 2);
}

#[test]
fn log_spaced_and_per_observer_schedules() {
    let dir = temp_dir("schedules");
    let mut c = cfg(r#"
[observe]
log_spaced = true
per_decade = 5
[observe.coord]
n = 10
[observe.weights]
every = 15
log_spaced = false
"#);
    c.train.steps = 40;
    let report = train(
        &c,
        &RunOptions {
            out: dir.join("run"),
            device: Device::Cpu,
            progress: false,
        },
    )
    .unwrap();
    assert_eq!(
        steps_with(&report.records, "coord_l1.0"),
        vec![0, 1, 2, 3, 4, 6, 10, 16, 25, 40]
    );
    assert_eq!(
        steps_with(&report.records, "weight_norm.0"),
        vec![0, 15, 30, 40]
    );
}

fn refused(extra: &str, mentions: &[&str]) {
    let dir = temp_dir("refused");
    let out = dir.join("run");
    let c = Config::from_toml_str(&format!("{BASE}{extra}"), &[]);
    let err = match c {
        Err(e) => e.to_string(),
        Ok(c) => train(
            &c,
            &RunOptions {
                out: out.clone(),
                device: Device::Cpu,
                progress: false,
            },
        )
        .expect_err("an impossible observer was accepted")
        .to_string(),
    };
    for m in mentions {
        assert!(err.contains(m), "{m:?} not in {err:?}");
    }
    assert!(!out.exists(), "a refused config left a run directory");
}

#[test]
fn impossible_observers_are_refused_before_training() {
    refused("[observe.ntk]\nn = 5000\n", &["observe.ntk.n", "5000"]);
    refused(
        "[observe.sharpness]\nk = 100000\nmax_iter = 100000\n",
        &["observe.sharpness.k", "100000", "parameter"],
    );
    refused(
        "[observe.sharpness]\nk = 5\nmax_iter = 3\n",
        &["observe.sharpness.max_iter"],
    );
    refused(
        "[observe.sharpness]\nmethod = \"power\"\nk = 2\n",
        &["observe.sharpness.method"],
    );
    refused("[observe.sharpness]\ntoll = 1e-3\n", &["toll"]);
    refused(
        "[observe.per_sample]\nn = 1000\n",
        &["observe.per_sample.n", "120"],
    );
    refused(
        "[observe.hessian_trace]\nprobes = 0\n",
        &["observe.hessian_trace.probes"],
    );
    refused("[observe.spectrum]\nn = 121\n", &["observe.spectrum.n"]);
    refused(
        "[observe]\nevery = 0\n[observe.coord]\n",
        &["observe.every"],
    );
}
