//! Eigen-decomposition of a small dense symmetric matrix by the cyclic
//! Jacobi method: the inner solver of Lanczos and SLQ (their tridiagonal
//! matrices) and a reference for tests.
//!
//! Jacobi is chosen over tridiagonal QR because it needs no external crate,
//! is simple to get right, and is accurate to a few ulps of `||A||` in every
//! eigenpair (it even keeps relative accuracy of small eigenvalues of graded
//! matrices). Its cost, about `10 n^3` flops per sweep over 6-10 sweeps, is
//! small next to a single Hessian-vector product for the `n <= 200` of a
//! Lanczos run and still fine for `n ~ 500`.
//!
//! The matrix is kept in full symmetric storage so that each rotation
//! updates two contiguous rows (of the matrix and of the eigenvector
//! matrix, stored transposed) and then copies them into the two columns.

use crate::error::{Error, Result};

/// Eigenpairs of a symmetric matrix.
#[derive(Debug, Clone)]
pub struct SymEigen {
    /// Eigenvalues in descending (algebraic) order.
    pub values: Vec<f64>,
    /// `vectors[i]` is the unit eigenvector of `values[i]`; together they
    /// are orthonormal.
    pub vectors: Vec<Vec<f64>>,
}

/// Sweeps before giving up; Jacobi converges quadratically, in well under
/// 20 sweeps for any matrix met in practice.
const MAX_SWEEPS: usize = 60;

/// During the first sweeps only rotate entries above a threshold, so that
/// the large entries are annihilated first (saves rotations).
const THRESHOLD_SWEEPS: usize = 3;

/// How far `a[i][j]` and `a[j][i]` may differ, relative to the largest
/// entry, before the matrix is rejected as not symmetric: rounding in the
/// caller's construction is tolerated (the two are averaged), a transposed
/// or wrong matrix is not.
const SYMMETRY_TOL: f64 = 1e-8;

/// All eigenpairs of the symmetric `n x n` row-major matrix `a`.
pub fn sym_eigen(a: &[f64], n: usize) -> Result<SymEigen> {
    if a.len() != n * n {
        return Err(Error::shape(format!(
            "sym_eigen: a {n}x{n} matrix needs {} entries, got {}",
            n * n,
            a.len()
        )));
    }
    if let Some(i) = a.iter().position(|x| !x.is_finite()) {
        return Err(Error::msg(format!(
            "sym_eigen: entry ({}, {}) is {}",
            i / n,
            i % n,
            a[i]
        )));
    }
    let mut m = symmetrized(a, n)?;
    // Rows of `w` are the eigenvector estimates (V transposed), so that a
    // rotation touches contiguous memory.
    let mut w = vec![0.0; n * n];
    for i in 0..n {
        w[i * n + i] = 1.0;
    }

    let mut converged = false;
    for sweep in 0..MAX_SWEEPS {
        let off: f64 = (0..n)
            .flat_map(|p| (p + 1..n).map(move |q| (p, q)))
            .map(|(p, q)| m[p * n + q].abs())
            .sum();
        if off == 0.0 {
            converged = true;
            break;
        }
        let threshold = if sweep < THRESHOLD_SWEEPS {
            0.2 * off / (n * n) as f64
        } else {
            0.0
        };
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                let (app, aqq) = (m[p * n + p], m[q * n + q]);
                // Once an entry is below rounding of both diagonal entries it
                // can no longer change them: set it to zero, which is what
                // lets the sweep loop reach an exactly diagonal matrix.
                let g = 100.0 * apq.abs();
                if sweep > THRESHOLD_SWEEPS
                    && app.abs() + g == app.abs()
                    && aqq.abs() + g == aqq.abs()
                {
                    m[p * n + q] = 0.0;
                    m[q * n + p] = 0.0;
                } else if apq.abs() > threshold {
                    rotate(&mut m, &mut w, n, p, q);
                }
            }
        }
    }
    if !converged {
        return Err(Error::msg(format!(
            "sym_eigen: Jacobi did not converge in {MAX_SWEEPS} sweeps for a {n}x{n} matrix"
        )));
    }

    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[j * n + j].total_cmp(&m[i * n + i]));
    Ok(SymEigen {
        values: order.iter().map(|&i| m[i * n + i]).collect(),
        vectors: order
            .iter()
            .map(|&i| w[i * n..(i + 1) * n].to_vec())
            .collect(),
    })
}

/// A copy of `a` with `a[i][j]` and `a[j][i]` replaced by their mean, or an
/// error if they differ by more than rounding.
fn symmetrized(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let largest = a.iter().fold(0.0f64, |acc, x| acc.max(x.abs()));
    let mut m = a.to_vec();
    for i in 0..n {
        for j in i + 1..n {
            let (x, y) = (a[i * n + j], a[j * n + i]);
            if (x - y).abs() > SYMMETRY_TOL * largest {
                return Err(Error::shape(format!(
                    "sym_eigen: matrix is not symmetric: entry ({i}, {j}) is {x} \
                     but ({j}, {i}) is {y}"
                )));
            }
            let mean = 0.5 * (x + y);
            m[i * n + j] = mean;
            m[j * n + i] = mean;
        }
    }
    Ok(m)
}

/// One Jacobi rotation in the `(p, q)` plane (`p < q`) that zeroes
/// `m[p][q]`: `m <- J^T m J`, and the eigenvector rows `w <- J^T w`.
fn rotate(m: &mut [f64], w: &mut [f64], n: usize, p: usize, q: usize) {
    let apq = m[p * n + q];
    let (app, aqq) = (m[p * n + p], m[q * n + q]);
    // The smaller root t = tan(phi) of t^2 + 2 t theta - 1 = 0 keeps the
    // rotation angle below pi/4, which is what makes Jacobi converge.
    let theta = (aqq - app) / (2.0 * apq);
    let t = theta.signum() / (theta.abs() + theta.hypot(1.0));
    let c = 1.0 / t.hypot(1.0);
    let s = t * c;

    rotate_rows(m, n, p, q, c, s);
    rotate_rows(w, n, p, q, c, s);
    // The 2x2 block in closed form (exact zero off the diagonal) ...
    m[p * n + p] = app - t * apq;
    m[q * n + q] = aqq + t * apq;
    m[p * n + q] = 0.0;
    m[q * n + p] = 0.0;
    // ... and the columns from the rows, by symmetry.
    for k in 0..n {
        if k != p && k != q {
            m[k * n + p] = m[p * n + k];
            m[k * n + q] = m[q * n + k];
        }
    }
}

/// Rows `p` and `q` (`p < q`) of the row-major `n`-column matrix `x` become
/// `c x_p - s x_q` and `s x_p + c x_q`.
fn rotate_rows(x: &mut [f64], n: usize, p: usize, q: usize, c: f64, s: f64) {
    let (head, tail) = x.split_at_mut(q * n);
    let row_p = &mut head[p * n..(p + 1) * n];
    let row_q = &mut tail[..n];
    for (xp, xq) in row_p.iter_mut().zip(row_q.iter_mut()) {
        let (a, b) = (*xp, *xq);
        *xp = c * a - s * b;
        *xq = s * a + c * b;
    }
}
