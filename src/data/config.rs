//! The `[data]` table of a run's config: which data set to use and how to
//! preprocess it. Field names are the public config keys; every field has a
//! default so a config only names what it changes, and the default is the
//! bundled digits set.
//!
//! Preprocessing always runs in this order:
//! load -> shuffle? -> split (test_fraction) -> take n_train / n_test ->
//! scale -> standardize -> one_hot.

use crate::error::{Error, Result};
use crate::nn::shape::Shape;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const SOURCES: &[&str] = &[
    "digits",
    "npy",
    "npz",
    "mnist",
    "cifar10",
    "teacher_student",
    "chebyshev",
    "linear",
    "modular",
    "sort",
    "copy",
    "tokens",
];
pub const ACTIVATIONS: &[&str] = &["identity", "relu", "tanh"];
/// The operations of the `modular` source, `a op b mod p`.
pub const MODULAR_OPS: &[&str] = &["+", "-", "*", "/"];

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// One of [`SOURCES`].
    pub source: String,
    /// Seed of data shuffling, mini-batch order and synthetic data; unset,
    /// the run's top-level `seed`. Setting it lets runs that differ only in
    /// their model seed share one data order and so train as one ensemble.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,

    // --- file sources ---
    /// `npy`: inputs, shape [N, ...] (flattened to [N, d]); `tokens`: input
    /// ids [N, T] (with `y_path`, instead of `path`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_path: Option<PathBuf>,
    /// `npy`: targets; integer [N] = class labels, float [N] or [N, K] =
    /// values; `tokens`: target ids [N, T], a negative one ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y_path: Option<PathBuf>,
    /// `npy` and `tokens`: optional test inputs (then `test_y_path` is required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_x_path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_y_path: Option<PathBuf>,
    /// `npz`: the archive; `mnist` / `cifar10`: the directory of the files;
    /// `tokens`: the corpus, an integer `.npy` [N, T+1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `npz`: array names of the inputs and targets.
    pub x_key: String,
    pub y_key: String,
    /// `npz`: array names of a test split in the same archive (both or neither).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_test_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y_test_key: Option<String>,
    /// `npy`/`npz`: one example's shape, channels first (`[c, h, w]` for
    /// images, `[c, l]` for 1-D signals); its product must be the number of
    /// features. The built-in image sets know theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// Class labels: the number of classes; every label must lie in
    /// 0..num_classes and the model gets that many outputs. Unset, it is
    /// inferred from the train labels (largest + 1) and said on stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,

    // --- preprocessing ---
    /// Multiply every input by this (e.g. 1/255 for image pixels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// Per-feature zero mean and unit std, with statistics of the train set.
    pub standardize: bool,
    /// Turn class labels into one-hot value targets (for an MSE loss).
    pub one_hot: bool,
    /// Keep the first n train examples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_train: Option<usize>,
    /// Keep the first n test examples; for synthetic sources and `sort`, the
    /// number of fresh test points to generate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_test: Option<usize>,
    /// For sources without a test split: hold out this fraction (chosen by a
    /// seeded shuffle) as the test set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
    /// Shuffle the source (seeded) before splitting and subsetting; off, "the
    /// first n" means the file's first n.
    pub shuffle: bool,

    // --- synthetic sources ---
    /// Number of train points (synthetic sources and `sort`).
    pub n: usize,
    pub input_dim: usize,
    pub output_dim: usize,
    /// `teacher_student`: hidden width, number of dense layers, activation.
    pub teacher_width: usize,
    pub teacher_depth: usize,
    pub teacher_activation: String,
    /// Std of Gaussian noise added to every synthetic target.
    pub noise_std: f64,
    /// `chebyshev`: the degree k of the target T_k.
    pub degree: usize,
    /// `linear`: the singular values of the teacher map A (else A is Gaussian).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub singular_values: Option<Vec<f64>>,

    // --- sequence tasks ---
    /// `modular`: the modulus p (default 113); the labels are 0..p and the
    /// token p is "=".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p: Option<usize>,
    /// `modular`: one of [`MODULAR_OPS`] (default "+").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// `modular`: the fraction of all pairs trained on (default 0.3); the
    /// rest is the test set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_fraction: Option<f64>,
    /// `sort`, `copy`: tokens per sequence (per copy; default 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// `sort`, `copy`: tokens are drawn from 0..vocab (default 16; `copy`'s
    /// separator is the id vocab); `tokens`: every id must lie below it
    /// (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab: Option<usize>,
    /// `tokens`: an optional test corpus laid out as `path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_path: Option<PathBuf>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: "digits".into(),
            seed: None,
            x_path: None,
            y_path: None,
            test_x_path: None,
            test_y_path: None,
            path: None,
            x_key: "x".into(),
            y_key: "y".into(),
            x_test_key: None,
            y_test_key: None,
            input_shape: None,
            num_classes: None,
            scale: None,
            standardize: false,
            one_hot: false,
            n_train: None,
            n_test: None,
            test_fraction: None,
            shuffle: false,
            n: 1000,
            input_dim: 10,
            output_dim: 1,
            teacher_width: 32,
            teacher_depth: 2,
            teacher_activation: "tanh".into(),
            noise_std: 0.0,
            degree: 4,
            singular_values: None,
            p: None,
            op: None,
            train_fraction: None,
            length: None,
            vocab: None,
            test_path: None,
        }
    }
}

impl DataConfig {
    /// One example's input shape for `d` features: the image sets' own
    /// (digits 1x8x8, MNIST 1x28x28, CIFAR-10 3x32x32), `input_shape` for
    /// files, a vector otherwise.
    pub fn input_shape(&self, d: usize) -> Result<Shape> {
        let known: Option<Vec<usize>> = match self.source.as_str() {
            "digits" => Some(vec![1, 8, 8]),
            "mnist" => Some(vec![1, 28, 28]),
            "cifar10" => Some(vec![3, 32, 32]),
            _ => None,
        };
        if let (Some(_), Some(_)) = (&known, &self.input_shape) {
            return Err(Error::config(
                "data.input_shape",
                format!(
                    "the {} source has a fixed input shape; leave data.input_shape unset",
                    self.source
                ),
            ));
        }
        let dims = known
            .or_else(|| self.input_shape.clone())
            .unwrap_or_else(|| vec![d]);
        let shape = Shape::from_dims("data.input_shape", &dims)?;
        if shape.features() != d {
            return Err(Error::config(
                "data.input_shape",
                format!(
                    "{dims:?} holds {} values, but each example has {d} features",
                    shape.features()
                ),
            ));
        }
        Ok(shape)
    }

    /// The synthetic regression tasks.
    pub fn is_synthetic(&self) -> bool {
        matches!(
            self.source.as_str(),
            "teacher_student" | "chebyshev" | "linear"
        )
    }

    /// The token tasks, whose inputs are token ids.
    pub fn is_sequence_task(&self) -> bool {
        matches!(self.source.as_str(), "modular" | "sort" | "copy" | "tokens")
    }

    /// Whether `n_test` draws a fresh test set (rather than cutting one).
    fn generates_test(&self) -> bool {
        self.is_synthetic() || matches!(self.source.as_str(), "sort" | "copy")
    }

    /// Whether the source comes with its own test split.
    pub fn has_test_split(&self) -> bool {
        match self.source.as_str() {
            "mnist" | "cifar10" | "modular" => true,
            "npy" => self.test_x_path.is_some(),
            "npz" => self.x_test_key.is_some(),
            "tokens" => self.test_path.is_some() || self.test_x_path.is_some(),
            _ => self.generates_test() && self.n_test.is_some(),
        }
    }

    /// `modular`'s modulus, operation and train fraction, defaults applied.
    pub fn modular_task(&self) -> (usize, &str, f64) {
        (
            self.p.unwrap_or(113),
            self.op.as_deref().unwrap_or("+"),
            self.train_fraction.unwrap_or(0.3),
        )
    }

    /// `sort`'s sequence length and vocabulary, defaults applied.
    pub fn sort_task(&self) -> (usize, usize) {
        (self.length.unwrap_or(8), self.vocab.unwrap_or(16))
    }

    /// `copy`'s string length and vocabulary (the symbols, the separator
    /// not counted), defaults applied: those of `sort`.
    pub fn copy_task(&self) -> (usize, usize) {
        self.sort_task()
    }

    /// For the built-in token tasks, the vocabulary their inputs need and
    /// why: `modular`'s p numbers and "=", `copy`'s symbols and separator.
    pub fn input_vocab(&self) -> Option<(usize, String)> {
        match self.source.as_str() {
            "modular" => {
                let p = self.modular_task().0;
                Some((p + 1, format!("ids 0..{p} and \"=\" ({p})")))
            }
            "sort" => {
                let v = self.sort_task().1;
                Some((v, format!("ids 0..{v}")))
            }
            "copy" => {
                let v = self.copy_task().1;
                Some((v + 1, format!("the symbols 0..{v} and the separator {v}")))
            }
            _ => None,
        }
    }

    /// Checks every key without touching the file system.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("data.{key}"), msg));
        let src = self.source.as_str();
        if !SOURCES.contains(&src) {
            return bad(
                "source",
                format!(
                    "unknown source '{src}'; expected one of {}",
                    SOURCES.join(", ")
                ),
            );
        }

        // Path and key options only mean something to some sources; one the
        // source would ignore is almost certainly a mistake.
        let files = matches!(src, "npy" | "tokens");
        let options = [
            ("x_path", self.x_path.is_some(), files),
            ("y_path", self.y_path.is_some(), files),
            ("test_x_path", self.test_x_path.is_some(), files),
            ("test_y_path", self.test_y_path.is_some(), files),
            (
                "path",
                self.path.is_some(),
                matches!(src, "npz" | "mnist" | "cifar10" | "tokens"),
            ),
            ("x_test_key", self.x_test_key.is_some(), src == "npz"),
            ("y_test_key", self.y_test_key.is_some(), src == "npz"),
            ("test_path", self.test_path.is_some(), src == "tokens"),
            ("p", self.p.is_some(), src == "modular"),
            ("op", self.op.is_some(), src == "modular"),
            (
                "train_fraction",
                self.train_fraction.is_some(),
                src == "modular",
            ),
            (
                "length",
                self.length.is_some(),
                matches!(src, "sort" | "copy"),
            ),
            (
                "vocab",
                self.vocab.is_some(),
                matches!(src, "sort" | "copy" | "tokens"),
            ),
        ];
        for (key, set, used) in options {
            if set && !used {
                return bad(key, format!("is set but source '{src}' does not read it"));
            }
        }
        if self.singular_values.is_some() && src != "linear" {
            return bad(
                "singular_values",
                format!("is set but source '{src}' does not read it"),
            );
        }
        match src {
            "npy" => {
                if self.x_path.is_none() {
                    return bad(
                        "x_path",
                        "source 'npy' needs x_path (an .npy file of inputs)".into(),
                    );
                }
                if self.y_path.is_none() {
                    return bad(
                        "y_path",
                        "source 'npy' needs y_path (an .npy file of targets)".into(),
                    );
                }
                together(
                    ("test_x_path", self.test_x_path.is_some()),
                    ("test_y_path", self.test_y_path.is_some()),
                )?;
            }
            "tokens" => self.validate_token_files()?,
            "npz" | "mnist" | "cifar10" if self.path.is_none() => {
                let what = match src {
                    "npz" => "the .npz file",
                    _ => "the directory of its files",
                };
                return bad("path", format!("source '{src}' needs path ({what})"));
            }
            "npz" => {
                let keys = [
                    ("x_key", Some(&self.x_key)),
                    ("y_key", Some(&self.y_key)),
                    ("x_test_key", self.x_test_key.as_ref()),
                    ("y_test_key", self.y_test_key.as_ref()),
                ];
                if let Some((key, _)) = keys.iter().find(|(_, k)| k.is_some_and(String::is_empty)) {
                    return bad(key, "must name an array".into());
                }
                together(
                    ("x_test_key", self.x_test_key.is_some()),
                    ("y_test_key", self.y_test_key.is_some()),
                )?;
            }
            _ => {}
        }

        if let Some(s) = self.scale {
            if !s.is_finite() {
                return bad("scale", format!("must be finite, got {s}"));
            }
        }
        if self.num_classes == Some(0) {
            return bad("num_classes", "must be at least 1".into());
        }
        if self.n_train == Some(0) {
            return bad("n_train", "must be at least 1".into());
        }
        if self.n_test == Some(0) {
            return bad(
                "n_test",
                "must be at least 1 (leave it out for no test set)".into(),
            );
        }
        if let Some(f) = self.test_fraction {
            if !(f > 0.0 && f < 1.0) {
                return bad(
                    "test_fraction",
                    format!("must lie strictly between 0 and 1, got {f}"),
                );
            }
            if self.has_test_split() {
                let why = if self.generates_test() {
                    "n_test already generates a test set".to_string()
                } else if src == "modular" {
                    "source 'modular' already has a test split (set by data.train_fraction)"
                        .to_string()
                } else {
                    format!("source '{src}' already has a test split")
                };
                return bad("test_fraction", format!("cannot be used: {why}"));
            }
        }
        if self.n_test.is_some() && !self.has_test_split() && self.test_fraction.is_none() {
            return bad(
                "n_test",
                format!("source '{src}' has no test split; set data.test_fraction to hold one out"),
            );
        }
        if self.is_synthetic() {
            self.validate_synthetic()?;
        }
        if self.is_sequence_task() {
            self.validate_sequence_task()?;
        }
        Ok(())
    }

    fn validate_sequence_task(&self) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("data.{key}"), msg));
        let src = self.source.as_str();
        let classes_from = if src == "modular" { "p" } else { "vocab" };
        if self.num_classes.is_some() {
            return bad(
                "num_classes",
                format!("source '{src}' has its classes fixed by data.{classes_from}"),
            );
        }
        // The embedding reads the inputs as token ids: scaled or
        // standardized they would no longer be integers.
        for (key, on) in [
            ("scale", self.scale.is_some()),
            ("standardize", self.standardize),
        ] {
            if on {
                return bad(
                    key,
                    format!("source '{src}' holds token ids, which must stay integers; leave data.{key} out"),
                );
            }
        }
        if self.one_hot && src != "modular" {
            return bad(
                "one_hot",
                format!("source '{src}' has one label per position; sequence labels need xent"),
            );
        }
        match src {
            "modular" => self.validate_modular(),
            "sort" | "copy" => {
                let (length, vocab) = self.sort_task();
                if self.n == 0 {
                    return bad("n", "must be at least 1".into());
                }
                if length == 0 {
                    return bad("length", "must be at least 1".into());
                }
                if vocab == 0 {
                    return bad("vocab", "must be at least 1".into());
                }
                Ok(())
            }
            _ => match self.vocab {
                None => bad(
                    "vocab",
                    "source 'tokens' needs vocab, the number of token ids (every id lies below it)"
                        .into(),
                ),
                Some(0) => bad("vocab", "must be at least 1".into()),
                Some(_) => Ok(()),
            },
        }
    }

    /// `tokens` reads one of two layouts: `path` (and `test_path`), ids
    /// `[N, T+1]`, or `x_path` and `y_path` (and `test_x_path`,
    /// `test_y_path`), inputs and targets `[N, T]`.
    fn validate_token_files(&self) -> Result<()> {
        let bad = |key: &str, msg: &str| Err(Error::config(format!("data.{key}"), msg));
        match (
            self.path.is_some(),
            self.x_path.is_some() || self.y_path.is_some(),
        ) {
            (false, false) => {
                return bad(
                    "path",
                    "source 'tokens' needs path (an integer .npy of token ids [N, T+1]), \
                     or x_path and y_path (input and target ids [N, T], a negative target ignored)",
                )
            }
            (true, true) => {
                let key = if self.x_path.is_some() {
                    "x_path"
                } else {
                    "y_path"
                };
                return bad(
                    key,
                    "source 'tokens' reads either path ([N, T+1]) or x_path and y_path ([N, T]), not both",
                );
            }
            (true, false) if self.test_x_path.is_some() || self.test_y_path.is_some() => {
                let key = if self.test_x_path.is_some() {
                    "test_x_path"
                } else {
                    "test_y_path"
                };
                return bad(
                    key,
                    "goes with x_path and y_path; a test corpus for path is test_path",
                );
            }
            (false, true) if self.test_path.is_some() => {
                return bad("test_path", "goes with path; test inputs and targets for x_path and y_path are test_x_path and test_y_path");
            }
            _ => {}
        }
        together(
            ("x_path", self.x_path.is_some()),
            ("y_path", self.y_path.is_some()),
        )?;
        together(
            ("test_x_path", self.test_x_path.is_some()),
            ("test_y_path", self.test_y_path.is_some()),
        )
    }

    fn validate_modular(&self) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("data.{key}"), msg));
        let (p, op, fraction) = self.modular_task();
        if p < 2 {
            return bad("p", format!("must be at least 2, got {p}"));
        }
        if !MODULAR_OPS.contains(&op) {
            return bad(
                "op",
                format!(
                    "unknown operation {op:?}; expected one of {}",
                    MODULAR_OPS.join(", ")
                ),
            );
        }
        if op == "/" && !is_prime(p) {
            return bad(
                "p",
                format!("division mod {p} needs a prime p (b^(p-2) is b's inverse only then)"),
            );
        }
        if !(fraction > 0.0 && fraction < 1.0) {
            return bad(
                "train_fraction",
                format!("must lie strictly between 0 and 1, got {fraction}"),
            );
        }
        let pairs = if op == "/" { p * (p - 1) } else { p * p };
        let train = (fraction * pairs as f64).round() as usize;
        if train == 0 || train >= pairs {
            return bad(
                "train_fraction",
                format!(
                    "{fraction} of {pairs} pairs trains on {train}; both train and test need at least one"
                ),
            );
        }
        Ok(())
    }

    fn validate_synthetic(&self) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::config(format!("data.{key}"), msg));
        let src = self.source.as_str();
        for (key, set) in [
            ("one_hot", self.one_hot),
            ("num_classes", self.num_classes.is_some()),
        ] {
            if set {
                return bad(
                    key,
                    format!("source '{src}' has real-valued targets, not labels"),
                );
            }
        }
        if !(self.noise_std >= 0.0 && self.noise_std.is_finite()) {
            return bad(
                "noise_std",
                format!("must be finite and >= 0, got {}", self.noise_std),
            );
        }
        match src {
            "chebyshev" => {
                if self.n < 2 {
                    return bad(
                        "n",
                        format!("chebyshev needs at least 2 grid points, got {}", self.n),
                    );
                }
            }
            _ => {
                if self.n == 0 {
                    return bad("n", "must be at least 1".into());
                }
                if self.input_dim == 0 {
                    return bad("input_dim", "must be at least 1".into());
                }
                if self.output_dim == 0 {
                    return bad("output_dim", "must be at least 1".into());
                }
            }
        }
        if src == "teacher_student" {
            if self.teacher_width == 0 {
                return bad("teacher_width", "must be at least 1".into());
            }
            if self.teacher_depth == 0 {
                return bad("teacher_depth", "must be at least 1 (dense layers)".into());
            }
            if !ACTIVATIONS.contains(&self.teacher_activation.as_str()) {
                return bad(
                    "teacher_activation",
                    format!(
                        "unknown activation '{}'; expected one of {}",
                        self.teacher_activation,
                        ACTIVATIONS.join(", ")
                    ),
                );
            }
        }
        if src == "linear" && self.n < self.input_dim {
            return bad(
                "n",
                format!(
                    "linear needs n >= input_dim for orthogonal inputs, got n = {} < input_dim = {}",
                    self.n, self.input_dim
                ),
            );
        }
        if let Some(s) = &self.singular_values {
            let rank = self.input_dim.min(self.output_dim);
            if s.is_empty() || s.len() > rank {
                return bad(
                    "singular_values",
                    format!(
                        "needs 1 to min(input_dim, output_dim) = {rank} values, got {}",
                        s.len()
                    ),
                );
            }
            if let Some(v) = s.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                return bad(
                    "singular_values",
                    format!("must be finite and >= 0, got {v}"),
                );
            }
        }
        Ok(())
    }
}

fn is_prime(p: usize) -> bool {
    p >= 2 && (2..).take_while(|d| d * d <= p).all(|d| p % d != 0)
}

/// Refuses one of two keys that only mean something together without the other.
fn together((a, a_set): (&str, bool), (b, b_set): (&str, bool)) -> Result<()> {
    if a_set == b_set {
        return Ok(());
    }
    let missing = if a_set { b } else { a };
    Err(Error::config(
        format!("data.{missing}"),
        format!("{a} and {b} must be given together"),
    ))
}
