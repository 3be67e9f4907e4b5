//! Spectra of real network Hessians: Lanczos top eigenvalues against a dense
//! eigendecomposition of the full Hessian of a net with a few hundred
//! parameters (f64, 1e-8 relative), power iteration, Hutchinson's trace
//! against the exact trace, and an unconverged Lanczos reporting its residual.

mod common;

use common::{randn, tensor};
use lmech::curvature::LossOnData;
use lmech::linalg::{
    hutchinson_trace, lanczos, power_iteration, sym_eigen, LanczosOptions, PowerOptions,
};
use lmech::nn::activation::Activation;
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::rng::Rng;
use lmech::tape::Curvature;
use lmech::{Cpu, Tensor};

type Chunks = Vec<(Tensor<Cpu>, Tensor<Cpu>)>;

/// A tanh MLP 5-16-12-3 (347 parameters) and 40 examples in 3 chunks.
fn setup() -> (Model<Cpu>, Chunks) {
    let be = Cpu::f64();
    let mut spec = MlpSpec::new(5, 16, 3, 3, Activation::Tanh);
    spec.sizes = vec![5, 16, 12, 3];
    let model = Model::init(&be, spec, &[4]).unwrap();
    let mut rng = Rng::new(5);
    let mut chunks = Vec::new();
    for rows in [16, 16, 8] {
        let x = randn(&mut rng, rows * 5, 1.0);
        let y: Vec<f64> = (0..rows).map(|i| (i % 3) as f64).collect();
        chunks.push((tensor(&be, &[rows, 5], &x), tensor(&be, &[rows], &y)));
    }
    (model, chunks)
}

fn dense(lod: &LossOnData<Cpu>, mode: Curvature) -> Vec<f64> {
    let n = lod.dim();
    let mut h = vec![0.0; n * n];
    for j in 0..n {
        let mut e = vec![0.0; n];
        e[j] = 1.0;
        let col = lod.product(&e, mode).unwrap();
        for i in 0..n {
            h[i * n + j] = col[i];
        }
    }
    // Symmetric up to rounding; average the two triangles.
    for i in 0..n {
        for j in 0..i {
            let m = 0.5 * (h[i * n + j] + h[j * n + i]);
            h[i * n + j] = m;
            h[j * n + i] = m;
        }
    }
    h
}

#[test]
fn lanczos_matches_dense_eigendecomposition_of_the_hessian() {
    let be = Cpu::f64();
    let (model, chunks) = setup();
    let lod = LossOnData::new(&be, &model, LossKind::CrossEntropy, chunks).unwrap();
    let n = lod.dim();
    assert_eq!(n, 5 * 16 + 16 + 16 * 12 + 12 + 12 * 3 + 3);
    for mode in [Curvature::Hessian, Curvature::GaussNewton] {
        let exact = sym_eigen(&dense(&lod, mode), n).unwrap().values;
        let mut op = |v: &[f64]| lod.product(v, mode);
        let opts = LanczosOptions {
            k: 4,
            max_iter: 120,
            tol: 1e-10,
            seed: 1,
            start: None,
        };
        let r = lanczos(n, &mut op, &opts).unwrap();
        assert!(r.converged, "{mode:?}: residuals {:?}", r.residuals);
        for (i, (got, want)) in r.values.iter().zip(&exact).enumerate() {
            let rel = (got - want).abs() / want.abs();
            assert!(
                rel < 1e-8,
                "{mode:?} eigenvalue {i}: {got} vs {want} ({rel})"
            );
        }
        // Power iteration finds the eigenvalue of largest magnitude.
        let largest = exact
            .iter()
            .cloned()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        let mut op = |v: &[f64]| lod.product(v, mode);
        let p = power_iteration(
            n,
            &mut op,
            &PowerOptions {
                max_iter: 2000,
                tol: 1e-10,
                seed: 2,
                start: None,
            },
        )
        .unwrap();
        assert!(
            (p.value - largest).abs() < 1e-6 * largest.abs(),
            "{mode:?} power {} vs {largest}",
            p.value
        );
    }
}

#[test]
fn hutchinson_trace_is_close_to_the_exact_trace() {
    let be = Cpu::f64();
    let (model, chunks) = setup();
    let lod = LossOnData::new(&be, &model, LossKind::CrossEntropy, chunks).unwrap();
    let n = lod.dim();
    let h = dense(&lod, Curvature::GaussNewton);
    let exact: f64 = (0..n).map(|i| h[i * n + i]).sum();
    let mut op = |v: &[f64]| lod.product(v, Curvature::GaussNewton);
    let est = hutchinson_trace(n, &mut op, 200, 3).unwrap();
    assert!(
        (est.estimate - exact).abs() < 4.0 * est.std_error,
        "{} +- {} vs {exact}",
        est.estimate,
        est.std_error
    );
    assert_eq!(est.matvecs, 200);
}

#[test]
fn unconverged_lanczos_reports_its_residual() {
    let be = Cpu::f64();
    let (model, chunks) = setup();
    let lod = LossOnData::new(&be, &model, LossKind::CrossEntropy, chunks).unwrap();
    let mut op = |v: &[f64]| lod.product(v, Curvature::Hessian);
    let opts = LanczosOptions {
        k: 3,
        max_iter: 4,
        tol: 1e-12,
        seed: 1,
        start: None,
    };
    let r = lanczos(lod.dim(), &mut op, &opts).unwrap();
    assert!(!r.converged);
    assert!(r.residuals.iter().any(|&x| x > 1e-12), "{:?}", r.residuals);
    assert_eq!(r.matvecs, 4);
}

#[test]
fn lanczos_values_lie_below_the_eigenvalues_and_within_their_bounds() {
    let be = Cpu::f64();
    let (model, chunks) = setup();
    let lod = LossOnData::new(&be, &model, LossKind::CrossEntropy, chunks).unwrap();
    let n = lod.dim();
    let exact = sym_eigen(&dense(&lod, Curvature::Hessian), n)
        .unwrap()
        .values;
    for tol in [1e-2, 1e-4, 1e-6] {
        let mut op = |v: &[f64]| lod.product(v, Curvature::Hessian);
        let opts = LanczosOptions {
            k: 3,
            max_iter: 200,
            tol,
            seed: 3,
            start: None,
        };
        let r = lanczos(n, &mut op, &opts).unwrap();
        assert!(r.converged, "tol {tol}");
        for (i, (theta, bound)) in r.values.iter().zip(&r.bounds).enumerate() {
            assert!(*bound <= tol, "tol {tol}: bound {bound}");
            // Cauchy interlacing: a Ritz value never exceeds its eigenvalue.
            assert!(
                *theta <= exact[i] + 1e-12 * exact[0].abs(),
                "{theta} > {}",
                exact[i]
            );
            assert!(
                exact[i] - theta <= bound * theta.abs(),
                "tol {tol}: lambda_{i} = {} but {theta} +- {}",
                exact[i],
                bound * theta.abs()
            );
        }
    }
}
