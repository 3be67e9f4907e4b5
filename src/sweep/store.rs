//! The results store of a sweep, shared by all its workers:
//!
//! ```text
//! DIR/sweep.json              the grid: name, axis keys, every run's id and overrides
//! DIR/runs/<id>/              committed runs (a complete, verified run directory each)
//! DIR/work/<id>/<worker>/     a run in training by one worker (or left by a killed one)
//! DIR/claims/<id>/<n>.claim   who trains the run (see `claim`)
//! DIR/bad/<id>-<time>-<worker>/  committed copies that failed verification, set aside
//! ```
//!
//! A worker trains a run it claimed in a directory of its own, so no two
//! processes ever write one file. It commits by verifying the files
//! (`verify::seal`) and renaming its directory to `runs/<id>/`: atomic, and
//! refused when `runs/<id>` exists, so a run is committed whole or not at
//! all, and at most once. A worker that takes over a run left by another
//! commits it as it is when it had finished, and otherwise continues from
//! its latest restart point, copied into its own directory.

use crate::error::{Error, Result};
use crate::resume;
use crate::run::write_atomic;
use crate::sweep::spec::{RunSpec, SweepSpec};
use crate::sweep::verify;
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

/// What a worker that claimed a run found in its work directories.
pub enum Begin {
    /// A run another worker finished but did not commit, verified.
    Finished(PathBuf),
    /// Train in this directory, which holds the latest restart point
    /// earlier workers left (its step), if any.
    Train(PathBuf, Option<u64>),
}

impl Store {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["runs", "work", "claims"] {
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

    pub fn is_committed(&self, id: &str) -> bool {
        self.run_dir(id).is_dir()
    }

    /// Prepares `work/<id>/<worker>/` for a worker that just claimed `id`,
    /// from what earlier workers left in `work/<id>/`.
    pub fn begin(&self, id: &str, worker: &str) -> Result<Begin> {
        let parent = self.root.join("work").join(id);
        let mine = parent.join(worker);
        let mut others = Vec::new();
        if let Ok(entries) = fs::read_dir(&parent) {
            for e in entries {
                let p = e.map_err(|e| Error::io(&parent, e))?.path();
                if p.is_dir() && p != mine {
                    others.push(p);
                }
            }
        }
        for d in &others {
            if d.join("summary.json").is_file() && verify::seal(d).is_ok() {
                return Ok(Begin::Finished(d.clone()));
            }
        }
        fs::create_dir_all(&mine).map_err(|e| Error::io(&mine, e))?;
        let latest = others
            .iter()
            .filter_map(|d| Some((resume::latest_step(d)?, d)))
            .max_by_key(|(step, _)| *step);
        if let Some((_, from)) = &latest {
            for name in [resume::FILE, resume::NEXT, "metrics.jsonl"] {
                let (src, dst) = (from.join(name), mine.join(name));
                if src.is_file() {
                    fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
                }
            }
            // Step checkpoints (`train.checkpoint_at`) from before the
            // restart point are not written again.
            let ckpts = crate::train::STEP_CHECKPOINTS;
            copy_files(&from.join(ckpts), &mine.join(ckpts))?;
        }
        for d in &others {
            // What is worth keeping is in `mine` now.
            let _ = fs::remove_dir_all(d);
        }
        Ok(Begin::Train(mine, latest.map(|(step, _)| step)))
    }

    /// Verifies the finished run in `dir` and renames it to `runs/<id>`;
    /// then clears what other workers left of it.
    pub fn commit(&self, id: &str, dir: &Path) -> Result<()> {
        verify::seal(dir)?;
        let to = self.run_dir(id);
        if to.exists() {
            return Err(Error::msg(format!(
                "{} is already committed (by another worker); not committed again",
                to.display()
            )));
        }
        fs::rename(dir, &to).map_err(|e| Error::io(&to, e))?;
        // First, so that a kill in the (slow) sync below leaves nothing
        // behind; a kill before this line is for `tidy` to clear.
        let _ = fs::remove_dir_all(self.root.join("work").join(id));
        if let Ok(d) = fs::File::open(self.root.join("runs")) {
            // Makes the rename durable; the data itself is already synced.
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Moves a committed run that failed verification to `bad/`, keeping
    /// it; returns where it went.
    pub fn set_aside(&self, id: &str, worker: &str) -> Result<PathBuf> {
        let bad = self.root.join("bad");
        fs::create_dir_all(&bad).map_err(|e| Error::io(&bad, e))?;
        let secs = crate::sweep::claim::now_unix() as u64;
        let to = bad.join(format!("{id}-{secs}-{worker}"));
        let from = self.run_dir(id);
        fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
        Ok(to)
    }
}

/// Copies the files of directory `from` (if it exists) into `to`.
fn copy_files(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for e in entries {
        let src = e.map_err(|e| Error::io(from, e))?.path();
        if let (true, Some(name)) = (src.is_file(), src.file_name()) {
            let dst = to.join(name);
            fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
        }
    }
    Ok(())
}

pub fn read_manifest(root: &Path) -> Result<Manifest> {
    let path = root.join("sweep.json");
    let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::data(&path, format!("not a sweep manifest: {e}")))
}
