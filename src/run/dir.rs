//! Choosing and preparing a run directory, with one rule: a finished run's
//! results (marked by its `summary.json`) are never overwritten, while the
//! partial files of a crashed run may be.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Creates `out` (and its parents) and returns it. Fails if `out` holds a
/// finished run or is not a directory.
pub fn prepare_run_dir(out: &Path) -> Result<PathBuf> {
    let summary = out.join("summary.json");
    if summary.exists() {
        return Err(Error::msg(format!(
            "{} already holds a finished run ({} exists); refusing to overwrite it: \
             choose another --out or delete that directory",
            out.display(),
            summary.display()
        )));
    }
    fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    Ok(out.to_path_buf())
}

/// `parent/name`, or else the first of `parent/name-1`, `parent/name-2`, ...
/// that does not exist yet. Only a proposal: nothing is created.
pub fn unique_run_dir(parent: &Path, name: &str) -> PathBuf {
    let first = parent.join(name);
    if !first.exists() {
        return first;
    }
    (1u64..)
        .map(|i| parent.join(format!("{name}-{i}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}
