//! Restart points of a run (`train.checkpoint_every`): every so many steps
//! each run directory gets `resume.safetensors` with that run's weights,
//! optimizer buffers and step count. A run started again in the same
//! directory with the same config continues from it and ends exactly as if
//! it had never stopped: the weights and buffers are restored bit for bit,
//! the schedule and Adam's bias correction read the step count, and the
//! mini-batch order is replayed from the data seed.
//!
//! An ensemble restarts only when every member's file holds the same step;
//! otherwise it starts over (the files are then overwritten).

use crate::backend::{Backend, DType};
use crate::error::{Error, Result};
use crate::nn::mlp::Mlp;
use crate::optim::Optimizer;
use crate::run::{load_checkpoint, save_checkpoint, MetricsLog, NamedTensor, Record, TensorData};
use crate::tensor::{member_values, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FILE: &str = "resume.safetensors";

/// Writes member `e`'s restart point after `step` updates into `dir`.
pub fn save<B: Backend>(
    be: &B,
    model: &Mlp<B>,
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
            DType::F32 => TensorData::F32(values.iter().map(|&v| v as f32).collect()),
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
    for (i, (a, b)) in opt.state().iter().enumerate() {
        tensors.extend(named(format!("state.{i}.0"), a)?);
        tensors.extend(named(format!("state.{i}.1"), b)?);
    }
    let mut meta = BTreeMap::new();
    meta.insert("step".to_string(), step.to_string());
    meta.insert("config".to_string(), config_toml.to_string());
    save_checkpoint(&dir.join(FILE), &tensors, &meta)
}

fn data_len(d: &TensorData) -> usize {
    match d {
        TensorData::F32(v) => v.len(),
        TensorData::F64(v) => v.len(),
    }
}

/// The step of `dir`'s restart point, if it has one written for this exact
/// config.
fn saved_step(dir: &Path, config_toml: &str) -> Option<(u64, Vec<NamedTensor>)> {
    let (tensors, meta) = load_checkpoint(&dir.join(FILE)).ok()?;
    if meta.get("config").map(String::as_str) != Some(config_toml) {
        return None;
    }
    let step = meta.get("step")?.parse().ok()?;
    Some((step, tensors))
}

/// Puts the members' restart points (one directory and config per member)
/// into `model` and `opt` and returns the step to continue from; 0, with
/// nothing changed, when some member has none or they disagree.
pub fn restore<B: Backend>(
    be: &B,
    model: &mut Mlp<B>,
    opt: &mut Optimizer<B>,
    members: &[(PathBuf, String)],
) -> Result<u64> {
    let mut saved = Vec::new();
    for (dir, config_toml) in members {
        match saved_step(dir, config_toml) {
            Some(s) => saved.push(s),
            None => return Ok(0),
        }
    }
    let step = saved[0].0;
    if saved.iter().any(|(s, _)| *s != step) {
        return Ok(0);
    }
    let files: Vec<BTreeMap<String, Vec<f64>>> = saved
        .into_iter()
        .map(|(_, tensors)| {
            tensors
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
