//! Known closed-form results of training dynamics, checked against lmech's
//! full-batch gradient descent in f64 on the CPU backend:
//!
//! 1. Saxe, McClelland & Ganguli (2014): the sigmoidal mode-by-mode learning
//!    curves of a two-layer linear network from small balanced, task-aligned
//!    initialization, in order of singular value.
//! 2. Lewkowycz et al. (2020): the exact GD recurrences of the output f and
//!    the NTK lambda of the two-layer scalar linear net f = v.u x / sqrt(n),
//!    and its lazy / catapult / divergent phases.
//! 3. Kunin et al. (2021): the conservation laws of the softmax translation
//!    symmetry, and the per-step law of the ReLU rescale symmetry.
//!
//! Conventions (derived in each test): lmech's `Mse` loss is
//! L = (1/B) sum_b 0.5 ||f(x_b) - y_b||^2, whose gradient with respect to
//! the output is (f - y) / B, and a GD step with base learning rate eta and
//! lr scale 1 is theta <- theta - eta dL/dtheta.

mod common;

use common::{randn, tensor, values};
use lmech::data::{self, DataConfig, Targets};
use lmech::nn::activation::Activation;
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::nn::parametrization::{OptimFamily, Parametrization};
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::rng::Rng;
use lmech::{Cpu, Tensor};

/// Plain GD with learning rate `lr` on every parameter; asserts that the
/// parametrization leaves every per-layer SGD lr scale at 1.
fn gd(be: &Cpu, model: &Model<Cpu>, lr: f64) -> Optimizer<Cpu> {
    let scales = model.lr_scales(OptimFamily::Sgd);
    assert!(scales.iter().all(|&s| s == 1.0), "lr scales {scales:?}");
    Optimizer::new(
        be,
        OptimHyper::new(OptimizerKind::Gd),
        Schedule::Constant,
        vec![lr],
        &model.params(),
        scales,
    )
    .unwrap()
}

/// One full-batch GD step. Returns the loss before the step and that step's
/// gradients (host copies, in `params()` order).
fn gd_step(
    be: &Cpu,
    model: &mut Model<Cpu>,
    opt: &mut Optimizer<Cpu>,
    x: &Tensor<Cpu>,
    target: &Tensor<Cpu>,
    kind: LossKind,
) -> (f64, Vec<Vec<f64>>) {
    let pass = model.loss_pass(be, x, target, kind, true).unwrap();
    let loss = values(be, &pass.loss)[0];
    let grads = pass.grads.iter().map(|g| values(be, g)).collect();
    opt.step(be, model.params_mut(), &pass.grads).unwrap();
    (loss, grads)
}

fn host_params(be: &Cpu, model: &Model<Cpu>) -> Vec<Vec<f64>> {
    model.params().into_iter().map(|p| values(be, p)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}

// ---------------------------------------------------------------------------
// 1. Saxe, McClelland & Ganguli (2014)
// ---------------------------------------------------------------------------

/// Eigen-decomposition of a symmetric d x d matrix (row-major) by cyclic
/// Jacobi rotations: eigenvalues in decreasing order and the matching unit
/// eigenvectors.
fn symmetric_eigen(m: &[f64], d: usize) -> Vec<(f64, Vec<f64>)> {
    let mut a = m.to_vec();
    let mut v = vec![0.0; d * d];
    (0..d).for_each(|i| v[i * d + i] = 1.0);
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j] * a[i * d + j])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- J^T A J and V <- V J with J the rotation in (p, q).
                for k in 0..d {
                    let (kp, kq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * kp - s * kq;
                    a[k * d + q] = s * kp + c * kq;
                }
                for k in 0..d {
                    let (pk, qk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * pk - s * qk;
                    a[q * d + k] = s * pk + c * qk;
                }
                for k in 0..d {
                    let (kp, kq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * kp - s * kq;
                    v[k * d + q] = s * kp + c * kq;
                }
            }
        }
    }
    let mut out: Vec<(f64, Vec<f64>)> = (0..d)
        .map(|j| (a[j * d + j], (0..d).map(|k| v[k * d + j]).collect()))
        .collect();
    out.sort_by(|x, y| y.0.total_cmp(&x.0));
    out
}

/// Saxe et al.'s closed form for one mode: u(t) with t in units of tau.
fn saxe_u(s: f64, u0: f64, t_over_tau: f64) -> f64 {
    let e = (2.0 * s * t_over_tau).exp();
    s * e / (e - 1.0 + s / u0)
}

/// The task, its SVD (recovered from the data) and a balanced aligned start.
struct SaxeSetup {
    x: Tensor<Cpu>,
    y: Tensor<Cpu>,
    s: Vec<f64>,
    /// Left singular vectors (length `k` each) and right ones (length `d`).
    u: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
    w1: Vec<f64>,
    w2: Vec<f64>,
}

const SAXE_D: usize = 8;
const SAXE_H: usize = 8;
const SAXE_K: usize = 6;
const SAXE_N: usize = 64;
const SAXE_S: [f64; 3] = [3.0, 2.0, 1.0];
const SAXE_U0: f64 = 1e-3;

fn saxe_setup(be: &Cpu) -> SaxeSetup {
    let (d, h, k, n) = (SAXE_D, SAXE_H, SAXE_K, SAXE_N);
    let cfg = DataConfig {
        source: "linear".into(),
        n,
        input_dim: d,
        output_dim: k,
        singular_values: Some(SAXE_S.to_vec()),
        ..Default::default()
    };
    let train = data::load(&cfg, 11).unwrap().train;
    assert_eq!((train.n, train.d), (n, d));
    let Targets::Values { y, k: ky } = &train.y else {
        panic!("the linear task has real-valued targets")
    };
    assert_eq!(*ky, k);
    let x = &train.x;
    // Whitened inputs: X^T X / n = I.
    for i in 0..d {
        for j in 0..d {
            let c: f64 = (0..n).map(|b| x[b * d + i] * x[b * d + j]).sum::<f64>() / n as f64;
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((c - want).abs() < 1e-12, "X^T X / n [{i},{j}] = {c}");
        }
    }
    // With whitened inputs the input-output correlation Y^T X / n is A.
    let a: Vec<f64> = (0..k * d)
        .map(|idx| {
            let (i, j) = (idx / d, idx % d);
            (0..n).map(|b| y[b * k + i] * x[b * d + j]).sum::<f64>() / n as f64
        })
        .collect();
    let ata: Vec<f64> = (0..d * d)
        .map(|idx| {
            let (i, j) = (idx / d, idx % d);
            (0..k).map(|r| a[r * d + i] * a[r * d + j]).sum()
        })
        .collect();
    let eig = symmetric_eigen(&ata, d);
    let r = SAXE_S.len();
    let mut s = Vec::new();
    let (mut us, mut vs) = (Vec::new(), Vec::new());
    for (lam, v) in eig.iter().take(r) {
        let sa = lam.sqrt();
        let u: Vec<f64> = (0..k)
            .map(|i| dot(&a[i * d..(i + 1) * d], v) / sa)
            .collect();
        s.push(sa);
        us.push(u);
        vs.push(v.clone());
    }
    for (got, want) in s.iter().zip(SAXE_S) {
        assert!((got - want).abs() < 1e-10, "singular values {s:?}");
    }
    assert!(eig[r].0.abs() < 1e-12, "A has rank {r}: {:?}", eig[r].0);
    // A = U diag(s) V^T exactly, U with orthonormal columns.
    for i in 0..k {
        for j in 0..d {
            let rec: f64 = (0..r).map(|m| us[m][i] * s[m] * vs[m][j]).sum();
            assert!((rec - a[i * d + j]).abs() < 1e-10);
        }
    }
    for m in 0..r {
        for m2 in 0..r {
            let want = if m == m2 { 1.0 } else { 0.0 };
            assert!((dot(&us[m], &us[m2]) - want).abs() < 1e-10);
        }
    }

    // Balanced, aligned start: W1 = sum_a sqrt(u0) r_a v_a^T and
    // W2 = sum_a sqrt(u0) u_a r_a^T with r_a orthonormal hidden directions.
    let mut rng = Rng::new(5);
    let mut rh: Vec<Vec<f64>> = Vec::new();
    for _ in 0..r {
        let mut c = randn(&mut rng, h, 1.0);
        for _pass in 0..2 {
            for q in &rh {
                let p = dot(q, &c);
                c.iter_mut().zip(q).for_each(|(ci, qi)| *ci -= p * qi);
            }
        }
        let norm = dot(&c, &c).sqrt();
        c.iter_mut().for_each(|ci| *ci /= norm);
        rh.push(c);
    }
    let c0 = SAXE_U0.sqrt();
    let w1: Vec<f64> = (0..h * d)
        .map(|idx| (0..r).map(|m| c0 * rh[m][idx / d] * vs[m][idx % d]).sum())
        .collect();
    let w2: Vec<f64> = (0..k * h)
        .map(|idx| (0..r).map(|m| c0 * us[m][idx / h] * rh[m][idx % h]).sum())
        .collect();
    SaxeSetup {
        x: tensor(be, &[n, d], x),
        y: tensor(be, &[n, k], y),
        s,
        u: us,
        v: vs,
        w1,
        w2,
    }
}

/// (U^T W2 W1 V): the strength of each mode (diagonal) and the largest
/// coupling between different modes.
fn mode_strengths(set: &SaxeSetup, w1: &[f64], w2: &[f64]) -> (Vec<f64>, f64) {
    let (d, h, k) = (SAXE_D, SAXE_H, SAXE_K);
    let r = set.s.len();
    // W1 v_b [h] then u_a^T W2 (W1 v_b).
    let w1v: Vec<Vec<f64>> = (0..r)
        .map(|b| {
            (0..h)
                .map(|i| dot(&w1[i * d..(i + 1) * d], &set.v[b]))
                .collect()
        })
        .collect();
    let mut diag = vec![0.0; r];
    let mut off: f64 = 0.0;
    for (a, ua) in set.u.iter().enumerate() {
        let utw2: Vec<f64> = (0..h)
            .map(|j| (0..k).map(|i| ua[i] * w2[i * h + j]).sum())
            .collect();
        for (b, wv) in w1v.iter().enumerate() {
            let m = dot(&utw2, wv);
            if a == b {
                diag[a] = m;
            } else {
                off = off.max(m.abs());
            }
        }
    }
    (diag, off)
}

struct SaxeRun {
    /// Max over modes and sampled times of |u_sim - u_theory| / u_theory.
    max_rel_err: f64,
    /// Half-way time of each mode (u = s/2), in units of tau.
    half_times: Vec<f64>,
}

/// Train the aligned net with GD at `lr` for `horizon` tau and compare with
/// the closed form. With tau = 1 / lr steps, step t is at t / tau = t * lr.
fn saxe_run(be: &Cpu, set: &SaxeSetup, lr: f64, horizon: f64) -> SaxeRun {
    let mut spec = MlpSpec::new(SAXE_D, SAXE_H, 2, SAXE_K, Activation::Identity);
    spec.bias = false;
    spec.parametrization = Parametrization::Standard;
    let mut model = Model::init(be, spec, &[1]).unwrap();
    assert!(model.layer_scales().iter().all(|s| s.multiplier == 1.0));
    *model.params_mut()[0] = tensor(be, &[1, SAXE_H, SAXE_D], &set.w1);
    *model.params_mut()[1] = tensor(be, &[1, SAXE_K, SAXE_H], &set.w2);
    let mut opt = gd(be, &model, lr);
    let steps = (horizon / lr).round() as usize;
    let r = set.s.len();
    let mut max_rel_err: f64 = 0.0;
    let mut half_times = vec![f64::NAN; r];
    let mut prev = vec![SAXE_U0; r];
    for t in 0..=steps {
        let p = host_params(be, &model);
        let (u, off) = mode_strengths(set, &p[0], &p[1]);
        // Alignment is preserved exactly by GD: modes never couple.
        assert!(off < 1e-12, "step {t}: modes coupled by {off}");
        let tau_t = t as f64 * lr;
        for a in 0..r {
            if t == 0 {
                assert!((u[a] - SAXE_U0).abs() < 1e-15);
            }
            let half = set.s[a] / 2.0;
            if half_times[a].is_nan() && u[a] >= half {
                // Linear interpolation between the steps around u = s/2.
                let frac = (half - prev[a]) / (u[a] - prev[a]);
                half_times[a] = (t as f64 - 1.0 + frac) * lr;
            }
            if t % 10 == 0 {
                let th = saxe_u(set.s[a], SAXE_U0, tau_t);
                max_rel_err = max_rel_err.max((u[a] - th).abs() / th);
            }
        }
        prev = u;
        if t < steps {
            let pass = model
                .loss_pass(be, &set.x, &set.y, LossKind::Mse, true)
                .unwrap();
            opt.step(be, model.params_mut(), &pass.grads).unwrap();
        }
    }
    // At the horizon every mode is learned: u_a -> s_a.
    for (a, (&u, &s)) in prev.iter().zip(&set.s).enumerate() {
        assert!((u - s).abs() < 0.02 * s, "mode {a} ends at {u} (s = {s})");
    }
    SaxeRun {
        max_rel_err,
        half_times,
    }
}

/// Derivation for lmech's `Mse` loss with f = W2 W1 x (SP multipliers 1):
/// L = (1/n) sum_mu 0.5 ||y_mu - W2 W1 x_mu||^2, so
/// dL/dW1 = -W2^T (Syx - W2 W1 Sxx), dL/dW2 = -(Syx - W2 W1 Sxx) W1^T with
/// Sxx = X^T X / n = I and Syx = Y^T X / n = A. A GD step of size lr is an
/// Euler step of tau dW/dt = -dL/dW with tau = 1 / lr steps. In the aligned
/// basis W1 = sum_a c_a r_a v_a^T, W2 = sum_a c_a u_a r_a^T this is
/// tau dc_a/dt = c_a (s_a - c_a^2), so u_a = c_a^2 obeys
/// tau du/dt = 2 u (s - u): logistic growth at rate 2 s / tau with the
/// closed form u(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0), and the
/// half-way time t_a = tau / (2 s_a) ln(s_a / u0 - 1).
/// Discrete GD is u_{t+1} = u_t (1 + lr (s - u_t))^2: per step its log
/// growth falls short of the flow's by ~ lr^2 s^2, so the error is O(lr).
#[test]
fn saxe_deep_linear_mode_dynamics() {
    let be = Cpu::f64();
    let set = saxe_setup(&be);
    // Long enough for the slowest mode (s = 1) to reach ~99% of s.
    let horizon = 6.5;
    let coarse = saxe_run(&be, &set, 1e-3, horizon);
    let fine = saxe_run(&be, &set, 5e-4, horizon);
    eprintln!(
        "saxe: max rel err {:.4e} (lr 1e-3), {:.4e} (lr 5e-4); half times {:?}",
        coarse.max_rel_err, fine.max_rel_err, fine.half_times
    );
    // A few percent at small lr, and first order in lr.
    assert!(coarse.max_rel_err < 0.02, "{}", coarse.max_rel_err);
    let ratio = fine.max_rel_err / coarse.max_rel_err;
    assert!((0.4..0.6).contains(&ratio), "error ratio {ratio}");
    // Modes are learned in order of singular value, each at its predicted
    // half-way time.
    for run in [&coarse, &fine] {
        for (a, &t) in run.half_times.iter().enumerate() {
            let s = set.s[a];
            let want = (s / SAXE_U0 - 1.0).ln() / (2.0 * s);
            assert!(
                (t - want).abs() < 0.005 * want,
                "mode {a}: t {t}, want {want}"
            );
        }
        assert!(run.half_times.windows(2).all(|w| w[0] < w[1]));
    }
}

// ---------------------------------------------------------------------------
// 2. Lewkowycz et al. (2020): the catapult
// ---------------------------------------------------------------------------

/// f(x) = v.u x / sqrt(n): `ntk` MLP of sizes [1, n, 1], no biases, u the
/// first layer [n, 1] and v the second [1, n].
fn catapult_model(be: &Cpu, n: usize, seed: u64) -> Model<Cpu> {
    let mut spec = MlpSpec::new(1, n, 2, 1, Activation::Identity);
    spec.bias = false;
    spec.parametrization = Parametrization::Ntk;
    let model = Model::init(be, spec, &[seed]).unwrap();
    // ntk multipliers are 1/sqrt(fan_in): exactly v.u x / sqrt(n).
    assert_eq!(model.layer_scales()[0].multiplier, 1.0);
    assert!((model.layer_scales()[1].multiplier - 1.0 / (n as f64).sqrt()).abs() < 1e-16);
    model
}

/// (f, lambda) at x = 1 from the weights: f = v.u / sqrt(n) and the NTK
/// lambda = |df/dtheta|^2 = (|u|^2 + |v|^2) / n.
fn f_and_ntk(be: &Cpu, model: &Model<Cpu>) -> (f64, f64) {
    let u = values(be, model.weights()[0]);
    let v = values(be, model.weights()[1]);
    let n = u.len() as f64;
    (dot(&u, &v) / n.sqrt(), (dot(&u, &u) + dot(&v, &v)) / n)
}

/// The exact GD recurrence for L = 0.5 (f - y)^2 at x = 1 (derived in
/// `catapult_recurrences_are_exact`). Returns (f', lambda') and the sum of
/// the magnitudes of the terms of each (their rounding scale).
fn catapult_step(f: f64, lam: f64, y: f64, eta: f64, n: f64) -> ((f64, f64), (f64, f64)) {
    let g = f - y;
    let f_terms = [f, -eta * lam * g, eta * eta * g * g * f / n];
    let l_terms = [lam, -4.0 * eta * g * f / n, eta * eta * g * g * lam / n];
    (
        (f_terms.iter().sum(), l_terms.iter().sum()),
        (
            f_terms.iter().map(|t| t.abs()).sum(),
            l_terms.iter().map(|t| t.abs()).sum(),
        ),
    )
}

/// Derivation. f = v.u / sqrt(n) at x = 1, g = f - y, L = 0.5 g^2:
/// dL/du = g v / sqrt(n), dL/dv = g u / sqrt(n), so GD gives
/// u' = u - eta g v / sqrt(n), v' = v - eta g u / sqrt(n). Then
/// v'.u' = v.u - eta g (|u|^2 + |v|^2) / sqrt(n) + eta^2 g^2 v.u / n, i.e.
///   f' = f - eta lambda g + eta^2 g^2 f / n,
/// and |u'|^2 + |v'|^2 = (|u|^2 + |v|^2)(1 + eta^2 g^2 / n) - 4 eta g v.u / sqrt(n),
/// i.e.
///   lambda' = lambda + eta g (eta g lambda - 4 f) / n.
/// (For y = 0: lambda' = lambda + eta f^2 (eta lambda - 4) / n, Lewkowycz's
/// eq.; for y != 0 the last factor is eta lambda (f - y) - 4 f, not a
/// multiple of (f - y)^2.)
#[test]
fn catapult_recurrences_are_exact() {
    let be = Cpu::f64();
    let n = 16;
    let x = tensor(&be, &[1, 1], &[1.0]);
    let mut worst: f64 = 0.0;
    let mut worst_traj: f64 = 0.0;
    // The largest O(eta^2 / n) term seen, relative to its quantity: the
    // check must be able to see the second-order terms.
    let mut second_order: f64 = 0.0;
    for (seed, y, eta_l0) in [
        (1, 0.0, 1.0),
        (2, 0.7, 1.0),
        (3, 0.0, 3.0),
        (4, -1.3, 3.0),
        (5, 0.4, 3.5),
    ] {
        let mut model = catapult_model(&be, n, seed);
        let target = tensor(&be, &[1, 1], &[y]);
        let (f0, lam0) = f_and_ntk(&be, &model);
        let eta = eta_l0 / lam0;
        let mut opt = gd(&be, &model, eta);
        let (mut f, mut lam) = (f0, lam0);
        // The recurrence iterated on its own from (f0, lambda0).
        let (mut fr, mut lam_r) = (f0, lam0);
        for t in 0..40 {
            let pass = model
                .loss_pass(&be, &x, &target, LossKind::Mse, true)
                .unwrap();
            let out = values(&be, &pass.output)[0];
            let loss = values(&be, &pass.loss)[0];
            // Rounding of v.u / sqrt(n) is relative to sum |u_i v_i| / sqrt(n)
            // <= lambda sqrt(n) / 2.
            assert!((out - f).abs() <= 1e-14 * lam * (n as f64).sqrt());
            let g = f - y;
            assert!(
                (loss - 0.5 * g * g).abs() <= 1e-14 * (g.abs() + lam * (n as f64).sqrt()).powi(2)
            );
            opt.step(&be, model.params_mut(), &pass.grads).unwrap();
            let (fm, lm) = f_and_ntk(&be, &model);
            let ((fp, lp), (fs, ls)) = catapult_step(f, lam, y, eta, n as f64);
            // f from the weights is rounded relative to sum |u_i v_i| / sqrt(n)
            // <= lambda sqrt(n) / 2 whatever the terms of the recurrence.
            let fs = fs + lam * (n as f64).sqrt();
            let (ef, el) = ((fm - fp).abs() / fs, (lm - lp).abs() / ls);
            assert!(
                ef < 1e-10 && el < 1e-10,
                "seed {seed} step {t}: f {fm} vs {fp}, lambda {lm} vs {lp}"
            );
            worst = worst.max(ef).max(el);
            let g = f - y;
            second_order = second_order
                .max((eta * eta * g * g * f / n as f64).abs() / fs)
                .max((eta * eta * g * g * lam / n as f64).abs() / ls);
            (fr, lam_r) = catapult_step(fr, lam_r, y, eta, n as f64).0;
            let traj = ((fm - fr).abs() / fs.max(fr.abs())).max((lm - lam_r).abs() / lm);
            worst_traj = worst_traj.max(traj);
            (f, lam) = (fm, lm);
        }
    }
    eprintln!("catapult recurrences: worst one-step rel err {worst:.3e}, trajectory {worst_traj:.3e}, largest second-order term {second_order:.3e}");
    assert!(worst_traj < 1e-12, "{worst_traj}");
    assert!(second_order > 1e-2, "{second_order}");
}

/// Train f = v.u / sqrt(n) on (x, y) = (1, 0) at eta = `eta_l0` / lambda0
/// for up to `steps` steps (stopping once the loss passes 1e30 or is not
/// finite). Returns the losses and lambdas before each step (and after the
/// last).
fn catapult_phase(be: &Cpu, n: usize, eta_l0: f64, steps: usize) -> (Vec<f64>, Vec<f64>, f64) {
    let mut model = catapult_model(be, n, 7);
    let x = tensor(be, &[1, 1], &[1.0]);
    let target = tensor(be, &[1, 1], &[0.0]);
    let (_, lam0) = f_and_ntk(be, &model);
    let eta = eta_l0 / lam0;
    let mut opt = gd(be, &model, eta);
    let (mut losses, mut lams) = (Vec::new(), Vec::new());
    for _ in 0..=steps {
        let (f, lam) = f_and_ntk(be, &model);
        losses.push(0.5 * f * f);
        lams.push(lam);
        if !(f * f).is_finite() || f * f > 1e30 || losses.len() > steps {
            break;
        }
        gd_step(be, &mut model, &mut opt, &x, &target, LossKind::Mse);
    }
    (losses, lams, eta)
}

#[test]
fn catapult_phases() {
    let be = Cpu::f64();
    let n = 2000;

    // eta < 2 / lambda0: lazy. The loss falls monotonically to zero and the
    // kernel moves only by O(1/n).
    let (loss, lam, _) = catapult_phase(&be, n, 1.5, 200);
    assert!(loss[0] > 1e-3, "initial loss {}", loss[0]);
    assert!(
        loss.windows(2).all(|w| w[1] <= w[0]),
        "lazy loss not monotone"
    );
    assert!(*loss.last().unwrap() < 1e-20 * loss[0]);
    let drift = (lam.last().unwrap() - lam[0]).abs() / lam[0];
    eprintln!(
        "lazy: loss0 {:.3e}, final {:.3e}; lambda drift {drift:.3e}",
        loss[0],
        loss.last().unwrap()
    );
    assert!(drift < 1e-3, "lazy lambda drifted by {drift}");

    // 2 / lambda0 < eta < 4 / lambda0: catapult. The loss grows to O(n),
    // the kernel shrinks below 2 / eta, then the loss falls to zero.
    let (loss, lam, eta) = catapult_phase(&be, n, 3.0, 3000);
    let peak = loss.iter().cloned().fold(0.0, f64::max);
    let final_lam = *lam.last().unwrap();
    eprintln!(
        "catapult: loss0 {:.3e}, peak {peak:.3e}, final {:.3e}; lambda0 {:.4}, final {final_lam:.4}, 2/eta {:.4}",
        loss[0],
        loss.last().unwrap(),
        lam[0],
        2.0 / eta
    );
    assert!(loss[1] > loss[0], "catapult loss does not rise at first");
    assert!(peak > 100.0 * loss[0], "peak {peak}");
    assert!(*loss.last().unwrap() < 1e-12 * loss[0]);
    assert!(final_lam < 2.0 / eta, "final lambda {final_lam} >= 2/eta");
    assert!(lam.iter().all(|l| l.is_finite()));

    // eta > 4 / lambda0: the kernel grows and the loss diverges.
    let (loss, lam, _) = catapult_phase(&be, n, 5.0, 3000);
    let last = *loss.last().unwrap();
    assert!(!last.is_finite() || last > 1e30, "no divergence: {last}");
    assert!(lam.len() < 3000, "divergence took the whole run");
    assert!(lam[lam.len() - 1] > lam[0] || !lam[lam.len() - 1].is_finite());
}

// ---------------------------------------------------------------------------
// 3. Kunin et al. (2021): symmetry and conservation laws
// ---------------------------------------------------------------------------

/// A ReLU MLP with biases, SP (multipliers 1), on `b` random inputs.
fn kunin_model(be: &Cpu, sizes: (usize, usize, usize), act: Activation) -> Model<Cpu> {
    let (input, width, output) = sizes;
    let mut spec = MlpSpec::new(input, width, 3, output, act);
    spec.parametrization = Parametrization::Standard;
    assert!(spec.bias);
    let model = Model::init(be, spec, &[21]).unwrap();
    assert!(model
        .layer_scales()
        .iter()
        .all(|s| s.multiplier == 1.0 && s.bias_multiplier == 1.0));
    model
}

/// Sum over classes (rows) of the last-layer bias `[k]` and of each column of
/// the last-layer weight `[k, h]`: the bias sum first, then one per column.
fn class_sums(b: &[f64], w: &[f64], k: usize) -> Vec<f64> {
    let h = w.len() / k;
    let mut out = vec![b.iter().sum()];
    out.extend((0..h).map(|j| (0..k).map(|i| w[i * h + j]).sum::<f64>()));
    out
}

/// Translation symmetry of softmax: z -> z + c 1 leaves cross-entropy
/// unchanged, so d/dz sums to zero over classes for every example (it is
/// (softmax - onehot) / B). The last-layer bias gradient is the sum of these
/// over examples and the weight gradient's column j is their combination
/// with the weights h_j, so both sum to zero over classes, and GD conserves
/// the class sums of the bias and of every weight column.
#[test]
fn kunin_softmax_translation_conserves_class_sums() {
    let be = Cpu::f64();
    let (input, width, k, batch) = (6, 16, 5, 32);
    let mut rng = Rng::new(3);
    let x = tensor(&be, &[batch, input], &randn(&mut rng, batch * input, 1.0));
    let labels: Vec<f64> = (0..batch).map(|_| rng.below(k) as f64).collect();
    let one_hot: Vec<f64> = labels
        .iter()
        .flat_map(|&l| (0..k).map(move |c| if c == l as usize { 1.0 } else { 0.0 }))
        .collect();
    let labels = tensor(&be, &[batch], &labels);
    let one_hot = tensor(&be, &[batch, k], &one_hot);
    let lr = 0.5;
    let steps = 50;
    // Last-layer weight and bias positions in params() order.
    let (wl, bl) = (4, 5);

    let mut model = kunin_model(&be, (input, width, k), Activation::Relu);
    let mut opt = gd(&be, &model, lr);
    let p0 = host_params(&be, &model);
    let sums0 = class_sums(&p0[bl], &p0[wl], k);
    assert!(
        sums0.iter().all(|s| s.abs() > 1e-3),
        "initial sums {sums0:?}"
    );
    let mut losses = Vec::new();
    for t in 0..steps {
        let (loss, g) = gd_step(
            &be,
            &mut model,
            &mut opt,
            &x,
            &labels,
            LossKind::CrossEntropy,
        );
        losses.push(loss);
        let gsums = class_sums(&g[bl], &g[wl], k);
        let gscale = g[wl]
            .iter()
            .chain(&g[bl])
            .fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(gscale > 1e-3, "step {t}: vanishing gradients");
        for s in &gsums {
            assert!(s.abs() < 1e-14, "step {t}: gradient class sum {s}");
        }
        let p = host_params(&be, &model);
        for (s, s0) in class_sums(&p[bl], &p[wl], k).iter().zip(&sums0) {
            assert!((s - s0).abs() < 1e-12, "step {t}: class sum {s} vs {s0}");
        }
    }
    // The conservation is not for want of motion: training went somewhere.
    let p = host_params(&be, &model);
    let moved = p[wl]
        .iter()
        .zip(&p0[wl])
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(moved > 0.1, "last layer moved only {moved}");
    assert!(losses[steps - 1] < 0.75 * losses[0], "losses {losses:?}");

    // Control: squared error on one-hot targets has no such symmetry, and
    // the same sums drift.
    let mut model = kunin_model(&be, (input, width, k), Activation::Relu);
    let mut opt = gd(&be, &model, lr);
    for _ in 0..steps {
        gd_step(&be, &mut model, &mut opt, &x, &one_hot, LossKind::Mse);
    }
    let p = host_params(&be, &model);
    let drift = class_sums(&p[bl], &p[wl], k)
        .iter()
        .zip(&sums0)
        .fold(0.0f64, |m, (s, s0)| m.max((s - s0).abs()));
    assert!(drift > 1e-2, "mse drift only {drift}");
}

/// (|theta_in|^2, |theta_out|^2) of hidden unit i of layer l in `p` (params
/// or gradients, in `params()` order): theta_in is row i of W_l with b_l[i],
/// theta_out is column i of W_{l+1}.
fn unit_norms(p: &[Vec<f64>], sizes: &[usize], l: usize, i: usize) -> (f64, f64) {
    let (fan_in, width) = (sizes[l], sizes[l + 1]);
    let next_out = sizes[l + 2];
    let w_in = &p[2 * l][i * fan_in..(i + 1) * fan_in];
    let b = p[2 * l + 1][i];
    let out: f64 = (0..next_out)
        .map(|r| p[2 * l + 2][r * width + i].powi(2))
        .sum();
    (dot(w_in, w_in) + b * b, out)
}

/// (<theta_in, g_in>, <theta_out, g_out>) of hidden unit i of layer l.
fn unit_inner(p: &[Vec<f64>], g: &[Vec<f64>], sizes: &[usize], l: usize, i: usize) -> (f64, f64) {
    let (fan_in, width) = (sizes[l], sizes[l + 1]);
    let next_out = sizes[l + 2];
    let span = i * fan_in..(i + 1) * fan_in;
    let inner_in =
        dot(&p[2 * l][span.clone()], &g[2 * l][span]) + p[2 * l + 1][i] * g[2 * l + 1][i];
    let inner_out: f64 = (0..next_out)
        .map(|r| p[2 * l + 2][r * width + i] * g[2 * l + 2][r * width + i])
        .sum();
    (inner_in, inner_out)
}

struct RescaleErrors {
    /// Worst |Delta Q - eta^2 (|g_in|^2 - |g_out|^2)| over every (step, unit),
    /// relative to the sum of the magnitudes of the terms of
    /// |theta - eta g|^2 = |theta|^2 - 2 eta <theta, g> + eta^2 |g|^2 for
    /// both groups: the scale of the rounding in computing Delta Q.
    vs_terms: f64,
    /// The same error relative to eta^2 (|g_in|^2 + |g_out|^2), over the
    /// informative (step, unit) pairs.
    vs_signal: f64,
    /// Worst |<theta_in, g_in> - <theta_out, g_out>| relative to
    /// |theta_in||g_in| + |theta_out||g_out|.
    flow: f64,
    /// Number of (step, unit) pairs whose eta^2 term is at least 1e-6 of the
    /// terms: dropping it would be an error 1e8 times the tolerance there.
    informative: usize,
}

fn rescale_law_errors(act: Activation, lr: f64, steps: usize) -> RescaleErrors {
    let be = Cpu::f64();
    let (input, width, k, batch) = (5, 12, 3, 24);
    let mut rng = Rng::new(8);
    let x = tensor(&be, &[batch, input], &randn(&mut rng, batch * input, 1.0));
    let y = tensor(&be, &[batch, k], &randn(&mut rng, batch * k, 1.0));
    let mut model = kunin_model(&be, (input, width, k), act);
    let sizes = model.spec.as_mlp().unwrap().sizes;
    let mut opt = gd(&be, &model, lr);
    let mut e = RescaleErrors {
        vs_terms: 0.0,
        vs_signal: 0.0,
        flow: 0.0,
        informative: 0,
    };
    for _ in 0..steps {
        let before = host_params(&be, &model);
        let (_, g) = gd_step(&be, &mut model, &mut opt, &x, &y, LossKind::Mse);
        let after = host_params(&be, &model);
        for l in 0..sizes.len() - 2 {
            for i in 0..sizes[l + 1] {
                let (in0, out0) = unit_norms(&before, &sizes, l, i);
                let (in1, out1) = unit_norms(&after, &sizes, l, i);
                let (gin, gout) = unit_norms(&g, &sizes, l, i);
                let err = ((in1 - out1) - (in0 - out0) - lr * lr * (gin - gout)).abs();
                let signal = lr * lr * (gin + gout);
                let terms =
                    in0 + out0 + 2.0 * lr * ((in0 * gin).sqrt() + (out0 * gout).sqrt()) + signal;
                e.vs_terms = e.vs_terms.max(err / terms);
                if signal > 1e-6 * terms {
                    e.informative += 1;
                    e.vs_signal = e.vs_signal.max(err / signal);
                }
                let (pin, pout) = unit_inner(&before, &g, &sizes, l, i);
                let flow_scale = (in0 * gin).sqrt() + (out0 * gout).sqrt();
                if flow_scale > 0.0 {
                    e.flow = e.flow.max((pin - pout).abs() / flow_scale);
                }
            }
        }
    }
    e
}

/// Rescale symmetry of ReLU: theta_in -> a theta_in, theta_out -> theta_out / a
/// leaves the net unchanged, so <theta_in, g_in> = <theta_out, g_out>
/// (the gradient-flow conservation of Q = |theta_in|^2 - |theta_out|^2). Under
/// GD, |theta - eta g|^2 = |theta|^2 - 2 eta <theta, g> + eta^2 |g|^2, so the
/// first-order terms cancel and Delta Q = eta^2 (|g_in|^2 - |g_out|^2) exactly.
#[test]
fn kunin_relu_rescale_law_per_step() {
    let e = rescale_law_errors(Activation::Relu, 0.3, 8);
    eprintln!(
        "rescale law: err/terms {:.3e}, err/signal {:.3e}, flow {:.3e}, informative {}",
        e.vs_terms, e.vs_signal, e.flow, e.informative
    );
    // Exact up to rounding: the terms of Delta Q are |theta|^2-sized, so the
    // error relative to the eta^2 signal itself is larger where the signal
    // is small (down to ~1e-6 of |theta|^2 here).
    assert!(e.vs_terms < 1e-14, "per-step law off by {}", e.vs_terms);
    assert!(
        e.vs_signal < 1e-10,
        "per-step law off by {} of the signal",
        e.vs_signal
    );
    assert!(e.flow < 1e-14, "<theta, g> law off by {}", e.flow);
    // 2 hidden layers x 12 units x 8 steps = 192; most carry a visible eta^2 term.
    assert!(
        e.informative > 100,
        "only {} informative unit-steps",
        e.informative
    );

    // Control: tanh has no rescale symmetry and the law fails.
    let e = rescale_law_errors(Activation::Tanh, 0.3, 8);
    assert!(
        e.vs_terms > 1e-4 && e.flow > 1e-2,
        "tanh: {} {}",
        e.vs_terms,
        e.flow
    );
}
