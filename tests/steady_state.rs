//! A steady training step creates nothing: after a warm-up, 100 steps (epoch ends, validation
//! passes, logged steps and a shorter last batch included) add no buffer, bind group or
//! pipeline, submit once per step and wait once per epoch. So does `GpuOptimizer::step`, and
//! so do random setups of every layer, loss, optimizer and setting (`common/setups.rs`).

mod common;

use ndarray::Array2;
use rand::RngExt;
use steepest::optim::Threshold;
use steepest::{
    Activation, Adam, Backend, Clip, Dataset, GpuBuffer, GpuCounters, GpuOptimizer, Init, Loss,
    Mlp, MlpSpec, ParamGroup, ReduceLrOnPlateau, Session, Sgd, Swa, Trainer, data,
};

/// What changed between two readings of the counters.
fn added(before: GpuCounters, after: GpuCounters) -> GpuCounters {
    GpuCounters {
        buffers_created: after.buffers_created - before.buffers_created,
        bind_groups_created: after.bind_groups_created - before.bind_groups_created,
        pipelines_created: after.pipelines_created - before.pipelines_created,
        shader_modules_created: after.shader_modules_created - before.shader_modules_created,
        dispatches: after.dispatches - before.dispatches,
        copies: after.copies - before.copies,
        submits: after.submits - before.submits,
        waits: after.waits - before.waits,
        throttles: after.throttles - before.throttles,
    }
}

/// Whether `ctx` runs with the default in-flight bound: CI also runs these tests with
/// `STEEPEST_MAX_DISPATCHES_IN_FLIGHT=0`, where every submit waits for the one before.
fn default_bound(ctx: &steepest::GpuContext) -> bool {
    ctx.options().max_dispatches_in_flight
        == steepest::backend::gpu::DEFAULT_MAX_DISPATCHES_IN_FLIGHT
}

fn assert_nothing_created(what: &str, change: GpuCounters) {
    assert_eq!(
        (
            change.buffers_created,
            change.bind_groups_created,
            change.pipelines_created,
            change.shader_modules_created
        ),
        (0, 0, 0, 0),
        "{what}: a steady phase created GPU objects: {change:?}"
    );
}

/// Trains `spec` on `train` (with `val`) for two warm-up epochs, then for `epochs` more of
/// `steps_per_epoch` steps each, and checks what the steady epochs created.
fn check_steady(
    what: &str,
    spec: &MlpSpec,
    trainer: &Trainer,
    (train, val): (&Dataset, &Dataset),
    steps_per_epoch: u64,
    log_every: Option<u64>,
) {
    let g = &common::own_gpu();
    let ctx = g.context();
    let mut model = Mlp::new(g, spec, Init::HeUniform, 3).unwrap();
    let mut session = Session::new(trainer, g, &mut model, train, Some(val)).unwrap();
    for _ in 0..2 {
        session.run_epoch().unwrap();
    }
    let (before, sites) = (ctx.counters(), ctx.site_count());
    let epochs = 100u64.div_ceil(steps_per_epoch);
    for _ in 0..epochs {
        let record = session.run_epoch().unwrap();
        assert!(record.loss.is_finite(), "{what}: {record:?}");
    }
    let change = added(before, ctx.counters());
    let steps = epochs * steps_per_epoch;
    assert!(steps >= 100);
    assert_nothing_created(what, change);
    assert_eq!(ctx.site_count(), sites, "{what}: the op sites grew");
    // One submit per step; each epoch end adds its validation pass (flushed before the
    // readback) and the reset of the running sums. Logged steps wait once each.
    let warm = 2 * steps_per_epoch;
    let logged = log_every.map_or(0, |every| {
        (warm + 1..=warm + steps)
            .filter(|s| s.is_multiple_of(every))
            .count() as u64
    });
    assert!(
        change.submits <= steps + 2 * epochs,
        "{what}: {} submits for {steps} steps",
        change.submits
    );
    assert_eq!(
        change.waits,
        epochs + logged,
        "{what}: waits (one per epoch, one per logged step)"
    );
    if default_bound(ctx) {
        assert_eq!(change.throttles, 0, "{what}: far below the in-flight bound");
    }
}

#[test]
fn a_steady_training_step_creates_nothing() {
    // 330 samples in batches of 64: five full batches and a last one of 10.
    let (train, val) = data::spirals(412, 0.05, 1).unwrap().split(0.2, 1).unwrap();
    assert_eq!(train.len(), 330);
    let spec = MlpSpec::new(2)
        .layer(32, Activation::Relu)
        .layer(32, Activation::Tanh)
        .layer(2, Activation::Identity);
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
        .batch_size(64)
        .monitor(true)
        .clip(Clip {
            max_norm: Some(10.0),
            max_value: None,
        })
        .log_every(7);
    check_steady("spirals MLP", &spec, &trainer, (&train, &val), 6, Some(7));
}

#[test]
fn epochs_that_keep_the_best_parameters_and_lower_the_rate_create_nothing() {
    let (train, val) = data::spirals(412, 0.05, 1).unwrap().split(0.2, 1).unwrap();
    let spec = MlpSpec::new(2)
        .layer(32, Activation::Relu)
        .layer(2, Activation::Identity);
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
        .batch_size(64)
        .epochs(20)
        .restore_best(true)
        .reduce_lr_on_plateau(
            ReduceLrOnPlateau::default()
                .factor(0.5)
                .patience(1)
                .threshold(0.05, Threshold::Relative),
        );
    let g = &common::own_gpu();
    let ctx = g.context();
    let mut model = Mlp::new(g, &spec, Init::HeUniform, 3).unwrap();
    let mut session = Session::new(&trainer, g, &mut model, &train, Some(&val)).unwrap();
    for _ in 0..2 {
        session.run_epoch().unwrap();
    }
    let before = ctx.counters();
    session.run().unwrap();
    let change = added(before, ctx.counters());
    assert_nothing_created("restore_best and reduce_lr_on_plateau", change);
    // One wait an epoch: keeping and restoring are copies on the device, a new rate is a
    // host value the next step's scalars carry.
    assert_eq!(change.waits, 18);
    let history = session.into_history();
    assert!(history.restored_epoch.is_some_and(|e| e > 2), "{history:?}");
    assert!(
        history.last().unwrap().lr < 0.01,
        "the rate fell: {history:?}"
    );
}

#[test]
fn a_steady_step_with_split_k_matmuls_creates_nothing() {
    // 300 inputs in batches of 32: the first layer's products are small outputs over a long K,
    // so their K is split (the partial sums live in a reused scratch buffer).
    let mut rng = common::rng(5);
    let x = Array2::from_shape_fn((160, 300), |_| rng.random_range(-1.0f32..1.0));
    let labels: Vec<usize> = (0..160).map(|i| i % 4).collect();
    let all = Dataset::classification(x, &labels, 4).unwrap();
    let (train, val) = all.split(0.2, 2).unwrap();
    assert_eq!(train.len(), 128);
    let spec = MlpSpec::new(300)
        .layer(24, Activation::Relu)
        .layer(4, Activation::Identity);
    let trainer = Trainer::new(
        Sgd::default().lr(0.05).momentum(0.9),
        Loss::SoftmaxCrossEntropy,
    )
    .batch_size(32);
    check_steady("300-24-4 MLP", &spec, &trainer, (&train, &val), 4, None);
}

#[test]
fn a_steady_optimizer_step_creates_nothing() {
    let g = &common::own_gpu();
    let ctx = g.context();
    let len = 10_000;
    let mut params = GpuBuffer::from_slice(ctx, "params", &vec![0.5f32; len]).unwrap();
    let grads = GpuBuffer::from_slice(ctx, "grads", &vec![0.01f32; len]).unwrap();
    let mut adam = GpuOptimizer::new(ctx, Adam::default(), len)
        .unwrap()
        .with_monitoring(true);
    adam.step(&mut params, &grads).unwrap();
    let before = ctx.counters();
    for _ in 0..100 {
        adam.step(&mut params, &grads).unwrap();
    }
    let change = added(before, ctx.counters());
    assert_nothing_created("GpuOptimizer::step", change);
    assert_eq!(change.submits, 100);
    assert_eq!(change.waits, 0, "a step never waits");
    if default_bound(ctx) {
        assert_eq!(change.throttles, 0, "200 dispatches: within the bound");
    }
}

#[test]
fn dropped_buffers_take_their_op_sites_with_them() {
    let g = &common::own_gpu();
    let ctx = g.context();
    let spec = MlpSpec::new(3).layer(5, Activation::Relu);
    let model = Mlp::new(g, &spec, Init::HeUniform, 1).unwrap();
    let sites = ctx.site_count();
    let live = ctx.live_buffers();
    for _ in 0..20 {
        // A fresh input each time: each call is a new site, which must not outlive its input.
        let x = g.upload(Array2::from_elem((4, 3), 1.0f32).view()).unwrap();
        let y = model.forward(g, &x).unwrap();
        drop((x, y));
    }
    // Sites are swept at the next recording.
    let x = g.upload(Array2::from_elem((4, 3), 1.0f32).view()).unwrap();
    model.forward(g, &x).unwrap();
    ctx.wait().unwrap();
    assert!(
        ctx.site_count() <= sites + 1,
        "{} sites kept for dropped buffers (from {sites})",
        ctx.site_count()
    );
    assert!(
        ctx.live_buffers() <= live + 6,
        "{} live buffers, {live} before",
        ctx.live_buffers()
    );
}

/// The dispatches of a training step of `spec` by `trainer` on `train`, after a first step.
fn dispatches_in_a_step(spec: &MlpSpec, trainer: &Trainer, train: &Dataset) -> u64 {
    added_by_a_step(spec, trainer, train).dispatches
}

/// What a training step of `spec` by `trainer` on `train` adds to the counters, after a
/// first step.
fn added_by_a_step(spec: &MlpSpec, trainer: &Trainer, train: &Dataset) -> GpuCounters {
    let g = &common::own_gpu();
    let ctx = g.context();
    let mut model = Mlp::new(g, spec, Init::HeUniform, 1).unwrap();
    let mut session = Session::new(trainer, g, &mut model, train, None).unwrap();
    session.step().unwrap();
    let before = ctx.counters();
    session.step().unwrap();
    added(before, ctx.counters())
}

/// What a step dispatches, counted: the batch's inputs and targets in one gather, the forward
/// pass of up to three small linear layers in one kernel (a longer chain in one per three),
/// the one-pass loss, per layer one kernel for its whole backward pass (weight and bias
/// gradients and, below the top, the gradient into the layer below multiplied by that layer's
/// activation derivative: a small layer's), and the update. For L layers,
/// 1 + ⌈L/3⌉ + 1 + L + 1: L + 4 up to three layers.
#[test]
fn a_steady_step_with_parameter_groups_creates_nothing() {
    let (train, val) = data::spirals(412, 0.05, 1).unwrap().split(0.2, 1).unwrap();
    let spec = MlpSpec::new(2)
        .layer(32, Activation::Relu)
        .layer(32, Activation::Tanh)
        .layer(2, Activation::Identity);
    let grouped = |trainer: Trainer| {
        trainer
            .param_group(ParamGroup::matching("*.bias").weight_decay(0.0))
            .param_group(ParamGroup::matching("layers.0.weight").lr_scale(0.5))
    };
    let trainer = grouped(
        Trainer::new(
            Adam::default().lr(0.01).weight_decay(0.01),
            Loss::SoftmaxCrossEntropy,
        )
        .batch_size(64)
        .clip(Clip {
            max_norm: Some(10.0),
            max_value: None,
        }),
    );
    check_steady("grouped MLP", &spec, &trainer, (&train, &val), 6, None);
    // Class weights: uploaded once, bound by the loss's op site like its other inputs.
    let weighted = trainer.clone().class_weights(vec![0.7, 1.6]);
    check_steady(
        "class-weighted MLP",
        &spec,
        &weighted,
        (&train, &val),
        6,
        None,
    );

    // The update is one dispatch per group, however many tensors each holds: the weights of
    // layers 1 and 2 with the optimizer's settings, layer 0's at half the rate, the three
    // biases without decay; so a step dispatches two more kernels than without groups.
    let dispatches = |trainer: &Trainer| dispatches_in_a_step(&spec, trainer, &train);
    let plain = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy).batch_size(64);
    assert_eq!(dispatches(&grouped(plain.clone())), dispatches(&plain) + 2);
}

/// Frozen layers at the bottom run no backward pass (PyTorch's autograd stops where nothing
/// below needs a gradient) and no update: counted.
#[test]
fn frozen_layers_below_the_trained_ones_run_no_backward_pass() {
    let (train, val) = data::spirals(412, 0.05, 1).unwrap().split(0.2, 1).unwrap();
    let spec = MlpSpec::new(2)
        .layer(32, Activation::Relu)
        .layer(32, Activation::Tanh)
        .layer(2, Activation::Identity);
    let frozen = |trainer: Trainer, patterns: &[&str]| {
        let group = patterns[1..]
            .iter()
            .fold(ParamGroup::matching(patterns[0]), |g, p| g.or_matching(*p));
        trainer.param_group(group.frozen())
    };
    let plain = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
        .batch_size(64)
        .clip(Clip {
            max_norm: Some(10.0),
            max_value: None,
        });
    let body = frozen(plain.clone(), &["layers.0.*", "layers.1.*"]);
    check_steady(
        "MLP with a frozen body",
        &spec,
        &body,
        (&train, &val),
        6,
        None,
    );

    let dispatches = |trainer: &Trainer| dispatches_in_a_step(&spec, trainer, &train);
    let all = dispatches(&plain);
    // Layer 0 frozen: its backward kernel goes; the update stays one dispatch, over the rest.
    assert_eq!(dispatches(&frozen(plain.clone(), &["layers.0.*"])), all - 1);
    // Layers 0 and 1 frozen: two backward kernels go.
    assert_eq!(dispatches(&body), all - 2);
    // Only a weight frozen, its bias trained: every layer still runs its backward pass.
    assert_eq!(
        dispatches(&frozen(plain.clone(), &["layers.0.weight"])),
        all
    );
}

/// A layer frozen whole above a trained one passes the gradient down and computes none of its
/// own (`Backward::trained`): where its backward pass is separate kernels (a layer
/// over 256 outputs), the kernel of its weight and bias gradients goes; a small layer's one
/// kernel stays (it computes the gradient passed down). Counted, and steady.
#[test]
fn a_frozen_layer_above_a_trained_one_computes_no_gradient_of_its_own() {
    let (train, val) = data::spirals(412, 0.05, 1).unwrap().split(0.2, 1).unwrap();
    let plain = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy).batch_size(64);
    let middle = plain
        .clone()
        .param_group(ParamGroup::matching("layers.1.*").frozen());
    let wide = MlpSpec::new(2)
        .layer(300, Activation::Relu)
        .layer(300, Activation::Tanh)
        .layer(2, Activation::Identity);
    let small = MlpSpec::new(2)
        .layer(32, Activation::Relu)
        .layer(32, Activation::Tanh)
        .layer(2, Activation::Identity);
    let dispatches =
        |spec: &MlpSpec, trainer: &Trainer| dispatches_in_a_step(spec, trainer, &train);
    assert_eq!(dispatches(&wide, &middle), dispatches(&wide, &plain) - 1);
    assert_eq!(dispatches(&small, &middle), dispatches(&small, &plain));
    check_steady(
        "MLP with a frozen middle layer",
        &wide,
        &middle,
        (&train, &val),
        6,
        None,
    );
    // BitFit, every weight frozen: the wide layers' bias sums and products passed down
    // (`tests/profile.rs` names them) take the place of their backward kernels one for one.
    let bitfit = plain
        .clone()
        .param_group(ParamGroup::matching("*.weight").frozen());
    assert_eq!(dispatches(&wide, &bitfit), dispatches(&wide, &plain));
    check_steady("MLP with BitFit", &wide, &bitfit, (&train, &val), 6, None);
}

#[test]
fn a_step_dispatches_one_kernel_per_layer_and_four_more() {
    let g = &common::own_gpu();
    let ctx = g.context();
    let data = data::moons(256, 0.1, 1).unwrap();
    let labels = data.labels().unwrap();
    let data = Dataset::classification(data.x().clone(), &labels, 2).unwrap();
    for layers in [1usize, 3, 5] {
        let mut spec = MlpSpec::new(2);
        for _ in 1..layers {
            spec = spec.layer(16, Activation::Tanh);
        }
        let spec = spec.layer(2, Activation::Identity);
        let mut model = Mlp::new(g, &spec, Init::HeUniform, 1).unwrap();
        let trainer = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy).batch_size(32);
        let mut session = Session::new(&trainer, g, &mut model, &data, None).unwrap();
        session.step().unwrap();
        let before = ctx.counters();
        for _ in 0..5 {
            session.step().unwrap();
        }
        let change = added(before, ctx.counters());
        let per_step = 3 + layers.div_ceil(3) + layers;
        assert_eq!(
            change.dispatches,
            5 * per_step as u64,
            "{layers} layers: {change:?}"
        );
        assert_eq!(change.submits, 5);
    }
}

/// A step over k accumulated batches runs each batch's gather, forward pass, loss and
/// backward pass, adds k − 1 gradient arenas (the first batch's arena becomes the sum:
/// nothing is copied) and updates once, in one submit; steady epochs of such steps (the last
/// of each over what is left: 330 samples are steps of 96, 96, 96 and 42) create nothing.
#[test]
fn a_step_over_accumulated_batches_sums_them_and_creates_nothing() {
    let (train, val) = data::spirals(412, 0.05, 1).unwrap().split(0.2, 1).unwrap();
    let spec = MlpSpec::new(2)
        .layer(32, Activation::Relu)
        .layer(32, Activation::Tanh)
        .layer(2, Activation::Identity);
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
        .batch_size(32)
        .accumulate_grad_batches(3)
        .monitor(true)
        .log_every(5);
    let what = "3 batches a step";
    check_steady(what, &spec, &trainer, (&train, &val), 4, Some(5));
    // Gather, chain, loss and a backward kernel per layer; then the adds, the update and
    // (monitoring) the copy of its sums into the totals.
    let per_batch = 1 + 1 + 1 + 3;
    assert_eq!(
        dispatches_in_a_step(&spec, &trainer, &train),
        3 * per_batch + 2 + 1 + 1,
        "{what}"
    );
    let alone = trainer.clone().accumulate_grad_batches(1);
    assert_eq!(
        dispatches_in_a_step(&spec, &alone, &train),
        per_batch + 1 + 1
    );
    // One copy a step either way: the update's sums into the totals (monitoring). The
    // gradients are summed in place, never copied (a copy of a large model's arena costs a
    // step as much as a kernel that reads and writes it, and ends the compute pass).
    assert_eq!(added_by_a_step(&spec, &trainer, &train).copies, 1, "{what}");
    assert_eq!(added_by_a_step(&spec, &alone, &train).copies, 1);
    // As many submits as steps of one batch each: the batches of a step go in one.
    let submits = |trainer: &Trainer| {
        let g = &common::own_gpu();
        let mut model = Mlp::new(g, &spec, Init::HeUniform, 1).unwrap();
        let mut session = Session::new(trainer, g, &mut model, &train, None).unwrap();
        session.step().unwrap();
        let before = g.context().counters();
        for _ in 0..3 {
            session.step().unwrap();
        }
        assert_eq!(session.steps(), 4);
        added(before, g.context().counters()).submits
    };
    assert_eq!(submits(&trainer), 3, "{what}");
    assert_eq!(submits(&alone), 3);
}

/// A moving average of the parameters (`Trainer::ema`) adds one dispatch to a step (its
/// update over the arena; the first step's is a copy) and creates nothing in steady epochs,
/// whose validation passes measure the average, with `restore_best` keeping it.
#[test]
fn a_moving_average_adds_one_dispatch_a_step_and_creates_nothing() {
    let (train, val) = data::spirals(412, 0.05, 1).unwrap().split(0.2, 1).unwrap();
    let spec = MlpSpec::new(2)
        .layer(32, Activation::Relu)
        .layer(32, Activation::Tanh)
        .layer(2, Activation::Identity);
    let plain = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy).batch_size(64);
    let averaged = plain.clone().ema(0.99);
    assert_eq!(
        dispatches_in_a_step(&spec, &averaged, &train),
        dispatches_in_a_step(&spec, &plain, &train) + 1
    );
    let what = "a moving average";
    check_steady(
        what,
        &spec,
        &averaged.restore_best(true).log_every(9),
        (&train, &val),
        6,
        Some(9),
    );
}

/// Stochastic weight averaging (`Trainer::swa`) adds nothing to a step (its average is
/// updated once an epoch) and creates nothing in steady epochs, whose ends fold the
/// parameters into the average, set SWA's rate and measure the average, with `restore_best`
/// keeping it.
#[test]
fn weight_averaging_adds_nothing_to_a_step_and_creates_nothing() {
    let (train, val) = data::spirals(412, 0.05, 1).unwrap().split(0.2, 1).unwrap();
    let spec = MlpSpec::new(2)
        .layer(32, Activation::Relu)
        .layer(2, Activation::Identity);
    let plain = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy).batch_size(64);
    // From the first epoch's end: the warm-up epochs copy into the average, then add to it.
    let averaged = plain.clone().swa(Swa::new(1, 0.001).anneal_epochs(4));
    assert_eq!(
        dispatches_in_a_step(&spec, &averaged, &train),
        dispatches_in_a_step(&spec, &plain, &train)
    );
    check_steady(
        "weight averaging",
        &spec,
        &averaged.restore_best(true),
        (&train, &val),
        6,
        None,
    );
}

/// An L-BFGS step waits where PyTorch's synchronises: once per loss evaluation, once per dot
/// product of the two-loop recursion (2 per pair kept), and once for each other scalar
/// (the curvature yᵀs with yᵀy, the slope gᵀd, the first step's Σ|g|, the parameter change
/// max |d|), plus ‖g‖ for the step's record. Five iterations with a memory of 2 pairs:
/// 2 + (Σ|g|, gᵀd, loss, max|d|) + (1 + 2, gᵀd, loss, max|d|) + 2 × (1 + 4, gᵀd, loss,
/// max|d|) + (1 + 4, gᵀd) = 34. All recorded work is submitted by its wait: no other submit.
#[test]
fn an_lbfgs_step_waits_once_per_scalar_it_reads() {
    let g = &common::own_gpu();
    let ctx = g.context();
    let points = data::linear(48, &[1.0, -2.0], 0.3, 0.1, 4).unwrap();
    let spec = MlpSpec::new(2)
        .layer(16, Activation::Tanh)
        .layer(1, Activation::Identity);
    let mut model = Mlp::new(g, &spec, Init::XavierUniform, 5).unwrap();
    let lbfgs = steepest::Lbfgs::default()
        .lr(0.5)
        .max_iter(5)
        .history_size(2)
        .tolerance_grad(0.0)
        .tolerance_change(0.0);
    ctx.wait().unwrap();
    let before = ctx.counters();
    let history = lbfgs
        .run(g, &mut model, &points, Loss::MeanSquaredError)
        .unwrap();
    let change = added(before, ctx.counters());
    assert_eq!(history.epochs[0].step, 5, "{history:?}");
    assert_eq!(change.waits, 34, "{change:?}");
    assert_eq!(change.submits, change.waits, "{change:?}");
}

/// L-BFGS's iterations create nothing once its memory of pairs is full and its line search
/// has run: a run of 12 iterations creates what a run of 4 does (buffers, bind groups,
/// pipelines and modules, each on a context of its own), with a fixed step and with the
/// strong-Wolfe search. Its arenas are made once; the arena copies' bind groups, one per
/// arena, by each arena's first copy.
#[test]
fn lbfgs_iterations_past_the_first_create_nothing() {
    let points = data::linear(48, &[1.0, -2.0], 0.3, 0.1, 4).unwrap();
    let spec = MlpSpec::new(2)
        .layer(16, Activation::Tanh)
        .layer(1, Activation::Identity);
    let created = |lbfgs: &steepest::Lbfgs, iterations: usize| {
        let g = &common::own_gpu();
        let mut model = Mlp::new(g, &spec, Init::XavierUniform, 5).unwrap();
        let before = g.context().counters();
        let history = lbfgs
            .clone()
            .max_iter(iterations)
            .run(g, &mut model, &points, Loss::MeanSquaredError)
            .unwrap();
        assert_eq!(history.epochs[0].step, iterations as u64, "{history:?}");
        let change = added(before, g.context().counters());
        (
            change.buffers_created,
            change.bind_groups_created,
            change.pipelines_created,
            change.shader_modules_created,
        )
    };
    let fixed = steepest::Lbfgs::default()
        .lr(0.1)
        .history_size(2)
        .tolerance_grad(0.0)
        .tolerance_change(0.0);
    let wolfe = fixed.clone().strong_wolfe(true).max_eval(1000);
    for (name, lbfgs) in [("fixed step", fixed), ("strong Wolfe", wolfe)] {
        let (short, long) = (created(&lbfgs, 4), created(&lbfgs, 12));
        assert_eq!(
            long, short,
            "{name}: (buffers, bind groups, pipelines, modules)"
        );
        assert!(
            short.1 > 0,
            "{name}: the first iterations build their bind groups"
        );
    }
}

/// A host further ahead of the GPU than `max_dispatches_in_flight` waits for the oldest
/// submissions until half the bound is left, never for the newest, and the results are the
/// ones it computes unthrottled, bit for bit. Counted, not timed: every submission counts as
/// in flight until the host waits for it, so the throttles fall where the bound says, on any
/// adapter.
#[test]
fn a_host_far_ahead_of_the_gpu_waits_for_the_oldest_work_at_the_bound() {
    use steepest::{GpuBackend, GpuContext, GpuOptions, Model};
    common::gpu(); // fails with the message that names the fix when there is no adapter
    let x = Array2::from_shape_fn((640, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0);
    let labels: Vec<usize> = (0..640).map(|i| i % 2).collect();
    let data = Dataset::classification(x, &labels, 2).unwrap();
    let spec = MlpSpec::new(2)
        .layer(8, Activation::Tanh)
        .layer(2, Activation::Identity);
    let trainer = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy).batch_size(32);
    let default = steepest::backend::gpu::DEFAULT_MAX_DISPATCHES_IN_FLIGHT;
    // Ten steps of L + 4 = 6 dispatches, no epoch end. A bound of 20: the fourth step puts 24
    // in flight, the three oldest are waited for (6 left ≤ 10), and so again at the 7th and
    // 10th. A bound of 0: every step waits for the one before.
    let mut trained = Vec::new();
    for (bound, throttles) in [(default, 0), (20, 3), (0, 9)] {
        let options = GpuOptions {
            max_dispatches_in_flight: bound,
            ..GpuOptions::from_env().unwrap()
        };
        let g = GpuBackend::with_context(GpuContext::with_options(&options).unwrap());
        let ctx = g.context();
        let mut model = Mlp::new(&g, &spec, Init::HeUniform, 4).unwrap();
        let mut session = Session::new(&trainer, &g, &mut model, &data, None).unwrap();
        ctx.wait().unwrap();
        let before = ctx.counters();
        for _ in 0..10 {
            session.step().unwrap();
        }
        let change = added(before, ctx.counters());
        assert_eq!(
            (change.submits, change.dispatches, change.waits),
            (10, 60, 0),
            "bound {bound}: {change:?}"
        );
        assert_eq!(change.throttles, throttles, "bound {bound}: {change:?}");
        drop(session);
        trained.push(model.network().parameters_flat(&g).unwrap());
    }
    for (i, values) in trained.iter().enumerate().skip(1) {
        assert!(
            common::bit_identical(values, &trained[0]),
            "run {i} trained to other values than the unthrottled run"
        );
    }
}

#[test]
fn a_model_of_every_layer_steps_without_creating_anything() {
    use steepest::nn::{BatchNorm, Dropout, Elementwise, Layer, LayerNorm, Residual, Sequential};
    use steepest::{GpuBackend, Linear, Nonlinearity};
    let g = &common::own_gpu();
    let ctx = g.context();
    let block: Vec<Box<dyn Layer<GpuBackend>>> = vec![
        // A block's buffers too.
        Box::new(BatchNorm::new(32)),
        Box::new(Linear::new(32, 32)),
        Box::new(Elementwise::new(32, Nonlinearity::GeluTanh)),
        Box::new(Linear::new(32, 32)),
    ];
    let layers: Vec<Box<dyn Layer<GpuBackend>>> = vec![
        Box::new(Linear::new(2, 32)),
        Box::new(LayerNorm::new(32)),
        Box::new(Elementwise::new(32, Nonlinearity::Silu)),
        // Its running statistics updated every step, read by every validation pass.
        Box::new(BatchNorm::new(32)),
        Box::new(Dropout::new(32, 0.1, 5)),
        Box::new(Residual::new(block).unwrap()),
        Box::new(Linear::new(32, 1)),
    ];
    let mut model = Sequential::new(g, layers, Init::default(), 1).unwrap();
    let (train, val) = data::linear(300, &[0.5, -1.0], 0.1, 0.05, 2)
        .unwrap()
        .split(0.2, 1)
        .unwrap();
    let trainer =
        Trainer::new(Adam::default().lr(0.005), Loss::Huber { delta: 1.0 }).batch_size(64);
    let mut session = Session::new(&trainer, g, &mut model, &train, Some(&val)).unwrap();
    for _ in 0..2 {
        session.run_epoch().unwrap();
    }
    let (before, sites) = (ctx.counters(), ctx.site_count());
    let mut steps = 0;
    while steps < 100 {
        let start = session.steps();
        session.run_epoch().unwrap();
        steps += session.steps() - start;
    }
    let change = added(before, ctx.counters());
    assert_nothing_created("every layer", change);
    assert_eq!(ctx.site_count(), sites, "the op sites grew");
    let epochs = steps.div_ceil(4);
    assert!(
        change.submits <= steps + 2 * epochs,
        "{} submits for {steps} steps",
        change.submits
    );
}

/// A model whose first layer embeds a categorical column (its lookup, table gradient and
/// input gradient kernels, the data's indices checked once on the host) steps 100 times, with
/// its validation passes, creating nothing.
#[test]
fn an_embedding_model_steps_without_creating_anything() {
    use steepest::nn::{Embedding, Layer, Sequential};
    use steepest::{Dataset, GpuBackend, Linear};
    let g = &common::own_gpu();
    let ctx = g.context();
    let mut r = common::rng(4);
    let x = Array2::from_shape_fn((200, 3), |(_, c)| match c {
        1 => r.random_range(0..7) as f32,
        _ => r.random_range(-1.0f32..1.0),
    });
    let y = x.map_axis(ndarray::Axis(1), |row| row[0] - row[2] + row[1] / 7.0);
    let data = Dataset::regression(x, y.insert_axis(ndarray::Axis(1))).unwrap();
    let (train, val) = data.split(0.2, 1).unwrap();
    let layers: Vec<Box<dyn Layer<GpuBackend>>> = vec![
        Box::new(Embedding::new(7, 5).column(1, 3)),
        Box::new(Linear::new(7, 16).with_activation(Activation::Relu)),
        Box::new(Linear::new(16, 1)),
    ];
    let mut model = Sequential::new(g, layers, Init::default(), 1).unwrap();
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::MeanSquaredError).batch_size(32);
    let mut session = Session::new(&trainer, g, &mut model, &train, Some(&val)).unwrap();
    for _ in 0..2 {
        session.run_epoch().unwrap();
    }
    let before = ctx.counters();
    let mut steps = 0;
    while steps < 100 {
        let start = session.steps();
        session.run_epoch().unwrap();
        steps += session.steps() - start;
    }
    assert_nothing_created("an embedding model", added(before, ctx.counters()));
}

/// A `Sequential`'s forward pass runs each run of two or more linear layers as one chain
/// (three links to a dispatch) and calls every other layer's `forward`: counted, and bit for
/// bit the layers' own forward passes called one by one.
#[test]
fn a_sequential_runs_its_linear_layers_as_chains() {
    use steepest::nn::{Elementwise, Forward, Layer, Mode, Sequential};
    use steepest::{Arena, GpuBackend, Linear, Nonlinearity};
    let g = &common::own_gpu();
    let ctx = g.context();
    let linear = |i, o, a| Box::new(Linear::new(i, o).with_activation(a)) as Box<dyn Layer<_>>;
    let layers: Vec<Box<dyn Layer<GpuBackend>>> = vec![
        linear(3, 8, Activation::Tanh),
        linear(8, 8, Activation::Relu),
        Box::new(Elementwise::new(8, Nonlinearity::Silu)),
        linear(8, 8, Activation::Sigmoid),
        linear(8, 5, Activation::Identity),
        linear(5, 8, Activation::Relu),
        linear(8, 2, Activation::Identity),
        Box::new(Elementwise::new(2, Nonlinearity::Gelu)),
        linear(2, 2, Activation::Identity),
    ];
    let model = Sequential::new(g, layers, Init::HeUniform, 3).unwrap();
    let mut r = common::rng(31);
    let x = g
        .upload(common::random_matrix(&mut r, 37, 3, 1.0).view())
        .unwrap();
    let before = ctx.counters();
    let chained = g.download(&model.forward(g, &x).unwrap()).unwrap();
    // Layers 0–1 (one chain), 2, 3–6 (a chain of three, then one product), 7, 8.
    assert_eq!(added(before, ctx.counters()).dispatches, 6);

    let params = model.parameters().tensors();
    let mut first = 0;
    let mut input = x;
    for layer in model.layers() {
        let count = layer.parameters().len();
        let mut output = g.zeros(37, layer.outputs()).unwrap();
        layer
            .forward(
                g,
                Forward {
                    params: &params[first..first + count],
                    buffers: &[],
                    input: &input,
                    output: &mut output,
                    saved: &mut [],
                    mode: Mode::Eval,
                    step: 0,
                },
            )
            .unwrap();
        first += count;
        input = output;
    }
    let one_by_one = g.download(&input).unwrap();
    assert!(
        common::bit_identical(&chained, &one_by_one),
        "the chained forward pass differs from the layers' own"
    );
}

/// Random setups (`common/setups.rs`: any stack of layers, loss, optimizer, groups, averages,
/// batching and submits) on a device of their own: after four warm-up epochs (SWA has begun
/// averaging by then), three more epochs with a validation pass each create no buffer, bind
/// group, pipeline or op site.
fn random_setup_is_steady(g: &steepest::GpuBackend, seed: u64) {
    use common::setups::{dataset, draw, network};
    let setup = draw(seed);
    let data = dataset(&setup);
    let (train, val) = data.split(0.25, seed).unwrap();
    let mut net = network(g, &setup).unwrap();
    let Ok(mut session) = Session::new(&setup.trainer, g, &mut net, &train, Some(&val)) else {
        return; // refused alike on both backends (`lockstep_setups.rs`)
    };
    let ctx = g.context();
    for _ in 0..4 {
        if session.run_epoch().is_err() {
            return;
        }
    }
    let (before, sites) = (ctx.counters(), ctx.site_count());
    for _ in 0..3 {
        session.run_epoch().unwrap();
    }
    let what = format!("seed {seed}: {setup:?}");
    assert_nothing_created(&what, added(before, ctx.counters()));
    assert_eq!(ctx.site_count(), sites, "{what}: the op sites grew");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 16,
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn random_setups_are_steady(seed in proptest::prelude::any::<u64>()) {
        static DEVICE: std::sync::OnceLock<steepest::GpuBackend> = std::sync::OnceLock::new();
        random_setup_is_steady(DEVICE.get_or_init(common::own_gpu), seed);
    }
}
