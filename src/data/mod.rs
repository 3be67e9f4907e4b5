//! Data sets: the in-memory types every trainer consumes, and [`load`], the
//! one entry point that turns a `[data]` config into a train/test split.
//!
//! Inputs are always a row-major [n, d] matrix of f64 (images flattened);
//! targets are class labels or real values, so the loss can be chosen to
//! match. File formats and synthetic tasks live in their own modules.

mod cifar;
pub mod config;
mod idx;
pub mod npy;
pub mod npz;
mod preprocess;
mod synthetic;

pub use config::DataConfig;

use crate::error::{Error, Result};
use npy::{NpyArray, NpyData};
use std::path::Path;

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
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn subset(&self, idx: &[usize]) -> Targets {
        match self {
            Targets::Labels { y, classes } => Targets::Labels {
                y: idx.iter().map(|&i| y[i]).collect(),
                classes: *classes,
            },
            Targets::Values { y, k } => Targets::Values {
                y: idx
                    .iter()
                    .flat_map(|&i| &y[i * k..(i + 1) * k])
                    .copied()
                    .collect(),
                k: *k,
            },
        }
    }
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
        };
        if !well_formed || y.len() != n {
            return Err(Error::shape(format!(
                "targets do not fit {n} examples (labels out of range or wrong length)"
            )));
        }
        Ok(Dataset { x, n, d, y })
    }

    /// Width of the model output these targets call for: the number of
    /// classes, or the number of values per example.
    pub fn out_dim(&self) -> usize {
        match &self.y {
            Targets::Labels { classes, .. } => *classes,
            Targets::Values { k, .. } => *k,
        }
    }

    /// The examples at `idx`, in that order (repeats allowed). Panics on an
    /// index >= n, like slice indexing.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let d = self.d;
        Dataset {
            x: idx
                .iter()
                .flat_map(|&i| &self.x[i * d..(i + 1) * d])
                .copied()
                .collect(),
            n: idx.len(),
            d,
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
/// (shuffles, held-out examples, synthetic tasks).
pub fn load(cfg: &DataConfig, seed: u64) -> Result<Split> {
    cfg.validate()?;
    // validate() has checked that the keys a source needs are set; these
    // lookups still fail softly rather than trust that.
    let dir_or_file = || {
        cfg.path.as_deref().ok_or_else(|| {
            Error::config("data.path", format!("source '{}' needs path", cfg.source))
        })
    };
    let raw = match cfg.source.as_str() {
        "digits" => {
            let x_name = format!("{DIGITS_DIR}/x.npy");
            let y_name = format!("{DIGITS_DIR}/y.npy");
            let x = npy::parse(DIGITS_X, &x_name)?;
            let y = npy::parse(DIGITS_Y, &y_name)?;
            Split {
                train: from_arrays(x, y, &x_name, &y_name)?,
                test: None,
            }
        }
        "npy" => {
            let pair = |x: &Path, y: &Path| -> Result<Dataset> {
                let names = (x.display().to_string(), y.display().to_string());
                from_arrays(npy::read(x)?, npy::read(y)?, &names.0, &names.1)
            };
            let (Some(x), Some(y)) = (&cfg.x_path, &cfg.y_path) else {
                return Err(Error::config(
                    "data.x_path",
                    "source 'npy' needs x_path and y_path",
                ));
            };
            let train = pair(x, y)?;
            match (&cfg.test_x_path, &cfg.test_y_path) {
                (Some(tx), Some(ty)) => {
                    let test = pair(tx, ty)?;
                    matching_test(train, test, tx, ty)?
                }
                _ => Split { train, test: None },
            }
        }
        "npz" => {
            let path = dir_or_file()?;
            let mut archive = npz::Npz::open(path)?;
            let x = archive.array(&cfg.x_key)?;
            let y = archive.array(&cfg.y_key)?;
            let name = |key: &str| format!("{}[{key}]", path.display());
            Split {
                train: from_arrays(x, y, &name(&cfg.x_key), &name(&cfg.y_key))?,
                test: None,
            }
        }
        "mnist" => idx::load_dir(dir_or_file()?)?,
        "cifar10" => cifar::load_dir(dir_or_file()?)?,
        "teacher_student" => synthetic::teacher_student(cfg, seed)?,
        "chebyshev" => synthetic::chebyshev(cfg, seed)?,
        "linear" => synthetic::linear(cfg, seed)?,
        other => {
            return Err(Error::config(
                "data.source",
                format!("unknown source '{other}'"),
            ))
        }
    };
    preprocess::apply(raw, cfg, seed)
}

/// Pairs an input array [N, ...] with a target array: integer [N] are class
/// labels (classes = max + 1), float [N] or anything [N, K...] are values.
fn from_arrays(x: NpyArray, y: NpyArray, x_name: &str, y_name: &str) -> Result<Dataset> {
    let (Some(&n), Some(&ny)) = (x.shape.first(), y.shape.first()) else {
        let (name, shape) = if x.shape.is_empty() {
            (x_name, &x.shape)
        } else {
            (y_name, &y.shape)
        };
        return Err(Error::data(
            name,
            format!("expected an array of examples [N, ...], found shape {shape:?}"),
        ));
    };
    if n != ny {
        return Err(Error::data(
            x_name,
            format!(
                "x has shape {:?} but y ({y_name}) has shape {:?}; they must agree on the number of examples",
                x.shape, y.shape
            ),
        ));
    }
    if n == 0 {
        return Err(Error::data(
            x_name,
            format!("holds no examples (shape {:?})", x.shape),
        ));
    }
    let d: usize = x.shape[1..].iter().product();
    if d == 0 {
        return Err(Error::data(
            x_name,
            format!("examples have no features (shape {:?})", x.shape),
        ));
    }
    let k: usize = y.shape[1..].iter().product();
    let targets = match y.data {
        NpyData::Int(labels) if y.shape.len() == 1 => {
            if let Some(i) = labels.iter().position(|&l| l < 0) {
                return Err(Error::data(
                    y_name,
                    format!("label {} at index {i} is negative", labels[i]),
                ));
            }
            let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
            Targets::Labels {
                y: labels.into_iter().map(|l| l as usize).collect(),
                classes,
            }
        }
        _ if k == 0 => {
            return Err(Error::data(
                y_name,
                format!("targets have no values (shape {:?})", y.shape),
            ));
        }
        _ => Targets::Values { y: y.to_f64(), k },
    };
    Dataset::new(x.to_f64(), n, d, targets)
}

/// A test set read from separate files must fit the same model as the train
/// set: same input width and the same kind of targets. Labels are counted
/// over both files, since either may lack the highest class.
fn matching_test(
    mut train: Dataset,
    mut test: Dataset,
    test_x: &Path,
    test_y: &Path,
) -> Result<Split> {
    if test.d != train.d {
        return Err(Error::data(
            test_x,
            format!(
                "test examples have {} features but train examples have {}",
                test.d, train.d
            ),
        ));
    }
    match (&mut train.y, &mut test.y) {
        (Targets::Labels { classes: a, .. }, Targets::Labels { classes: b, .. }) => {
            let c = (*a).max(*b);
            (*a, *b) = (c, c);
        }
        (Targets::Values { k: a, .. }, Targets::Values { k: b, .. }) if a == b => {}
        _ => {
            let kind = |t: &Targets| match t {
                Targets::Labels { .. } => "class labels".to_string(),
                Targets::Values { k, .. } => format!("{k} real values per example"),
            };
            return Err(Error::data(
                test_y,
                format!(
                    "test targets are {} but train targets are {}",
                    kind(&test.y),
                    kind(&train.y)
                ),
            ));
        }
    }
    Ok(Split {
        train,
        test: Some(test),
    })
}
