//! A private `XDG_RUNTIME_DIR` for headless machines. Mesa's Vulkan drivers
//! (lavapipe included) try a Wayland connection while wgpu enumerates
//! adapters, and libwayland prints `error: XDG_RUNTIME_DIR is invalid or not
//! set in the environment.` when the variable is missing: on a server or in
//! CI, a user's first `lmech eos` would print two errors that are not ones.
//! When the variable is unset or names no directory, lmech points it at a
//! directory of its own (mode 0700, as the XDG spec asks) before the first
//! probe; Wayland then finds no compositor there and says nothing. A valid
//! setting is left alone, so real Wayland problems still show.

use std::path::{Path, PathBuf};
use std::sync::Once;

/// Sets `XDG_RUNTIME_DIR` to a private directory when it is unusable; once
/// per process, before the first wgpu instance.
pub(super) fn ensure() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let usable = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| Path::new(&d).is_dir());
        if usable {
            return;
        }
        // Without a directory Wayland complains as before: nothing is lost.
        if let Some(dir) = private_dir() {
            std::env::set_var("XDG_RUNTIME_DIR", dir);
        }
    });
}

#[cfg(unix)]
fn private_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let dir = std::env::temp_dir().join(format!("lmech-runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Another user's directory of that name is not ours to use.
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    let ours = meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o077 == 0;
    ours.then_some(dir)
}

#[cfg(not(unix))]
fn private_dir() -> Option<PathBuf> {
    None
}
