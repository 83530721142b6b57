//! The optimizers, their clipping and their learning-rate schedules against PyTorch's own
//! trajectories: `tests/fixtures/torch_optim.py` ran `torch.optim` (single-tensor
//! implementations) and its schedulers on one parameter tensor with the same gradients at
//! every step, and committed what it saw, so these tests need no torch. Both backends must
//! follow every step's parameters to within a few roundings, run each step at PyTorch's
//! learning rate and momentum, and lower the rate on a plateau exactly when PyTorch does; and
//! whole training runs of small models (layers, loss, batches in order, optimizer, clipping,
//! schedule) must end where PyTorch's training loop ends.

mod common;

use common::gpu;
use ndarray::{Array2, ArrayD};
use steepest::nn::{Elementwise, Layer, Sequential};
use steepest::optim::{Mode, OneCycle, ReduceLrOnPlateau, Threshold};
use steepest::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Backend, BatchOrder, Clip, CpuBackend, CpuOptimizer,
    Dataset, GpuBuffer, GpuOptimizer, Init, Linear, Loss, LrSchedule, NAdam, Nonlinearity,
    OptimizerConfig, RAdam, RmsProp, Sgd, Trainer,
};

/// The fixture file (written by `torch_optim.py`), compiled in.
const FIXTURES: &[u8] = include_bytes!("fixtures/torch_optim.safetensors");

/// Steps in every trajectory of the fixture.
const STEPS: usize = 14;

/// The fixture's tensor `name`: its values as f64 and its shape.
fn fixture(name: &str) -> (Vec<f64>, Vec<usize>) {
    let file = safetensors::SafeTensors::deserialize(FIXTURES).unwrap();
    let view = file
        .tensor(name)
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    let values = match view.dtype() {
        safetensors::Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
            .collect(),
        safetensors::Dtype::F64 => view
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        other => panic!("fixture {name} has dtype {other:?}"),
    };
    (values, view.shape().to_vec())
}

fn has_fixture(name: &str) -> bool {
    let file = safetensors::SafeTensors::deserialize(FIXTURES).unwrap();
    file.tensor(name).is_ok()
}

/// One case of `torch_optim.py`'s `CASES`, built with the library's settings.
struct Case {
    name: &'static str,
    config: OptimizerConfig,
    schedule: LrSchedule,
    clip: Clip,
}

fn case(name: &'static str, config: impl Into<OptimizerConfig>) -> Case {
    Case {
        name,
        config: config.into(),
        schedule: LrSchedule::constant(),
        clip: Clip::default(),
    }
}

impl Case {
    fn schedule(self, schedule: LrSchedule) -> Self {
        Self { schedule, ..self }
    }
    fn clip(self, clip: Clip) -> Self {
        Self { clip, ..self }
    }
}

/// The cases of `torch_optim.py`, in its order, with its settings.
fn cases() -> Vec<Case> {
    let sgd = |lr, momentum| Sgd::default().lr(lr).momentum(momentum);
    let steps = STEPS as u64;
    vec![
        case("sgd", sgd(0.1, 0.0)),
        case("sgd_momentum", sgd(0.05, 0.9)),
        case(
            "sgd_dampening_decay",
            sgd(0.05, 0.9).dampening(0.2).weight_decay(0.05),
        ),
        case(
            "sgd_nesterov_maximize",
            sgd(0.05, 0.9).nesterov(true).maximize(true),
        ),
        case("rmsprop", RmsProp::default().lr(0.01)),
        case(
            "rmsprop_centered_momentum_decay",
            RmsProp::default()
                .lr(0.01)
                .alpha(0.95)
                .momentum(0.8)
                .centered(true)
                .weight_decay(0.05),
        ),
        case("adam", Adam::default().lr(0.01)),
        case(
            "adam_amsgrad_decay",
            Adam::default()
                .lr(0.01)
                .betas(0.8, 0.99)
                .weight_decay(0.05)
                .amsgrad(true),
        ),
        case("adamw", AdamW::default().lr(0.01)),
        case(
            "adamw_amsgrad_maximize",
            AdamW::default()
                .lr(0.01)
                .weight_decay(0.1)
                .amsgrad(true)
                .maximize(true),
        ),
        case("adagrad", Adagrad::default().lr(0.1)),
        case(
            "adagrad_decay",
            Adagrad::default()
                .lr(0.1)
                .lr_decay(0.01)
                .weight_decay(0.05)
                .initial_accumulator_value(0.1)
                .eps(1e-9),
        ),
        case("adadelta", Adadelta::default()),
        case(
            "adadelta_decay_maximize",
            Adadelta::default()
                .lr(0.5)
                .rho(0.8)
                .eps(1e-5)
                .weight_decay(0.05)
                .maximize(true),
        ),
        case("adamax", Adamax::default().lr(0.01)),
        case(
            "adamax_decay",
            Adamax::default()
                .lr(0.01)
                .betas(0.8, 0.99)
                .eps(1e-6)
                .weight_decay(0.05),
        ),
        case("nadam", NAdam::default().lr(0.01)),
        case(
            "nadam_l2",
            NAdam::default()
                .lr(0.01)
                .betas(0.8, 0.99)
                .weight_decay(0.05),
        ),
        case(
            "nadam_decoupled_maximize",
            NAdam::default()
                .lr(0.01)
                .weight_decay(0.1)
                .momentum_decay(0.01)
                .decoupled_weight_decay(true)
                .maximize(true),
        ),
        case("radam", RAdam::default().lr(0.01)),
        case(
            "radam_l2_maximize",
            RAdam::default().lr(0.01).weight_decay(0.05).maximize(true),
        ),
        case(
            "radam_decoupled",
            RAdam::default()
                .lr(0.01)
                .betas(0.8, 0.9)
                .weight_decay(0.1)
                .decoupled_weight_decay(true),
        ),
        case("adam_clip_norm", Adam::default().lr(0.01)).clip(Clip {
            max_norm: Some(10.0),
            max_value: None,
        }),
        case("sgd_clip_value", sgd(0.05, 0.9)).clip(Clip {
            max_norm: None,
            max_value: Some(0.5),
        }),
        case("sgd_step_lr", sgd(0.1, 0.9)).schedule(LrSchedule::step(3, 0.5)),
        case("adam_exponential_lr", Adam::default().lr(0.01))
            .schedule(LrSchedule::exponential(-(0.8f64.ln()))),
        case("adam_cosine_lr", Adam::default().lr(0.01))
            .schedule(LrSchedule::cosine(steps - 1, 0.001)),
        case("sgd_warm_restarts", sgd(0.1, 0.9))
            .schedule(LrSchedule::cosine_warm_restarts(3, 2, 0.01)),
        case("adamw_warmup_cosine", AdamW::default().lr(0.01))
            .schedule(LrSchedule::cosine(steps - 5, 0.0).with_warmup(4)),
        case("adam_one_cycle", Adam::default().lr(0.01))
            .schedule(LrSchedule::one_cycle(OneCycle::new(steps))),
        case("sgd_one_cycle_linear_three_phase", sgd(0.1, 0.9)).schedule(LrSchedule::one_cycle(
            OneCycle::new(steps)
                .pct_start(0.25)
                .linear()
                .three_phase(true)
                .momentum(0.8, 0.9)
                .div_factors(10.0, 100.0),
        )),
        case(
            "rmsprop_one_cycle",
            RmsProp::default().lr(0.01).momentum(0.9),
        )
        .schedule(LrSchedule::one_cycle(OneCycle::new(steps))),
        case("adamax_step_lr", Adamax::default().lr(0.01)).schedule(LrSchedule::step(4, 0.3)),
        case("nadam_one_cycle", NAdam::default().lr(0.01))
            .schedule(LrSchedule::one_cycle(OneCycle::new(steps))),
        case("radam_one_cycle", RAdam::default().lr(0.01))
            .schedule(LrSchedule::one_cycle(OneCycle::new(steps))),
        case("adamw_one_cycle_fixed_momentum", AdamW::default().lr(0.01)).schedule(
            LrSchedule::one_cycle(OneCycle::new(steps).without_momentum_cycle()),
        ),
    ]
}

/// How far a step's parameters may be from PyTorch's, relative to 1 + |θ|. PyTorch's CPU
/// kernels and ours round the same operations in the same order, but may contract a multiply
/// and an add into one fma (or not) and sum a clipping norm in another order; each such
/// rounding moves a parameter by about an ulp, and the state carries it into later steps.
/// Measured with torch 2.15 (this fixture, 14 steps): at most 3.2e-7 (SGD with dampening
/// and decay, whose parameters move furthest), 2.7 ulps of 1; both backends alike. 8 ulps
/// leaves room; a wrong formula, order of terms or rate is off by orders of magnitude more.
const TOLERANCE: f64 = 8.0 * f32::EPSILON as f64;

/// Runs `steps` steps of `step(params, grads)` from the fixture's start and compares each
/// step's parameters with PyTorch's.
fn check_trajectory(case: &Case, backend: &str, mut step: impl FnMut(&mut Vec<f32>, &[f32])) {
    let (theta0, _) = fixture("theta0");
    let (grads, shape) = fixture("grads");
    let (expected, _) = fixture(&format!("{}.theta", case.name));
    let n = shape[1];
    let mut theta: Vec<f32> = theta0.iter().map(|&x| x as f32).collect();
    let mut worst = 0.0f64;
    for t in 0..STEPS {
        let g: Vec<f32> = grads[t * n..(t + 1) * n]
            .iter()
            .map(|&x| x as f32)
            .collect();
        step(&mut theta, &g);
        for (i, (&a, &e)) in theta.iter().zip(&expected[t * n..(t + 1) * n]).enumerate() {
            let err = (f64::from(a) - e).abs() / (1.0 + e.abs());
            worst = worst.max(err);
            assert!(
                err <= TOLERANCE,
                "{} on {backend}: step {}, element {i}: θ = {a}, PyTorch {e}",
                case.name,
                t + 1
            );
        }
    }
    // A trajectory that never moved would match a fixture that never moved: make sure it moved.
    let moved = expected[(STEPS - 1) * n..]
        .iter()
        .zip(&theta0)
        .any(|(e, s)| (e - s).abs() > 1e-3);
    assert!(
        moved,
        "{}: the fixture's parameters did not move",
        case.name
    );
    eprintln!(
        "{} on {backend}: worst relative difference {worst:.2e}",
        case.name
    );
}

#[test]
fn every_optimizer_follows_pytorchs_trajectory_on_the_cpu() {
    let cases = cases();
    for case in &cases {
        let (_, shape) = fixture("theta0");
        let mut opt = CpuOptimizer::new(case.config, shape[1])
            .unwrap()
            .with_schedule(case.schedule)
            .unwrap()
            .with_clip(case.clip)
            .unwrap();
        check_trajectory(case, "the CPU", |theta, g| opt.step(theta, g).unwrap());
    }
}

#[test]
fn every_optimizer_follows_pytorchs_trajectory_on_the_gpu() {
    let ctx = gpu().context();
    for case in &cases() {
        let (_, shape) = fixture("theta0");
        let n = shape[1];
        let mut opt = GpuOptimizer::new(ctx, case.config, n)
            .unwrap()
            .with_schedule(case.schedule)
            .unwrap()
            .with_clip(case.clip)
            .unwrap();
        let mut params = GpuBuffer::from_slice(ctx, "θ", &vec![0.0f32; n]).unwrap();
        let grads = GpuBuffer::from_slice(ctx, "g", &vec![0.0f32; n]).unwrap();
        check_trajectory(case, "the GPU", |theta, g| {
            params.write(ctx, 0, theta).unwrap();
            grads.write(ctx, 0, g).unwrap();
            opt.step(&mut params, &grads).unwrap();
            *theta = params.read(ctx).unwrap();
        });
    }
}

#[test]
fn schedules_run_each_step_at_pytorchs_rate_and_momentum() {
    for case in &cases() {
        let (lrs, _) = fixture(&format!("{}.lr", case.name));
        let opt = CpuOptimizer::new(case.config, 1)
            .unwrap()
            .with_schedule(case.schedule)
            .unwrap();
        for (t, &want) in lrs.iter().enumerate() {
            let got = opt.lr_at(t as u64 + 1);
            assert!(
                (got - want).abs() <= 1e-12 * want.abs(),
                "{}: update {t} runs at {got}, PyTorch's at {want}",
                case.name
            );
        }
        let momentum = format!("{}.momentum", case.name);
        if has_fixture(&momentum) {
            for (t, &want) in fixture(&momentum).0.iter().enumerate() {
                let got = case.schedule.momentum_at(t as u64);
                assert_eq!(
                    got,
                    Some(want),
                    "{}: update {t}'s momentum, PyTorch's {want}",
                    case.name
                );
            }
        } else {
            assert_eq!(case.schedule.momentum_at(0), None, "{}", case.name);
        }
    }
}

#[test]
fn plateau_rule_lowers_the_rate_when_pytorchs_does() {
    let rules = [
        (
            "defaults_patience_2",
            ReduceLrOnPlateau::default().patience(2),
        ),
        (
            "relative_cooldown_floor",
            ReduceLrOnPlateau::default()
                .factor(0.5)
                .patience(1)
                .threshold(0.05, Threshold::Relative)
                .cooldown(2)
                .min_lr(0.02),
        ),
        (
            "max_absolute",
            ReduceLrOnPlateau::default()
                .mode(Mode::Max)
                .factor(0.3)
                .patience(1)
                .threshold(0.01, Threshold::Absolute),
        ),
        // The floor is less than `eps` below the rate: PyTorch never lowers it.
        (
            "max_relative_eps",
            ReduceLrOnPlateau::default()
                .mode(Mode::Max)
                .factor(0.5)
                .patience(0)
                .min_lr(0.0999)
                .eps(1e-3),
        ),
    ];
    let mut lowered = 0;
    for (name, rule) in rules {
        rule.validate().unwrap();
        let (values, _) = fixture(&format!("plateau.{name}.values"));
        let (want, _) = fixture(&format!("plateau.{name}.lr"));
        let mut state = rule.start(0.1);
        let got: Vec<f64> = values.iter().map(|&v| rule.step(&mut state, v)).collect();
        assert_eq!(got, want, "plateau case {name}");
        lowered += usize::from(want.iter().any(|&lr| lr != 0.1));
    }
    assert_eq!(
        lowered, 3,
        "PyTorch lowered the rate in the first three cases only"
    );
}

/// How far a training run's batch losses and final parameters may be from PyTorch's,
/// relative to 1 + |value|: its products sum in another order than ours (a few ulps of each
/// output), and fifteen steps carry that into the parameters. Measured with torch 2.15: at
/// most 1.7e-7 on the CPU and on lavapipe. A wrong loss scale, gradient, clipping norm or
/// rate is off by 1e-3 or more after one step.
const TRAINED_TOLERANCE: f64 = 2e-6;

/// `torch_optim.py`'s training case `name` on `backend`: its model, loss and data, trained as
/// `trainer` (batches of 8 in order, 3 epochs); checks every step's batch loss and the final
/// parameters against PyTorch's.
fn check_training<B: Backend>(
    backend: &B,
    backend_name: &str,
    name: &str,
    layers: Vec<Box<dyn Layer<B>>>,
    loss: Loss,
    trainer: impl FnOnce(Trainer) -> Trainer,
    optimizer: impl Into<OptimizerConfig>,
) {
    let matrix = |key: &str| {
        let (values, shape) = fixture(&format!("train.{name}.{key}"));
        Array2::from_shape_vec(
            (shape[0], shape[1]),
            values.iter().map(|&v| v as f32).collect(),
        )
        .unwrap()
    };
    let (x, t) = (matrix("x"), matrix("t"));
    let data = if loss.is_regression() {
        Dataset::regression(x, t).unwrap()
    } else {
        let labels: Vec<usize> = t.iter().map(|&l| l as usize).collect();
        Dataset::classification(x, &labels, 3).unwrap()
    };
    let mut model = Sequential::new(backend, layers, Init::default(), 9).unwrap();
    let tensors = |stage: &str, model: &Sequential<B>| -> Vec<(String, ArrayD<f64>)> {
        model
            .parameter_specs()
            .iter()
            .map(|p| {
                let (values, _) = fixture(&format!("train.{name}.{stage}.{}", p.name));
                let array = ArrayD::from_shape_vec(p.torch_shape.clone(), values).unwrap();
                (p.name.clone(), array)
            })
            .collect()
    };
    let init: Vec<(String, ArrayD<f32>)> = tensors("init", &model)
        .into_iter()
        .map(|(n, a)| (n, a.mapv(|v| v as f32)))
        .collect();
    model.load_state_dict(backend, &init).unwrap();
    let trainer = trainer(
        Trainer::new(optimizer, loss)
            .batch_size(8)
            .epochs(3)
            .batch_order(BatchOrder::InOrder)
            .log_every(1),
    );
    let history = trainer.fit(backend, &mut model, &data, None).unwrap();

    let close = |a: f64, e: f64| (a - e).abs() / (1.0 + e.abs());
    let (losses, _) = fixture(&format!("train.{name}.loss"));
    assert_eq!(history.steps.len(), losses.len(), "{name}: steps logged");
    let mut worst = 0.0f64;
    for (record, &want) in history.steps.iter().zip(&losses) {
        let err = close(record.loss, want);
        worst = worst.max(err);
        assert!(
            err <= TRAINED_TOLERANCE,
            "{name} on {backend_name}: step {}'s loss {}, PyTorch's {want}",
            record.step,
            record.loss
        );
    }
    let trained = model.state_dict(backend).unwrap();
    for ((got_name, got), (want_name, want)) in trained.iter().zip(tensors("final", &model)) {
        assert_eq!(*got_name, want_name);
        for (&a, &e) in got.iter().zip(want.iter()) {
            let err = close(f64::from(a), e);
            worst = worst.max(err);
            assert!(
                err <= TRAINED_TOLERANCE,
                "{name} on {backend_name}: {got_name} trained to {a}, PyTorch's to {e}"
            );
        }
    }
    eprintln!("{name} on {backend_name}: worst relative difference {worst:.2e}");
}

fn train_both_cases_on<B: Backend>(backend: &B, backend_name: &str) {
    let classifier: Vec<Box<dyn Layer<B>>> = vec![
        Box::new(Linear::new(4, 16)),
        Box::new(Elementwise::new(16, Nonlinearity::Tanh)),
        Box::new(Linear::new(16, 16)),
        Box::new(Elementwise::new(16, Nonlinearity::Relu)),
        Box::new(Linear::new(16, 3)),
    ];
    check_training(
        backend,
        backend_name,
        "classifier",
        classifier,
        Loss::SoftmaxCrossEntropy,
        |t| {
            t.schedule(LrSchedule::cosine(14, 0.001)).clip(Clip {
                max_norm: Some(0.4),
                max_value: None,
            })
        },
        AdamW::default().lr(0.02).weight_decay(0.01),
    );
    let regression: Vec<Box<dyn Layer<B>>> = vec![
        Box::new(Linear::new(4, 12)),
        Box::new(Elementwise::new(12, Nonlinearity::Sigmoid)),
        Box::new(Linear::new(12, 2)),
    ];
    check_training(
        backend,
        backend_name,
        "regression",
        regression,
        Loss::MeanSquaredError,
        |t| t.schedule(LrSchedule::step(4, 0.5)),
        Sgd::default()
            .lr(0.2)
            .momentum(0.9)
            .nesterov(true)
            .weight_decay(0.01),
    );
}

#[test]
fn training_runs_end_where_pytorchs_end_on_the_cpu() {
    train_both_cases_on(&CpuBackend, "the CPU");
}

#[test]
fn training_runs_end_where_pytorchs_end_on_the_gpu() {
    train_both_cases_on(gpu(), "the GPU");
}
