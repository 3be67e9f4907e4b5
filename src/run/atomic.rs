//! Atomic file replacement: every result file of a run (CSV, summary,
//! plots, checkpoints) is written through here, so a run killed mid-write
//! leaves either the old file or the new one, never half of either.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Distinguishes temporary files of concurrent writers within one process
/// (the pid alone would not), e.g. two threads saving the same plot.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` by writing a temporary file in the same
/// directory (`.{name}.tmp-{pid}-{n}`), syncing it to disk and renaming it
/// over `path`. Rename is atomic only within one file system, hence the
/// temporary file lives next to its target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::msg(format!("{}: not a file path", path.display())))?;
    let tmp_name = format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        NEXT_TMP.fetch_add(1, Ordering::Relaxed)
    );
    let tmp = path.with_file_name(tmp_name);
    let written = write_synced(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if written.is_err() {
        // Best effort: the write already failed, and a leftover temporary
        // file is harmless (it is hidden and never read).
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_parent(path);
    Ok(())
}

/// Creates (or truncates) `tmp` with `bytes`, on disk before this returns.
pub fn write_synced(tmp: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(tmp, e))?;
    // Without this sync a power loss right after the rename could leave an
    // empty file under the final name.
    file.sync_all().map_err(|e| Error::io(tmp, e))
}

/// Makes the rename itself durable. Best effort: some file systems refuse
/// to sync a directory, and the data is already safe from a killed process.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
