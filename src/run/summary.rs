//! `summary.json`: the one file a sweep analysis reads per run. It is flat
//! so that a list of summaries loads straight into a table
//! (`pd.DataFrame([json.load(f) for f in files])`): status, the
//! hyperparameters as top-level keys, and the final metrics under `"final"`.
//!
//! Its presence marks a run as finished (see `dir::prepare_run_dir`), so it
//! is written last and atomically.

use std::path::Path;

use serde::ser::{Error as _, Serialize, SerializeMap, Serializer};

use super::atomic::write_atomic;
use super::record::Record;
use crate::error::{Error, Result};

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Finished,
    /// Training stopped because the loss became non-finite or exploded.
    Diverged {
        step: u64,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub status: Status,
    /// Written flat at the top level (e.g. `lr`, `width`, `seed`); a key
    /// that clashes with a summary field is an error.
    pub hyperparams: serde_json::Map<String, serde_json::Value>,
    /// Written under `"final"`.
    pub final_metrics: Record,
    pub steps_done: u64,
    pub wall_seconds: f64,
    pub device: String,
}

/// Top-level keys the summary writes itself; the version is always that of
/// the binary writing the file, so it is not a field.
const RESERVED: [&str; 8] = [
    "status",
    "diverged_at_step",
    "reason",
    "steps_done",
    "wall_seconds",
    "device",
    "lmech_version",
    "final",
];

impl Summary {
    /// Writes `dir/summary.json` (pretty-printed) atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("summary.json");
        let mut json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
        json.push(b'\n');
        write_atomic(&path, &json)
    }
}

impl Serialize for Summary {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if let Some(key) = self
            .hyperparams
            .keys()
            .find(|k| RESERVED.contains(&k.as_str()))
        {
            return Err(S::Error::custom(format!(
                "hyperparameter `{key}` clashes with a summary field of the same name"
            )));
        }
        let mut map = s.serialize_map(None)?;
        match &self.status {
            Status::Finished => map.serialize_entry("status", "finished")?,
            Status::Diverged { step, reason } => {
                map.serialize_entry("status", "diverged")?;
                map.serialize_entry("diverged_at_step", step)?;
                map.serialize_entry("reason", reason)?;
            }
        }
        for (key, value) in &self.hyperparams {
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry("steps_done", &self.steps_done)?;
        map.serialize_entry("wall_seconds", &self.wall_seconds)?;
        map.serialize_entry("device", &self.device)?;
        map.serialize_entry("lmech_version", env!("CARGO_PKG_VERSION"))?;
        map.serialize_entry("final", &self.final_metrics)?;
        map.end()
    }
}
