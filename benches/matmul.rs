//! Criterion micro-benchmark of the CPU matmul on the shapes of the
//! 784-1024-1024-10 MLP at batch 1000 (forward, input-gradient and
//! weight-gradient products), to see where a training step's time goes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lmech::rng::Rng;
use lmech::{Backend, Cpu, Tensor};

fn rand(be: &Cpu, rng: &mut Rng, shape: &[usize]) -> Tensor<Cpu> {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    be.from_f64(shape, &v).unwrap()
}

/// (name, a shape, transpose a, b shape, transpose b, m, n, k)
type Case = (
    &'static str,
    [usize; 3],
    bool,
    [usize; 3],
    bool,
    usize,
    usize,
    usize,
);

fn matmul(c: &mut Criterion) {
    let be = Cpu::f32();
    let mut rng = Rng::new(0);
    let mut group = c.benchmark_group("matmul_f32");
    group.sample_size(20);
    let cases: [Case; 4] = [
        (
            "fwd_x_wT_1000x784x1024",
            [1, 1000, 784],
            false,
            [1, 1024, 784],
            true,
            1000,
            1024,
            784,
        ),
        (
            "fwd_h_wT_1000x1024x1024",
            [1, 1000, 1024],
            false,
            [1, 1024, 1024],
            true,
            1000,
            1024,
            1024,
        ),
        (
            "bwd_dz_w_1000x1024x1024",
            [1, 1000, 1024],
            false,
            [1, 1024, 1024],
            false,
            1000,
            1024,
            1024,
        ),
        (
            "bwd_dzT_x_1024x784x1000",
            [1, 1000, 1024],
            true,
            [1, 1000, 784],
            false,
            1024,
            784,
            1000,
        ),
    ];
    for (name, ash, ta, bsh, tb, m, n, k) in cases {
        let a = rand(&be, &mut rng, &ash);
        let b = rand(&be, &mut rng, &bsh);
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| be.matmul(&a, ta, &b, tb, 1.0).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, matmul);
criterion_main!(benches);
