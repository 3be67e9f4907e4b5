//! The heartbeat of a sweep worker: a thread that renews every claim the
//! process holds four times per lease (so three renewals in a row may fail,
//! to a stalled file server say, before the lease runs out), and marks a
//! claim lost when another worker has taken it over, so that the training
//! under it stops and nothing is committed under it. The training asks
//! before every step (`confirm`), which costs a clock reading unless the
//! lease ran out unrenewed.

use crate::sweep::claim::{now_unix, Claim, Claims};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A claim being renewed.
pub struct Held {
    pub claim: Claim,
    lost: AtomicBool,
    /// When it was last renewed (`now_unix`, as f64 bits).
    renewed: AtomicU64,
}

impl Held {
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    fn renewed_now(&self) {
        self.renewed.store(now_unix().to_bits(), Ordering::Relaxed);
    }
}

pub struct Heartbeat<'a> {
    claims: &'a Claims,
    held: Mutex<Vec<Arc<Held>>>,
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl<'a> Heartbeat<'a> {
    pub fn new(claims: &'a Claims) -> Self {
        Heartbeat {
            claims,
            held: Mutex::new(Vec::new()),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Starts renewing `claim`.
    pub fn hold(&self, claim: Claim) -> Arc<Held> {
        let held = Arc::new(Held {
            claim,
            lost: AtomicBool::new(false),
            renewed: AtomicU64::new(now_unix().to_bits()),
        });
        self.lock().push(held.clone());
        held
    }

    /// Whether `held` is still this worker's, cheaply: only when its lease
    /// ran out unrenewed (this process was stopped or starved longer than
    /// a lease) does it ask the store, so a worker that wakes up after
    /// another took its run over stops at once, before writing anything.
    pub fn confirm(&self, held: &Held) -> bool {
        if held.is_lost() {
            return false;
        }
        let renewed = f64::from_bits(held.renewed.load(Ordering::Relaxed));
        if now_unix() - renewed < self.claims.worker().lease.as_secs_f64() {
            return true;
        }
        match self.claims.renew(&held.claim) {
            Ok(true) => held.renewed_now(),
            Ok(false) => held.lost.store(true, Ordering::Relaxed),
            // Unknown: the heartbeat keeps trying.
            Err(_) => {}
        }
        !held.is_lost()
    }

    /// Stops renewing `held` (committed or released).
    pub fn let_go(&self, held: &Arc<Held>) {
        self.lock().retain(|h| !Arc::ptr_eq(h, held));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Held>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renews until `stop`; run it on a thread of its own.
    pub fn run(&self) {
        let period = (self.claims.worker().lease / 4).max(Duration::from_millis(50));
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // `_while` looks before it waits: a `stop` that came before this
            // thread first took the lock (a worker that found nothing to do)
            // would otherwise be missed, and the process kept a whole
            // period (a quarter lease, 75 s by default) from exiting.
            stopped = self
                .wake
                .wait_timeout_while(stopped, period, |stopped| !*stopped)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if *stopped {
                return;
            }
            let held: Vec<Arc<Held>> = self.lock().clone();
            for h in held.iter().filter(|h| !h.is_lost()) {
                let renewed = self.claims.renew(&h.claim);
                // Committed (and its claims cleared) or released meanwhile:
                // neither lost nor worth a word.
                if !self.lock().iter().any(|x| Arc::ptr_eq(x, h)) {
                    continue;
                }
                match renewed {
                    Ok(true) => h.renewed_now(),
                    Ok(false) => h.lost.store(true, Ordering::Relaxed),
                    // The next beat tries again; the lease has room for it.
                    Err(e) => eprintln!("could not renew the claim on {}: {e}", h.claim.id),
                }
            }
        }
    }

    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }
}
