//! `[observe.central_flow]` end to end through `train`: the flows start at
//! the run's initialization, every record carries the predicted loss, the
//! flow's sharpness, X's eigenvalues, both flows' distances to the run and
//! the cost; what the flow cannot follow is refused before training, with
//! the key named.

mod common;

use common::temp_dir;
use lmech::backend::device::Device;
use lmech::config::Config;
use lmech::train::{train, RunOptions};

fn toml(optim: &str, train_extra: &str, flow: &str) -> String {
    format!(
        r#"
dtype = "f64"
[model]
width = 8
depth = 3
activation = "tanh"
[optim]
{optim}
[train]
steps = 9
loss = "mse"
log_every = 100
checkpoint = false
{train_extra}
[data]
scale = 0.0625
one_hot = true
n_train = 60
[observe]
every = 3
[observe.central_flow]
{flow}
"#
    )
}

fn opts(dir: &std::path::Path) -> RunOptions {
    RunOptions {
        out: dir.to_path_buf(),
        device: Device::Cpu,
        progress: false,
    }
}

#[test]
fn every_record_carries_the_flows_and_their_cost() {
    for (optim, edge) in [
        ("name = \"gd\"\nlr = 0.5", 4.0),
        ("name = \"rmsprop\"\nlr = 0.002", 2.0),
    ] {
        let dir = temp_dir("central_flow_observer").join("run");
        let c = Config::from_toml_str(&toml(optim, "", "k = 2\nsubsteps = 3"), &[]).unwrap();
        let report = train(&c, &opts(&dir)).unwrap();
        let recs: Vec<_> = report
            .records
            .iter()
            .filter(|r| r.get("central_flow_loss").is_some())
            .collect();
        let steps: Vec<u64> = recs
            .iter()
            .map(|r| r.get("step").unwrap().as_f64().unwrap() as u64)
            .collect();
        assert_eq!(steps, vec![0, 3, 6, 9], "{optim}");
        let get = |r: &lmech::run::Record, k: &str| {
            r.get(k)
                .and_then(|v| v.as_f64())
                .unwrap_or_else(|| panic!("{optim}: {k} missing"))
        };
        for (i, r) in recs.iter().enumerate() {
            for key in [
                "central_flow_predicted_loss",
                "central_flow_sharpness",
                "central_flow_top_k.1",
                "central_flow_x.0",
                "central_flow_x.1",
                "gradient_flow_loss",
                "central_flow_seconds",
                "central_flow_hvps_per_step",
                "central_flow_unconverged",
            ] {
                assert!(get(r, key).is_finite(), "{optim}: {key}");
            }
            assert_eq!(get(r, "central_flow_edge"), edge, "{optim}");
            assert!(get(r, "central_flow_hvps") > 0.0, "{optim}");
            let (d, gd) = (
                get(r, "central_flow_distance"),
                get(r, "gradient_flow_distance"),
            );
            if i == 0 {
                // Both flows start at the run's initialization.
                assert_eq!((d, gd), (0.0, 0.0), "{optim}");
                assert_eq!(get(r, "central_flow_loss"), get(r, "loss"), "{optim}");
                assert_eq!(get(r, "gradient_flow_loss"), get(r, "loss"), "{optim}");
            } else {
                assert!(d > 0.0 && gd > 0.0, "{optim}: {d} {gd}");
            }
            assert!(
                get(r, "central_flow_predicted_loss") >= get(r, "central_flow_loss"),
                "{optim}: X is PSD, so the oscillations only add to the loss"
            );
        }
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        assert!(csv
            .lines()
            .next()
            .unwrap()
            .contains("central_flow_predicted_loss"));
    }
}

fn refused(optim: &str, train_extra: &str, flow: &str, model: &str, mentions: &[&str]) {
    let dir = temp_dir("central_flow_refused").join("run");
    let text = toml(optim, train_extra, flow).replace("activation = \"tanh\"", model);
    let err = match Config::from_toml_str(&text, &[]) {
        Err(e) => e.to_string(),
        Ok(c) => train(&c, &opts(&dir))
            .expect_err("a flow the observer cannot follow was accepted")
            .to_string(),
    };
    for m in mentions {
        assert!(err.contains(m), "{m:?} not in {err:?}");
    }
    assert!(!dir.exists(), "a refused config left a run directory");
}

#[test]
fn what_the_flow_cannot_follow_is_refused_before_training() {
    let gd = "name = \"gd\"\nlr = 0.1";
    let tanh = "activation = \"tanh\"";
    for name in ["adam", "adamw", "sgd"] {
        let optim = format!("name = \"{name}\"\nlr = 0.01");
        refused(
            &optim,
            "",
            "",
            tanh,
            &["optim.name", name, "gd and rmsprop"],
        );
    }
    refused(
        "name = \"gd\"\nlr = 0.1\nmomentum = 0.9",
        "",
        "",
        tanh,
        &["optim.momentum"],
    );
    refused(gd, "batch_size = 16", "", tanh, &["train.batch_size", "16"]);
    refused(
        "name = \"gd\"\nlr = 0.1\nweight_decay = 0.01",
        "",
        "",
        tanh,
        &["optim.weight_decay"],
    );
    refused(
        "name = \"gd\"\nlr = 0.1\nwarmup_steps = 2",
        "",
        "",
        tanh,
        &["optim.schedule"],
    );
    refused(
        "name = \"gd\"\nlr = 0.1\nschedule = \"cosine\"",
        "",
        "",
        tanh,
        &["optim.schedule"],
    );
    refused(
        gd,
        "",
        "",
        "activation = \"tanh\"\nparametrization = \"mup\"",
        &["model.parametrization", "mup"],
    );
    for k in ["0", "9"] {
        refused(
            gd,
            "",
            &format!("k = {k}"),
            tanh,
            &["observe.central_flow.k", "1..=8"],
        );
    }
    refused(
        gd,
        "",
        "substeps = 0",
        tanh,
        &["observe.central_flow.substeps"],
    );
    refused(gd, "", "chunk = 0", tanh, &["observe.central_flow.chunk"]);
    refused(gd, "", "kk = 2", tanh, &["kk"]);
    refused(gd, "", "every = 0", tanh, &["observe.central_flow.every"]);
}

#[test]
fn k_must_be_below_the_parameter_count() {
    let text = toml("name = \"gd\"\nlr = 0.1", "", "k = 8")
        .replace("width = 8\ndepth = 3", "width = 1\ndepth = 1");
    // A 64 -> 10 linear model has 650 parameters: k = 8 is fine there, so
    // the bound is checked on the count itself.
    let c = Config::from_toml_str(&text, &[]).unwrap();
    c.observe
        .validate(8, 60)
        .expect_err("k = 8 of 8 parameters");
    c.observe.validate(9, 60).unwrap();
}
