//! The bad-input table, continued: inputs that used to panic, objects from another context,
//! hyperparameters, stopping rules and the learning-rate rule validated as they are applied,
//! and the searches' own settings. Each gets its typed error and changes nothing.

mod common;

use common::bad::{blobs, cross_entropy, fit_error, spec};
use common::gpu;
use ndarray::{Array2, array};
use steepest::optim::{ArenaGroup, GroupSettings, Mode, OneCycle, ParamGroup};
use steepest::{
    Activation, Adam, AdamW, Asgd, Backend, CpuBackend, Dataset, Error, GpuBuffer, GpuOptimizer,
    Init, Loss, LossShare, LrSchedule, Mlp, MlpSpec, ReduceLrOnPlateau, Rprop, Sgd, Swa, Trainer,
    Watched, data,
};

/// Inputs that used to panic now return errors naming the op.
#[test]
fn inputs_that_used_to_panic_are_errors() {
    // Blobs need two centers (one class each), finite ones.
    for centers in [
        &[][..],
        &[[0.0f32, 0.0]][..],
        &[[0.0, f32::NAN], [1.0, 1.0]][..],
    ] {
        let err = data::blobs(10, centers, 0.1, 1).unwrap_err();
        assert!(err.to_string().contains("data::blobs"), "{err}");
    }
    // Selecting rows past the end, or none at all.
    let d = blobs();
    let err = d.select(&[0, 30]).unwrap_err().to_string();
    assert!(
        err.contains("rows[1] = 30") && err.contains("30 samples"),
        "{err}"
    );
    assert!(d.select(&[]).is_err());
    assert_eq!(d.select(&[2, 2]).unwrap().len(), 2);
    // Sizes whose element count overflows, or that no host memory can hold.
    for (rows, cols) in [(usize::MAX, 2), (1 << 20, 1 << 20)] {
        let err = CpuBackend.zeros(rows, cols).unwrap_err();
        assert!(matches!(err, Error::Shape { op: "zeros", .. }), "{err}");
    }
    let wide = MlpSpec::new(usize::MAX).layer(2, Activation::Identity);
    assert_eq!(wide.parameter_count(), usize::MAX, "the count saturates");
    let err = Mlp::new(&CpuBackend, &wide, Init::default(), 1).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");
    let err = Mlp::new(
        &CpuBackend,
        &MlpSpec::new(1 << 20).layer(1 << 20, Activation::Identity),
        Init::default(),
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("host memory"), "{err}");
    // A totals slot whose end overflows.
    let logits = array![[1.0f32, 2.0]];
    let targets = array![[0.0f32, 1.0]];
    let mut totals = CpuBackend.zeros(1, 8).unwrap();
    let err = CpuBackend
        .loss_into(
            Loss::MeanSquaredError,
            &logits,
            &targets,
            None,
            LossShare::whole(1),
            None,
            &mut totals,
            usize::MAX - 1,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let arena = CpuBackend.arena("a", &[(1, 2)]).unwrap();
    assert!(
        CpuBackend
            .sum_squares_into(&arena, &mut totals, usize::MAX)
            .is_err()
    );
    let g = gpu();
    let mut totals = g.zeros(1, 8).unwrap();
    let err = g
        .loss_into(
            Loss::MeanSquaredError,
            &g.upload(logits.view()).unwrap(),
            &g.upload(targets.view()).unwrap(),
            None,
            LossShare::whole(1),
            None,
            &mut totals,
            usize::MAX - 1,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

/// Buffers, models and optimizers carry their context: another context refuses them with a
/// typed error instead of tripping an assertion inside wgpu.
#[test]
fn objects_from_another_context_are_refused() {
    let a = gpu();
    let b = common::own_gpu();
    let model = Mlp::new(a, &spec(), Init::default(), 1).unwrap();
    let x = b.upload(array![[1.0f32, 2.0]].view()).unwrap();
    let err = model.forward(&b, &x).unwrap_err();
    assert!(matches!(err, Error::WrongContext { .. }), "{err}");
    let x_a = a.upload(array![[1.0f32, 2.0]].view()).unwrap();
    let err = model.forward(&b, &x_a).unwrap_err();
    assert!(matches!(err, Error::WrongContext { .. }), "{err}");
    assert!(err.to_string().contains("another GPU context"), "{err}");
    // A buffer read, written or stepped through the wrong context.
    let buffer = GpuBuffer::from_slice(a.context(), "on a", &[1.0f32; 4]).unwrap();
    assert!(matches!(
        buffer.read(b.context()),
        Err(Error::WrongContext { .. })
    ));
    assert!(matches!(
        buffer.write(b.context(), 0, &[2.0]),
        Err(Error::WrongContext { .. })
    ));
    let mut on_b = GpuBuffer::from_slice(b.context(), "on b", &[1.0f32; 4]).unwrap();
    let grads_b = GpuBuffer::from_slice(b.context(), "grads on b", &[1.0f32; 4]).unwrap();
    let mut adam_a = GpuOptimizer::new(a.context(), Adam::default(), 4).unwrap();
    let err = adam_a.step(&mut on_b, &grads_b).unwrap_err();
    assert!(matches!(err, Error::WrongContext { .. }), "{err}");
    assert_eq!(adam_a.steps(), 0, "the refused step counted");
    assert_eq!(on_b.read(b.context()).unwrap(), vec![1.0; 4]);
    assert_eq!(buffer.read(a.context()).unwrap(), vec![1.0; 4]);
}

/// Hyperparameters are checked in the precision the kernels apply them in.
#[test]
fn hyperparameters_are_validated_as_applied() {
    let ctx = gpu().context();
    for (config, name) in [
        (Adam::default().eps(1e-50).into(), "eps"),
        (Sgd::default().lr(1e300).into(), "lr"),
        (Adam::default().betas(0.9, 1.0 - 1e-12).into(), "beta2"),
    ] {
        let config: steepest::OptimizerConfig = config;
        let err = GpuOptimizer::new(ctx, config, 4).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, Error::InvalidHyperparameter { .. }) && message.contains(name),
            "{message}"
        );
        assert!(message.contains("f32"), "{message}");
    }
    let err = GpuOptimizer::new(ctx, Adam::default(), 4)
        .unwrap()
        .with_schedule(steepest::LrSchedule::constant().with_warmup(u64::MAX))
        .unwrap_err();
    assert!(err.to_string().contains("warmup"), "{err}");
    // A step count with no successor, from saved state.
    let mut adam = GpuOptimizer::new(ctx, Adam::default(), 4).unwrap();
    let mut state = adam.state().unwrap();
    state.step = u64::MAX;
    let err = adam.load_state(&state).unwrap_err();
    assert!(matches!(err, Error::State { .. }), "{err}");
    let mut state = adam.state().unwrap();
    state.buffers[0].1[2] = f32::INFINITY;
    let err = adam.load_state(&state).unwrap_err();
    assert!(err.to_string().contains("exp_avg[2]"), "{err}");
    assert_eq!(adam.steps(), 0);
}

/// Stochastic weight averaging's own settings are refused by name before training, and a
/// session of the application's batches, which has no epoch ends to average at, refuses it.
#[test]
fn weight_averaging_settings_are_validated() {
    for (swa, words) in [
        (Swa::new(0, 0.01), "start"),
        (Swa::new(1, -0.01), "lr"),
        (Swa::new(1, f64::NAN), "lr"),
    ] {
        let err = fit_error(cross_entropy().swa(swa), &blobs());
        assert!(matches!(err, Error::InvalidHyperparameter { .. }), "{err}");
        assert!(err.to_string().contains(words), "{err} lacks {words}");
    }
    let trainer = cross_entropy().swa(Swa::new(1, 0.01));
    let mut model = Mlp::new(&CpuBackend, &spec(), Init::default(), 1).unwrap();
    let err = steepest::Session::for_batches(&trainer, &CpuBackend, &mut model)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("a session of the application's batches has none"),
        "{err}"
    );
}

/// Stopping rules are settings like any other: nonsense is refused before training.
#[test]
fn stopping_rules_and_submits_are_validated() {
    let trainers = [
        (
            cross_entropy().stop_on_plateau(0, 1e-4),
            "stop_on_plateau(0",
        ),
        (cross_entropy().stop_on_plateau(3, f64::NAN), "min_delta"),
        (cross_entropy().stop_on_plateau(3, -1.0), "min_delta"),
        (cross_entropy().diverge_above(0.0), "diverge_above(0)"),
        (
            cross_entropy().diverge_above(f64::NAN),
            "diverge_above(NaN)",
        ),
        (
            cross_entropy().stop_when_grad_norm_below(f64::NAN),
            "stop_when_grad_norm_below",
        ),
        (
            cross_entropy().stop_when_grad_norm_below(-1.0),
            "stop_when_grad_norm_below",
        ),
        (cross_entropy().steps_per_submit(0), "steps_per_submit(0)"),
        (
            cross_entropy().ema(1.5),
            "ema(1.5): the decay must be in [0, 1]",
        ),
        (cross_entropy().ema(f64::NAN), "ema(NaN)"),
        (
            cross_entropy().swa(Swa::new(1, 0.01)).ema(0.9),
            "swa starting after epoch 1 and ema: a run keeps one average",
        ),
        (
            (cross_entropy().swa(Swa::new(2, 0.01)))
                .reduce_lr_on_plateau(ReduceLrOnPlateau::default()),
            "swa starting after epoch 2 and reduce_lr_on_plateau: both would set the learning rate",
        ),
        (
            (cross_entropy().swa(Swa::new(1, 0.01)))
                .schedule(LrSchedule::one_cycle(OneCycle::new(1000))),
            "and a one-cycle or cyclic schedule",
        ),
        (
            Trainer::new(Rprop::default(), Loss::SoftmaxCrossEntropy).swa(Swa::new(1, 0.01)),
            "swa starting after epoch 1 with Rprop",
        ),
        (
            Trainer::new(Asgd::default(), Loss::SoftmaxCrossEntropy).swa(Swa::new(1, 0.01)),
            "swa starting after epoch 1 with ASGD: PyTorch's ASGD computes each update's rate",
        ),
        (
            cross_entropy().epochs(4).swa(Swa::new(5, 0.01)),
            "swa starting after epoch 5, but the run has 4 epochs",
        ),
        (
            cross_entropy().full_batch().drop_last(true),
            "drop_last with full_batch",
        ),
        (
            cross_entropy().accumulate_grad_batches(0),
            "accumulate_grad_batches(0): a step needs the gradient of at least one batch",
        ),
        (
            cross_entropy().full_batch().accumulate_grad_batches(3),
            "accumulate_grad_batches(3) with full_batch: each step already sees every sample",
        ),
    ];
    for (trainer, words) in trainers {
        let err = fit_error(trainer, &blobs());
        assert!(matches!(err, Error::Data { .. }), "{err}");
        assert!(err.to_string().contains(words), "{err} lacks {words}");
    }
    let max = ReduceLrOnPlateau::default().mode(Mode::Max);
    let mse = Trainer::new(Adam::default(), Loss::MeanSquaredError).batch_size(8);
    let regression = data::linear(40, &[1.0, -1.0], 0.0, 0.1, 1).unwrap();
    let spec_1 = MlpSpec::new(2).layer(1, Activation::Identity);
    for (trainer, data, spec, words) in [
        (
            mse.watch(Watched::Accuracy),
            &regression,
            &spec_1,
            "watch(Watched::Accuracy) with mse: only the classification losses",
        ),
        (
            cross_entropy()
                .watch(Watched::Accuracy)
                .reduce_lr_on_plateau(ReduceLrOnPlateau::default()),
            &blobs(),
            &spec(),
            "reduce_lr_on_plateau in Mode::Min while watching Accuracy, where higher is better",
        ),
        (
            cross_entropy().reduce_lr_on_plateau(max),
            &blobs(),
            &spec(),
            "reduce_lr_on_plateau in Mode::Max while watching Loss, where lower is better",
        ),
        (
            Trainer::new(Rprop::default(), Loss::SoftmaxCrossEntropy)
                .full_batch()
                .reduce_lr_on_plateau(ReduceLrOnPlateau::default()),
            &blobs(),
            &spec(),
            "reduce_lr_on_plateau with Rprop: its learning rate is only the step sizes' \
             starting value",
        ),
        (
            Trainer::new(Asgd::default(), Loss::SoftmaxCrossEntropy)
                .reduce_lr_on_plateau(ReduceLrOnPlateau::default()),
            &blobs(),
            &spec(),
            "reduce_lr_on_plateau with ASGD: PyTorch's ASGD computes each update's rate η at \
             the end of the update before",
        ),
        (
            Trainer::new(Adam::default(), Loss::MeanSquaredError).class_weights(vec![1.0]),
            &regression,
            &spec_1,
            "mse weighs no classes: class weights go with the softmax cross-entropies",
        ),
        (
            cross_entropy().class_weights(vec![1.0, 2.0]),
            &blobs(),
            &spec(),
            "2 class weights for a model of 3 classes: one per class",
        ),
        (
            cross_entropy().class_weights(vec![1.0, -1.0, 1.0]),
            &blobs(),
            &spec(),
            "class 1's weight is -1: each must be finite and ≥ 0",
        ),
        (
            cross_entropy().class_weights(vec![0.0; 3]),
            &blobs(),
            &spec(),
            "3 class weights, all 0: at least one must count",
        ),
    ] {
        let g = gpu();
        let mut model = Mlp::new(g, spec, Init::default(), 1).unwrap();
        let before = model.parameters_flat(g).unwrap();
        let err = trainer.fit(g, &mut model, data, None).unwrap_err();
        assert!(matches!(err, Error::Data { .. }), "{err}");
        assert!(err.to_string().contains(words), "{err} lacks {words}");
        assert_eq!(model.parameters_flat(g).unwrap(), before);
    }
    // A one-cycle schedule shorter than the run: 30 samples in batches of 8 are 4 updates an
    // epoch, 10 epochs 40 updates.
    let short = cross_entropy()
        .epochs(10)
        .schedule(LrSchedule::one_cycle(OneCycle::new(39)));
    let err = fit_error(short.clone(), &blobs());
    let words = "the schedule ends after 39 updates, but this run takes 40 (10 epochs of 4)";
    assert!(
        matches!(err, Error::Data { .. }) && err.to_string().contains(words),
        "{err}"
    );
    // With steps of three batches of 8, an epoch is 2 updates (24 samples, then 6).
    let accumulated = short.accumulate_grad_batches(3);
    let err = fit_error(
        accumulated
            .clone()
            .schedule(LrSchedule::one_cycle(OneCycle::new(19))),
        &blobs(),
    );
    let words = "the schedule ends after 19 updates, but this run takes 20 (10 epochs of 2)";
    assert!(
        matches!(err, Error::Data { .. }) && err.to_string().contains(words),
        "{err}"
    );
    let g = gpu();
    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    let history = accumulated
        .schedule(LrSchedule::one_cycle(OneCycle::new(20)))
        .fit(g, &mut model, &blobs(), None)
        .unwrap();
    assert_eq!(history.epochs.last().map(|e| e.step), Some(20));
    let rule = ReduceLrOnPlateau::default();
    for (rule, words) in [
        (
            rule.factor(1.0),
            "ReduceLrOnPlateau: invalid factor = 1: must be in (0, 1)",
        ),
        (rule.min_lr(-1e-3), "invalid min_lr = -0.001: must be ≥ 0"),
    ] {
        let err = fit_error(cross_entropy().reduce_lr_on_plateau(rule), &blobs());
        assert!(matches!(err, Error::InvalidHyperparameter { .. }), "{err}");
        assert!(err.to_string().contains(words), "{err} lacks {words}");
    }
}

/// A first loss of exactly 0 gives divergence no scale: later losses are judged against the
/// first non-zero one.
#[test]
fn a_first_loss_of_zero_is_not_a_scale_for_divergence() {
    let b = &CpuBackend;
    let x = array![[1.0f32, 2.0], [3.0, 4.0], [-1.0, 0.5], [0.0, 1.0]];
    let data = Dataset::regression(x, Array2::zeros((4, 1))).unwrap();
    let spec = MlpSpec::new(2).layer(1, Activation::Identity);
    let mut model = Mlp::new(b, &spec, Init::default(), 1).unwrap();
    model.set_parameters_flat(b, &[0.0; 3]).unwrap();
    let trainer = Trainer::new(Sgd::default().lr(1e-3), Loss::MeanSquaredError)
        .full_batch()
        .diverge_above(10.0);
    let mut session = steepest::Session::new(&trainer, b, &mut model, &data, None).unwrap();
    assert_eq!(session.run_epoch().unwrap().loss, 0.0);
    session
        .model_mut()
        .set_parameters_flat(b, &[0.1, 0.1, 0.1])
        .unwrap();
    let record = session.run_epoch().unwrap();
    assert!(record.loss > 0.0, "{record:?}");
}

/// Standardising never produces non-finite features, whatever the spread.
#[test]
fn standardising_tiny_and_huge_spreads_stays_finite() {
    let x = array![[0.0f32, -3.0e38, 5.0], [1.0e-45, 3.0e38, 5.0]];
    let data = Dataset::regression(x, array![[0.0f32], [1.0]]).unwrap();
    let s = steepest::Standardizer::fit(&data);
    let t = s.transform(&data).unwrap();
    assert!(t.x().iter().all(|v| v.is_finite()), "{:?}", t.x());
    assert_eq!(
        s.std()[0],
        1.0,
        "a spread f32 cannot divide by counts as none"
    );
    assert_eq!(s.std()[2], 1.0);
}

/// The learning-rate finder and the line search name their own settings, and a line search
/// that cannot descend says so.
#[test]
fn searches_say_what_went_wrong() {
    let g = gpu();
    let data = blobs();
    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    for (finder, name) in [
        (
            steepest::LrFinder {
                min_lr: 1e-300,
                ..Default::default()
            },
            "min_lr",
        ),
        (
            steepest::LrFinder {
                max_lr: 1e300,
                ..Default::default()
            },
            "max_lr",
        ),
        (
            steepest::LrFinder {
                divergence: f64::NAN,
                ..Default::default()
            },
            "divergence",
        ),
    ] {
        let err = finder
            .run(g, &mut model, &cross_entropy(), &data)
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("LrFinder") && message.contains(name),
            "{message}"
        );
        assert!(!message.contains("LrSchedule"), "{message}");
    }
    for (search, name) in [
        (
            steepest::LineSearch {
                iterations: 0,
                ..Default::default()
            },
            "iterations",
        ),
        (
            steepest::LineSearch {
                grad_tolerance: f64::NAN,
                ..Default::default()
            },
            "grad_tolerance",
        ),
        (
            steepest::LineSearch {
                grad_tolerance: -1.0,
                ..Default::default()
            },
            "grad_tolerance",
        ),
    ] {
        let before = model.parameters_flat(g).unwrap();
        let err = search
            .run(g, &mut model, &data, Loss::SoftmaxCrossEntropy)
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("LineSearch") && message.contains(name),
            "{message}"
        );
        assert_eq!(model.parameters_flat(g).unwrap(), before);
    }
    let err = steepest::LineSearch::default()
        .run(g, &mut model, &data, Loss::MeanSquaredError)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("LineSearch::run") && err.contains("regression targets"),
        "{err}"
    );
    let search = steepest::LineSearch {
        initial_step: 1e30,
        max_backtracks: 0,
        iterations: 3,
        ..Default::default()
    };
    let before = model.parameters_flat(g).unwrap();
    let history = search
        .run(g, &mut model, &data, Loss::SoftmaxCrossEntropy)
        .unwrap();
    assert!(
        matches!(
            history.stop,
            steepest::StopReason::NoDescent { backtracks: 0, .. }
        ),
        "{:?}",
        history.stop
    );
    assert_eq!(
        model.parameters_flat(g).unwrap(),
        before,
        "a rejected step was kept"
    );
}

/// The full-batch methods' class weights are checked as the trainer's are, when `run` is
/// called: the error names the method's setting, and the model is untouched.
#[test]
fn full_batch_class_weights_are_checked() {
    let g = gpu();
    let regression = data::linear(30, &[1.0, -1.0], 0.0, 0.1, 2).unwrap();
    let line = |w: Vec<f32>| steepest::LineSearch::default().class_weights(w);
    let lbfgs = |w: Vec<f32>| steepest::Lbfgs::default().class_weights(w);
    let cases: [(Vec<f32>, bool, &str); 4] = [
        (vec![1.0], false, "mse weighs no classes"),
        (
            vec![1.0, 2.0],
            true,
            "2 class weights for a model of 3 classes: one per class",
        ),
        (vec![1.0, f32::NAN, 1.0], true, "class 1's weight is NaN"),
        (
            vec![0.0; 3],
            true,
            "3 class weights, all 0: at least one must count",
        ),
    ];
    for (weights, classes, words) in cases {
        let (data, spec, loss) = match classes {
            true => (blobs(), spec(), Loss::SoftmaxCrossEntropy),
            false => (
                regression.clone(),
                MlpSpec::new(2).layer(1, Activation::Identity),
                Loss::MeanSquaredError,
            ),
        };
        let mut model = Mlp::new(g, &spec, Init::default(), 1).unwrap();
        let before = model.parameters_flat(g).unwrap();
        for (err, setting) in [
            (
                line(weights.clone()).run(g, &mut model, &data, loss),
                "LineSearch::class_weights",
            ),
            (
                lbfgs(weights.clone()).run(g, &mut model, &data, loss),
                "Lbfgs::class_weights",
            ),
        ] {
            let err = err.unwrap_err();
            assert!(matches!(err, Error::Data { .. }), "{err}");
            let message = err.to_string();
            assert!(
                message.starts_with(setting) && message.contains(words),
                "{message} lacks {setting} or {words}"
            );
            assert_eq!(model.parameters_flat(g).unwrap(), before);
        }
    }
}

/// Parameter groups that cannot be what was meant are refused before the first step, naming
/// the group, the pattern or the value; the model is untouched.
#[test]
// Groups of one range are meant, not a misspelt `vec![0; n]`.
#[allow(clippy::single_range_in_vec_init)]
fn parameter_groups_are_validated() {
    let grouped = |group: ParamGroup| cross_entropy().param_group(group);
    for (trainer, words) in [
        (
            grouped(ParamGroup::matching("*.gamma")),
            "group 0 (\"*.gamma\") picks no parameter; the model's are layers.0.weight",
        ),
        (
            grouped(ParamGroup::matching("*.bias")).param_group(ParamGroup::matching("layers.1.*")),
            "parameter \"layers.1.bias\" is in group 0 (\"*.bias\") and group 1 (\"layers.1.*\")",
        ),
        (
            grouped(ParamGroup::matching("*.bias").lr_scale(-0.5)),
            "lr_scale = -0.5",
        ),
        (
            grouped(ParamGroup::matching("*.bias").lr_scale(f64::INFINITY)),
            "lr_scale = inf",
        ),
        (
            grouped(ParamGroup::matching("*.bias").weight_decay(f64::NAN)),
            "weight_decay = NaN",
        ),
        (
            // 1e30 × 1e10 is finite in f64 but not as the kernels apply it.
            Trainer::new(Adam::default().lr(1e30), Loss::SoftmaxCrossEntropy)
                .batch_size(8)
                .param_group(ParamGroup::matching("*.bias").lr_scale(1e10)),
            "invalid lr = ",
        ),
        (
            Trainer::new(Rprop::default(), Loss::SoftmaxCrossEntropy)
                .batch_size(8)
                .param_group(ParamGroup::matching("*.bias")),
            "Rprop takes no parameter groups but frozen ones",
        ),
        (
            grouped(ParamGroup::matching("*.bias").frozen().lr_scale(0.5)),
            "frozen param group lr_scale = 0.5",
        ),
        (
            grouped(ParamGroup::matching("*.bias").frozen().weight_decay(0.0)),
            "frozen param group weight_decay = 0",
        ),
        (
            grouped(ParamGroup::matching("*").frozen()),
            "is in a frozen group: nothing is left to train",
        ),
        (
            grouped(ParamGroup::matching("*.bias").optimizer(Adam::default().lr(0.5))),
            "param group optimizer lr = 0.5",
        ),
        (
            grouped(ParamGroup::matching("*.bias").optimizer(AdamW::default())),
            "param group optimizer AdamW = 0.001: must configure Adam, the optimizer's kind",
        ),
        (
            grouped(ParamGroup::matching("*.bias").optimizer(Adam::default().amsgrad(true))),
            "must keep the optimizer's state buffers [\"exp_avg\", \"exp_avg_sq\"]",
        ),
        (
            grouped(ParamGroup::matching("*.bias").optimizer(Adam::default().eps(-1.0))),
            "eps = -1",
        ),
        (
            grouped(
                ParamGroup::matching("*.bias")
                    .frozen()
                    .optimizer(Adam::default()),
            ),
            "frozen param group optimizer lr",
        ),
    ] {
        let err = fit_error(trainer, &blobs());
        assert!(err.to_string().contains(words), "{err} lacks {words}");
    }
    // An optimizer of the application's own: ranges outside the arena, overlapping, or off
    // the device's alignment are refused, and the optimizer is as it was.
    let ctx = gpu().context();
    let align = (ctx.limits().min_storage_buffer_offset_alignment as usize).max(16) / 4;
    let group = |ranges: Vec<std::ops::Range<usize>>| ArenaGroup {
        ranges,
        settings: GroupSettings::default(),
    };
    let len = 4 * align;
    for (groups, words) in [
        (vec![group(vec![0..len + 1])], "reaches past the arena"),
        (
            vec![group(vec![0..2 * align]), group(vec![align..3 * align])],
            "overlaps",
        ),
        (vec![group(vec![1..align])], "multiples of"),
        (vec![group(vec![0..align + 1])], "multiples of"),
    ] {
        let err = GpuOptimizer::new(ctx, Adam::default(), len)
            .unwrap()
            .with_groups(groups.clone())
            .unwrap_err();
        assert!(err.to_string().contains(words), "{groups:?}: {err}");
    }
    let err = steepest::CpuOptimizer::new(Adam::default(), 10)
        .unwrap()
        .with_groups(vec![group(vec![3..6, 5..8])])
        .unwrap_err();
    assert!(err.to_string().contains("overlaps"), "{err}");
    // A range that ends at the arena's end, unaligned, is fine.
    let tail = GpuOptimizer::new(ctx, Adam::default(), len + 3)
        .unwrap()
        .with_groups(vec![group(vec![len..len + 3])])
        .unwrap();
    assert_eq!(tail.piece_count(), 2);
}

/// A model with a batch norm, which trains on batches of 2 rows or more: a run whose batches
/// (or the epoch's last one, where it is kept) would be smaller is refused before it starts,
/// naming the layer, the rows and the remedy, and the model is unchanged; the same run with
/// the last batch dropped, or batches that leave enough over, trains.
#[test]
fn batches_too_small_for_a_batch_norm_are_refused_before_training() {
    use steepest::nn::{BatchNorm, Layer, Residual, Sequential};
    use steepest::{Linear, Session};
    fn net(nested: bool) -> Sequential<CpuBackend> {
        let norm: Box<dyn Layer<CpuBackend>> = if nested {
            let block: Vec<Box<dyn Layer<CpuBackend>>> = vec![Box::new(BatchNorm::new(8))];
            Box::new(Residual::new(block).unwrap())
        } else {
            Box::new(BatchNorm::new(8))
        };
        let layers: Vec<Box<dyn Layer<CpuBackend>>> = vec![
            Box::new(Linear::new(2, 8).with_activation(Activation::Tanh)),
            norm,
            Box::new(Linear::new(8, 3)),
        ];
        Sequential::new(&CpuBackend, layers, Init::default(), 4).unwrap()
    }
    let data = blobs().select(&(0..21).collect::<Vec<_>>()).unwrap();
    for nested in [false, true] {
        let mut model = net(nested);
        let before = model.parameters_flat(&CpuBackend).unwrap();
        for (trainer, rows, which) in [
            (
                cross_entropy().batch_size(10),
                1,
                "the last batch of each epoch",
            ),
            (cross_entropy().batch_size(1), 1, "every batch"),
        ] {
            let err = Session::new(&trainer, &CpuBackend, &mut model, &data, None).unwrap_err();
            let message = err.to_string();
            let s = if rows == 1 { "" } else { "s" };
            assert!(
                message.contains(&format!("{which} would have {rows} row{s} (21 samples"))
                    && message.contains("batch_norm(8")
                    && message.contains("2 rows or more"),
                "{message}"
            );
            let fit = trainer
                .fit(&CpuBackend, &mut model, &data, None)
                .unwrap_err();
            assert_eq!(fit.to_string(), message);
            assert_eq!(model.parameters_flat(&CpuBackend).unwrap(), before);
        }
        let search = steepest::LineSearch::default();
        let one = data.select(&[3]).unwrap();
        let err = search.run(&CpuBackend, &mut model, &one, Loss::SoftmaxCrossEntropy);
        let message = err.unwrap_err().to_string();
        assert!(
            message.contains("every batch would have 1 row (1 sample in"),
            "{message}"
        );
        for fine in [
            cross_entropy().batch_size(10).drop_last(true),
            cross_entropy().batch_size(7),
            cross_entropy().batch_size(19),
        ] {
            fine.epochs(1)
                .fit(&CpuBackend, &mut model, &data, None)
                .unwrap();
        }
    }
}
