//! An ensemble stepped with its members apart (`lmech::member_steps`, what
//! the CPU trainer does between logged steps) against the same ensemble
//! stepped packed, in f64: the same weights, BatchNorm statistics and
//! optimizer state after several steps, for SGD with momentum, Adam and
//! RMSProp; and a member whose loss stops being finite left where it was
//! while the others go on. (`tests/sweep.rs` checks whole ensemble runs,
//! which mix both kinds of step, against the same runs one by one.)

mod common;

use common::{batch_norm_layer, randn, tensor, values};
use lmech::member_steps::MemberSteps;
use lmech::nn::activation::Activation;
use lmech::nn::graph::ModelSpec;
use lmech::nn::layer_spec::LayerSpec;
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::MlpSpec;
use lmech::nn::model::Model;
use lmech::nn::parametrization::Parametrization;
use lmech::nn::shape::Shape;
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::rng::Rng;
use lmech::{Cpu, Tensor};

/// dense -> BatchNorm1d -> tanh -> dense: parameters and running
/// statistics.
fn bn_mlp() -> ModelSpec {
    ModelSpec {
        input: Shape::Flat(5),
        layers: vec![
            LayerSpec::Dense {
                width: 7,
                bias: false,
                activation: None,
            },
            batch_norm_layer(),
            LayerSpec::Activation {
                activation: "tanh".into(),
            },
            LayerSpec::Dense {
                width: 3,
                bias: true,
                activation: None,
            },
        ],
        parametrization: Parametrization::Standard,
        width: 7,
        base_width: 7,
    }
}

fn batch(be: &Cpu, n: usize, d: usize, seed: u64) -> (Tensor<Cpu>, Tensor<Cpu>) {
    let mut rng = Rng::new(seed);
    let x = tensor(be, &[n, d], &randn(&mut rng, n * d, 1.0));
    let y: Vec<f64> = (0..n).map(|i| (i % 3) as f64).collect();
    (x, tensor(be, &[n], &y))
}

fn optimizer(be: &Cpu, model: &Model<Cpu>, hyper: &OptimHyper, lrs: &[f64]) -> Optimizer<Cpu> {
    Optimizer::new(
        be,
        hyper.clone(),
        Schedule::Constant,
        lrs.to_vec(),
        &model.params(),
        model.lr_scales(hyper.kind.family()),
    )
    .unwrap()
}

/// Every number the model and optimizer carry from step to step.
fn state(be: &Cpu, model: &Model<Cpu>, opt: &Optimizer<Cpu>) -> Vec<f64> {
    let mut out = Vec::new();
    for t in model.params().into_iter().chain(model.buffers()) {
        out.extend(values(be, t));
    }
    for (a, b) in opt.state() {
        out.extend(values(be, a));
        out.extend(values(be, b));
    }
    out.push(opt.steps_done() as f64);
    out
}

#[test]
fn members_stepped_apart_end_where_the_packed_ensemble_ends() {
    let be = Cpu::f64();
    let lrs = [0.1, 0.03, 0.01];
    let seeds = [1, 2, 3];
    let mut momentum = OptimHyper::new(OptimizerKind::Sgd);
    momentum.momentum = 0.9;
    momentum.nesterov = true;
    momentum.weight_decay = 1e-3;
    let mut adamw = OptimHyper::new(OptimizerKind::AdamW);
    adamw.weight_decay = 0.01;
    let hypers = [momentum, adamw, OptimHyper::new(OptimizerKind::RmsProp)];
    for hyper in &hypers {
        let mut packed = Model::init(&be, bn_mlp(), &seeds).unwrap();
        let mut packed_opt = optimizer(&be, &packed, hyper, &lrs);
        let mut joined = Model::init(&be, bn_mlp(), &seeds).unwrap();
        let mut joined_opt = optimizer(&be, &joined, hyper, &lrs);
        let mut apart = MemberSteps::split(&be, &joined, &joined_opt).unwrap();
        for step in 0..4 {
            let (x, y) = batch(&be, 6, 5, 10 + step);
            let pass = packed
                .loss_pass(&be, &x, &y, LossKind::CrossEntropy, true)
                .unwrap();
            packed.track_batch_stats(&be, &pass.batch_stats).unwrap();
            packed_opt
                .step(&be, packed.params_mut(), &pass.grads)
                .unwrap();
            let losses = apart
                .step(&be, &x, &y, LossKind::CrossEntropy, &[false; 3])
                .unwrap();
            let want = values(&be, &pass.loss);
            for (a, b) in losses.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-13 * b.abs(),
                    "{:?}: loss {a} vs {b}",
                    hyper.kind
                );
            }
        }
        apart.join(&be, &mut joined, &mut joined_opt).unwrap();
        let (a, b) = (
            state(&be, &joined, &joined_opt),
            state(&be, &packed, &packed_opt),
        );
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-12,
            "{:?}: state differs by {worst:e}",
            hyper.kind
        );
        // The running statistics moved and the optimizer state is not empty,
        // so the comparison covered them.
        assert!(values(&be, joined.buffers()[0]).iter().any(|&m| m != 0.0));
        assert_eq!(joined_opt.steps_done(), 4);
    }
}

#[test]
fn a_member_whose_loss_is_not_finite_is_left_before_its_step() {
    let be = Cpu::f64();
    let spec = MlpSpec::new(4, 6, 2, 2, Activation::Tanh);
    let mut model = Model::init(&be, spec, &[0, 1, 2]).unwrap();
    let mut opt = optimizer(
        &be,
        &model,
        &OptimHyper::new(OptimizerKind::Gd),
        &[0.05, 1e8, 0.05],
    );
    let mut rng = Rng::new(3);
    let x = tensor(&be, &[8, 4], &randn(&mut rng, 32, 1.0));
    let y = tensor(&be, &[8, 2], &randn(&mut rng, 16, 3.0));
    let mut apart = MemberSteps::split(&be, &model, &opt).unwrap();
    let mut blew_up = None;
    let mut before = Vec::new();
    for step in 0..20 {
        apart.join(&be, &mut model, &mut opt).unwrap();
        before = model.split_members(&be).unwrap();
        let losses = apart.step(&be, &x, &y, LossKind::Mse, &[false; 3]).unwrap();
        assert!(losses[0].is_finite() && losses[2].is_finite(), "{losses:?}");
        if !losses[1].is_finite() {
            blew_up = Some(step);
            break;
        }
    }
    assert!(blew_up.is_some(), "a learning rate of 1e8 should diverge");
    apart.join(&be, &mut model, &mut opt).unwrap();
    let after = model.split_members(&be).unwrap();
    for (p, q) in after[1].params().iter().zip(before[1].params()) {
        assert_eq!(values(&be, p), values(&be, q), "the diverged member moved");
    }
    for e in [0, 2] {
        let moved = after[e]
            .params()
            .iter()
            .zip(before[e].params())
            .any(|(p, q)| values(&be, p) != values(&be, q));
        assert!(moved, "member {e} did not step");
    }
    // A member marked done is skipped: NaN loss, weights untouched.
    let losses = apart
        .step(&be, &x, &y, LossKind::Mse, &[false, true, false])
        .unwrap();
    assert!(losses[1].is_nan() && losses[0].is_finite());
}
