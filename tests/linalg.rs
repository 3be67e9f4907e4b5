//! Tests of the spectral algorithms in `lmech::linalg` on explicit matrices
//! whose spectra are known by construction (`Q diag(d) Q^T` with a random
//! orthogonal `Q`), applied through matvec closures as a Hessian-vector
//! product would be.

use lmech::error::Result;
use lmech::linalg::{
    hutchinson_diagonal, hutchinson_trace, lanczos, lanczos_in, power_iteration, slq, sym_eigen,
    BasisStorage, LanczosOptions, PowerOptions,
};
use lmech::rng::Rng;

/// `a x` for a row-major `n x n` matrix.
fn matvec(a: &[f64], x: &[f64]) -> Vec<f64> {
    let n = x.len();
    (0..n)
        .map(|i| {
            a[i * n..(i + 1) * n]
                .iter()
                .zip(x)
                .map(|(p, q)| p * q)
                .sum()
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// A random symmetric matrix with standard normal entries.
fn random_symmetric(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let v = rng.normal();
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
    a
}

/// The columns of a random orthogonal matrix (Gram-Schmidt, twice, on
/// Gaussian vectors).
fn random_orthonormal(n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    let mut cols: Vec<Vec<f64>> = Vec::with_capacity(n);
    while cols.len() < n {
        let mut v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        for _ in 0..2 {
            for q in &cols {
                let h = dot(q, &v);
                for (vi, qi) in v.iter_mut().zip(q) {
                    *vi -= h * qi;
                }
            }
        }
        let len = norm(&v);
        cols.push(v.iter().map(|x| x / len).collect());
    }
    cols
}

/// `Q diag(d) Q^T` (exactly symmetric) and the columns of `Q`.
fn with_spectrum(d: &[f64], seed: u64) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = d.len();
    let q = random_orthonormal(n, seed);
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let v: f64 = (0..n).map(|k| d[k] * q[k][i] * q[k][j]).sum();
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
    (a, q)
}

/// `count` values evenly spaced in `[lo, hi]`.
fn spread(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    (0..count)
        .map(|i| lo + (hi - lo) * i as f64 / (count - 1) as f64)
        .collect()
}

/// A matvec closure over `a` that counts its calls.
fn operator<'a>(a: &'a [f64], calls: &'a mut usize) -> impl FnMut(&[f64]) -> Result<Vec<f64>> + 'a {
    move |x| {
        *calls += 1;
        Ok(matvec(a, x))
    }
}

#[test]
fn sym_eigen_random_matrices() {
    for (seed, n) in [1usize, 2, 5, 50, 200].into_iter().enumerate() {
        let a = random_symmetric(n, seed as u64);
        let eig = sym_eigen(&a, n).unwrap();
        assert_eq!(eig.values.len(), n);
        let scale = eig.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for w in eig.values.windows(2) {
            assert!(w[0] >= w[1], "n={n}: values not descending: {w:?}");
        }
        for (lambda, v) in eig.values.iter().zip(&eig.vectors) {
            let av = matvec(&a, v);
            let r: Vec<f64> = av.iter().zip(v).map(|(x, y)| x - lambda * y).collect();
            assert!(
                norm(&r) <= 1e-12 * scale,
                "n={n}: residual {} for lambda {lambda}",
                norm(&r)
            );
        }
        for i in 0..n {
            for j in 0..n {
                let expected = if i == j { 1.0 } else { 0.0 };
                let got = dot(&eig.vectors[i], &eig.vectors[j]);
                assert!((got - expected).abs() <= 1e-12, "n={n}: v{i}.v{j} = {got}");
            }
        }
        let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
        let sum: f64 = eig.values.iter().sum();
        assert!(
            (sum - trace).abs() <= 1e-12 * scale * n as f64,
            "n={n}: sum of eigenvalues {sum} vs trace {trace}"
        );
    }
}

#[test]
fn sym_eigen_diagonal_matrix() {
    let d = [3.0, -1.0, 7.0, 0.0, 2.0];
    let n = d.len();
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        a[i * n + i] = d[i];
    }
    let eig = sym_eigen(&a, n).unwrap();
    assert_eq!(eig.values, vec![7.0, 3.0, 2.0, 0.0, -1.0]);
    for (v, axis) in eig.vectors.iter().zip([2, 0, 4, 3, 1]) {
        for (i, x) in v.iter().enumerate() {
            assert_eq!(x.abs(), if i == axis { 1.0 } else { 0.0 });
        }
    }
}

#[test]
fn sym_eigen_repeated_eigenvalues() {
    let d = [2.0, 5.0, 2.0, -1.0, 2.0, -1.0];
    let (a, _) = with_spectrum(&d, 11);
    let eig = sym_eigen(&a, d.len()).unwrap();
    let expected = [5.0, 2.0, 2.0, 2.0, -1.0, -1.0];
    for (got, want) in eig.values.iter().zip(expected) {
        assert!((got - want).abs() <= 1e-13, "{got} vs {want}");
    }
    // Within a repeated eigenvalue any orthonormal basis is right; check the
    // vectors are eigenvectors and orthonormal.
    for (lambda, v) in eig.values.iter().zip(&eig.vectors) {
        let av = matvec(&a, v);
        let r: Vec<f64> = av.iter().zip(v).map(|(x, y)| x - lambda * y).collect();
        assert!(norm(&r) <= 1e-13, "residual {}", norm(&r));
    }
    for i in 0..d.len() {
        for j in 0..i {
            assert!(dot(&eig.vectors[i], &eig.vectors[j]).abs() <= 1e-13);
        }
    }
}

#[test]
fn sym_eigen_two_by_two_by_hand() {
    // [[2, 1], [1, 2]] has eigenvalues 3 and 1, eigenvectors (1, 1) and
    // (1, -1) over sqrt(2).
    let eig = sym_eigen(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
    assert!((eig.values[0] - 3.0).abs() <= 1e-15);
    assert!((eig.values[1] - 1.0).abs() <= 1e-15);
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let v0 = &eig.vectors[0];
    let v1 = &eig.vectors[1];
    assert!((v0[0].abs() - h).abs() <= 1e-15 && (v0[0] - v0[1]).abs() <= 1e-15);
    assert!((v1[0].abs() - h).abs() <= 1e-15 && (v1[0] + v1[1]).abs() <= 1e-15);
}

#[test]
fn sym_eigen_rejects_bad_input() {
    assert!(sym_eigen(&[1.0, 2.0, 3.0], 2).is_err());
    assert!(sym_eigen(&[1.0, 2.0, 3.0, 1.0], 2).is_err());
    assert!(sym_eigen(&[1.0, f64::NAN, f64::NAN, 1.0], 2).is_err());
}

/// 300 eigenvalues: top five 10, 9, 8, 7, 6, a bulk in [-15, 5], and three
/// negative outliers larger in magnitude than the top.
fn indefinite_spectrum() -> Vec<f64> {
    let mut d = vec![10.0, 9.0, 8.0, 7.0, 6.0, -30.0, -25.0, -20.0];
    d.extend(spread(-15.0, 5.0, 292));
    d
}

#[test]
fn lanczos_finds_the_algebraically_largest_of_an_indefinite_spectrum() {
    let d = indefinite_spectrum();
    let n = d.len();
    let (a, _) = with_spectrum(&d, 3);
    let mut calls = 0;
    let tol = 1e-10;
    let opts = LanczosOptions {
        k: 5,
        max_iter: 300,
        tol,
        seed: 1,
        start: None,
    };
    let result = lanczos(n, &mut operator(&a, &mut calls), &opts).unwrap();
    eprintln!(
        "lanczos top-5 of a 300x300 indefinite matrix: {} matvecs",
        result.matvecs
    );
    assert!(result.converged);
    assert_eq!(result.matvecs, calls);
    assert!(
        result.matvecs < n,
        "no early stop: {} matvecs",
        result.matvecs
    );
    for (got, want) in result.values.iter().zip([10.0, 9.0, 8.0, 7.0, 6.0]) {
        assert!((got - want).abs() <= 1e-8 * want, "{got} vs {want}");
    }
    for ((theta, y), r) in result
        .values
        .iter()
        .zip(&result.vectors)
        .zip(&result.residuals)
    {
        assert!(*r <= tol);
        assert!((norm(y) - 1.0).abs() <= 1e-12);
        let ay = matvec(&a, y);
        let res: Vec<f64> = ay.iter().zip(y).map(|(p, q)| p - theta * q).collect();
        assert!(
            norm(&res) <= 1e-8 * theta.abs(),
            "true residual {}",
            norm(&res)
        );
    }
}

#[test]
fn lanczos_with_an_f32_basis_agrees_with_f64_within_bounds_that_carry_its_rounding() {
    let d = indefinite_spectrum();
    let n = d.len();
    let (a, _) = with_spectrum(&d, 3);
    for tol in [1e-3, 1e-5] {
        let opts = LanczosOptions {
            k: 3,
            max_iter: 300,
            tol,
            seed: 1,
            start: None,
        };
        let mut calls = 0;
        let wide = lanczos_in(n, &mut operator(&a, &mut calls), &opts, BasisStorage::F64).unwrap();
        let narrow =
            lanczos_in(n, &mut operator(&a, &mut calls), &opts, BasisStorage::F32).unwrap();
        assert!(wide.converged && narrow.converged, "tol {tol}");
        for (i, exact) in [10.0, 9.0, 8.0].into_iter().enumerate() {
            let (theta, bound) = (narrow.values[i], narrow.bounds[i]);
            assert!(
                (exact - theta).abs() <= bound * theta,
                "tol {tol}: lambda_{i} = {exact} but {theta} +- {}",
                bound * theta
            );
            assert!(
                (theta - wide.values[i]).abs() <= 1e-6 * exact,
                "tol {tol}: f32 basis {theta}, f64 basis {}",
                wide.values[i]
            );
            assert!((norm(&narrow.vectors[i]) - 1.0).abs() <= 1e-12);
        }
        assert!(
            narrow.matvecs <= wide.matvecs + 2,
            "tol {tol}: {} products with an f32 basis, {} with f64",
            narrow.matvecs,
            wide.matvecs
        );
    }
}

#[test]
fn lanczos_with_an_f32_basis_claims_no_accuracy_below_its_rounding() {
    // tol 1e-10 is below what an f32 basis can certify: it must report not
    // converged, even after spanning the whole space, where an f64 basis is
    // exact.
    let mut d = vec![10.0, 9.0, 8.0];
    d.extend(spread(-5.0, 5.0, 57));
    let n = d.len();
    let (a, _) = with_spectrum(&d, 4);
    let opts = LanczosOptions {
        k: 3,
        max_iter: n,
        tol: 1e-10,
        seed: 1,
        start: None,
    };
    let mut calls = 0;
    let wide = lanczos_in(n, &mut operator(&a, &mut calls), &opts, BasisStorage::F64).unwrap();
    assert!(wide.converged);
    let narrow = lanczos_in(n, &mut operator(&a, &mut calls), &opts, BasisStorage::F32).unwrap();
    eprintln!(
        "f32 basis over the whole space ({n} steps): bounds {:?}",
        narrow.bounds
    );
    assert_eq!(narrow.matvecs, n);
    assert!(!narrow.converged, "bounds {:?}", narrow.bounds);
    assert!(
        narrow.bounds.iter().all(|&b| b > 1e-10),
        "{:?}",
        narrow.bounds
    );
    for (theta, exact) in narrow.values.iter().zip([10.0, 9.0, 8.0]) {
        assert!((theta - exact).abs() <= 1e-6 * exact, "{theta} vs {exact}");
    }
}

#[test]
fn the_basis_is_f32_only_for_f32_operators_at_tolerances_it_can_certify() {
    assert_eq!(BasisStorage::for_operator(true, 1e-3), BasisStorage::F64);
    assert_eq!(BasisStorage::for_operator(false, 1e-3), BasisStorage::F32);
    assert_eq!(BasisStorage::for_operator(false, 1e-5), BasisStorage::F32);
    assert_eq!(BasisStorage::for_operator(false, 1e-7), BasisStorage::F64);
}

#[test]
fn lanczos_warm_start_from_the_top_eigenvector_saves_matvecs() {
    let d = indefinite_spectrum();
    let n = d.len();
    let (a, q) = with_spectrum(&d, 3);
    let mut opts = LanczosOptions {
        k: 1,
        max_iter: 300,
        tol: 1e-10,
        seed: 2,
        start: None,
    };
    let mut cold_calls = 0;
    let cold = lanczos(n, &mut operator(&a, &mut cold_calls), &opts).unwrap();
    opts.start = Some(q[0].clone());
    let mut warm_calls = 0;
    let warm = lanczos(n, &mut operator(&a, &mut warm_calls), &opts).unwrap();
    assert!(cold.converged && warm.converged);
    assert!(
        warm.matvecs < cold.matvecs,
        "warm {} vs cold {} matvecs",
        warm.matvecs,
        cold.matvecs
    );
    assert!((warm.values[0] - 10.0).abs() <= 1e-10);
}

#[test]
fn lanczos_warm_started_on_the_second_eigenvector_finds_the_top_one() {
    // What happens after the top two eigenvalues cross: the warm start is
    // the eigenvector of what is now the second. A start of that vector
    // alone spans an invariant subspace at once, with residual 0: certified
    // wrongly. The random half of every start must lead to the top value.
    let mut d = vec![10.0, 9.5];
    d.extend(spread(-2.0, 2.0, 198));
    let n = d.len();
    let (a, q) = with_spectrum(&d, 6);
    for (seed, tol) in [(0, 1e-3), (1, 1e-3), (2, 1e-6)] {
        let opts = LanczosOptions {
            k: 1,
            max_iter: 100,
            tol,
            seed,
            start: Some(q[1].clone()),
        };
        let mut calls = 0;
        let r = lanczos(n, &mut operator(&a, &mut calls), &opts).unwrap();
        assert!(r.converged, "seed {seed}: {} matvecs", r.matvecs);
        assert!(
            10.0 - r.values[0] <= r.bounds[0] * r.values[0],
            "seed {seed}: {} +- {} misses 10",
            r.values[0],
            r.bounds[0] * r.values[0]
        );
        assert!(r.guard.is_some());
    }
}

#[test]
fn lanczos_continues_past_an_invariant_krylov_space() {
    // The Krylov space of one vector holds one direction per distinct
    // eigenvalue: here {10, 9, 8, 0}, so it breaks down after 4 steps
    // having seen one copy of the double eigenvalue 9. Asking for four
    // eigenpairs must restart and still find both copies.
    let mut d = vec![10.0, 9.0, 9.0, 8.0];
    d.extend(std::iter::repeat(0.0).take(96));
    let n = d.len();
    let (a, _) = with_spectrum(&d, 3);
    let opts = LanczosOptions {
        k: 4,
        max_iter: 100,
        tol: 1e-10,
        seed: 4,
        start: None,
    };
    let mut calls = 0;
    let result = lanczos(n, &mut operator(&a, &mut calls), &opts).unwrap();
    assert!(result.converged);
    for (got, want) in result.values.iter().zip([10.0, 9.0, 9.0, 8.0]) {
        assert!((got - want).abs() <= 1e-8, "{got} vs {want}");
    }
    assert!(result.matvecs < 20, "{} matvecs", result.matvecs);
}

#[test]
fn lanczos_reports_non_convergence_with_honest_residuals() {
    // A tight cluster at the top and few iterations: the Ritz values are not
    // yet the eigenvalues, and the residuals must say so.
    let mut d = spread(0.99, 1.0, 6);
    d.extend(spread(-1.0, 0.9, 194));
    let n = d.len();
    let (a, _) = with_spectrum(&d, 5);
    let tol = 1e-10;
    let opts = LanczosOptions {
        k: 3,
        max_iter: 10,
        tol,
        seed: 3,
        start: None,
    };
    let mut calls = 0;
    let result = lanczos(n, &mut operator(&a, &mut calls), &opts).unwrap();
    assert!(!result.converged);
    assert_eq!(result.matvecs, 10);
    assert!(result.residuals.iter().any(|&r| r > tol));
    for ((theta, y), r) in result
        .values
        .iter()
        .zip(&result.vectors)
        .zip(&result.residuals)
    {
        // The estimate is the true residual ...
        let ay = matvec(&a, y);
        let res: Vec<f64> = ay.iter().zip(y).map(|(p, q)| p - theta * q).collect();
        let true_rel = norm(&res) / theta.abs();
        assert!(
            (true_rel - r).abs() <= 1e-8 * true_rel + 1e-12,
            "estimate {r} vs true {true_rel}"
        );
        // ... so an eigenvalue lies within it.
        let nearest = d
            .iter()
            .map(|l| (l - theta).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(
            nearest <= r * theta.abs() * (1.0 + 1e-8),
            "{theta}: {nearest} > {r}"
        );
    }
}

#[test]
fn lanczos_terminates_exactly_when_n_is_small() {
    let n = 8;
    let a = random_symmetric(n, 9);
    let exact = sym_eigen(&a, n).unwrap();
    // tol 0 forces the run to the end of the space, where it is exact.
    let opts = LanczosOptions {
        k: 3,
        max_iter: 50,
        tol: 0.0,
        seed: 5,
        start: None,
    };
    let mut calls = 0;
    let result = lanczos(n, &mut operator(&a, &mut calls), &opts).unwrap();
    assert!(result.converged);
    assert_eq!(result.matvecs, n);
    assert!(result.residuals.iter().all(|&r| r == 0.0));
    for (got, want) in result.values.iter().zip(&exact.values) {
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
}

#[test]
fn lanczos_errors_name_the_problem() {
    let a = random_symmetric(10, 1);
    let mut calls = 0;
    let opts = LanczosOptions {
        k: 20,
        max_iter: 50,
        tol: 1e-8,
        seed: 0,
        start: None,
    };
    let err = lanczos(10, &mut operator(&a, &mut calls), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("20") && err.contains("10"), "{err}");
    assert_eq!(calls, 0);

    let zero_k = LanczosOptions {
        k: 0,
        ..opts.clone()
    };
    assert!(lanczos(10, &mut operator(&a, &mut calls), &zero_k).is_err());

    let ok = LanczosOptions {
        k: 2,
        ..opts.clone()
    };
    let mut short = |_: &[f64]| -> Result<Vec<f64>> { Ok(vec![0.0; 9]) };
    let err = lanczos(10, &mut short, &ok).unwrap_err().to_string();
    assert!(err.contains('9') && err.contains("10"), "{err}");
    let mut nan = |x: &[f64]| -> Result<Vec<f64>> {
        let mut y = x.to_vec();
        y[3] = f64::NAN;
        Ok(y)
    };
    let err = lanczos(10, &mut nan, &ok).unwrap_err().to_string();
    assert!(err.contains("NaN"), "{err}");
    let bad_start = LanczosOptions {
        start: Some(vec![1.0; 3]),
        ..ok
    };
    assert!(lanczos(10, &mut operator(&a, &mut calls), &bad_start).is_err());
}

#[test]
fn power_iteration_finds_the_largest_magnitude_eigenvalue() {
    // Dominant eigenvalue -10 (negative), next 8: ratio 0.8.
    let mut d = vec![-10.0, 8.0];
    d.extend(spread(-7.0, 7.0, 98));
    let n = d.len();
    let (a, q) = with_spectrum(&d, 7);
    let tol = 1e-10;
    let opts = PowerOptions {
        max_iter: 1000,
        tol,
        seed: 1,
        start: None,
    };
    let mut calls = 0;
    let result = power_iteration(n, &mut operator(&a, &mut calls), &opts).unwrap();
    assert!(result.converged);
    assert_eq!(result.matvecs, calls);
    // The Rayleigh quotient's error is about its last change / (1 - 0.8^2).
    assert!(
        (result.value + 10.0).abs() <= 10.0 * 1e-9,
        "value {}",
        result.value
    );
    assert!(dot(&result.vector, &q[0]).abs() >= 1.0 - 1e-8);
    assert!(result.residual <= 1e-4, "residual {}", result.residual);

    let short = PowerOptions {
        max_iter: 3,
        ..opts
    };
    let mut calls = 0;
    let result = power_iteration(n, &mut operator(&a, &mut calls), &short).unwrap();
    assert!(!result.converged);
    assert_eq!(result.matvecs, 3);
    assert!(result.residual > 1e-3, "residual {}", result.residual);
}

#[test]
fn hutchinson_is_exact_for_a_diagonal_matrix() {
    let d = spread(-3.0, 5.0, 40);
    let trace: f64 = d.iter().sum();
    let mut op =
        |x: &[f64]| -> Result<Vec<f64>> { Ok(x.iter().zip(&d).map(|(a, b)| a * b).collect()) };
    let est = hutchinson_trace(d.len(), &mut op, 7, 3).unwrap();
    assert_eq!(est.probes, 7);
    assert_eq!(est.matvecs, 7);
    assert!((est.estimate - trace).abs() <= 1e-12 * trace.abs());
    assert!(est.std_error <= 1e-12 * trace.abs());
}

#[test]
fn hutchinson_is_unbiased_for_a_dense_matrix() {
    let n = 60;
    let mut a = random_symmetric(n, 21);
    for i in 0..n {
        a[i * n + i] += 2.0;
    }
    let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
    let probes = 4000;
    let mut calls = 0;
    let est = hutchinson_trace(n, &mut operator(&a, &mut calls), probes, 8).unwrap();
    assert_eq!(calls, probes);
    assert!(
        (est.estimate - trace).abs() <= 4.0 * est.std_error,
        "estimate {} +- {} vs trace {trace}",
        est.estimate,
        est.std_error
    );
    // Rademacher probes have variance 2 sum_{i != j} a_ij^2.
    let off: f64 = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| a[i * n + j].powi(2))
        .sum();
    let expected = (2.0 * off / probes as f64).sqrt();
    assert!(
        (est.std_error / expected - 1.0).abs() <= 0.1,
        "std error {} vs {expected}",
        est.std_error
    );
}

#[test]
fn hutchinson_diagonal_is_exact_for_a_diagonal_matrix_and_sums_to_the_trace_estimate() {
    let d = spread(-3.0, 7.0, 40);
    let n = d.len();
    let mut a = vec![0.0; n * n];
    for (i, di) in d.iter().enumerate() {
        a[i * n + i] = *di;
    }
    let mut calls = 0;
    let one = hutchinson_diagonal(n, &mut operator(&a, &mut calls), 1, 5).unwrap();
    assert_eq!(one.estimate, d);
    assert!(one.std_error.iter().all(|s| s.is_nan()));

    let (dense, _) = with_spectrum(&spread(-1.0, 4.0, n), 8);
    let mut calls = 0;
    let diag = hutchinson_diagonal(n, &mut operator(&dense, &mut calls), 400, 9).unwrap();
    assert_eq!(calls, 400);
    let trace = hutchinson_trace(n, &mut operator(&dense, &mut calls), 400, 9).unwrap();
    let sum: f64 = diag.estimate.iter().sum();
    assert!((sum - trace.estimate).abs() <= 1e-10 * trace.estimate.abs());
    for i in 0..n {
        let exact = dense[i * n + i];
        assert!(
            (diag.estimate[i] - exact).abs() <= 5.0 * diag.std_error[i],
            "entry {i}: {} +- {}, exact {exact}",
            diag.estimate[i],
            diag.std_error[i]
        );
    }
}

#[test]
fn slq_moments_match_the_spectrum() {
    let d: Vec<f64> = spread(1.0, 3.0, 150)
        .into_iter()
        .chain(spread(-2.0, -0.5, 50))
        .collect();
    let n = d.len();
    let (a, _) = with_spectrum(&d, 13);
    let mut calls = 0;
    let density = slq(n, &mut operator(&a, &mut calls), 100, 20, 17).unwrap();
    assert_eq!(density.matvecs, calls);
    assert_eq!(density.nodes.len(), 100);
    for (nodes, weights) in density.nodes.iter().zip(&density.weights) {
        assert_eq!(nodes.len(), 20);
        assert!((weights.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
    }
    let m1 = d.iter().sum::<f64>() / n as f64;
    let m2 = d.iter().map(|x| x * x).sum::<f64>() / n as f64;
    let (e1, e2) = (density.moment(1), density.moment(2));
    assert!((e1 - m1).abs() <= 0.03 * m1, "moment 1: {e1} vs {m1}");
    assert!((e2 - m2).abs() <= 0.03 * m2, "moment 2: {e2} vs {m2}");
    // moment(0) is the total weight.
    assert!((density.moment(0) - 1.0).abs() <= 1e-12);
}

#[test]
fn slq_density_integrates_to_one_and_shows_two_clusters() {
    let d: Vec<f64> = spread(-5.5, -4.5, 80)
        .into_iter()
        .chain(spread(4.0, 6.0, 120))
        .collect();
    let n = d.len();
    let (a, _) = with_spectrum(&d, 19);
    let mut calls = 0;
    let density = slq(n, &mut operator(&a, &mut calls), 10, 30, 23).unwrap();
    let h = 0.01;
    let grid: Vec<f64> = (0..=4000).map(|i| -20.0 + h * i as f64).collect();
    let rho = density.density(&grid, 0.3);
    let integral: f64 = rho.iter().sum::<f64>() * h;
    assert!((integral - 1.0).abs() <= 1e-3, "integral {integral}");
    let at = |x: f64| rho[((x + 20.0) / h).round() as usize];
    // Peaks inside the clusters, a gap between them.
    assert!(at(-5.0) > 20.0 * at(0.0), "{} vs {}", at(-5.0), at(0.0));
    assert!(at(5.0) > 20.0 * at(0.0), "{} vs {}", at(5.0), at(0.0));
    let local_max = |lo: f64, hi: f64| {
        grid.iter()
            .zip(&rho)
            .filter(|(x, _)| **x >= lo && **x <= hi)
            .fold(
                (0.0, 0.0),
                |best, (x, r)| if *r > best.1 { (*x, *r) } else { best },
            )
    };
    let (left, _) = local_max(-10.0, 0.0);
    let (right, _) = local_max(0.0, 10.0);
    assert!((left + 5.0).abs() <= 0.5, "left peak at {left}");
    assert!((right - 5.0).abs() <= 1.0, "right peak at {right}");
    // The mass splits as the clusters' sizes, 0.4 and 0.6.
    let left_mass: f64 = grid
        .iter()
        .zip(&rho)
        .filter(|(x, _)| **x < 0.0)
        .map(|(_, r)| r * h)
        .sum();
    assert!((left_mass - 0.4).abs() <= 0.1, "left mass {left_mass}");
}

#[test]
fn warm_started_lanczos_follows_the_top_eigenvalue_through_crossings() {
    // A quadratic loss 0.5 x^T A(t) x along "training" t: the eigenvalue on
    // u falls and the one on v rises past it at t = 5, and a third, on w,
    // rises out of the bulk past both at t = 15. Each solve is warm-started
    // from the last one's `next_start`, as the sharpness observer does. A
    // start of the previous top eigenvector alone would report the value on
    // u, now second, as converged with residual 0 (u is an exact
    // eigenvector).
    let n = 200;
    let q = random_orthonormal(n, 9);
    let bulk = spread(-2.0, 2.0, n - 3);
    let mut previous: Option<lmech::linalg::LanczosResult> = None;
    for t in 0..=20 {
        let t = t as f64;
        let mut d = vec![10.0 - 0.2 * t, 8.0 + 0.2 * t, 0.5 + 0.6 * t];
        d.extend(&bulk);
        let mut a = vec![0.0; n * n];
        for (k, qk) in q.iter().enumerate() {
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] += d[k] * qk[i] * qk[j];
                }
            }
        }
        let top = d.iter().cloned().fold(f64::MIN, f64::max);
        let opts = LanczosOptions {
            k: 1,
            max_iter: 20,
            tol: 1e-3,
            seed: t as u64,
            start: previous.as_ref().map(|p| p.next_start()),
        };
        let mut calls = 0;
        let r = lanczos(n, &mut operator(&a, &mut calls), &opts).unwrap();
        assert!(
            r.converged,
            "t = {t}: not converged in {} matvecs",
            r.matvecs
        );
        assert!(
            top - r.values[0] <= r.bounds[0] * r.values[0],
            "t = {t}: reported {} +- {}, top eigenvalue {top}",
            r.values[0],
            r.bounds[0] * r.values[0]
        );
        previous = Some(r);
    }
}
