//! Each optimizer's update against steps computed by hand from PyTorch's
//! documented update rules, including per-member learning rates, weight
//! decay and the schedule.

mod common;

use common::{tensor, values};
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::{Cpu, Tensor};

/// Run `grads.len()` updates of a two-member parameter `[2, 2]` starting at
/// `p0`, with member learning rates `lrs`.
fn run(
    hyper: OptimHyper,
    schedule: Schedule,
    lrs: Vec<f64>,
    p0: [f64; 4],
    grads: &[[f64; 4]],
) -> Vec<f64> {
    let be = Cpu::f64();
    let mut p = tensor(&be, &[2, 2], &p0);
    let mut opt = Optimizer::new(&be, hyper, schedule, lrs, &[&p], vec![1.0]).unwrap();
    for g in grads {
        let g: Tensor<Cpu> = tensor(&be, &[2, 2], g);
        opt.step(&be, vec![&mut p], &[g]).unwrap();
    }
    values(&be, &p)
}

fn close(got: &[f64], want: &[f64]) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-14, "got {got:?}, want {want:?}");
    }
}

#[test]
fn gd_with_weight_decay() {
    let mut h = OptimHyper::new(OptimizerKind::Gd);
    h.weight_decay = 0.01;
    let got = run(
        h,
        Schedule::Constant,
        vec![0.1, 0.2],
        [1.0, -2.0, 0.5, 3.0],
        &[[0.5, 0.25, -1.0, 2.0]],
    );
    // p - lr (g + wd p), member 0 with lr 0.1, member 1 with lr 0.2.
    close(
        &got,
        &[
            1.0 - 0.1 * (0.5 + 0.01),
            -2.0 - 0.1 * (0.25 - 0.02),
            0.5 - 0.2 * (-1.0 + 0.005),
            3.0 - 0.2 * (2.0 + 0.03),
        ],
    );
}

#[test]
fn heavy_ball_and_nesterov_momentum() {
    let (g1, g2) = ([1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]);
    let (lr, mu) = (0.1, 0.9);
    let mut h = OptimHyper::new(OptimizerKind::Sgd);
    h.momentum = mu;
    let got = run(h.clone(), Schedule::Constant, vec![lr], [0.0; 4], &[g1, g2]);
    // buf1 = g1, p1 = -lr g1; buf2 = mu g1 + g2, p2 = p1 - lr buf2.
    let want: Vec<f64> = (0..4)
        .map(|i| -lr * g1[i] - lr * (mu * g1[i] + g2[i]))
        .collect();
    close(&got, &want);

    h.nesterov = true;
    let got = run(h, Schedule::Constant, vec![lr], [0.0; 4], &[g1, g2]);
    // Nesterov steps along g + mu * buf.
    let want: Vec<f64> = (0..4)
        .map(|i| {
            let b1 = g1[i];
            let p1 = -lr * (g1[i] + mu * b1);
            let b2 = mu * b1 + g2[i];
            p1 - lr * (g2[i] + mu * b2)
        })
        .collect();
    close(&got, &want);
}

fn adam_by_hand(p0: f64, grads: &[f64], lr: f64, wd: f64, decoupled: bool) -> f64 {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
    for (t, &g) in grads.iter().enumerate() {
        let t = (t + 1) as i32;
        let g = if decoupled {
            p *= 1.0 - lr * wd;
            g
        } else {
            g + wd * p
        };
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        let mhat = m / (1.0 - b1.powi(t));
        let vhat = v / (1.0 - b2.powi(t));
        p -= lr * mhat / (vhat.sqrt() + eps);
    }
    p
}

#[test]
fn adam_and_adamw() {
    let grads = [
        [0.3, -0.2, 1.5, 0.0],
        [0.1, 0.4, -2.0, 1e-3],
        [0.2, 0.2, 0.2, 0.2],
    ];
    let p0 = [1.0, -1.0, 0.5, 2.0];
    for (kind, decoupled) in [(OptimizerKind::Adam, false), (OptimizerKind::AdamW, true)] {
        let mut h = OptimHyper::new(kind);
        h.weight_decay = 0.05;
        let got = run(h, Schedule::Constant, vec![0.01, 0.02], p0, &grads);
        let want: Vec<f64> = (0..4)
            .map(|i| {
                let lr = if i < 2 { 0.01 } else { 0.02 };
                adam_by_hand(
                    p0[i],
                    &grads.iter().map(|g| g[i]).collect::<Vec<_>>(),
                    lr,
                    0.05,
                    decoupled,
                )
            })
            .collect();
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() < 1e-12,
                "{kind:?}: got {got:?}, want {want:?}"
            );
        }
    }
}

#[test]
fn schedule_scales_each_update() {
    let h = OptimHyper::new(OptimizerKind::Gd);
    let sched = Schedule::WarmupCosine {
        warmup: 2,
        total: 4,
        min_factor: 0.0,
    };
    let g = [1.0; 4];
    let got = run(h, sched, vec![1.0], [0.0; 4], &[g, g, g, g]);
    // Factors: 1/2, 1, then cosine over the remaining 2 steps: 1, 1/2.
    let want = -(0.5 + 1.0 + 1.0 + 0.5);
    close(&got, &[want; 4]);
}

#[test]
fn per_layer_scales_multiply_the_learning_rate() {
    let be = Cpu::f64();
    let mut a = tensor(&be, &[1, 2], &[0.0, 0.0]);
    let mut b = tensor(&be, &[1, 2], &[0.0, 0.0]);
    let mut opt = Optimizer::new(
        &be,
        OptimHyper::new(OptimizerKind::Gd),
        Schedule::Constant,
        vec![0.1],
        &[&a, &b],
        vec![1.0, 4.0],
    )
    .unwrap();
    let g = tensor(&be, &[1, 2], &[1.0, 1.0]);
    opt.step(&be, vec![&mut a, &mut b], &[g.clone(), g])
        .unwrap();
    close(&values(&be, &a), &[-0.1, -0.1]);
    close(&values(&be, &b), &[-0.4, -0.4]);
}

/// PyTorch's `torch.optim.RMSprop` (no momentum, not centered, coupled
/// weight decay): `g += wd p; nu = alpha nu + (1 - alpha) g^2;
/// p -= lr g / (sqrt(nu) + eps)`, with no bias correction.
fn rmsprop_by_hand(p0: f64, grads: &[f64], lr: f64, alpha: f64, wd: f64) -> f64 {
    let eps = 1e-8;
    let (mut p, mut nu) = (p0, 0.0);
    for &g in grads {
        let g = g + wd * p;
        nu = alpha * nu + (1.0 - alpha) * g * g;
        p -= lr * g / (nu.sqrt() + eps);
    }
    p
}

#[test]
fn rmsprop() {
    let grads = [
        [0.3, -0.2, 1.5, 0.0],
        [0.1, 0.4, -2.0, 1e-3],
        [0.2, 0.2, 0.2, 0.2],
    ];
    let p0 = [1.0, -1.0, 0.5, 2.0];
    for (alpha, wd) in [(0.99, 0.0), (0.9, 0.05)] {
        let mut h = OptimHyper::new(OptimizerKind::RmsProp);
        h.beta2 = alpha;
        h.weight_decay = wd;
        let got = run(h, Schedule::Constant, vec![0.01, 0.02], p0, &grads);
        let want: Vec<f64> = (0..4)
            .map(|i| {
                let lr = if i < 2 { 0.01 } else { 0.02 };
                let g: Vec<f64> = grads.iter().map(|g| g[i]).collect();
                rmsprop_by_hand(p0[i], &g, lr, alpha, wd)
            })
            .collect();
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() < 1e-12,
                "alpha {alpha}: got {got:?}, want {want:?}"
            );
        }
    }
    // The first step (default alpha 0.99) moves each coordinate by
    // lr / sqrt(1 - alpha) = 10 lr (not by lr, as a bias-corrected Adam
    // would): no correction sneaks in.
    let got = run(
        OptimHyper::new(OptimizerKind::RmsProp),
        Schedule::Constant,
        vec![0.01],
        [0.0; 4],
        &[[1.0, 1.0, 1.0, 1.0]],
    );
    assert!(
        (got[0] + 0.01 / (0.01f64.sqrt() + 1e-8)).abs() < 1e-15,
        "{got:?}"
    );
}

#[test]
fn rmsprop_reads_alpha_and_refuses_momentum() {
    let text = "[optim]\nname = \"rmsprop\"\nalpha = 0.95\nlr = 0.01\n";
    let cfg = lmech::config::Config::from_toml_str(text, &[]).unwrap();
    let r = cfg.resolve().unwrap();
    assert_eq!(r.optim.kind, OptimizerKind::RmsProp);
    assert_eq!(r.optim.beta2, 0.95);
    let bad = "[optim]\nname = \"rmsprop\"\nmomentum = 0.9\n";
    let err = lmech::config::Config::from_toml_str(bad, &[])
        .unwrap()
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(err.contains("optim.momentum"), "{err}");
    let bad = "[optim]\nname = \"rmsprop\"\nalpha = 1.0\n";
    let err = lmech::config::Config::from_toml_str(bad, &[])
        .unwrap()
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(err.contains("optim.alpha"), "{err}");
}
