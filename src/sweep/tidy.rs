//! Tidying a store: what a worker killed in the middle of a commit leaves
//! behind. A commit renames `work/<id>/<worker>/` to `runs/<id>/` and then
//! removes `work/<id>/` and `claims/<id>/`; no file system makes those
//! three steps one, so a SIGKILL between them leaves an empty (or, after
//! a takeover that died too, a stale) `work/<id>/` and a dead worker's
//! claim beside a committed run. Nothing would ever read them again, but a
//! researcher listing `work/` to see what is in training would be misled,
//! so every worker removes them when it starts and when it stops.

use crate::sweep::claim::Claims;
use crate::sweep::store::Store;
use std::fs;

/// Removes `work/<id>/` and `claims/<id>/` of every committed run that no
/// live worker holds. Best effort: what cannot be removed now is left for
/// the next worker.
///
/// A committed run with a live claim is left alone: under `--resume` that
/// worker may be about to set the run aside and train it again in
/// `work/<id>/`.
pub fn tidy_committed(store: &Store, claims: &Claims) {
    for sub in ["work", "claims"] {
        let Ok(entries) = fs::read_dir(store.root().join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(id) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !store.is_committed(&id) || !claims.state(&id).is_ok_and(|(_, s)| s.is_free()) {
                continue;
            }
            let _ = fs::remove_dir_all(e.path());
        }
    }
}
