//! The live progress line of a training run on stderr: step, loss, steps/s
//! and ETA. It prints nothing when stderr is not a terminal (batch jobs,
//! redirected logs), where a redrawn bar would only fill the log with
//! control characters.

use std::fmt;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

const TEMPLATE: &str = "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} {rate} eta {eta}";

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(total_steps: u64, label: &str) -> Self {
        // indicatif's stderr target hides itself when stderr is not a
        // terminal; checking here as well makes that explicit and skips the
        // per-step work entirely. Redraws are capped at 20 per second, so
        // calling `update` every step costs a lock, not a redraw.
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(20)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total_steps), target);
        // The template is a constant known to parse; falling back to the
        // default style keeps a (theoretical) template error from failing
        // a training run.
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            // indicatif's own `{per_sec}` prints four decimals of noise.
            .with_key("rate", |state: &ProgressState, w: &mut dyn fmt::Write| {
                let _ = write!(w, "{:.1} steps/s", state.per_sec());
            });
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Progress { bar }
    }

    /// Whether nothing is drawn (stderr is not a terminal); a caller may
    /// then log occasional plain lines instead.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    pub fn update(&self, step: u64, loss: f64) {
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_message(format!("loss {}", format_loss(loss)));
        self.bar.set_position(step);
    }

    /// Leaves the final state of the bar on screen with `msg` in place of
    /// the loss (e.g. "done" or "diverged at step 812").
    pub fn finish(&self, msg: &str) {
        self.bar.finish_with_message(msg.to_string());
    }
}

/// Fixed-point for ordinary losses, scientific for tiny or huge ones, so the
/// line keeps its width while the loss decays by orders of magnitude.
fn format_loss(loss: f64) -> String {
    let a = loss.abs();
    if a == 0.0 || (1e-3..1e4).contains(&a) || !a.is_finite() {
        format!("{loss:.4}")
    } else {
        format!("{loss:.3e}")
    }
}
