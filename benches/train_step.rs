//! Criterion benchmark of one training step (forward, backward, SGD update)
//! of the MLP 784-1024-1024-10, tanh, batch 1000, f32 on the CPU: the
//! workload BENCHMARKS.md compares with PyTorch (bench/pytorch/train_step.py).

use criterion::{criterion_group, criterion_main, Criterion};
use lmech::nn::activation::Activation;
use lmech::nn::loss::LossKind;
use lmech::nn::mlp::{Mlp, MlpSpec};
use lmech::optim::{OptimHyper, Optimizer, OptimizerKind, Schedule};
use lmech::rng::Rng;
use lmech::{Backend, Cpu};

const BATCH: usize = 1000;

fn train_step(c: &mut Criterion) {
    let be = Cpu::f32();
    let spec = MlpSpec::new(784, 1024, 3, 10, Activation::Tanh);
    let mut model = Mlp::init(&be, spec, &[0]).unwrap();
    let mut rng = Rng::new(1);
    let x: Vec<f64> = (0..BATCH * 784).map(|_| rng.normal()).collect();
    let labels: Vec<f64> = (0..BATCH).map(|_| rng.below(10) as f64).collect();
    let x = be.from_f64(&[BATCH, 784], &x).unwrap();
    let labels = be.from_f64(&[BATCH], &labels).unwrap();
    let mut opt = Optimizer::new(
        &be,
        OptimHyper::new(OptimizerKind::Sgd),
        Schedule::Constant,
        vec![1e-3],
        &model.params(),
        vec![1.0; model.params().len()],
    )
    .unwrap();
    let step = |model: &mut Mlp<Cpu>, opt: &mut Optimizer<Cpu>, update: bool| {
        let pass = model
            .loss_pass(&be, &x, &labels, LossKind::CrossEntropy, true)
            .unwrap();
        if update {
            opt.step(&be, model.params_mut(), &pass.grads).unwrap();
        }
    };
    let mut group = c.benchmark_group("mlp_784_1024_1024_10_tanh_b1000_f32");
    group.sample_size(20);
    group.bench_function("forward_backward", |b| {
        b.iter(|| step(&mut model, &mut opt, false))
    });
    group.bench_function("train_step_sgd", |b| {
        b.iter(|| step(&mut model, &mut opt, true))
    });
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
