//! `lmech measure`: observables of a trained checkpoint computed after the
//! fact (PyHessian's main use, the spectrum of a trained model), on the
//! run's own training or test data as its config loads them, written as
//! JSON beside the checkpoint. Each observable is the engine's own
//! (`LossOnData` with `linalg`, `observe::per_sample`), timed and with its
//! count of curvature products.

use crate::backend::cpu::Cpu;
use crate::backend::device::Device;
use crate::backend::wgpu::Wgpu;
use crate::backend::Backend;
use crate::config::Config;
use crate::curvature::LossOnData;
use crate::data::{self, upload_inputs_and_targets, Dataset};
use crate::error::{Error, Result};
use crate::linalg::{self, LanczosOptions};
use crate::nn::checkpoint::load_model;
use crate::nn::loss::LossKind;
use crate::nn::model::Model;
use crate::observe::per_sample::per_sample_norms;
use crate::tape::Curvature;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The observables `--observe` takes.
pub const OBSERVABLES: [&str; 6] = [
    "sharpness",
    "eigs",
    "gn_eigs",
    "trace",
    "density",
    "per_sample",
];

/// Rows per device chunk of the data set.
const CHUNK_ROWS: usize = 4096;

/// What to measure, on which data, with which settings.
#[derive(Clone, Debug)]
pub struct MeasureOptions {
    pub observe: Vec<String>,
    /// "train" or "test": the split of the run's data.
    pub split: String,
    /// The first n examples of the split (all of them for None).
    pub n: Option<usize>,
    /// Eigenvalues for `eigs` and `gn_eigs`.
    pub k: usize,
    pub tol: f64,
    pub max_iter: usize,
    /// Probes of `trace` and `density`; Lanczos steps of `density`.
    pub probes: usize,
    pub steps: usize,
    pub seed: u64,
    pub device: Device,
}

/// The checkpoint a run directory or a path names.
pub fn checkpoint_of(target: &Path) -> PathBuf {
    if target.is_dir() {
        target.join("model.safetensors")
    } else {
        target.to_path_buf()
    }
}

/// Where the results of measuring `checkpoint` go: `NAME.measure.json`
/// beside `NAME.safetensors`.
pub fn output_path(checkpoint: &Path) -> PathBuf {
    checkpoint.with_extension("measure.json")
}

/// Measures the checkpoint `target` names and writes the JSON beside it;
/// returns its path and contents.
pub fn measure(target: &Path, opts: &MeasureOptions) -> Result<(PathBuf, Value)> {
    for o in &opts.observe {
        if !OBSERVABLES.contains(&o.as_str()) {
            return Err(Error::config(
                "--observe",
                format!(
                    "unknown observable {o:?}; expected one of {}",
                    OBSERVABLES.join(", ")
                ),
            ));
        }
    }
    let path = checkpoint_of(target);
    let (_, meta) = crate::run::load_checkpoint(&path)?;
    let text = meta
        .get("config")
        .ok_or_else(|| Error::data(&path, "checkpoint metadata has no `config`"))?;
    let cfg = Config::from_toml_str(text, &[])?;
    let res = cfg.resolve()?;
    let split = data::load(&cfg.data, cfg.data_seed())?;
    let ds = match opts.split.as_str() {
        "train" => split.train,
        "test" => split
            .test
            .ok_or_else(|| Error::config("--data", "the run's data has no test split"))?,
        s => {
            return Err(Error::config(
                "--data",
                format!("expected train or test, got {s:?}"),
            ))
        }
    };
    let ds = match opts.n {
        Some(n) => ds.take_first(n),
        None => ds,
    };
    let results = match opts.device {
        Device::Cpu => {
            if res.dtype == crate::DType::F16 {
                return Err(crate::backend::cpu::f16_refused());
            }
            measure_on(&Cpu::new(res.dtype), &path, &ds, res.loss, opts)?
        }
        Device::Wgpu => measure_on(&Wgpu::new(res.dtype)?, &path, &ds, res.loss, opts)?,
        Device::Cuda(i) => measure_on(
            &crate::backend::cuda::Cuda::new(i, res.dtype)?,
            &path,
            &ds,
            res.loss,
            opts,
        )?,
    };
    let out = output_path(&path);
    let doc = json!({
        "checkpoint": path.display().to_string(),
        "data": opts.split,
        "examples": ds.n,
        "loss": res.loss.name(),
        "observables": results,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::msg(e.to_string()))?;
    crate::run::atomic::write_atomic(&out, text.as_bytes())?;
    Ok((out, doc))
}

fn measure_on<B: Backend>(
    be: &B,
    path: &Path,
    ds: &Dataset,
    loss: LossKind,
    opts: &MeasureOptions,
) -> Result<serde_json::Map<String, Value>> {
    let model = load_model(be, path)?;
    let chunks = (0..ds.n)
        .step_by(CHUNK_ROWS)
        .map(|start| {
            let idx: Vec<usize> = (start..(start + CHUNK_ROWS).min(ds.n)).collect();
            upload_inputs_and_targets(be, &ds.subset(&idx), loss)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = serde_json::Map::new();
    for name in &opts.observe {
        let started = Instant::now();
        let lod = LossOnData::new(be, &model, loss, chunks.clone())?;
        let mut value = observe(be, &model, &lod, ds, loss, name, opts)?;
        value["hvps"] = json!(lod.products());
        value["seconds"] = json!(started.elapsed().as_secs_f64());
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn observe<B: Backend>(
    be: &B,
    model: &Model<B>,
    lod: &LossOnData<'_, B>,
    ds: &Dataset,
    loss: LossKind,
    name: &str,
    opts: &MeasureOptions,
) -> Result<Value> {
    let n = lod.dim();
    let lanczos = |k: usize, mode: Curvature| {
        let mut op = |v: &[f64]| lod.product(v, mode);
        let o = LanczosOptions {
            k,
            max_iter: opts.max_iter,
            tol: opts.tol,
            seed: opts.seed,
            start: None,
        };
        linalg::lanczos_in(n, &mut op, &o, lod.basis_storage(o.tol))
            .map(|r| json!({"values": r.values, "bounds": r.bounds, "converged": r.converged}))
    };
    let mut op = |v: &[f64]| lod.product(v, Curvature::Hessian);
    Ok(match name {
        "sharpness" => lanczos(1, Curvature::Hessian)?,
        "eigs" => lanczos(opts.k, Curvature::Hessian)?,
        "gn_eigs" => lanczos(opts.k, Curvature::GaussNewton)?,
        "trace" => {
            let t = linalg::hutchinson_trace(n, &mut op, opts.probes, opts.seed)?;
            json!({"estimate": t.estimate, "std_error": t.std_error, "probes": t.probes})
        }
        "density" => {
            let d = linalg::slq(n, &mut op, opts.probes, opts.steps, opts.seed)?;
            json!({"nodes": d.nodes, "weights": d.weights})
        }
        _ => {
            let (x, t) = upload_inputs_and_targets(be, ds, loss)?;
            let p = per_sample_norms(be, model, &x, &t, loss)?;
            json!({
                "mean_norm": p.mean_norm(),
                "noise_scale": p.noise_scale(),
                "mean_grad_sq": p.mean_grad_sq,
                "norms": p.total.iter().map(|v| v.sqrt()).collect::<Vec<_>>(),
            })
        }
    })
}
