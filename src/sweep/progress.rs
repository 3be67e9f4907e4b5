//! The progress of a sweep on stderr: runs done out of the worker's total,
//! how many diverged or failed, and the ETA. On a terminal it is a bar;
//! otherwise (batch jobs, Slurm logs) one plain line per finished run.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

const TEMPLATE: &str = "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} runs, {msg}, eta {eta}";

pub struct SweepProgress {
    bar: Option<ProgressBar>,
    lines: bool,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    done: usize,
    total: usize,
    diverged: usize,
    failed: usize,
}

impl Counts {
    fn message(&self) -> String {
        format!("{} diverged, {} failed", self.diverged, self.failed)
    }
}

impl SweepProgress {
    /// `already` of `total` runs were done before this process started.
    pub fn new(label: &str, total: usize, already: usize, show: bool) -> Self {
        let counts = Counts {
            done: already,
            total,
            ..Counts::default()
        };
        let terminal = show && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(10),
            );
            bar.set_style(
                ProgressStyle::with_template(TEMPLATE)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(label.to_string());
            bar.set_position(already as u64);
            // The ETA counts only the runs this process trains.
            bar.reset_eta();
            bar.set_message(counts.message());
            bar
        });
        SweepProgress {
            bar,
            lines: show && !terminal,
            counts: Mutex::new(counts),
        }
    }

    /// A run was committed; `diverged_at` is its divergence step, if any.
    pub fn run_done(&self, id: &str, diverged_at: Option<u64>) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.done += 1;
        if diverged_at.is_some() {
            c.diverged += 1;
        }
        self.show(&c, || match diverged_at {
            Some(s) => format!("{id}: diverged at step {s}"),
            None => format!("{id}: finished"),
        });
    }

    /// A run committed by a killed worker's training, committed by this one.
    pub fn run_adopted(&self, id: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.done += 1;
        self.show(&c, || {
            format!("{id}: committed (trained by an earlier worker)")
        });
    }

    /// A run taken over with a restart point an earlier worker left:
    /// announced, not counted (it is not done yet).
    pub fn run_continued(&self, id: &str, step: u64) {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        self.show(&c, || {
            format!("{id}: restart point at step {step} taken over (left by an earlier worker)")
        });
    }

    /// A run found committed by another worker: counted, not announced.
    pub fn run_elsewhere(&self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.done += 1;
        if let Some(bar) = &self.bar {
            bar.set_position(c.done as u64);
        }
    }

    pub fn run_failed(&self, id: &str, error: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.done += 1;
        c.failed += 1;
        self.show(&c, || format!("{id}: failed: {error}"));
    }

    fn show(&self, c: &Counts, line: impl FnOnce() -> String) {
        if let Some(bar) = &self.bar {
            bar.set_position(c.done as u64);
            bar.set_message(c.message());
        } else if self.lines {
            eprintln!("[{}/{}] {}", c.done, c.total, line());
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            bar.finish_with_message(c.message());
        }
    }
}
