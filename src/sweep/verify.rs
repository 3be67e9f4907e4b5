//! Verifying runs: a run is committed only once its files are complete
//! (`summary.json` parses — it is written last —, every line of
//! `metrics.jsonl` parses, `model.safetensors` and the step checkpoints
//! load), and `verified.json` then records every file's size and FNV-1a
//! 64-bit checksum, `checkpoints/` included, so that a committed run can be
//! checked again later: quickly by sizes (the report) or fully, contents
//! and checksums (`lmech sweep check` and `--resume`).

use crate::error::{Error, Result};
use crate::run::{load_checkpoint, write_atomic, Record};
use crate::train::STEP_CHECKPOINTS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const FILE: &str = "verified.json";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Sealed {
    status: String,
    metrics_lines: usize,
    /// File name -> what it held when committed.
    files: BTreeMap<String, FileSum>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct FileSum {
    bytes: u64,
    fnv1a64: String,
}

/// How much of a committed run to check.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Every recorded file is there with its recorded size.
    Sizes,
    /// Sizes, checksums, and the contents parse.
    Full,
}

fn bad(dir: &Path, msg: impl std::fmt::Display) -> Error {
    Error::msg(format!("{}: {msg}", dir.display()))
}

/// The size and FNV-1a 64 hash of a file's bytes.
fn checksum(path: &Path) -> Result<FileSum> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        bytes += n as u64;
    }
    Ok(FileSum {
        bytes,
        fnv1a64: format!("{hash:016x}"),
    })
}

/// Checks that a run's files are complete; its status and record count.
fn contents(dir: &Path) -> Result<(String, usize)> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let summary: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| bad(&path, format!("not a run summary: {e}")))?;
    let status = summary
        .get("status")
        .and_then(|s| s.as_str())
        .ok_or_else(|| bad(&path, "no `status`"))?
        .to_string();
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    if text.is_empty() {
        return Err(bad(&path, "it holds no records"));
    }
    if !text.ends_with('\n') {
        return Err(bad(&path, "its last line is cut short"));
    }
    for (i, line) in text.lines().enumerate() {
        serde_json::from_str::<Record>(line)
            .map_err(|e| bad(&path, format!("line {}: bad metrics record: {e}", i + 1)))?;
    }
    let checkpoint = dir.join("model.safetensors");
    if checkpoint.exists() {
        load_checkpoint(&checkpoint)?;
    }
    for (_, step) in files_under(&dir.join(STEP_CHECKPOINTS), STEP_CHECKPOINTS)? {
        load_checkpoint(&step)?;
    }
    Ok((status, text.lines().count()))
}

/// The files of `dir` and its subdirectories, as (name relative to the run
/// directory, path); `prefix` is `dir`'s own relative name. Hidden names
/// are temporary files of interrupted writes; a missing `dir` has none.
fn files_under(dir: &Path, prefix: &str) -> Result<Vec<(String, PathBuf)>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if name.starts_with('.') || rel == FILE {
            continue;
        }
        if path.is_dir() {
            out.extend(files_under(&path, &rel)?);
        } else if path.is_file() {
            out.push((rel, path));
        }
    }
    Ok(out)
}

/// Verifies a finished run directory and writes its `verified.json`.
pub fn seal(dir: &Path) -> Result<()> {
    let (status, metrics_lines) = contents(dir)?;
    let mut files = BTreeMap::new();
    for (name, path) in files_under(dir, "")? {
        files.insert(name, checksum(&path)?);
    }
    let sealed = Sealed {
        status,
        metrics_lines,
        files,
    };
    let path = dir.join(FILE);
    let mut json = serde_json::to_vec_pretty(&sealed).map_err(|e| bad(&path, e))?;
    json.push(b'\n');
    write_atomic(&path, &json)
}

/// Checks a committed run against its `verified.json`. A run committed
/// before lmech wrote one is checked by its contents alone.
pub fn verify(dir: &Path, depth: Depth) -> Result<()> {
    if depth == Depth::Full {
        contents(dir)?;
    }
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let sealed: Sealed =
        serde_json::from_str(&text).map_err(|e| bad(&path, format!("unreadable: {e}")))?;
    for (name, want) in &sealed.files {
        let file = dir.join(name);
        let bytes = std::fs::metadata(&file)
            .map_err(|e| Error::io(&file, e))?
            .len();
        if bytes != want.bytes {
            return Err(bad(
                &file,
                format!("{bytes} bytes, {} when committed", want.bytes),
            ));
        }
        if depth == Depth::Full && checksum(&file)?.fnv1a64 != want.fnv1a64 {
            return Err(bad(&file, "its contents changed since it was committed"));
        }
    }
    Ok(())
}

/// What `lmech sweep check` found.
pub struct CheckOutcome {
    pub verified: usize,
    /// `(id, reason)` of committed runs that failed verification.
    pub bad: Vec<(String, String)>,
    /// Runs of the grid not committed yet.
    pub missing: usize,
}

/// Fully verifies every committed run of the store at `dir`.
pub fn check_store(dir: &Path) -> Result<CheckOutcome> {
    let manifest = crate::sweep::store::read_manifest(dir)?;
    let mut out = CheckOutcome {
        verified: 0,
        bad: Vec::new(),
        missing: 0,
    };
    for m in &manifest.runs {
        let run = dir.join("runs").join(&m.id);
        if !run.is_dir() {
            out.missing += 1;
        } else if let Err(e) = verify(&run, Depth::Full) {
            out.bad.push((m.id.clone(), e.to_string()));
        } else {
            out.verified += 1;
        }
    }
    Ok(out)
}
