//! What the benches share: opening the GPU, or saying why its half of a comparison is skipped.

use steepest::{Backend, GpuBackend};

/// The GPU backend, or `None` with the reason printed (the CPU half still runs); prints the
/// adapter, so every result names the hardware it came from.
pub fn gpu_or_skip() -> Option<GpuBackend> {
    let gpu = GpuBackend::new()
        .map_err(|e| eprintln!("GPU benchmarks skipped: {e}"))
        .ok();
    println!(
        "GPU adapter: {}",
        gpu.as_ref().map_or("none".to_string(), |g| g.describe())
    );
    gpu
}
