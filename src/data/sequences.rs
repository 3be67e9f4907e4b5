//! Token tasks for sequence models: modular arithmetic (the grokking task
//! of Power et al. 2022, studied by Nanda et al. 2023), sorting, copying,
//! and a user's own corpus of token ids for next-token prediction.
//!
//! Inputs are token ids stored as f64 in the usual [n, d] matrix, one
//! position per feature. Each random quantity has its own stream
//! (`data.modular`, `data.sort`, `data.sort_test`, `data.copy`,
//! `data.copy_test`), so a seed fixes the split, and the first n sorting or
//! copying sequences are the same for any larger n.

use super::config::DataConfig;
use super::npy;
use super::validate::{check_token_ids, target_ids};
use super::{Dataset, Split, Targets};
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::path::Path;

/// Every pair (a, b) of 0..p x 0..p (b != 0 for "/") as the three tokens
/// `[a, b, p]` (the token p is "="), labelled `(a op b) mod p`. The pairs
/// are shuffled by the seed; the first round(train_fraction * pairs) are
/// the train set and the rest the test set, so together they hold every
/// pair once.
pub fn modular(cfg: &DataConfig, seed: u64) -> Result<Split> {
    let (p, op, fraction) = cfg.modular_task();
    let first_b = usize::from(op == "/");
    let mut pairs: Vec<(usize, usize)> = (0..p)
        .flat_map(|a| (first_b..p).map(move |b| (a, b)))
        .collect();
    Rng::stream(seed, "data.modular").shuffle(&mut pairs);
    let labels = pairs
        .iter()
        .map(|&(a, b)| apply(op, a, b, p))
        .collect::<Result<Vec<_>>>()?;
    let n_train = (fraction * pairs.len() as f64).round() as usize;
    let set = |range: std::ops::Range<usize>| {
        let x = pairs[range.clone()]
            .iter()
            .flat_map(|&(a, b)| [a as f64, b as f64, p as f64])
            .collect();
        let y = labels[range.clone()].to_vec();
        Dataset::new(x, range.len(), 3, Targets::Labels { y, classes: p })
    };
    // validate() has refused a fraction that leaves either side empty.
    Ok(Split {
        train: set(0..n_train)?,
        test: Some(set(n_train..pairs.len())?),
    })
}

/// `(a op b) mod p`; division multiplies by b^(p-2), b's inverse for a
/// prime p (Fermat).
fn apply(op: &str, a: usize, b: usize, p: usize) -> Result<usize> {
    let (a, b, m) = (a as u128, b as u128, p as u128);
    let v = match op {
        "+" => (a + b) % m,
        "-" => (a + m - b) % m,
        "*" => a * b % m,
        "/" => a * pow_mod(b, m - 2, m) % m,
        other => {
            return Err(Error::config(
                "data.op",
                format!("unknown operation {other:?}"),
            ))
        }
    };
    Ok(v as usize)
}

/// b^e mod m by repeated squaring.
fn pow_mod(mut b: u128, mut e: u128, m: u128) -> u128 {
    let mut acc = 1 % m;
    b %= m;
    while e > 0 {
        if e & 1 == 1 {
            acc = acc * b % m;
        }
        b = b * b % m;
        e >>= 1;
    }
    acc
}

/// Sequences of `length` tokens drawn uniformly from 0..vocab, labelled
/// position by position with the sorted sequence: position t's label is
/// its t-th smallest token. `n` train sequences, and `n_test` fresh ones
/// from a stream of their own.
pub fn sort(cfg: &DataConfig, seed: u64) -> Result<Split> {
    let (length, vocab) = cfg.sort_task();
    let make = |n: usize, stream: &str| {
        let mut rng = Rng::stream(seed, stream);
        let ids: Vec<usize> = (0..n * length).map(|_| rng.below(vocab)).collect();
        let y = ids
            .chunks_exact(length)
            .flat_map(|row| {
                let mut sorted = row.to_vec();
                sorted.sort_unstable();
                sorted.into_iter().map(Some)
            })
            .collect();
        let x = ids.iter().map(|&v| v as f64).collect();
        let targets = Targets::Sequence {
            y,
            t: length,
            classes: vocab,
        };
        Dataset::new(x, n, length, targets)
    };
    Ok(Split {
        train: make(cfg.n, "data.sort")?,
        test: cfg.n_test.map(|n| make(n, "data.sort_test")).transpose()?,
    })
}

/// The copy task: a string s of `length` tokens drawn uniformly from
/// 0..vocab, the separator (id `vocab`), and s again, read by a causal
/// model for next-token prediction. With L = `length` the 2L inputs are
/// `s_0 .. s_{L-1}, sep, s_0 .. s_{L-2}` and position t is labelled with
/// the token after it; only the L positions that predict the second copy
/// (t = L .. 2L-1, labels `s_0 .. s_{L-1}`) are scored, the first L (which
/// predict random tokens nobody can know, then the separator) are ignored.
/// The classes are the `vocab` symbols; the inputs need `vocab + 1` ids.
/// `n` train sequences and `n_test` fresh ones from a stream of their own.
pub fn copy(cfg: &DataConfig, seed: u64) -> Result<Split> {
    let (length, vocab) = cfg.copy_task();
    let t = 2 * length;
    let make = |n: usize, stream: &str| {
        let mut rng = Rng::stream(seed, stream);
        let mut x = Vec::with_capacity(n * t);
        let mut y = Vec::with_capacity(n * t);
        for _ in 0..n {
            let s: Vec<usize> = (0..length).map(|_| rng.below(vocab)).collect();
            x.extend(s.iter().map(|&v| v as f64));
            x.push(vocab as f64);
            x.extend(s[..length - 1].iter().map(|&v| v as f64));
            y.extend(std::iter::repeat(None).take(length));
            y.extend(s.iter().map(|&v| Some(v)));
        }
        let targets = Targets::Sequence {
            y,
            t,
            classes: vocab,
        };
        Dataset::new(x, n, t, targets)
    };
    Ok(Split {
        train: make(cfg.n, "data.copy")?,
        test: cfg.n_test.map(|n| make(n, "data.copy_test")).transpose()?,
    })
}

/// A user's token sequences: a corpus `[N, T+1]` from `data.path` (and
/// `data.test_path`), each row giving the inputs `ids[:T]` and the
/// next-token labels `ids[1:]`; or inputs and targets `[N, T]` apart, from
/// `data.x_path` and `data.y_path` (and `data.test_x_path`,
/// `data.test_y_path`), where a negative target is an ignored position.
pub fn tokens(cfg: &DataConfig) -> Result<Split> {
    let vocab = cfg.vocab.ok_or_else(|| {
        Error::config(
            "data.vocab",
            "source 'tokens' needs vocab, the number of token ids",
        )
    })?;
    let (train, test) = match (&cfg.path, &cfg.x_path, &cfg.y_path) {
        (Some(path), None, None) => {
            let train = corpus(path, "data.path", vocab)?;
            let test = match cfg.test_path.as_deref() {
                None => None,
                Some(p) => Some(corpus(p, "data.test_path", vocab)?),
            };
            (train, test)
        }
        (None, Some(x), Some(y)) => {
            let train = pairs(
                (x.as_path(), y.as_path()),
                ("data.x_path", "data.y_path"),
                vocab,
            )?;
            let test = match (&cfg.test_x_path, &cfg.test_y_path) {
                (Some(tx), Some(ty)) => Some(pairs(
                    (tx.as_path(), ty.as_path()),
                    ("data.test_x_path", "data.test_y_path"),
                    vocab,
                )?),
                _ => None,
            };
            (train, test)
        }
        _ => {
            return Err(Error::config(
                "data.path",
                "source 'tokens' needs path (ids [N, T+1]) or x_path and y_path (inputs and targets [N, T]), not both",
            ))
        }
    };
    if let Some(t) = &test {
        if t.d != train.d {
            let (key, per_row) = if cfg.path.is_some() {
                ("data.test_path", 1)
            } else {
                ("data.test_x_path", 0)
            };
            return Err(Error::config(
                key,
                format!(
                    "its rows hold {} tokens but the training rows hold {}; both need {} tokens per row",
                    t.d + per_row,
                    train.d + per_row,
                    train.d + per_row
                ),
            ));
        }
    }
    Ok(Split { train, test })
}

/// The ids of one `.npy` file as a matrix `[N, width]` of at least one row,
/// refusing any other shape.
fn id_matrix(path: &Path, layout: &str) -> Result<(Vec<f64>, usize, usize)> {
    let a = npy::read(path)?;
    let &[n, width] = a.shape.as_slice() else {
        return Err(Error::data(
            path,
            format!(
                "expected token ids {layout} (one sequence per row), found shape {:?}",
                a.shape
            ),
        ));
    };
    if n == 0 {
        return Err(Error::data(
            path,
            format!("holds no sequences (shape [0, {width}])"),
        ));
    }
    Ok((a.into_f64(), n, width))
}

/// One corpus file, every id checked against `vocab` (floats must hold
/// integers); `key` names the file's config key in messages. A row is
/// inputs and labels at once, so no id can be an ignored target here.
fn corpus(path: &Path, key: &str, vocab: usize) -> Result<Dataset> {
    let (ids, n, width) = id_matrix(path, "[N, T+1]")?;
    if width < 2 {
        return Err(Error::data(
            path,
            format!("rows of {width} token(s) give no next token: a row needs T + 1 >= 2 ids"),
        ));
    }
    let what = format!("{key} {}", path.display());
    check_token_ids(&ids, n, width, vocab, &what, "data.vocab")?;
    let t = width - 1;
    let rows = || ids.chunks_exact(width);
    let x = rows().flat_map(|r| &r[..t]).copied().collect();
    let y = rows()
        .flat_map(|r| &r[1..])
        .map(|&v| Some(v as usize))
        .collect();
    Dataset::new(
        x,
        n,
        t,
        Targets::Sequence {
            y,
            t,
            classes: vocab,
        },
    )
}

/// Inputs and targets `[N, T]` from two files (`keys` name them): every
/// input an id below `vocab`, every target one too or negative (ignored).
fn pairs(
    (x_path, y_path): (&Path, &Path),
    (x_key, y_key): (&str, &str),
    vocab: usize,
) -> Result<Dataset> {
    let (x, n, t) = id_matrix(x_path, "[N, T]")?;
    let (y, yn, yt) = id_matrix(y_path, "[N, T]")?;
    if (yn, yt) != (n, t) {
        return Err(Error::config(
            y_key,
            format!(
                "{}: targets [{yn}, {yt}] do not match the inputs [{n}, {t}] of {x_key} {}: one target per input position",
                y_path.display(),
                x_path.display()
            ),
        ));
    }
    check_token_ids(
        &x,
        n,
        t,
        vocab,
        &format!("{x_key} {}", x_path.display()),
        "data.vocab",
    )?;
    let what = format!("{y_key} {}", y_path.display());
    let y = target_ids(&y, n, t, vocab, &what, "data.vocab")?;
    Dataset::new(
        x,
        n,
        t,
        Targets::Sequence {
            y,
            t,
            classes: vocab,
        },
    )
}
