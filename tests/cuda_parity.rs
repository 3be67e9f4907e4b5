//! The CUDA backend against the CPU reference (f32): every op, a training
//! step, Hessian- and Gauss-Newton-vector products, Lanczos sharpness,
//! per-sample gradient norms and the empirical NTK. Runs wherever a CUDA GPU
//! is present and reports itself skipped elsewhere (CI has no GPU; its CUDA
//! check is tests/cuda_compile.rs).
//!
//! Tolerances, as max |cuda - cpu| / max |cpu| over a tensor:
//! - elementwise ops, losses, reductions: 1e-5 (f32 rounding; CUDA's
//!   transcendentals are within 2 ulp of the CPU's, FMA contraction differs;
//!   per-member dot products 1e-4, for the CPU's sequential f32 sum);
//! - fp32 GEMM: 1e-5; TF32 tensor cores: 5e-3 (10-bit mantissa, K up to
//!   300); BF16: 3e-2 (7-bit mantissa); cuBLAS fp32: 1e-5;
//! - whole passes (training steps, HVPs, per-sample norms, NTK): 1e-4;
//! - the top Hessian eigenvalue by Lanczos: 1e-3 relative.

mod common;

use common::randn;
use lmech::backend::cuda::{self, Cuda, GemmKind};
use lmech::backend::{AdamHyper, SgdHyper};
use lmech::curvature::LossOnData;
use lmech::linalg::{lanczos, LanczosOptions};
use lmech::nn::activation::{Activation, ALL_ACTIVATIONS};
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::observe::ntk::empirical_ntk;
use lmech::observe::per_sample::per_sample_norms;
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::rng::Rng;
use lmech::tape::Curvature;
use lmech::{Backend, Cpu, DType, Tensor};

/// The GPU backend, or None (after saying so) when this machine has none.
fn gpu() -> Option<Cuda> {
    if !cuda::driver_present() {
        common::skip("no CUDA device (no NVIDIA driver: libcuda.so not found)");
        return None;
    }
    match cuda::device_count() {
        Ok(n) if n > 0 => {}
        other => {
            common::skip(&format!("no CUDA device ({other:?})"));
            return None;
        }
    }
    // A GPU is here, so the kernels must run: a missing NVRTC is a failure.
    Some(Cuda::new(0, DType::F32).expect("CUDA backend on cuda:0"))
}

fn cpu() -> Cpu {
    Cpu::f32()
}

/// max |got - want| / max |want|.
fn rel(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(
            0.0,
            |m: f64, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        )
        / scale
}

fn check(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let e = rel(got, want);
    assert!(e <= tol, "{what}: relative error {e:e} > {tol:e}");
}

/// The same values on both backends.
struct Pair {
    c: Tensor<Cpu>,
    g: Tensor<Cuda>,
}

fn pair(g: &Cuda, shape: &[usize], v: &[f64]) -> Pair {
    Pair {
        c: cpu().from_f64(shape, v).unwrap(),
        g: g.from_f64(shape, v).unwrap(),
    }
}

fn rand_pair(g: &Cuda, rng: &mut Rng, shape: &[usize], scale: f64) -> Pair {
    let n = shape.iter().product();
    pair(g, shape, &randn(rng, n, scale))
}

fn same(what: &str, g: &Cuda, got: &Tensor<Cuda>, want: &Tensor<Cpu>, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    check(
        what,
        &g.to_f64(got).unwrap(),
        &cpu().to_f64(want).unwrap(),
        tol,
    );
}

#[test]
fn upload_download_and_zeros_round_trip() {
    let Some(g) = gpu() else { return };
    let v: Vec<f64> = (0..1000).map(|i| i as f64 * 0.25 - 100.0).collect();
    let t = g.from_f64(&[10, 100], &v).unwrap();
    assert_eq!(g.to_f64(&t).unwrap(), v);
    assert_eq!(g.to_f64(&g.zeros(&[3, 5]).unwrap()).unwrap(), vec![0.0; 15]);
    let empty = g.from_f64(&[0, 4], &[]).unwrap();
    assert!(g.to_f64(&empty).unwrap().is_empty());
    assert!(g.from_f64(&[2, 2], &[1.0]).is_err());
}

/// op(a) @ op(b) for every transpose and broadcast combination and odd
/// sizes, with the given GEMM kind, against the CPU.
fn gemm_parity(g: &Cuda, sizes: &[(usize, usize, usize)], tol: f64) {
    let mut rng = Rng::new(7);
    for &(m, n, k) in sizes {
        for (ea, eb) in [(0, 0), (3, 3), (0, 3), (3, 0), (1, 1)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let ash = if ta { [k, m] } else { [m, k] };
                    let bsh = if tb { [n, k] } else { [k, n] };
                    let full = |e: usize, s: [usize; 2]| -> Vec<usize> {
                        if e == 0 {
                            s.to_vec()
                        } else {
                            vec![e, s[0], s[1]]
                        }
                    };
                    let a = rand_pair(g, &mut rng, &full(ea, ash), 1.0);
                    let b = rand_pair(g, &mut rng, &full(eb, bsh), 1.0);
                    let got = g.matmul(&a.g, ta, &b.g, tb, 0.7).unwrap();
                    let want = cpu().matmul(&a.c, ta, &b.c, tb, 0.7).unwrap();
                    same(
                        &format!(
                            "{:?} gemm m{m} n{n} k{k} E({ea},{eb}) ta{ta} tb{tb}",
                            g.gemm()
                        ),
                        g,
                        &got,
                        &want,
                        tol,
                    );
                }
            }
        }
    }
}

#[test]
fn simt_gemm_matches_the_cpu() {
    let Some(g) = gpu() else { return };
    let sizes = [
        (1, 1, 1),
        (5, 7, 3),
        (33, 17, 9),
        (128, 128, 8),
        (129, 131, 17),
        (64, 200, 300),
        // Enough 128 x 128 tiles to fill an H200's 132 SMs: the big-tile kernel.
        (2000, 1500, 20),
    ];
    gemm_parity(&g, &sizes, 1e-5);
    // Empty inner dimension: a zero matrix.
    let a = g.zeros(&[4, 0]).unwrap();
    let b = g.zeros(&[0, 3]).unwrap();
    let c = g.matmul(&a, false, &b, false, 1.0).unwrap();
    assert_eq!(g.to_f64(&c).unwrap(), vec![0.0; 12]);
    assert!(g.matmul(&a, false, &a, false, 1.0).is_err());
}

#[test]
fn tensor_core_gemms_match_the_cpu_at_their_precision() {
    let Some(g) = gpu() else { return };
    // At least TC_MIN_DIM in every dimension so the tensor-core kernels run,
    // with ragged edges; one small product that falls back to SIMT.
    let sizes = [(64, 64, 64), (100, 70, 90), (130, 257, 300), (8, 8, 8)];
    gemm_parity(&g.clone().with_gemm(GemmKind::Tf32).unwrap(), &sizes, 5e-3);
    gemm_parity(&g.clone().with_gemm(GemmKind::Bf16).unwrap(), &sizes, 3e-2);
    if cuda::cublas_present() {
        gemm_parity(&g.with_gemm(GemmKind::Cublas).unwrap(), &sizes, 1e-5);
    } else {
        common::skip("cuBLAS baseline (libcublas.so not found)");
    }
}

#[test]
fn activations_and_their_derivatives_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(3);
    let (e, rows, n) = (3, 37, 45);
    let shape = [e, rows, n];
    for act in ALL_ACTIVATIONS {
        let z = rand_pair(&g, &mut rng, &shape, 2.5);
        for bias_shape in [Some(vec![e, n]), Some(vec![n]), None] {
            let bias = bias_shape.map(|s| rand_pair(&g, &mut rng, &s, 1.0));
            let (gp, gy) = g
                .bias_act(&z.g, bias.as_ref().map(|b| &b.g), 0.3, act)
                .unwrap();
            let (cp, cy) = cpu()
                .bias_act(&z.c, bias.as_ref().map(|b| &b.c), 0.3, act)
                .unwrap();
            same(&format!("{act:?} pre"), &g, &gp, &cp, 1e-6);
            same(&format!("{act:?} post"), &g, &gy, &cy, 1e-5);
            let gr = rand_pair(&g, &mut rng, &shape, 1.0);
            let gd = rand_pair(&g, &mut rng, &shape, 1.0);
            let xd = rand_pair(&g, &mut rng, &shape, 1.0);
            same(
                &format!("{act:?} backward"),
                &g,
                &g.act_backward(&gp, &gy, &gr.g, act).unwrap(),
                &cpu().act_backward(&cp, &cy, &gr.c, act).unwrap(),
                1e-5,
            );
            same(
                &format!("{act:?} backward tangent"),
                &g,
                &g.act_backward_tangent(&gp, &gy, &gr.g, &gd.g, &xd.g, act)
                    .unwrap(),
                &cpu()
                    .act_backward_tangent(&cp, &cy, &gr.c, &gd.c, &xd.c, act)
                    .unwrap(),
                1e-5,
            );
        }
    }
    // A bias of the wrong width is a shape error, as on the CPU.
    let z = rand_pair(&g, &mut rng, &shape, 1.0);
    let bad = rand_pair(&g, &mut rng, &[n + 1], 1.0);
    assert!(g
        .bias_act(&z.g, Some(&bad.g), 1.0, Activation::Relu)
        .is_err());
}

#[test]
fn reductions_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(4);
    for shape in [
        vec![3, 50, 33],
        vec![50, 33],
        vec![2, 1, 5000],
        vec![1, 700, 3],
    ] {
        let x = rand_pair(&g, &mut rng, &shape, 1.0);
        let y = rand_pair(&g, &mut rng, &shape, 1.0);
        same(
            "sum_rows",
            &g,
            &g.sum_rows(&x.g, 0.5).unwrap(),
            &cpu().sum_rows(&x.c, 0.5).unwrap(),
            1e-5,
        );
        same(
            "row_sq_norms",
            &g,
            &g.row_sq_norms(&x.g).unwrap(),
            &cpu().row_sq_norms(&x.c).unwrap(),
            1e-5,
        );
        // The CPU sums a member's products in f32 in order, the GPU in f64
        // in a tree: the CPU's own rounding sets this tolerance.
        same(
            "dot_members",
            &g,
            &g.dot_members(&x.g, &y.g).unwrap(),
            &cpu().dot_members(&x.c, &y.c).unwrap(),
            1e-4,
        );
        check(
            "sum_sq",
            &g.sum_sq(&x.g).unwrap(),
            &cpu().sum_sq(&x.c).unwrap(),
            1e-6,
        );
        check(
            "sum_abs",
            &g.sum_abs(&x.g).unwrap(),
            &cpu().sum_abs(&x.c).unwrap(),
            1e-6,
        );
    }
    // A large member exercises many partial sums per member.
    let x = rand_pair(&g, &mut rng, &[2, 1 << 21], 1.0);
    check(
        "sum_sq large",
        &g.sum_sq(&x.g).unwrap(),
        &cpu().sum_sq(&x.c).unwrap(),
        1e-6,
    );
    let (e, rows) = (3, 41);
    let x = rand_pair(&g, &mut rng, &[e, rows, 5], 1.0);
    let s = pair(&g, &[e], &[0.5, -2.0, 3.0]);
    same(
        "scale_members",
        &g,
        &g.scale_members(&x.g, &s.g).unwrap(),
        &cpu().scale_members(&x.c, &s.c).unwrap(),
        1e-6,
    );
    let labels: Vec<f64> = (0..rows).map(|i| (i % 5) as f64).collect();
    let l = pair(&g, &[rows], &labels);
    assert_eq!(
        g.count_correct(&x.g, &l.g).unwrap(),
        cpu().count_correct(&x.c, &l.c).unwrap()
    );
}

#[test]
fn axpy_updates_in_place_and_copies_shared_buffers() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(5);
    let x = rand_pair(&g, &mut rng, &[3, 20, 7], 1.0);
    let mut y = rand_pair(&g, &mut rng, &[3, 20, 7], 1.0);
    let kept = y.g.clone();
    let before = g.to_f64(&kept).unwrap();
    g.axpy(&mut y.g, -0.3, &x.g).unwrap();
    cpu().axpy(&mut y.c, -0.3, &x.c).unwrap();
    same("axpy", &g, &y.g, &y.c, 1e-6);
    // The clone taken before the update (a tape's copy) did not change.
    assert_eq!(g.to_f64(&kept).unwrap(), before);
}

#[test]
fn losses_and_loss_hessian_products_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(6);
    let (e, rows) = (3, 29);
    for k in [1, 10, 77] {
        let f = rand_pair(&g, &mut rng, &[e, rows, k], 3.0);
        let fd = rand_pair(&g, &mut rng, &[e, rows, k], 1.0);
        let labels: Vec<f64> = (0..rows).map(|i| ((i * 7) % k) as f64).collect();
        let targets = [
            (LossKind::CrossEntropy, pair(&g, &[rows], &labels)),
            (LossKind::Mse, rand_pair(&g, &mut rng, &[rows, k], 1.0)),
            (LossKind::Mse, rand_pair(&g, &mut rng, &[e, rows, k], 1.0)),
            (LossKind::MseMean, rand_pair(&g, &mut rng, &[rows, k], 1.0)),
            (
                LossKind::MseMean,
                rand_pair(&g, &mut rng, &[e, rows, k], 1.0),
            ),
        ];
        for (kind, t) in &targets {
            let (gl, gg) = g.loss(*kind, &f.g, &t.g).unwrap();
            let (cl, cg) = cpu().loss(*kind, &f.c, &t.c).unwrap();
            same(&format!("{kind:?} k{k} loss"), &g, &gl, &cl, 1e-5);
            same(&format!("{kind:?} k{k} gradient"), &g, &gg, &cg, 1e-5);
            same(
                &format!("{kind:?} k{k} hvp"),
                &g,
                &g.loss_hvp(*kind, &f.g, &t.g, &fd.g).unwrap(),
                &cpu().loss_hvp(*kind, &f.c, &t.c, &fd.c).unwrap(),
                1e-5,
            );
        }
    }
}

#[test]
fn optimizer_updates_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(8);
    let shape = [3, 17, 11];
    let lrs: [&[f64]; 2] = [&[0.1], &[0.1, 0.03, 0.2]];
    for lr in lrs {
        for (momentum, nesterov, wd) in [(0.0, false, 0.0), (0.9, false, 1e-2), (0.9, true, 0.0)] {
            let mut p = rand_pair(&g, &mut rng, &shape, 1.0);
            let mut buf = pair(&g, &shape, &vec![0.0; 3 * 17 * 11]);
            let hp = SgdHyper {
                lr,
                momentum,
                nesterov,
                weight_decay: wd,
            };
            for _ in 0..3 {
                let grad = rand_pair(&g, &mut rng, &shape, 1.0);
                g.sgd_update(&mut p.g, &grad.g, &mut buf.g, &hp).unwrap();
                cpu()
                    .sgd_update(&mut p.c, &grad.c, &mut buf.c, &hp)
                    .unwrap();
            }
            same(
                &format!("sgd mu{momentum} nesterov{nesterov} lr{lr:?}"),
                &g,
                &p.g,
                &p.c,
                1e-5,
            );
        }
        for decoupled in [false, true] {
            let mut p = rand_pair(&g, &mut rng, &shape, 1.0);
            let zeros = vec![0.0; 3 * 17 * 11];
            let (mut m, mut v) = (pair(&g, &shape, &zeros), pair(&g, &shape, &zeros));
            for step in 1..=3 {
                let hp = AdamHyper {
                    lr,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.05,
                    decoupled,
                    step,
                };
                let grad = rand_pair(&g, &mut rng, &shape, 1.0);
                g.adam_update(&mut p.g, &grad.g, &mut m.g, &mut v.g, &hp)
                    .unwrap();
                cpu()
                    .adam_update(&mut p.c, &grad.c, &mut m.c, &mut v.c, &hp)
                    .unwrap();
            }
            same(
                &format!("adam decoupled{decoupled} lr{lr:?}"),
                &g,
                &p.g,
                &p.c,
                1e-5,
            );
            same("adam m", &g, &m.g, &m.c, 1e-5);
            same("adam v", &g, &v.g, &v.c, 1e-5);
        }
    }
}

fn spec(act: Activation) -> MlpSpec {
    let mut s = MlpSpec::new(12, 40, 3, 5, act);
    s.sizes = vec![12, 40, 24, 5];
    s
}

/// Inputs and labels of a small classification batch.
fn batch(rows: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let x = randn(&mut rng, rows * 12, 1.0);
    let y = (0..rows).map(|i| (i % 5) as f64).collect();
    (x, y)
}

#[test]
fn training_steps_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let c = cpu();
    let rows = 32;
    let (x, y) = batch(rows, 11);
    for (kind, act) in [
        (OptimizerKind::Sgd, Activation::Tanh),
        (OptimizerKind::Adam, Activation::Gelu),
    ] {
        let seeds = [1, 2];
        let mut mg = Model::init(&g, spec(act), &seeds).unwrap();
        let mut mc = Model::init(&c, spec(act), &seeds).unwrap();
        let mut hyper = OptimHyper::new(kind);
        hyper.momentum = 0.9;
        let lr = vec![0.05, 0.02];
        let family = kind.family();
        let mut og = Optimizer::new(
            &g,
            hyper.clone(),
            Schedule::Constant,
            lr.clone(),
            &mg.params(),
            mg.lr_scales(family),
        )
        .unwrap();
        let mut oc = Optimizer::new(
            &c,
            hyper,
            Schedule::Constant,
            lr,
            &mc.params(),
            mc.lr_scales(family),
        )
        .unwrap();
        let (xg, yg) = (
            g.from_f64(&[rows, 12], &x).unwrap(),
            g.from_f64(&[rows], &y).unwrap(),
        );
        let (xc, yc) = (
            c.from_f64(&[rows, 12], &x).unwrap(),
            c.from_f64(&[rows], &y).unwrap(),
        );
        for step in 0..5 {
            let pg = mg
                .loss_pass(&g, &xg, &yg, LossKind::CrossEntropy, true)
                .unwrap();
            let pc = mc
                .loss_pass(&c, &xc, &yc, LossKind::CrossEntropy, true)
                .unwrap();
            same(
                &format!("{kind:?} step {step} loss"),
                &g,
                &pg.loss,
                &pc.loss,
                1e-4,
            );
            for (i, (a, b)) in pg.grads.iter().zip(&pc.grads).enumerate() {
                same(&format!("{kind:?} step {step} grad {i}"), &g, a, b, 1e-4);
            }
            og.step(&g, mg.params_mut(), &pg.grads).unwrap();
            oc.step(&c, mc.params_mut(), &pc.grads).unwrap();
        }
        for (i, (a, b)) in mg.params().iter().zip(mc.params()).enumerate() {
            same(
                &format!("{kind:?} params {i} after 5 steps"),
                &g,
                a,
                b,
                1e-4,
            );
        }
    }
}

#[test]
fn hvp_gauss_newton_and_sharpness_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let c = cpu();
    let rows = 48;
    let (x, y) = batch(rows, 12);
    let mg = Model::init(&g, spec(Activation::Silu), &[3]).unwrap();
    let mc = Model::init(&c, spec(Activation::Silu), &[3]).unwrap();
    // Two chunks, as the observers split a data set.
    let chunks_g = vec![
        (
            g.from_f64(&[32, 12], &x[..32 * 12]).unwrap(),
            g.from_f64(&[32], &y[..32]).unwrap(),
        ),
        (
            g.from_f64(&[16, 12], &x[32 * 12..]).unwrap(),
            g.from_f64(&[16], &y[32..]).unwrap(),
        ),
    ];
    let chunks_c = vec![
        (
            c.from_f64(&[32, 12], &x[..32 * 12]).unwrap(),
            c.from_f64(&[32], &y[..32]).unwrap(),
        ),
        (
            c.from_f64(&[16, 12], &x[32 * 12..]).unwrap(),
            c.from_f64(&[16], &y[32..]).unwrap(),
        ),
    ];
    let lg = LossOnData::new(&g, &mg, LossKind::CrossEntropy, chunks_g).unwrap();
    let lc = LossOnData::new(&c, &mc, LossKind::CrossEntropy, chunks_c).unwrap();
    let v = randn(&mut Rng::new(13), lg.dim(), 1.0);
    for mode in [Curvature::Hessian, Curvature::GaussNewton] {
        check(
            &format!("{mode:?} product"),
            &lg.product(&v, mode).unwrap(),
            &lc.product(&v, mode).unwrap(),
            1e-4,
        );
    }
    let opts = LanczosOptions {
        k: 1,
        max_iter: 200,
        tol: 1e-4,
        seed: 1,
        start: None,
    };
    let mut opg = |v: &[f64]| lg.product(v, Curvature::Hessian);
    let mut opc = |v: &[f64]| lc.product(v, Curvature::Hessian);
    let sg = lanczos(lg.dim(), &mut opg, &opts).unwrap();
    let sc = lanczos(lc.dim(), &mut opc, &opts).unwrap();
    check("sharpness", &sg.values, &sc.values, 1e-3);
}

#[test]
fn per_sample_norms_and_ntk_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let c = cpu();
    let rows = 24;
    let (x, y) = batch(rows, 14);
    let mg = Model::init(&g, spec(Activation::Relu), &[5]).unwrap();
    let mc = Model::init(&c, spec(Activation::Relu), &[5]).unwrap();
    let (xg, yg) = (
        g.from_f64(&[rows, 12], &x).unwrap(),
        g.from_f64(&[rows], &y).unwrap(),
    );
    let (xc, yc) = (
        c.from_f64(&[rows, 12], &x).unwrap(),
        c.from_f64(&[rows], &y).unwrap(),
    );
    let ng = per_sample_norms(&g, &mg, &xg, &yg, LossKind::CrossEntropy).unwrap();
    let nc = per_sample_norms(&c, &mc, &xc, &yc, LossKind::CrossEntropy).unwrap();
    check("per-sample norms", &ng.total, &nc.total, 1e-4);
    for (l, (a, b)) in ng.per_layer.iter().zip(&nc.per_layer).enumerate() {
        check(&format!("per-sample norms layer {l}"), a, b, 1e-4);
    }
    check(
        "mean gradient",
        &[ng.mean_grad_sq],
        &[nc.mean_grad_sq],
        1e-4,
    );
    let kg = empirical_ntk(&g, &mg, &xg).unwrap();
    let kc = empirical_ntk(&c, &mc, &xc).unwrap();
    check("ntk trace", &kg.trace, &kc.trace, 1e-4);
    for (o, (a, b)) in kg.per_output.iter().zip(&kc.per_output).enumerate() {
        check(&format!("ntk output {o}"), a, b, 1e-4);
    }
}

#[test]
fn tensors_of_another_backend_instance_are_refused() {
    let Some(g) = gpu() else { return };
    let other = Cuda::new(0, DType::F32).unwrap();
    let t = other.from_f64(&[2], &[1.0, 2.0]).unwrap();
    assert!(g.to_f64(&t).is_err());
    assert!(Cuda::new(0, DType::F64).is_err());
}
