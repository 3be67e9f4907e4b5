//! The `lmech` command line: `lmech train CONFIG.toml`, `lmech eos`,
//! `lmech sweep SWEEP.toml` / `lmech sweep report|check|status DIR` and
//! `lmech devices`.

use clap::{Parser, Subcommand};
use lmech::backend::device::{describe_devices, Device, DeviceRequest};
use lmech::config::Config;
use lmech::eos::{run_eos, table_text, EosOptions};
use lmech::sweep::{run_sweep, Shard, SweepOptions, SweepSpec};
use lmech::train::{train, RunOptions};
use lmech::DType;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lmech",
    version,
    about = "A training engine for the science of deep learning"
)]
struct Cli {
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the model a TOML config describes and write a run directory.
    Train {
        /// The run's config file (see examples/).
        config: PathBuf,
        /// Run directory (default: runs/<config file name>, made unique).
        #[arg(long)]
        out: Option<PathBuf>,
        /// auto, cpu, cuda, cuda:N or wgpu.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Override a config key, e.g. --set model.width=512 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// The edge-of-stability experiment (Cohen et al. 2021): full-batch GD
    /// at several learning rates with sharpness tracking; plots and a table.
    /// On the bundled digits with a tanh MLP, or on CONFIG's model and data.
    Eos {
        /// A run config (model, data, loss, observers) to run instead of the
        /// digits default; its optimizer must be full-batch gd.
        config: Option<PathBuf>,
        /// Override a key of CONFIG, e.g. --set model.width=128 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
        overrides: Vec<String>,
        /// Output directory (one run directory per learning rate, plots,
        /// eos.csv); default runs/eos (runs/<config name> with CONFIG), made
        /// unique.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Learning rates, comma-separated [default: 0.1,0.14,0.2; 0.05,0.06
        /// for the transformer; with CONFIG, its optim.lr times 1, 1.4 and 2].
        #[arg(long, value_delimiter = ',')]
        lrs: Option<Vec<f64>>,
        /// GD steps per learning rate [default: 1500; 3000 for the
        /// transformer; with CONFIG, its train.steps].
        #[arg(long)]
        steps: Option<u64>,
        /// Measure sharpness every this many steps (when CONFIG has no
        /// [observe.sharpness] of its own).
        #[arg(long, default_value_t = 10)]
        every: u64,
        /// Also integrate each run's central flow (Cohen, Damian et al.
        /// 2024; k = 2, 4 substeps a step, recorded every --every steps,
        /// unless CONFIG sets [observe.central_flow]) and add its
        /// predicted loss, gradient flow's and the flow's sharpness to the
        /// plots and table; the real loss is then logged at every step.
        #[arg(long)]
        central_flow: bool,
        /// Hidden width of the digits MLP, or channels of the CNN/ResNet
        /// [default: 64 for mlp, 32 for cnn and transformer, 16 for resnet] (not with
        /// CONFIG: use --set).
        #[arg(long, conflicts_with = "config")]
        width: Option<usize>,
        /// The model: mlp, cnn (Cohen et al.'s two 3x3 convolutions with
        /// pooling) or resnet (ResNet-8) on the digits, or transformer (one
        /// pre-norm block on a + b mod 13) (not with CONFIG: use --set
        /// model.arch=...).
        #[arg(long, default_value = "mlp", conflicts_with = "config", value_parser = ["mlp", "cnn", "resnet", "transformer"])]
        arch: String,
        /// Training examples, the first n digits (not with CONFIG: use --set).
        #[arg(long, conflicts_with = "config")]
        n_train: Option<usize>,
        /// auto, cpu, cuda, cuda:N or wgpu.
        #[arg(long, default_value = "auto")]
        device: String,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Run a sweep file: a grid of runs over config keys, packed into
    /// ensembles, claimed, trained and committed to a results store under
    /// --out that any number of workers share. `lmech sweep report DIR`
    /// merges the store into report.csv and plots.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Sweep {
        #[command(subcommand)]
        action: Option<SweepAction>,
        /// The sweep file (see examples/mup_transfer.toml).
        #[arg(required = true)]
        spec: Option<PathBuf>,
        /// The results store (shared by all workers of the sweep).
        #[arg(long, required = true)]
        out: Option<PathBuf>,
        /// Also verify the committed runs and train again those that fail,
        /// setting the bad copies aside in DIR/bad/.
        #[arg(long)]
        resume: bool,
        /// Take only shard i of n (0-based) of the grid, e.g. 2/8, or
        /// `slurm` for this Slurm array task's shard; default: any run no
        /// other worker has claimed.
        #[arg(long)]
        shard: Option<String>,
        /// A claim not renewed for this long is taken over by other workers.
        #[arg(long, default_value_t = lmech::sweep::claim::DEFAULT_LEASE.as_secs_f64())]
        lease_seconds: f64,
        /// Devices to spread ensembles over, comma-separated (auto, cpu,
        /// cuda:0,cuda:1, wgpu).
        #[arg(long, default_value = "auto")]
        device: String,
        /// Ensembles trained at once per device.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// At most this many runs per ensemble (overrides the sweep file).
        #[arg(long)]
        max_ensemble: Option<usize>,
        /// No progress bar or progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Measure a trained checkpoint after the fact (sharpness, top
    /// eigenvalues, Gauss-Newton eigenvalues, Hessian trace, spectral
    /// density, per-sample gradient norms) on its run's data; writes
    /// NAME.measure.json beside NAME.safetensors.
    Measure {
        /// A run directory (its model.safetensors) or a checkpoint file.
        target: PathBuf,
        /// The split of the run's data: train or test.
        #[arg(long, default_value = "train")]
        data: String,
        /// Observables, comma-separated: sharpness, eigs, gn_eigs, trace,
        /// density, per_sample.
        #[arg(long, value_delimiter = ',', default_value = "sharpness")]
        observe: Vec<String>,
        /// Only the first n examples of the split.
        #[arg(long)]
        n: Option<usize>,
        /// Eigenvalues for eigs and gn_eigs.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// Relative error bound of the eigenvalues.
        #[arg(long, default_value_t = 1e-6)]
        tol: f64,
        /// Most curvature products per eigensolve.
        #[arg(long, default_value_t = 100)]
        max_iter: usize,
        /// Probes of trace and density.
        #[arg(long, default_value_t = 10)]
        probes: usize,
        /// Lanczos steps per density probe.
        #[arg(long, default_value_t = 80)]
        steps: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// auto, cpu, cuda, cuda:N or wgpu.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// List the devices lmech can run on here.
    Devices,
}

#[derive(Subcommand)]
enum SweepAction {
    /// Merge a sweep's results store into report.csv and plots.
    Report {
        /// The sweep's --out directory.
        dir: PathBuf,
    },
    /// Verify every committed run (files, sizes, checksums) and list the
    /// bad ones; exit status 1 when there is one.
    Check {
        /// The sweep's --out directory.
        dir: PathBuf,
    },
    /// Runs done, diverged, failed, claimed (by whom, lease left) and
    /// pending.
    Status {
        /// The sweep's --out directory.
        dir: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A config file's name without its extension: the default run directory.
fn file_stem(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or("run".into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot start {n} threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The device `--device` names, saying on stderr which one was taken.
fn resolve_device(request: &str) -> lmech::Result<Device> {
    resolve_device_for(request, DType::F32)
}

/// `resolve_device` for a run stored in `dtype` (`auto` keeps f64 on the CPU).
fn resolve_device_for(request: &str, dtype: DType) -> lmech::Result<Device> {
    let (device, why) = DeviceRequest::parse(request)?.resolve_for(dtype)?;
    eprintln!("{why}");
    Ok(device)
}

fn report(dir: &std::path::Path) -> lmech::Result<()> {
    let r = lmech::sweep::write_report(dir)?;
    println!(
        "report: {} runs in {}{}",
        r.rows,
        r.table.display(),
        if r.missing.is_empty() {
            String::new()
        } else {
            format!(" ({} runs of the grid not finished yet)", r.missing.len())
        }
    );
    for p in &r.plots {
        println!("plot: {}", p.display());
    }
    for (id, why) in &r.skipped {
        eprintln!("skipped run {id}: {why}");
    }
    Ok(())
}

/// `lmech sweep check DIR`: whether every committed run verifies.
fn check(dir: &std::path::Path) -> lmech::Result<ExitCode> {
    let c = lmech::sweep::verify::check_store(dir)?;
    println!(
        "check: {} of {} committed runs verified{}",
        c.verified,
        c.verified + c.bad.len(),
        if c.missing > 0 {
            format!(" ({} runs of the grid not committed yet)", c.missing)
        } else {
            String::new()
        }
    );
    for (id, why) in &c.bad {
        println!("bad run {id}: {why}");
    }
    if !c.bad.is_empty() {
        println!(
            "lmech sweep ... --out {} --resume trains them again (the bad copies go to bad/)",
            dir.display()
        );
    }
    Ok(if c.bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run(cmd: Command) -> lmech::Result<ExitCode> {
    match cmd {
        Command::Sweep {
            action: Some(action),
            ..
        } => match action {
            SweepAction::Report { dir } => {
                report(&dir)?;
                Ok(ExitCode::SUCCESS)
            }
            SweepAction::Check { dir } => check(&dir),
            SweepAction::Status { dir, json } => {
                let st = lmech::sweep::store_status(&dir)?;
                if json {
                    let text = serde_json::to_string_pretty(&st)
                        .map_err(|e| lmech::Error::msg(e.to_string()))?;
                    println!("{text}");
                } else {
                    print!("{}", st.text());
                }
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Sweep {
            action: None,
            spec,
            out,
            resume,
            shard,
            lease_seconds,
            device,
            jobs,
            max_ensemble,
            quiet,
        } => {
            let (Some(spec_path), Some(out)) = (spec, out) else {
                return Err(lmech::Error::msg(
                    "lmech sweep needs SWEEP.toml and --out DIR",
                ));
            };
            let spec = SweepSpec::load(&spec_path)?;
            let split = shard.is_some();
            let shard = match &shard {
                Some(s) => Shard::from_arg(s, |k| std::env::var(k).ok())?,
                None => Shard::WHOLE,
            };
            if !(lease_seconds.is_finite() && lease_seconds > 0.0) {
                return Err(lmech::Error::config(
                    "--lease-seconds",
                    format!("expected a positive number of seconds, got {lease_seconds}"),
                ));
            }
            let devices = device
                .split(',')
                .map(|d| resolve_device(d.trim()))
                .collect::<lmech::Result<Vec<_>>>()?;
            let outcome = run_sweep(
                &spec,
                &SweepOptions {
                    out: out.clone(),
                    resume,
                    shard,
                    devices,
                    jobs,
                    max_ensemble,
                    progress: !quiet,
                    lease: std::time::Duration::from_secs_f64(lease_seconds),
                    cancel: None,
                },
            )?;
            let who = if split {
                format!(", shard {}/{}", shard.index, shard.count)
            } else {
                String::new()
            };
            println!(
                "worker {}{who}: {} runs: {} finished, {} diverged, {} done before, \
                 {} in progress elsewhere, {} failed ({} ensembles) -> {}",
                outcome.worker,
                outcome.total,
                outcome.finished,
                outcome.diverged,
                outcome.skipped,
                outcome.elsewhere,
                outcome.failed.len(),
                outcome.ensembles,
                out.display()
            );
            for (id, err) in &outcome.failed {
                eprintln!("failed: {id}: {err}");
            }
            // The sweep is over, as far as this worker can tell: nothing
            // left in its part and nothing in progress elsewhere.
            if outcome.grid_done || (!split && outcome.elsewhere == 0) {
                report(&out)?;
            }
            Ok(if outcome.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Measure {
            target,
            data,
            observe,
            n,
            k,
            tol,
            max_iter,
            probes,
            steps,
            seed,
            device,
        } => {
            let opts = lmech::measure::MeasureOptions {
                observe,
                split: data,
                n,
                k,
                tol,
                max_iter,
                probes,
                steps,
                seed,
                device: resolve_device(&device)?,
            };
            let (out, doc) = lmech::measure::measure(&target, &opts)?;
            for (name, v) in doc["observables"].as_object().into_iter().flatten() {
                let main = ["values", "estimate", "mean_norm"]
                    .iter()
                    .find_map(|k| v.get(*k))
                    .map_or(String::new(), |x| x.to_string());
                println!(
                    "{name}: {main} ({} HVPs, {:.3} s)",
                    v["hvps"],
                    v["seconds"].as_f64().unwrap_or(0.0)
                );
            }
            println!("-> {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Devices => {
            for line in describe_devices() {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Eos {
            config,
            overrides,
            out,
            lrs,
            steps,
            every,
            central_flow,
            width,
            arch,
            n_train,
            device,
            quiet,
        } => {
            let defaults = EosOptions::default();
            let base = match &config {
                Some(path) => Some(Config::load(path, &overrides)?),
                None => None,
            };
            let device = match &base {
                Some(b) => resolve_device_for(&device, b.resolve()?.dtype)?,
                None => resolve_device(&device)?,
            };
            let (lrs, steps, stem) = match (&base, &config) {
                (Some(b), Some(path)) => (
                    lrs.unwrap_or_else(|| vec![b.optim.lr, 1.4 * b.optim.lr, 2.0 * b.optim.lr]),
                    steps.unwrap_or(b.train.steps),
                    file_stem(path),
                ),
                // One block's sharpness starts near 49: 2/eta must be below.
                _ if arch == "transformer" => (
                    lrs.unwrap_or(vec![0.05, 0.06]),
                    steps.unwrap_or(3000),
                    "eos".to_string(),
                ),
                _ => (
                    lrs.unwrap_or(defaults.lrs),
                    steps.unwrap_or(defaults.steps),
                    "eos".to_string(),
                ),
            };
            let out =
                out.unwrap_or_else(|| lmech::run::unique_run_dir(&PathBuf::from("runs"), &stem));
            if out.join("eos.csv").exists() {
                return Err(lmech::Error::msg(format!(
                    "{} already holds an eos experiment; choose another --out",
                    out.display()
                )));
            }
            let opts = EosOptions {
                out: out.clone(),
                lrs,
                steps,
                every,
                width: width.unwrap_or(match arch.as_str() {
                    "cnn" | "transformer" => 32,
                    "resnet" => 16,
                    _ => defaults.width,
                }),
                arch,
                n_train: n_train.unwrap_or(defaults.n_train),
                device,
                progress: !quiet,
                base,
                central_flow: central_flow.then(Default::default),
            };
            let rows = run_eos(&opts)?;
            print!("{}", table_text(&rows));
            println!(
                "plots: {}/eos_lr*.svg, table: {}/eos.csv",
                out.display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Train {
            config,
            out,
            device,
            overrides,
            quiet,
        } => {
            let cfg = Config::load(&config, &overrides)?;
            let dtype = cfg.resolve()?.dtype;
            let device = resolve_device_for(&device, dtype)?;
            let out = out.unwrap_or_else(|| {
                lmech::run::unique_run_dir(&PathBuf::from("runs"), &file_stem(&config))
            });
            let report = train(
                &cfg,
                &RunOptions {
                    out,
                    device,
                    progress: !quiet,
                },
            )?;
            let m = &report.final_metrics;
            let show = |k: &str| m.get(k).map(|v| format!(" {k}={v:.5}")).unwrap_or_default();
            match &report.status {
                lmech::run::Status::Finished => println!(
                    "finished {} steps:{}{}{}{} -> {}",
                    report.steps_done,
                    show("loss"),
                    show("train_acc"),
                    show("test_loss"),
                    show("test_acc"),
                    report.dir.display()
                ),
                lmech::run::Status::Diverged { step, reason } => {
                    println!(
                        "diverged at step {step} ({reason}); metrics so far kept in {}",
                        report.dir.display()
                    )
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
