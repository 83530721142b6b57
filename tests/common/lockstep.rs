//! GPU training checked against the CPU's, step by step.

use steepest::{CpuBackend, GpuBackend, Model, Session};

/// Gives the GPU session the CPU session's parameters, steps both once, and asserts every
/// GPU parameter moved as the CPU's did: within a small fraction of the move (the backends
/// sum in different orders) plus a few ulps of the value. `what` names the case in failures.
pub fn step_both<C: Model<CpuBackend>, G: Model<GpuBackend>>(
    cpu: &mut Session<'_, CpuBackend, C>,
    (g, gpu): (&GpuBackend, &mut Session<'_, GpuBackend, G>),
    what: &str,
) {
    let start = cpu.model().network().parameters_flat(&CpuBackend).unwrap();
    let gpu_net = gpu.model_mut().network_mut();
    gpu_net.set_parameters_flat(g, &start).unwrap();
    cpu.step().unwrap();
    gpu.step().unwrap();
    let expected = cpu.model().network().parameters_flat(&CpuBackend).unwrap();
    let actual = gpu.model().network().parameters_flat(g).unwrap();
    for (i, ((a, e), s)) in actual.iter().zip(&expected).zip(&start).enumerate() {
        let tol = 1e-3 * (e - s).abs() + 4e-6 * e.abs().max(1.0);
        assert!(
            (a - e).abs() <= tol,
            "{what}: parameter {i} is {a} on the GPU, {e} on the CPU (from {s})"
        );
    }
}
