//! The heartbeat of a sweep worker: a thread that renews every claim the
//! process holds four times per lease (so three renewals in a row may fail,
//! to a stalled file server say, before the lease runs out), and marks a
//! claim lost when another worker has taken it over, so that the training
//! under it stops and nothing is committed under it.

use crate::sweep::claim::{Claim, Claims};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A claim being renewed.
pub struct Held {
    pub claim: Claim,
    lost: AtomicBool,
}

impl Held {
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
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
        });
        self.lock().push(held.clone());
        held
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
            stopped = self
                .wake
                .wait_timeout(stopped, period)
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
                    Ok(true) => {}
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
