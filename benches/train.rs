//! `cargo bench --bench train`: one training step (gather, forward, loss, backward, Adam
//! update) of an MLP, GPU vs CPU, as samples/s.
//!
//! Models: 784-256-10 (ReLU) at batch 128, the MNIST-sized classic, and 1024-1024-1024-10
//! (ReLU) at batch 512, where the matmuls dominate. The GPU clock stops only after the device
//! has finished every queued step.

mod common;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use steepest::{
    Activation, Adam, Backend, CpuBackend, Dataset, Init, Loss, Mlp, MlpSpec, Session, Trainer,
};

/// (label, layer widths, batch size).
const MODELS: [(&str, &[usize], usize); 2] = [
    ("784-256-10", &[784, 256, 10], 128),
    ("1024-1024-1024-10", &[1024, 1024, 1024, 10], 512),
];

/// Four batches of random inputs with random labels: the step's cost does not depend on them.
fn dataset(features: usize, classes: usize, batch: usize) -> Dataset {
    let mut rng = StdRng::seed_from_u64(1);
    let n = 4 * batch;
    let x = Array2::from_shape_fn((n, features), |_| rng.random_range(-1.0f32..1.0));
    let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..classes)).collect();
    Dataset::classification(x, &labels, classes).expect("valid synthetic data")
}

fn bench_backend<B: Backend>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    backend: &B,
    wait: impl Fn(),
) {
    for (label, widths, batch) in MODELS {
        let data = dataset(widths[0], *widths.last().unwrap_or(&2), batch);
        let trainer =
            Trainer::new(Adam::default().lr(1e-3), Loss::SoftmaxCrossEntropy).batch_size(batch);
        let mut model = Mlp::new(
            backend,
            &MlpSpec::stack(widths, Activation::Relu),
            Init::HeUniform,
            1,
        )
        .unwrap();
        let mut session = Session::new(&trainer, backend, &mut model, &data, None).unwrap();
        // Warm the pipelines and the workspace before the clock runs.
        session.step().unwrap();
        wait();
        c.throughput(Throughput::Elements(batch as u64));
        c.bench_function(BenchmarkId::new(format!("{name} {label}"), batch), |b| {
            b.iter_custom(|iters| {
                wait();
                let start = Instant::now();
                for _ in 0..iters {
                    session.step().unwrap();
                }
                wait();
                start.elapsed()
            })
        });
    }
}

fn bench_train(c: &mut Criterion) {
    let gpu = common::gpu_or_skip();
    let mut group = c.benchmark_group("training step (elements = samples)");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    bench_backend(&mut group, "cpu", &CpuBackend, || {});
    if let Some(gpu) = &gpu {
        bench_backend(&mut group, "gpu", gpu, || gpu.context().wait().unwrap());
    }
    group.finish();
}

criterion_group!(benches, bench_train);
criterion_main!(benches);
