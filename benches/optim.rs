//! `cargo bench --bench optim`: one optimizer step over a parameter arena, GPU vs CPU.
//!
//! Throughput is reported as parameters/s ("elements") and as the bytes the update must move
//! per parameter (f32 reads of θ, g and each state buffer, writes of θ and each state buffer),
//! the figure to hold against the device's copy bandwidth. The GPU clock stops only after the
//! device has finished every queued step.

mod common;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use steepest::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Asgd, CpuOptimizer, GpuBuffer, GpuOptimizer, NAdam,
    OptimizerConfig, RAdam, RmsProp, Rprop, Sgd,
};

const SIZES: [usize; 3] = [10_000, 1_000_000, 10_000_000];

/// (name, config, state buffers it reads and writes).
fn optimizers() -> Vec<(&'static str, OptimizerConfig, u64)> {
    vec![
        (
            "sgd-momentum",
            Sgd::default().lr(0.01).momentum(0.9).into(),
            1,
        ),
        ("asgd", Asgd::default().into(), 1),
        ("rmsprop", RmsProp::default().into(), 1),
        ("adam", Adam::default().into(), 2),
        ("adamw", AdamW::default().into(), 2),
        ("adagrad", Adagrad::default().into(), 1),
        ("adadelta", Adadelta::default().into(), 2),
        ("adamax", Adamax::default().into(), 2),
        ("nadam", NAdam::default().into(), 2),
        ("radam", RAdam::default().into(), 2),
        ("rprop", Rprop::default().into(), 2),
    ]
}

/// Bytes moved per parameter: read θ, g and the state; write θ and the state.
fn bytes_per_param(state_buffers: u64) -> u64 {
    4 * (2 + state_buffers) + 4 * (1 + state_buffers)
}

fn bench_optim(c: &mut Criterion) {
    let gpu = common::gpu_or_skip();

    let mut group = c.benchmark_group("optimizer step (elements = parameters)");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (name, config, state_buffers) in optimizers() {
        for len in SIZES {
            group.throughput(Throughput::ElementsAndBytes {
                elements: len as u64,
                bytes: len as u64 * bytes_per_param(state_buffers),
            });
            let grads: Vec<f32> = (0..len).map(|i| ((i % 101) as f32 - 50.0) * 1e-3).collect();

            let mut params = vec![0.5f32; len];
            let mut cpu = CpuOptimizer::new(config, len).unwrap();
            group.bench_function(BenchmarkId::new(format!("cpu {name}"), len), |b| {
                b.iter(|| cpu.step(&mut params, &grads).unwrap())
            });

            if let Some(gpu) = &gpu {
                let ctx = gpu.context();
                let mut params = GpuBuffer::from_slice(ctx, "params", &vec![0.5f32; len]).unwrap();
                let grads = GpuBuffer::from_slice(ctx, "grads", &grads).unwrap();
                let mut opt = GpuOptimizer::new(ctx, config, len).unwrap();
                group.bench_function(BenchmarkId::new(format!("gpu {name}"), len), |b| {
                    b.iter_custom(|iters| {
                        ctx.wait().unwrap();
                        let start = Instant::now();
                        for _ in 0..iters {
                            opt.step(&mut params, &grads).unwrap();
                        }
                        ctx.wait().unwrap();
                        start.elapsed()
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_optim);
criterion_main!(benches);
