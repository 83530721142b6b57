//! The context's pending work: ops record into one command encoder and one open compute pass,
//! `flush` submits them in one submit, `wait` blocks until they are done.

use std::sync::atomic::Ordering;

use super::context::{GpuContext, lock};
use super::profile::Profiler;
use crate::error::{Error, Result};

/// What an op records into: the open compute pass, and where it says which op ended (a GPU
/// timestamp when profiling, nothing otherwise).
pub(crate) struct Recording<'a> {
    pub pass: &'a mut wgpu::ComputePass<'static>,
    profiler: Option<&'a mut Profiler>,
}

impl Recording<'_> {
    /// Marks the end of `op`'s dispatches: its time runs from the mark before.
    pub fn ended(&mut self, op: &'static str) {
        if let Some(profiler) = self.profiler.as_deref_mut() {
            profiler.stamp(self.pass, Some(op));
        }
    }
}

/// Work recorded but not yet submitted: kernels go into one open compute pass (so a training
/// step is one pass, one submit); a copy ends the pass and records on the encoder.
pub(crate) struct Pending {
    pub(super) encoder: wgpu::CommandEncoder,
    pub(super) pass: Option<wgpu::ComputePass<'static>>,
}

impl GpuContext {
    /// Records one copy or clear on the pending command encoder (created on first use),
    /// ending the open compute pass first (counted in
    /// [`GpuCounters::copies`](super::GpuCounters::copies)). Nothing runs until the next
    /// [`GpuContext::flush`], which readback, host writes and waits do first, so recorded work
    /// is always ordered before them. wgpu reports recording errors when the encoder is
    /// finished: at the flush, inside its scope.
    pub(crate) fn record<T>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> T) -> Result<T> {
        self.check_health()?;
        let mut pending = lock(&self.pending);
        let pending = pending.get_or_insert_with(|| self.new_pending());
        pending.pass = None;
        self.counters.copies.fetch_add(1, Ordering::Relaxed);
        Ok(f(&mut pending.encoder))
    }

    /// Records dispatches into the pending compute pass (begun on first use), ordered after
    /// every op recorded before and submitted with them by the next [`GpuContext::flush`]
    /// (wgpu puts a barrier between a write and a later access of the same buffer). The
    /// crate's ops record into the same pass, and so can an application's own kernels through
    /// this: how a custom layer joins a training step's one submit (see
    /// `tests/custom_layer.rs`). Create the pipeline with a module from
    /// [`GpuContext::shader_module`], and build bind groups once and reuse them: a training
    /// step should create nothing. With [`GpuOptions::profile`](crate::GpuOptions::profile),
    /// what `f` records is timed as `application kernels` (name it with
    /// [`GpuContext::record_compute_as`]).
    pub fn record_compute<T>(
        &self,
        f: impl FnOnce(&mut wgpu::ComputePass<'static>) -> T,
    ) -> Result<T> {
        self.record_compute_as("application kernels", f)
    }

    /// [`GpuContext::record_compute`], with what `f` records timed as `op` when profiling
    /// (see [`GpuContext::take_kernel_times`]): a custom layer's kernels under their own name.
    pub fn record_compute_as<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut wgpu::ComputePass<'static>) -> T,
    ) -> Result<T> {
        self.record_ops(|recording| {
            let out = f(recording.pass);
            recording.ended(op);
            out
        })
    }

    /// [`GpuContext::record_compute`] for ops that name what they record (see [`Recording`]).
    pub(crate) fn record_ops<T>(&self, f: impl FnOnce(&mut Recording<'_>) -> T) -> Result<T> {
        self.check_health()?;
        // A profiled submit holds so many timestamps: when they run out, submit first.
        let full = self.profiler.as_ref().is_some_and(|p| !lock(p).has_room());
        if full {
            self.flush()?;
        }
        let mut pending = lock(&self.pending);
        let pending = pending.get_or_insert_with(|| self.new_pending());
        let begins = pending.pass.is_none();
        let pass = pending.pass.get_or_insert_with(|| {
            pending
                .encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("steepest kernels"),
                    timestamp_writes: None,
                })
                .forget_lifetime()
        });
        let mut profiler = self.profiler.as_ref().map(lock);
        if begins && let Some(profiler) = profiler.as_deref_mut() {
            profiler.stamp(pass, None);
        }
        Ok(f(&mut Recording {
            pass,
            profiler: profiler.as_deref_mut(),
        }))
    }

    fn new_pending(&self) -> Pending {
        Pending {
            encoder: self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("steepest pending work"),
                }),
            pass: None,
        }
    }

    /// Submits the recorded work, if any, in one submit. It does not wait for it, nor for
    /// anything else unless the host is far ahead: with more than
    /// [`GpuOptions::max_dispatches_in_flight`](crate::GpuOptions::max_dispatches_in_flight)
    /// dispatches in flight it first waits for the oldest (see `in_flight.rs`). With
    /// [`GpuOptions::profile`](crate::GpuOptions::profile) it waits for the submit to read its
    /// timestamps (counted in [`crate::GpuCounters::waits`]).
    pub fn flush(&self) -> Result<()> {
        // The lock is held through the submit: another thread's flush that finds nothing
        // pending must not go on (to a readback, say) before this submit is in the queue.
        let mut pending = lock(&self.pending);
        let Some(Pending { mut encoder, pass }) = pending.take() else {
            return Ok(());
        };
        drop(pass);
        // Profiling: the pass's timestamps are resolved into this submit and read right after.
        let mut profiler = self.profiler.as_ref().map(lock);
        let stamps = profiler
            .as_deref_mut()
            .and_then(|p| p.resolve(&mut encoder));
        // No error scope: pushing and popping three scopes is a measurable share of a small
        // step's host time. wgpu reports what finishing or submitting rejects to the
        // uncaptured-error handler, on this thread, before `submit` returns; it is taken
        // right after (and anything from before is reported as such first).
        self.check_health()?;
        let index = self.queue.submit([encoder.finish()]);
        self.counters.submits.fetch_add(1, Ordering::Relaxed);
        let oldest = {
            let mut in_flight = lock(&self.in_flight);
            in_flight.submitted(
                index.clone(),
                self.counters.dispatches.load(Ordering::Relaxed),
            );
            in_flight.over(self.options.max_dispatches_in_flight)
        };
        if let (Some(profiler), Some(stamps)) = (profiler.as_deref_mut(), stamps) {
            self.counters.waits.fetch_add(1, Ordering::Relaxed);
            profiler.read(self, index, stamps)?;
        }
        drop(profiler);
        drop(pending);
        self.take_uncaptured("submit")?;
        let Some((serial, index)) = oldest else {
            return Ok(());
        };
        self.counters.throttles.fetch_add(1, Ordering::Relaxed);
        self.poll_until("flush", Some(index))?;
        lock(&self.in_flight).finished_through(serial);
        Ok(())
    }

    /// Blocks until every recorded and submitted command has finished; counts as one wait.
    pub fn wait(&self) -> Result<()> {
        self.flush()?;
        self.counters.waits.fetch_add(1, Ordering::Relaxed);
        let last = lock(&self.in_flight).last();
        if self.options.spin_wait
            && let Some((_, index)) = &last
        {
            self.spin_until("wait", index)?;
        }
        // Also what was submitted other than through the context (an application's own
        // submits): with `spin_wait`, everything the context submitted has finished by now.
        self.poll_until("wait", None)?;
        if let Some((serial, _)) = last {
            lock(&self.in_flight).finished_through(serial);
        }
        Ok(())
    }

    /// Polls until `index` has finished, yielding the thread between polls
    /// ([`GpuOptions::spin_wait`](crate::GpuOptions::spin_wait)): the host sees the end at
    /// once instead of when the driver wakes it. Only [`GpuContext::wait`] (and so every
    /// readback) spins; a flush held back by the in-flight bound sleeps, since the GPU has
    /// work queued behind what it waits for and nothing is gained by seeing it end early.
    fn spin_until(&self, op: &'static str, index: &wgpu::SubmissionIndex) -> Result<()> {
        loop {
            match self.device.poll(wgpu::PollType::Wait {
                submission_index: Some(index.clone()),
                timeout: Some(std::time::Duration::ZERO),
            }) {
                Ok(_) => return Ok(()),
                Err(wgpu::PollError::Timeout) => std::thread::yield_now(),
                Err(e) => {
                    return Err(Error::Gpu {
                        op,
                        message: e.to_string(),
                    });
                }
            }
        }
    }

    /// Blocks until `index` (the latest submission: `None`) has finished.
    fn poll_until(&self, op: &'static str, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: None,
            })
            .map_err(|e| Error::Gpu {
                op,
                message: e.to_string(),
            })?;
        self.check_health()
    }
}
