//! Cohen et al. (2021), the edge of stability, as a test: on a small
//! full-batch GD run the sharpness rises, reaches 2/eta, and its median over
//! the rest of training lies within [0.9, 1.2] x 2/eta. Run through
//! `lmech eos`'s own configuration so the test checks the main job.

use lmech::backend::device::Device;
use lmech::eos::{eos_config, run_eos, summarize, EosOptions};

#[test]
fn sharpness_rises_to_two_over_eta_and_hovers_there() {
    let out = std::env::temp_dir().join(format!("lmech-eos-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = EosOptions {
        out: out.clone(),
        lrs: vec![0.2],
        steps: 500,
        every: 10,
        width: 64,
        n_train: 500,
        device: Device::Cpu,
        progress: false,
        base: None,
    };
    let rows = run_eos(&opts).unwrap();
    let r = &rows[0];
    assert!(!r.diverged);
    let reached = r.reached_at.expect("sharpness never reached 2/eta");
    assert!(
        reached > 0,
        "sharpness started above 2/eta: not the progressive-sharpening regime"
    );
    let ratio = r.median_after.unwrap() / r.threshold;
    assert!(
        (0.9..=1.2).contains(&ratio),
        "median sharpness after reaching 2/eta is {ratio} x 2/eta"
    );
    // The sharpness started well below 2/eta and rose.
    let summary = std::fs::read_to_string(out.join("lr_0.2/metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(summary.lines().next().unwrap()).unwrap();
    let s0 = first["sharpness"].as_f64().unwrap();
    assert!(
        s0 < 0.85 * r.threshold,
        "initial sharpness {s0} vs 2/eta {}",
        r.threshold
    );
    assert!(out.join("eos_lr0.2.svg").exists() && out.join("eos.csv").exists());
    let _ = std::fs::remove_dir_all(&out);
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
    let cfg = eos_config(&EosOptions::default(), 0.1);
    assert_eq!(cfg.train.loss, "mse");
    assert!(cfg.observe.sharpness.is_some());
}
