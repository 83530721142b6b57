//! The optimizers, their clipping and their learning-rate schedules against PyTorch's own
//! trajectories: `tests/fixtures/torch_optim.py` ran `torch.optim` (single-tensor
//! implementations) and its schedulers on one parameter tensor with the same gradients at
//! every step, and committed what it saw, so these tests need no torch. Both backends must
//! follow every step's parameters to within a few roundings, run each step at PyTorch's
//! learning rate and momentum, and lower the rate on a plateau exactly when PyTorch does.
//! Whole training runs against PyTorch's are in `torch_training.rs`.

mod common;

use common::gpu;
use common::torch_fixture::{STEPS, fixture, has_fixture};
use steepest::optim::{Cyclic, CyclicMode, Mode, OneCycle, ReduceLrOnPlateau, Threshold};
use steepest::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Asgd, Clip, CpuOptimizer, GpuBuffer, GpuOptimizer,
    LrSchedule, NAdam, OptimizerConfig, OptimizerState, RAdam, RmsProp, Rprop, Sgd,
};

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
        case("asgd", Asgd::default().lr(0.05).lambd(0.05).t0(4.0)),
        case(
            "asgd_decay_maximize_step_lr",
            Asgd::default()
                .lr(0.1)
                .lambd(0.01)
                .alpha(0.5)
                .t0(8.0)
                .weight_decay(0.05)
                .maximize(true),
        )
        .schedule(LrSchedule::step(3, 0.5)),
        case("rprop", Rprop::default()),
        case(
            "rprop_etas_bounds_maximize",
            Rprop::default()
                .lr(0.05)
                .etas(0.3, 1.5)
                .step_sizes(1e-3, 0.08)
                .maximize(true),
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
        case("sgd_momentum_linear_warmup_step", sgd(0.1, 0.9))
            .schedule(LrSchedule::step(3, 0.5).with_warmup_from(5, 0.1)),
        case("sgd_cyclic_triangular", sgd(0.1, 0.9))
            .schedule(LrSchedule::cyclic(Cyclic::new(0.01, 3).step_size_down(2))),
        case("adam_cyclic_exp_range", Adam::default().lr(0.01)).schedule(LrSchedule::cyclic(
            Cyclic::new(0.001, 4).mode(CyclicMode::ExpRange { gamma: 0.9 }),
        )),
        case("sgd_cyclic_triangular2_fixed_momentum", sgd(0.1, 0.0)).schedule(LrSchedule::cyclic(
            Cyclic::new(0.02, 2)
                .mode(CyclicMode::Triangular2)
                .without_momentum_cycle(),
        )),
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
        case("sgd_multi_step_lr", sgd(0.1, 0.9))
            .schedule(LrSchedule::multi_step(&[9, 5, 2, 5], 0.5)),
        case("adam_polynomial_lr", Adam::default().lr(0.01))
            .schedule(LrSchedule::polynomial(10, 2.0)),
        case("nadam_polynomial_lr_linear", NAdam::default().lr(0.01))
            .schedule(LrSchedule::polynomial(steps, 1.0)),
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

/// Where PyTorch's run kept the state buffer of an average (ASGD's `ax`), the optimizer's
/// after the last step is PyTorch's.
fn check_average(case: &Case, backend: &str, state: &OptimizerState) {
    let name = format!("{}.ax", case.name);
    if !has_fixture(&name) {
        return;
    }
    let (expected, _) = fixture(&name);
    let ax = state
        .buffers
        .iter()
        .find(|(buffer, _)| buffer == "ax")
        .map(|(_, values)| values)
        .unwrap_or_else(|| panic!("{} on {backend} keeps no ax", case.name));
    assert_eq!(ax.len(), expected.len());
    for (i, (&a, &e)) in ax.iter().zip(&expected).enumerate() {
        let err = (f64::from(a) - e).abs() / (1.0 + e.abs());
        assert!(
            err <= TOLERANCE,
            "{} on {backend}: ax[{i}] = {a}, PyTorch {e}",
            case.name
        );
    }
}

#[test]
fn every_optimizer_follows_pytorchs_trajectory_on_the_cpu() {
    let cases = cases();
    for case in &cases {
        let (_, shape) = fixture("theta0");
        let mut opt = CpuOptimizer::new(case.config, shape[1])
            .unwrap()
            .with_schedule(case.schedule.clone())
            .unwrap()
            .with_clip(case.clip)
            .unwrap();
        check_trajectory(case, "the CPU", |theta, g| opt.step(theta, g).unwrap());
        check_average(case, "the CPU", &opt.state());
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
            .with_schedule(case.schedule.clone())
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
        check_average(case, "the GPU", &opt.state().unwrap());
    }
}

#[test]
fn schedules_run_each_step_at_pytorchs_rate_and_momentum() {
    for case in &cases() {
        let (lrs, _) = fixture(&format!("{}.lr", case.name));
        let opt = CpuOptimizer::new(case.config, 1)
            .unwrap()
            .with_schedule(case.schedule.clone())
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
