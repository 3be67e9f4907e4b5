//! Science check: grokking (Power et al. 2022) in `cargo test`. The
//! bundled example, a one-layer transformer on a + b mod 31 from half of
//! the pairs with AdamW and weight decay 1, cut to 2000 steps and without
//! its observers: when train accuracy first reaches 100% the test accuracy
//! is still below 50% (memorized), and at the end it is above 90%
//! (generalized), after test loss first rose while memorizing. About 30 s
//! on 2 cores.

mod common;

use lmech::backend::device::Device;
use lmech::config::Config;
use lmech::observe::config::ObserveConfig;
use lmech::train::{train, RunOptions};
use std::path::Path;

#[test]
fn test_accuracy_jumps_long_after_train_accuracy_reached_one() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grokking.toml");
    let mut cfg = Config::load(&example, &["train.steps=2000".to_string()]).unwrap();
    cfg.observe = ObserveConfig::default();
    let dir = common::temp_dir("grokking");
    let opts = RunOptions {
        out: dir.join("run"),
        device: Device::Cpu,
        progress: false,
    };
    let report = train(&cfg, &opts).unwrap();
    let series = |key: &str| -> Vec<(u64, f64)> {
        report
            .records
            .iter()
            .filter_map(|r| Some((r.get("step")?.as_f64()? as u64, r.get(key)?.as_f64()?)))
            .collect()
    };
    let (train_acc, test_acc, test_loss) =
        (series("train_acc"), series("test_acc"), series("test_loss"));
    let at = |s: &[(u64, f64)], step: u64| s.iter().find(|p| p.0 == step).unwrap().1;
    let memorized = train_acc
        .iter()
        .find(|p| p.1 == 1.0)
        .expect("train accuracy never reached 100%")
        .0;
    let (start, end) = (test_acc[0].1, test_acc.last().unwrap().1);
    println!(
        "train accuracy 100% at step {memorized}, test accuracy then {:.3}, at the end {end:.3}",
        at(&test_acc, memorized)
    );
    assert!(at(&test_acc, memorized) < 0.5, "{test_acc:?}");
    assert!(end > 0.9, "{test_acc:?}");
    assert!(start < 0.1, "chance is 1/31: {test_acc:?}");
    // Memorizing makes the held-out loss grow before it falls.
    let peak = test_loss.iter().map(|p| p.1).fold(0.0, f64::max);
    assert!(peak > 2.0 * test_loss[0].1, "{test_loss:?}");
    assert!(test_loss.last().unwrap().1 < 0.5, "{test_loss:?}");
}

/// The example's embedding without the "=" token: the data's id 31 is
/// refused before training, naming the row, the position, the value and
/// the layer's vocab.
#[test]
fn token_ids_beyond_the_embedding_are_refused() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grokking.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let text = text.replace("vocab = 32", "vocab = 31");
    let cfg = Config::from_toml_str(&text, &[]).unwrap();
    let dir = common::temp_dir("grokking-vocab");
    let opts = RunOptions {
        out: dir.join("run"),
        device: Device::Cpu,
        progress: false,
    };
    let e = train(&cfg, &opts).unwrap_err().to_string();
    assert!(e.contains("model.layers[0].vocab"), "{e}");
    assert!(e.contains("position 2") && e.contains("31"), "{e}");
    assert!(!dir.join("run").exists(), "a run directory was made: {e}");
}
