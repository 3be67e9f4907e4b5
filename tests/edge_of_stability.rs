//! Cohen et al. (2021), the edge of stability, as a test: on a small
//! full-batch GD run the sharpness rises, reaches 2/eta, and its median over
//! the rest of training lies within [0.9, 1.2] x 2/eta. Run through
//! `lmech eos`'s own configuration so the test checks the main job, on the
//! MLP and on a CNN.

use lmech::backend::device::Device;
use lmech::eos::{eos_config, run_eos, summarize, EosOptions};

/// Runs `lmech eos`'s configuration for `arch` at `lr` and checks the
/// edge of stability: progressive sharpening from below 0.85 x 2/eta, then a
/// median within [0.9, 1.2] x 2/eta after reaching it.
fn check_edge_of_stability(arch: &str, width: usize, n_train: usize, lr: f64, steps: u64) {
    let out = std::env::temp_dir().join(format!("lmech-eos-test-{arch}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = EosOptions {
        out: out.clone(),
        lrs: vec![lr],
        steps,
        every: 10,
        width,
        arch: arch.into(),
        n_train,
        device: Device::Cpu,
        progress: false,
        base: None,
        central_flow: None,
    };
    let rows = run_eos(&opts).unwrap();
    let r = &rows[0];
    assert!(!r.diverged, "{arch}");
    let reached = r.reached_at.expect("sharpness never reached 2/eta");
    assert!(
        reached > 0,
        "{arch}: sharpness started above 2/eta: not the progressive-sharpening regime"
    );
    let ratio = r.median_after.unwrap() / r.threshold;
    assert!(
        (0.9..=1.2).contains(&ratio),
        "{arch}: median sharpness after reaching 2/eta is {ratio} x 2/eta"
    );
    // The sharpness started well below 2/eta and rose.
    let summary = std::fs::read_to_string(out.join(format!("lr_{lr}/metrics.jsonl"))).unwrap();
    let first: serde_json::Value = serde_json::from_str(summary.lines().next().unwrap()).unwrap();
    let s0 = first["sharpness"].as_f64().unwrap();
    assert!(
        s0 < 0.85 * r.threshold,
        "{arch}: initial sharpness {s0} vs 2/eta {}",
        r.threshold
    );
    assert!(out.join(format!("eos_lr{lr}.svg")).exists() && out.join("eos.csv").exists());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn sharpness_rises_to_two_over_eta_and_hovers_there() {
    check_edge_of_stability("mlp", 64, 500, 0.2, 500);
}

/// The same on Cohen et al.'s CNN (two 3x3 convolutions with pooling, 16
/// channels here) on 300 digits: measured, the sharpness rises from 5.1,
/// reaches 10 at step 130 and its median after is 1.03 x 2/eta.
#[test]
fn cnn_sharpness_rises_to_two_over_eta_and_hovers_there() {
    check_edge_of_stability("cnn", 16, 300, 0.2, 500);
}

#[test]
fn summary_finds_the_crossing_and_the_median_after_it() {
    let s = [
        (0.0, 1.0),
        (10.0, 3.0),
        (20.0, 5.0),
        (30.0, 4.0),
        (40.0, 6.0),
    ];
    assert_eq!(summarize(&s, 4.5), (Some(20), Some(5.0)));
    assert_eq!(summarize(&s, 7.0), (None, None));
    // Starting above the threshold (a catapult), the crossing is the
    // climb back after the first measurement below it.
    let catapult = [
        (0.0, 9.0),
        (10.0, 8.0),
        (20.0, 3.0),
        (30.0, 5.0),
        (40.0, 4.0),
    ];
    assert_eq!(summarize(&catapult, 4.5), (Some(30), Some(4.5)));
    // Never below: reached at the first measurement.
    assert_eq!(
        summarize(&[(0.0, 6.0), (10.0, 7.0)], 4.5),
        (Some(0), Some(6.5))
    );
    let cfg = eos_config(&EosOptions::default(), 0.1);
    assert_eq!(cfg.train.loss, "mse");
    assert!(cfg.observe.sharpness.is_some());
}

/// `lmech eos --central-flow`: each run integrates its central flow, the
/// table gains the flow's columns and the runs' loss is logged every step;
/// without it the configuration (and so the output) is the default's.
#[test]
fn eos_with_the_central_flow_adds_its_prediction() {
    use lmech::eos::table_text;
    use lmech::observe::config::CentralFlowConfig;
    let plain = EosOptions::default();
    let cfg = eos_config(&plain, 0.1);
    assert!(cfg.observe.central_flow.is_none());
    assert_eq!(cfg.train.log_every, plain.every);
    let out = std::env::temp_dir().join(format!("lmech-eos-flow-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = EosOptions {
        out: out.clone(),
        lrs: vec![0.3],
        steps: 30,
        every: 5,
        width: 16,
        n_train: 100,
        progress: false,
        central_flow: Some(CentralFlowConfig {
            k: 1,
            substeps: 2,
            ..CentralFlowConfig::default()
        }),
        ..EosOptions::default()
    };
    let with_flow = eos_config(&opts, 0.3);
    assert_eq!(with_flow.train.log_every, 1);
    assert_eq!(
        with_flow.observe.central_flow.as_ref().unwrap().every,
        Some(5)
    );
    let rows = run_eos(&opts).unwrap();
    let flow = rows[0].flow.as_ref().expect("no central flow in the row");
    assert!(flow.predicted_final.is_finite() && flow.average_final.is_finite());
    assert!(flow.mean_error.is_finite() && flow.gradient_flow_error.is_finite());
    assert!(table_text(&rows).contains("flow prediction"));
    let csv = std::fs::read_to_string(out.join("eos.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with("gradient_flow_mean_error"));
    assert_eq!(csv.lines().nth(1).unwrap().split(',').count(), 10);
    let svg = std::fs::read_to_string(out.join("eos_lr0.3.svg")).unwrap();
    assert!(svg.contains("running average") && svg.contains("gradient flow"));
    assert!(out.join("lr_0.3").join("central_flow.svg").exists());
    let _ = std::fs::remove_dir_all(&out);
}
