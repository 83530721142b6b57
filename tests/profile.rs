//! Kernel timings (`GpuOptions::profile`): every op of a training step is timed under its
//! name, one run per recorded op, each charged its own time; the values trained are the ones
//! an unprofiled run gets, bit for bit; the profiler's buffers are counted and a steady step
//! still creates nothing; past the timestamps one submit holds, the work is submitted in parts
//! and still every op is timed; and without profiling, asking for the times says how to turn
//! it on.

mod common;

use ndarray::Array2;
use steepest::{
    Activation, Adam, Backend, Dataset, GpuBackend, GpuContext, GpuOptions, Init, KernelTime, Loss,
    Mlp, MlpSpec, Model, Session, Trainer,
};

/// A backend on its own context, profiled or not (the rest from the environment).
fn backend(profile: bool) -> GpuBackend {
    common::gpu(); // fails with the message that names the fix when there is no adapter
    let options = GpuOptions {
        profile,
        ..GpuOptions::from_env().unwrap()
    };
    GpuBackend::with_context(GpuContext::with_options(&options).unwrap())
}

/// A 2-16-16-2 MLP on `g`, its trainer (batch 32) and data (20 batches).
fn setup(g: &GpuBackend) -> (Trainer, Mlp<GpuBackend>, Dataset) {
    let x = Array2::from_shape_fn((640, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0);
    let labels: Vec<usize> = (0..640).map(|i| (i / 3) % 2).collect();
    let data = Dataset::classification(x, &labels, 2).unwrap();
    let spec = MlpSpec::new(2)
        .layer(16, Activation::Tanh)
        .layer(16, Activation::Relu)
        .layer(2, Activation::Identity);
    let trainer = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy).batch_size(32);
    (
        trainer,
        Mlp::new(g, &spec, Init::HeUniform, 3).unwrap(),
        data,
    )
}

/// `steps` steps of [`setup`]'s model (no epoch end among them); its parameters.
fn train(g: &GpuBackend, steps: usize) -> Vec<f32> {
    let (trainer, mut model, data) = setup(g);
    let mut session = Session::new(&trainer, g, &mut model, &data, None).unwrap();
    for _ in 0..steps {
        session.step().unwrap();
    }
    drop(session);
    model.network().parameters_flat(g).unwrap()
}

fn runs(times: &[KernelTime], op: &str) -> u64 {
    times.iter().find(|t| t.op == op).map_or(0, |t| t.runs)
}

#[test]
fn every_op_of_a_step_is_timed_under_its_name() {
    let g = backend(true);
    let ctx = g.context();
    let steps = 5;
    train(&g, steps);
    let times = ctx.take_kernel_times().unwrap();
    let steps = steps as u64;
    // One gather, the three layers' forward pass in one kernel, the loss, a one-kernel
    // backward per layer, the update: the L + 4 dispatches of a step, each its own op.
    for (op, per_step) in [
        ("gather_batch", 1),
        ("linear_chain", 1),
        ("loss", 1),
        ("linear_backward", 3),
        ("optimizer step", 1),
    ] {
        assert_eq!(runs(&times, op), per_step * steps, "{op}: {times:?}");
    }
    let total: f64 = times.iter().map(|t| t.gpu_us).sum();
    assert!(
        times
            .iter()
            .all(|t| t.gpu_us.is_finite() && t.gpu_us >= 0.0)
            && total > 0.0,
        "{times:?}"
    );
    // Taken: a fresh start.
    assert_eq!(ctx.take_kernel_times().unwrap(), Vec::new());
    // An application's own kernels are timed under one name, or the one it gives.
    ctx.record_compute(|_| ()).unwrap();
    ctx.record_compute_as("my layer", |_| ()).unwrap();
    ctx.record_compute_as("my layer", |_| ()).unwrap();
    let times = ctx.take_kernel_times().unwrap();
    assert_eq!(runs(&times, "application kernels"), 1, "{times:?}");
    assert_eq!(runs(&times, "my layer"), 2, "{times:?}");
}

/// Each op gets the time between the stamp before it and its own: a slow product between two
/// fast adds takes its own time, not theirs. The product does some 30 million times the add's
/// arithmetic: on an H200 a 256³ product (2 000 times) took no longer than the adds, whose
/// time there is mostly a dispatch's fixed cost.
#[test]
fn each_op_is_charged_its_own_time() {
    let g = backend(true);
    let ctx = g.context();
    let small = g.upload(Array2::<f32>::ones((8, 8)).view()).unwrap();
    let mut sum = g.zeros(8, 8).unwrap();
    let big = g
        .upload(Array2::from_shape_fn((1024, 1024), |(i, j)| ((i + j) % 7) as f32).view())
        .unwrap();
    let mut product = g.zeros(1024, 1024).unwrap();
    ctx.take_kernel_times().unwrap();
    for _ in 0..3 {
        g.add_into(&small, &small, &mut sum).unwrap();
        g.matmul_into(steepest::Matmul::nn(), &big, &big, None, &mut product)
            .unwrap();
        g.add_into(&small, &small, &mut sum).unwrap();
    }
    let times = ctx.take_kernel_times().unwrap();
    let us = |op| times.iter().find(|t| t.op == op).map_or(0.0, |t| t.gpu_us);
    assert_eq!(
        (runs(&times, "add"), runs(&times, "matmul")),
        (6, 3),
        "{times:?}"
    );
    assert!(us("matmul") > us("add"), "{times:?}");
}

/// The profiler's two buffers are created with the context and counted like every other; a
/// profiled steady step creates nothing either.
#[test]
fn a_profiled_context_counts_its_buffers_and_its_steps_create_nothing() {
    let (plain, g) = (backend(false), backend(true));
    let ctx = g.context();
    assert_eq!(
        ctx.counters().buffers_created,
        plain.context().counters().buffers_created + 2
    );
    let (trainer, mut model, data) = setup(&g);
    let mut session = Session::new(&trainer, &g, &mut model, &data, None).unwrap();
    let created = || {
        let c = ctx.counters();
        (
            c.buffers_created,
            c.bind_groups_created,
            c.pipelines_created,
        )
    };
    session.step().unwrap();
    let before = created();
    for _ in 0..5 {
        session.step().unwrap();
    }
    assert_eq!(created(), before);
}

#[test]
fn a_profiled_run_trains_the_same_values() {
    let plain = train(&backend(false), 7);
    let profiled = train(&backend(true), 7);
    assert!(
        common::bit_identical(&plain, &profiled),
        "profiling changed what was trained"
    );
}

#[test]
fn past_one_submits_timestamps_the_work_is_submitted_in_parts() {
    let g = backend(true);
    let ctx = g.context();
    let x = g.upload(Array2::<f32>::ones((4, 4)).view()).unwrap();
    let mut out = g.zeros(4, 4).unwrap();
    ctx.take_kernel_times().unwrap();
    let submits = ctx.submits();
    // Far more ops than one submit has timestamps for, none submitted by the caller.
    let ops = 5000;
    for _ in 0..ops {
        g.add_into(&x, &x, &mut out).unwrap();
    }
    let times = ctx.take_kernel_times().unwrap();
    assert_eq!(runs(&times, "add"), ops, "{times:?}");
    assert!(
        ctx.submits() - submits >= 2,
        "all {ops} ops went in one submit"
    );
    assert_eq!(g.download(&out).unwrap(), Array2::from_elem((4, 4), 2.0));
}

#[test]
fn without_profiling_asking_for_times_says_how_to_turn_it_on() {
    let g = backend(false);
    let message = g.context().take_kernel_times().unwrap_err().to_string();
    for needle in [
        "profiling is off",
        "GpuOptions::profile",
        "STEEPEST_PROFILE=1",
    ] {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
}

/// The ops of a step of a 2-300-300-2 MLP (batch 64), every weight frozen or none (BitFit
/// trains the biases alone), by name: with none frozen, each 300-wide layer's weight and bias
/// gradients in one `linear_grads` (the weight gradient's product, the bias summed beside it);
/// with the weights frozen, no such product, only the bias's `column_sum`. The 2-output layer
/// runs its one small-layer kernel (`linear_backward`) either way, which costs no more than
/// its product passed down alone. The gradient passed down is the same product both ways.
#[test]
fn a_bitfit_step_runs_no_weight_gradient_product() {
    let g = backend(true);
    let ctx = g.context();
    let x = Array2::from_shape_fn((640, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0);
    let labels: Vec<usize> = (0..640).map(|i| (i / 3) % 2).collect();
    let data = Dataset::classification(x, &labels, 2).unwrap();
    let spec = MlpSpec::new(2)
        .layer(300, Activation::Relu)
        .layer(300, Activation::Tanh)
        .layer(2, Activation::Identity);
    let plain = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy).batch_size(64);
    let bitfit = plain
        .clone()
        .param_group(steepest::ParamGroup::matching("*.weight").frozen());
    let step_ops = |trainer: &Trainer| {
        let mut model = Mlp::new(&g, &spec, Init::HeUniform, 3).unwrap();
        let mut session = Session::new(trainer, &g, &mut model, &data, None).unwrap();
        session.step().unwrap();
        ctx.take_kernel_times().unwrap();
        session.step().unwrap();
        ctx.take_kernel_times().unwrap()
    };
    let all = step_ops(&plain);
    let (grads, sums, small, down) = (
        runs(&all, "linear_grads"),
        runs(&all, "column_sum"),
        runs(&all, "linear_backward"),
        runs(&all, "matmul_activation_backward"),
    );
    assert_eq!((grads, sums, small, down), (2, 0, 1, 1), "{all:?}");
    let frozen = step_ops(&bitfit);
    assert_eq!(
        (
            runs(&frozen, "linear_grads"),
            runs(&frozen, "column_sum"),
            runs(&frozen, "linear_backward"),
            runs(&frozen, "matmul_activation_backward"),
        ),
        (0, 2, 1, 1),
        "{frozen:?}"
    );
}
