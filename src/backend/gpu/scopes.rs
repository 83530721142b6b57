//! Error capture and counted creation: wgpu's errors come back as [`Error`] values (error
//! scopes around each creation, the device-lost and uncaptured-error slots, the latter also
//! read right after each submit), and every buffer and bind group created is counted.

use std::sync::atomic::Ordering;

use super::context::{GpuContext, lock};
use super::kernel::Kernel;
use crate::error::{Error, Result};

impl GpuContext {
    /// A new buffer (counted), with wgpu's errors returned as [`Error`]s naming `op`.
    pub(crate) fn create_buffer(
        &self,
        op: &'static str,
        descriptor: &wgpu::BufferDescriptor<'_>,
    ) -> Result<wgpu::Buffer> {
        let buffer = self.scoped(op, || self.device.create_buffer(descriptor))?;
        self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        Ok(buffer)
    }

    /// A new uniform buffer holding `contents` (counted).
    pub(crate) fn create_uniform(&self, label: &str, contents: &[u8]) -> Result<wgpu::Buffer> {
        use wgpu::util::DeviceExt;
        let buffer = self.scoped("create uniform", || {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents,
                    usage: wgpu::BufferUsages::UNIFORM,
                })
        })?;
        self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        Ok(buffer)
    }

    /// A bind group for `kernel` (counted): binding `i` ← `resources[i]`.
    pub(crate) fn bind_group(
        &self,
        kernel: &Kernel,
        resources: Vec<wgpu::BindingResource<'_>>,
    ) -> Result<wgpu::BindGroup> {
        let (layout, _) = self.layout(kernel);
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let group = self.scoped("create bind group", || {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.shader),
                layout: &layout,
                entries: &entries,
            })
        })?;
        self.counters.bind_groups.fetch_add(1, Ordering::Relaxed);
        Ok(group)
    }

    /// Fails if the device was lost or an error escaped the error scopes.
    pub(crate) fn check_health(&self) -> Result<()> {
        if let Some(message) = lock(&self.lost).clone() {
            return Err(Error::DeviceLost { message });
        }
        self.take_uncaptured("earlier GPU work")
    }

    /// Fails with the error wgpu reported outside every error scope since the last look, if
    /// any, naming `op`.
    pub(crate) fn take_uncaptured(&self, op: &'static str) -> Result<()> {
        match lock(&self.uncaptured).take() {
            None => Ok(()),
            Some(error) => Err(error.into_error(op)),
        }
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes and turns anything
    /// they caught into an [`Error`] naming `op`.
    pub(crate) fn scoped<T>(&self, op: &'static str, f: impl FnOnce() -> T) -> Result<T> {
        self.check_health()?;
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        // Scopes pop innermost first. On native backends the futures are already resolved.
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(memory.pop()),
            pollster::block_on(internal.pop()),
        ];
        match errors.into_iter().flatten().next() {
            None => Ok(value),
            Some(error) => Err(Uncaptured::from(error).into_error(op)),
        }
    }
}

/// An error wgpu reported: whether the device ran out of memory, and its message.
#[derive(Debug)]
pub(crate) struct Uncaptured {
    out_of_memory: bool,
    message: String,
}

impl From<wgpu::Error> for Uncaptured {
    fn from(error: wgpu::Error) -> Self {
        Self {
            out_of_memory: matches!(error, wgpu::Error::OutOfMemory { .. }),
            message: error.to_string(),
        }
    }
}

impl Uncaptured {
    /// The [`Error`] naming `op`.
    pub(crate) fn into_error(self, op: &'static str) -> Error {
        match self.out_of_memory {
            true => Error::OutOfMemory {
                op,
                message: "the device has no memory left".into(),
            },
            false => Error::Gpu {
                op,
                message: self.message,
            },
        }
    }
}
