//! The wgpu backend against the CPU f32 reference: every `Backend` op
//! (each activation, transposes and ensemble broadcasting, each loss, every
//! optimizer), then what is built on them — training steps, Hessian-vector
//! products, a Lanczos sharpness estimate, per-sample gradient norms and the
//! empirical NTK — and the command line on `--device wgpu`.
//!
//! CI runs these on Mesa's lavapipe (a Vulkan driver on the CPU). Without an
//! adapter a test fails when `CI` is set and is skipped with a printed notice
//! otherwise.
//!
//! Tolerances (relative to the largest magnitude in the compared tensors,
//! `max_rel_err`), all from f32 rounding on two different summation orders:
//! - pointwise ops, loss gradients and loss Hessians: 1e-5 (the driver's
//!   tanh and exp differ from the CPU's by a few ulp, lavapipe's tanh by up
//!   to ~4e-7; WGSL has no erf, GELU's is a 1.2e-7 approximation);
//! - matmul and reductions over K terms: 1e-6 * sqrt(K) + 1e-6;
//! - optimizer updates: 1e-6 after four steps;
//! - training (5 steps), gradients, HVPs, per-sample norms, NTK: 1e-5;
//! - the top Hessian eigenvalues from Lanczos: 1e-3 relative.
//!
//! Seen on lavapipe: at most 1e-6 pointwise, 2.5e-7 matmul, 6e-7 for the
//! model-level quantities, 0 for the optimizers.

mod common;

use common::wgpu_pair::*;
use common::{randn, temp_dir};
use lmech::backend::device::Device;
use lmech::backend::{AdamHyper, SgdHyper};
use lmech::curvature::{flatten, LossOnData};
use lmech::eos::{run_eos, EosOptions};
use lmech::linalg::{lanczos, LanczosOptions};
use lmech::nn::activation::{Activation, ALL_ACTIVATIONS};
use lmech::nn::loss::LossKind;
use lmech::observe::ntk::empirical_ntk;
use lmech::observe::per_sample::per_sample_norms;
use lmech::optim::OptimizerKind;
use lmech::rng::Rng;
use lmech::tape::Curvature;
use lmech::{Backend, Cpu, DType, Error, Tensor, Wgpu};
use std::process::Command;

macro_rules! gpu_or_skip {
    () => {
        match gpu(DType::F32) {
            Some(be) => be,
            None => return,
        }
    };
}

fn pair(g: &Wgpu, shape: &[usize], data: &[f64]) -> Pair {
    pair_rounded(g, shape, data, <[f64]>::to_vec)
}

#[test]
fn f64_is_refused_with_a_config_error() {
    let Err(e) = Wgpu::new(DType::F64) else {
        panic!("wgpu accepted f64");
    };
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(e.to_string().contains("f32"), "{e}");
}

#[test]
fn upload_download_and_zeros_round_trip() {
    let g = gpu_or_skip!();
    let v: Vec<f64> = (0..1000).map(|i| i as f64 * 0.25 - 7.0).collect();
    assert_eq!(down(&g, &up(&g, &[10, 100], &v)), v);
    assert!(down(&g, &g.zeros(&[3, 7]).unwrap())
        .iter()
        .all(|&x| x == 0.0));
    assert!(down(&g, &g.zeros(&[0]).unwrap()).is_empty());
    assert!(g.from_f64(&[2, 2], &[1.0]).is_err());
}

#[test]
fn matmul_matches_cpu_at_odd_sizes_with_transposes_and_broadcast() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let mut rng = Rng::new(1);
    for &(m, k, n) in &[
        (1, 1, 1),
        (17, 33, 5),
        (130, 70, 257),
        (64, 128, 64),
        (3, 300, 2),
    ] {
        for &(ea, eb) in &[(1, 1), (3, 3), (1, 3), (3, 1)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let ashape = |e: usize| {
                        let (r, c) = if ta { (k, m) } else { (m, k) };
                        if e == 1 && ea == eb {
                            vec![r, c]
                        } else {
                            vec![e, r, c]
                        }
                    };
                    let bshape = |e: usize| {
                        let (r, c) = if tb { (n, k) } else { (k, n) };
                        if e == 1 && ea == eb {
                            vec![r, c]
                        } else {
                            vec![e, r, c]
                        }
                    };
                    let a = randn(&mut rng, ea * m * k, 1.0);
                    let b = randn(&mut rng, eb * k * n, 1.0);
                    let (sa, sb) = (ashape(ea), bshape(eb));
                    let want = cpu
                        .matmul(&up(&cpu, &sa, &a), ta, &up(&cpu, &sb, &b), tb, 0.7)
                        .unwrap();
                    let got = g
                        .matmul(&up(&g, &sa, &a), ta, &up(&g, &sb, &b), tb, 0.7)
                        .unwrap();
                    close(
                        &format!("matmul {m}x{k}x{n} e=({ea},{eb}) ta={ta} tb={tb}"),
                        &g,
                        &got,
                        &want,
                        sum_tol(k),
                    );
                }
            }
        }
    }
    let a = g.zeros(&[2, 3]).unwrap();
    let b = g.zeros(&[4, 5]).unwrap();
    assert!(g.matmul(&a, false, &b, false, 1.0).is_err());
}

#[test]
fn pointwise_ops_match_cpu_for_every_activation() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let mut rng = Rng::new(2);
    let (e, rows, n) = (3, 37, 29);
    let len = e * rows * n;
    // Wide inputs reach the activations' tails (softplus, GELU, tanh).
    let z = pair(&g, &[e, rows, n], &randn(&mut rng, len, 3.0));
    let bias = pair(&g, &[e, n], &randn(&mut rng, e * n, 1.0));
    let shared_bias = pair(&g, &[n], &randn(&mut rng, n, 1.0));
    let gp = pair(&g, &[e, rows, n], &randn(&mut rng, len, 1.0));
    let gd = pair(&g, &[e, rows, n], &randn(&mut rng, len, 1.0));
    let xd = pair(&g, &[e, rows, n], &randn(&mut rng, len, 1.0));
    let tol = 1e-5;
    for act in ALL_ACTIVATIONS {
        for (name, b) in [
            ("bias", Some(&bias)),
            ("shared bias", Some(&shared_bias)),
            ("no bias", None),
        ] {
            let (cpre, cpost) = cpu.bias_act(&z.cpu, b.map(|b| &b.cpu), 0.6, act).unwrap();
            let (gpre, gpost) = g.bias_act(&z.gpu, b.map(|b| &b.gpu), 0.6, act).unwrap();
            close(&format!("{act:?} {name} pre"), &g, &gpre, &cpre, tol);
            close(&format!("{act:?} {name} post"), &g, &gpost, &cpost, tol);
        }
        let (cpre, cpost) = cpu.bias_act(&z.cpu, Some(&bias.cpu), 0.6, act).unwrap();
        let (gpre, gpost) = g.bias_act(&z.gpu, Some(&bias.gpu), 0.6, act).unwrap();
        let want = cpu.act_backward(&cpre, &cpost, &gp.cpu, act).unwrap();
        let got = g.act_backward(&gpre, &gpost, &gp.gpu, act).unwrap();
        close(&format!("{act:?} backward"), &g, &got, &want, tol);
        let want = cpu
            .act_backward_tangent(&cpre, &cpost, &gp.cpu, &gd.cpu, &xd.cpu, act)
            .unwrap();
        let got = g
            .act_backward_tangent(&gpre, &gpost, &gp.gpu, &gd.gpu, &xd.gpu, act)
            .unwrap();
        close(&format!("{act:?} backward tangent"), &g, &got, &want, tol);
    }
    let bad = pair(&g, &[e, n + 1], &vec![0.0; e * (n + 1)]);
    assert!(g
        .bias_act(&z.gpu, Some(&bad.gpu), 1.0, Activation::Tanh)
        .is_err());

    let s = pair(&g, &[e], &[0.5, -2.0, 3.0]);
    let want = cpu.scale_members(&z.cpu, &s.cpu).unwrap();
    let got = g.scale_members(&z.gpu, &s.gpu).unwrap();
    close("scale_members", &g, &got, &want, tol);
}

#[test]
fn axpy_is_in_place_and_copy_on_write() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let mut rng = Rng::new(3);
    let y0 = randn(&mut rng, 1000, 1.0);
    let x = pair(&g, &[10, 100], &randn(&mut rng, 1000, 1.0));
    let mut y = pair(&g, &[10, 100], &y0);
    // A tape's copy of y shares its buffer and must keep the old values.
    let kept = y.gpu.clone();
    cpu.axpy(&mut y.cpu, -0.3, &x.cpu).unwrap();
    g.axpy(&mut y.gpu, -0.3, &x.gpu).unwrap();
    close("axpy", &g, &y.gpu, &y.cpu, 1e-5);
    assert_eq!(down(&g, &kept), down(&Cpu::f32(), &up(&cpu, &[1000], &y0)));
    // Unshared, the update lands in the same buffer.
    g.axpy(&mut y.gpu, 1.0, &x.gpu).unwrap();
    cpu.axpy(&mut y.cpu, 1.0, &x.cpu).unwrap();
    close("axpy again", &g, &y.gpu, &y.cpu, 1e-5);
    assert!(g.axpy(&mut y.gpu, 1.0, &g.zeros(&[3]).unwrap()).is_err());
}

#[test]
fn launches_past_65535_workgroups_cover_every_element() {
    let g = gpu_or_skip!();
    // 2^24 + 7 elements need more than 65535 workgroups of 256: the grid
    // folds into two dimensions.
    let n = (1 << 24) + 7;
    let x: Vec<f64> = (0..n).map(|i| (i % 1000) as f64).collect();
    let xt = up(&g, &[1, n], &x);
    let s = up(&g, &[1], &[2.0]);
    let y = down(&g, &g.scale_members(&xt, &s).unwrap());
    assert!(y.iter().zip(&x).all(|(a, b)| *a == 2.0 * b));
}

#[test]
fn reductions_match_cpu() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let mut rng = Rng::new(4);
    for &(e, rows, n) in &[(3, 11, 4), (2, 1000, 33), (1, 1, 1), (2, 300, 1000)] {
        let data = randn(&mut rng, e * rows * n, 1.0);
        let x = pair(&g, &[e, rows, n], &data);
        let y = pair(&g, &[e, rows, n], &randn(&mut rng, e * rows * n, 1.0));
        let what = format!("[{e}, {rows}, {n}]");
        let want = cpu.sum_rows(&x.cpu, 0.5).unwrap();
        close(
            &format!("sum_rows {what}"),
            &g,
            &g.sum_rows(&x.gpu, 0.5).unwrap(),
            &want,
            sum_tol(rows),
        );
        let want = cpu.row_sq_norms(&x.cpu).unwrap();
        close(
            &format!("row_sq_norms {what}"),
            &g,
            &g.row_sq_norms(&x.gpu).unwrap(),
            &want,
            sum_tol(n),
        );
        let per = rows * n;
        let want = cpu.dot_members(&x.cpu, &y.cpu).unwrap();
        close(
            &format!("dot_members {what}"),
            &g,
            &g.dot_members(&x.gpu, &y.gpu).unwrap(),
            &want,
            sum_tol(per),
        );
        host_reductions_track_cpu(&g, &x, <[f64]>::to_vec, &what);
    }
    // Rank 2 and rank 1 read as one member.
    let x = pair(&g, &[5, 6], &randn(&mut rng, 30, 1.0));
    close(
        "sum_rows rank 2",
        &g,
        &g.sum_rows(&x.gpu, 1.0).unwrap(),
        &cpu.sum_rows(&x.cpu, 1.0).unwrap(),
        1e-5,
    );
    close_vec(
        "sum_sq rank 2",
        &g.sum_sq(&x.gpu).unwrap(),
        &cpu.sum_sq(&x.cpu).unwrap(),
        1e-5,
    );
    // Ties resolve to the first maximum, as on the CPU.
    let f = pair(&g, &[1, 2, 3], &[1.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
    let l = pair(&g, &[2], &[0.0, 2.0]);
    assert_eq!(g.count_correct(&f.gpu, &l.gpu).unwrap(), vec![1.0]);
}

#[test]
fn losses_and_loss_hessians_match_cpu() {
    let g = gpu_or_skip!();
    let (e, rows, k) = (3, 50, 10);
    losses_track_cpu(&g, <[f64]>::to_vec, sum_tol(rows * k), 1e-5);
    let mut rng = Rng::new(5);
    let f = pair(&g, &[e, rows, k], &randn(&mut rng, e * rows * k, 3.0));
    let short = pair(&g, &[rows - 1], &vec![0.0; rows - 1]);
    assert!(g.loss(LossKind::CrossEntropy, &f.gpu, &short.gpu).is_err());
}

#[test]
fn optimizer_updates_match_cpu() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let mut rng = Rng::new(6);
    let (e, n) = (2, 777);
    let p0 = randn(&mut rng, e * n, 1.0);
    let grads: Vec<Vec<f64>> = (0..4).map(|_| randn(&mut rng, e * n, 1.0)).collect();
    let lrs: [&[f64]; 2] = [&[0.05, 0.2], &[0.1]];
    for lr in lrs {
        for (momentum, nesterov, wd) in [
            (0.0, false, 0.0),
            (0.0, false, 0.01),
            (0.9, false, 0.0),
            (0.9, true, 0.01),
        ] {
            let mut p = pair(&g, &[e, n], &p0);
            let tape_copy = p.gpu.clone();
            let hp = SgdHyper {
                lr,
                momentum,
                nesterov,
                weight_decay: wd,
            };
            sgd_steps_track_cpu(&g, &mut p, &grads, &hp, <[f64]>::to_vec, 1e-6);
            let what = format!("sgd lr {lr:?} momentum {momentum} nesterov {nesterov} wd {wd}");
            assert_eq!(
                down(&g, &tape_copy),
                down(&cpu, &up(&cpu, &[e, n], &p0)),
                "{what}: copy-on-write"
            );
        }
        for (decoupled, wd) in [(false, 0.0), (false, 0.01), (true, 0.1)] {
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
                let gr = pair(&g, &[e, n], gr);
                cpu.adam_update(&mut p.cpu, &gr.cpu, &mut m.cpu, &mut v.cpu, &hp)
                    .unwrap();
                g.adam_update(&mut p.gpu, &gr.gpu, &mut m.gpu, &mut v.gpu, &hp)
                    .unwrap();
            }
            let what = format!("adam lr {lr:?} decoupled {decoupled} wd {wd}");
            close(&what, &g, &p.gpu, &p.cpu, 1e-6);
            close(&format!("{what} m"), &g, &m.gpu, &m.cpu, 1e-6);
            close(&format!("{what} v"), &g, &v.gpu, &v.cpu, 1e-6);
        }
    }
    let mut p = g.zeros(&[3, 4]).unwrap();
    let gr = g.zeros(&[3, 4]).unwrap();
    let mut b = g.zeros(&[0]).unwrap();
    let hp = SgdHyper {
        lr: &[0.1, 0.2],
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    };
    assert!(
        g.sgd_update(&mut p, &gr, &mut b, &hp).is_err(),
        "2 learning rates for 3 members"
    );
}

#[test]
fn training_steps_match_cpu() {
    let g = gpu_or_skip!();
    let cases = [
        (
            OptimizerKind::Sgd,
            LossKind::CrossEntropy,
            Activation::Tanh,
            0.9,
        ),
        (OptimizerKind::Gd, LossKind::Mse, Activation::Gelu, 0.0),
        (
            OptimizerKind::AdamW,
            LossKind::MseMean,
            Activation::Relu,
            0.0,
        ),
    ];
    training_steps_track_cpu(&g, <[f64]>::to_vec, &cases, 1e-5, true);
}

type Chunks<B> = Vec<(Tensor<B>, Tensor<B>)>;

/// 40 examples in chunks of 16, 16 and 8 on both backends.
fn chunks(g: &Wgpu, din: usize, k: usize) -> (Chunks<Cpu>, Chunks<Wgpu>) {
    let cpu = Cpu::f32();
    let mut rng = Rng::new(11);
    let (mut c, mut w) = (Vec::new(), Vec::new());
    for rows in [16, 16, 8] {
        let x = randn(&mut rng, rows * din, 1.0);
        let y: Vec<f64> = (0..rows).map(|i| (i % k) as f64).collect();
        c.push((up(&cpu, &[rows, din], &x), up(&cpu, &[rows], &y)));
        w.push((up(g, &[rows, din], &x), up(g, &[rows], &y)));
    }
    (c, w)
}

#[test]
fn hessian_and_gauss_newton_products_match_cpu() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    for act in [Activation::Tanh, Activation::Softplus, Activation::Gelu] {
        let (mc, mg) = models(&g, &[5, 16, 12, 3], act, 1, <[f64]>::to_vec);
        let (cc, cw) = chunks(&g, 5, 3);
        let lc = LossOnData::new(&cpu, &mc, LossKind::CrossEntropy, cc).unwrap();
        let lg = LossOnData::new(&g, &mg, LossKind::CrossEntropy, cw).unwrap();
        let mut rng = Rng::new(12);
        let v = randn(&mut rng, lc.dim(), 1.0);
        for mode in [Curvature::Hessian, Curvature::GaussNewton] {
            let want = lc.product(&v, mode).unwrap();
            let got = lg.product(&v, mode).unwrap();
            close_vec(&format!("{act:?} {mode:?} product"), &got, &want, 1e-5);
        }
        let (l1, g1) = lc.gradient().unwrap();
        let (l2, g2) = lg.gradient().unwrap();
        assert!(
            (l1 - l2).abs() < 1e-5 * l1.abs(),
            "{act:?} loss {l1} vs {l2}"
        );
        close_vec(
            &format!("{act:?} gradient"),
            &flatten(&g, &g2).unwrap(),
            &flatten(&cpu, &g1).unwrap(),
            1e-5,
        );
    }
}

#[test]
fn lanczos_sharpness_matches_cpu() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let (mc, mg) = models(&g, &[5, 16, 12, 3], Activation::Tanh, 1, <[f64]>::to_vec);
    let (cc, cw) = chunks(&g, 5, 3);
    let lc = LossOnData::new(&cpu, &mc, LossKind::CrossEntropy, cc).unwrap();
    let lg = LossOnData::new(&g, &mg, LossKind::CrossEntropy, cw).unwrap();
    let opts = LanczosOptions {
        k: 2,
        max_iter: 60,
        tol: 1e-4,
        seed: 1,
        start: None,
    };
    let mut op = |v: &[f64]| lc.product(v, Curvature::Hessian);
    let want = lanczos(lc.dim(), &mut op, &opts).unwrap();
    let mut op = |v: &[f64]| lg.product(v, Curvature::Hessian);
    let got = lanczos(lg.dim(), &mut op, &opts).unwrap();
    assert!(want.converged && got.converged);
    for (a, b) in got.values.iter().zip(&want.values) {
        assert!(
            (a - b).abs() < 1e-3 * b.abs(),
            "top eigenvalues {:?} vs {:?}",
            got.values,
            want.values
        );
    }
}

#[test]
fn per_sample_norms_and_ntk_match_cpu() {
    let g = gpu_or_skip!();
    let cpu = Cpu::f32();
    let (mc, mg) = models(&g, &[4, 9, 7, 3], Activation::Tanh, 1, <[f64]>::to_vec);
    let mut rng = Rng::new(13);
    let n = 12;
    let x = randn(&mut rng, n * 4, 1.0);
    let y: Vec<f64> = (0..n).map(|i| (i % 3) as f64).collect();
    let (xc, xg) = (up(&cpu, &[n, 4], &x), up(&g, &[n, 4], &x));
    let (yc, yg) = (up(&cpu, &[n], &y), up(&g, &[n], &y));
    let want = per_sample_norms(&cpu, &mc, &xc, &yc, LossKind::CrossEntropy).unwrap();
    let got = per_sample_norms(&g, &mg, &xg, &yg, LossKind::CrossEntropy).unwrap();
    close_vec("per-sample norms", &got.total, &want.total, 1e-5);
    for (l, (a, b)) in got.per_layer.iter().zip(&want.per_layer).enumerate() {
        close_vec(&format!("layer {l} per-sample norms"), a, b, 1e-5);
    }
    assert!((got.mean_grad_sq - want.mean_grad_sq).abs() < 1e-5 * want.mean_grad_sq);
    let want = empirical_ntk(&cpu, &mc, &xc).unwrap();
    let got = empirical_ntk(&g, &mg, &xg).unwrap();
    close_vec("NTK trace", &got.trace, &want.trace, 1e-5);
    for (k, (a, b)) in got.per_output.iter().zip(&want.per_output).enumerate() {
        close_vec(&format!("NTK output {k}"), a, b, 1e-5);
    }
}

fn lmech(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lmech"))
        .args(args)
        .output()
        .expect("cannot start the lmech binary")
}

#[test]
fn cli_lists_the_adapter_and_trains_on_wgpu() {
    let g = gpu_or_skip!();
    let res = lmech(&["devices"]);
    let stdout = String::from_utf8_lossy(&res.stdout).into_owned();
    assert!(res.status.success(), "{stdout}");
    let name = &g.adapter().name;
    let dtypes = if g.adapter().f16 {
        "dtypes f32 f16"
    } else {
        "dtypes f32)"
    };
    assert!(
        stdout.lines().any(|l| l.starts_with("wgpu adapter 0: ")
            && l.contains(name.as_str())
            && l.contains(dtypes)),
        "{stdout}"
    );
    let dir = temp_dir("wgpu_cli");
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/teacher_student_sgd.toml");
    let mut summaries = Vec::new();
    for device in ["cpu", "wgpu"] {
        let out = dir.join(device);
        let res = lmech(&[
            "train",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
            "--device",
            device,
            "--set",
            "train.steps=60",
            "--set",
            "model.width=64",
            "--set",
            "train.log_every=20",
            "--set",
            "train.eval_every=60",
        ]);
        let stderr = String::from_utf8_lossy(&res.stderr).into_owned();
        assert!(res.status.success(), "{device}: {stderr}");
        let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
        summaries.push(serde_json::from_str::<serde_json::Value>(&text).unwrap());
    }
    assert!(
        summaries[1]["device"].as_str().unwrap().starts_with("wgpu"),
        "{}",
        summaries[1]
    );
    let final_loss = |s: &serde_json::Value| -> f64 {
        let f = &s["final"];
        f.get("train_loss")
            .or_else(|| f.get("loss"))
            .and_then(|v| v.as_f64())
            .unwrap_or_else(|| panic!("no final loss in {s}"))
    };
    let (a, b) = (final_loss(&summaries[0]), final_loss(&summaries[1]));
    assert!(
        (a - b).abs() < 1e-3 * a.abs().max(1e-3),
        "cpu {a} vs wgpu {b}"
    );
}

/// A short `lmech eos` (eta 0.2, 150 steps) on both devices: the sharpness
/// crosses 2/eta at the same step and its median after the crossing agrees
/// to 1 % (past the crossing GD oscillates and amplifies f32 rounding, so
/// single values drift; BENCHMARKS.md has the full-length comparison).
#[test]
fn edge_of_stability_table_matches_cpu() {
    let _g = gpu_or_skip!();
    let dir = temp_dir("wgpu_eos");
    let rows: Vec<_> = [Device::Cpu, Device::Wgpu]
        .into_iter()
        .map(|device| {
            let opts = EosOptions {
                out: dir.join(device.name()),
                lrs: vec![0.2],
                steps: 150,
                every: 10,
                width: 64,
                arch: "mlp".into(),
                n_train: 1000,
                device,
                progress: false,
                base: None,
                central_flow: None,
            };
            run_eos(&opts).unwrap().remove(0)
        })
        .collect();
    let (c, w) = (&rows[0], &rows[1]);
    assert!(!c.diverged && !w.diverged);
    assert!(c.reached_at.is_some(), "the CPU run never reached 2/eta");
    assert_eq!(c.reached_at, w.reached_at);
    let (mc, mw) = (c.median_after.unwrap(), w.median_after.unwrap());
    assert!(
        (mc - mw).abs() < 0.01 * mc,
        "median sharpness cpu {mc} vs wgpu {mw}"
    );
    assert!(
        (c.final_loss - w.final_loss).abs() < 0.05 * c.final_loss,
        "final loss cpu {} vs wgpu {}",
        c.final_loss,
        w.final_loss
    );
}

/// With no adapter (Vulkan's driver list pointed at nothing), `lmech
/// devices` says so, `--device wgpu` fails with a hint to use the CPU, and
/// `--device auto` falls back to the CPU. Needs no adapter, so it always
/// runs (on Linux, where Vulkan is wgpu's only backend in this build).
#[cfg(target_os = "linux")]
#[test]
fn without_an_adapter_wgpu_is_refused_and_auto_takes_the_cpu() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lmech"))
            .args(args)
            .env("VK_ICD_FILENAMES", "/nonexistent/lmech-no-driver.json")
            .env("VK_DRIVER_FILES", "/nonexistent/lmech-no-driver.json")
            .output()
            .expect("cannot start the lmech binary")
    };
    let res = run(&["devices"]);
    let stdout = String::from_utf8_lossy(&res.stdout).into_owned();
    assert!(res.status.success(), "{stdout}");
    assert!(stdout.contains("wgpu: no adapter found"), "{stdout}");
    let dir = temp_dir("wgpu_none");
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/teacher_student_sgd.toml");
    let out = dir.join("run");
    let args = [
        "train",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--set",
        "train.steps=2",
    ];
    let mut with_wgpu = args.to_vec();
    with_wgpu.extend(["--device", "wgpu"]);
    let res = run(&with_wgpu);
    let stderr = String::from_utf8_lossy(&res.stderr).into_owned();
    assert!(!res.status.success(), "{stderr}");
    assert!(
        stderr.contains("no wgpu adapter") && stderr.contains("--device cpu"),
        "{stderr}"
    );
    assert!(!out.join("summary.json").exists());
    let res = run(&args);
    let stderr = String::from_utf8_lossy(&res.stderr).into_owned();
    assert!(res.status.success(), "{stderr}");
    assert!(stderr.contains("auto chose cpu"), "{stderr}");
}
