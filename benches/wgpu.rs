//! Criterion benchmarks of the wgpu backend on the adapter `--device wgpu`
//! would pick: square f32 matmul throughput (512, 1024, 2048) and one
//! training step (forward, backward, SGD update) of the MLP
//! 784-1024-1024-10, tanh, batch 1000 — the CPU's headline workload in
//! BENCHMARKS.md — in f32 and, where the adapter has `SHADER_F16`, with f16
//! storage. Each timed call ends by waiting for the queue (a one-value
//! readback), so the GPU's work is inside the time. Without an adapter it
//! prints why and measures nothing.
//!
//! ```sh
//! cargo bench --bench wgpu
//! ```

mod common;

use common::MlpStep;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lmech::rng::Rng;
use lmech::{Backend, DType, Tensor, Wgpu};
use std::time::Duration;

fn backend(dtype: DType) -> Option<Wgpu> {
    match Wgpu::new(dtype) {
        Ok(be) => {
            eprintln!("wgpu adapter: {}", be.describe());
            Some(be)
        }
        Err(e) => {
            eprintln!("wgpu benchmarks skipped: {e}");
            None
        }
    }
}

/// Wait until everything queued so far has run: reading one value back
/// waits for the whole queue.
fn sync(be: &Wgpu, t: &Tensor<Wgpu>) {
    be.sum_sq(t).unwrap();
}

fn matmul(c: &mut Criterion) {
    let Some(be) = backend(DType::F32) else {
        return;
    };
    let tiny = be.zeros(&[1]).unwrap();
    let mut group = c.benchmark_group("wgpu_matmul_f32");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    for n in [512usize, 1024, 2048] {
        let mut rng = Rng::new(n as u64);
        let a: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let a = be.from_f64(&[n, n], &a).unwrap();
        let b = be.from_f64(&[n, n], &b).unwrap();
        group.throughput(Throughput::Elements((2 * n * n * n) as u64));
        group.bench_function(format!("{n}x{n}x{n}"), |bench| {
            bench.iter(|| {
                let c = be.matmul(&a, false, &b, false, 1.0).unwrap();
                sync(&be, &tiny);
                c
            })
        });
    }
    group.finish();
}

fn train_step(c: &mut Criterion) {
    for dtype in [DType::F32, DType::F16] {
        if let Some(be) = backend(dtype) {
            train_step_in(c, be);
        }
    }
}

fn train_step_in(c: &mut Criterion, be: Wgpu) {
    let mut w = MlpStep::new(&be);
    let mut group = c.benchmark_group(format!(
        "wgpu_mlp_784_1024_1024_10_tanh_b1000_{}",
        be.dtype().name()
    ));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("train_step_sgd", |b| {
        b.iter(|| {
            let loss = w.step(&be, true);
            // The loss a training loop logs: the step's one readback.
            be.to_f64(&loss).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, matmul, train_step);
criterion_main!(benches);
