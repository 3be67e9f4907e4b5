//! `lmech sweep status DIR`: where a shared store stands, without touching
//! it — how many runs are done (finished or diverged), failed (released by
//! their worker with an error, waiting for another), claimed (by whom,
//! since when, how much lease is left) and pending (unclaimed, or held by
//! a claim that went stale), as text for a person or as JSON.

use crate::error::{Error, Result};
use crate::sweep::claim::{now_unix, ClaimState, Claims, Worker, DEFAULT_LEASE};
use crate::sweep::store::read_manifest;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Default, Serialize)]
pub struct StoreStatus {
    pub sweep: String,
    pub total: usize,
    pub finished: usize,
    pub diverged: usize,
    /// Committed runs whose `summary.json` does not read.
    pub unreadable: Vec<Unreadable>,
    pub failed: Vec<FailedRun>,
    pub claimed: Vec<ClaimedRun>,
    /// Runs no live worker holds, of which `stale` with an expired claim.
    pub pending: usize,
    pub stale: usize,
}

#[derive(Debug, Serialize)]
pub struct Unreadable {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct FailedRun {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct ClaimedRun {
    pub id: String,
    pub worker: String,
    pub host: String,
    pub pid: u32,
    pub since_unix: f64,
    pub lease_left_s: f64,
}

/// Reads the status of the store at `dir`.
pub fn store_status(dir: &Path) -> Result<StoreStatus> {
    let manifest = read_manifest(dir)?;
    // Only reads claims, whose own leases count.
    let claims = Claims::new(dir, Worker::here(DEFAULT_LEASE));
    let mut st = StoreStatus {
        sweep: manifest.name.clone(),
        total: manifest.runs.len(),
        ..StoreStatus::default()
    };
    for run in &manifest.runs {
        let id = run.id.clone();
        let committed = dir.join("runs").join(&id);
        if committed.is_dir() {
            match summary_status(&committed) {
                Ok(s) if s == "diverged" => st.diverged += 1,
                Ok(_) => st.finished += 1,
                Err(e) => st.unreadable.push(Unreadable {
                    id,
                    reason: e.to_string(),
                }),
            }
            continue;
        }
        match claims.state(&id)?.1 {
            ClaimState::Held(r) => st.claimed.push(ClaimedRun {
                id,
                worker: r.worker,
                host: r.host,
                pid: r.pid,
                since_unix: r.started_unix,
                lease_left_s: r.lease_expires_unix - now_unix(),
            }),
            ClaimState::Released(r) if r.failure.is_some() => st.failed.push(FailedRun {
                id,
                host: r.host,
                pid: r.pid,
                error: r.failure.unwrap_or_default(),
            }),
            ClaimState::Stale(..) => {
                st.pending += 1;
                st.stale += 1;
            }
            _ => st.pending += 1,
        }
    }
    Ok(st)
}

fn summary_status(run: &Path) -> Result<String> {
    let path = run.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::msg(format!("{}: not a run summary: {e}", path.display())))?;
    Ok(v.get("status")
        .and_then(|s| s.as_str())
        .unwrap_or("")
        .to_string())
}

/// `3h05m`, `4m10s`, `12s`.
fn span(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl StoreStatus {
    /// The status for a person, one line per run that needs a look.
    pub fn text(&self) -> String {
        let mut out = format!(
            "sweep {}: {} runs\n  done     {} ({} finished, {} diverged)\n",
            self.sweep,
            self.total,
            self.finished + self.diverged,
            self.finished,
            self.diverged
        );
        out += &format!("  claimed  {}\n", self.claimed.len());
        let now = now_unix();
        for c in &self.claimed {
            out += &format!(
                "    {}  by {} pid {}, for {}, lease left {}\n",
                c.id,
                c.host,
                c.pid,
                span(now - c.since_unix),
                span(c.lease_left_s)
            );
        }
        out += &format!(
            "  failed   {} (any worker retries them)\n",
            self.failed.len()
        );
        for f in &self.failed {
            out += &format!("    {}  on {} pid {}: {}\n", f.id, f.host, f.pid, f.error);
        }
        out += &format!("  pending  {}", self.pending);
        if self.stale > 0 {
            out += &format!(" ({} with an expired claim, to be taken over)", self.stale);
        }
        out.push('\n');
        if !self.unreadable.is_empty() {
            out += &format!(
                "  unreadable {} (see lmech sweep check)\n",
                self.unreadable.len()
            );
            for u in &self.unreadable {
                out += &format!("    {}: {}\n", u.id, u.reason);
            }
        }
        out
    }
}
