//! Checks every data set passes as it is loaded, before preprocessing can
//! hide anything: values are finite, and each class label names one of the
//! model's outputs. A refusal names the file, the array and the first bad
//! index, so bad data is never mistaken for a bad learning rate (a NaN input
//! would otherwise surface as "diverged at step 0") and a stray label never
//! silently widens the model. Token ids are held to their vocabulary the
//! same way, by row and position.

use super::npy::{NpyArray, NpyData};
use crate::error::{Error, Result};
use std::path::Path;

/// Refuses the first NaN or infinity of `a`, read from `file` as `array`.
pub(super) fn finite(a: &NpyArray, file: &str, array: &str) -> Result<()> {
    // Integer arrays (labels, uint8 pixels) cannot hold a non-finite value.
    let NpyData::Float(v) = &a.data else {
        return Ok(());
    };
    let Some(flat) = v.iter().position(|x| !x.is_finite()) else {
        return Ok(());
    };
    let value = match v[flat] {
        x if x.is_nan() => "NaN",
        x if x > 0.0 => "+inf",
        _ => "-inf",
    };
    Err(Error::data(
        file,
        format!(
            "{array}{} is {value}, the first non-finite value; inputs and targets must be finite",
            index(flat, &a.shape)
        ),
    ))
}

/// `[i, j, ...] (row i, column j)` for element `flat` of a C-order array of
/// `shape`; the column of an example of more than one axis is counted as
/// training sees it, once the example is flattened.
fn index(flat: usize, shape: &[usize]) -> String {
    let mut coords = vec![0; shape.len()];
    let mut rest = flat;
    for (c, &s) in coords.iter_mut().zip(shape).rev() {
        *c = rest % s;
        rest /= s;
    }
    let row_len: usize = shape[1..].iter().product();
    let place = match shape.len() {
        1 => format!("row {}", coords[0]),
        2 => format!("row {}, column {}", coords[0], coords[1]),
        _ => format!(
            "row {}, column {} of the flattened example",
            coords[0],
            flat % row_len
        ),
    };
    let coords: Vec<String> = coords.iter().map(usize::to_string).collect();
    format!("[{}] ({place})", coords.join(", "))
}

/// Integer labels as class indices, refusing the first negative one.
pub(super) fn class_labels(labels: &[i64], file: &str, array: &str) -> Result<Vec<usize>> {
    match labels.iter().position(|&l| l < 0) {
        Some(row) => Err(Error::data(
            file,
            format!(
                "label {} at row {row} of {array} is negative; class labels are 0, 1, 2, ...",
                labels[row]
            ),
        )),
        None => Ok(labels.iter().map(|&l| l as usize).collect()),
    }
}

/// Refuses the first value of `x` (row-major `[n, t]`: n sequences of t
/// positions) that is not a token id, an integer in 0..vocab. `what` names
/// the data in the message (e.g. "data", or a file and its key); `key` is
/// the setting that fixes `vocab` (e.g. "model.layers[0].vocab" or
/// "data.vocab") and is the error's config key, so the message reads e.g.
/// ``config key `model.layers[0].vocab`: data: row 4, position 2: token id
/// 115 is not below the vocab of 114``.
pub fn check_token_ids(
    x: &[f64],
    n: usize,
    t: usize,
    vocab: usize,
    what: &str,
    key: &str,
) -> Result<()> {
    refuse_bad_ids(x, n, t, vocab, what, key, false)
}

/// Target ids `[n, t]` as sequence labels: an id in 0..vocab, or any
/// negative integer (-1, PyTorch's -100) for an ignored position (`None`).
/// Anything else is refused as [`check_token_ids`] refuses it, by row,
/// position and value.
pub(super) fn target_ids(
    y: &[f64],
    n: usize,
    t: usize,
    vocab: usize,
    what: &str,
    key: &str,
) -> Result<Vec<Option<usize>>> {
    refuse_bad_ids(y, n, t, vocab, what, key, true)?;
    Ok(y.iter()
        .map(|&v| (v >= 0.0).then_some(v as usize))
        .collect())
}

/// The first value of `x` that is not an integer in 0..vocab (a negative
/// integer too, when `negative_ignored`), refused naming its row, position
/// and value.
fn refuse_bad_ids(
    x: &[f64],
    n: usize,
    t: usize,
    vocab: usize,
    what: &str,
    key: &str,
    negative_ignored: bool,
) -> Result<()> {
    if x.len() != n * t {
        return Err(Error::shape(format!(
            "{what}: {} values for {n} sequences of {t} tokens",
            x.len()
        )));
    }
    let is_id = |v: f64| v.fract() == 0.0 && v < vocab as f64 && (v >= 0.0 || negative_ignored);
    let Some(at) = x.iter().position(|&v| !is_id(v)) else {
        return Ok(());
    };
    let v = x[at];
    // fract() of an infinity or NaN is NaN, so those are "not a token id".
    let why = if v.fract() != 0.0 {
        format!("{v} is not a token id (an integer in 0..{vocab})")
    } else if v < 0.0 {
        format!("token id {v} is negative")
    } else {
        format!("token id {v} is not below the vocab of {vocab}")
    };
    Err(Error::config(
        key,
        format!("{what}: row {}, position {}: {why}", at / t, at % t),
    ))
}

/// How many classes labels may name, and where that number came from.
pub(super) struct Classes {
    pub count: usize,
    why: String,
}

impl Classes {
    /// The count `data.num_classes` declares.
    pub fn declared(count: usize) -> Classes {
        Classes {
            count,
            why: format!("data.num_classes = {count}"),
        }
    }

    /// The count a format fixes; `what` says whose, e.g. "MNIST's 10 digits".
    pub fn fixed(count: usize, what: &str) -> Classes {
        Classes {
            count,
            why: what.to_string(),
        }
    }

    /// `count` (the largest label + 1) inferred from the train labels in `file`.
    pub fn inferred(count: usize, file: &str) -> Classes {
        Classes {
            count,
            why: format!(
                "{count} classes inferred from the train labels in {file}; \
                 set data.num_classes to declare the count"
            ),
        }
    }

    /// Where the count came from, in words.
    pub fn why(&self) -> &str {
        &self.why
    }

    /// Refuses the first label outside 0..count, naming its value and row.
    pub fn check(
        &self,
        labels: impl IntoIterator<Item = usize>,
        file: impl AsRef<Path>,
        array: &str,
    ) -> Result<()> {
        let Some((row, label)) = labels
            .into_iter()
            .enumerate()
            .find(|&(_, l)| l >= self.count)
        else {
            return Ok(());
        };
        Err(Error::data(
            file,
            format!(
                "label {label} at row {row} of {array} is out of range: labels must lie in 0..{} ({})",
                self.count, self.why
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_row_and_column() {
        assert_eq!(index(7, &[9]), "[7] (row 7)");
        assert_eq!(index(11, &[4, 3]), "[3, 2] (row 3, column 2)");
        assert_eq!(
            index(13, &[3, 2, 4]),
            "[1, 1, 1] (row 1, column 5 of the flattened example)"
        );
    }
}
