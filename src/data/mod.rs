//! Data sets: the in-memory types every trainer consumes, and [`load`], the
//! one entry point that turns a `[data]` config into a train/test split.
//!
//! Inputs are always a row-major [n, d] matrix of f64 (images flattened,
//! token sequences as ids); targets are class labels, real values or one
//! label per position of a sequence, so the loss can be chosen to match.
//! File formats, synthetic and sequence tasks live in their own modules.

mod arrays;
mod cifar;
pub mod config;
pub(crate) mod device;
mod idx;
pub mod npy;
pub mod npz;
mod preprocess;
mod sequences;
mod synthetic;
mod validate;

pub use config::DataConfig;
pub use device::upload_inputs_and_targets;
pub use validate::check_token_ids;

use crate::error::{Error, Result};
use crate::nn::shape::Shape;
use arrays::Named;
use std::path::Path;
use validate::Classes;

/// `n` examples: inputs `x` row-major [n, d] and their targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: Vec<f64>,
    pub n: usize,
    pub d: usize,
    pub y: Targets,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// One class index in 0..classes per example.
    Labels { y: Vec<usize>, classes: usize },
    /// Row-major [n, k] real values.
    Values { y: Vec<f64>, k: usize },
    /// One class index in 0..classes per position: row-major [n, t] (a
    /// sequence's next tokens, or any per-position labelling). `None` is an
    /// ignored position (PyTorch's `ignore_index`): it adds nothing to the
    /// loss or the accuracy, which average over the other positions.
    Sequence {
        y: Vec<Option<usize>>,
        t: usize,
        classes: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Dataset,
    pub test: Option<Dataset>,
}

impl Targets {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Labels { y, .. } => y.len(),
            Targets::Values { y, k } => y.len() / (*k).max(1),
            Targets::Sequence { y, t, .. } => y.len() / (*t).max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many targets the loss and the accuracy average over: the
    /// examples, or for sequences the positions that are not ignored.
    pub fn scored(&self) -> usize {
        match self {
            Targets::Sequence { y, .. } => y.iter().filter(|l| l.is_some()).count(),
            _ => self.len(),
        }
    }

    fn subset(&self, idx: &[usize]) -> Targets {
        match self {
            Targets::Labels { y, classes } => Targets::Labels {
                y: idx.iter().map(|&i| y[i]).collect(),
                classes: *classes,
            },
            Targets::Values { y, k } => Targets::Values {
                y: rows(y, *k, idx),
                k: *k,
            },
            Targets::Sequence { y, t, classes } => Targets::Sequence {
                y: rows(y, *t, idx),
                t: *t,
                classes: *classes,
            },
        }
    }
}

/// The rows at `idx` of a row-major matrix of rows of `width`.
fn rows<T: Copy>(v: &[T], width: usize, idx: &[usize]) -> Vec<T> {
    idx.iter()
        .flat_map(|&i| &v[i * width..(i + 1) * width])
        .copied()
        .collect()
}

impl Dataset {
    /// A data set after checking that the pieces agree: at least one example
    /// and one feature, `x` of length n * d and one target row per example.
    pub fn new(x: Vec<f64>, n: usize, d: usize, y: Targets) -> Result<Dataset> {
        if n == 0 || d == 0 {
            return Err(Error::shape(format!(
                "a data set needs n >= 1 and d >= 1, got n = {n}, d = {d}"
            )));
        }
        if x.len() != n * d {
            return Err(Error::shape(format!(
                "x has {} values, expected n * d = {n} * {d}",
                x.len()
            )));
        }
        let well_formed = match &y {
            Targets::Labels { y, classes } => y.iter().all(|l| l < classes),
            Targets::Values { y, k } => *k > 0 && y.len() == n * k,
            Targets::Sequence { y, t, classes } => {
                *t > 0 && y.len() == n * t && y.iter().flatten().all(|l| l < classes)
            }
        };
        if !well_formed || y.len() != n {
            return Err(Error::shape(format!(
                "targets do not fit {n} examples (labels out of range or wrong length)"
            )));
        }
        Ok(Dataset { x, n, d, y })
    }

    /// Width of the model output these targets call for: the number of
    /// classes, the number of values per example, or for a sequence its
    /// positions times its classes.
    pub fn out_dim(&self) -> usize {
        self.out_shape().features()
    }

    /// The shape of one example's model output these targets call for: a
    /// vector of class logits or values, or for a sequence a signal whose
    /// channels are the class logits and whose length is the positions
    /// (stored channels-last, so each position's logits are contiguous).
    pub fn out_shape(&self) -> Shape {
        match &self.y {
            Targets::Labels { classes, .. } => Shape::Flat(*classes),
            Targets::Values { k, .. } => Shape::Flat(*k),
            Targets::Sequence { t, classes, .. } => Shape::Signal { c: *classes, l: *t },
        }
    }

    /// The examples at `idx`, in that order (repeats allowed). Panics on an
    /// index >= n, like slice indexing.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: rows(&self.x, self.d, idx),
            n: idx.len(),
            d: self.d,
            y: self.y.subset(idx),
        }
    }

    /// The first min(n, self.n) examples.
    pub fn take_first(&self, n: usize) -> Dataset {
        let idx: Vec<usize> = (0..n.min(self.n)).collect();
        self.subset(&idx)
    }
}

/// Where the bundled digits live; only used to name them in messages, the
/// bytes themselves are compiled into the binary.
const DIGITS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits");
const DIGITS_X: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits/x.npy"));
const DIGITS_Y: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits/y.npy"));

/// Loads the configured source and preprocesses it, in the order
/// load -> shuffle? -> split (test_fraction) -> take n_train / n_test ->
/// scale -> standardize -> one_hot. `seed` drives every random choice
/// (shuffles, held-out examples, synthetic tasks). Every file's arrays are
/// validated as they are read (see `validate`): finite values, and labels
/// within `data.num_classes` or, unset, the count inferred from the train
/// labels, which is said on stderr.
pub fn load(cfg: &DataConfig, seed: u64) -> Result<Split> {
    cfg.validate()?;
    // validate() has checked that the keys a source needs are set; these
    // lookups still fail softly rather than trust that.
    let dir_or_file = || {
        cfg.path.as_deref().ok_or_else(|| {
            Error::config("data.path", format!("source '{}' needs path", cfg.source))
        })
    };
    // A declared class count overrides a format's own, so that e.g. EMNIST
    // (IDX files with 26 or 47 classes) loads as `mnist`.
    let declared = cfg.num_classes.map(Classes::declared);
    let ten = |what: &str| {
        cfg.num_classes
            .map_or_else(|| Classes::fixed(10, what), Classes::declared)
    };
    let raw = match cfg.source.as_str() {
        "digits" => {
            let x_name = format!("{DIGITS_DIR}/x.npy");
            let y_name = format!("{DIGITS_DIR}/y.npy");
            let x = Named::new(npy::parse(DIGITS_X, &x_name)?, &x_name, "x");
            let y = Named::new(npy::parse(DIGITS_Y, &y_name)?, &y_name, "y");
            arrays::split((x, y), None, Some(ten("the bundled set's 10 digits")))?
        }
        "npy" => {
            let read = |path: &Path, array: &str| -> Result<Named> {
                Ok(Named::new(npy::read(path)?, path.display(), array))
            };
            let (Some(x), Some(y)) = (&cfg.x_path, &cfg.y_path) else {
                return Err(Error::config(
                    "data.x_path",
                    "source 'npy' needs x_path and y_path",
                ));
            };
            let train = (read(x, "x")?, read(y, "y")?);
            let test = match (&cfg.test_x_path, &cfg.test_y_path) {
                (Some(tx), Some(ty)) => Some((read(tx, "x_test")?, read(ty, "y_test")?)),
                _ => None,
            };
            arrays::split(train, test, declared)?
        }
        "npz" => {
            let path = dir_or_file()?;
            let mut archive = npz::Npz::open(path)?;
            let mut read = |key: &str| -> Result<Named> {
                Ok(Named::new(archive.array(key)?, path.display(), key))
            };
            let train = (read(&cfg.x_key)?, read(&cfg.y_key)?);
            let test = match (&cfg.x_test_key, &cfg.y_test_key) {
                (Some(tx), Some(ty)) => Some((read(tx)?, read(ty)?)),
                _ => None,
            };
            arrays::split(train, test, declared)?
        }
        "mnist" => idx::load_dir(dir_or_file()?, &ten("MNIST's 10 digits"))?,
        "cifar10" => cifar::load_dir(dir_or_file()?, &ten("CIFAR-10's 10 classes"))?,
        "teacher_student" => synthetic::teacher_student(cfg, seed)?,
        "chebyshev" => synthetic::chebyshev(cfg, seed)?,
        "linear" => synthetic::linear(cfg, seed)?,
        "modular" => sequences::modular(cfg, seed)?,
        "sort" => sequences::sort(cfg, seed)?,
        "copy" => sequences::copy(cfg, seed)?,
        "tokens" => sequences::tokens(cfg)?,
        other => {
            return Err(Error::config(
                "data.source",
                format!("unknown source '{other}'"),
            ))
        }
    };
    let split = preprocess::apply(raw, cfg, seed)?;
    refuse_unscored(&split)?;
    Ok(split)
}

/// A train or test set of sequences whose every position is ignored has
/// nothing to average a loss or an accuracy over: refused, rather than
/// reported as 0 or NaN.
fn refuse_unscored(split: &Split) -> Result<()> {
    let sets = [
        ("training", Some(&split.train)),
        ("test", split.test.as_ref()),
    ];
    for (what, ds) in sets {
        if let Some(ds) = ds.filter(|ds| ds.y.scored() == 0) {
            return Err(Error::config(
                "data",
                format!(
                    "every target position of the {what} set ({} sequences) is ignored: \
                     there is nothing to score",
                    ds.n
                ),
            ));
        }
    }
    Ok(())
}
