//! Running a sweep on one machine: expand the grid, keep this shard's runs
//! that are not committed yet, pack them into ensembles and hand the
//! ensembles to workers (one or more per device). A run that diverges is a
//! result like any other; an ensemble that fails (an I/O error, say) is
//! reported and the sweep goes on, leaving those runs for `--resume`.

use crate::backend::device::Device;
use crate::error::{Error, Result};
use crate::run::Status;
use crate::sweep::pack::pack;
use crate::sweep::progress::SweepProgress;
use crate::sweep::shard::Shard;
use crate::sweep::spec::{RunSpec, SweepSpec};
use crate::sweep::store::{Manifest, Store};
use crate::train::{train_ensemble, Member};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

pub struct SweepOptions {
    pub out: PathBuf,
    /// Continue a sweep whose store already holds runs of this shard.
    pub resume: bool,
    pub shard: Shard,
    /// Devices to spread ensembles over, each with `jobs` workers.
    pub devices: Vec<Device>,
    pub jobs: usize,
    /// Overrides the sweep file's `max_ensemble`.
    pub max_ensemble: Option<usize>,
    pub progress: bool,
}

/// What one `lmech sweep` process did.
#[derive(Clone, Debug, Default)]
pub struct SweepOutcome {
    /// Runs in this shard.
    pub total: usize,
    /// Runs already committed before this process (or finished but not yet
    /// committed by a killed one).
    pub skipped: usize,
    pub finished: usize,
    pub diverged: usize,
    /// `(id, error)` of runs that neither finished nor diverged.
    pub failed: Vec<(String, String)>,
    pub ensembles: usize,
}

pub fn run_sweep(spec: &SweepSpec, opts: &SweepOptions) -> Result<SweepOutcome> {
    if opts.devices.is_empty() || opts.jobs == 0 {
        return Err(Error::msg("a sweep needs at least one device and one job"));
    }
    let runs = spec.expand()?;
    let store = Store::open(&opts.out)?;
    store.write_manifest(&Manifest::new(spec, &runs))?;
    let mine: Vec<usize> = (0..runs.len()).filter(|&i| opts.shard.owns(i)).collect();
    let started: Vec<&RunSpec> = mine
        .iter()
        .map(|&i| &runs[i])
        .filter(|r| store.is_committed(&r.id) || store.work_dir(&r.id).exists())
        .collect();
    if !opts.resume && !started.is_empty() {
        return Err(Error::msg(format!(
            "{} already holds {} runs of this sweep's shard (e.g. {}); add --resume to continue it, \
             or choose another --out",
            store.root().display(),
            started.len(),
            started[0].id
        )));
    }
    let mut outcome = SweepOutcome {
        total: mine.len(),
        ..SweepOutcome::default()
    };
    let mut todo = Vec::new();
    for &i in &mine {
        let id = &runs[i].id;
        if store.is_committed(id) {
            outcome.skipped += 1;
        } else if store.is_complete_in_work(id) {
            store.commit(id)?;
            outcome.skipped += 1;
        } else {
            todo.push(i);
        }
    }
    let packs = pack(&runs, &todo, opts.max_ensemble.unwrap_or(spec.max_ensemble))?;
    outcome.ensembles = packs.len();
    let progress = SweepProgress::new(&spec.name, mine.len(), outcome.skipped, opts.progress);
    let queue = Mutex::new(packs.into_iter().collect::<VecDeque<_>>());
    let result = Mutex::new(outcome);
    std::thread::scope(|s| {
        for &device in &opts.devices {
            for _ in 0..opts.jobs {
                let (runs, store, queue, result, progress) =
                    (&runs, &store, &queue, &result, &progress);
                s.spawn(move || worker(device, runs, store, &spec.name, queue, result, progress));
            }
        }
    });
    progress.finish();
    Ok(result.into_inner().unwrap_or_else(|e| e.into_inner()))
}

fn worker(
    device: Device,
    runs: &[RunSpec],
    store: &Store,
    sweep: &str,
    queue: &Mutex<VecDeque<Vec<usize>>>,
    result: &Mutex<SweepOutcome>,
    progress: &SweepProgress,
) {
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let Some(pack) = next else { return };
        let members: Vec<Member> = pack
            .iter()
            .map(|&i| {
                let mut cfg = runs[i].cfg.clone();
                cfg.name = Some(format!("{sweep}/{}", runs[i].id));
                Member {
                    cfg,
                    out: store.work_dir(&runs[i].id),
                }
            })
            .collect();
        let mut committed = vec![false; pack.len()];
        let trained = train_ensemble(&members, device, false, &mut |e, report| {
            let id = &runs[pack[e]].id;
            store.commit(id)?;
            committed[e] = true;
            let diverged_at = match report.status {
                Status::Diverged { step, .. } => Some(step),
                Status::Finished => None,
            };
            let mut r = result.lock().unwrap_or_else(|e| e.into_inner());
            match diverged_at {
                Some(_) => r.diverged += 1,
                None => r.finished += 1,
            }
            drop(r);
            progress.run_done(id, diverged_at);
            Ok(())
        });
        if let Err(err) = trained {
            let msg = err.to_string();
            for (e, &i) in pack.iter().enumerate() {
                if !committed[e] {
                    let id = &runs[i].id;
                    result
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .failed
                        .push((id.clone(), msg.clone()));
                    progress.run_failed(id, &msg);
                }
            }
        }
    }
}
