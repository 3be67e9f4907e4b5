//! Criterion benchmark of one training step (forward, backward, SGD update)
//! of the MLP 784-1024-1024-10, tanh, batch 1000, f32 on the CPU: the
//! workload BENCHMARKS.md compares with PyTorch (bench/pytorch/train_step.py).

mod common;

use common::MlpStep;
use criterion::{criterion_group, criterion_main, Criterion};
use lmech::Cpu;

fn train_step(c: &mut Criterion) {
    let be = Cpu::f32();
    let mut w = MlpStep::new(&be);
    let mut group = c.benchmark_group("mlp_784_1024_1024_10_tanh_b1000_f32");
    group.sample_size(20);
    group.bench_function("forward_backward", |b| b.iter(|| w.step(&be, false)));
    group.bench_function("train_step_sgd", |b| b.iter(|| w.step(&be, true)));
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
