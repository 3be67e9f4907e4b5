//! One sweep worker process: expand the grid, pack this worker's runs (the
//! whole grid, or one `--shard`) into ensembles and hand them to threads
//! (one or more per device), each of which claims the next pack's free
//! runs, trains them while the heartbeat renews their claims, and commits
//! each member as it finishes. Any number of such processes share a store.
//! A run that diverges is a result like any other; an ensemble that fails
//! (an I/O error, say) is reported, its claims are released with the
//! reason, and the sweep goes on, leaving those runs to a later worker.
//! A set `cancel` flag (Ctrl-C in the Python package) stops every thread
//! before its next step or pack; the runs in training keep their work
//! directories and restart points, as a killed worker's do, and their claims
//! are released without a failure, so the next worker resumes them at once.

use crate::backend::device::Device;
use crate::error::{Error, Result};
use crate::run::Status;
use crate::sweep::claim::{Claim, Claims, Worker};
use crate::sweep::heartbeat::{Heartbeat, Held};
use crate::sweep::pack::pack;
use crate::sweep::picker::Picker;
use crate::sweep::progress::SweepProgress;
use crate::sweep::shard::Shard;
use crate::sweep::spec::{RunSpec, SweepSpec};
use crate::sweep::store::{Begin, Manifest, Store};
use crate::sweep::tidy::tidy_committed;
use crate::train::{train_ensemble_guarded, Member};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct SweepOptions {
    pub out: PathBuf,
    /// Also train again committed runs that fail verification.
    pub resume: bool,
    pub shard: Shard,
    /// Devices to spread ensembles over, each with `jobs` workers.
    pub devices: Vec<Device>,
    pub jobs: usize,
    /// Overrides the sweep file's `max_ensemble`.
    pub max_ensemble: Option<usize>,
    pub progress: bool,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// Stops the sweep when set (checked before every step and every pack).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// What one `lmech sweep` process did.
#[derive(Clone, Debug, Default)]
pub struct SweepOutcome {
    /// `host:pid` of this worker.
    pub worker: String,
    /// Runs in this worker's part of the grid (all of it, or its shard).
    pub total: usize,
    /// Runs found committed (before this process, or by another worker),
    /// or finished by a killed worker and committed by this one.
    pub skipped: usize,
    pub finished: usize,
    pub diverged: usize,
    /// `(id, error)` of runs that neither finished nor diverged.
    pub failed: Vec<(String, String)>,
    /// Runs other workers were training when this one ran out of work.
    pub elsewhere: usize,
    pub ensembles: usize,
    /// Every run of the grid is committed (by any worker).
    pub grid_done: bool,
}

pub fn run_sweep(spec: &SweepSpec, opts: &SweepOptions) -> Result<SweepOutcome> {
    if opts.devices.is_empty() || opts.jobs == 0 {
        return Err(Error::msg("a sweep needs at least one device and one job"));
    }
    let runs = spec.expand()?;
    let store = Store::open(&opts.out)?;
    store.write_manifest(&Manifest::new(spec, &runs))?;
    let mine: Vec<usize> = (0..runs.len()).filter(|&i| opts.shard.owns(i)).collect();
    let todo: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|&i| opts.resume || !store.is_committed(&runs[i].id))
        .collect();
    let packs = pack(&runs, &todo, opts.max_ensemble.unwrap_or(spec.max_ensemble))?;
    let worker = Worker::here(opts.lease);
    let claims = Claims::new(store.root(), worker.clone());
    tidy_committed(&store, &claims);
    let shared = Shared {
        runs: &runs,
        sweep: &spec.name,
        store: &store,
        claims: &claims,
        picker: Picker::new(&runs, &store, &claims, opts.resume, packs),
        heartbeat: Heartbeat::new(&claims),
        cancel: opts.cancel.as_deref(),
        progress: SweepProgress::new(
            &spec.name,
            mine.len(),
            mine.len() - todo.len(),
            opts.progress,
        ),
        result: Mutex::new(SweepOutcome {
            worker: format!("{}:{}", worker.host, worker.pid),
            total: mine.len(),
            skipped: mine.len() - todo.len(),
            ..SweepOutcome::default()
        }),
    };
    shared.run_threads(&opts.devices, opts.jobs)?;
    if shared.cancelled() {
        return Err(Error::msg(
            "the sweep was interrupted; running it again resumes it",
        ));
    }
    let mut outcome = shared
        .result
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    outcome.elsewhere = shared.picker.left();
    outcome.grid_done = runs.iter().all(|r| store.is_committed(&r.id));
    tidy_committed(&store, &claims);
    Ok(outcome)
}

/// What the threads of one worker process share.
struct Shared<'a> {
    runs: &'a [RunSpec],
    sweep: &'a str,
    store: &'a Store,
    claims: &'a Claims,
    picker: Picker<'a>,
    heartbeat: Heartbeat<'a>,
    cancel: Option<&'a AtomicBool>,
    progress: SweepProgress,
    result: Mutex<SweepOutcome>,
}

/// A member this thread claimed and trains.
struct Claimed {
    index: usize,
    dir: PathBuf,
    held: Arc<Held>,
}

impl Shared<'_> {
    /// Runs `jobs` threads per device, and the heartbeat, until all end.
    fn run_threads(&self, devices: &[Device], jobs: usize) -> Result<()> {
        let ended = std::thread::scope(|s| {
            s.spawn(|| self.heartbeat.run());
            let threads: Vec<_> = devices
                .iter()
                .flat_map(|&d| std::iter::repeat_n(d, jobs))
                .map(|device| s.spawn(move || self.work(device)))
                .collect();
            let ended: Vec<Result<()>> = threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(Error::msg("a sweep worker thread panicked")))
                })
                .collect();
            self.heartbeat.stop();
            ended
        });
        self.progress.finish();
        ended.into_iter().collect()
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, SweepOutcome> {
        self.result.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes packs until none is left; an error here (the claims cannot be
    /// read or written) stops this thread.
    fn work(&self, device: Device) -> Result<()> {
        let mut found_done = || {
            self.tally().skipped += 1;
            self.progress.run_elsewhere();
        };
        while !self.cancelled() {
            let Some(taken) = self.picker.next(&mut found_done)? else {
                break;
            };
            // Each run's directory is its own (synced) file work: in
            // parallel, in pack order.
            let members = taken
                .into_par_iter()
                .filter_map(|(i, claim)| self.begin(i, claim))
                .collect::<Vec<_>>();
            if !members.is_empty() {
                self.train(device, &members);
            }
        }
        Ok(())
    }

    /// Prepares a claimed run's directory; `None` when there is nothing to
    /// train (it was finished by a killed worker and is now committed, or
    /// failed).
    fn begin(&self, index: usize, claim: Claim) -> Option<Claimed> {
        let id = &self.runs[index].id;
        let held = self.heartbeat.hold(claim);
        match self.store.begin(id, &self.claims.worker().token) {
            Ok(Begin::Train(dir, from)) => {
                if let Some(step) = from {
                    self.progress.run_continued(id, step);
                }
                Some(Claimed { index, dir, held })
            }
            Ok(Begin::Finished(dir)) => {
                match self.commit(id, &dir, &held) {
                    Ok(()) => {
                        self.tally().skipped += 1;
                        self.progress.run_adopted(id);
                    }
                    Err(e) => self.fail(id, &held, &e),
                }
                None
            }
            Err(e) => {
                self.fail(id, &held, &e);
                None
            }
        }
    }

    fn train(&self, device: Device, members: &[Claimed]) {
        self.tally().ensembles += 1;
        let ms: Vec<Member> = members
            .iter()
            .map(|m| {
                let mut cfg = self.runs[m.index].cfg.clone();
                cfg.name = Some(format!("{}/{}", self.sweep, self.runs[m.index].id));
                Member {
                    cfg,
                    out: m.dir.clone(),
                }
            })
            .collect();
        let guard = || {
            if self.cancelled() {
                return Err(Error::msg("interrupted"));
            }
            match members.iter().find(|m| !self.heartbeat.confirm(&m.held)) {
                Some(m) => Err(lost(&self.runs[m.index].id)),
                None => Ok(()),
            }
        };
        let mut committed = vec![false; members.len()];
        let trained = train_ensemble_guarded(&ms, device, false, &guard, &mut |e, report| {
            let m = &members[e];
            let id = &self.runs[m.index].id;
            self.commit(id, &m.dir, &m.held)?;
            committed[e] = true;
            let diverged_at = match report.status {
                Status::Diverged { step, .. } => Some(step),
                Status::Finished => None,
            };
            match diverged_at {
                Some(_) => self.tally().diverged += 1,
                None => self.tally().finished += 1,
            }
            self.progress.run_done(id, diverged_at);
            Ok(())
        });
        if let Err(err) = trained {
            for (m, _) in members.iter().zip(&committed).filter(|(_, &c)| !c) {
                if self.cancelled() {
                    self.heartbeat.let_go(&m.held);
                    // A failed release leaves the claim to expire, as a killed worker's does.
                    let _ = self.claims.release(&m.held.claim, "");
                } else {
                    self.fail(&self.runs[m.index].id, &m.held, &err);
                }
            }
        }
    }

    /// Commits a finished run, if this worker still holds its claim.
    fn commit(&self, id: &str, dir: &Path, held: &Arc<Held>) -> Result<()> {
        if held.is_lost() || !self.claims.renew(&held.claim)? {
            return Err(lost(id));
        }
        self.store.commit(id, dir).map_err(|e| {
            Error::msg(format!(
                "could not commit {id} (it stays in {}): {e}",
                dir.display()
            ))
        })?;
        self.heartbeat.let_go(held);
        self.claims.clear(id);
        Ok(())
    }

    /// Records a run that neither finished nor diverged and lets its claim
    /// go, with the reason, so that another worker may try it.
    fn fail(&self, id: &str, held: &Arc<Held>, err: &Error) {
        // A worker woken after another took its run over may have failed
        // on the directory the other cleared: the lost claim is the news.
        let msg = match self.heartbeat.confirm(held) {
            true => err.to_string(),
            false => lost(id).to_string(),
        };
        self.heartbeat.let_go(held);
        // A failed release leaves the claim to expire: the same end, later.
        let _ = self.claims.release(&held.claim, &msg);
        self.tally().failed.push((id.to_string(), msg.clone()));
        self.progress.run_failed(id, &msg);
    }
}

fn lost(id: &str) -> Error {
    Error::msg(format!(
        "stopped {id} without committing it: another worker took over its claim \
         (this worker did not renew it within its lease)"
    ))
}
