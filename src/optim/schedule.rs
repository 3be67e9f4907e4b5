//! Learning-rate schedules as a factor on the base learning rate: constant,
//! or linear warmup followed by cosine decay to `min_factor`.

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Linear warmup over `warmup` steps (factor (t+1)/warmup at step t),
    /// then half a cosine from 1 down to `min_factor` at step `total`.
    WarmupCosine {
        warmup: u64,
        total: u64,
        min_factor: f64,
    },
}

impl Schedule {
    pub fn parse(key: &str, name: &str, warmup: u64, total: u64, min_factor: f64) -> Result<Self> {
        match name {
            "constant" if warmup == 0 => Ok(Schedule::Constant),
            "constant" | "cosine" => Ok(Schedule::WarmupCosine {
                warmup,
                total,
                // "constant" with warmup: warm up, then hold.
                min_factor: if name == "constant" { 1.0 } else { min_factor },
            }),
            _ => Err(Error::config(
                key,
                format!("unknown schedule {name:?}; expected constant or cosine"),
            )),
        }
    }

    /// Factor for the update with index `t` (0 for the first update).
    pub fn factor(&self, t: u64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::WarmupCosine {
                warmup,
                total,
                min_factor,
            } => {
                if t < warmup {
                    (t + 1) as f64 / warmup as f64
                } else {
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    let progress = ((t - warmup) as f64 / span).min(1.0);
                    min_factor
                        + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = Schedule::WarmupCosine {
            warmup: 10,
            total: 110,
            min_factor: 0.1,
        };
        assert!((s.factor(0) - 0.1).abs() < 1e-12);
        assert!((s.factor(9) - 1.0).abs() < 1e-12);
        assert!((s.factor(10) - 1.0).abs() < 1e-12);
        assert!((s.factor(60) - 0.55).abs() < 1e-12);
        assert!((s.factor(110) - 0.1).abs() < 1e-12);
        assert!((s.factor(500) - 0.1).abs() < 1e-12);
        assert_eq!(Schedule::Constant.factor(1234), 1.0);
    }
}
