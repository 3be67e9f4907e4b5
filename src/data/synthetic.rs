//! Synthetic regression tasks whose ground truth is known, for controlled
//! experiments: a random teacher network, a Chebyshev polynomial, and a
//! linear map on whitened inputs (the task of Saxe et al. 2014).
//!
//! Every random quantity has its own stream (`data.teacher`, `data.x`,
//! `data.test_x`, `data.noise`, `data.test_noise`), so a seed fixes the task,
//! the train set does not change when `n_test` does, and the first n points
//! of a teacher-student set are the same for any larger n. Gaussian noise of
//! std `noise_std` is added to every target, train and test alike, so the
//! test set is drawn from the train distribution.

use super::config::DataConfig;
use super::{Dataset, Split, Targets};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// x ~ N(0, I_d); y = teacher(x) + noise, where the teacher is a bias-free
/// dense network of `teacher_depth` layers (`input_dim` -> `teacher_width`
/// -> ... -> `output_dim`) with weights N(0, 1/fan_in) and
/// `teacher_activation` after every layer but the last.
pub fn teacher_student(cfg: &DataConfig, seed: u64) -> Result<Split> {
    let (d, k) = (cfg.input_dim, cfg.output_dim);
    let act: fn(f64) -> f64 = match cfg.teacher_activation.as_str() {
        "identity" => |v| v,
        "relu" => |v: f64| v.max(0.0),
        "tanh" => f64::tanh,
        other => {
            return Err(Error::config(
                "data.teacher_activation",
                format!("unknown activation '{other}'"),
            ))
        }
    };
    let mut dims = vec![d];
    dims.resize(cfg.teacher_depth, cfg.teacher_width);
    dims.push(k);
    let mut rng = Rng::stream(seed, "data.teacher");
    let layers: Vec<Vec<f64>> = dims
        .windows(2)
        .map(|w| gaussian(w[1] * w[0], w[0], &mut rng))
        .collect();

    let teacher = |x: &[f64]| -> Vec<f64> {
        let mut h = x.to_vec();
        for (l, w) in layers.iter().enumerate() {
            let fan_in = h.len();
            h = w.chunks_exact(fan_in).map(|row| dot(row, &h)).collect();
            if l + 1 < layers.len() {
                h.iter_mut().for_each(|v| *v = act(*v));
            }
        }
        h
    };
    let make = |n: usize, x_label: &str, noise_label: &str| {
        let x = gaussian(n * d, 1, &mut Rng::stream(seed, x_label));
        let y = x.chunks_exact(d).flat_map(&teacher).collect();
        values(
            x,
            n,
            d,
            y,
            k,
            cfg.noise_std,
            &mut Rng::stream(seed, noise_label),
        )
    };
    Ok(Split {
        train: make(cfg.n, "data.x", "data.noise"),
        test: cfg
            .n_test
            .map(|n| make(n, "data.test_x", "data.test_noise")),
    })
}

/// y = T_k(x) (k = `degree`) on `n` evenly spaced points of [-1, 1]; d = 1
/// and one output whatever `input_dim` / `output_dim` say. The test set is
/// the midpoints of `n_test` equal cells of [-1, 1], so its mean squared
/// error is the midpoint rule for the L2 error over the interval.
pub fn chebyshev(cfg: &DataConfig, seed: u64) -> Result<Split> {
    let make = |x: Vec<f64>, noise_label: &str| {
        let y = x.iter().map(|&t| chebyshev_t(cfg.degree, t)).collect();
        let n = x.len();
        values(
            x,
            n,
            1,
            y,
            1,
            cfg.noise_std,
            &mut Rng::stream(seed, noise_label),
        )
    };
    let last = (cfg.n - 1) as f64;
    let grid = (0..cfg.n).map(|i| -1.0 + 2.0 * i as f64 / last).collect();
    let test = cfg.n_test.map(|m| {
        let mid = (0..m)
            .map(|j| -1.0 + (2 * j + 1) as f64 / m as f64)
            .collect();
        make(mid, "data.test_noise")
    });
    Ok(Split {
        train: make(grid, "data.noise"),
        test,
    })
}

/// T_k(x) by the recurrence T_{j+1} = 2x T_j - T_{j-1}, stable on [-1, 1].
fn chebyshev_t(k: usize, x: f64) -> f64 {
    let (mut prev, mut cur) = (1.0, x);
    if k == 0 {
        return prev;
    }
    for _ in 1..k {
        (prev, cur) = (cur, 2.0 * x * cur - prev);
    }
    cur
}

/// Y = X A^T + noise with X [n, d] whitened exactly (X^T X / n = I), so the
/// input-output correlation X^T Y / n is A^T itself. A [output_dim,
/// input_dim] is N(0, 1/d), or U diag(s) V^T with Haar-random orthonormal
/// U, V when `singular_values` s is given. Test inputs are fresh N(0, I_d)
/// draws, which have the same second moment.
pub fn linear(cfg: &DataConfig, seed: u64) -> Result<Split> {
    let (d, k) = (cfg.input_dim, cfg.output_dim);
    let mut rng = Rng::stream(seed, "data.teacher");
    let a = match &cfg.singular_values {
        None => gaussian(k * d, d, &mut rng),
        Some(s) => {
            let r = s.len();
            let u = orthonormal_columns(k, r, &mut rng)?;
            let v = orthonormal_columns(d, r, &mut rng)?;
            let mut a = vec![0.0; k * d];
            for i in 0..k {
                for j in 0..d {
                    a[i * d + j] = (0..r).map(|c| u[i * r + c] * s[c] * v[j * r + c]).sum();
                }
            }
            a
        }
    };
    let apply = |x: &[f64]| -> Vec<f64> {
        x.chunks_exact(d)
            .flat_map(|row| a.chunks_exact(d).map(|ai| dot(ai, row)))
            .collect()
    };

    let n = cfg.n;
    let mut x = orthonormal_columns(n, d, &mut Rng::stream(seed, "data.x"))?;
    let root_n = (n as f64).sqrt();
    x.iter_mut().for_each(|v| *v *= root_n);
    let y = apply(&x);
    let train = values(
        x,
        n,
        d,
        y,
        k,
        cfg.noise_std,
        &mut Rng::stream(seed, "data.noise"),
    );
    let test = cfg.n_test.map(|m| {
        let x = gaussian(m * d, 1, &mut Rng::stream(seed, "data.test_x"));
        let y = apply(&x);
        values(
            x,
            m,
            d,
            y,
            k,
            cfg.noise_std,
            &mut Rng::stream(seed, "data.test_noise"),
        )
    });
    Ok(Split { train, test })
}

/// `len` draws of N(0, 1/fan_in).
fn gaussian(len: usize, fan_in: usize, rng: &mut Rng) -> Vec<f64> {
    let s = 1.0 / (fan_in as f64).sqrt();
    (0..len).map(|_| s * rng.normal()).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}

/// A row-major [rows, cols] matrix with orthonormal columns: modified
/// Gram-Schmidt, applied twice because one pass loses orthogonality in
/// proportion to the condition number. Starting from a Gaussian matrix this
/// is a Haar-random frame (each column is normalized by a positive norm).
fn orthonormal_columns(rows: usize, cols: usize, rng: &mut Rng) -> Result<Vec<f64>> {
    // Column-major while orthogonalizing so each column is contiguous.
    let mut q: Vec<Vec<f64>> = (0..cols).map(|_| gaussian(rows, 1, rng)).collect();
    for j in 0..cols {
        let (done, rest) = q.split_at_mut(j);
        let v = &mut rest[0];
        let before = dot(v, v).sqrt();
        for _pass in 0..2 {
            for qi in done.iter() {
                let r = dot(qi, v);
                v.iter_mut().zip(qi).for_each(|(a, b)| *a -= r * b);
            }
        }
        let norm = dot(v, v).sqrt();
        // What is left of a column that (numerically) lies in the span of
        // the previous ones is rounding noise, not a new direction.
        if norm <= 1e-12 * before {
            return Err(Error::msg(format!(
                "cannot orthogonalize a random {rows}x{cols} matrix (column {j} vanished); need rows >= cols"
            )));
        }
        v.iter_mut().for_each(|a| *a /= norm);
    }
    Ok((0..rows * cols)
        .map(|idx| q[idx % cols][idx / cols])
        .collect())
}

/// A regression data set with `noise_std` Gaussian noise added to y.
fn values(
    x: Vec<f64>,
    n: usize,
    d: usize,
    mut y: Vec<f64>,
    k: usize,
    noise_std: f64,
    rng: &mut Rng,
) -> Dataset {
    if noise_std > 0.0 {
        y.iter_mut().for_each(|v| *v += noise_std * rng.normal());
    }
    Dataset {
        x,
        n,
        d,
        y: Targets::Values { y, k },
    }
}
