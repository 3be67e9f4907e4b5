//! Every tape op's vector-Jacobian product against central finite
//! differences in f64, and whole-MLP gradients under each parametrization
//! and activation.

mod common;

use common::{fd_check, randn};
use lmech::nn::activation::{Activation, ALL_ACTIVATIONS};
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::nn::parametrization::Parametrization;
use lmech::rng::Rng;
use lmech::tape::{BiasAct, Dense, LossHead, Tape};
use lmech::{Backend, Cpu};

const TOL: f64 = 1e-7;

#[test]
fn dense_vjp_matches_finite_differences() {
    let mut rng = Rng::new(1);
    // Ensemble of 2, batch 3, 4 -> 5, with a forward multiplier.
    let x = randn(&mut rng, 2 * 3 * 4, 1.0);
    let w = randn(&mut rng, 2 * 5 * 4, 1.0);
    let err = fd_check(
        &[(vec![2, 3, 4], x, true), (vec![2, 5, 4], w, true)],
        |t, v| t.apply(Box::new(Dense { multiplier: 0.7 }), &[v[0], v[1]]),
        2,
    );
    assert!(err < TOL, "dense: {err}");
}

#[test]
fn dense_with_shared_input_gives_weight_gradients_per_member() {
    let mut rng = Rng::new(3);
    let x = randn(&mut rng, 3 * 4, 1.0);
    let w = randn(&mut rng, 3 * 2 * 4, 1.0);
    let err = fd_check(
        &[(vec![3, 4], x, false), (vec![3, 2, 4], w, true)],
        |t, v| t.apply(Box::new(Dense { multiplier: 1.3 }), &[v[0], v[1]]),
        4,
    );
    assert!(err < TOL, "dense shared x: {err}");
}

#[test]
fn bias_act_vjp_matches_finite_differences_for_every_activation() {
    for (i, act) in ALL_ACTIVATIONS.into_iter().enumerate() {
        let mut rng = Rng::new(10 + i as u64);
        let z = randn(&mut rng, 2 * 3 * 4, 1.5);
        let b = randn(&mut rng, 2 * 4, 1.0);
        let err = fd_check(
            &[(vec![2, 3, 4], z.clone(), true), (vec![2, 4], b, true)],
            |t, v| t.apply(Box::new(BiasAct::new(act, 0.5)), &[v[0], v[1]]),
            20 + i as u64,
        );
        assert!(err < TOL, "{act:?} with bias: {err}");
        let err = fd_check(
            &[(vec![2, 3, 4], z, true)],
            |t, v| t.apply(Box::new(BiasAct::new(act, 1.0)), &[v[0]]),
            30 + i as u64,
        );
        assert!(err < TOL, "{act:?} without bias: {err}");
    }
}

#[test]
fn loss_heads_vjp_match_finite_differences() {
    let mut rng = Rng::new(5);
    let f = randn(&mut rng, 2 * 6 * 3, 2.0);
    let labels: Vec<f64> = (0..6).map(|i| (i % 3) as f64).collect();
    let be = Cpu::f64();
    let lab = be.from_f64(&[6], &labels).unwrap();
    let err = fd_check(
        &[(vec![2, 6, 3], f.clone(), true)],
        |t, v| {
            t.apply(
                Box::new(LossHead::new(LossKind::CrossEntropy, lab.clone())),
                &[v[0]],
            )
        },
        6,
    );
    assert!(err < TOL, "xent: {err}");
    let y = randn(&mut rng, 6 * 3, 1.0);
    let target = be.from_f64(&[6, 3], &y).unwrap();
    for kind in [LossKind::Mse, LossKind::MseMean] {
        let err = fd_check(
            &[(vec![2, 6, 3], f.clone(), true)],
            |t, v| t.apply(Box::new(LossHead::new(kind, target.clone())), &[v[0]]),
            7,
        );
        assert!(err < TOL, "{kind:?}: {err}");
    }
}

#[test]
fn loss_values_follow_their_conventions() {
    let be = Cpu::f64();
    // Two examples, two outputs.
    let f = be.from_f64(&[1, 2, 2], &[1.0, 2.0, 0.0, -1.0]).unwrap();
    let y = be.from_f64(&[2, 2], &[0.0, 0.0, 1.0, 1.0]).unwrap();
    let (l, _) = be.loss(LossKind::Mse, &f, &y).unwrap();
    // 0.5 * (1 + 4) and 0.5 * (1 + 4), averaged over 2 examples.
    assert!((be.to_f64(&l).unwrap()[0] - 2.5).abs() < 1e-15);
    let (l, _) = be.loss(LossKind::MseMean, &f, &y).unwrap();
    assert!((be.to_f64(&l).unwrap()[0] - 2.5).abs() < 1e-15);
    let (l, _) = be
        .loss(
            LossKind::Mse,
            &f,
            &be.from_f64(&[2, 2], &[0.0, 0.0, 0.0, 0.0]).unwrap(),
        )
        .unwrap();
    assert!((be.to_f64(&l).unwrap()[0] - 1.5).abs() < 1e-15);
    let (l, _) = be
        .loss(
            LossKind::MseMean,
            &f,
            &be.from_f64(&[2, 2], &[0.0; 4]).unwrap(),
        )
        .unwrap();
    assert!((be.to_f64(&l).unwrap()[0] - 1.5).abs() < 1e-15);
    // Cross-entropy is stable for huge logits.
    let f = be.from_f64(&[1, 1, 3], &[1000.0, 0.0, -1000.0]).unwrap();
    let lab = be.from_f64(&[1], &[1.0]).unwrap();
    let (l, g) = be.loss(LossKind::CrossEntropy, &f, &lab).unwrap();
    assert!((be.to_f64(&l).unwrap()[0] - 1000.0).abs() < 1e-9);
    assert!(be.to_f64(&g).unwrap().iter().all(|v| v.is_finite()));
}

fn mlp_gradcheck(act: Activation, p: Parametrization, bias: bool, seed: u64) -> f64 {
    let be = Cpu::f64();
    let mut spec = MlpSpec::new(3, 5, 3, 2, act);
    spec.parametrization = p;
    spec.bias = bias;
    spec.base_width = 4;
    let model = Model::init(&be, spec, &[seed, seed + 1]).unwrap();
    let mut rng = Rng::new(seed);
    let x = randn(&mut rng, 4 * 3, 1.0);
    let y = randn(&mut rng, 4 * 2, 1.0);
    let target = be.from_f64(&[4, 2], &y).unwrap();
    let mut inputs = vec![(vec![4, 3], x, false)];
    for t in model.params() {
        let mut v = be.to_f64(t).unwrap();
        // muP and mean-field start biases at zero: move every parameter off
        // its initial point so gradients are checked somewhere generic.
        for x in v.iter_mut() {
            *x += 0.2 * rng.normal();
        }
        inputs.push((t.shape().to_vec(), v, true));
    }
    fd_check(
        &inputs,
        |tape: &mut Tape<Cpu>, v| {
            let fv = model.forward_with(tape, v[0], &v[1..])?;
            tape.apply(
                Box::new(LossHead::new(LossKind::Mse, target.clone())),
                &[fv.output],
            )
        },
        seed,
    )
}

#[test]
fn mlp_gradients_match_finite_differences_under_every_parametrization_and_activation() {
    let params = [
        Parametrization::Standard,
        Parametrization::Ntk,
        Parametrization::Mup,
        Parametrization::MeanField,
    ];
    let mut seed = 100;
    for p in params {
        for act in ALL_ACTIVATIONS {
            for bias in [true, false] {
                seed += 1;
                let err = mlp_gradcheck(act, p, bias, seed);
                assert!(err < TOL, "{p:?} {act:?} bias={bias}: relative error {err}");
            }
        }
    }
}
