//! The results store of a sweep, shared by all its shards:
//!
//! ```text
//! DIR/sweep.json       the grid: name, axis keys, every run's id and overrides
//! DIR/runs/<id>/       committed runs (a complete run directory each)
//! DIR/work/<id>/       runs in progress (or interrupted)
//! ```
//!
//! A run trains in `work/<id>/` and is committed by renaming that directory
//! to `runs/<id>/`, which is atomic: a run is either committed whole or not
//! at all, whatever kills the process. Resuming skips committed ids, commits
//! an interrupted run whose `summary.json` was already written, and
//! retrains the others in their work directory, from their last restart
//! point when they have one. Shards own disjoint ids, so they never touch
//! the same directory.

use crate::error::{Error, Result};
use crate::run::write_atomic;
use crate::sweep::spec::{RunSpec, SweepSpec};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// `sweep.json`: what the report needs to know about the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub axes: Vec<String>,
    pub runs: Vec<ManifestRun>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestRun {
    pub id: String,
    /// Axis key -> value, in TOML syntax (`0.01`, `"mup"`).
    pub overrides: Vec<(String, String)>,
}

impl Manifest {
    pub fn new(spec: &SweepSpec, runs: &[RunSpec]) -> Self {
        Manifest {
            name: spec.name.clone(),
            axes: spec.axis_keys(),
            runs: runs
                .iter()
                .map(|r| ManifestRun {
                    id: r.id.clone(),
                    overrides: r
                        .overrides
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                })
                .collect(),
        }
    }
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["runs", "work"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Records the grid, or checks that the store already holds this one.
    pub fn write_manifest(&self, m: &Manifest) -> Result<()> {
        let path = self.root.join("sweep.json");
        if path.exists() {
            let old = read_manifest(&self.root)?;
            if old != *m {
                return Err(Error::msg(format!(
                    "{} holds another sweep ({} with {} runs); use a new --out",
                    self.root.display(),
                    old.name,
                    old.runs.len()
                )));
            }
            return Ok(());
        }
        let mut json = serde_json::to_vec_pretty(m)
            .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
        json.push(b'\n');
        write_atomic(&path, &json)
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.root.join("runs").join(id)
    }

    pub fn work_dir(&self, id: &str) -> PathBuf {
        self.root.join("work").join(id)
    }

    pub fn is_committed(&self, id: &str) -> bool {
        self.run_dir(id).is_dir()
    }

    /// Whether an interrupted run got as far as its summary (it finished
    /// but was not committed yet).
    pub fn is_complete_in_work(&self, id: &str) -> bool {
        self.work_dir(id).join("summary.json").is_file()
    }

    /// Moves `work/<id>` to `runs/<id>` in one rename.
    pub fn commit(&self, id: &str) -> Result<()> {
        let from = self.work_dir(id);
        let to = self.run_dir(id);
        if to.exists() {
            return Err(Error::msg(format!(
                "{} is already committed; two processes are running the same shard",
                to.display()
            )));
        }
        fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
        if let Ok(d) = fs::File::open(self.root.join("runs")) {
            // Makes the rename durable; the data itself is already synced.
            let _ = d.sync_all();
        }
        Ok(())
    }
}

pub fn read_manifest(root: &Path) -> Result<Manifest> {
    let path = root.join("sweep.json");
    let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::data(&path, format!("not a sweep manifest: {e}")))
}
