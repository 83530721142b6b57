//! The optimizers' math on the CPU backend, checked against the formulas written out here in
//! f64 (textbook form, independent of the library's operation order), and worked examples with
//! known answers (their settings, schedules and state are in `optim_settings.rs`).

mod common;

use std::f64::consts::PI;

use common::rules::{GRADS, THETA0, assert_trajectory, run_cpu};
use steepest::optim::OneCycle;
use steepest::{Adagrad, Adam, AdamW, CpuOptimizer, LrSchedule, OptimizerConfig, RmsProp, Sgd};

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

/// PyTorch's OneCycleLR for `GRADS.len()` = 4 updates with `pct_start` 0.5 (phases ending at
/// updates 1 and 3) and a peak of `max`: each update's rate and momentum, written out.
fn one_cycle_reference(max: f64) -> Vec<(f64, f64)> {
    let (initial, min) = (max / 25.0, max / 25.0 / 1e4);
    let anneal = |from: f64, to: f64, pct: f64| to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0);
    (0..4)
        .map(|t| match t {
            0 | 1 => (anneal(initial, max, t as f64), anneal(0.95, 0.85, t as f64)),
            _ => {
                let pct = (t as f64 - 1.0) / 2.0;
                (anneal(max, min, pct), anneal(0.85, 0.95, pct))
            }
        })
        .collect()
}

#[test]
fn a_one_cycle_schedule_sets_each_updates_rate_and_momentum() {
    let schedule = LrSchedule::one_cycle(OneCycle::new(4).pct_start(0.5));
    let cycle = one_cycle_reference(0.1);
    let run = |config: OptimizerConfig| {
        let mut opt = CpuOptimizer::new(config, 1)
            .unwrap()
            .with_schedule(schedule.clone())
            .unwrap();
        let mut theta = [THETA0 as f32];
        let path: Vec<f64> = GRADS
            .iter()
            .map(|&g| {
                opt.step(&mut theta, &[g as f32]).unwrap();
                f64::from(theta[0])
            })
            .collect();
        // The cycle has four updates; a fifth is refused and changes nothing.
        let err = opt.step(&mut theta, &[1.0]).unwrap_err().to_string();
        assert!(
            err.contains("update 5 is past the schedule's last (4)"),
            "{err}"
        );
        assert_eq!(f64::from(theta[0]), path[3]);
        path
    };
    // Adam: the cycle's momentum is β1, also in the bias correction 1 − β1ₜ^t.
    let (mut theta, mut m, mut v) = (THETA0, 0.0, 0.0);
    let mut expected = Vec::new();
    for (i, (&g, &(lr, b1))) in GRADS.iter().zip(&cycle).enumerate() {
        let t = (i + 1) as i32;
        m = b1 * m + (1.0 - b1) * g;
        v = 0.999 * v + (1.0 - 0.999) * g * g;
        let (m_hat, v_hat) = (m / (1.0 - b1.powi(t)), v / (1.0 - 0.999f64.powi(t)));
        theta -= lr * m_hat / (v_hat.sqrt() + 1e-8);
        expected.push(theta);
    }
    assert_trajectory(
        "Adam, one cycle",
        &run(Adam::default().lr(0.1).into()),
        &expected,
    );
    // SGD: the cycle's momentum replaces the configured 0.5.
    let (mut theta, mut b) = (THETA0, 0.0);
    let mut expected = Vec::new();
    for (i, (&g, &(lr, mu))) in GRADS.iter().zip(&cycle).enumerate() {
        b = if i == 0 { g } else { mu * b + g };
        theta -= lr * b;
        expected.push(theta);
    }
    let sgd = Sgd::default().lr(0.1).momentum(0.5);
    assert_trajectory("SGD, one cycle", &run(sgd.into()), &expected);
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
