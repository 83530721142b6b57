//! The optimizers' math on the CPU backend, checked against the formulas written out here in
//! f64 (textbook form, independent of the library's operation order), worked examples with known
//! answers, hyperparameter validation and learning-rate schedules.

use steepest::optim::Decay;
use steepest::{
    Adagrad, Adam, AdamW, Clip, CpuOptimizer, Error, LrSchedule, OptimizerConfig, RmsProp, Sgd,
};

const GRADS: [f64; 4] = [0.5, -0.25, 1.5, 0.125];
const THETA0: f64 = 1.0;

/// Runs `config` on one parameter for `GRADS.len()` steps; returns θ after each.
fn run_cpu(config: impl Into<OptimizerConfig>, grads: &[f64]) -> Vec<f64> {
    let mut opt = CpuOptimizer::new(config, 1).unwrap();
    let mut theta = [THETA0 as f32];
    grads
        .iter()
        .map(|&g| {
            opt.step(&mut theta, &[g as f32]).unwrap();
            f64::from(theta[0])
        })
        .collect()
}

fn assert_trajectory(name: &str, actual: &[f64], expected: &[f64]) {
    for (t, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 2e-6 * (1.0 + e.abs()),
            "{name}: step {}: θ = {a}, expected {e}",
            t + 1
        );
    }
}

/// SGD as in the PyTorch docs, in f64.
fn sgd_reference(
    lr: f64,
    momentum: f64,
    dampening: f64,
    wd: f64,
    nesterov: bool,
    maximize: bool,
) -> Vec<f64> {
    let (mut theta, mut b) = (THETA0, 0.0);
    GRADS
        .iter()
        .enumerate()
        .map(|(t, &g)| {
            let mut g = if maximize { -g } else { g };
            g += wd * theta;
            if momentum != 0.0 {
                b = if t == 0 {
                    g
                } else {
                    momentum * b + (1.0 - dampening) * g
                };
                g = if nesterov { g + momentum * b } else { b };
            }
            theta -= lr * g;
            theta
        })
        .collect()
}

#[test]
fn sgd_follows_the_written_out_formula() {
    // Pinned by hand: θ₁ = 1 − 0.1·0.5 = 0.95; b₂ = 0.9·0.5 + 0.9·(−0.25) = 0.225; θ₂ = 0.9275.
    let with_momentum = run_cpu(Sgd::default().lr(0.1).momentum(0.9).dampening(0.1), &GRADS);
    assert_trajectory("by hand", &with_momentum[..2], &[0.95, 0.9275]);
    // Nesterov by hand: b₁ = 0.5, g = 0.5 + 0.45 → θ₁ = 0.905; b₂ = 0.2, g = −0.07 → θ₂ = 0.912.
    let nesterov = run_cpu(Sgd::default().lr(0.1).momentum(0.9).nesterov(true), &GRADS);
    assert_trajectory("nesterov by hand", &nesterov[..2], &[0.905, 0.912]);

    for momentum in [0.0, 0.9] {
        for dampening in [0.0, 0.3] {
            for wd in [0.0, 0.1] {
                for maximize in [false, true] {
                    for nesterov in [false, true] {
                        if nesterov && (momentum == 0.0 || dampening != 0.0) {
                            continue;
                        }
                        let config = Sgd {
                            lr: 0.1,
                            momentum,
                            dampening,
                            weight_decay: wd,
                            nesterov,
                            maximize,
                        };
                        let expected =
                            sgd_reference(0.1, momentum, dampening, wd, nesterov, maximize);
                        assert_trajectory(
                            &format!("{config:?}"),
                            &run_cpu(config, &GRADS),
                            &expected,
                        );
                    }
                }
            }
        }
    }
}

/// Adam / AdamW as in the PyTorch docs (bias-corrected m̂, v̂), in f64.
fn adam_reference(
    lr: f64,
    (b1, b2): (f64, f64),
    eps: f64,
    wd: f64,
    decoupled: bool,
    amsgrad: bool,
    maximize: bool,
) -> Vec<f64> {
    let (mut theta, mut m, mut v, mut v_max) = (THETA0, 0.0, 0.0, 0.0f64);
    GRADS
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            let t = (i + 1) as i32;
            let mut g = if maximize { -g } else { g };
            if decoupled {
                theta *= 1.0 - lr * wd;
            } else {
                g += wd * theta;
            }
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let m_hat = m / (1.0 - b1.powi(t));
            let v_hat = if amsgrad {
                v_max = v_max.max(v);
                v_max / (1.0 - b2.powi(t))
            } else {
                v / (1.0 - b2.powi(t))
            };
            theta -= lr * m_hat / (v_hat.sqrt() + eps);
            theta
        })
        .collect()
}

#[test]
fn adam_and_adamw_follow_the_written_out_formula() {
    // By hand: m̂₁ = 0.5, v̂₁ = 0.25, so the first step moves θ by lr·0.5/0.5 = lr.
    let first = run_cpu(Adam::default().lr(0.1), &GRADS[..1]);
    assert_trajectory("by hand", &first, &[0.9]);
    // β2 = 0.9 makes v shrink after the large first gradient, so AMSGrad's maximum matters.
    for betas in [(0.9, 0.999), (0.3, 0.9)] {
        for wd in [0.0, 0.1] {
            for amsgrad in [false, true] {
                for maximize in [false, true] {
                    let adam = Adam {
                        lr: 0.1,
                        betas,
                        eps: 1e-8,
                        weight_decay: wd,
                        amsgrad,
                        maximize,
                    };
                    let expected = adam_reference(0.1, betas, 1e-8, wd, false, amsgrad, maximize);
                    assert_trajectory(&format!("{adam:?}"), &run_cpu(adam, &GRADS), &expected);
                    let adamw = AdamW {
                        lr: 0.1,
                        betas,
                        eps: 1e-8,
                        weight_decay: wd,
                        amsgrad,
                        maximize,
                    };
                    let expected = adam_reference(0.1, betas, 1e-8, wd, true, amsgrad, maximize);
                    assert_trajectory(&format!("{adamw:?}"), &run_cpu(adamw, &GRADS), &expected);
                }
            }
        }
    }
    // AMSGrad really differs once v shrinks.
    let grads = [1.0, 0.001, 0.001];
    let plain = run_cpu(Adam::default().lr(0.1).betas(0.9, 0.9), &grads);
    let ams = run_cpu(
        Adam::default().lr(0.1).betas(0.9, 0.9).amsgrad(true),
        &grads,
    );
    assert!((plain[2] - ams[2]).abs() > 1e-3, "{plain:?} vs {ams:?}");
}

/// RMSprop as in the PyTorch docs, in f64.
fn rmsprop_reference(
    lr: f64,
    alpha: f64,
    eps: f64,
    wd: f64,
    momentum: f64,
    centered: bool,
    maximize: bool,
) -> Vec<f64> {
    let (mut theta, mut v, mut mean, mut b) = (THETA0, 0.0, 0.0, 0.0);
    GRADS
        .iter()
        .map(|&g| {
            let mut g = if maximize { -g } else { g };
            g += wd * theta;
            v = alpha * v + (1.0 - alpha) * g * g;
            let mut v_tilde = v;
            if centered {
                mean = alpha * mean + (1.0 - alpha) * g;
                v_tilde = v - mean * mean;
            }
            let d = v_tilde.sqrt() + eps;
            if momentum > 0.0 {
                b = momentum * b + g / d;
                theta -= lr * b;
            } else {
                theta -= lr * g / d;
            }
            theta
        })
        .collect()
}

#[test]
fn rmsprop_follows_the_written_out_formula() {
    // By hand: v₁ = 0.01·0.25, √v₁ = 0.05, θ₁ = 1 − 0.01·0.5/0.05 = 0.9; with momentum 0.9,
    // b₂ = 9 − 0.25/√0.0031, θ₂ = 0.9 − 0.01·b₂ = 0.8549013.
    let by_hand = run_cpu(RmsProp::default().momentum(0.9), &GRADS[..2]);
    assert_trajectory("by hand", &by_hand, &[0.9, 0.854_901_3]);
    for wd in [0.0, 0.1] {
        for momentum in [0.0, 0.9] {
            for centered in [false, true] {
                for maximize in [false, true] {
                    let config = RmsProp {
                        lr: 0.01,
                        alpha: 0.9,
                        eps: 1e-8,
                        weight_decay: wd,
                        momentum,
                        centered,
                        maximize,
                    };
                    let expected =
                        rmsprop_reference(0.01, 0.9, 1e-8, wd, momentum, centered, maximize);
                    assert_trajectory(&format!("{config:?}"), &run_cpu(config, &GRADS), &expected);
                }
            }
        }
    }
}

/// Adagrad as in the PyTorch docs, in f64.
fn adagrad_reference(
    lr: f64,
    lr_decay: f64,
    wd: f64,
    init: f64,
    eps: f64,
    maximize: bool,
) -> Vec<f64> {
    let (mut theta, mut sum) = (THETA0, init);
    GRADS
        .iter()
        .enumerate()
        .map(|(t, &g)| {
            let mut g = if maximize { -g } else { g };
            g += wd * theta;
            let clr = lr / (1.0 + t as f64 * lr_decay);
            sum += g * g;
            theta -= clr * g / (sum.sqrt() + eps);
            theta
        })
        .collect()
}

#[test]
fn adagrad_follows_the_written_out_formula() {
    // By hand: s₁ = 0.1 + 0.25, θ₁ = 1 − 0.1·0.5/√0.35 = 0.9154846; then the rate is 0.1/1.5.
    let by_hand = run_cpu(
        Adagrad::default()
            .lr(0.1)
            .lr_decay(0.5)
            .initial_accumulator_value(0.1),
        &GRADS[..2],
    );
    assert_trajectory("by hand", &by_hand, &[0.915_484_6, 0.941_434_8]);
    for lr_decay in [0.0, 0.5] {
        for wd in [0.0, 0.1] {
            for init in [0.0, 0.1] {
                for maximize in [false, true] {
                    let config = Adagrad {
                        lr: 0.1,
                        lr_decay,
                        weight_decay: wd,
                        initial_accumulator_value: init,
                        eps: 1e-10,
                        maximize,
                    };
                    let expected = adagrad_reference(0.1, lr_decay, wd, init, 1e-10, maximize);
                    assert_trajectory(&format!("{config:?}"), &run_cpu(config, &GRADS), &expected);
                }
            }
        }
    }
}

/// Gradient descent on f(θ) = θ² (f′ = 2θ) from θ = 5; returns θ after each step.
fn descend_square(lr: f64, steps: usize) -> Vec<f32> {
    let mut opt = CpuOptimizer::new(Sgd::default().lr(lr), 1).unwrap();
    let mut theta = [5.0f32];
    (0..steps)
        .map(|_| {
            let grad = [2.0 * theta[0]];
            opt.step(&mut theta, &grad).unwrap();
            theta[0]
        })
        .collect()
}

#[test]
fn worked_example_square_with_three_learning_rates() {
    // lr 1.5: θ ← θ − 3θ = −2θ, so it diverges with alternating sign.
    assert_eq!(descend_square(1.5, 4), vec![-10.0, 20.0, -40.0, 80.0]);
    // lr 0.5: θ ← θ − θ, the minimum in one step.
    assert_eq!(descend_square(0.5, 1), vec![0.0]);
    // lr 0.01: θ ← 0.98θ; 0.98^227 ≈ 0.0102 and 0.98^228 ≈ 0.00999, so it takes 228 steps
    // (more than 227) to get below 1% of θ₀.
    let slow = descend_square(0.01, 300);
    let first_below = slow.iter().position(|&t| t.abs() < 0.05).map(|i| i + 1);
    assert_eq!(first_below, Some(228));
    assert!(slow[..227].iter().all(|t| *t >= 0.05));
}

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
    assert!(matches!(
        LrSchedule {
            decay: Decay::Step {
                every: 0,
                gamma: 0.5
            },
            warmup: 0
        }
        .validate(),
        Err(Error::InvalidHyperparameter { .. })
    ));
    assert!(LrSchedule::exponential(-1.0).validate().is_err());
    assert!(LrSchedule::cosine(0, 0.0).validate().is_err());
}

#[test]
fn the_optimizer_applies_its_schedule() {
    let schedule = LrSchedule::step(2, 0.1);
    let mut opt = CpuOptimizer::new(Sgd::default().lr(1.0), 1)
        .unwrap()
        .with_schedule(schedule)
        .unwrap();
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
