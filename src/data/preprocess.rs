//! The preprocessing pipeline, always in this order:
//! shuffle? -> split (test_fraction) -> take n_train / n_test -> scale ->
//! standardize -> one_hot.
//!
//! Subsetting comes before the input transforms so that standardization
//! statistics are those of the examples actually trained on, and never of
//! test examples.

use super::config::DataConfig;
use super::{Dataset, Split, Targets};
use crate::error::{Error, Result};
use crate::rng::Rng;

pub(super) fn apply(split: Split, cfg: &DataConfig, seed: u64) -> Result<Split> {
    let Split {
        mut train,
        mut test,
    } = split;
    if cfg.shuffle {
        train = shuffled(train, &mut Rng::stream(seed, "data.shuffle"));
        test = test.map(|t| shuffled(t, &mut Rng::stream(seed, "data.shuffle.test")));
    }
    let (mut train, mut test) = match (test, cfg.test_fraction) {
        (None, Some(f)) => {
            let (tr, te) = hold_out(&train, f, seed)?;
            (tr, Some(te))
        }
        (Some(_), Some(_)) => {
            return Err(Error::config(
                "data.test_fraction",
                format!(
                    "cannot be used: source '{}' already has a test split",
                    cfg.source
                ),
            ))
        }
        (test, None) => (train, test),
    };
    if let Some(n) = cfg.n_train {
        train = take(train, n, "data.n_train", "train")?;
    }
    if let Some(n) = cfg.n_test {
        let t = test.ok_or_else(|| {
            Error::config(
                "data.n_test",
                format!("source '{}' has no test split", cfg.source),
            )
        })?;
        test = Some(take(t, n, "data.n_test", "test")?);
    }
    if let Some(s) = cfg.scale {
        for ds in std::iter::once(&mut train).chain(test.as_mut()) {
            ds.x.iter_mut().for_each(|v| *v *= s);
        }
    }
    if cfg.standardize {
        let st = Standardizer::fit(&train);
        st.apply(&mut train);
        if let Some(t) = test.as_mut() {
            st.apply(t);
        }
    }
    if cfg.one_hot {
        train = one_hot(train)?;
        test = test.map(one_hot).transpose()?;
    }
    Ok(Split { train, test })
}

fn shuffled(ds: Dataset, rng: &mut Rng) -> Dataset {
    let mut idx: Vec<usize> = (0..ds.n).collect();
    rng.shuffle(&mut idx);
    ds.subset(&idx)
}

/// Splits off round(fraction * n) randomly chosen examples as the test set.
/// Both parts keep their order in `ds`, so without `shuffle` "the first n
/// train examples" are still the earliest in the file.
fn hold_out(ds: &Dataset, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    let n_test = (fraction * ds.n as f64).round() as usize;
    if n_test == 0 || n_test >= ds.n {
        return Err(Error::config(
            "data.test_fraction",
            format!(
                "{fraction} of {} examples holds out {n_test}; both train and test need at least one",
                ds.n
            ),
        ));
    }
    let mut idx: Vec<usize> = (0..ds.n).collect();
    Rng::stream(seed, "data.split").shuffle(&mut idx);
    let (test_idx, train_idx) = idx.split_at_mut(n_test);
    test_idx.sort_unstable();
    train_idx.sort_unstable();
    Ok((ds.subset(train_idx), ds.subset(test_idx)))
}

fn take(ds: Dataset, n: usize, key: &str, which: &str) -> Result<Dataset> {
    if n > ds.n {
        return Err(Error::config(
            key,
            format!(
                "asks for {n} examples but the {which} set has only {}",
                ds.n
            ),
        ));
    }
    Ok(ds.take_first(n))
}

/// Per-feature mean and std (population, ddof = 0) of a train set.
struct Standardizer {
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Standardizer {
    fn fit(ds: &Dataset) -> Standardizer {
        let n = ds.n.max(1) as f64;
        let mut mean = vec![0.0; ds.d];
        for row in ds.x.chunks_exact(ds.d) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= n);
        // Two passes (mean, then squared deviations) to avoid cancellation.
        let mut var = vec![0.0; ds.d];
        for row in ds.x.chunks_exact(ds.d) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let std = var.iter().map(|s| (s / n).sqrt()).collect();
        Standardizer { mean, std }
    }

    fn apply(&self, ds: &mut Dataset) {
        for row in ds.x.chunks_exact_mut(ds.d) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v -= m;
                // A constant feature (all pixels in a border, say) has a
                // std of zero, or of rounding noise relative to its mean;
                // dividing would blow that noise up, so it is only centered.
                if *s > 16.0 * f64::EPSILON * m.abs() {
                    *v /= s;
                }
            }
        }
    }
}

fn one_hot(ds: Dataset) -> Result<Dataset> {
    let (y, classes) = match &ds.y {
        Targets::Labels { y, classes } => (y, classes),
        Targets::Values { .. } => {
            return Err(Error::config(
                "data.one_hot",
                "targets are real values, not class labels",
            ))
        }
        Targets::Sequence { .. } => {
            return Err(Error::config(
                "data.one_hot",
                "targets are labels per position; sequence labels need xent",
            ))
        }
    };
    let mut v = vec![0.0; ds.n * classes];
    for (i, &label) in y.iter().enumerate() {
        v[i * classes + label] = 1.0;
    }
    Ok(Dataset {
        y: Targets::Values { y: v, k: *classes },
        ..ds
    })
}
