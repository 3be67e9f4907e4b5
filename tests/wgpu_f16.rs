//! f16 storage on the wgpu backend (`DType::F16`: tensors stored as IEEE
//! half, computed and accumulated in f32) against the CPU f32 reference: every
//! `Backend` op, a few training steps, a Hessian-vector product, and the
//! config errors where f16 is not available.
//!
//! Inputs are rounded to f16 before they go to either backend, so both see
//! the same values and the differences come from f16 outputs (and, across
//! several ops, f16 intermediates). Tolerances, relative to the largest
//! magnitude compared (`max_rel_err`); one f16 rounding is at most
//! 2^-11 = 4.9e-4 relative:
//! - pointwise ops, matmul, loss gradients and loss Hessians, tensor-valued
//!   reductions: 1e-3 (one rounding of an f32 result);
//! - per-member losses: 2e-3 (row losses and their mean both rounded);
//! - host scalars (`sum_sq`, `sum_abs`, read back as f32): f32's
//!   1e-6 * sqrt(K) + 1e-6;
//! - optimizer updates after four steps: 3e-3 (the parameter is rounded
//!   every step); optimizer state is f32, so Adam's moments without weight
//!   decay match f32's 1e-6;
//! - five training steps of a small MLP: losses 1e-2, parameters 1e-2;
//! - Hessian-vector and Gauss-Newton products: 1e-2 (every activation of
//!   the forward, backward and tangent passes is rounded).
//!
//! Seen on lavapipe: at most 4.4e-4 for single ops, 3.2e-4 for losses, 8.8e-4
//! for four optimizer steps (Adam's f32 moments bit for bit), 3.1e-3 for
//! parameters after five training steps, 1.1e-3 for the curvature products.
//!
//! Same skip rules as `wgpu_parity.rs`: without an adapter (or one without
//! SHADER_F16) a test fails when `CI` is set (CI's lavapipe has it) and is
//! skipped with a printed notice otherwise.

mod common;

use common::wgpu_pair::*;
use common::{randn, temp_dir};
use lmech::backend::device::Device;
use lmech::backend::{AdamHyper, SgdHyper};
use lmech::config::Config;
use lmech::curvature::LossOnData;
use lmech::nn::activation::{Activation, ALL_ACTIVATIONS};
use lmech::nn::loss::LossKind;
use lmech::optim::OptimizerKind;
use lmech::rng::Rng;
use lmech::tape::Curvature;
use lmech::train::{train, train_ensemble, Member, RunOptions};
use lmech::{Backend, Cpu, DType, Error, Tensor, Wgpu};

macro_rules! gpu_or_skip {
    () => {
        match gpu(DType::F16) {
            Some(be) => be,
            None => return,
        }
    };
}

/// `x` rounded to the nearest f16.
fn r16(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| half::f16::from_f64(v).to_f64()).collect()
}

/// The same f16-rounded values on both backends.
fn pair(g: &Wgpu, shape: &[usize], data: &[f64]) -> Pair {
    pair_rounded(g, shape, data, r16)
}

/// A GPU result as the input of a next op on both backends.
fn carry(g: &Wgpu, t: &Tensor<Wgpu>) -> Pair {
    Pair {
        cpu: up(&Cpu::f32(), t.shape(), &down(g, t)),
        gpu: t.clone(),
    }
}

const POINTWISE: f64 = 1e-3;

#[test]
fn f16_storage_is_half_the_bytes_and_rounds_to_nearest() {
    let g = gpu_or_skip!();
    assert_eq!(g.dtype(), DType::F16);
    assert!(g.describe().contains("f16"), "{}", g.describe());
    // Odd lengths exercise the padding to whole 4-byte words.
    for n in [1, 2, 7, 1001] {
        let v: Vec<f64> = (0..n).map(|i| (i as f64 - 3.3) * 0.731).collect();
        assert_eq!(down(&g, &up(&g, &[n], &v)), r16(&v), "{n} values");
    }
    assert!(down(&g, &g.zeros(&[3, 7]).unwrap())
        .iter()
        .all(|&x| x == 0.0));
    assert!(down(&g, &g.zeros(&[0]).unwrap()).is_empty());
    // Copy-on-write copies f16 bytes, not f32 ones.
    let x = pair(&g, &[5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
    let mut y = up(&g, &[5], &[0.5; 5]);
    let kept = y.clone();
    g.axpy(&mut y, 2.0, &x.gpu).unwrap();
    assert_eq!(down(&g, &kept), vec![0.5; 5]);
    assert_eq!(down(&g, &y), vec![2.5, 4.5, 6.5, 8.5, 10.5]);
}

#[test]
fn matmul_matches_cpu_in_f16() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let mut rng = Rng::new(1);
    for &(m, k, n) in &[(1, 1, 1), (17, 33, 5), (130, 70, 257)] {
        for &(ea, eb) in &[(1, 1), (3, 3), (1, 3), (3, 1)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let sa = if ta { [ea, k, m] } else { [ea, m, k] };
                let sb = if tb { [eb, n, k] } else { [eb, k, n] };
                let a = pair(&g, &sa, &randn(&mut rng, ea * m * k, 1.0));
                let b = pair(&g, &sb, &randn(&mut rng, eb * k * n, 1.0));
                let want = cpu.matmul(&a.cpu, ta, &b.cpu, tb, 0.5).unwrap();
                let got = g.matmul(&a.gpu, ta, &b.gpu, tb, 0.5).unwrap();
                close(
                    &format!("matmul {m}x{k}x{n} E {ea},{eb} t {ta},{tb}"),
                    &g,
                    &got,
                    &want,
                    POINTWISE,
                );
            }
        }
    }
}

#[test]
fn pointwise_ops_match_cpu_in_f16() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let mut rng = Rng::new(2);
    let (e, rows, n) = (3, 37, 29);
    let len = e * rows * n;
    let z = pair(&g, &[e, rows, n], &randn(&mut rng, len, 3.0));
    let bias = pair(&g, &[e, n], &randn(&mut rng, e * n, 1.0));
    let shared_bias = pair(&g, &[n], &randn(&mut rng, n, 1.0));
    let gp = pair(&g, &[e, rows, n], &randn(&mut rng, len, 1.0));
    let gd = pair(&g, &[e, rows, n], &randn(&mut rng, len, 1.0));
    let xd = pair(&g, &[e, rows, n], &randn(&mut rng, len, 1.0));
    for act in ALL_ACTIVATIONS {
        for (name, b) in [
            ("bias", Some(&bias)),
            ("shared bias", Some(&shared_bias)),
            ("no bias", None),
        ] {
            let (cpre, cpost) = cpu.bias_act(&z.cpu, b.map(|b| &b.cpu), 0.6, act).unwrap();
            let (gpre, gpost) = g.bias_act(&z.gpu, b.map(|b| &b.gpu), 0.6, act).unwrap();
            close(&format!("{act:?} {name} pre"), &g, &gpre, &cpre, POINTWISE);
            close(
                &format!("{act:?} {name} post"),
                &g,
                &gpost,
                &cpost,
                POINTWISE,
            );
        }
        // The backward ops take the f16 pre- and post-activations on both.
        let (gpre, gpost) = g.bias_act(&z.gpu, Some(&bias.gpu), 0.6, act).unwrap();
        let (pre, post) = (carry(&g, &gpre), carry(&g, &gpost));
        let want = cpu.act_backward(&pre.cpu, &post.cpu, &gp.cpu, act).unwrap();
        let got = g.act_backward(&pre.gpu, &post.gpu, &gp.gpu, act).unwrap();
        close(&format!("{act:?} backward"), &g, &got, &want, POINTWISE);
        let want = cpu
            .act_backward_tangent(&pre.cpu, &post.cpu, &gp.cpu, &gd.cpu, &xd.cpu, act)
            .unwrap();
        let got = g
            .act_backward_tangent(&pre.gpu, &post.gpu, &gp.gpu, &gd.gpu, &xd.gpu, act)
            .unwrap();
        close(
            &format!("{act:?} backward tangent"),
            &g,
            &got,
            &want,
            POINTWISE,
        );
    }
    let s = pair(&g, &[e], &[0.5, -2.0, 3.0]);
    let want = cpu.scale_members(&z.cpu, &s.cpu).unwrap();
    let got = g.scale_members(&z.gpu, &s.gpu).unwrap();
    close("scale_members", &g, &got, &want, POINTWISE);
    let mut yc = z.cpu.clone();
    let mut yg = z.gpu.clone();
    cpu.axpy(&mut yc, -0.3, &gp.cpu).unwrap();
    g.axpy(&mut yg, -0.3, &gp.gpu).unwrap();
    close("axpy", &g, &yg, &yc, POINTWISE);
}

#[test]
fn reductions_match_cpu_in_f16() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let mut rng = Rng::new(4);
    for &(e, rows, n) in &[(3, 11, 4), (2, 1000, 33), (1, 1, 1), (2, 300, 1000)] {
        let x = pair(&g, &[e, rows, n], &randn(&mut rng, e * rows * n, 1.0));
        let y = pair(&g, &[e, rows, n], &randn(&mut rng, e * rows * n, 1.0));
        let what = format!("[{e}, {rows}, {n}]");
        close(
            &format!("sum_rows {what}"),
            &g,
            &g.sum_rows(&x.gpu, 0.5).unwrap(),
            &cpu.sum_rows(&x.cpu, 0.5).unwrap(),
            POINTWISE,
        );
        close(
            &format!("row_sq_norms {what}"),
            &g,
            &g.row_sq_norms(&x.gpu).unwrap(),
            &cpu.row_sq_norms(&x.cpu).unwrap(),
            POINTWISE,
        );
        close(
            &format!("dot_members {what}"),
            &g,
            &g.dot_members(&x.gpu, &y.gpu).unwrap(),
            &cpu.dot_members(&x.cpu, &y.cpu).unwrap(),
            POINTWISE,
        );
        host_reductions_track_cpu(&g, &x, r16, &what);
    }
    // Host scalars are f32: a squared norm past f16's 65504 comes back whole.
    let big = pair(&g, &[1, 4096], &vec![10.0; 4096]);
    assert_eq!(g.sum_sq(&big.gpu).unwrap(), vec![409600.0]);
}

#[test]
fn losses_and_loss_hessians_match_cpu_in_f16() {
    let g = gpu_or_skip!();
    losses_track_cpu(&g, r16, 2e-3, POINTWISE);
}

#[test]
fn optimizer_updates_match_cpu_with_f32_state() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let mut rng = Rng::new(6);
    let (e, n) = (2, 777);
    let p0 = randn(&mut rng, e * n, 1.0);
    let grads: Vec<Vec<f64>> = (0..4).map(|_| randn(&mut rng, e * n, 1.0)).collect();
    let lr: &[f64] = &[0.05, 0.2];
    for (momentum, nesterov, wd) in [(0.0, false, 0.01), (0.9, false, 0.0), (0.9, true, 0.01)] {
        let mut p = pair(&g, &[e, n], &p0);
        let hp = SgdHyper {
            lr,
            momentum,
            nesterov,
            weight_decay: wd,
        };
        sgd_steps_track_cpu(&g, &mut p, &grads, &hp, r16, 3e-3);
    }
    // Gradients of 1e-5 square to 1e-10, below f16's smallest subnormal
    // (6e-8): Adam's moments must be f32 for the steps to stay lr-sized.
    for (decoupled, wd, scale) in [(false, 0.0, 1.0), (true, 0.1, 1.0), (false, 0.0, 1e-5)] {
        let mut p = pair(&g, &[e, n], &p0);
        let mut m = Pair {
            cpu: cpu.zeros(&[e, n]).unwrap(),
            gpu: g.zeros(&[e, n]).unwrap(),
        };
        let mut v = Pair {
            cpu: cpu.zeros(&[e, n]).unwrap(),
            gpu: g.zeros(&[e, n]).unwrap(),
        };
        for (i, gr) in grads.iter().enumerate() {
            let hp = AdamHyper {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: wd,
                decoupled,
                step: i as u64 + 1,
            };
            let gr: Vec<f64> = gr.iter().map(|x| x * scale).collect();
            let gr = pair(&g, &[e, n], &gr);
            cpu.adam_update(&mut p.cpu, &gr.cpu, &mut m.cpu, &mut v.cpu, &hp)
                .unwrap();
            g.adam_update(&mut p.gpu, &gr.gpu, &mut m.gpu, &mut v.gpu, &hp)
                .unwrap();
        }
        let what = format!("adam decoupled {decoupled} wd {wd} gradient scale {scale}");
        close(&what, &g, &p.gpu, &p.cpu, 3e-3);
        // Without weight decay the moments see the same gradients: f32 exact.
        let state_tol = if wd == 0.0 { 1e-6 } else { 3e-3 };
        close(&format!("{what} m"), &g, &m.gpu, &m.cpu, state_tol);
        close(&format!("{what} v"), &g, &v.gpu, &v.cpu, state_tol);
    }
}

#[test]
fn training_steps_in_f16_track_cpu_f32() {
    let g = gpu_or_skip!();
    let cases = [
        (
            OptimizerKind::Sgd,
            LossKind::CrossEntropy,
            Activation::Tanh,
            0.9,
        ),
        (
            OptimizerKind::AdamW,
            LossKind::MseMean,
            Activation::Relu,
            0.0,
        ),
    ];
    training_steps_track_cpu(&g, r16, &cases, 1e-2, false);
}

#[test]
fn hessian_products_in_f16_track_cpu_f32() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let (mc, mg) = models(&g, &[5, 16, 12, 3], Activation::Tanh, 1, r16);
    let mut rng = Rng::new(11);
    let (mut cc, mut cw) = (Vec::new(), Vec::new());
    for rows in [16, 16, 8] {
        let x = r16(&randn(&mut rng, rows * 5, 1.0));
        let y: Vec<f64> = (0..rows).map(|i| (i % 3) as f64).collect();
        cc.push((up(&cpu, &[rows, 5], &x), up(&cpu, &[rows], &y)));
        cw.push((up(&g, &[rows, 5], &x), up(&g, &[rows], &y)));
    }
    let lc = LossOnData::new(&cpu, &mc, LossKind::CrossEntropy, cc).unwrap();
    let lg = LossOnData::new(&g, &mg, LossKind::CrossEntropy, cw).unwrap();
    let v = r16(&randn(&mut rng, lc.dim(), 1.0));
    for mode in [Curvature::Hessian, Curvature::GaussNewton] {
        let want = lc.product(&v, mode).unwrap();
        let got = lg.product(&v, mode).unwrap();
        close_vec(&format!("{mode:?} product"), &got, &want, 1e-2);
    }
}

fn config(dtype: &str) -> Config {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/teacher_student_sgd.toml");
    Config::load(
        &path,
        &[
            format!("dtype=\"{dtype}\""),
            "train.steps=2".into(),
            "model.width=8".into(),
        ],
    )
    .unwrap()
}

fn assert_dtype_error(e: Error, mention: &str) {
    assert!(
        matches!(&e, Error::Config { key, .. } if key == "dtype"),
        "{e}"
    );
    assert!(e.to_string().contains(mention), "{e}");
}

#[test]
fn f16_on_the_cpu_is_a_config_error_naming_dtype() {
    let dir = temp_dir("f16_cpu");
    let cfg = config("f16");
    assert_eq!(cfg.resolve().unwrap().dtype, DType::F16);
    let opts = RunOptions {
        out: dir.join("run"),
        device: Device::Cpu,
        progress: false,
    };
    let Err(e) = train(&cfg, &opts) else {
        panic!("the CPU trained in f16");
    };
    assert_dtype_error(e, "wgpu");
    assert!(!dir.join("run").join("metrics.jsonl").exists());
    let members = [Member {
        cfg,
        out: dir.join("member"),
    }];
    let Err(e) = train_ensemble(&members, Device::Cpu, false, &mut |_, _| Ok(())) else {
        panic!("the CPU trained an f16 ensemble");
    };
    assert_dtype_error(e, "wgpu");
    // A Cpu made for f16 directly errs on every op instead of panicking.
    let be = Cpu::new(DType::F16);
    assert!(be.zeros(&[2]).is_err());
    assert!(be.from_f64(&[1], &[1.0]).is_err());
    let Err(e) = config("f8").resolve() else {
        panic!("f8 accepted");
    };
    assert_dtype_error(e, "f16");
}

#[test]
fn f16_trains_end_to_end_on_wgpu() {
    let _g = gpu_or_skip!();
    let dir = temp_dir("f16_wgpu_run");
    let cfg = config("f16");
    let opts = RunOptions {
        out: dir.join("run"),
        device: Device::Wgpu,
        progress: false,
    };
    let report = train(&cfg, &opts).unwrap();
    assert!(!report.diverged());
    assert!(report.final_metrics.values().all(|v: &f64| v.is_finite()));
}

#[test]
fn auto_takes_a_wgpu_adapter_for_f16_storage() {
    let _g = gpu_or_skip!();
    let (device, why) = lmech::backend::device::DeviceRequest::Auto
        .resolve_for(DType::F16)
        .unwrap();
    assert_eq!(device, Device::Wgpu, "{why}");
}
