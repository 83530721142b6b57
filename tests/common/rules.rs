//! The harness of the optimizer-rule tests: one parameter, a few gradients, and the
//! closeness of its path to a reference written out in f64.

use steepest::{CpuOptimizer, OptimizerConfig};

/// The gradients each reference is handed, one per update.
pub const GRADS: [f64; 4] = [0.5, -0.25, 1.5, 0.125];
/// The parameter's starting value.
pub const THETA0: f64 = 1.0;

/// Runs `config` on one parameter from `THETA0`, one update per gradient; returns θ after each.
pub fn run_cpu(config: impl Into<OptimizerConfig>, grads: &[f64]) -> Vec<f64> {
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

/// Every step of `actual` (f32 arithmetic) within a few f32 roundings of `expected` (f64).
pub fn assert_trajectory(name: &str, actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len(), "{name}: steps");
    for (t, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 2e-6 * (1.0 + e.abs()),
            "{name}: step {}: θ = {a}, expected {e}",
            t + 1
        );
    }
}
