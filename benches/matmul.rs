//! `cargo bench --bench matmul`: GPU vs CPU matmul throughput.
//!
//! Throughput is reported by criterion as "elements/s" where one element is one floating-point
//! operation (2·M·N·K per product), so elem/s reads as FLOP/s. The GPU clock stops only after
//! the device has finished every queued product.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use steepest::{Backend, CpuBackend, Matmul};

/// (name, M, N, K). Squares, then a tall-skinny product (a batch of 16384 through a 1024→64
/// layer).
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("square", 128, 128, 128),
    ("square", 256, 256, 256),
    ("square", 512, 512, 512),
    ("square", 1024, 1024, 1024),
    ("square", 2048, 2048, 2048),
    ("tall-skinny", 16384, 64, 1024),
];

fn operands(m: usize, n: usize, k: usize) -> (Array2<f32>, Array2<f32>) {
    // Deterministic, varied, and in a range where nothing overflows or denormalises.
    let a = Array2::from_shape_fn((m, k), |(i, j)| {
        ((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5
    });
    let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 13 + j * 7) % 89) as f32 / 89.0 - 0.5);
    (a, b)
}

/// Times `iters` products on `backend`; `finish` blocks until they are all done.
fn run<B: Backend>(
    backend: &B,
    a: &B::Matrix,
    b: &B::Matrix,
    out: &mut B::Matrix,
    iters: u64,
    finish: impl Fn(),
) -> Duration {
    finish();
    let start = Instant::now();
    for _ in 0..iters {
        backend.matmul_into(Matmul::nn(), a, b, None, out).unwrap();
    }
    finish();
    black_box(out);
    start.elapsed()
}

fn bench_matmul(c: &mut Criterion) {
    let gpu = common::gpu_or_skip();

    let mut group = c.benchmark_group("matmul (elements = FLOPs)");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for &(name, m, n, k) in SHAPES {
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let label = format!("{name} {m}x{n}x{k}");
        let (a, b) = operands(m, n, k);

        let mut out = Array2::zeros((m, n));
        group.bench_function(BenchmarkId::new("cpu", &label), |bench| {
            bench.iter_custom(|iters| run(&CpuBackend, &a, &b, &mut out, iters, || ()))
        });

        if let Some(gpu) = &gpu {
            let (ga, gb) = (gpu.upload(a.view()).unwrap(), gpu.upload(b.view()).unwrap());
            let mut gout = gpu.zeros(m, n).unwrap();
            let finish = || gpu.context().wait().unwrap();
            group.bench_function(BenchmarkId::new("gpu", &label), |bench| {
                bench.iter_custom(|iters| run(gpu, &ga, &gb, &mut gout, iters, finish))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_matmul);
criterion_main!(benches);
