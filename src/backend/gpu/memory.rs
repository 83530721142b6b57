//! The context's reused memory: the partial-sum scratch that ops share, and the staging buffer
//! every readback goes through. Both grow on demand and are then reused, so a steady loop
//! allocates neither.

use super::GpuBuffer;
use super::context::{GpuContext, lock};
use crate::error::{Error, Result};

impl GpuContext {
    /// The most f32 values one partial-sum binding may hold on this device (and that 32-bit
    /// kernel indices reach).
    pub(crate) fn max_partials(&self) -> usize {
        usize::try_from(self.limits().max_storage_buffer_binding_size / 4)
            .unwrap_or(usize::MAX)
            .min(u32::MAX as usize)
    }

    /// The shared scratch (split-K partials, column-sum blocks, per-row loss sums, reduction
    /// partials, a large product's transposed operands), grown to at least `len` elements. An
    /// op writes it and reads it back within its own dispatches, recorded together (see
    /// `dispatch_steps`), and ops run in order, so they never see each other's values.
    pub(crate) fn scratch(&self, len: usize) -> Result<GpuBuffer<f32>> {
        let mut scratch = lock(&self.scratch);
        match scratch.as_ref() {
            Some(buffer) if buffer.len() >= len => Ok(buffer.clone()),
            _ => {
                // Grow geometrically so a few sizes settle quickly; a steady loop then reuses
                // it.
                // (Never past what one binding holds: ops bind it whole.)
                let grown = len
                    .max(scratch.as_ref().map_or(0, |b| 2 * b.len()))
                    .min(self.max_partials().max(len));
                let buffer = GpuBuffer::zeros(self, "partial sums", grown)
                    .or_else(|_| GpuBuffer::zeros(self, "partial sums", len))?;
                *scratch = Some(buffer.clone());
                Ok(buffer)
            }
        }
    }

    /// Copies `size` bytes from `offset` of `source` to the host through the context's staging
    /// buffer (grown on demand, then reused); submits and waits once.
    pub(crate) fn read_back(
        &self,
        source: &wgpu::Buffer,
        label: &str,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>> {
        let readback_error = |message: String| Error::Readback {
            label: label.to_string(),
            message,
        };
        self.flush()?;
        let mut staging = lock(&self.staging);
        if staging.as_ref().is_none_or(|s| s.size() < size) {
            let grown = size
                .max(staging.as_ref().map_or(0, |s| 2 * s.size()))
                .max(4096)
                .next_multiple_of(4);
            *staging = Some(self.create_buffer(
                "read buffer",
                &wgpu::BufferDescriptor {
                    label: Some("steepest readback staging"),
                    size: grown,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                },
            )?);
        }
        let Some(staging) = staging.as_ref() else {
            return Err(readback_error("no staging buffer".into()));
        };
        let index = self.scoped("read buffer", || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("steepest readback"),
                });
            encoder.copy_buffer_to_buffer(source, offset, staging, 0, size);
            self.queue.submit([encoder.finish()])
        })?;
        lock(&self.in_flight).submitted_copy(index);
        let (sender, receiver) = std::sync::mpsc::channel();
        staging
            .slice(..size)
            .map_async(wgpu::MapMode::Read, move |result| {
                // The receiver outlives the wait below; a failed send only means we already
                // failed.
                let _ = sender.send(result);
            });
        let waited = self.wait();
        // After a successful wait the mapping is done, but its callback may be fired by another
        // thread's poll a moment later: block for it rather than peek.
        let mapped = match &waited {
            Ok(()) => receiver.recv().map_err(|e| e.to_string()),
            Err(_) => Err("the wait failed".into()),
        };
        let bytes = match (waited, mapped) {
            (Ok(()), Ok(Ok(()))) => {
                let view = staging
                    .get_mapped_range(..size)
                    .map_err(|e| readback_error(e.to_string()))?;
                let bytes = view.to_vec();
                drop(view);
                Ok(bytes)
            }
            (Err(e), _) => Err(e),
            (_, Ok(Err(e))) => Err(readback_error(e.to_string())),
            (_, Err(e)) => Err(readback_error(e)),
        };
        staging.unmap();
        bytes
    }
}
