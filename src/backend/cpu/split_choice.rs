//! Whether a mid-sized matrix product runs on the calling thread or split
//! over the pool, chosen per shape by timing both ways on its first calls.
//!
//! No size bound serves every shape. Timed inside real steps, a woken
//! thread often arrives too late to help: in a 64-wide MLP step at batch
//! 1000 a 1000 x 64 x 64 product took 74 us either way and a 1000 x 10 x 64
//! one 21 us serial against 40 split, while in a 256-wide step at batch 128
//! a 128 x 256 x 256 product took 146-166 us serial against 149-176 split
//! and a 128 x 64 x 256 one went either way between runs (BENCHMARKS.md,
//! 2026-12-02). What decides is how the product sits among the step's
//! other passes, which only the step can measure. Both ways give the same
//! bits (every block reduces over all of k in the same order), so the
//! choice changes speed only, never results.
//!
//! A shape (with the transposes, element size, thread count and whether the
//! call comes from a pool thread) runs split on its first call, untimed,
//! then alternates the two ways for `TRIALS` timed calls each and keeps the
//! faster by its best time. `LMECH_PRODUCT_SPLIT=serial|split` fixes the
//! choice instead (to benchmark either).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Timed calls of each way before a shape's choice is fixed.
const TRIALS: u32 = 3;

/// A product's shape and the context it runs in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ProductKey {
    pub e: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ta: bool,
    pub tb: bool,
    pub elem_bytes: usize,
    pub threads: usize,
    /// Called from a pool thread (a member stepped apart), where splitting
    /// competes with the other members' work.
    pub in_pool: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Way {
    Serial,
    Split,
}

#[derive(Default)]
struct Trials {
    calls: u32,
    best_serial: Option<Duration>,
    best_split: Option<Duration>,
    chosen: Option<Way>,
}

impl Trials {
    /// The way the next call goes, and whether it is timed.
    fn next(&mut self) -> (Way, bool) {
        if let Some(way) = self.chosen {
            return (way, false);
        }
        self.calls += 1;
        match self.calls {
            1 => (Way::Split, false),
            c if c % 2 == 0 => (Way::Serial, true),
            _ => (Way::Split, true),
        }
    }

    fn record(&mut self, way: Way, took: Duration) {
        let best = match way {
            Way::Serial => &mut self.best_serial,
            Way::Split => &mut self.best_split,
        };
        *best = Some(best.map_or(took, |b| b.min(took)));
        if self.calls > 2 * TRIALS {
            if let (Some(s), Some(p)) = (self.best_serial, self.best_split) {
                self.chosen = Some(if s < p { Way::Serial } else { Way::Split });
            }
        }
    }
}

fn table() -> &'static Mutex<HashMap<ProductKey, Trials>> {
    static TABLE: OnceLock<Mutex<HashMap<ProductKey, Trials>>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `LMECH_PRODUCT_SPLIT`: a fixed way, or `None` to choose per shape.
fn fixed() -> Option<Way> {
    static FIXED: OnceLock<Option<Way>> = OnceLock::new();
    *FIXED.get_or_init(|| match std::env::var("LMECH_PRODUCT_SPLIT").as_deref() {
        Ok("serial") => Some(Way::Serial),
        Ok("split") => Some(Way::Split),
        _ => None,
    })
}

/// One call of a product: the way it goes, and the clock when it is one
/// of its shape's timed calls. `finish` records the time.
pub struct Call {
    pub way: Way,
    timed: Option<(ProductKey, Instant)>,
}

impl Call {
    /// The way the product `key` describes goes this time.
    pub fn start(key: ProductKey) -> Call {
        if let Some(way) = fixed() {
            return Call { way, timed: None };
        }
        let (way, timed) = lock().entry(key).or_default().next();
        Call {
            way,
            timed: timed.then(|| (key, Instant::now())),
        }
    }

    pub fn finish(self) {
        if let Some((key, started)) = self.timed {
            let took = started.elapsed();
            if let Some(t) = lock().get_mut(&key) {
                t.record(self.way, took);
            }
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<ProductKey, Trials>> {
    table().lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_call_is_split_then_both_are_timed_then_the_faster_is_kept() {
        let mut t = Trials::default();
        let mut ways = Vec::new();
        for _ in 0..(2 * TRIALS + 1) {
            let (way, timed) = t.next();
            ways.push((way, timed));
            if timed {
                let ms = if way == Way::Serial { 1 } else { 2 };
                t.record(way, Duration::from_millis(ms));
            }
        }
        assert_eq!(ways[0], (Way::Split, false));
        assert_eq!(ways[1], (Way::Serial, true));
        assert_eq!(ways[2], (Way::Split, true));
        assert_eq!(ways.iter().filter(|w| w.1).count(), 2 * TRIALS as usize);
        assert_eq!(t.chosen, Some(Way::Serial));
        assert_eq!(t.next(), (Way::Serial, false));
        let mut u = Trials::default();
        for _ in 0..(2 * TRIALS + 1) {
            let (way, timed) = u.next();
            if timed {
                let ms = if way == Way::Serial { 3 } else { 2 };
                u.record(way, Duration::from_millis(ms));
            }
        }
        assert_eq!(u.chosen, Some(Way::Split));
    }
}
