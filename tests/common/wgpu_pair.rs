//! What the wgpu parity tests (f32 in `wgpu_parity.rs`, f16 storage in
//! `wgpu_f16.rs`) share: the backend or a skip notice, the same values on
//! the CPU reference and on wgpu, relative-error checks, and the comparison
//! of a few training steps. `round` is what the stored dtype does to a value
//! (identity for f32, rounding to the nearest f16 for f16), applied to
//! inputs and parameters on both sides so only the arithmetic differs.

use super::max_rel_err;
use lmech::backend::SgdHyper;
use lmech::curvature::flatten;
use lmech::nn::activation::Activation;
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::rng::Rng;
use lmech::{Backend, Cpu, DType, Tensor, Wgpu};

/// The wgpu backend storing `dtype`, or `None` (after a notice) where no
/// adapter offers it. In CI that is a failure: CI must have lavapipe.
pub fn gpu(dtype: DType) -> Option<Wgpu> {
    match Wgpu::new(dtype) {
        Ok(be) => Some(be),
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI must provide a wgpu adapter (Mesa lavapipe) with {dtype:?} storage: {e}"
                );
            }
            super::skip(&format!("no wgpu adapter with {dtype:?} storage ({e})"));
            None
        }
    }
}

pub fn up<B: Backend>(be: &B, shape: &[usize], data: &[f64]) -> Tensor<B> {
    be.from_f64(shape, data).unwrap()
}

pub fn down<B: Backend>(be: &B, t: &Tensor<B>) -> Vec<f64> {
    be.to_f64(t).unwrap()
}

/// The same values on both backends.
pub struct Pair {
    pub cpu: Tensor<Cpu>,
    pub gpu: Tensor<Wgpu>,
}

pub fn pair_rounded(
    g: &Wgpu,
    shape: &[usize],
    data: &[f64],
    round: fn(&[f64]) -> Vec<f64>,
) -> Pair {
    let data = round(data);
    Pair {
        cpu: up(&Cpu::f32(), shape, &data),
        gpu: up(g, shape, &data),
    }
}

pub fn close(what: &str, g: &Wgpu, got: &Tensor<Wgpu>, want: &Tensor<Cpu>, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    close_vec(what, &down(g, got), &down(&Cpu::f32(), want), tol);
}

pub fn close_vec(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let err = max_rel_err(got, want);
    assert!(
        err < tol,
        "{what}: relative error {err} over {tol}: {got:?} vs {want:?}"
    );
}

/// f32 tolerance of a sum of `k` terms.
pub fn sum_tol(k: usize) -> f64 {
    1e-6 * (k as f64).sqrt() + 1e-6
}

/// A small MLP (ensemble of `e`) on both backends from the same seeds,
/// moved off its initial point so biases are not all zero.
pub fn models(
    g: &Wgpu,
    sizes: &[usize],
    act: Activation,
    e: usize,
    round: fn(&[f64]) -> Vec<f64>,
) -> (Model<Cpu>, Model<Wgpu>) {
    let mut spec = MlpSpec::new(
        sizes[0],
        sizes[1],
        sizes.len() - 1,
        sizes[sizes.len() - 1],
        act,
    );
    spec.sizes = sizes.to_vec();
    let seeds: Vec<u64> = (0..e as u64).map(|s| 40 + s).collect();
    let cpu = Cpu::f32();
    let mut mc = Model::init(&cpu, spec.clone(), &seeds).unwrap();
    let mut mg = Model::init(g, spec, &seeds).unwrap();
    let mut rng = Rng::new(9);
    for (tc, tg) in mc.params_mut().into_iter().zip(mg.params_mut()) {
        let v: Vec<f64> = down(&cpu, tc)
            .iter()
            .map(|x| x + 0.1 * rng.normal())
            .collect();
        let v = round(&v);
        *tc = up(&cpu, tc.shape(), &v);
        *tg = up(g, tg.shape(), &v);
    }
    (mc, mg)
}

pub fn params_of<B: Backend>(be: &B, m: &Model<B>) -> Vec<f64> {
    let ts: Vec<Tensor<B>> = m.params().into_iter().cloned().collect();
    flatten(be, &ts).unwrap()
}

/// Five training steps of a 2-member ensemble on both backends, for each
/// (optimizer, loss, activation, momentum) case: the losses and final
/// parameters agree within `tol`, and the models did move. With
/// `same_accuracy`, the final accuracy counts must be equal too.
pub fn training_steps_track_cpu(
    g: &Wgpu,
    round: fn(&[f64]) -> Vec<f64>,
    cases: &[(OptimizerKind, LossKind, Activation, f64)],
    tol: f64,
    same_accuracy: bool,
) {
    let cpu = Cpu::f32();
    let mut rng = Rng::new(10);
    let (n, din, k) = (64, 12, 5);
    let x = round(&super::randn(&mut rng, n * din, 1.0));
    let labels: Vec<f64> = (0..n).map(|i| (i * 3 % k) as f64).collect();
    let targets = round(&super::randn(&mut rng, n * k, 1.0));
    for &(kind, loss, act, momentum) in cases {
        let (mut mc, mut mg) = models(g, &[din, 32, 24, k], act, 2, round);
        let (xc, xg) = (up(&cpu, &[n, din], &x), up(g, &[n, din], &x));
        let (tc, tg) = if loss == LossKind::CrossEntropy {
            (up(&cpu, &[n], &labels), up(g, &[n], &labels))
        } else {
            (up(&cpu, &[n, k], &targets), up(g, &[n, k], &targets))
        };
        let mut hyper = OptimHyper::new(kind);
        hyper.momentum = momentum;
        let lr = if kind == OptimizerKind::AdamW {
            0.01
        } else {
            0.1
        };
        let scales = vec![1.0; mc.params().len()];
        let lrs = vec![lr, 2.0 * lr];
        let mut oc = Optimizer::new(
            &cpu,
            hyper.clone(),
            Schedule::Constant,
            lrs.clone(),
            &mc.params(),
            scales.clone(),
        )
        .unwrap();
        let mut og =
            Optimizer::new(g, hyper, Schedule::Constant, lrs, &mg.params(), scales).unwrap();
        let mut losses = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let pc = mc.loss_pass(&cpu, &xc, &tc, loss, true).unwrap();
            let pg = mg.loss_pass(g, &xg, &tg, loss, true).unwrap();
            losses.0.extend(down(&cpu, &pc.loss));
            losses.1.extend(down(g, &pg.loss));
            oc.step(&cpu, mc.params_mut(), &pc.grads).unwrap();
            og.step(g, mg.params_mut(), &pg.grads).unwrap();
        }
        let what = format!("{kind:?} {loss:?} {act:?}");
        close_vec(&format!("{what} losses"), &losses.1, &losses.0, tol);
        close_vec(
            &format!("{what} parameters"),
            &params_of(g, &mg),
            &params_of(&cpu, &mc),
            tol,
        );
        // The models moved: the comparison is not of two untouched inits.
        assert!(
            losses.0[0] != losses.0[losses.0.len() - 1],
            "{what}: loss did not change"
        );
        if same_accuracy {
            let (ac, ag) = (
                cpu.count_correct(&mc.predict(&cpu, &xc).unwrap(), &up(&cpu, &[n], &labels))
                    .unwrap(),
                g.count_correct(&mg.predict(g, &xg).unwrap(), &up(g, &[n], &labels))
                    .unwrap(),
            );
            assert_eq!(ac, ag, "{what}: accuracy counts");
        }
    }
}

/// Every loss head (cross-entropy on labels, both squared losses on shared
/// and per-member targets) on a 3-member ensemble: losses within `loss_tol`,
/// gradients and loss Hessian-vector products within `tol`.
pub fn losses_track_cpu(g: &Wgpu, round: fn(&[f64]) -> Vec<f64>, loss_tol: f64, tol: f64) {
    let cpu = Cpu::f32();
    let mut rng = Rng::new(5);
    let (e, rows, k) = (3, 50, 10);
    let mut rand = |n: usize, scale: f64| super::randn(&mut rng, n, scale);
    let f = pair_rounded(g, &[e, rows, k], &rand(e * rows * k, 3.0), round);
    let fd = pair_rounded(g, &[e, rows, k], &rand(e * rows * k, 1.0), round);
    let labels: Vec<f64> = (0..rows).map(|i| (i % k) as f64).collect();
    let labels = pair_rounded(g, &[rows], &labels, round);
    let shared = pair_rounded(g, &[rows, k], &rand(rows * k, 1.0), round);
    let per_member = pair_rounded(g, &[e, rows, k], &rand(e * rows * k, 1.0), round);
    let cases = [
        (LossKind::CrossEntropy, &labels, "labels"),
        (LossKind::Mse, &shared, "shared targets"),
        (LossKind::Mse, &per_member, "member targets"),
        (LossKind::MseMean, &shared, "shared targets"),
        (LossKind::MseMean, &per_member, "member targets"),
    ];
    for (kind, t, name) in cases {
        let (cl, cg) = cpu.loss(kind, &f.cpu, &t.cpu).unwrap();
        let (gl, gg) = g.loss(kind, &f.gpu, &t.gpu).unwrap();
        close(&format!("{kind:?} {name} loss"), g, &gl, &cl, loss_tol);
        close(&format!("{kind:?} {name} gradient"), g, &gg, &cg, tol);
        let want = cpu.loss_hvp(kind, &f.cpu, &t.cpu, &fd.cpu).unwrap();
        let got = g.loss_hvp(kind, &f.gpu, &t.gpu, &fd.gpu).unwrap();
        close(&format!("{kind:?} {name} hvp"), g, &got, &want, tol);
    }
}

/// Applies `grads` (each `[e, n]`) to `p` by SGD with `hp` on both backends,
/// with a zero momentum buffer (empty when momentum is 0), and checks the
/// parameters and the buffer agree within `tol`. `round` is applied to the
/// gradients as to every stored input.
pub fn sgd_steps_track_cpu(
    g: &Wgpu,
    p: &mut Pair,
    grads: &[Vec<f64>],
    hp: &SgdHyper,
    round: fn(&[f64]) -> Vec<f64>,
    tol: f64,
) {
    let cpu = Cpu::f32();
    let shape = p.cpu.shape().to_vec();
    let buf_shape: &[usize] = if hp.momentum == 0.0 { &[0] } else { &shape };
    let mut buf = Pair {
        cpu: cpu.zeros(buf_shape).unwrap(),
        gpu: g.zeros(buf_shape).unwrap(),
    };
    for gr in grads {
        let gr = pair_rounded(g, &shape, gr, round);
        cpu.sgd_update(&mut p.cpu, &gr.cpu, &mut buf.cpu, hp)
            .unwrap();
        g.sgd_update(&mut p.gpu, &gr.gpu, &mut buf.gpu, hp).unwrap();
    }
    let what = format!(
        "sgd lr {:?} momentum {} nesterov {} wd {}",
        hp.lr, hp.momentum, hp.nesterov, hp.weight_decay
    );
    close(&what, g, &p.gpu, &p.cpu, tol);
    if hp.momentum != 0.0 {
        close(&format!("{what} buffer"), g, &buf.gpu, &buf.cpu, tol);
    }
}

/// The reductions that come back to the host (per-member sums of squares and
/// of absolute values, argmax hits against labels) of `x` (`[e, rows, n]`)
/// agree with the CPU: the sums to f32 rounding of `rows * n` terms, the
/// counts exactly.
pub fn host_reductions_track_cpu(g: &Wgpu, x: &Pair, round: fn(&[f64]) -> Vec<f64>, what: &str) {
    let cpu = Cpu::f32();
    let (_, rows, n) = x.cpu.as_batched().unwrap();
    let per = rows * n;
    close_vec(
        &format!("sum_sq {what}"),
        &g.sum_sq(&x.gpu).unwrap(),
        &cpu.sum_sq(&x.cpu).unwrap(),
        sum_tol(per),
    );
    close_vec(
        &format!("sum_abs {what}"),
        &g.sum_abs(&x.gpu).unwrap(),
        &cpu.sum_abs(&x.cpu).unwrap(),
        sum_tol(per),
    );
    let labels: Vec<f64> = (0..rows).map(|i| (i * 7 % n) as f64).collect();
    let l = pair_rounded(g, &[rows], &labels, round);
    assert_eq!(
        g.count_correct(&x.gpu, &l.gpu).unwrap(),
        cpu.count_correct(&x.cpu, &l.cpu).unwrap(),
        "count_correct {what}"
    );
}
