//! A small monotone semidefinite linear complementarity problem (k <= 8 in
//! practice; the central flow's k x k problem for the covariance of its
//! oscillations): given a symmetric k x k matrix Q and a linear operator L on
//! symmetric matrices that is positive semidefinite (`<X, L(X)> >= 0`), find
//! X with
//!
//! `X >= 0,  M = Q + L(X) >= 0,  <X, M> = 0`   (both PSD).
//!
//! With L symmetric these are exactly the optimality conditions of the convex
//! problem `min over X >= 0 of 1/2 <X, L(X)> + <Q, X>` (M is its gradient,
//! the multiplier of the cone constraint), so a solution exists whenever that
//! problem is bounded below, M is the same at every solution, and X is
//! unique when L is positive definite.
//!
//! How it is solved: a barrier method in the m = k(k+1)/2 coordinates of
//! `svec` (an orthonormal basis of the symmetric matrices, so inner products
//! are preserved): minimize `f(X) - mu log det X` by damped Newton steps
//! (Nesterov's step `1 / (1 + lambda)` from the Newton decrement keeps X
//! positive definite and decreases the barrier without a line search, as
//! `-log det` is self-concordant), dividing mu by 10 down to 1e-12 of the
//! problem's scale. On the central path `M = mu X^{-1}`, so the
//! complementarity gap is `k mu`. The last step makes the answer exact on its
//! face: in the eigenbasis of X, each eigenvector is assigned to X or to M by
//! which of the two is larger along it (under strict complementarity one is
//! O(1), the other O(mu)); with V the eigenvectors of X, the problem
//! restricted to `X = V Y V^T` is an unconstrained quadratic in Y whose
//! linear system is solved directly, so X has exactly rank r and
//! `<X, M> = 0` to rounding. It is kept when Y and M are PSD to rounding,
//! else the barrier's point is kept. The eigenvectors are still only O(mu)
//! accurate, so a few Newton steps on the natural map `X - P(X - M(X))`
//! (zero exactly at solutions, differentiable there under strict
//! complementarity) finish at rounding. Either way the answer carries its
//! residual (the worst of -lambda_min(X), -lambda_min(M) and |<X, M>|,
//! relative to the problem's scale), which the tests hold below 1e-9 on
//! instances with known solutions for k = 1..8.
//!
//! When L is singular, X need not be unique (M always is) and the solutions
//! can form an unbounded set (a PSD direction D with L(D) = 0 and
//! <M, D> = 0 is free), which the barrier follows outwards as mu falls: its
//! Newton systems then become singular, the path is left where it stands,
//! and the polish finishes from there. A point whose residual stays above
//! 1e-7 is an error, not an answer.
//!
//! k = 1 is the closed form `x = max(0, -q / l)`.

use crate::error::{Error, Result};
use crate::linalg::eigen::sym_eigen;
use crate::linalg::vector::{dot, norm};

/// A solution and how good it is.
#[derive(Debug, Clone)]
pub struct Complementarity {
    /// X, k x k row-major.
    pub x: Vec<f64>,
    /// `M = Q + L(X)`, k x k row-major.
    pub m: Vec<f64>,
    /// Rank of X (eigenvalues assigned to X rather than to M).
    pub rank: usize,
    /// max(-lambda_min(X), -lambda_min(M), |<X, M>|), each relative to the
    /// problem's scale (|Q| for M, |Q| / |L| for X, their product for the gap).
    pub residual: f64,
    /// Newton steps taken.
    pub newton_steps: usize,
}

const MU_END: f64 = 1e-12;
/// A point whose residual is above this is no solution: an error.
const MAX_RESIDUAL: f64 = 1e-7;
/// Eigenvalues of X above this (in the problem's scale) count in its rank:
/// the barrier leaves O(mu) ones where the solution has none.
const RANK_TOL: f64 = 1e-9;
/// Newton steps per value of mu: from the previous center, a handful
/// suffice (quadratic convergence once the decrement is below 1/4); the
/// decrement's own rounding (its gradient is O(1) and it is divided by mu)
/// can keep it from falling below a tolerance, so the count is capped.
const NEWTON_PER_MU: usize = 60;
/// The decrement below which a center is reached (the polish finishes it).
const DECREMENT_TOL: f64 = 1e-7;
/// Beyond this (in the problem's own scale) X is taken to run off to
/// infinity: the problem is unbounded.
const UNBOUNDED: f64 = 1e10;

/// Solve the problem for `q` (k x k, row-major, symmetric) and `op`, the
/// k^2 x k^2 matrix of L acting on row-major `vec(X)` (symmetric, PSD on
/// symmetric matrices).
pub fn solve_complementarity(q: &[f64], op: &[f64], k: usize) -> Result<Complementarity> {
    if k == 0 || q.len() != k * k || op.len() != k * k * k * k {
        return Err(Error::shape(format!(
            "complementarity problem of size {k}: Q needs {} entries (got {}), L {} (got {})",
            k * k,
            q.len(),
            k * k * k * k,
            op.len()
        )));
    }
    if q.iter().chain(op).any(|v| !v.is_finite()) {
        return Err(Error::msg(
            "complementarity problem with non-finite entries",
        ));
    }
    let basis = Svec::new(k);
    let qs = basis.pack(q);
    let ls = basis.operator(op);
    check_monotone(&ls, basis.m)?;
    let q_scale = norm(&qs);
    if q_scale == 0.0 {
        return Ok(finish(&basis, vec![0.0; basis.m], &qs, &ls, 0, 1.0, 1.0));
    }
    let l_scale = ls.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    if l_scale == 0.0 {
        // L = 0: X = 0 works exactly when Q is PSD, and nothing else can.
        let lowest = smallest_eigenvalue(q, k)?;
        if lowest < -1e-14 * q_scale {
            return Err(unbounded());
        }
        return Ok(finish(
            &basis,
            vec![0.0; basis.m],
            &qs,
            &ls,
            0,
            q_scale,
            1.0,
        ));
    }
    // Scaled so that Q and L are O(1); X is then in units of |Q| / |L|.
    let qn: Vec<f64> = qs.iter().map(|v| v / q_scale).collect();
    let ln: Vec<f64> = ls.iter().map(|v| v / l_scale).collect();
    if k == 1 {
        let x = if qn[0] >= 0.0 {
            0.0
        } else if ln[0] > 0.0 {
            -qn[0] / ln[0]
        } else {
            return Err(unbounded());
        };
        return Ok(finish(&basis, vec![x], &qn, &ln, 0, q_scale, l_scale));
    }
    let (xs, steps) = barrier(&basis, &qn, &ln)?;
    let x = purify(&basis, &xs, &qn, &ln)?.unwrap_or(xs);
    let (x, polish) = polish(&basis, x, &qn, &ln)?;
    let out = finish(&basis, x, &qn, &ln, steps + polish, q_scale, l_scale);
    if !(out.residual <= MAX_RESIDUAL) {
        return Err(Error::msg(format!(
            "complementarity problem: no solution found (residual {:.1e}); with a singular L \
             the problem may be unbounded or its solutions X may run off to infinity",
            out.residual
        )));
    }
    Ok(out)
}

fn unbounded() -> Error {
    Error::msg(
        "complementarity problem has no solution: along a PSD direction that L does not \
         penalize, <Q, X> decreases without bound",
    )
}

/// The barrier path from X = I down to mu = MU_END; returns svec(X).
fn barrier(basis: &Svec, q: &[f64], l: &[f64]) -> Result<(Vec<f64>, usize)> {
    let m = basis.m;
    let mut x = basis.pack(&identity(basis.k));
    let mut mu = 1.0;
    let mut steps = 0;
    loop {
        for _ in 0..NEWTON_PER_MU {
            let xi = spd_inverse(&basis.unpack(&x), basis.k)
                .ok_or_else(|| Error::msg("internal: the barrier left the PSD cone"))?;
            let xi_s = basis.pack(&xi);
            let grad: Vec<f64> = (0..m)
                .map(|a| dot(&l[a * m..(a + 1) * m], &x) + q[a] - mu * xi_s[a])
                .collect();
            let mut hess = basis.congruence(&xi);
            for (h, lv) in hess.iter_mut().zip(l) {
                *h = lv + mu * *h;
            }
            let Some(dir) = spd_solve(&hess, m, &grad.iter().map(|g| -g).collect::<Vec<_>>())
            else {
                // Only when L is singular and X runs off along its null space.
                return Ok((x, steps));
            };
            let decrement = (-dot(&grad, &dir) / mu).max(0.0).sqrt();
            steps += 1;
            let mut t = if decrement > 0.25 {
                1.0 / (1.0 + decrement)
            } else {
                1.0
            };
            loop {
                let next: Vec<f64> = x.iter().zip(&dir).map(|(a, d)| a + t * d).collect();
                if spd_inverse(&basis.unpack(&next), basis.k).is_some() {
                    x = next;
                    break;
                }
                t *= 0.5;
                if t < 1e-12 {
                    return Err(Error::msg(
                        "internal: no barrier step stays positive definite",
                    ));
                }
            }
            if norm(&x) > UNBOUNDED {
                return Err(unbounded());
            }
            if decrement < DECREMENT_TOL {
                break;
            }
        }
        if mu <= MU_END {
            return Ok((x, steps));
        }
        mu *= 0.1;
    }
}

/// The exact solution on the face the barrier's point lies on, if it is one.
fn purify(basis: &Svec, x: &[f64], q: &[f64], l: &[f64]) -> Result<Option<Vec<f64>>> {
    let k = basis.k;
    let xm = basis.unpack(x);
    let mm = basis.unpack(&add(q, &matvec(l, x)));
    let eig = sym_eigen(&xm, k)?;
    let range: Vec<&Vec<f64>> = eig
        .vectors
        .iter()
        .zip(&eig.values)
        .filter(|(v, lam)| **lam > quad(&mm, v, v, k))
        .map(|(v, _)| v)
        .collect();
    let r = range.len();
    if r == 0 {
        return Ok(Some(vec![0.0; basis.m]));
    }
    // X = V Y V^T with Y in svec coordinates of size r: X = sum_b y_b B_b,
    // B_b = V E_b V^T, and the face's optimality <B_a, Q + L(X)> = 0.
    let face = Svec::new(r);
    let lift = |e: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; k * k];
        for i in 0..r {
            for j in 0..r {
                for p in 0..k {
                    for s in 0..k {
                        out[p * k + s] += range[i][p] * e[i * r + j] * range[j][s];
                    }
                }
            }
        }
        basis.pack(&out)
    };
    let cols: Vec<Vec<f64>> = (0..face.m).map(|b| lift(&face.unit(b))).collect();
    let mut sys = vec![0.0; face.m * face.m];
    let mut rhs = vec![0.0; face.m];
    for a in 0..face.m {
        rhs[a] = -dot(&cols[a], q);
        for b in 0..face.m {
            sys[a * face.m + b] = dot(&cols[a], &matvec(l, &cols[b]));
        }
    }
    let Some(y) = spd_solve(&sys, face.m, &rhs) else {
        return Ok(None);
    };
    let mut out = vec![0.0; basis.m];
    for (b, col) in cols.iter().enumerate() {
        for (o, c) in out.iter_mut().zip(col) {
            *o += y[b] * c;
        }
    }
    let tol = 1e-10;
    let y_low = smallest_eigenvalue(&face.unpack(&y), r)?;
    let m_low = smallest_eigenvalue(&basis.unpack(&add(q, &matvec(l, &out))), k)?;
    Ok((y_low >= 0.0 && m_low >= -tol).then_some(out))
}

/// Newton steps on the natural map `F(X) = X - P(X - M(X))` (P the
/// projection onto the PSD cone), which vanishes exactly at solutions: the
/// barrier's eigenvectors are only O(mu) accurate, and under strict
/// complementarity F is differentiable at the solution with a nonsingular
/// Jacobian, so a few steps reach rounding. A step is kept only when it
/// lowers |F|; a singular Jacobian (X not unique) stops the polish.
fn polish(basis: &Svec, mut x: Vec<f64>, q: &[f64], l: &[f64]) -> Result<(Vec<f64>, usize)> {
    let mut f = natural_map(basis, &x, q, l)?.0;
    let mut steps = 0;
    for _ in 0..8 {
        if norm(&f) < 1e-15 {
            break;
        }
        let jac = natural_map(basis, &x, q, l)?.1;
        let Some(step) = lu_solve(jac, basis.m, &f) else {
            break;
        };
        let next: Vec<f64> = x.iter().zip(&step).map(|(a, d)| a - d).collect();
        let f_next = natural_map(basis, &next, q, l)?.0;
        steps += 1;
        if !(norm(&f_next) < norm(&f)) {
            break;
        }
        x = next;
        f = f_next;
    }
    Ok((x, steps))
}

/// `F(X)` and its Jacobian (columns along the basis), from the derivative
/// of the projection: with `Z = P diag(d) P^T`, `P'(Z)[H] = P (W o P^T H P)
/// P^T`, `W_ij = (d_i^+ - d_j^+) / (d_i - d_j)` (1 or 0 on ties by sign).
fn natural_map(basis: &Svec, x: &[f64], q: &[f64], l: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    let (k, m) = (basis.k, basis.m);
    let z: Vec<f64> = x
        .iter()
        .zip(add(q, &matvec(l, x)))
        .map(|(a, b)| a - b)
        .collect();
    let eig = sym_eigen(&basis.unpack(&z), k)?;
    let d = &eig.values;
    let p: Vec<f64> = (0..k * k).map(|i| eig.vectors[i % k][i / k]).collect();
    let pt: Vec<f64> = (0..k * k).map(|i| p[(i % k) * k + i / k]).collect();
    let plus: Vec<f64> = d.iter().map(|v| v.max(0.0)).collect();
    let proj = mul(&mul(&p, &diag(&plus), k), &pt, k);
    let f: Vec<f64> = x
        .iter()
        .zip(basis.pack(&proj))
        .map(|(a, b)| a - b)
        .collect();
    let w: Vec<f64> = (0..k * k)
        .map(|ij| {
            let (i, j) = (ij / k, ij % k);
            if (d[i] - d[j]).abs() > 1e-14 * (d[i].abs() + d[j].abs()) {
                (plus[i] - plus[j]) / (d[i] - d[j])
            } else if d[i] > 0.0 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let mut jac = vec![0.0; m * m];
    for b in 0..m {
        let mut e = vec![0.0; m];
        e[b] = 1.0;
        let dz: Vec<f64> = e.iter().zip(matvec(l, &e)).map(|(a, c)| a - c).collect();
        let inner = mul(&mul(&pt, &basis.unpack(&dz), k), &p, k);
        let masked: Vec<f64> = inner.iter().zip(&w).map(|(a, c)| a * c).collect();
        let dp = basis.pack(&mul(&mul(&p, &masked, k), &pt, k));
        for a in 0..m {
            jac[a * m + b] = e[a] - dp[a];
        }
    }
    Ok((f, jac))
}

fn diag(d: &[f64]) -> Vec<f64> {
    let k = d.len();
    (0..k * k)
        .map(|i| if i % (k + 1) == 0 { d[i / k] } else { 0.0 })
        .collect()
}

/// Gaussian elimination with partial pivoting; None when singular.
fn lu_solve(mut a: Vec<f64>, n: usize, b: &[f64]) -> Option<Vec<f64>> {
    let mut x = b.to_vec();
    let big = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))?;
        if !(a[piv * n + c].abs() > 1e-13 * big) {
            return None;
        }
        if piv != c {
            for j in 0..n {
                a.swap(c * n + j, piv * n + j);
            }
            x.swap(c, piv);
        }
        for i in c + 1..n {
            let f = a[i * n + c] / a[c * n + c];
            for j in c..n {
                a[i * n + j] -= f * a[c * n + j];
            }
            x[i] -= f * x[c];
        }
    }
    for i in (0..n).rev() {
        x[i] = (x[i] - (i + 1..n).map(|j| a[i * n + j] * x[j]).sum::<f64>()) / a[i * n + i];
    }
    Some(x)
}

/// The solution in the caller's units, with its residual.
fn finish(
    basis: &Svec,
    x: Vec<f64>,
    q: &[f64],
    l: &[f64],
    steps: usize,
    q_scale: f64,
    l_scale: f64,
) -> Complementarity {
    let k = basis.k;
    let mut xm = basis.unpack(&x);
    let mut mm = basis.unpack(&add(q, &matvec(l, &x)));
    let low = |a: &[f64]| smallest_eigenvalue(a, k).unwrap_or(f64::NEG_INFINITY);
    let residual = (-low(&xm))
        .max(-low(&mm))
        .max(dot(&x, &add(q, &matvec(l, &x))).abs())
        .max(0.0);
    let rank = match sym_eigen(&xm, k) {
        Ok(e) => e.values.iter().filter(|v| **v > RANK_TOL).count(),
        Err(_) => k,
    };
    let x_unit = q_scale / l_scale;
    xm.iter_mut().for_each(|v| *v *= x_unit);
    mm.iter_mut().for_each(|v| *v *= q_scale);
    Complementarity {
        x: xm,
        m: mm,
        rank,
        residual,
        newton_steps: steps,
    }
}

/// L must be symmetric and PSD for the problem to be monotone (and for the
/// barrier's Newton systems to be positive definite).
fn check_monotone(l: &[f64], m: usize) -> Result<()> {
    let big = l.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    for a in 0..m {
        for b in 0..a {
            if (l[a * m + b] - l[b * m + a]).abs() > 1e-8 * big {
                return Err(Error::msg(
                    "complementarity operator L is not symmetric: <A, L(B)> != <L(A), B>",
                ));
            }
        }
    }
    if big > 0.0 && smallest_eigenvalue(l, m)? < -1e-10 * big {
        return Err(Error::msg(
            "complementarity operator L is not positive semidefinite: the problem is not monotone",
        ));
    }
    Ok(())
}

/// Coordinates of symmetric k x k matrices in the orthonormal basis
/// `E_ii = e_i e_i^T`, `E_ij = (e_i e_j^T + e_j e_i^T) / sqrt 2` (i < j).
struct Svec {
    k: usize,
    m: usize,
    pairs: Vec<(usize, usize)>,
}

impl Svec {
    fn new(k: usize) -> Self {
        let pairs: Vec<(usize, usize)> = (0..k).flat_map(|i| (i..k).map(move |j| (i, j))).collect();
        Svec {
            k,
            m: pairs.len(),
            pairs,
        }
    }

    fn pack(&self, a: &[f64]) -> Vec<f64> {
        let k = self.k;
        self.pairs
            .iter()
            .map(|&(i, j)| {
                if i == j {
                    a[i * k + i]
                } else {
                    (a[i * k + j] + a[j * k + i]) / std::f64::consts::SQRT_2
                }
            })
            .collect()
    }

    fn unpack(&self, x: &[f64]) -> Vec<f64> {
        let k = self.k;
        let mut a = vec![0.0; k * k];
        for (&(i, j), v) in self.pairs.iter().zip(x) {
            if i == j {
                a[i * k + i] = *v;
            } else {
                a[i * k + j] = v / std::f64::consts::SQRT_2;
                a[j * k + i] = a[i * k + j];
            }
        }
        a
    }

    /// `E_b` as a full matrix.
    fn unit(&self, b: usize) -> Vec<f64> {
        let mut e = vec![0.0; self.m];
        e[b] = 1.0;
        self.unpack(&e)
    }

    /// `<E_a, L(E_b)>` from L's matrix on row-major vec(X).
    fn operator(&self, op: &[f64]) -> Vec<f64> {
        let kk = self.k * self.k;
        let images: Vec<Vec<f64>> = (0..self.m)
            .map(|b| {
                let e = self.unit(b);
                let image: Vec<f64> = (0..kk)
                    .map(|r| dot(&op[r * kk..(r + 1) * kk], &e))
                    .collect();
                self.pack(&image)
            })
            .collect();
        let mut out = vec![0.0; self.m * self.m];
        for a in 0..self.m {
            for b in 0..self.m {
                out[a * self.m + b] = 0.5 * (images[b][a] + images[a][b]);
            }
        }
        out
    }

    /// The barrier's Hessian `<E_a, W E_b W>` for W = X^{-1}.
    fn congruence(&self, w: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.m * self.m];
        for b in 0..self.m {
            let col = self.pack(&mul(&mul(w, &self.unit(b), self.k), w, self.k));
            for a in 0..self.m {
                out[a * self.m + b] = col[a];
            }
        }
        out
    }
}

fn identity(k: usize) -> Vec<f64> {
    (0..k * k)
        .map(|i| if i % (k + 1) == 0 { 1.0 } else { 0.0 })
        .collect()
}

fn mul(a: &[f64], b: &[f64], k: usize) -> Vec<f64> {
    let mut out = vec![0.0; k * k];
    for i in 0..k {
        for p in 0..k {
            let aip = a[i * k + p];
            for j in 0..k {
                out[i * k + j] += aip * b[p * k + j];
            }
        }
    }
    out
}

fn quad(a: &[f64], u: &[f64], v: &[f64], k: usize) -> f64 {
    (0..k).map(|i| u[i] * dot(&a[i * k..(i + 1) * k], v)).sum()
}

fn matvec(a: &[f64], x: &[f64]) -> Vec<f64> {
    a.chunks(x.len()).map(|row| dot(row, x)).collect()
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn smallest_eigenvalue(a: &[f64], k: usize) -> Result<f64> {
    Ok(*sym_eigen(a, k)?.values.last().unwrap_or(&0.0))
}

/// Lower Cholesky factor, or None when `a` is not positive definite.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let d = a[j * n + j] - (0..j).map(|p| l[j * n + p] * l[j * n + p]).sum::<f64>();
        if !(d > 0.0) {
            return None;
        }
        l[j * n + j] = d.sqrt();
        for i in j + 1..n {
            let s = a[i * n + j] - (0..j).map(|p| l[i * n + p] * l[j * n + p]).sum::<f64>();
            l[i * n + j] = s / l[j * n + j];
        }
    }
    Some(l)
}

fn spd_solve(a: &[f64], n: usize, b: &[f64]) -> Option<Vec<f64>> {
    let l = cholesky(a, n)?;
    let mut y = b.to_vec();
    for i in 0..n {
        y[i] = (y[i] - (0..i).map(|p| l[i * n + p] * y[p]).sum::<f64>()) / l[i * n + i];
    }
    for i in (0..n).rev() {
        y[i] = (y[i] - (i + 1..n).map(|p| l[p * n + i] * y[p]).sum::<f64>()) / l[i * n + i];
    }
    Some(y)
}

fn spd_inverse(a: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut out = vec![0.0; k * k];
    for j in 0..k {
        let e: Vec<f64> = (0..k).map(|i| if i == j { 1.0 } else { 0.0 }).collect();
        let col = spd_solve(a, k, &e)?;
        for i in 0..k {
            out[i * k + j] = col[i];
        }
    }
    for i in 0..k {
        for j in 0..i {
            let s = 0.5 * (out[i * k + j] + out[j * k + i]);
            out[i * k + j] = s;
            out[j * k + i] = s;
        }
    }
    Some(out)
}
