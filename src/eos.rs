//! `lmech eos`: the edge-of-stability experiment of Cohen et al. (2021), on
//! the bundled digits by default or on any config's model and data. A
//! model is trained by full-batch gradient descent
//! at several learning rates while the sharpness (top Hessian eigenvalue of
//! the training loss, on the whole training set) is tracked. Under GD the
//! sharpness rises until it reaches 2/eta, then hovers there while the loss
//! keeps falling, non-monotonically. One plot per learning rate shows
//! sharpness against the 2/eta line with the loss beside it, and a table
//! gives, per eta, when sharpness first reached 2/eta and its median after.
//! With `--central-flow` each run also integrates its central flow
//! (`[observe.central_flow]`, logging the real loss at every step): the
//! plots gain the flow's predicted loss, the real loss's running average
//! and gradient flow's loss, and the flow's sharpness; the table the
//! predicted and averaged final losses and how far each flow's loss was,
//! on average, from the running average.

use crate::backend::device::Device;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::observe::config::{CentralFlowConfig, SpectrumTop};
use crate::run::{
    plot_panels, running_average, write_atomic, Panel, Record, RUNNING_AVERAGE_HALF_WINDOW,
};
use crate::train::{train, RunOptions};
use std::fmt::Write as _;
use std::path::PathBuf;

pub struct EosOptions {
    pub out: PathBuf,
    pub lrs: Vec<f64>,
    pub steps: u64,
    /// Measure sharpness every this many steps.
    pub every: u64,
    pub width: usize,
    /// The digits model: "mlp" (a depth-3 tanh MLP of `width`) or a
    /// convolutional preset (`cnn`: Cohen et al.'s two 3x3 convolutions
    /// with max pooling; `resnet`: ResNet-8) of `width` channels; or
    /// `transformer`, one block of `width` on modular addition.
    pub arch: String,
    pub n_train: usize,
    pub device: Device,
    pub progress: bool,
    /// A config to run instead of the digits default: its model, data, loss
    /// and observers, at each of `lrs`, for `steps` steps, with sharpness
    /// tracked every `every` steps unless it sets `[observe.sharpness]`
    /// itself. `width` and `n_train` do not apply.
    pub base: Option<Config>,
    /// Integrate each run's central flow (`lmech eos --central-flow`): this
    /// table unless the config sets `[observe.central_flow]` itself.
    pub central_flow: Option<CentralFlowConfig>,
}

impl Default for EosOptions {
    fn default() -> Self {
        EosOptions {
            out: PathBuf::from("runs/eos"),
            lrs: vec![0.1, 0.14, 0.2],
            steps: 1500,
            every: 10,
            width: 64,
            arch: "mlp".into(),
            n_train: 1000,
            device: Device::Cpu,
            progress: true,
            base: None,
            central_flow: None,
        }
    }
}

/// One learning rate's outcome.
#[derive(Clone, Debug)]
pub struct EosRow {
    pub lr: f64,
    pub threshold: f64,
    /// First measured step with sharpness >= 2/eta after one below it (or
    /// the first step, when it never was below).
    pub reached_at: Option<u64>,
    /// Median sharpness over the measurements from `reached_at` on.
    pub median_after: Option<f64>,
    pub final_loss: f64,
    pub diverged: bool,
    pub dir: PathBuf,
    /// The central flow's outcome, with `--central-flow`.
    pub flow: Option<FlowRow>,
}

/// How the central flow and gradient flow compare with the real run's
/// running average (`run::running_average`) over the flow's records.
#[derive(Clone, Debug)]
pub struct FlowRow {
    /// The flow's predicted time-averaged loss at the last record.
    pub predicted_final: f64,
    /// The real loss's running average at the last record.
    pub average_final: f64,
    /// Mean over records of |predicted - average| / average.
    pub mean_error: f64,
    /// The same for gradient flow's loss.
    pub gradient_flow_error: f64,
}

/// The sharpness observer the experiment adds when the config has none.
fn sharpness_every(every: u64) -> SpectrumTop {
    SpectrumTop {
        every: Some(every),
        tol: 1e-3,
        max_iter: 30,
        ..SpectrumTop::default()
    }
}

/// The config of one run: `opts.base` at learning rate `lr`, or by default
/// digits (first `n_train` examples, pixels scaled to [0, 1], one-hot
/// targets), a depth-3 tanh MLP (or the `arch` preset, tanh, average
/// pooling; `transformer`: one block on modular addition, see
/// `transformer_eos_config`), MSE loss `0.5 ||f - y||^2`, full-batch GD,
/// sharpness by warm-started Lanczos.
pub fn eos_config(opts: &EosOptions, lr: f64) -> Config {
    let mut cfg = eos_config_without_flow(opts, lr);
    if let Some(flow) = &opts.central_flow {
        if cfg.observe.central_flow.is_none() {
            cfg.observe.central_flow = Some(CentralFlowConfig {
                every: Some(opts.every),
                ..flow.clone()
            });
        }
        // The running average needs the loss of every step: at the edge it
        // oscillates with a period of a few steps.
        cfg.train.log_every = 1;
    }
    cfg
}

fn eos_config_without_flow(opts: &EosOptions, lr: f64) -> Config {
    if let Some(base) = &opts.base {
        let mut cfg = base.clone();
        cfg.name = Some(format!("{} lr={lr}", base.name.as_deref().unwrap_or("eos")));
        cfg.optim.lr = lr;
        cfg.train.steps = opts.steps;
        if cfg.observe.sharpness.is_none() {
            cfg.observe.sharpness = Some(sharpness_every(opts.every));
        }
        return cfg;
    }
    let mut cfg = Config {
        name: Some(format!("eos lr={lr}")),
        ..Config::default()
    };
    cfg.model.width = opts.width;
    cfg.model.depth = 3;
    cfg.model.activation = "tanh".into();
    if opts.arch == "transformer" {
        return with_eos_training(transformer_eos_config(cfg), opts, lr);
    }
    if opts.arch != "mlp" {
        cfg.model.arch = Some(opts.arch.clone());
        cfg.model.depth = if opts.arch == "resnet" { 8 } else { 2 };
        cfg.model.pool = "avg".into();
    }
    cfg.data.scale = Some(1.0 / 16.0);
    cfg.data.one_hot = true;
    cfg.data.n_train = Some(opts.n_train);
    with_eos_training(cfg, opts, lr)
}

/// One pre-norm transformer block (2 heads, LayerNorm, a gelu MLP) of
/// `width` on a + b mod 13, 90% of the 169 pairs, MSE on one-hot answers at the
/// last position. `n_train` does not apply.
fn transformer_eos_config(mut cfg: Config) -> Config {
    let p = 13;
    cfg.model.arch = Some("transformer".into());
    cfg.model.depth = 1;
    cfg.model.heads = 2;
    cfg.model.norm = "layer".into();
    cfg.model.activation = "gelu".into();
    cfg.model.vocab = Some(p + 1);
    cfg.data.source = "modular".into();
    cfg.data.p = Some(p);
    cfg.data.train_fraction = Some(0.9);
    cfg.data.one_hot = true;
    cfg
}

/// Full-batch GD at `lr` with MSE, sharpness tracked every `opts.every`.
fn with_eos_training(mut cfg: Config, opts: &EosOptions, lr: f64) -> Config {
    cfg.optim.name = "gd".into();
    cfg.optim.lr = lr;
    cfg.train.loss = "mse".into();
    cfg.train.steps = opts.steps;
    cfg.train.log_every = opts.every;
    cfg.observe.every = opts.every;
    cfg.observe.sharpness = Some(sharpness_every(opts.every));
    cfg
}

/// The stability threshold of full-batch GD at `lr`: `2/eta`, or
/// `(2 + 2 beta)/eta` with heavy-ball momentum `beta` (Cohen et al. 2021,
/// appendix). Other optimizers have no such threshold and are refused.
fn stability_threshold(cfg: &Config) -> Result<f64> {
    if !matches!(cfg.optim.name.as_str(), "gd" | "sgd") {
        return Err(Error::config(
            "optim.name",
            format!(
                "the edge-of-stability experiment needs gradient descent (gd), got {:?}; \
                 adaptive optimizers have no 2/eta threshold",
                cfg.optim.name
            ),
        ));
    }
    if cfg.train.batch_size != 0 {
        return Err(Error::config(
            "train.batch_size",
            format!(
                "the edge-of-stability experiment is full-batch; set 0 (got {})",
                cfg.train.batch_size
            ),
        ));
    }
    if cfg.optim.nesterov {
        return Err(Error::config(
            "optim.nesterov",
            "the edge-of-stability threshold is known for heavy-ball momentum only",
        ));
    }
    Ok((2.0 + 2.0 * cfg.optim.momentum) / cfg.optim.lr)
}

/// (step, value) of `key` over the records that have it.
fn series(records: &[Record], key: &str) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter_map(|r| {
            let step = r.get("step")?.as_f64()?;
            Some((step, r.get(key)?.as_f64()?))
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    })
}

/// When sharpness first reached `threshold` from below, and its median
/// from then on. A model that starts above the threshold (a transformer
/// whose initial sharpness exceeds 2/eta catapults down first) reaches it
/// when it climbs back after its first measurement below; one that never
/// goes below reached it at its first measurement.
pub fn summarize(sharpness: &[(f64, f64)], threshold: f64) -> (Option<u64>, Option<f64>) {
    let start = sharpness
        .iter()
        .position(|&(_, s)| s < threshold)
        .unwrap_or(0);
    let crossing = sharpness[start..]
        .iter()
        .position(|&(_, s)| s >= threshold)
        .map(|i| start + i);
    match crossing {
        Some(i) => (
            Some(sharpness[i].0 as u64),
            median(sharpness[i..].iter().map(|p| p.1).collect()),
        ),
        None => (None, None),
    }
}

/// Run the experiment; writes one run directory per learning rate under
/// `opts.out`, plots `eos_lr{eta}.svg` and the table `eos.csv`.
pub fn run_eos(opts: &EosOptions) -> Result<Vec<EosRow>> {
    if opts.lrs.is_empty() || opts.lrs.iter().any(|&lr| !(lr > 0.0 && lr.is_finite())) {
        return Err(Error::config(
            "--lrs",
            "needs one or more positive learning rates",
        ));
    }
    let configs: Vec<Config> = opts.lrs.iter().map(|&lr| eos_config(opts, lr)).collect();
    for cfg in &configs {
        stability_threshold(cfg)?;
        cfg.resolve()?;
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let mut rows = Vec::new();
    for (cfg, &lr) in configs.iter().zip(&opts.lrs) {
        let dir = opts.out.join(format!("lr_{lr}"));
        let report = train(
            cfg,
            &RunOptions {
                out: dir.clone(),
                device: opts.device,
                progress: opts.progress,
            },
        )?;
        let threshold = stability_threshold(cfg)?;
        let sharp = series(&report.records, "sharpness");
        let loss = series(&report.records, "loss");
        let (reached_at, median_after) = summarize(&sharp, threshold);
        let end = loss.last().map(|p| p.0).unwrap_or(0.0);
        let panels = [
            Panel {
                title: format!("sharpness, eta = {lr}"),
                x_label: "step".into(),
                y_label: "top Hessian eigenvalue".into(),
                series: vec![
                    ("sharpness".into(), sharp.clone()),
                    ("2/eta".into(), vec![(0.0, threshold), (end, threshold)]),
                ],
                log_y: false,
            },
            Panel {
                title: format!("training loss, eta = {lr}"),
                x_label: "step".into(),
                y_label: "loss".into(),
                series: vec![("loss".into(), loss.clone())],
                log_y: loss.iter().all(|p| p.1 > 0.0),
            },
        ];
        let flow = flow_row(&report.records);
        let panels = match flow {
            Some(_) => with_flow_series(panels, &report.records, &loss),
            None => Vec::from(panels),
        };
        plot_panels(&opts.out.join(format!("eos_lr{lr}.svg")), &panels)?;
        rows.push(EosRow {
            lr,
            threshold,
            reached_at,
            median_after,
            final_loss: loss.last().map(|p| p.1).unwrap_or(f64::NAN),
            diverged: report.diverged(),
            dir: report.dir,
            flow,
        });
    }
    write_atomic(&opts.out.join("eos.csv"), table_csv(&rows).as_bytes())?;
    Ok(rows)
}

fn table_csv(rows: &[EosRow]) -> String {
    let flows = rows.iter().any(|r| r.flow.is_some());
    let mut s = String::from(
        "eta,two_over_eta,first_step_at_2_over_eta,median_sharpness_after,final_loss,diverged",
    );
    if flows {
        s.push_str(",central_flow_predicted_final,running_average_final,central_flow_mean_error,gradient_flow_mean_error");
    }
    s.push('\n');
    for r in rows {
        let _ = write!(
            s,
            "{},{},{},{},{},{}",
            r.lr,
            r.threshold,
            r.reached_at.map(|v| v.to_string()).unwrap_or_default(),
            r.median_after.map(|v| v.to_string()).unwrap_or_default(),
            r.final_loss,
            r.diverged
        );
        if flows {
            let _ = match &r.flow {
                Some(f) => write!(
                    s,
                    ",{},{},{},{}",
                    f.predicted_final, f.average_final, f.mean_error, f.gradient_flow_error
                ),
                None => write!(s, ",,,,"),
            };
        }
        s.push('\n');
    }
    s
}

/// The eos figure's panels with the flows added: the central flow's
/// sharpness beside the real one, and in the loss panel the running
/// average, the flow's prediction and gradient flow's loss.
fn with_flow_series(panels: [Panel; 2], records: &[Record], loss: &[(f64, f64)]) -> Vec<Panel> {
    let [mut sharp, mut loss_panel] = panels;
    sharp.series.push((
        "central flow".into(),
        series(records, "central_flow_sharpness"),
    ));
    let more = [
        (
            "running average",
            running_average(loss, RUNNING_AVERAGE_HALF_WINDOW),
        ),
        (
            "central flow",
            series(records, "central_flow_predicted_loss"),
        ),
        ("gradient flow", series(records, "gradient_flow_loss")),
    ];
    for (name, points) in more {
        loss_panel.series.push((name.into(), points));
    }
    vec![sharp, loss_panel]
}

/// The flows against the running average of the real loss, at the steps
/// the flow recorded; None without a central flow.
pub fn flow_row(records: &[Record]) -> Option<FlowRow> {
    let loss = series(records, "loss");
    let average = running_average(&loss, RUNNING_AVERAGE_HALF_WINDOW);
    let at = |step: f64| average.iter().find(|p| p.0 == step).map(|p| p.1);
    let predicted = series(records, "central_flow_predicted_loss");
    let gradient = series(records, "gradient_flow_loss");
    let error = |points: &[(f64, f64)]| -> f64 {
        let errs: Vec<f64> = points
            .iter()
            .filter_map(|&(s, v)| at(s).map(|a| (v - a).abs() / a))
            .collect();
        errs.iter().sum::<f64>() / errs.len().max(1) as f64
    };
    let &(last, predicted_final) = predicted.last()?;
    Some(FlowRow {
        predicted_final,
        average_final: at(last).unwrap_or(f64::NAN),
        mean_error: error(&predicted),
        gradient_flow_error: error(&gradient),
    })
}

/// The table as printed by `lmech eos`.
pub fn table_text(rows: &[EosRow]) -> String {
    let flows = rows.iter().any(|r| r.flow.is_some());
    let mut s = String::from(
        "   eta    2/eta   reached 2/eta at step   median sharpness after   (ratio)   final loss",
    );
    if flows {
        s.push_str("   flow prediction   running avg   flow error   gradient flow error");
    }
    s.push('\n');
    for r in rows {
        let reached = r
            .reached_at
            .map(|v| v.to_string())
            .unwrap_or_else(|| "never".into());
        let (median, ratio) = match r.median_after {
            Some(m) => (format!("{m:.3}"), format!("{:.3}", m / r.threshold)),
            None => ("-".into(), "-".into()),
        };
        let _ = write!(
            s,
            "{:>6} {:>8.3} {:>23} {:>24} {:>9} {:>12.5}",
            r.lr, r.threshold, reached, median, ratio, r.final_loss,
        );
        if let Some(f) = &r.flow {
            let _ = write!(
                s,
                " {:>17.5} {:>13.5} {:>11.1}% {:>20.1}%",
                f.predicted_final,
                f.average_final,
                100.0 * f.mean_error,
                100.0 * f.gradient_flow_error
            );
        }
        s.push_str(if r.diverged { "  (diverged)\n" } else { "\n" });
    }
    s
}
