//! Restart points of a run (`train.checkpoint_every`): every so many steps
//! each run directory gets `resume.safetensors` with that run's weights,
//! optimizer buffers and step count. A run started again in the same
//! directory with the same config continues from it and ends exactly as if
//! it had never stopped: the weights and buffers are restored bit for bit,
//! the schedule and Adam's bias correction read the step count, and the
//! mini-batch order is replayed from the data seed.
//!
//! The members of an ensemble must restart from the same step. Each
//! member's new restart point is first written beside the current one
//! (`resume.next.safetensors`), and only when every member has one are they
//! renamed into place; so whenever a kill comes, some step is held by every
//! member (the new one or the previous one), and that is where the
//! ensemble restarts. With no common step it starts over.

use crate::backend::{Backend, DType};
use crate::error::{Error, Result};
use crate::nn::model::Model;
use crate::optim::Optimizer;
use crate::run::{load_checkpoint, save_checkpoint, MetricsLog, NamedTensor, Record, TensorData};
use crate::tensor::{member_values, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FILE: &str = "resume.safetensors";
/// A restart point being written, not yet valid for every member.
pub const NEXT: &str = "resume.next.safetensors";

/// Writes member `e`'s restart point after `step` updates into `dir`, as
/// `NEXT`; `promote` then makes it current.
pub fn save<B: Backend>(
    be: &B,
    model: &Model<B>,
    opt: &Optimizer<B>,
    e: usize,
    dir: &Path,
    step: u64,
    config_toml: &str,
) -> Result<()> {
    let named = |name: String, t: &Tensor<B>| -> Result<Option<NamedTensor>> {
        if t.numel() == 0 {
            return Ok(None);
        }
        let values = member_values(be, t, e)?;
        let data = match be.dtype() {
            // f16 values are exact in f32, which every reader takes.
            DType::F32 | DType::F16 => TensorData::F32(values.iter().map(|&v| v as f32).collect()),
            DType::F64 => TensorData::F64(values),
        };
        Ok(Some(NamedTensor {
            name,
            shape: vec![data_len(&data)],
            data,
        }))
    };
    let mut tensors = Vec::new();
    for (i, p) in model.params().into_iter().enumerate() {
        tensors.extend(named(format!("param.{i}"), p)?);
    }
    for (i, b) in model.buffers().into_iter().enumerate() {
        tensors.extend(named(format!("buffer.{i}"), b)?);
    }
    for (i, (a, b)) in opt.state().iter().enumerate() {
        tensors.extend(named(format!("state.{i}.0"), a)?);
        tensors.extend(named(format!("state.{i}.1"), b)?);
    }
    let mut meta = BTreeMap::new();
    meta.insert("step".to_string(), step.to_string());
    meta.insert("config".to_string(), config_toml.to_string());
    save_checkpoint(&dir.join(NEXT), &tensors, &meta)
}

/// Makes the restart points `save` wrote in `dirs` (every member's) current.
pub fn promote(dirs: &[&Path]) -> Result<()> {
    for dir in dirs {
        let (from, to) = (dir.join(NEXT), dir.join(FILE));
        std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
    }
    Ok(())
}

/// Removes a finished run's restart points.
pub fn remove(dir: &Path) -> Result<()> {
    for name in [FILE, NEXT] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

fn data_len(d: &TensorData) -> usize {
    match d {
        TensorData::F32(v) => v.len(),
        TensorData::F64(v) => v.len(),
    }
}

/// The restart points in `dir` written for this exact config, by step.
fn saved_points(dir: &Path, config_toml: &str) -> BTreeMap<u64, Vec<NamedTensor>> {
    let mut out = BTreeMap::new();
    for name in [FILE, NEXT] {
        let Ok((tensors, meta)) = load_checkpoint(&dir.join(name)) else {
            continue;
        };
        if meta.get("config").map(String::as_str) != Some(config_toml) {
            continue;
        }
        if let Some(step) = meta.get("step").and_then(|s| s.parse().ok()) {
            out.insert(step, tensors);
        }
    }
    out
}

/// The latest step of any restart point in `dir`, whatever its config: how
/// far a run got there.
pub fn latest_step(dir: &Path) -> Option<u64> {
    [FILE, NEXT]
        .iter()
        .filter_map(|name| load_checkpoint(&dir.join(name)).ok())
        .filter_map(|(_, meta)| meta.get("step")?.parse().ok())
        .max()
}

/// Puts the members' latest common restart point (one directory and config
/// per member) into `model` and `opt` and returns the step to continue
/// from; 0, with nothing changed, when they have none in common.
pub fn restore<B: Backend>(
    be: &B,
    model: &mut Model<B>,
    opt: &mut Optimizer<B>,
    members: &[(PathBuf, String)],
) -> Result<u64> {
    let mut points: Vec<BTreeMap<u64, Vec<NamedTensor>>> = members
        .iter()
        .map(|(dir, config_toml)| saved_points(dir, config_toml))
        .collect();
    let common = points[0]
        .keys()
        .rev()
        .copied()
        .find(|s| points.iter().all(|p| p.contains_key(s)));
    let Some(step) = common else {
        return Ok(0);
    };
    let files: Vec<BTreeMap<String, Vec<f64>>> = points
        .iter_mut()
        .map(|p| {
            p.remove(&step)
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    let v = match t.data {
                        TensorData::F32(v) => v.into_iter().map(f64::from).collect(),
                        TensorData::F64(v) => v,
                    };
                    (t.name, v)
                })
                .collect()
        })
        .collect();
    let gather = |name: &str, t: &Tensor<B>| -> Result<Option<Tensor<B>>> {
        if t.numel() == 0 {
            return Ok(None);
        }
        let mut all = Vec::with_capacity(t.numel());
        for (file, (dir, _)) in files.iter().zip(members) {
            let v = file.get(name).ok_or_else(|| {
                Error::data(dir.join(FILE), format!("restart point lacks `{name}`"))
            })?;
            all.extend_from_slice(v);
        }
        if all.len() != t.numel() {
            return Err(Error::data(
                members[0].0.join(FILE),
                format!("`{name}` has the wrong size for this model"),
            ));
        }
        Ok(Some(be.from_f64(t.shape(), &all)?))
    };
    let mut params = Vec::new();
    for (i, p) in model.params().into_iter().enumerate() {
        params.push(gather(&format!("param.{i}"), p)?);
    }
    let mut buffers = Vec::new();
    for (i, b) in model.buffers().into_iter().enumerate() {
        buffers.push(gather(&format!("buffer.{i}"), b)?);
    }
    let mut state = Vec::new();
    for (i, (a, b)) in opt.state().iter().enumerate() {
        state.push((
            gather(&format!("state.{i}.0"), a)?,
            gather(&format!("state.{i}.1"), b)?,
        ));
    }
    for (p, new) in model.params_mut().into_iter().zip(params) {
        if let Some(new) = new {
            *p = new;
        }
    }
    for (b, new) in model.buffers_mut().into_iter().zip(buffers) {
        if let Some(new) = new {
            *b = new;
        }
    }
    for ((a, b), (na, nb)) in opt.state_mut().iter_mut().zip(state) {
        if let Some(na) = na {
            *a = na;
        }
        if let Some(nb) = nb {
            *b = nb;
        }
    }
    opt.set_steps_done(step);
    Ok(step)
}

/// The records `dir/metrics.jsonl` holds for steps before `step` (a line cut
/// short by a kill ends the list), to carry over into a restarted run.
pub fn records_before(dir: &Path, step: u64) -> Result<Vec<Record>> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(rec) = serde_json::from_str::<Record>(line) else {
            break;
        };
        match rec.get("step").and_then(|v| v.as_f64()) {
            Some(s) if (s as u64) < step => out.push(rec),
            _ => break,
        }
    }
    Ok(out)
}

/// A fresh metrics log in `dir` holding `records`.
pub fn reopen_log(dir: &Path, records: &[Record]) -> Result<MetricsLog> {
    let mut log = MetricsLog::create(dir)?;
    for r in records {
        log.log(r)?;
    }
    Ok(log)
}
