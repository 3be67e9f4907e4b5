//! The muP coordinate check on a transformer (Tensor Programs V, Fig. 5):
//! after a few Adam steps, the mean |h| of every weight product's output
//! (embedding, q, k, v, o, the MLP layers, the readout) is flat in width
//! under muP and grows under standard parametrization. Two widths, 32 and
//! 256, of the `transformer` preset sorting tokens; the science behind
//! `examples/coord_check_transformer.toml`.

mod common;

use lmech::backend::device::Device;
use lmech::config::Config;
use lmech::train::{train, RunOptions};

/// The `coord_l1.{l}` values at `step` of a 5-step run at `width`.
fn coords(parametrization: &str, width: usize, step: u64) -> Vec<f64> {
    let text = format!(
        "seed = 0\ndtype = \"f64\"\n\
         [model]\narch = \"transformer\"\nvocab = 16\ndepth = 2\nheads = 4\nnorm = \"layer\"\n\
         activation = \"gelu\"\ncausal = false\nbase_width = 32\nwidth = {width}\n\
         parametrization = \"{parametrization}\"\n\
         [data]\nsource = \"sort\"\nlength = 8\nvocab = 16\nn = 256\nn_test = 32\nseed = 0\n\
         [optim]\nname = \"adam\"\nlr = 0.01\n\
         [train]\nsteps = 5\nbatch_size = 128\nloss = \"xent\"\nlog_every = 1\ncheckpoint = false\n\
         [observe]\nevery = 1\n[observe.coord]\nn = 128\n"
    );
    let cfg = Config::from_toml_str(&text, &[]).unwrap();
    let dir = common::temp_dir(&format!("coord-{parametrization}-{width}"));
    let opts = RunOptions {
        out: dir.join("run"),
        device: Device::Cpu,
        progress: false,
    };
    let report = train(&cfg, &opts).unwrap();
    let rec = report
        .records
        .iter()
        .find(|r| {
            r.get("step").and_then(|s| s.as_f64()) == Some(step as f64)
                && r.get("coord_l1.0").is_some()
        })
        .unwrap_or_else(|| panic!("no coord record at step {step}"));
    (0..)
        .map_while(|l| rec.get(&format!("coord_l1.{l}")).and_then(|v| v.as_f64()))
        .collect()
}

/// Width 256 over width 32, layer by layer, at step 4.
fn growth(parametrization: &str) -> Vec<f64> {
    let (narrow, wide) = (
        coords(parametrization, 32, 4),
        coords(parametrization, 256, 4),
    );
    assert_eq!(narrow.len(), wide.len());
    // embedding, 2 blocks x (q, k, v, o, 2 MLP layers), readout
    assert_eq!(narrow.len(), 14, "{narrow:?}");
    wide.iter().zip(&narrow).map(|(w, n)| w / n).collect()
}

#[test]
fn activations_are_flat_in_width_under_mup_and_grow_under_sp() {
    let mup = growth("mup");
    assert!(
        mup.iter().all(|r| (0.5..2.0).contains(r)),
        "muP: width 256 / width 32 per layer {mup:?}"
    );
    let sp = growth("sp");
    let worst = sp.iter().cloned().fold(0.0, f64::max);
    assert!(worst > 3.0, "SP: width 256 / width 32 per layer {sp:?}");
}
