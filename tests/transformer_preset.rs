//! The `transformer` preset: its layer lists (pre-norm with a final norm,
//! post-norm, no norm; a readout at every position for sequence labels,
//! at the last position otherwise), the keys it refuses by name, and a
//! short training run of each kind through the `lmech` binary's library.

mod common;

use lmech::backend::device::Device;
use lmech::config::Config;
use lmech::nn::layer_spec::LayerSpec;
use lmech::nn::parametrization::Parametrization;
use lmech::nn::shape::Shape;
use lmech::train::{train, RunOptions, RunReport};

/// `[model]` keys on top of a 2-block transformer of width 8.
fn config(model: &str, data: &str) -> Config {
    let text = format!(
        "seed = 1\ndtype = \"f64\"\n[model]\narch = \"transformer\"\nwidth = 8\ndepth = 2\nheads = 2\n\
         activation = \"gelu\"\n{model}\n[data]\n{data}\n[optim]\nname = \"adam\"\nlr = 0.01\n\
         [train]\nsteps = 5\nloss = \"xent\"\nlog_every = 1\n"
    );
    Config::from_toml_str(&text, &[]).unwrap()
}

const MODULAR: &str = "source = \"modular\"\np = 7\n";
const SORT: &str = "source = \"sort\"\nlength = 5\nvocab = 6\nn_train = 40\nn_test = 10\n";

fn kinds(cfg: &Config, input: Shape, outputs: Shape) -> Result<Vec<String>, String> {
    let spec = cfg
        .model
        .spec(input, outputs, Parametrization::Standard)
        .map_err(|e| e.to_string())?;
    Ok(spec.layers.iter().map(describe).collect())
}

/// A layer's kind, a residual's with its body's.
fn describe(l: &LayerSpec) -> String {
    match l {
        LayerSpec::Residual { layers, .. } => {
            let body: Vec<String> = layers.iter().map(describe).collect();
            format!("residual[{}]", body.join(" "))
        }
        l => l.kind().to_string(),
    }
}

/// Train `cfg` on the CPU into a fresh directory named for `name`.
fn run(cfg: &Config, name: &str) -> RunReport {
    let dir = common::temp_dir(name);
    let opts = RunOptions {
        out: dir.join("run"),
        device: Device::Cpu,
        progress: false,
    };
    train(cfg, &opts).unwrap()
}

/// The training loss of every record that has one.
fn losses(report: &RunReport) -> Vec<f64> {
    report
        .records
        .iter()
        .filter_map(|r| r.get("loss")?.as_f64())
        .collect()
}

#[test]
fn pre_norm_post_norm_and_no_norm_blocks() {
    let (tokens, answer) = (Shape::Flat(3), Shape::Flat(7));
    let pre = kinds(
        &config("vocab = 8\nnorm = \"layer\"", MODULAR),
        tokens,
        answer,
    )
    .unwrap();
    let block = [
        "residual[layer_norm attention]",
        "residual[layer_norm conv1d conv1d]",
    ];
    let mut want = vec!["embedding", "position_embedding"];
    want.extend(block);
    want.extend(block);
    want.extend(["layer_norm", "pick_position", "dense"]);
    assert_eq!(pre, want);
    let post = kinds(
        &config(
            "vocab = 8\nnorm = \"rms\"\nnorm_position = \"post\"",
            MODULAR,
        ),
        tokens,
        answer,
    )
    .unwrap();
    let block = [
        "residual[attention]",
        "rms_norm",
        "residual[conv1d conv1d]",
        "rms_norm",
    ];
    let mut want = vec!["embedding", "position_embedding"];
    want.extend(block);
    want.extend(block);
    want.extend(["pick_position", "dense"]);
    assert_eq!(post, want);
    let none = kinds(&config("vocab = 8", MODULAR), tokens, answer).unwrap();
    assert_eq!(none.len(), 2 + 4 + 2, "{none:?}");
    assert!(!none.iter().any(|k| k.contains("norm")), "{none:?}");
}

#[test]
fn sequence_labels_get_a_readout_at_every_position() {
    let cfg = config("vocab = 6\nnorm = \"layer\"\nmlp_width = 12", SORT);
    let spec = cfg
        .model
        .spec(
            Shape::Flat(5),
            Shape::Signal { c: 6, l: 5 },
            Parametrization::Mup,
        )
        .unwrap();
    let last = spec.layers.last().unwrap();
    assert!(
        matches!(
            last,
            LayerSpec::Conv1d {
                channels: 6,
                kernel: 1,
                ..
            }
        ),
        "{last:?}"
    );
    let mlp = match &spec.layers[3] {
        LayerSpec::Residual { layers, .. } => layers[1].clone(),
        l => panic!("{l:?}"),
    };
    assert!(
        matches!(mlp, LayerSpec::Conv1d { channels: 12, .. }),
        "{mlp:?}"
    );
}

#[test]
fn misfit_keys_are_refused_by_name() {
    let (tokens, answer) = (Shape::Flat(3), Shape::Flat(7));
    let e = kinds(&config("", MODULAR), tokens, answer).unwrap_err();
    assert!(e.contains("model.vocab"), "{e}");
    let mut three = config("vocab = 8", MODULAR);
    three.model.heads = 3;
    let e = kinds(&three, tokens, answer).unwrap_err();
    assert!(e.contains("model.heads") && e.contains("3 heads"), "{e}");
    let e = kinds(
        &config("vocab = 8\nnorm_position = \"middle\"", MODULAR),
        tokens,
        answer,
    )
    .unwrap_err();
    assert!(
        e.contains("model.norm_position") && e.contains("middle"),
        "{e}"
    );
    let e = kinds(
        &config("vocab = 8\nnorm = \"batch\"", MODULAR),
        tokens,
        answer,
    )
    .unwrap_err();
    assert!(e.contains("model.norm") && e.contains("mixes"), "{e}");
}

/// `tied = true`: the readout is the embedding's weight (an `unembedding`
/// at every position for sorting, after the last position otherwise), so
/// the classes must be the vocabulary; modular's are not (its "=" token).
/// A tied sorting model trains.
#[test]
fn a_tied_readout_reads_the_embedding() {
    let cfg = config("vocab = 6\ntied = true\ncausal = false", SORT);
    let kinds_sort = kinds(&cfg, Shape::Flat(5), Shape::Signal { c: 6, l: 5 }).unwrap();
    assert_eq!(kinds_sort.last().unwrap(), "unembedding", "{kinds_sort:?}");
    let picked = kinds(
        &config("vocab = 7\ntied = true", MODULAR),
        Shape::Flat(3),
        Shape::Flat(7),
    )
    .unwrap();
    assert_eq!(
        &picked[picked.len() - 2..],
        ["pick_position", "unembedding"]
    );
    let e = kinds(
        &config("vocab = 8\ntied = true", MODULAR),
        Shape::Flat(3),
        Shape::Flat(7),
    )
    .unwrap_err();
    assert!(
        e.contains("model.tied") && e.contains("8 tokens") && e.contains("7 classes"),
        "{e}"
    );
    let losses = losses(&run(&cfg, "transformer-tied"));
    assert!(losses.last() < losses.first(), "{losses:?}");
    // The untied readout is a 1x1 convolution 8 -> 6 with a bias.
    let count = |model: &str| {
        let spec = config(model, SORT)
            .model
            .spec(
                Shape::Flat(5),
                Shape::Signal { c: 6, l: 5 },
                Parametrization::Standard,
            )
            .unwrap();
        let be = lmech::Cpu::f64();
        lmech::nn::model::Model::init(&be, spec, &[0])
            .unwrap()
            .param_count()
    };
    assert_eq!(
        count("vocab = 6") - count("vocab = 6\ntied = true"),
        6 * 8 + 6
    );
}

/// Five Adam steps on modular addition (answer at the last position) and
/// on sorting (a label at every position): finite losses, the loss going
/// down, accuracies in [0, 1].
#[test]
fn both_kinds_train() {
    for (name, cfg) in [
        ("modular", config("vocab = 8\nnorm = \"layer\"", MODULAR)),
        (
            "sort",
            config("vocab = 6\nnorm = \"layer\"\ncausal = false", SORT),
        ),
    ] {
        let report = run(&cfg, &format!("transformer-{name}"));
        let losses = losses(&report);
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        assert!(losses.last() < losses.first(), "{name}: {losses:?}");
        let acc = report.final_metrics["train_acc"];
        assert!((0.0..=1.0).contains(&acc), "{name}: {acc}");
    }
}

/// Attention entropy per head: muP's zero queries make every head uniform
/// at init, so each head has exactly ln T (non-causal) or the mean over
/// query positions of ln(q + 1) (causal); under SP the heads are below
/// that and differ. `[observe.coord]` logs them as `attn_entropy.{a}.{h}`.
#[test]
fn attention_entropy_per_head() {
    use lmech::nn::model::Model;
    use lmech::observe::stats::activation_stats;
    use lmech::{Backend, Cpu};
    let be = Cpu::f64();
    let (tokens, answer) = (Shape::Flat(3), Shape::Flat(7));
    let ids: Vec<f64> = (0..12).map(|i| (i * 5 % 8) as f64).collect();
    let x = be.from_f64(&[4, 3], &ids).unwrap();
    for causal in [false, true] {
        let mut cfg = config("vocab = 8\nnorm = \"layer\"", MODULAR);
        cfg.model.causal = causal;
        let spec = cfg
            .model
            .spec(tokens, answer, Parametrization::Mup)
            .unwrap();
        let m = Model::init(&be, spec, &[2]).unwrap();
        let h = activation_stats(&be, &m, &x).unwrap().attention_entropy;
        let want = if causal {
            (1..=3).map(|v| (v as f64).ln()).sum::<f64>() / 3.0
        } else {
            3f64.ln()
        };
        assert_eq!(h.len(), 2, "one entry per block");
        for e in h.iter().flatten() {
            assert!(
                (e - want).abs() < 1e-12,
                "causal {causal}: {h:?}, want {want}"
            );
        }
    }
    let mut cfg = config("vocab = 8\nnorm = \"layer\"", MODULAR);
    cfg.model.causal = false;
    let spec = cfg
        .model
        .spec(tokens, answer, Parametrization::Standard)
        .unwrap();
    let m = Model::init(&be, spec, &[2]).unwrap();
    let h = activation_stats(&be, &m, &x).unwrap().attention_entropy;
    for e in h.iter().flatten() {
        assert!(*e > 0.0 && *e < 3f64.ln(), "{h:?}");
    }
    assert!(
        h.iter().any(|heads| (heads[0] - heads[1]).abs() > 1e-6),
        "{h:?}"
    );

    let text = "[observe.coord]\nn = 8\nevery = 1\n";
    let mut cfg = config("vocab = 8\nnorm = \"layer\"", MODULAR);
    cfg.observe = Config::from_toml_str(text, &[]).unwrap().observe;
    let report = run(&cfg, "transformer-entropy");
    let logged = &report.records[0];
    for key in ["attn_entropy.0.0", "attn_entropy.0.1", "attn_entropy.1.1"] {
        let e = logged.get(key).and_then(|v| v.as_f64());
        assert!(
            e.is_some_and(|e| e > 0.0 && e <= 3f64.ln() + 1e-12),
            "{key}: {e:?}"
        );
    }
}
