//! The k x k semidefinite complementarity solver of the central flow
//! (`X >= 0, M = Q + L(X) >= 0, <X, M> = 0`): the closed form for k = 1,
//! random instances for k = 1..8 built around a known solution (an X and
//! an M with complementary ranges, Q = M - L(X)), with L positive definite
//! (X unique) and rank-deficient (M unique), and the errors it gives.

mod common;

use common::randn;
use lmech::linalg::{solve_complementarity, sym_eigen};
use lmech::rng::Rng;

/// L(X) = sum_c <G_c, X> G_c for `count` random symmetric G_c (the central
/// flow's operator has this form, with G_c the c-th coordinate of the
/// gradients of u_i^T H u_j), as a k^2 x k^2 matrix on row-major vec(X).
fn gram_operator(k: usize, count: usize, rng: &mut Rng) -> Vec<f64> {
    let kk = k * k;
    let mut op = vec![0.0; kk * kk];
    for _ in 0..count {
        let mut g = randn(rng, kk, 1.0);
        for i in 0..k {
            for j in 0..i {
                g[i * k + j] = g[j * k + i];
            }
        }
        for r in 0..kk {
            for c in 0..kk {
                op[r * kk + c] += g[r] * g[c];
            }
        }
    }
    op
}

fn orthonormal(k: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::new();
    while out.len() < k {
        let mut v = randn(rng, k, 1.0);
        for u in &out {
            let d: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= d * b);
        }
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        out.push(v.iter().map(|a| a / n).collect());
    }
    out
}

/// sum_i d_i v_i v_i^T.
fn from_spectrum(vs: &[Vec<f64>], d: &[f64], k: usize) -> Vec<f64> {
    let mut a = vec![0.0; k * k];
    for (v, di) in vs.iter().zip(d) {
        for i in 0..k {
            for j in 0..k {
                a[i * k + j] += di * v[i] * v[j];
            }
        }
    }
    a
}

fn apply(op: &[f64], x: &[f64]) -> Vec<f64> {
    op.chunks(x.len())
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn frobenius(a: &[f64]) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

fn diff(a: &[f64], b: &[f64]) -> f64 {
    frobenius(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>())
}

/// (Q, L, X*, M*) with rank(X*) = r and M* positive on the complement of
/// X*'s range (strict complementarity).
fn instance(k: usize, r: usize, count: usize, rng: &mut Rng) -> [Vec<f64>; 4] {
    let vs = orthonormal(k, rng);
    let d_x: Vec<f64> = (0..k)
        .map(|i| {
            if i < r {
                0.2 + rng.uniform() * 3.0
            } else {
                0.0
            }
        })
        .collect();
    let d_m: Vec<f64> = (0..k)
        .map(|i| {
            if i < r {
                0.0
            } else {
                0.2 + rng.uniform() * 3.0
            }
        })
        .collect();
    let x = from_spectrum(&vs, &d_x, k);
    let m = from_spectrum(&vs, &d_m, k);
    let op = gram_operator(k, count, rng);
    let lx = apply(&op, &x);
    let q: Vec<f64> = m.iter().zip(&lx).map(|(a, b)| a - b).collect();
    [q, op, x, m]
}

#[test]
fn one_by_one_is_the_closed_form() {
    let mut rng = Rng::new(1);
    for case in 0..200 {
        let q = 3.0 * rng.normal();
        let l = 0.01 + 5.0 * rng.uniform();
        let got = solve_complementarity(&[q], &[l], 1).unwrap();
        let want = (-q / l).max(0.0);
        assert!(
            (got.x[0] - want).abs() <= 1e-14 * want.max(1.0),
            "case {case}: q {q} l {l}: x {} vs {want}",
            got.x[0]
        );
        assert!((got.m[0] - (q + l * want)).abs() <= 1e-14 * q.abs().max(1.0));
        assert_eq!(got.rank, usize::from(want > 0.0));
    }
    // The central flow's k = 1 law: with S at 2/eta (A = 0), sigma^2 =
    // max(0, -2 <g, grad S> / |grad S|^2), the problem's Q = c <g, grad S>,
    // L = c |grad S|^2 / 2 for any c > 0.
    let (gs, s2, c) = (-0.7, 2.5, 0.03);
    let got = solve_complementarity(&[c * gs], &[c * s2 / 2.0], 1).unwrap();
    assert!((got.x[0] - (-2.0 * gs / s2)).abs() < 1e-15);
}

#[test]
fn random_instances_with_known_solutions_are_solved_exactly() {
    let mut rng = Rng::new(2);
    let mut worst = 0.0f64;
    for k in 1..=8 {
        let m = k * (k + 1) / 2;
        for r in 0..=k {
            for trial in 0..3 {
                // L positive definite (m + 2 generic terms): X is unique.
                let [q, op, x, mm] = instance(k, r, m + 2, &mut rng);
                let got = solve_complementarity(&q, &op, k).unwrap();
                let scale = frobenius(&x).max(1.0);
                let (ex, em) = (diff(&got.x, &x) / scale, diff(&got.m, &mm) / scale);
                worst = worst.max(ex).max(em);
                assert!(
                    ex < 1e-9 && em < 1e-9,
                    "k {k} rank {r} trial {trial}: |X - X*| {ex:e}, |M - M*| {em:e}"
                );
                assert_eq!(got.rank, r, "k {k} rank {r} trial {trial}");
                assert!(
                    got.residual < 1e-9,
                    "k {k} rank {r}: residual {}",
                    got.residual
                );
            }
        }
    }
    eprintln!("worst relative error over the PD instances: {worst:e}");
}

/// A problem with a singular L: the solver's answer must satisfy the
/// conditions and give the unique M; when `must_solve` is false it may
/// instead refuse with an error, or answer with M good to the solver's
/// residual bound (1e-7) rather than to rounding.
fn check_singular(k: usize, r: usize, count: usize, must_solve: bool, rng: &mut Rng) {
    let [q, op, _, mm] = instance(k, r, count, rng);
    let got = match solve_complementarity(&q, &op, k) {
        Ok(got) => got,
        Err(e) if !must_solve => {
            assert!(e.to_string().contains("no solution found"), "{e}");
            return;
        }
        Err(e) => panic!("k {k} rank {r} count {count}: {e}"),
    };
    let em = diff(&got.m, &mm) / frobenius(&mm).max(1.0);
    let tol = if must_solve { 1e-8 } else { 1e-6 };
    assert!(em < tol, "k {k} rank {r} count {count}: |M - M*| {em:e}");
    let low = |a: &[f64]| *sym_eigen(a, k).unwrap().values.last().unwrap();
    let gap: f64 = got.x.iter().zip(&got.m).map(|(a, b)| a * b).sum();
    let (xs, ms) = (frobenius(&got.x).max(1.0), frobenius(&got.m).max(1.0));
    assert!(
        low(&got.x) > -tol * xs && low(&got.m) > -tol * ms,
        "k {k} rank {r}"
    );
    assert!(
        gap.abs() < tol * xs * ms,
        "k {k} rank {r}: <X, M> = {gap:e}"
    );
}

#[test]
fn singular_operators_still_give_the_unique_m() {
    let mut rng = Rng::new(3);
    for k in 2..=8 {
        for r in 1..k {
            // L of rank max(k, r(r+1)/2) < k(k+1)/2: X need not be unique,
            // M is (the convex problem's gradient). With at least r(r+1)/2
            // generic terms no PSD direction on X's face is free, so the
            // solutions are bounded and the solver must find one.
            check_singular(k, r, k.max(r * (r + 1) / 2), true, &mut rng);
            // Fewer terms: the solutions may run off to infinity along a
            // free direction; a solution or a refusal.
            check_singular(k, r, k.min(r * (r + 1) / 2), false, &mut rng);
        }
    }
}

#[test]
fn problems_without_a_solution_or_with_a_bad_operator_are_refused() {
    // L = 0 and Q with a negative eigenvalue: <Q, X> is unbounded below.
    let q = [1.0, 0.0, 0.0, -1.0];
    let err = solve_complementarity(&q, &[0.0; 16], 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no solution"), "{err}");
    // L penalizes only X_00, Q_11 < 0.
    let mut op = vec![0.0; 16];
    op[0] = 1.0;
    let err = solve_complementarity(&q, &op, 2).unwrap_err().to_string();
    assert!(err.contains("no solution"), "{err}");
    // An indefinite L is not a monotone problem.
    let mut op = vec![0.0; 16];
    op[0] = 1.0;
    op[15] = -1.0;
    let err = solve_complementarity(&q, &op, 2).unwrap_err().to_string();
    assert!(err.contains("not positive semidefinite"), "{err}");
    let err = solve_complementarity(&q, &[1.0; 3], 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("size 2"), "{err}");
    // Q = 0: X = 0 exactly.
    let got = solve_complementarity(&[0.0; 4], &gram_operator(2, 4, &mut Rng::new(4)), 2).unwrap();
    assert_eq!(got.x, vec![0.0; 4]);
}
