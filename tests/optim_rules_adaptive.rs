//! Adadelta, Adamax, NAdam, RAdam and Rprop on the CPU backend against their formulas as PyTorch's
//! documentation writes them, here in f64 (textbook form: bias-corrected moments, the
//! rectification as a ratio of square roots), independent of the library's operation order.
//! `torch_optim.rs` follows PyTorch's own trajectories; `optim_rules.rs` holds the first five.

mod common;

use common::rules::{GRADS, THETA0, assert_trajectory, run_cpu};
use steepest::{Adadelta, Adamax, NAdam, RAdam, Rprop};

/// The effective gradient: negated for `maximize`, then the L2 term.
fn gradient(g: f64, theta: f64, wd: f64, maximize: bool) -> f64 {
    (if maximize { -g } else { g }) + wd * theta
}

/// NAdam's and RAdam's weight decay: decoupled (θ ← θ(1 − γλ) first, as AdamW's) or an L2
/// term; returns the effective gradient.
fn decayed_gradient(
    theta: &mut f64,
    g: f64,
    lr: f64,
    wd: f64,
    decoupled: bool,
    maximize: bool,
) -> f64 {
    if decoupled {
        *theta *= 1.0 - lr * wd;
        gradient(g, *theta, 0.0, maximize)
    } else {
        gradient(g, *theta, wd, maximize)
    }
}

/// Adadelta: the update is the gradient times RMS[Δθ]_{t−1} / RMS[g]_t.
fn adadelta_reference(lr: f64, rho: f64, eps: f64, wd: f64, maximize: bool) -> Vec<f64> {
    let (mut theta, mut v, mut u) = (THETA0, 0.0, 0.0);
    GRADS
        .iter()
        .map(|&g| {
            let g = gradient(g, theta, wd, maximize);
            v = rho * v + (1.0 - rho) * g * g;
            let delta = (u + eps).sqrt() / (v + eps).sqrt() * g;
            u = rho * u + (1.0 - rho) * delta * delta;
            theta -= lr * delta;
            theta
        })
        .collect()
}

#[test]
fn adadelta_follows_the_written_out_formula() {
    // By hand: v₁ = 0.1·0.25 = 0.025, δ₁ = √1e-6 / √(0.025 + 1e-6)·0.5 ≈ 0.0031622, so a rate
    // of 1 moves θ by that.
    let first = run_cpu(Adadelta::default(), &GRADS[..1]);
    let delta = (1e-6f64).sqrt() / (0.025f64 + 1e-6).sqrt() * 0.5;
    assert_trajectory("by hand", &first, &[1.0 - delta]);
    for (lr, rho) in [(1.0, 0.9), (0.5, 0.5)] {
        for wd in [0.0, 0.1] {
            for maximize in [false, true] {
                let config = Adadelta {
                    lr,
                    rho,
                    eps: 1e-6,
                    weight_decay: wd,
                    maximize,
                };
                let expected = adadelta_reference(lr, rho, 1e-6, wd, maximize);
                assert_trajectory(&format!("{config:?}"), &run_cpu(config, &GRADS), &expected);
            }
        }
    }
}

/// Adamax: the second moment replaced by an exponentially weighted infinity norm.
fn adamax_reference(lr: f64, (b1, b2): (f64, f64), eps: f64, wd: f64, maximize: bool) -> Vec<f64> {
    let (mut theta, mut m, mut u) = (THETA0, 0.0, 0.0f64);
    GRADS
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            let g = gradient(g, theta, wd, maximize);
            m = b1 * m + (1.0 - b1) * g;
            u = (b2 * u).max(g.abs() + eps);
            theta -= lr / (1.0 - b1.powi(i as i32 + 1)) * m / u;
            theta
        })
        .collect()
}

#[test]
fn adamax_follows_the_written_out_formula() {
    // By hand: m₁/(1 − β1) = 0.5 and u₁ = 0.5, so the first step moves θ by the rate.
    assert_trajectory(
        "by hand",
        &run_cpu(Adamax::default().lr(0.1), &GRADS[..1]),
        &[0.9],
    );
    // β2 = 0.5 lets the norm decay below a later |g|, so both sides of the maximum are taken.
    for betas in [(0.9, 0.999), (0.5, 0.5)] {
        for wd in [0.0, 0.1] {
            for maximize in [false, true] {
                let config = Adamax {
                    lr: 0.1,
                    betas,
                    eps: 1e-8,
                    weight_decay: wd,
                    maximize,
                };
                let expected = adamax_reference(0.1, betas, 1e-8, wd, maximize);
                assert_trajectory(&format!("{config:?}"), &run_cpu(config, &GRADS), &expected);
            }
        }
    }
}

/// NAdam: Nesterov momentum in Adam, with μ_t = β1(1 − ½·0.96^(tψ)) and m̂ combining the next
/// step's momentum with the current gradient, each corrected by its product of μ.
fn nadam_reference(config: NAdam) -> Vec<f64> {
    let NAdam {
        lr,
        betas: (b1, b2),
        eps,
        weight_decay: wd,
        momentum_decay: psi,
        decoupled_weight_decay: decoupled,
        maximize,
    } = config;
    let mu = |t: f64| b1 * (1.0 - 0.5 * 0.96f64.powf(t * psi));
    let (mut theta, mut m, mut v, mut product) = (THETA0, 0.0, 0.0, 1.0);
    GRADS
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            let t = (i + 1) as f64;
            let g = decayed_gradient(&mut theta, g, lr, wd, decoupled, maximize);
            product *= mu(t);
            let product_next = product * mu(t + 1.0);
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let m_hat =
                mu(t + 1.0) * m / (1.0 - product_next) + (1.0 - mu(t)) * g / (1.0 - product);
            let v_hat = v / (1.0 - b2.powf(t));
            theta -= lr * m_hat / (v_hat.sqrt() + eps);
            theta
        })
        .collect()
}

#[test]
fn nadam_follows_the_written_out_formula() {
    for (betas, psi) in [((0.9, 0.999), 4e-3), ((0.5, 0.9), 0.5)] {
        for wd in [0.0, 0.1] {
            for decoupled in [false, true] {
                for maximize in [false, true] {
                    let config = NAdam {
                        lr: 0.1,
                        betas,
                        eps: 1e-8,
                        weight_decay: wd,
                        momentum_decay: psi,
                        decoupled_weight_decay: decoupled,
                        maximize,
                    };
                    assert_trajectory(
                        &format!("{config:?}"),
                        &run_cpu(config, &GRADS),
                        &nadam_reference(config),
                    );
                }
            }
        }
    }
}

/// RAdam: the bias-corrected momentum, scaled by the rectified adaptive rate once the
/// variance of that rate is tractable (ρ_t > 5), and alone before.
fn radam_reference(config: RAdam, grads: &[f64]) -> (Vec<f64>, usize) {
    let RAdam {
        lr,
        betas: (b1, b2),
        eps,
        weight_decay: wd,
        decoupled_weight_decay: decoupled,
        maximize,
    } = config;
    let rho_inf = 2.0 / (1.0 - b2) - 1.0;
    let (mut theta, mut m, mut v, mut rectified) = (THETA0, 0.0, 0.0, 0);
    let path = grads
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            let t = (i + 1) as f64;
            let g = decayed_gradient(&mut theta, g, lr, wd, decoupled, maximize);
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let m_hat = m / (1.0 - b1.powf(t));
            let rho = rho_inf - 2.0 * t * b2.powf(t) / (1.0 - b2.powf(t));
            if rho > 5.0 {
                rectified += 1;
                let adaptive = (1.0 - b2.powf(t)).sqrt() / (v.sqrt() + eps);
                let r = ((rho - 4.0) * (rho - 2.0) * rho_inf
                    / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
                    .sqrt();
                theta -= lr * m_hat * r * adaptive;
            } else {
                theta -= lr * m_hat;
            }
            theta
        })
        .collect();
    (path, rectified)
}

#[test]
fn radam_follows_the_written_out_formula() {
    // Twelve updates: with β2 = 0.9, ρ_t passes 5 at the sixth, so both kinds of step run.
    let grads: Vec<f64> = GRADS.iter().cycle().take(12).copied().collect();
    for betas in [(0.9, 0.9), (0.5, 0.99)] {
        for wd in [0.0, 0.1] {
            for decoupled in [false, true] {
                for maximize in [false, true] {
                    let config = RAdam {
                        lr: 0.1,
                        betas,
                        eps: 1e-8,
                        weight_decay: wd,
                        decoupled_weight_decay: decoupled,
                        maximize,
                    };
                    let (expected, rectified) = radam_reference(config, &grads);
                    if betas.1 == 0.9 {
                        assert_eq!(rectified, 7, "updates 6 to 12 are rectified");
                    }
                    assert_trajectory(&format!("{config:?}"), &run_cpu(config, &grads), &expected);
                }
            }
        }
    }
}

/// Rprop: each step size grows by η+ while its gradient keeps its sign, shrinks by η− when it
/// flips (and that update is skipped, its gradient forgotten), within the bounds; θ moves by
/// the step size against the gradient's sign.
fn rprop_reference(config: Rprop, grads: &[f64]) -> Vec<f64> {
    let Rprop {
        lr,
        etas: (minus, plus),
        step_sizes: (min, max),
        maximize,
    } = config;
    let (mut theta, mut prev, mut size) = (THETA0, 0.0f64, lr);
    grads
        .iter()
        .map(|&g| {
            let mut g = gradient(g, theta, 0.0, maximize);
            let factor = match (g * prev).partial_cmp(&0.0) {
                Some(std::cmp::Ordering::Greater) => plus,
                Some(std::cmp::Ordering::Less) => minus,
                _ => 1.0,
            };
            size = (size * factor).clamp(min, max);
            if factor == minus {
                g = 0.0;
            }
            theta -= if g == 0.0 { 0.0 } else { g.signum() } * size;
            prev = g;
            theta
        })
        .collect()
}

#[test]
fn rprop_follows_the_written_out_formula() {
    // By hand: the first step moves θ by the starting step size γ·1 (no sign before it).
    assert_trajectory(
        "by hand",
        &run_cpu(Rprop::default().lr(0.1), &GRADS[..1]),
        &[0.9],
    );
    // Signs +, −, +, + (then repeated): shrink, skip, grow.
    let grads: Vec<f64> = GRADS.iter().cycle().take(8).copied().collect();
    for (etas, step_sizes) in [((0.5, 1.2), (1e-6, 50.0)), ((0.3, 2.0), (0.05, 0.15))] {
        for maximize in [false, true] {
            let config = Rprop {
                lr: 0.1,
                etas,
                step_sizes,
                maximize,
            };
            assert_trajectory(
                &format!("{config:?}"),
                &run_cpu(config, &grads),
                &rprop_reference(config, &grads),
            );
        }
    }
}
