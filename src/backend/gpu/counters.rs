//! What a context counts: every GPU object it creates and every dispatch, submit and wait, so
//! tests and reports can assert that a steady training step creates nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use super::context::GpuContext;

/// What a context has created and done so far: cumulative counts, for tests and reports that
/// assert a steady training step creates nothing (see [`GpuContext::counters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuCounters {
    /// GPU buffers created (storage, uniform, staging), by this crate on this context.
    pub buffers_created: u64,
    /// Bind groups created.
    pub bind_groups_created: u64,
    /// Compute pipelines built (each specialisation once).
    pub pipelines_created: u64,
    /// Shader modules compiled.
    pub shader_modules_created: u64,
    /// Compute dispatches recorded (each is a kernel launch and, on a GPU, a few µs of
    /// latency between dependent kernels).
    pub dispatches: u64,
    /// Copy (or clear) commands recorded between buffers: a matrix copied whole, an
    /// optimizer's sums into the totals (an arena's copy is a kernel: a dispatch). Each ends the open compute pass, so a step's
    /// dispatches after it go in a pass of their own. A readback's own copy is not counted
    /// here (its wait is).
    pub copies: u64,
    /// Submits of recorded work ([`GpuContext::flush`]es that had work; a readback's own
    /// copy is not counted here, its wait is).
    pub submits: u64,
    /// Times the host blocked until the GPU finished.
    pub waits: u64,
    /// Times a submit waited for older work because more than
    /// [`crate::GpuOptions::max_dispatches_in_flight`] dispatches had been submitted since the
    /// host last waited (not counted in `waits`). The host counts every submission as in
    /// flight until it waits for it, so a throttle whose work the GPU had already finished
    /// returns at once; one that blocks means the host was that far ahead of the GPU.
    pub throttles: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) buffers: AtomicU64,
    pub(crate) bind_groups: AtomicU64,
    pub(crate) pipelines: AtomicU64,
    pub(crate) shader_modules: AtomicU64,
    pub(crate) dispatches: AtomicU64,
    pub(crate) copies: AtomicU64,
    pub(crate) submits: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) throttles: AtomicU64,
}

impl GpuContext {
    /// How many times the host has blocked on the GPU through this context.
    pub fn waits(&self) -> u64 {
        self.counters.waits.load(Ordering::Relaxed)
    }

    /// Submits so far (every [`GpuContext::flush`] that had work counts one).
    pub fn submits(&self) -> u64 {
        self.counters.submits.load(Ordering::Relaxed)
    }

    /// Everything created and done through this context so far. A steady training step adds
    /// nothing to the buffers, bind groups and pipelines: they are built on first use and
    /// reused.
    pub fn counters(&self) -> GpuCounters {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GpuCounters {
            buffers_created: get(&c.buffers),
            bind_groups_created: get(&c.bind_groups),
            pipelines_created: get(&c.pipelines),
            shader_modules_created: get(&c.shader_modules),
            dispatches: get(&c.dispatches),
            copies: get(&c.copies),
            submits: get(&c.submits),
            waits: get(&c.waits),
            throttles: get(&c.throttles),
        }
    }

    pub(crate) fn count_pipeline(&self) {
        self.counters.pipelines.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_dispatches(&self, n: usize) {
        self.counters
            .dispatches
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn count_shader_module(&self) {
        self.counters.shader_modules.fetch_add(1, Ordering::Relaxed);
    }
}
