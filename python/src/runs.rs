//! `lmech.train` and `lmech.sweep`: the engine's runner and sweep
//! scheduler, called with the GIL released. Training checks for Ctrl-C
//! before every step (the engine's step guard), so KeyboardInterrupt stops
//! a run where a killed process would, leaving its run directory as a kill
//! leaves it; a sweep polls for it while its own thread trains, and stops
//! through the sweep's cancel flag.

use crate::engine;
use crate::errors::{to_py, IntoPy};
use lmech::config::Config;
use lmech::sweep::{run_sweep, Shard, SweepOptions, SweepSpec};
use lmech::train::{train_ensemble_guarded, Member};
use lmech::Error;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A config from a TOML file, or from the JSON text of a Python dict.
fn config(source: &str, is_path: bool, overrides: &[String]) -> lmech::Result<Config> {
    if is_path {
        return Config::load(Path::new(source), overrides);
    }
    let table: toml::Table = serde_json::from_str(source)
        .map_err(|e| Error::msg(format!("the config dict is not a TOML table: {e}")))?;
    let text = toml::to_string(&table).map_err(|e| Error::msg(format!("config dict: {e}")))?;
    Config::from_toml_str(&text, overrides)
}

/// Counts the steps and says when progress is worth reporting: at the
/// first and last step and at most every 0.2 s between.
#[derive(Default)]
struct Ticker {
    steps: u64,
    last: Option<Instant>,
}

impl Ticker {
    /// The steps done before this one, when they should be reported.
    fn tick(&mut self, total: u64) -> Option<u64> {
        let done = self.steps;
        self.steps += 1;
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(200));
        if due || done + 1 >= total {
            self.last = Some(Instant::now());
            return Some(done);
        }
        None
    }
}

/// train(config, is_path, overrides, out, device, progress, callback=None)
/// -> (run dir, status); `callback(step, total)` is called as steps go.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (config_source, is_path, overrides, out, device, progress, callback=None))]
pub fn train(
    py: Python<'_>,
    config_source: &str,
    is_path: bool,
    overrides: Vec<String>,
    out: PathBuf,
    device: &str,
    progress: bool,
    callback: Option<Py<PyAny>>,
) -> PyResult<(PathBuf, String)> {
    let outcome = py.detach(|| {
        let interrupted: RefCell<Option<PyErr>> = RefCell::new(None);
        let total = Cell::new(0u64);
        let ticker = RefCell::new(Ticker::default());
        // Runs on this (the main) thread before every step, so taking the
        // GIL back here lets Python run its signal handlers (Ctrl-C becomes
        // an error that ends the run before its next step) and report
        // progress to `callback(step, total)`.
        let guard = || {
            Python::attach(|py| {
                py.check_signals()?;
                let step = ticker.borrow_mut().tick(total.get());
                match (&callback, step) {
                    (Some(f), Some(step)) => f.call1(py, (step, total.get())).map(|_| ()),
                    _ => Ok(()),
                }
            })
            .map_err(|e| {
                *interrupted.borrow_mut() = Some(e);
                Error::msg("interrupted")
            })
        };
        let run = || {
            let cfg = config(config_source, is_path, &overrides)?;
            total.set(cfg.train.steps);
            let device = engine::device(device, cfg.resolve()?.dtype)?;
            let member = Member { cfg, out };
            train_ensemble_guarded(&[member], device, progress, &guard, &mut |_, _| Ok(()))
        };
        let result = run();
        (result, interrupted.into_inner())
    });
    match outcome {
        (_, Some(interrupt)) => Err(interrupt),
        (Err(e), None) => Err(to_py(e)),
        (Ok(mut reports), None) => {
            let r = reports
                .pop()
                .ok_or_else(|| to_py(Error::msg("internal: a run without a report")))?;
            let status = if r.diverged() { "diverged" } else { "finished" };
            Ok((r.dir, status.to_string()))
        }
    }
}

/// sweep(spec, is_path, out, device, jobs, progress, resume, max_ensemble)
/// -> dict of what this worker did; writes the report when the grid is done.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (spec_source, is_path, out, device, jobs, progress, resume, max_ensemble=None))]
pub fn sweep<'py>(
    py: Python<'py>,
    spec_source: &str,
    is_path: bool,
    out: PathBuf,
    device: &str,
    jobs: usize,
    progress: bool,
    resume: bool,
    max_ensemble: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let run = || {
        let spec = if is_path {
            SweepSpec::load(Path::new(spec_source))?
        } else {
            let table: toml::Table = serde_json::from_str(spec_source)
                .map_err(|e| Error::msg(format!("the sweep dict is not a TOML table: {e}")))?;
            let text =
                toml::to_string(&table).map_err(|e| Error::msg(format!("sweep dict: {e}")))?;
            SweepSpec::parse(&text, "sweep", Path::new("."))?
        };
        let devices = device
            .split(',')
            .map(|d| engine::device(d.trim(), lmech::DType::F32))
            .collect::<lmech::Result<Vec<_>>>()?;
        let outcome = run_sweep(
            &spec,
            &SweepOptions {
                out: out.clone(),
                resume,
                shard: Shard::WHOLE,
                devices,
                jobs,
                max_ensemble,
                progress,
                lease: lmech::sweep::claim::DEFAULT_LEASE,
                cancel: Some(cancel.clone()),
            },
        )?;
        if outcome.grid_done || outcome.elsewhere == 0 {
            lmech::sweep::write_report(&out)?;
        }
        Ok(outcome)
    };
    // The sweep runs on a thread of its own so that this (the main) thread
    // can take the GIL back now and then for Python's signal handlers:
    // Ctrl-C sets the sweep's cancel flag, which stops it before its next
    // step.
    let (outcome, interrupted) = py.detach(|| {
        std::thread::scope(|s| {
            let sweeper = s.spawn(run);
            let mut interrupted = None;
            while !sweeper.is_finished() {
                std::thread::sleep(Duration::from_millis(50));
                if interrupted.is_none() {
                    if let Err(e) = Python::attach(|py| py.check_signals()) {
                        interrupted = Some(e);
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
            }
            let outcome = sweeper
                .join()
                .unwrap_or_else(|_| Err(Error::msg("the sweep thread panicked")));
            (outcome, interrupted)
        })
    });
    if let Some(interrupt) = interrupted {
        return Err(interrupt);
    }
    let outcome = outcome.py_err()?;
    let d = PyDict::new(py);
    d.set_item("total", outcome.total)?;
    d.set_item("finished", outcome.finished)?;
    d.set_item("diverged", outcome.diverged)?;
    d.set_item("skipped", outcome.skipped)?;
    d.set_item("failed", outcome.failed)?;
    d.set_item("ensembles", outcome.ensembles)?;
    d.set_item("grid_done", outcome.grid_done)?;
    Ok(d)
}

/// write_report(dir) -> path of report.csv
#[pyfunction]
pub fn write_report(py: Python<'_>, dir: PathBuf) -> PyResult<PathBuf> {
    py.detach(|| lmech::sweep::write_report(&dir).map(|r| r.table))
        .py_err()
}

/// measure(target, observe, split, n, k, tol, max_iter, probes, steps,
/// seed, device) -> (path of the JSON written, its text): `lmech measure`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (target, observe, split, n, k, tol, max_iter, probes, steps, seed, device))]
pub fn measure(
    py: Python<'_>,
    target: PathBuf,
    observe: Vec<String>,
    split: String,
    n: Option<usize>,
    k: usize,
    tol: f64,
    max_iter: usize,
    probes: usize,
    steps: usize,
    seed: u64,
    device: &str,
) -> PyResult<(PathBuf, String)> {
    py.detach(|| {
        let opts = lmech::measure::MeasureOptions {
            observe,
            split,
            n,
            k,
            tol,
            max_iter,
            probes,
            steps,
            seed,
            device: engine::device(device, lmech::DType::F32)?,
        };
        let (path, doc) = lmech::measure::measure(&target, &opts)?;
        Ok((path, doc.to_string()))
    })
    .py_err()
}
