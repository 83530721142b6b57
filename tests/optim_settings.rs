//! The optimizers' settings on the CPU backend: PyTorch's defaults, hyperparameter validation,
//! learning-rate schedules, clipping, monitoring, and state that round-trips (the update rules
//! themselves are in `optim_rules.rs`).

use steepest::optim::{Decay, OneCycle};
use steepest::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Asgd, Clip, CpuOptimizer, Error, LrSchedule, NAdam,
    OptimizerConfig, RAdam, RmsProp, Rprop, Sgd,
};

#[test]
fn defaults_are_pytorchs() {
    assert_eq!(
        Sgd::default(),
        Sgd {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false
        }
    );
    let adam = Adam::default();
    assert_eq!(
        (
            adam.lr,
            adam.betas,
            adam.eps,
            adam.weight_decay,
            adam.amsgrad
        ),
        (1e-3, (0.9, 0.999), 1e-8, 0.0, false)
    );
    let adamw = AdamW::default();
    assert_eq!(
        (adamw.lr, adamw.betas, adamw.eps, adamw.weight_decay),
        (1e-3, (0.9, 0.999), 1e-8, 1e-2)
    );
    let rms = RmsProp::default();
    assert_eq!(
        (rms.lr, rms.alpha, rms.eps, rms.momentum, rms.centered),
        (1e-2, 0.99, 1e-8, 0.0, false)
    );
    let ada = Adagrad::default();
    assert_eq!(
        (ada.lr, ada.lr_decay, ada.initial_accumulator_value, ada.eps),
        (1e-2, 0.0, 0.0, 1e-10)
    );
    let adadelta = Adadelta::default();
    assert_eq!(
        (
            adadelta.lr,
            adadelta.rho,
            adadelta.eps,
            adadelta.weight_decay
        ),
        (1.0, 0.9, 1e-6, 0.0)
    );
    let adamax = Adamax::default();
    assert_eq!(
        (adamax.lr, adamax.betas, adamax.eps, adamax.weight_decay),
        (2e-3, (0.9, 0.999), 1e-8, 0.0)
    );
    let nadam = NAdam::default();
    assert_eq!(
        (
            nadam.lr,
            nadam.betas,
            nadam.eps,
            nadam.weight_decay,
            nadam.momentum_decay,
            nadam.decoupled_weight_decay
        ),
        (2e-3, (0.9, 0.999), 1e-8, 0.0, 4e-3, false)
    );
    let radam = RAdam::default();
    assert_eq!(
        (
            radam.lr,
            radam.betas,
            radam.eps,
            radam.weight_decay,
            radam.decoupled_weight_decay
        ),
        (1e-3, (0.9, 0.999), 1e-8, 0.0, false)
    );
    let rprop = Rprop::default();
    assert_eq!(
        (rprop.lr, rprop.etas, rprop.step_sizes, rprop.maximize),
        (1e-2, (0.5, 1.2), (1e-6, 50.0), false)
    );
    let asgd = Asgd::default();
    assert_eq!(
        (
            asgd.lr,
            asgd.lambd,
            asgd.alpha,
            asgd.t0,
            asgd.weight_decay,
            asgd.maximize
        ),
        (1e-2, 1e-4, 0.75, 1e6, 0.0, false)
    );
    // Builders are named after PyTorch's arguments.
    let built = Adam::default()
        .lr(0.5)
        .betas(0.8, 0.9)
        .eps(1e-6)
        .weight_decay(0.1)
        .amsgrad(true)
        .maximize(true);
    assert_eq!(
        built,
        Adam {
            lr: 0.5,
            betas: (0.8, 0.9),
            eps: 1e-6,
            weight_decay: 0.1,
            amsgrad: true,
            maximize: true
        }
    );
}

#[test]
fn invalid_hyperparameters_fail_when_the_optimizer_is_built() {
    let cases: Vec<(OptimizerConfig, &str)> = vec![
        (Sgd::default().lr(-0.1).into(), "lr"),
        (Sgd::default().momentum(-0.5).into(), "momentum"),
        (Sgd::default().nesterov(true).into(), "nesterov"),
        (
            Sgd::default()
                .momentum(0.9)
                .dampening(0.1)
                .nesterov(true)
                .into(),
            "nesterov",
        ),
        (Sgd::default().lr(f64::NAN).into(), "lr"),
        (Adam::default().betas(1.0, 0.999).into(), "beta1"),
        (Adam::default().betas(0.9, -0.1).into(), "beta2"),
        (Adam::default().eps(0.0).into(), "eps"),
        (AdamW::default().weight_decay(-1.0).into(), "weight_decay"),
        (AdamW::default().lr(f64::INFINITY).into(), "lr"),
        (RmsProp::default().eps(-1e-8).into(), "eps"),
        (RmsProp::default().alpha(-0.1).into(), "alpha"),
        (Adagrad::default().lr_decay(-1.0).into(), "lr_decay"),
        (
            Adagrad::default().initial_accumulator_value(-1.0).into(),
            "initial_accumulator_value",
        ),
        (Adagrad::default().eps(0.0).into(), "eps"),
        (Adadelta::default().rho(1.5).into(), "rho"),
        (Adadelta::default().eps(0.0).into(), "eps"),
        (Adamax::default().betas(0.9, 1.0).into(), "beta2"),
        (Adamax::default().weight_decay(-0.1).into(), "weight_decay"),
        (
            NAdam::default().momentum_decay(-1e-3).into(),
            "momentum_decay",
        ),
        (NAdam::default().betas(-0.1, 0.999).into(), "beta1"),
        (RAdam::default().eps(-1e-8).into(), "eps"),
        (RAdam::default().lr(-1.0).into(), "lr"),
        (Rprop::default().etas(1.0, 1.2).into(), "eta_minus"),
        (Rprop::default().etas(0.5, 1.0).into(), "eta_plus"),
        (
            Rprop::default().step_sizes(-1e-6, 50.0).into(),
            "step_size_min",
        ),
        (
            Rprop::default().step_sizes(1.0, 0.5).into(),
            "step_size_max",
        ),
        (Asgd::default().lambd(-1e-4).into(), "lambd"),
        (Asgd::default().alpha(f64::NAN).into(), "alpha"),
        (Asgd::default().t0(f64::INFINITY).into(), "t0"),
        (Asgd::default().weight_decay(-0.1).into(), "weight_decay"),
    ];
    for (config, field) in cases {
        match CpuOptimizer::new(config, 4) {
            Err(Error::InvalidHyperparameter {
                name, optimizer, ..
            }) => {
                assert_eq!(name, field, "{config:?}");
                assert_eq!(optimizer, config.name());
            }
            other => {
                panic!("{config:?}: expected InvalidHyperparameter for {field}, got {other:?}")
            }
        }
    }
    let message = CpuOptimizer::new(Adam::default().betas(1.5, 0.9), 1)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("Adam") && message.contains("beta1") && message.contains("1.5"),
        "{message}"
    );
    assert!(matches!(
        CpuOptimizer::new(Adam::default(), 0),
        Err(Error::EmptyBuffer { .. })
    ));
    let bad_clip = CpuOptimizer::new(Sgd::default(), 3)
        .unwrap()
        .with_clip(Clip {
            max_norm: Some(-1.0),
            max_value: None,
        });
    assert!(matches!(bad_clip, Err(Error::InvalidHyperparameter { .. })));
}

#[test]
fn schedules_give_the_documented_rates() {
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    close(LrSchedule::constant().lr_at(0.1, 1000), 0.1);
    let step = LrSchedule::step(10, 0.5);
    for (t, want) in [(0, 0.1), (9, 0.1), (10, 0.05), (25, 0.025)] {
        close(step.lr_at(0.1, t), want);
    }
    close(
        LrSchedule::exponential(0.1).lr_at(2.0, 10),
        2.0 * (-1.0f64).exp(),
    );
    close(LrSchedule::inverse_time(0.5).lr_at(1.0, 4), 1.0 / 3.0);
    let cosine = LrSchedule::cosine(100, 0.01);
    close(cosine.lr_at(1.0, 0), 1.0);
    close(cosine.lr_at(1.0, 50), 0.505);
    close(cosine.lr_at(1.0, 100), 0.01);
    close(cosine.lr_at(1.0, 1000), 0.01);
    // Warm-up climbs linearly to the decay's start, then the decay's clock starts at 0.
    let warm = LrSchedule::step(10, 0.5).with_warmup(4);
    let rates: Vec<f64> = (0..6).map(|t| warm.lr_at(1.0, t)).collect();
    for (a, b) in rates.iter().zip([0.2, 0.4, 0.6, 0.8, 1.0, 1.0]) {
        close(*a, b);
    }
    close(warm.lr_at(1.0, 14), 0.5);
    // From a start factor of one's own (PyTorch's LinearLR): f, then equal steps to 1.
    let from = LrSchedule::step(10, 0.5).with_warmup_from(4, 0.2);
    let rates: Vec<f64> = (0..6).map(|t| from.lr_at(1.0, t)).collect();
    for (a, b) in rates.iter().zip([0.2, 0.4, 0.6, 0.8, 1.0, 1.0]) {
        close(*a, b);
    }
    let from = LrSchedule::constant().with_warmup_from(5, 0.1);
    for (t, want) in [(0, 0.1), (1, 0.28), (4, 0.82), (5, 1.0)] {
        close(from.lr_at(1.0, t), want);
    }
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        assert!(
            LrSchedule::constant()
                .with_warmup_from(5, bad)
                .validate()
                .is_err()
        );
    }
    // A start factor without warm-up steps would change nothing: refused.
    assert!(
        LrSchedule::constant()
            .with_warmup_from(0, 0.5)
            .validate()
            .is_err()
    );
    assert!(matches!(
        LrSchedule {
            decay: Decay::Step {
                every: 0,
                gamma: 0.5
            },
            warmup: 0,
            warmup_start: None,
        }
        .validate(),
        Err(Error::InvalidHyperparameter { .. })
    ));
    assert!(LrSchedule::exponential(-1.0).validate().is_err());
    assert!(LrSchedule::cosine(0, 0.0).validate().is_err());
    // Multi-step: γ at each milestone reached (twice at one given twice), in any order given.
    let multi = LrSchedule::multi_step(&[30, 10, 30], 0.1);
    for (t, want) in [
        (0, 1.0),
        (9, 1.0),
        (10, 0.1),
        (29, 0.1),
        (30, 1e-3),
        (1000, 1e-3),
    ] {
        close(multi.lr_at(1.0, t), want);
    }
    close(LrSchedule::multi_step(&[], 0.1).lr_at(1.0, 1000), 1.0);
    // Polynomial: (1 − t/total)^power, then 0.
    let poly = LrSchedule::polynomial(10, 2.0);
    for (t, want) in [(0, 1.0), (5, 0.25), (9, 0.01), (10, 0.0), (11, 0.0)] {
        close(poly.lr_at(1.0, t), want);
    }
    let refused = |schedule: LrSchedule, name: &str| match schedule.validate() {
        Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name, "{schedule:?}"),
        other => panic!("{schedule:?}: expected {name} refused, got {other:?}"),
    };
    refused(LrSchedule::multi_step(&[5], 0.0), "gamma");
    refused(LrSchedule::multi_step(&[5], f64::NAN), "gamma");
    refused(
        LrSchedule {
            decay: Decay::MultiStep {
                milestones: vec![5, 3],
                gamma: 0.5,
            },
            warmup: 0,
            warmup_start: None,
        },
        "milestones",
    );
    refused(LrSchedule::polynomial(0, 1.0), "total");
    refused(LrSchedule::polynomial(10, -1.0), "power");
}

/// PyTorch's CosineAnnealingWarmRestarts, stepped once per update as its docs do it: `T_cur`
/// counts up and, on reaching `T_i`, drops by `T_i` while `T_i` grows `T_mult` times.
#[test]
fn warm_restarts_count_their_periods_as_pytorch_does() {
    for (t0, mult) in [(3u64, 1u64), (3, 2), (1, 3), (5, 2)] {
        let schedule = LrSchedule::cosine_warm_restarts(t0, mult, 0.01);
        let (mut t_cur, mut t_i) = (0u64, t0);
        for t in 0..200 {
            if t > 0 {
                t_cur += 1;
                if t_cur >= t_i {
                    t_cur -= t_i;
                    t_i *= mult;
                }
            }
            let want = 0.01
                + (0.5 - 0.01) * (1.0 + (std::f64::consts::PI * t_cur as f64 / t_i as f64).cos())
                    / 2.0;
            assert_eq!(
                schedule.lr_at(0.5, t),
                want,
                "T_0 {t0}, T_mult {mult}, update {t}"
            );
        }
    }
    // Restarts at the base rate: updates 0, 3, 9 and 21 with T_0 = 3, T_mult = 2.
    let restarts = LrSchedule::cosine_warm_restarts(3, 2, 0.0);
    for t in [0, 3, 9, 21] {
        assert!((restarts.lr_at(0.5, t) - 0.5).abs() < 1e-15, "update {t}");
    }
    // A far update costs no more than a near one, and a period past u64 never ends.
    let long = LrSchedule::cosine_warm_restarts(10, 1, 0.0);
    assert_eq!(long.lr_at(1.0, 10_000_000_007), long.lr_at(1.0, 7));
    assert!(LrSchedule::cosine_warm_restarts(u64::MAX / 2, 3, 0.0).lr_at(1.0, u64::MAX - 1) > 0.0);
    for (bad, name) in [
        (LrSchedule::cosine_warm_restarts(0, 1, 0.0), "period"),
        (LrSchedule::cosine_warm_restarts(3, 0, 0.0), "mult"),
        (LrSchedule::cosine_warm_restarts(3, 1, -1.0), "min_lr"),
    ] {
        let err = bad.validate().unwrap_err();
        assert!(
            matches!(&err, Error::InvalidHyperparameter { name: n, .. } if n == name),
            "{err}"
        );
    }
}

/// SGD at a base rate of 1 on one parameter, its rate falling tenfold every two updates.
fn sgd_stepping_down() -> (CpuOptimizer, LrSchedule) {
    let schedule = LrSchedule::step(2, 0.1);
    let opt = CpuOptimizer::new(Sgd::default().lr(1.0), 1)
        .unwrap()
        .with_schedule(schedule.clone())
        .unwrap();
    (opt, schedule)
}

#[test]
fn the_optimizer_applies_its_schedule() {
    let (mut opt, schedule) = sgd_stepping_down();
    let mut theta = [0.0f32];
    let mut moves = Vec::new();
    for update in 1..=5 {
        let before = theta[0];
        opt.step(&mut theta, &[-1.0]).unwrap();
        moves.push(f64::from(theta[0] - before));
        assert_eq!(opt.lr_at(update), schedule.lr_at(1.0, update - 1));
    }
    for (m, want) in moves.iter().zip([1.0, 1.0, 0.1, 0.1, 0.01]) {
        assert!((m - want).abs() < 1e-6, "{moves:?}");
    }
    assert_eq!(opt.steps(), 5);
}

#[test]
fn a_new_rate_is_the_base_the_schedule_scales_from_the_next_update() {
    let (mut opt, _) = sgd_stepping_down();
    let mut theta = [0.0f32];
    opt.step(&mut theta, &[-1.0]).unwrap();
    opt.set_lr(0.5).unwrap();
    assert_eq!(opt.config().lr(), 0.5);
    opt.step(&mut theta, &[-1.0]).unwrap();
    opt.step(&mut theta, &[-1.0]).unwrap();
    // 1 at the base of 1, then 0.5 and 0.5 · 0.1 at the base of 0.5.
    assert!((theta[0] - 1.55).abs() < 1e-6, "{theta:?}");
    assert_eq!(opt.lr_at(3), 0.5 * 0.1);
    for bad in [-0.1, f64::NAN, 1e300] {
        let err = opt.set_lr(bad).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidHyperparameter { name, .. } if name == "lr"),
            "{err}"
        );
        assert_eq!(opt.config().lr(), 0.5, "a refused rate changes nothing");
    }
    assert_eq!(opt.steps(), 3);
}

#[test]
fn one_cycle_schedules_are_checked_against_the_optimizer() {
    let cycle = LrSchedule::one_cycle(OneCycle::new(100));
    let refused = |config: OptimizerConfig, schedule: LrSchedule, words: &str| {
        let err = CpuOptimizer::new(config, 1)
            .unwrap()
            .with_schedule(schedule)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidHyperparameter { .. }) && err.to_string().contains(words),
            "{config:?}: {err}"
        );
    };
    // A cycled momentum needs an optimizer that uses one.
    refused(
        Sgd::default().into(),
        cycle.clone(),
        "SGD without momentum would ignore it",
    );
    refused(
        RmsProp::default().into(),
        cycle.clone(),
        "RMSprop without momentum",
    );
    refused(
        Adagrad::default().into(),
        cycle.clone(),
        "Adagrad, which has no momentum",
    );
    refused(
        Adadelta::default().into(),
        cycle.clone(),
        "Adadelta, which has no momentum",
    );
    refused(
        Asgd::default().into(),
        cycle.clone(),
        "ASGD, which has no momentum",
    );
    // Rprop reads its rate once, as its starting step sizes: any schedule is refused.
    for schedule in [
        LrSchedule::step(10, 0.5),
        LrSchedule::constant().with_warmup(5),
        cycle.clone(),
    ] {
        refused(Rprop::default().into(), schedule, "Rprop takes no schedule");
    }
    CpuOptimizer::new(Rprop::default(), 1)
        .unwrap()
        .with_schedule(LrSchedule::constant())
        .unwrap();
    // It warms up itself.
    refused(
        Adam::default().into(),
        cycle.clone().with_warmup(5),
        "warmup",
    );
    for config in [
        OptimizerConfig::from(Adam::default()),
        Sgd::default().momentum(0.9).into(),
        RmsProp::default().momentum(0.5).into(),
        Adamax::default().into(),
        NAdam::default().into(),
        RAdam::default().into(),
    ] {
        CpuOptimizer::new(config, 1)
            .unwrap()
            .with_schedule(cycle.clone())
            .unwrap();
    }
    let plain = LrSchedule::one_cycle(OneCycle::new(100).without_momentum_cycle());
    CpuOptimizer::new(Sgd::default(), 1)
        .unwrap()
        .with_schedule(plain.clone())
        .unwrap();
    assert_eq!(plain.momentum_at(0), None);
    assert_eq!(cycle.momentum_at(0), Some(0.95));
    assert_eq!(cycle.last_update(), Some(100));
}

#[test]
fn clipping_matches_torchs_definitions() {
    // ‖g‖ = 5: clip_grad_norm_(max_norm = 1) scales by 1/(5 + 1e-6).
    let mut opt = CpuOptimizer::new(Sgd::default().lr(1.0), 2)
        .unwrap()
        .with_clip(Clip {
            max_norm: Some(1.0),
            max_value: None,
        })
        .unwrap();
    let mut theta = [0.0f32, 0.0];
    opt.step(&mut theta, &[3.0, 4.0]).unwrap();
    let scale = 1.0 / (5.0 + 1e-6);
    assert!(
        (theta[0] + 3.0 * scale).abs() < 1e-6 && (theta[1] + 4.0 * scale).abs() < 1e-6,
        "{theta:?}"
    );
    // Under the norm, nothing changes.
    let mut opt = CpuOptimizer::new(Sgd::default().lr(1.0), 2)
        .unwrap()
        .with_clip(Clip {
            max_norm: Some(10.0),
            max_value: None,
        })
        .unwrap();
    let mut theta = [0.0f32, 0.0];
    opt.step(&mut theta, &[3.0, 4.0]).unwrap();
    assert_eq!(theta, [-3.0, -4.0]);
    // clip_grad_value_ clamps each element.
    let mut opt = CpuOptimizer::new(Sgd::default().lr(1.0), 3)
        .unwrap()
        .with_clip(Clip {
            max_norm: None,
            max_value: Some(0.5),
        })
        .unwrap();
    let mut theta = [0.0f32; 3];
    opt.step(&mut theta, &[3.0, -4.0, 0.25]).unwrap();
    assert_eq!(theta, [-0.5, 0.5, -0.25]);
}

#[test]
fn monitoring_reports_norms_and_the_update_ratio() {
    let mut opt = CpuOptimizer::new(Sgd::default().lr(0.1), 2)
        .unwrap()
        .with_monitoring(true);
    assert_eq!(opt.stats(), None);
    let mut theta = [3.0f32, 4.0];
    opt.step(&mut theta, &[6.0, 8.0]).unwrap();
    let stats = opt.stats().unwrap();
    assert!((stats.grad_norm - 10.0).abs() < 1e-5);
    assert!((stats.param_norm - 5.0).abs() < 1e-5);
    assert!((stats.update_norm - 1.0).abs() < 1e-5);
    assert!((stats.update_ratio() - 0.2).abs() < 1e-5);
}

#[test]
fn state_round_trips_and_bad_state_is_refused_without_change() {
    let grads: Vec<Vec<f32>> = (0..10)
        .map(|s| {
            (0..5)
                .map(|i| ((s * 7 + i * 3) % 11) as f32 - 5.0)
                .collect()
        })
        .collect();
    let config = Adam::default().lr(0.05).amsgrad(true);
    let mut straight = CpuOptimizer::new(config, 5).unwrap();
    let mut theta_straight = vec![1.0f32; 5];
    for g in &grads {
        straight.step(&mut theta_straight, g).unwrap();
    }
    let mut first = CpuOptimizer::new(config, 5).unwrap();
    let mut theta = vec![1.0f32; 5];
    for g in &grads[..4] {
        first.step(&mut theta, g).unwrap();
    }
    let saved = first.state();
    assert_eq!(saved.step, 4);
    let names: Vec<&str> = saved.buffers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);
    let mut resumed = CpuOptimizer::new(config, 5).unwrap();
    resumed.load_state(&saved).unwrap();
    for g in &grads[4..] {
        resumed.step(&mut theta, g).unwrap();
    }
    assert_eq!(
        theta, theta_straight,
        "resuming from saved state changed the trajectory"
    );

    let before = resumed.state();
    let mut wrong_name = saved.clone();
    wrong_name.optimizer = "SGD".into();
    let mut wrong_len = saved.clone();
    wrong_len.buffers[1].1.pop();
    let mut missing = saved.clone();
    missing.buffers.pop();
    for bad in [wrong_name, wrong_len, missing] {
        assert!(matches!(resumed.load_state(&bad), Err(Error::State { .. })));
        assert_eq!(
            resumed.state(),
            before,
            "a refused state changed the optimizer"
        );
    }
    let mut short = vec![0.0f32; 4];
    assert!(matches!(
        resumed.step(&mut short, &[0.0; 4]),
        Err(Error::Length {
            expected: 5,
            actual: 4,
            ..
        })
    ));
    assert!(matches!(
        resumed.step(&mut theta, &[0.0; 6]),
        Err(Error::Length {
            expected: 5,
            actual: 6,
            ..
        })
    ));
    assert_eq!(
        resumed.state(),
        before,
        "a refused step changed the optimizer"
    );
}
