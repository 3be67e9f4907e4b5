//! Data sets from NumPy arrays (`.npy` files, `.npz` members, the bundled
//! digits): inputs [N, ...] paired with their targets, every array checked
//! as it is paired, the class count settled on the train labels, and a test
//! set held to the train set it will be evaluated against.

use super::npy::{NpyArray, NpyData};
use super::validate::{self, Classes};
use super::{Dataset, Split, Targets};
use crate::error::{Error, Result};

/// Where an array came from, as messages name it: the file, and an npz key
/// or `x` / `y` / `x_test` / `y_test` for separate files.
#[derive(Clone)]
pub(super) struct Origin {
    pub file: String,
    pub array: String,
}

/// An array as read, with its origin.
pub(super) struct Named {
    pub data: NpyArray,
    pub origin: Origin,
}

impl Named {
    pub fn new(data: NpyArray, file: impl std::fmt::Display, array: &str) -> Named {
        let origin = Origin {
            file: file.to_string(),
            array: array.to_string(),
        };
        Named { data, origin }
    }
}

/// Inputs and targets of one set.
pub(super) type Pair = (Named, Named);

/// The train set and an optional test set. `classes` is the count labels
/// are held to (declared, or fixed by the data set); without one it is
/// inferred from the train labels and said on stderr, since a set whose
/// labels miss the top class would otherwise build too few outputs unseen.
pub(super) fn split(train: Pair, test: Option<Pair>, classes: Option<Classes>) -> Result<Split> {
    let train_y = train.1.origin.clone();
    let train = dataset(train)?;
    let classes = match (&train.y, classes) {
        (Targets::Labels { .. }, Some(c)) => Some(c),
        (Targets::Labels { classes, .. }, None) => {
            let c = Classes::inferred(*classes, &train_y.file);
            eprintln!("data: {}", c.why());
            Some(c)
        }
        // Files of arrays never pair into sequence targets.
        (Targets::Values { .. } | Targets::Sequence { .. }, None) => None,
        (Targets::Values { .. } | Targets::Sequence { .. }, Some(_)) => {
            return Err(Error::config(
                "data.num_classes",
                format!(
                    "is set but the targets in {} are real values, not class labels \
                     (labels are an integer array [N])",
                    train_y.file
                ),
            ))
        }
    };
    let train = with_classes(train, classes.as_ref(), &train_y)?;
    let test = match test {
        None => None,
        Some(pair) => {
            let (test_x, test_y) = (pair.0.origin.clone(), pair.1.origin.clone());
            let test = dataset(pair)?;
            fits_train(&train, &test, &test_x, &test_y)?;
            Some(with_classes(test, classes.as_ref(), &test_y)?)
        }
    };
    Ok(Split { train, test })
}

/// Holds labels to `classes` and gives the set that many outputs.
fn with_classes(mut ds: Dataset, classes: Option<&Classes>, labels: &Origin) -> Result<Dataset> {
    if let (Targets::Labels { y, classes: count }, Some(c)) = (&mut ds.y, classes) {
        c.check(y.iter().copied(), &labels.file, &labels.array)?;
        *count = c.count;
    }
    Ok(ds)
}

/// Pairs an input array [N, ...] with a target array: integer [N] are class
/// labels (classes = max + 1 until the count is settled), float [N] or
/// anything [N, K...] are values.
fn dataset((x, y): Pair) -> Result<Dataset> {
    let (Some(&n), Some(&ny)) = (x.data.shape.first(), y.data.shape.first()) else {
        let bad = if x.data.shape.is_empty() { &x } else { &y };
        return Err(Error::data(
            &bad.origin.file,
            format!(
                "expected {} to be an array of examples [N, ...], found shape {:?}",
                bad.origin.array, bad.data.shape
            ),
        ));
    };
    let (
        Named {
            data: xa,
            origin: xo,
        },
        Named {
            data: ya,
            origin: yo,
        },
    ) = (x, y);
    let no_room = |what: &str| {
        Error::data(
            &xo.file,
            format!("{} {what} (shape {:?})", xo.array, xa.shape),
        )
    };
    if n != ny {
        return Err(Error::data(
            &xo.file,
            format!(
                "{} has shape {:?} but {} ({}) has shape {:?}; they must agree on the number of examples",
                xo.array, xa.shape, yo.array, yo.file, ya.shape
            ),
        ));
    }
    if n == 0 {
        return Err(no_room("holds no examples"));
    }
    let d: usize = xa.shape[1..].iter().product();
    if d == 0 {
        return Err(no_room("has examples without features"));
    }
    let k: usize = ya.shape[1..].iter().product();
    validate::finite(&xa, &xo.file, &xo.array)?;
    validate::finite(&ya, &yo.file, &yo.array)?;
    let targets = match &ya.data {
        NpyData::Int(labels) if ya.shape.len() == 1 => {
            let y = validate::class_labels(labels, &yo.file, &yo.array)?;
            let classes = y.iter().max().map_or(0, |&m| m + 1);
            Targets::Labels { y, classes }
        }
        _ if k == 0 => {
            return Err(Error::data(
                &yo.file,
                format!("targets {} have no values (shape {:?})", yo.array, ya.shape),
            ));
        }
        _ => Targets::Values {
            y: ya.into_f64(),
            k,
        },
    };
    Dataset::new(xa.into_f64(), n, d, targets)
}

/// A test set must fit the same model as the train set: the same input
/// width and the same kind of targets.
fn fits_train(train: &Dataset, test: &Dataset, x: &Origin, y: &Origin) -> Result<()> {
    if test.d != train.d {
        return Err(Error::data(
            &x.file,
            format!(
                "test examples have {} features but train examples have {}",
                test.d, train.d
            ),
        ));
    }
    match (&train.y, &test.y) {
        (Targets::Labels { .. }, Targets::Labels { .. }) => Ok(()),
        (Targets::Values { k: a, .. }, Targets::Values { k: b, .. }) if a == b => Ok(()),
        _ => {
            let kind = |t: &Targets| match t {
                Targets::Labels { .. } => "class labels".to_string(),
                Targets::Values { k, .. } => format!("{k} real values per example"),
                Targets::Sequence { t, .. } => format!("labels of {t} positions"),
            };
            Err(Error::data(
                &y.file,
                format!(
                    "test targets are {} but train targets are {}",
                    kind(&test.y),
                    kind(&train.y)
                ),
            ))
        }
    }
}
