//! Claims: a worker trains a run only after claiming it, so that any number
//! of `lmech sweep` processes, on one machine or many sharing a file system,
//! fill one store without ever training a run twice at the same time.
//!
//! The claims of run `<id>` are numbered files `claims/<id>/<n>.claim`
//! (JSON: worker, host, pid, start, last renewal, lease expiry); the highest
//! number is the current claim. A worker claims a free run by writing its
//! record to a draft file of its own and hard-linking that to the next
//! number: `link` fails when the name exists (atomic on local file systems,
//! NFSv3 and later, and Lustre), so of any workers racing for it exactly
//! one succeeds, and a claim file is never seen half written. The current claim is free when it was released,
//! when its lease expired, or when its worker ran on this host (in this pid
//! namespace) and that process is gone. No worker ever writes another's
//! file: renewing rewrites one's own (a temporary file renamed over it),
//! taking over creates the next number, and a worker holds its claim only
//! while no higher number exists, which it checks before every renewal and
//! before committing.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A claim's lease unless `--lease-seconds` says otherwise: long enough to
/// ride out a stalled network file system (NFS retries, a Lustre recovery)
/// with three renewals missed in a row, short next to a run, so that a
/// run whose worker died on another node waits minutes to be taken over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

/// Who this process is, as its claims say it.
#[derive(Clone, Debug)]
pub struct Worker {
    /// Unique over all workers: host, pid, start time and a counter.
    pub token: String,
    pub host: String,
    pub pid: u32,
    /// The pid namespace (`/proc/self/ns/pid`): pids compare only within one.
    pub pid_ns: String,
    pub lease: Duration,
}

/// Keeps the tokens of several `Worker`s of one process distinct.
static NEXT_WORKER: AtomicU64 = AtomicU64::new(0);

impl Worker {
    /// This process, holding claims for `lease` after each renewal.
    pub fn here(lease: Duration) -> Self {
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into());
        let safe: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let pid = std::process::id();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = NEXT_WORKER.fetch_add(1, Ordering::Relaxed);
        Worker {
            token: format!("{safe}-{pid}-{nanos:x}-{n}"),
            host,
            pid,
            pid_ns: fs::read_link("/proc/self/ns/pid")
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            lease,
        }
    }

    /// Whether the process a claim names is known to be gone: it ran on
    /// this host, in this pid namespace, and `/proc` has no such pid.
    fn outlived(&self, rec: &ClaimRecord) -> bool {
        rec.host == self.host
            && !rec.pid_ns.is_empty()
            && rec.pid_ns == self.pid_ns
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{}", rec.pid)).exists()
    }
}

/// The contents of a claim file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub worker: String,
    pub host: String,
    pub pid: u32,
    pub pid_ns: String,
    pub started_unix: f64,
    pub renewed_unix: f64,
    pub lease_expires_unix: f64,
    /// The worker let go of the run without committing it.
    #[serde(default)]
    pub released: bool,
    /// Why, when training it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Where a run's current claim stands, as seen by one worker.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimState {
    /// Never claimed (or its claims were cleared at commit).
    Unclaimed,
    /// Held by a live worker.
    Held(ClaimRecord),
    /// A claim file that does not parse, younger than a lease: being
    /// written (by an lmech before claims were linked whole) or torn by a
    /// crash of its host. Free once older than a lease.
    Creating,
    /// Free to take over: the record (if readable) and why.
    Stale(Option<ClaimRecord>, String),
    /// Released by its worker, with the failure if there was one.
    Released(ClaimRecord),
}

impl ClaimState {
    pub fn is_free(&self) -> bool {
        matches!(
            self,
            ClaimState::Unclaimed | ClaimState::Stale(..) | ClaimState::Released(_)
        )
    }
}

/// A claim this worker holds: run id and claim number.
#[derive(Clone, Debug)]
pub struct Claim {
    pub id: String,
    number: u64,
    started_unix: f64,
}

pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The claims of one store, as one worker sees and makes them.
pub struct Claims {
    dir: PathBuf,
    worker: Worker,
}

impl Claims {
    pub fn new(store_root: &Path, worker: Worker) -> Self {
        Claims {
            dir: store_root.join("claims"),
            worker,
        }
    }

    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    fn file(&self, id: &str, number: u64) -> PathBuf {
        self.dir.join(id).join(format!("{number}.claim"))
    }

    /// The number of `id`'s current claim, if it has any.
    fn current(&self, id: &str) -> Result<Option<u64>> {
        let dir = self.dir.join(id);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut top = None;
        for entry in entries {
            let name = entry.map_err(|e| Error::io(&dir, e))?.file_name();
            let n = name.to_str().and_then(|n| n.strip_suffix(".claim"));
            if let Some(n) = n.and_then(|n| n.parse::<u64>().ok()) {
                top = top.max(Some(n));
            }
        }
        Ok(top)
    }

    /// Where `id`'s current claim stands, and its number.
    pub fn state(&self, id: &str) -> Result<(Option<u64>, ClaimState)> {
        let Some(number) = self.current(id)? else {
            return Ok((None, ClaimState::Unclaimed));
        };
        let path = self.file(id, number);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            // Cleared by a commit since the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((None, ClaimState::Unclaimed))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let state = match serde_json::from_slice::<ClaimRecord>(&bytes) {
            Ok(rec) => self.judge(rec),
            Err(_) => self.judge_unreadable(&path),
        };
        Ok((Some(number), state))
    }

    fn judge(&self, rec: ClaimRecord) -> ClaimState {
        if rec.released {
            ClaimState::Released(rec)
        } else if rec.lease_expires_unix <= now_unix() {
            ClaimState::Stale(Some(rec), "its lease expired".into())
        } else if self.worker.outlived(&rec) {
            let why = format!("process {} on this host is gone", rec.pid);
            ClaimState::Stale(Some(rec), why)
        } else {
            ClaimState::Held(rec)
        }
    }

    /// A claim file that does not parse is `Creating` until it is older
    /// than a lease; then nothing will ever complete it.
    fn judge_unreadable(&self, path: &Path) -> ClaimState {
        let age = fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        match age {
            Some(a) if a > self.worker.lease => {
                ClaimState::Stale(None, "its claim file was never completed".into())
            }
            _ => ClaimState::Creating,
        }
    }

    fn record(&self, started_unix: f64, failure: Option<&str>) -> ClaimRecord {
        let now = now_unix();
        ClaimRecord {
            worker: self.worker.token.clone(),
            host: self.worker.host.clone(),
            pid: self.worker.pid,
            pid_ns: self.worker.pid_ns.clone(),
            started_unix,
            renewed_unix: now,
            lease_expires_unix: now + self.worker.lease.as_secs_f64(),
            released: failure.is_some(),
            failure: failure.filter(|f| !f.is_empty()).map(str::to_string),
        }
    }

    /// Claims `id` if it is free; `None` when another worker holds it or
    /// won the race for it.
    pub fn try_claim(&self, id: &str) -> Result<Option<Claim>> {
        let (number, state) = self.state(id)?;
        if !state.is_free() {
            return Ok(None);
        }
        let dir = self.dir.join(id);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let number = number.map_or(1, |n| n + 1);
        let claim = Claim {
            id: id.to_string(),
            number,
            started_unix: now_unix(),
        };
        // Written whole under a name of this worker's own, then linked to
        // the claim's name: `link` is the exclusive create (atomic on local
        // file systems, NFS and Lustre) and the file it makes is never
        // empty, so a worker killed here never holds a run for a lease.
        let draft = dir.join(format!(".{number}.{}.draft", self.worker.token));
        let json = serde_json::to_vec(&self.record(claim.started_unix, None))
            .map_err(|e| Error::msg(format!("{}: {e}", draft.display())))?;
        crate::run::atomic::write_synced(&draft, &json)?;
        let linked = fs::hard_link(&draft, self.file(id, number));
        let _ = fs::remove_file(&draft);
        match linked {
            Ok(()) => {}
            // Another worker linked this number first, or a commit cleared
            // the directory: either way the run is not ours.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotFound
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(Error::io(self.file(id, number), e)),
        }
        Ok(Some(claim))
    }

    /// Whether this worker still holds `claim`: no worker took it over.
    pub fn holds(&self, claim: &Claim) -> Result<bool> {
        if self.current(&claim.id)? != Some(claim.number) {
            return Ok(false);
        }
        let path = self.file(&claim.id, claim.number);
        Ok(fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<ClaimRecord>(&b).ok())
            .is_some_and(|r| r.worker == self.worker.token && !r.released))
    }

    /// Extends the lease of `claim` by a full lease from now; false (and
    /// nothing written) when the claim was lost.
    pub fn renew(&self, claim: &Claim) -> Result<bool> {
        self.rewrite(claim, None)
    }

    /// Lets go of `claim` without committing, saying why when it failed
    /// (an empty `failure` for none), so another worker may take the run.
    pub fn release(&self, claim: &Claim, failure: &str) -> Result<bool> {
        self.rewrite(claim, Some(failure))
    }

    fn rewrite(&self, claim: &Claim, release: Option<&str>) -> Result<bool> {
        if !self.holds(claim)? {
            return Ok(false);
        }
        let path = self.file(&claim.id, claim.number);
        let json = serde_json::to_vec(&self.record(claim.started_unix, release))
            .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
        crate::run::write_atomic(&path, &json)?;
        Ok(true)
    }

    /// Removes the claims of a committed run (best effort: a worker that
    /// claimed it in the meantime finds it committed and lets go).
    pub fn clear(&self, id: &str) {
        let _ = fs::remove_dir_all(self.dir.join(id));
    }
}
