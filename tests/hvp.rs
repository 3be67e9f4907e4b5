//! Forward-over-reverse on the tape: every op's jvp against central
//! differences of its forward pass, Hessian-vector products against central
//! differences of gradients (f64), and the Gauss-Newton product's defining
//! properties — all through chunked passes over a data set.

mod common;

use common::{max_rel_err, randn, tensor, values};
use lmech::curvature::{flatten, LossOnData};
use lmech::nn::activation::{Activation, ALL_ACTIVATIONS};
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::nn::parametrization::Parametrization;
use lmech::rng::Rng;
use lmech::tape::{BiasAct, Curvature, Dense, LossHead, Op, Tape};
use lmech::{Cpu, Tensor};

/// jvp of one op against (f(x + h t) - f(x - h t)) / 2h.
fn jvp_error(
    make: &dyn Fn() -> Box<dyn Op<Cpu>>,
    inputs: &[(Vec<usize>, Vec<f64>)],
    seed: u64,
) -> f64 {
    let be = Cpu::f64();
    let mut rng = Rng::new(seed);
    let tangents: Vec<Vec<f64>> = inputs
        .iter()
        .map(|(_, v)| randn(&mut rng, v.len(), 1.0))
        .collect();
    let run = |shift: f64, with_tangent: bool| -> (Vec<f64>, Option<Vec<f64>>) {
        let mut tape = Tape::new(be.clone());
        let vars: Vec<_> = inputs
            .iter()
            .zip(&tangents)
            .map(|((s, v), t)| {
                let shifted: Vec<f64> = v.iter().zip(t).map(|(a, b)| a + shift * b).collect();
                if with_tangent {
                    tape.leaf_with_tangent(tensor(&be, s, &shifted), tensor(&be, s, t), true)
                        .unwrap()
                } else {
                    tape.leaf(tensor(&be, s, &shifted), true)
                }
            })
            .collect();
        let out = tape.apply(make(), &vars).unwrap();
        (
            values(&be, tape.value(out)),
            tape.tangent(out).map(|t| values(&be, t)),
        )
    };
    let h = 1e-6;
    let (_, jvp) = run(0.0, true);
    let (plus, _) = run(h, false);
    let (minus, _) = run(-h, false);
    let fd: Vec<f64> = plus
        .iter()
        .zip(&minus)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect();
    max_rel_err(&jvp.expect("no tangent"), &fd)
}

#[test]
fn every_op_jvp_matches_finite_differences() {
    let mut rng = Rng::new(1);
    let x = randn(&mut rng, 2 * 3 * 4, 1.0);
    let w = randn(&mut rng, 2 * 5 * 4, 1.0);
    let err = jvp_error(
        &|| Box::new(Dense { multiplier: 0.7 }),
        &[(vec![2, 3, 4], x), (vec![2, 5, 4], w)],
        2,
    );
    assert!(err < 1e-8, "dense: {err}");
    for (i, act) in ALL_ACTIVATIONS.into_iter().enumerate() {
        let z = randn(&mut rng, 2 * 3 * 4, 1.5);
        let b = randn(&mut rng, 2 * 4, 1.0);
        let err = jvp_error(
            &|| Box::new(BiasAct::new(act, 0.5)),
            &[(vec![2, 3, 4], z), (vec![2, 4], b)],
            3 + i as u64,
        );
        assert!(err < 1e-7, "{act:?}: {err}");
    }
    let f = randn(&mut rng, 2 * 6 * 3, 2.0);
    let be = Cpu::f64();
    let labels = tensor(&be, &[6], &[0.0, 1.0, 2.0, 2.0, 1.0, 0.0]);
    let err = jvp_error(
        &|| Box::new(LossHead::new(LossKind::CrossEntropy, labels.clone())),
        &[(vec![2, 6, 3], f.clone())],
        20,
    );
    assert!(err < 1e-7, "xent: {err}");
    let y = tensor(&be, &[6, 3], &randn(&mut rng, 18, 1.0));
    let err = jvp_error(
        &|| Box::new(LossHead::new(LossKind::Mse, y.clone())),
        &[(vec![2, 6, 3], f)],
        21,
    );
    assert!(err < 1e-7, "mse: {err}");
}

struct Problem {
    model: Model<Cpu>,
    chunks: Vec<(Tensor<Cpu>, Tensor<Cpu>)>,
    whole: Vec<(Tensor<Cpu>, Tensor<Cpu>)>,
    kind: LossKind,
}

/// A small MLP and 10 examples, split into chunks of 4, 4 and 2.
fn problem(act: Activation, p: Parametrization, kind: LossKind, seed: u64) -> Problem {
    let be = Cpu::f64();
    let mut spec = MlpSpec::new(3, 6, 3, 3, act);
    spec.parametrization = p;
    spec.base_width = 4;
    let mut model = Model::init(&be, spec, &[seed]).unwrap();
    let mut rng = Rng::new(seed + 100);
    // Move off the initial point (muP and mean-field biases start at 0).
    for t in model.params_mut() {
        let mut v = values(&be, t);
        for x in v.iter_mut() {
            *x += 0.3 * rng.normal();
        }
        *t = tensor(&be, t.shape(), &v);
    }
    let n = 10;
    let x = randn(&mut rng, n * 3, 1.0);
    let (t, tshape): (Vec<f64>, Vec<usize>) = match kind {
        LossKind::CrossEntropy => ((0..n).map(|i| (i % 3) as f64).collect(), vec![n]),
        _ => (randn(&mut rng, n * 3, 1.0), vec![n, 3]),
    };
    let per = if kind == LossKind::CrossEntropy { 1 } else { 3 };
    let mut chunks = Vec::new();
    for (a, b) in [(0, 4), (4, 8), (8, 10)] {
        let mut ts = tshape.clone();
        ts[0] = b - a;
        chunks.push((
            tensor(&be, &[b - a, 3], &x[a * 3..b * 3]),
            tensor(&be, &ts, &t[a * per..b * per]),
        ));
    }
    let whole = vec![(tensor(&be, &[n, 3], &x), tensor(&be, &tshape, &t))];
    Problem {
        model,
        chunks,
        whole,
        kind,
    }
}

fn gradient_at(p: &Problem, theta: &[f64]) -> Vec<f64> {
    let be = Cpu::f64();
    let mut model = Model::init(&be, p.model.spec.clone(), &[0]).unwrap();
    let like: Vec<Tensor<Cpu>> = p.model.params().into_iter().cloned().collect();
    let refs: Vec<&Tensor<Cpu>> = like.iter().collect();
    let ts = lmech::curvature::unflatten(&be, theta, &refs).unwrap();
    for (dst, t) in model.params_mut().into_iter().zip(ts) {
        *dst = t;
    }
    let lod = LossOnData::new(&be, &model, p.kind, p.whole.clone()).unwrap();
    flatten(&be, &lod.gradient().unwrap().1).unwrap()
}

#[test]
fn hvp_matches_finite_differences_of_gradients() {
    let be = Cpu::f64();
    let mut seed = 0;
    let cases = [
        (Parametrization::Standard, LossKind::CrossEntropy),
        (Parametrization::Ntk, LossKind::Mse),
        (Parametrization::Mup, LossKind::MseMean),
        (Parametrization::MeanField, LossKind::CrossEntropy),
    ];
    for act in ALL_ACTIVATIONS {
        for (param, kind) in cases {
            seed += 1;
            let p = problem(act, param, kind, seed);
            let lod = LossOnData::new(&be, &p.model, kind, p.chunks.clone()).unwrap();
            let theta = flatten(
                &be,
                &p.model.params().into_iter().cloned().collect::<Vec<_>>(),
            )
            .unwrap();
            let mut rng = Rng::new(seed);
            let v = randn(&mut rng, theta.len(), 1.0);
            let hv = lod.product(&v, Curvature::Hessian).unwrap();
            let h = 1e-5;
            let plus: Vec<f64> = theta.iter().zip(&v).map(|(a, b)| a + h * b).collect();
            let minus: Vec<f64> = theta.iter().zip(&v).map(|(a, b)| a - h * b).collect();
            let (gp, gm) = (gradient_at(&p, &plus), gradient_at(&p, &minus));
            let fd: Vec<f64> = gp
                .iter()
                .zip(&gm)
                .map(|(a, b)| (a - b) / (2.0 * h))
                .collect();
            let err = max_rel_err(&hv, &fd);
            assert!(
                err < 1e-7,
                "{act:?} {param:?} {kind:?}: relative error {err}"
            );
            assert_eq!(lod.products(), 1);
        }
    }
}

#[test]
fn chunked_products_equal_one_pass_over_all_data() {
    let be = Cpu::f64();
    let p = problem(
        Activation::Tanh,
        Parametrization::Standard,
        LossKind::CrossEntropy,
        7,
    );
    let chunked = LossOnData::new(&be, &p.model, p.kind, p.chunks.clone()).unwrap();
    let whole = LossOnData::new(&be, &p.model, p.kind, p.whole.clone()).unwrap();
    let mut rng = Rng::new(8);
    let v = randn(&mut rng, chunked.dim(), 1.0);
    for mode in [Curvature::Hessian, Curvature::GaussNewton] {
        let err = max_rel_err(
            &chunked.product(&v, mode).unwrap(),
            &whole.product(&v, mode).unwrap(),
        );
        assert!(err < 1e-13, "{mode:?}: {err}");
    }
    let (l1, g1) = chunked.gradient().unwrap();
    let (l2, g2) = whole.gradient().unwrap();
    assert!((l1 - l2).abs() < 1e-14 * l2.abs());
    assert!(max_rel_err(&flatten(&be, &g1).unwrap(), &flatten(&be, &g2).unwrap()) < 1e-13);
}

#[test]
fn gauss_newton_is_symmetric_psd_and_equals_the_hessian_at_zero_residual() {
    let be = Cpu::f64();
    for act in [Activation::Tanh, Activation::Gelu, Activation::Relu] {
        let p = problem(act, Parametrization::Standard, LossKind::CrossEntropy, 11);
        let lod = LossOnData::new(&be, &p.model, p.kind, p.chunks.clone()).unwrap();
        let mut rng = Rng::new(12);
        let (u, v) = (
            randn(&mut rng, lod.dim(), 1.0),
            randn(&mut rng, lod.dim(), 1.0),
        );
        let gu = lod.product(&u, Curvature::GaussNewton).unwrap();
        let gv = lod.product(&v, Curvature::GaussNewton).unwrap();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let (a, b) = (dot(&u, &gv), dot(&v, &gu));
        assert!(
            (a - b).abs() < 1e-12 * a.abs().max(1.0),
            "{act:?}: u^T G v = {a}, v^T G u = {b}"
        );
        assert!(dot(&v, &gv) >= 0.0, "{act:?}: G is not PSD");

        // With MSE and targets equal to the model's own outputs the residual
        // is zero, and the Hessian reduces to the Gauss-Newton matrix.
        let q = problem(act, Parametrization::Standard, LossKind::Mse, 13);
        let fitted: Vec<(Tensor<Cpu>, Tensor<Cpu>)> = q
            .chunks
            .iter()
            .map(|(x, _)| {
                let f = q.model.predict(&be, x).unwrap();
                let rows = x.shape()[0];
                (x.clone(), f.reshape(&[rows, 3]).unwrap())
            })
            .collect();
        let lod = LossOnData::new(&be, &q.model, LossKind::Mse, fitted).unwrap();
        let hv = lod.product(&v[..lod.dim()], Curvature::Hessian).unwrap();
        let gv = lod
            .product(&v[..lod.dim()], Curvature::GaussNewton)
            .unwrap();
        assert!(max_rel_err(&hv, &gv) < 1e-12, "{act:?}");
        // Away from zero residual they differ (so the test above can fail).
        let lod = LossOnData::new(&be, &q.model, LossKind::Mse, q.chunks.clone()).unwrap();
        let hv = lod.product(&v[..lod.dim()], Curvature::Hessian).unwrap();
        let gv = lod
            .product(&v[..lod.dim()], Curvature::GaussNewton)
            .unwrap();
        assert!(max_rel_err(&hv, &gv) > 1e-3, "{act:?}");
    }
}

#[test]
fn backward_with_tangents_also_gives_the_gradient_when_asked() {
    let be = Cpu::f64();
    let p = problem(
        Activation::Silu,
        Parametrization::Ntk,
        LossKind::CrossEntropy,
        21,
    );
    let (x, t) = p.whole[0].clone();
    let run = |leaf_cotangents: bool| {
        let mut tape = Tape::new(be.clone());
        let xv = tape.leaf(x.clone(), false);
        let pv: Vec<_> = p
            .model
            .params()
            .iter()
            .map(|q| {
                let v = randn(&mut Rng::new(23), q.numel(), 1.0);
                tape.leaf_with_tangent((*q).clone(), tensor(&be, q.shape(), &v), true)
                    .unwrap()
            })
            .collect();
        let vars = p.model.forward_with(&mut tape, xv, &pv).unwrap();
        let l = tape
            .apply(Box::new(LossHead::new(p.kind, t.clone())), &[vars.output])
            .unwrap();
        let plain = tape.backward(l, tensor(&be, &[1], &[1.0])).unwrap();
        let (g, d) = tape
            .backward_with_tangents(
                l,
                tensor(&be, &[1], &[1.0]),
                None,
                Curvature::Hessian,
                leaf_cotangents,
            )
            .unwrap();
        let want: Vec<Vec<f64>> = pv
            .iter()
            .map(|v| values(&be, plain.get(*v).unwrap()))
            .collect();
        let got: Vec<Option<Vec<f64>>> = pv
            .iter()
            .map(|v| g.get(*v).map(|t| values(&be, t)))
            .collect();
        let dots: Vec<Vec<f64>> = pv.iter().map(|v| values(&be, d.get(*v).unwrap())).collect();
        (want, got, dots)
    };
    let (want, got, dots_with) = run(true);
    for (w, g) in want.iter().zip(&got) {
        assert!(max_rel_err(w, g.as_ref().unwrap()) < 1e-14);
    }
    let (_, got, dots_without) = run(false);
    assert!(
        got.iter().all(|g| g.is_none()),
        "leaf gradients computed though not asked for"
    );
    assert_eq!(dots_with, dots_without);
}

#[test]
fn repeated_products_reuse_the_tape_and_agree_with_fresh_ones() {
    let be = Cpu::f64();
    for (act, kind) in [
        (Activation::Tanh, LossKind::CrossEntropy),
        (Activation::Gelu, LossKind::Mse),
    ] {
        let p = problem(act, Parametrization::Standard, kind, 31);
        // One chunk: the second and later products use the kept tape.
        let cached = LossOnData::new(&be, &p.model, kind, p.whole.clone()).unwrap();
        let mut rng = Rng::new(32);
        for mode in [
            Curvature::Hessian,
            Curvature::GaussNewton,
            Curvature::Hessian,
        ] {
            let v = randn(&mut rng, cached.dim(), 1.0);
            let fresh = LossOnData::new(&be, &p.model, kind, p.chunks.clone()).unwrap();
            let err = max_rel_err(
                &cached.product(&v, mode).unwrap(),
                &fresh.product(&v, mode).unwrap(),
            );
            assert!(err < 1e-13, "{act:?} {mode:?}: {err}");
        }
        assert_eq!(cached.products(), 3);
    }
}
