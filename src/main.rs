//! The `lmech` command line: `lmech train CONFIG.toml` and `lmech devices`.

use clap::{Parser, Subcommand};
use lmech::backend::device::{describe_devices, DeviceRequest};
use lmech::config::Config;
use lmech::train::{train, RunOptions};
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
    /// List the devices lmech can run on here.
    Devices,
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

fn run(cmd: Command) -> lmech::Result<ExitCode> {
    match cmd {
        Command::Devices => {
            for line in describe_devices() {
                println!("{line}");
            }
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
            cfg.resolve()?;
            let (device, why) = DeviceRequest::parse(&device)?.resolve()?;
            eprintln!("{why}");
            let out = out.unwrap_or_else(|| {
                let stem = config
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or("run".into());
                lmech::run::unique_run_dir(&PathBuf::from("runs"), &stem)
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
