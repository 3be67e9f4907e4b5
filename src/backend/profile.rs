//! Where a workload's time goes: wall time per kind of backend work (matrix
//! products, data movement of convolutions and pooling, pointwise kernels,
//! reductions, losses, optimizer updates, host-device transfers, waits for a
//! device), for `lmech-bench --split` and anyone timing a workload by hand.
//!
//! Off by default; then a span costs one relaxed atomic load. On, every
//! backend call opens a span of its part and the outermost span on a thread
//! adds its wall time to that part (an op that calls another op is counted
//! once, under its own part). What no span covers (the tape's bookkeeping,
//! the spectral algorithms' host vectors, the observers' host arithmetic) is
//! the workload's total minus the parts, which `lmech-bench` reports as
//! `host`.
//!
//! On the CPU every op is timed where it runs. A GPU op only queues work, so
//! on CUDA and wgpu only the transfers and the waits are spans: there the
//! device's compute shows up as `sync` (waiting for queued work) and inside
//! `download` (which waits for the work its result depends on).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A kind of backend work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Matrix products.
    Gemm,
    /// Copies that rearrange data: im2col/col2im, transposes, pooling's
    /// picks and places.
    Layout,
    /// Elementwise kernels: bias + activation and their derivatives,
    /// scalings, axpy, normalization rows, softmax rows.
    Pointwise,
    /// Reductions: row sums, dots, norms, accuracy counts.
    Reduce,
    /// The loss head's kernels (value, gradient, Hessian product).
    Loss,
    /// Optimizer updates.
    Optimizer,
    /// Host to backend (and new zeroed buffers).
    Upload,
    /// Backend to host.
    Download,
    /// Waiting for a device's queued work.
    Sync,
}

impl Part {
    pub const ALL: [Part; 9] = [
        Part::Gemm,
        Part::Layout,
        Part::Pointwise,
        Part::Reduce,
        Part::Loss,
        Part::Optimizer,
        Part::Upload,
        Part::Download,
        Part::Sync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Part::Gemm => "gemm",
            Part::Layout => "layout",
            Part::Pointwise => "pointwise",
            Part::Reduce => "reduce",
            Part::Loss => "loss",
            Part::Optimizer => "optimizer",
            Part::Upload => "upload",
            Part::Download => "download",
            Part::Sync => "sync",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

const PARTS: usize = Part::ALL.len();

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; PARTS] = [const { AtomicU64::new(0) }; PARTS];
static CALLS: [AtomicU64; PARTS] = [const { AtomicU64::new(0) }; PARTS];
/// Buffers the CPU backend had to get from the allocator (its recycling
/// cache had none of that length), and their bytes.
static FRESH_BUFFERS: AtomicU64 = AtomicU64::new(0);
static FRESH_BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Spans open on this thread: only the outermost one records.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Turns recording on or off (it starts off).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Zeroes every counter.
pub fn reset() {
    for i in 0..PARTS {
        NANOS[i].store(0, Ordering::Relaxed);
        CALLS[i].store(0, Ordering::Relaxed);
    }
    FRESH_BUFFERS.store(0, Ordering::Relaxed);
    FRESH_BYTES.store(0, Ordering::Relaxed);
}

/// An open span; its time is recorded when it drops.
#[must_use]
pub struct Span {
    state: SpanState,
}

enum SpanState {
    /// Opened while recording was off: records nothing.
    Off,
    /// Inside another span: holds a depth level, no clock.
    Nested,
    /// The outermost span on its thread: its time goes to `Part`.
    Outer(Part, Instant),
}

/// Opens a span of `part` (a no-op while recording is off).
#[inline]
pub fn span(part: Part) -> Span {
    if !enabled() {
        return Span {
            state: SpanState::Off,
        };
    }
    let depth = DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get()
    });
    let state = if depth == 1 {
        SpanState::Outer(part, Instant::now())
    } else {
        SpanState::Nested
    };
    Span { state }
}

impl Drop for Span {
    fn drop(&mut self) {
        match self.state {
            SpanState::Off => return,
            SpanState::Nested => {}
            SpanState::Outer(part, started) => {
                let ns = started.elapsed().as_nanos() as u64;
                NANOS[part.index()].fetch_add(ns, Ordering::Relaxed);
                CALLS[part.index()].fetch_add(1, Ordering::Relaxed);
            }
        }
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Records a buffer the allocator had to provide.
pub fn fresh_buffer(bytes: usize) {
    if enabled() {
        FRESH_BUFFERS.fetch_add(1, Ordering::Relaxed);
        FRESH_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// The counters since the last `reset`.
#[derive(Clone, Debug, Default)]
pub struct Split {
    /// Seconds and calls per part, in `Part::ALL` order.
    pub seconds: [f64; PARTS],
    pub calls: [u64; PARTS],
    pub fresh_buffers: u64,
    pub fresh_bytes: u64,
}

impl Split {
    /// Seconds of all parts together.
    pub fn total(&self) -> f64 {
        self.seconds.iter().sum()
    }
}

pub fn snapshot() -> Split {
    let mut s = Split::default();
    for i in 0..PARTS {
        s.seconds[i] = NANOS[i].load(Ordering::Relaxed) as f64 * 1e-9;
        s.calls[i] = CALLS[i].load(Ordering::Relaxed);
    }
    s.fresh_buffers = FRESH_BUFFERS.load(Ordering::Relaxed);
    s.fresh_bytes = FRESH_BYTES.load(Ordering::Relaxed);
    s
}

/// The process's CPU time (all threads) and minor page faults so far, from
/// Linux's `/proc/self/stat`; the system time is mostly the kernel mapping
/// and zeroing fresh pages (the allocation cost `Part`s cannot see).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessTimes {
    pub user_seconds: f64,
    pub sys_seconds: f64,
    pub minor_faults: u64,
}

impl ProcessTimes {
    /// None where `/proc` is not there (not Linux).
    pub fn now() -> Option<ProcessTimes> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may hold spaces; the fields after it do not.
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state(0) ... minflt(7) ... utime(11) stime(12).
        let ticks =
            |i: usize| -> Option<f64> { Some(f.get(i)?.parse::<f64>().ok()? / CLOCK_TICKS) };
        Some(ProcessTimes {
            user_seconds: ticks(11)?,
            sys_seconds: ticks(12)?,
            minor_faults: f.get(7)?.parse().ok()?,
        })
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &ProcessTimes) -> ProcessTimes {
        ProcessTimes {
            user_seconds: self.user_seconds - earlier.user_seconds,
            sys_seconds: self.sys_seconds - earlier.sys_seconds,
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
        }
    }
}

/// Linux's `USER_HZ`, the unit of `/proc/self/stat`'s times: 100 on every
/// architecture Linux supports today.
const CLOCK_TICKS: f64 = 100.0;
