//! The central flow against the real run (Cohen, Damian et al.,
//! arXiv:2410.24206): full-batch GD at two learning rates and RMSProp on
//! the bundled digits (first 200 examples, pixels in [0, 1], one-hot
//! targets), a depth-3 width-32 tanh MLP, squared loss, f64, 300 steps,
//! with `[observe.central_flow]` (k = 3, 4 substeps a step) recording
//! every step. At the edge of stability the real loss oscillates; its
//! running average (`run::running_average`, 10 steps either side) is what
//! the flow predicts.
//!
//! The tolerances come from these runs (deterministic on the CPU whatever
//! the thread count), measured at commit time:
//! - GD, eta = 0.3 (reaches 2/eta at step 19): the prediction's relative
//!   error against the running average is 2.6% on average over the run
//!   and 8.2% at worst; gradient flow ends 28% below the average.
//! - GD, eta = 0.4 (starts above 2/eta): 3.7% on average, 13% at worst
//!   (the first oscillations, before they settle); gradient flow ends 42%
//!   below.
//! - RMSProp, lr = 0.001 (alpha 0.99): 5.4% on average, 17% at worst;
//!   gradient flow (RMSProp's flow without oscillations) ends 52% below.
//! So the test asks: mean error at most 6% (GD) and 8% (RMSProp), worst
//! at most 15% (GD) and 20% (RMSProp), and gradient flow's final error at
//! least 20% and at least three times the central flow's mean. The paper
//! shows close agreement on larger networks; this 200-example net has
//! catapult-like bursts (the worst errors fall there), and the running
//! average itself carries a few percent of the oscillation's phase. The
//! flow's sharpness is held at its edge (2/eta for GD, 2 for the
//! preconditioned sharpness of RMSProp) within 1% whenever X > 0, from
//! step 5 (or the record after the first at the edge) on, and never above it by more
//! where X = 0 (RMSProp's flow dips up to 2.2% below the edge in its first
//! 50 steps, as nu grows; measured: at most 0.3% off for GD).

mod common;

use common::temp_dir;
use lmech::backend::device::Device;
use lmech::config::Config;
use lmech::run::{running_average, Record, RUNNING_AVERAGE_HALF_WINDOW};
use lmech::train::{train, RunOptions};

fn run(optim: &str, lr: f64) -> Vec<Record> {
    let text = format!(
        r#"
dtype = "f64"
[model]
width = 32
depth = 3
activation = "tanh"
[data]
source = "digits"
scale = 0.0625
one_hot = true
n_train = 200
[optim]
name = "{optim}"
lr = {lr}
[train]
steps = 300
loss = "mse"
log_every = 1
checkpoint = false
[observe]
every = 1
[observe.central_flow]
k = 3
substeps = 4
"#
    );
    let cfg = Config::from_toml_str(&text, &[]).unwrap();
    let dir = temp_dir("central_flow_science").join(format!("{optim}_{lr}"));
    let report = train(
        &cfg,
        &RunOptions {
            out: dir.clone(),
            device: Device::Cpu,
            progress: false,
        },
    )
    .unwrap();
    assert!(!report.diverged(), "{optim} {lr}");
    assert!(dir.join("central_flow.svg").exists());
    report.records
}

fn value(r: &Record, key: &str) -> f64 {
    r.get(key).and_then(|v| v.as_f64()).unwrap()
}

struct Limits {
    mean: f64,
    worst: f64,
}

fn check(optim: &str, lr: f64, limits: Limits) {
    let recs = run(optim, lr);
    let loss: Vec<(f64, f64)> = recs
        .iter()
        .map(|r| (value(r, "step"), value(r, "loss")))
        .collect();
    let average = running_average(&loss, RUNNING_AVERAGE_HALF_WINDOW);
    let last = loss.last().unwrap().0;
    // Full windows only: the ends of the run average fewer steps.
    let inside =
        |s: f64| s >= RUNNING_AVERAGE_HALF_WINDOW && s <= last - RUNNING_AVERAGE_HALF_WINDOW;
    let mut errors = Vec::new();
    let mut gf_errors = Vec::new();
    for (r, &(s, avg)) in recs.iter().zip(&average) {
        if !inside(s) {
            continue;
        }
        errors.push((value(r, "central_flow_predicted_loss") - avg).abs() / avg);
        gf_errors.push((value(r, "gradient_flow_loss") - avg).abs() / avg);
    }
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    let worst = errors.iter().cloned().fold(0.0, f64::max);
    let gf_final = *gf_errors.last().unwrap();
    let edge_at = recs
        .iter()
        .position(|r| value(r, "central_flow_x.0") > 0.0)
        .expect("the flow never reached the edge");
    // While X > 0 the sharpness is held at the edge; where X = 0 the flow
    // is briefly below it (RMSProp's nu moves the preconditioned sharpness
    // down), never above.
    // The first steps excepted: RMSProp's flow starts 176x above its edge
    // (nu starts at PyTorch's (1 - alpha) g^2) and is back within 1% of it
    // by step 3.
    let off = recs[(edge_at + 1).max(5)..]
        .iter()
        .map(|r| {
            let ratio = value(r, "central_flow_sharpness") / value(r, "central_flow_edge");
            if value(r, "central_flow_x.0") > 0.0 {
                (ratio - 1.0).abs()
            } else {
                (ratio - 1.0).max(0.0)
            }
        })
        .fold(0.0, f64::max);
    eprintln!(
        "{optim} lr {lr}: at the edge from step {edge_at}; predicted loss vs running average: \
         mean {mean:.4}, worst {worst:.4}; gradient flow's final error {gf_final:.4}; \
         sharpness off the edge by at most {off:.4}"
    );
    assert!(mean <= limits.mean, "{optim} {lr}: mean error {mean}");
    assert!(worst <= limits.worst, "{optim} {lr}: worst error {worst}");
    assert!(
        gf_final >= 0.2 && gf_final >= 3.0 * mean,
        "{optim} {lr}: gradient flow ends {gf_final} from the average (central flow: {mean})"
    );
    assert!(
        off <= 0.01,
        "{optim} {lr}: the flow's sharpness left the edge by {off}"
    );
}

#[test]
fn gd_central_flow_predicts_the_running_average_at_two_learning_rates() {
    for lr in [0.3, 0.4] {
        check(
            "gd",
            lr,
            Limits {
                mean: 0.06,
                worst: 0.15,
            },
        );
    }
}

#[test]
fn rmsprop_central_flow_predicts_the_running_average() {
    check(
        "rmsprop",
        0.001,
        Limits {
            mean: 0.08,
            worst: 0.2,
        },
    );
}
