//! `cargo bench --bench predict`: prediction through a kept `Predictor` (host inputs in, host
//! outputs out, one wait per pass), GPU vs CPU, as samples/s.
//!
//! Models: 784-256-10 (ReLU) on 1024 rows, an evaluation set's pass, and 2-64-64-2 on 64 rows,
//! a small request where the round trip is most of the cost.

mod common;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use steepest::{Activation, Backend, CpuBackend, Init, Mlp, MlpSpec};

/// (label, layer widths, rows per prediction).
const MODELS: [(&str, &[usize], usize); 2] = [
    ("784-256-10", &[784, 256, 10], 1024),
    ("2-64-64-2", &[2, 64, 64, 2], 64),
];

fn bench_backend<B: Backend>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    backend: &B,
) {
    for (label, widths, rows) in MODELS {
        let mut rng = StdRng::seed_from_u64(1);
        let x = Array2::from_shape_fn((rows, widths[0]), |_| rng.random_range(-1.0f32..1.0));
        let spec = MlpSpec::stack(widths, Activation::Relu);
        let model = Mlp::new(backend, &spec, Init::HeUniform, 1).unwrap();
        let mut predictor = model.predictor(rows).unwrap();
        // Its buffers and pipelines are built by the first call, before the clock runs.
        predictor.predict(backend, &model, x.view()).unwrap();
        c.throughput(Throughput::Elements(rows as u64));
        c.bench_function(BenchmarkId::new(format!("{name} {label}"), rows), |b| {
            // Each prediction ends with its outputs on the host: nothing is left queued.
            b.iter(|| predictor.predict(backend, &model, x.view()).unwrap())
        });
    }
}

fn bench_predict(c: &mut Criterion) {
    let gpu = common::gpu_or_skip();
    let mut group = c.benchmark_group("prediction (elements = samples)");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    bench_backend(&mut group, "cpu", &CpuBackend);
    if let Some(gpu) = &gpu {
        bench_backend(&mut group, "gpu", gpu);
    }
    group.finish();
}

criterion_group!(benches, bench_predict);
criterion_main!(benches);
