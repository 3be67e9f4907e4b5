//! Taking work from a shared store. A worker's runs, packed into ensembles,
//! are offered in order; of the next pack it takes the members it can
//! claim: runs not committed yet (or, with `--resume`, committed but
//! failing verification, whose bad copy it sets aside). Members that other
//! workers hold go to the back of the queue, to be taken over should their
//! claims go stale before this worker runs out of work, and the worker
//! stops when a pass over the queue finds nothing free to take.

use crate::error::Result;
use crate::sweep::claim::{Claim, Claims};
use crate::sweep::spec::RunSpec;
use crate::sweep::store::Store;
use crate::sweep::verify::{verify, Depth};
use std::collections::VecDeque;
use std::sync::Mutex;

pub struct Picker<'a> {
    runs: &'a [RunSpec],
    store: &'a Store,
    claims: &'a Claims,
    resume: bool,
    queue: Mutex<VecDeque<Vec<usize>>>,
}

/// Claimed members of a pack: indices into the grid and their claims.
pub type Taken = Vec<(usize, Claim)>;

/// What a worker found for one run.
enum Found {
    /// Committed (by anyone), nothing to do.
    Done,
    /// Held by another worker.
    Busy,
    Mine(Claim),
}

impl<'a> Picker<'a> {
    /// Offers `packs` (indices into `runs`) in order.
    pub fn new(
        runs: &'a [RunSpec],
        store: &'a Store,
        claims: &'a Claims,
        resume: bool,
        packs: Vec<Vec<usize>>,
    ) -> Self {
        Picker {
            runs,
            store,
            claims,
            resume,
            queue: Mutex::new(packs.into()),
        }
    }

    /// The members of the next pack that this worker claimed (indices and
    /// claims); `None` when nothing is left to take. `done` is called for
    /// each run found committed. A first pass leaves whole any pack whose
    /// first open run another worker holds: workers that start together
    /// would otherwise split every ensemble between them. Only when that
    /// finds nothing does a second pass take every free run.
    pub fn next(&self, done: &mut dyn FnMut()) -> Result<Option<Taken>> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        for polite in [true, false] {
            for _ in 0..queue.len() {
                let Some(pack) = queue.pop_front() else { break };
                let (mine, busy) = self.take_pack(&pack, polite, done)?;
                if !busy.is_empty() {
                    queue.push_back(busy);
                }
                if !mine.is_empty() {
                    return Ok(Some(mine));
                }
            }
        }
        Ok(None)
    }

    /// Claims what it can of `pack`: the claims, and the runs held
    /// elsewhere (with `polite`, the rest of a pack whose first open run is).
    fn take_pack(
        &self,
        pack: &[usize],
        polite: bool,
        done: &mut dyn FnMut(),
    ) -> Result<(Taken, Vec<usize>)> {
        let (mut mine, mut busy) = (Vec::new(), Vec::new());
        for (k, &i) in pack.iter().enumerate() {
            match self.take(i) {
                Ok(Found::Done) => done(),
                Ok(Found::Busy) if polite && mine.is_empty() => {
                    busy.extend_from_slice(&pack[k..]);
                    break;
                }
                Ok(Found::Busy) => busy.push(i),
                Ok(Found::Mine(c)) => mine.push((i, c)),
                Err(e) => {
                    for (_, c) in &mine {
                        let _ = self.claims.release(c, "");
                    }
                    return Err(e);
                }
            }
        }
        Ok((mine, busy))
    }

    /// Runs that other workers held when this one last looked and that are
    /// not committed yet.
    pub fn left(&self) -> usize {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue
            .iter()
            .flatten()
            .filter(|&&i| !self.store.is_committed(&self.runs[i].id))
            .count()
    }

    fn take(&self, i: usize) -> Result<Found> {
        let id = &self.runs[i].id;
        if self.store.is_committed(id) && self.flaw(id).is_none() {
            return Ok(Found::Done);
        }
        let Some(claim) = self.claims.try_claim(id)? else {
            return Ok(Found::Busy);
        };
        // Looked at again under the claim: another worker may have
        // committed or repaired the run since.
        if self.store.is_committed(id) {
            let Some(why) = self.flaw(id) else {
                self.claims.release(&claim, "")?;
                self.claims.clear(id);
                return Ok(Found::Done);
            };
            let to = self.store.set_aside(id, &self.claims.worker().token)?;
            eprintln!(
                "run {id} failed verification ({why}); moved it to {} and training it again",
                to.display()
            );
        }
        Ok(Found::Mine(claim))
    }

    /// Why a committed run must be trained again: only under `--resume`,
    /// when it fails verification.
    fn flaw(&self, id: &str) -> Option<String> {
        if !self.resume {
            return None;
        }
        verify(&self.store.run_dir(id), Depth::Full)
            .err()
            .map(|e| e.to_string())
    }
}
