//! Loss kinds and their names in configs. The kernels live in each backend
//! (`loss` op); this file fixes the conventions they implement.

use crate::error::{Error, Result};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Softmax cross-entropy on integer labels, mean over examples.
    CrossEntropy,
    /// `0.5 * ||f - y||^2` summed over outputs, mean over examples: the
    /// convention of the edge-of-stability literature (Cohen et al. 2021).
    Mse,
    /// Plain mean squared error: mean over examples and outputs of
    /// `(f - y)^2` (PyTorch's `nn.MSELoss()`).
    MseMean,
}

impl LossKind {
    pub const NAMES: [&'static str; 3] = ["xent", "mse", "mse_mean"];

    pub fn name(self) -> &'static str {
        match self {
            LossKind::CrossEntropy => "xent",
            LossKind::Mse => "mse",
            LossKind::MseMean => "mse_mean",
        }
    }

    pub fn parse(key: &str, s: &str) -> Result<Self> {
        match s {
            "xent" | "cross_entropy" => Ok(LossKind::CrossEntropy),
            "mse" => Ok(LossKind::Mse),
            "mse_mean" => Ok(LossKind::MseMean),
            _ => Err(Error::config(
                key,
                format!(
                    "unknown loss {s:?}; expected one of {}",
                    Self::NAMES.join(", ")
                ),
            )),
        }
    }

    pub fn needs_labels(self) -> bool {
        self == LossKind::CrossEntropy
    }
}
