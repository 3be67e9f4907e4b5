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
//! - copies, single products and sums in the CPU's order (im2col, col2im,
//!   row max / pick / place, transpose, mul): exact;
//! - row normalization and its Jacobian products: 1e-5 (2e-5 for rows of
//!   20000, where the CPU's sequential f32 sums are off by up to 4e-6);
//! - row softmax (causal or not) and its two Jacobian products: 1e-5
//!   against both the CPU's f32 and its f64 (on the same f32 inputs; the
//!   emulator measures under 1e-6 against double); masked entries exactly 0;
//! - whole passes (training steps, HVPs, per-sample norms, NTK): 1e-4;
//! - the top Hessian eigenvalue by Lanczos: 1e-3 relative.

mod common;

use common::randn;
use lmech::backend::cuda::{self, Cuda, GemmKind};
use lmech::backend::{AdamHyper, SgdHyper, Window};
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

/// Both backends refuse the operands, with the same message (they share the
/// shape checks of src/backend/shapes.rs and window.rs).
fn both_refuse<T: std::fmt::Debug, U: std::fmt::Debug>(
    what: &str,
    got: lmech::Result<T>,
    want: lmech::Result<U>,
) {
    let (g, c) = (got.unwrap_err().to_string(), want.unwrap_err().to_string());
    assert_eq!(g, c, "{what}: different refusals");
}

/// Windows with stride 1 and 2 (and 3, past the kernel), padding 0 and 1,
/// non-square kernels, one to three channels and 1-D signals (h = 1).
fn windows() -> Vec<Window> {
    let win = |n, c, h, w, (kh, kw), (sh, sw), (ph, pw)| Window {
        n,
        c,
        h,
        w,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
    };
    vec![
        win(2, 1, 5, 5, (3, 3), (1, 1), (0, 0)),
        win(2, 3, 5, 6, (3, 3), (2, 2), (1, 1)),
        win(1, 3, 7, 5, (2, 3), (1, 2), (1, 0)),
        win(3, 1, 1, 9, (1, 3), (1, 2), (0, 1)),
        win(2, 3, 6, 6, (3, 2), (2, 1), (0, 1)),
        win(1, 2, 7, 7, (2, 2), (3, 3), (0, 0)),
        win(2, 2, 4, 4, (4, 4), (1, 1), (0, 0)),
        Window::square(4, (3, 8, 8), 3, 2, 1),
        Window::square(3, (3, 1, 16), 5, 2, 1),
    ]
}

#[test]
fn im2col_and_col2im_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(21);
    for win in windows() {
        let (rows, patch) = (win.n * win.positions(), win.patch());
        // One group as rank 2, then one and three groups as rank 3.
        for groups in [None, Some(1), Some(3)] {
            let shape = |a: usize, b: usize| match groups {
                None => vec![a, b],
                Some(e) => vec![e, a, b],
            };
            let x = rand_pair(&g, &mut rng, &shape(win.n, win.h * win.w * win.c), 1.0);
            let what = format!("{win:?} groups {groups:?}");
            // A copy, and sums in the CPU's order: exact.
            same(
                &format!("im2col {what}"),
                &g,
                &g.im2col(&x.g, &win).unwrap(),
                &cpu().im2col(&x.c, &win).unwrap(),
                0.0,
            );
            let cols = rand_pair(&g, &mut rng, &shape(rows, patch), 1.0);
            same(
                &format!("col2im {what}"),
                &g,
                &g.col2im(&cols.g, &win).unwrap(),
                &cpu().col2im(&cols.c, &win).unwrap(),
                0.0,
            );
        }
    }
    let win = windows()[1];
    let part = rand_pair(&g, &mut rng, &[win.n, 7], 1.0);
    both_refuse(
        "im2col",
        g.im2col(&part.g, &win),
        cpu().im2col(&part.c, &win),
    );
    both_refuse(
        "col2im",
        g.col2im(&part.g, &win),
        cpu().col2im(&part.c, &win),
    );
    let too_big = Window { kh: 9, ..win };
    let x = rand_pair(&g, &mut rng, &[win.n, win.h * win.w * win.c], 1.0);
    both_refuse(
        "kernel",
        g.im2col(&x.g, &too_big),
        cpu().im2col(&x.c, &too_big),
    );
}

#[test]
fn row_max_pick_and_place_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(22);
    for shape in [
        vec![3, 7, 9],
        vec![5, 4],
        vec![6],
        vec![2, 300, 37],
        vec![4, 1],
    ] {
        let n: usize = shape.iter().product();
        let k = *shape.last().unwrap();
        // Small integers: many ties, which the first maximum wins.
        let v: Vec<f64> = randn(&mut rng, n, 1.5).iter().map(|x| x.round()).collect();
        let x = pair(&g, &shape, &v);
        let (gb, ga) = g.row_max(&x.g).unwrap();
        let (cb, ca) = cpu().row_max(&x.c).unwrap();
        same(&format!("row_max {shape:?}"), &g, &gb, &cb, 0.0);
        same(&format!("row_max arg {shape:?}"), &g, &ga, &ca, 0.0);
        same(
            &format!("row_pick by argmax {shape:?}"),
            &g,
            &g.row_pick(&x.g, &ga).unwrap(),
            &cpu().row_pick(&x.c, &ca).unwrap(),
            0.0,
        );
        // Any column, some given with a fraction (truncated).
        let rows = n / k;
        let cols: Vec<f64> = (0..rows)
            .map(|r| ((r * 7) % k) as f64 + if r % 3 == 0 { 0.5 } else { 0.0 })
            .collect();
        let idx = pair(&g, ca.shape(), &cols);
        same(
            &format!("row_pick {shape:?}"),
            &g,
            &g.row_pick(&x.g, &idx.g).unwrap(),
            &cpu().row_pick(&x.c, &idx.c).unwrap(),
            0.0,
        );
        let gv = rand_pair(&g, &mut rng, ca.shape(), 1.0);
        same(
            &format!("row_place {shape:?}"),
            &g,
            &g.row_place(&gv.g, &idx.g, k).unwrap(),
            &cpu().row_place(&gv.c, &idx.c, k).unwrap(),
            0.0,
        );
    }
    // An index outside its row, which the CPU refuses, is NaN in that row.
    let x = rand_pair(&g, &mut rng, &[3, 4], 1.0);
    let bad = pair(&g, &[3, 1], &[1.0, 4.0, -1.0]);
    assert!(cpu().row_pick(&x.c, &bad.c).is_err());
    let picked = g.to_f64(&g.row_pick(&x.g, &bad.g).unwrap()).unwrap();
    assert!(!picked[0].is_nan() && picked[1].is_nan() && picked[2].is_nan());
    let placed = g.to_f64(&g.row_place(&bad.g, &bad.g, 4).unwrap()).unwrap();
    assert!(placed[..4].iter().all(|v| !v.is_nan()));
    assert!(placed[4..].iter().all(|v| v.is_nan()));
    // Shape refusals.
    let empty = g.zeros(&[3, 0]).unwrap();
    let empty_c = cpu().zeros(&[3, 0]).unwrap();
    both_refuse("row_max", g.row_max(&empty), cpu().row_max(&empty_c));
    let short = pair(&g, &[2, 1], &[0.0, 1.0]);
    both_refuse(
        "row_pick",
        g.row_pick(&x.g, &short.g),
        cpu().row_pick(&x.c, &short.c),
    );
    both_refuse(
        "row_place",
        g.row_place(&x.g, &short.g, 4),
        cpu().row_place(&x.c, &short.c, 4),
    );
    both_refuse(
        "row_place k",
        g.row_place(&bad.g, &bad.g, 0),
        cpu().row_place(&bad.c, &bad.c, 0),
    );
}

#[test]
fn transpose_matches_the_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(23);
    // Sizes off the 32 x 32 tile, degenerate matrices, and more matrices
    // than one grid dimension holds.
    for shape in [
        vec![3, 33, 65],
        vec![70, 31],
        vec![5],
        vec![1, 1, 1],
        vec![2, 1, 40],
        vec![2, 100, 1],
        vec![2, 64, 96],
        vec![70000, 2, 3],
    ] {
        let x = rand_pair(&g, &mut rng, &shape, 1.0);
        same(
            &format!("transpose {shape:?}"),
            &g,
            &g.transpose(&x.g).unwrap(),
            &cpu().transpose(&x.c).unwrap(),
            0.0,
        );
    }
}

#[test]
fn mul_matches_the_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(24);
    let (e, rows, n) = (3, 7, 45);
    let cases: [(Vec<usize>, Vec<usize>); 8] = [
        (vec![e, rows, n], vec![e, rows, n]),
        (vec![e, rows, n], vec![e, n]),
        (vec![e, rows, n], vec![1, n]),
        (vec![e, rows, n], vec![n]),
        (vec![rows, n], vec![rows, n]),
        (vec![rows, n], vec![1, n]),
        (vec![rows, n], vec![n]),
        (vec![n], vec![n]),
    ];
    for (ash, bsh) in cases {
        let a = rand_pair(&g, &mut rng, &ash, 1.0);
        let b = rand_pair(&g, &mut rng, &bsh, 1.0);
        same(
            &format!("mul {ash:?} * {bsh:?}"),
            &g,
            &g.mul(&a.g, &b.g).unwrap(),
            &cpu().mul(&a.c, &b.c).unwrap(),
            0.0,
        );
    }
    let a = rand_pair(&g, &mut rng, &[e, rows, n], 1.0);
    for bsh in [vec![2, n], vec![e, n + 1], vec![1, rows, n]] {
        let b = rand_pair(&g, &mut rng, &bsh, 1.0);
        both_refuse(
            &format!("mul by {bsh:?}"),
            g.mul(&a.g, &b.g),
            cpu().mul(&a.c, &b.c),
        );
    }
}

/// norm_rows, and its two Jacobian products on the CPU's (y, s), for rows
/// of `shape` (last dimension the row), against the CPU.
fn norm_parity(g: &Cuda, rng: &mut Rng, shape: &[usize], center: bool, tol: f64) {
    let c = *shape.last().unwrap();
    let n: usize = shape.iter().product();
    let v: Vec<f64> = randn(rng, n, 2.0).iter().map(|x| x + 1.5).collect();
    let x = pair(g, shape, &v);
    let (gy, gs) = g.norm_rows(&x.g, center, 1e-5).unwrap();
    let (cy, cs) = cpu().norm_rows(&x.c, center, 1e-5).unwrap();
    let what = format!("{shape:?} center {center}");
    same(&format!("norm_rows y {what}"), g, &gy, &cy, tol);
    same(&format!("norm_rows s {what}"), g, &gs, &cs, tol);
    // One uncentered entry: y = x / sqrt(x^2 + eps) and J = s (1 - y^2) is
    // eps-small, all f32 cancellation on either backend.
    if c == 1 && !center {
        return;
    }
    let y = pair(g, shape, &cpu().to_f64(&cy).unwrap());
    let s = pair(g, cs.shape(), &cpu().to_f64(&cs).unwrap());
    let t = rand_pair(g, rng, shape, 1.0);
    let gr = rand_pair(g, rng, shape, 1.0);
    same(
        &format!("norm_rows_j {what}"),
        g,
        &g.norm_rows_j(&y.g, &s.g, &t.g, center).unwrap(),
        &cpu().norm_rows_j(&y.c, &s.c, &t.c, center).unwrap(),
        tol,
    );
    same(
        &format!("norm_rows_second {what}"),
        g,
        &g.norm_rows_second(&y.g, &s.g, &gr.g, &t.g, center).unwrap(),
        &cpu()
            .norm_rows_second(&y.c, &s.c, &gr.c, &t.c, center)
            .unwrap(),
        tol,
    );
}

#[test]
fn row_normalization_and_its_derivatives_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(25);
    // Rows shorter and longer than a warp, up to the longest a warp takes
    // (1024) and past it, where a block takes each row.
    for c in [1, 7, 32, 45, 300, 1024, 1025, 3000] {
        for shape in [vec![3, 9, c], vec![5, c], vec![c]] {
            for center in [false, true] {
                norm_parity(&g, &mut rng, &shape, center, 1e-5);
            }
        }
    }
    // Batch normalization's few long rows: the CPU's sequential f32 sums
    // over 20000 entries are off by up to 4e-6 themselves.
    for center in [false, true] {
        norm_parity(&g, &mut rng, &[8, 20000], center, 2e-5);
    }
    let x = rand_pair(&g, &mut rng, &[3, 4, 5], 1.0);
    let s = rand_pair(&g, &mut rng, &[3, 5], 1.0);
    let t = rand_pair(&g, &mut rng, &[3, 4, 6], 1.0);
    both_refuse(
        "norm_rows_j scales",
        g.norm_rows_j(&x.g, &s.g, &x.g, true),
        cpu().norm_rows_j(&x.c, &s.c, &x.c, true),
    );
    let s = rand_pair(&g, &mut rng, &[3, 4], 1.0);
    both_refuse(
        "norm_rows_second tangent",
        g.norm_rows_second(&x.g, &s.g, &x.g, &t.g, false),
        cpu().norm_rows_second(&x.c, &s.c, &x.c, &t.c, false),
    );
    let four = g.zeros(&[1, 2, 3, 4]).unwrap();
    let four_c = cpu().zeros(&[1, 2, 3, 4]).unwrap();
    both_refuse(
        "norm_rows rank 4",
        g.norm_rows(&four, true, 1e-5),
        cpu().norm_rows(&four_c, true, 1e-5),
    );
}

/// The CUDA result `got` against the CPU's in f32 (`want32`, the same
/// inputs) and in f64 (`want64`, on the same f32 values), each within `tol`.
fn same_f32_f64(
    what: &str,
    g: &Cuda,
    got: &Tensor<Cuda>,
    want32: &Tensor<Cpu>,
    want64: &Tensor<Cpu>,
    tol: f64,
) {
    same(&format!("{what} vs cpu f32"), g, got, want32, tol);
    assert_eq!(got.shape(), want64.shape(), "{what}: shapes");
    check(
        &format!("{what} vs cpu f64"),
        &g.to_f64(got).unwrap(),
        &Cpu::f64().to_f64(want64).unwrap(),
        tol,
    );
}

/// softmax_rows and its two Jacobian products (on the CPU's y) for rows of
/// `shape`, against the CPU in f32 and f64. Scores have scale 3 and every
/// third row is shifted by 100, past where exp without the row maximum
/// subtracted overflows f32. Causal masked entries must be exactly 0 in y
/// and in both products (y = 0 there).
fn softmax_parity(g: &Cuda, rng: &mut Rng, shape: &[usize], causal: bool, tol: f64) {
    let c = *shape.last().unwrap();
    let n: usize = shape.iter().product();
    let mut v = randn(rng, n, 3.0);
    for row in v.chunks_mut(c).step_by(3) {
        row.iter_mut().for_each(|x| *x += 100.0);
    }
    // f32 values, so the f64 CPU sees exactly what the GPU holds.
    let f32s = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|x| x as f32 as f64).collect() };
    let v = f32s(v);
    let c64 = Cpu::f64();
    let x = pair(g, shape, &v);
    let x64 = c64.from_f64(shape, &v).unwrap();
    let what = format!("{shape:?} causal {causal}");
    let gy = g.softmax_rows(&x.g, causal).unwrap();
    let cy = cpu().softmax_rows(&x.c, causal).unwrap();
    let cy64 = c64.softmax_rows(&x64, causal).unwrap();
    same_f32_f64(&format!("softmax_rows {what}"), g, &gy, &cy, &cy64, tol);
    let yv = cpu().to_f64(&cy).unwrap();
    let y = pair(g, shape, &yv);
    let t = f32s(randn(rng, n, 1.0));
    let gr = f32s(randn(rng, n, 1.0));
    let (tp, gp) = (pair(g, shape, &t), pair(g, shape, &gr));
    let (y64, t64, g64) = (
        c64.from_f64(shape, &yv).unwrap(),
        c64.from_f64(shape, &t).unwrap(),
        c64.from_f64(shape, &gr).unwrap(),
    );
    let gj = g.softmax_rows_j(&y.g, &tp.g).unwrap();
    same_f32_f64(
        &format!("softmax_rows_j {what}"),
        g,
        &gj,
        &cpu().softmax_rows_j(&y.c, &tp.c).unwrap(),
        &c64.softmax_rows_j(&y64, &t64).unwrap(),
        tol,
    );
    let gs = g.softmax_rows_second(&y.g, &gp.g, &tp.g).unwrap();
    same_f32_f64(
        &format!("softmax_rows_second {what}"),
        g,
        &gs,
        &cpu().softmax_rows_second(&y.c, &gp.c, &tp.c).unwrap(),
        &c64.softmax_rows_second(&y64, &g64, &t64).unwrap(),
        tol,
    );
    if causal {
        let (gy, gj, gs) = (
            g.to_f64(&gy).unwrap(),
            g.to_f64(&gj).unwrap(),
            g.to_f64(&gs).unwrap(),
        );
        for r in 0..n / c {
            for k in r % c + 1..c {
                let at = r * c + k;
                assert!(
                    gy[at] == 0.0 && gj[at] == 0.0 && gs[at] == 0.0,
                    "{what}: masked row {r} column {k}: {} {} {}",
                    gy[at],
                    gj[at],
                    gs[at]
                );
            }
        }
    }
}

#[test]
fn row_softmax_and_its_derivatives_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(26);
    // Rows shorter and longer than a warp, up to the longest a warp takes
    // (1024) and past it, where a block takes each row. Causal: whole c x c
    // matrices per member, and several matrices on a rank-2 tensor.
    for c in [1, 7, 32, 45, 300, 1024, 1025, 3000] {
        for shape in [vec![3, 9, c], vec![5, c], vec![c]] {
            softmax_parity(&g, &mut rng, &shape, false, 1e-5);
        }
        if c <= 300 {
            softmax_parity(&g, &mut rng, &[2, c, c], true, 1e-5);
        }
        if c <= 45 {
            softmax_parity(&g, &mut rng, &[3 * c, c], true, 1e-5);
        }
        // Rows that are not whole matrices are refused, as on the CPU.
        let part = pair(&g, &[c + 5, c], &vec![0.0; (c + 5) * c]);
        let (ge, ce) = (
            g.softmax_rows(&part.g, true).unwrap_err().to_string(),
            cpu().softmax_rows(&part.c, true).unwrap_err().to_string(),
        );
        assert_eq!(ge, ce);
    }
    // Equal large scores: exactly one half each, no overflow.
    let big = pair(&g, &[1, 2], &[1000.0, 1000.0]);
    let y = g.softmax_rows(&big.g, false).unwrap();
    assert_eq!(g.to_f64(&y).unwrap(), vec![0.5, 0.5]);
    // The CPU's refusals, message for message.
    let x = rand_pair(&g, &mut rng, &[3, 4, 5], 1.0);
    let t = rand_pair(&g, &mut rng, &[3, 4, 6], 1.0);
    both_refuse(
        "softmax_rows_j tangent",
        g.softmax_rows_j(&x.g, &t.g),
        cpu().softmax_rows_j(&x.c, &t.c),
    );
    both_refuse(
        "softmax_rows_second tangent",
        g.softmax_rows_second(&x.g, &x.g, &t.g),
        cpu().softmax_rows_second(&x.c, &x.c, &t.c),
    );
    let empty = pair(&g, &[3, 0], &[]);
    both_refuse(
        "softmax_rows of empty rows",
        g.softmax_rows(&empty.g, true),
        cpu().softmax_rows(&empty.c, true),
    );
    // Empty rows are fine for the products (nothing to write), as on the CPU.
    let (gj, cj) = (
        g.softmax_rows_j(&empty.g, &empty.g).unwrap(),
        cpu().softmax_rows_j(&empty.c, &empty.c).unwrap(),
    );
    assert_eq!(gj.shape(), cj.shape());
    let four = g.zeros(&[1, 2, 3, 4]).unwrap();
    let four_c = cpu().zeros(&[1, 2, 3, 4]).unwrap();
    both_refuse(
        "softmax_rows rank 4",
        g.softmax_rows(&four, false),
        cpu().softmax_rows(&four_c, false),
    );
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

/// Whole CNNs, ResNets and a BatchNorm CNN against the CPU: training steps,
/// evaluation, curvature products, Lanczos, per-sample norms and the NTK.
#[test]
fn layer_graph_models_track_the_cpu() {
    let Some(g) = gpu() else { return };
    common::model_parity::models_track_cpu(&g);
}

/// A token transformer read out at every position under a loss with
/// ignored positions: loss, gradient, HVP, per-sample norms, accuracy.
#[test]
fn a_masked_sequence_loss_tracks_the_cpu() {
    let Some(g) = gpu() else { return };
    common::model_parity::masked_sequences_track_cpu(&g);
}
