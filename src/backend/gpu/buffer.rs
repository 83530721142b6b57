//! Typed, labelled GPU buffers: upload from slices and ndarray arrays, staged readback.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytemuck::Pod;
use ndarray::{Array, ArrayView, Dimension, IntoDimension};

use super::context::GpuContext;
use super::sites::Bind;
use crate::error::{Error, Result};

/// Allocations are rounded up to this many bytes so kernels can read them as `vec4<f32>`
/// (and copies meet wgpu's 4-byte alignment).
const SIZE_ALIGNMENT: u64 = 16;

/// Ids of buffers, unique per process; 0 and 1 are the contexts' placeholders.
static NEXT_ID: AtomicU64 = AtomicU64::new(16);

/// What every clone of one buffer shares. Dropping the last clone retires its id, so the
/// context's op sites that bind it (and keep its memory alive) go too.
struct Shared {
    raw: wgpu::Buffer,
    len: usize,
    label: String,
    id: u64,
    /// The id of the context that created it.
    context: u64,
    retired: Arc<Mutex<Vec<u64>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.id);
    }
}

/// A GPU storage buffer holding `len` values of `T`.
///
/// Cloning is cheap and shares the same GPU memory.
pub struct GpuBuffer<T: Pod> {
    shared: Arc<Shared>,
    _element: PhantomData<T>,
}

impl<T: Pod> Clone for GpuBuffer<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _element: PhantomData,
        }
    }
}

impl<T: Pod> std::fmt::Debug for GpuBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuBuffer<{}>({:?}, {} elements)",
            std::any::type_name::<T>(),
            self.shared.label,
            self.shared.len
        )
    }
}

/// Bytes needed for `len` values of `T`, or an error naming the buffer when that overflows or
/// passes the device's `max_buffer_size`.
fn checked_size<T>(ctx: &GpuContext, op: &'static str, label: &str, len: usize) -> Result<u64> {
    if len == 0 {
        return Err(Error::EmptyBuffer {
            op,
            label: label.to_string(),
        });
    }
    let limit = ctx.limits().max_buffer_size;
    let bytes = (len as u64)
        .checked_mul(size_of::<T>() as u64)
        .and_then(|b| b.checked_next_multiple_of(SIZE_ALIGNMENT))
        .unwrap_or(u64::MAX);
    if bytes > limit {
        return Err(Error::BufferTooLarge {
            op,
            label: label.to_string(),
            bytes,
            limit,
            limit_name: "max_buffer_size",
        });
    }
    Ok(bytes)
}

impl<T: Pod> GpuBuffer<T> {
    /// A new buffer of `len` zeroed elements (wgpu zero-initialises every buffer).
    pub fn zeros(ctx: &GpuContext, label: &str, len: usize) -> Result<Self> {
        let bytes = checked_size::<T>(ctx, "allocate buffer", label, len)?;
        let raw = ctx.create_buffer(
            "allocate buffer",
            &wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            },
        )?;
        Ok(Self {
            shared: Arc::new(Shared {
                raw,
                len,
                label: label.to_string(),
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                context: ctx.id,
                retired: Arc::clone(&ctx.retired),
            }),
            _element: PhantomData,
        })
    }

    /// A new buffer holding a copy of `data`.
    pub fn from_slice(ctx: &GpuContext, label: &str, data: &[T]) -> Result<Self> {
        let buffer = Self::zeros(ctx, label, data.len())?;
        buffer.write(ctx, 0, data)?;
        Ok(buffer)
    }

    /// A new buffer holding `array`'s elements in row-major (logical) order, whatever its strides.
    pub fn from_array<D: Dimension>(
        ctx: &GpuContext,
        label: &str,
        array: ArrayView<'_, T, D>,
    ) -> Result<Self> {
        let standard = array.as_standard_layout();
        match standard.as_slice() {
            Some(slice) => Self::from_slice(ctx, label, slice),
            // `as_standard_layout` always yields a contiguous array; this arm only keeps the
            // library free of `expect`.
            None => Self::from_slice(ctx, label, &standard.iter().copied().collect::<Vec<_>>()),
        }
    }

    /// Overwrites elements `offset..offset + data.len()` with `data` (queued before the next
    /// submit, so later kernels see it).
    pub fn write(&self, ctx: &GpuContext, offset: usize, data: &[T]) -> Result<()> {
        self.check_context(ctx, "write buffer")?;
        let end = offset.saturating_add(data.len());
        if end > self.len() {
            return Err(Error::Shape {
                op: "write buffer",
                detail: format!(
                    "{} elements at offset {offset} pass the end of buffer {:?} of {} elements",
                    data.len(),
                    self.label(),
                    self.len()
                ),
            });
        }
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.is_empty() {
            return Ok(());
        }
        // A queued write lands before the next submit: recorded work that reads this buffer
        // must go first.
        ctx.flush()?;
        let start = (offset * size_of::<T>()) as u64;
        if bytes.len().is_multiple_of(4) && start.is_multiple_of(4) {
            ctx.scoped("write buffer", || {
                ctx.queue.write_buffer(self.raw(), start, bytes)
            })
        } else {
            // wgpu writes whole 4-byte words: widen to the enclosing words, keeping the
            // neighbouring bytes as they are on the GPU.
            let word_start = start / 4 * 4;
            let word_end = (start + bytes.len() as u64).next_multiple_of(4);
            let mut words = self.read_bytes(ctx, word_start, word_end - word_start)?;
            let at = (start - word_start) as usize;
            words[at..at + bytes.len()].copy_from_slice(bytes);
            ctx.scoped("write buffer", || {
                ctx.queue.write_buffer(self.raw(), word_start, &words)
            })
        }
    }

    /// Sets every element to `value` (used to poison outputs before a kernel writes them).
    pub fn fill(&self, ctx: &GpuContext, value: T) -> Result<()> {
        self.write(ctx, 0, &vec![value; self.len()])
    }

    /// Copies the whole buffer back to the host; blocks until the GPU has finished.
    pub fn read(&self, ctx: &GpuContext) -> Result<Vec<T>> {
        self.read_range(ctx, 0, self.len())
    }

    /// Copies elements `start..start + len` back to the host (one wait).
    pub fn read_range(&self, ctx: &GpuContext, start: usize, len: usize) -> Result<Vec<T>> {
        self.check_context(ctx, "read buffer")?;
        let element = size_of::<T>() as u64;
        if start.checked_add(len).is_none_or(|end| end > self.len()) {
            return Err(Error::Shape {
                op: "read buffer",
                detail: format!(
                    "{len} elements from {start} pass the end of buffer {:?} of {} elements",
                    self.label(),
                    self.len()
                ),
            });
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        // Copies move whole 4-byte words: widen to them, then cut the range back out.
        let first = start as u64 * element;
        let word_start = first / 4 * 4;
        let word_end = (first + len as u64 * element).next_multiple_of(4);
        let bytes = self.read_bytes(ctx, word_start, word_end - word_start)?;
        let at = (first - word_start) as usize;
        Ok(bytemuck::pod_collect_to_vec(
            &bytes[at..at + len * element as usize],
        ))
    }

    /// Copies the buffer back into an array of `shape`, which must hold exactly `len` elements.
    pub fn read_array<Sh: IntoDimension>(
        &self,
        ctx: &GpuContext,
        shape: Sh,
    ) -> Result<Array<T, Sh::Dim>> {
        let shape = shape.into_dimension();
        if shape.size() != self.len() {
            return Err(Error::Length {
                op: "read buffer into array",
                expected: shape.size(),
                actual: self.len(),
            });
        }
        let data = self.read(ctx)?;
        Array::from_shape_vec(shape, data).map_err(|e| Error::Readback {
            label: self.label().to_string(),
            message: e.to_string(),
        })
    }

    /// Reads `size` bytes from byte `offset` through the context's staging buffer.
    fn read_bytes(&self, ctx: &GpuContext, offset: u64, size: u64) -> Result<Vec<u8>> {
        ctx.read_back(self.raw(), self.label(), offset, size)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shared.len
    }

    /// Always `false`: GPU buffers cannot be empty. Present for API symmetry with slices.
    pub fn is_empty(&self) -> bool {
        self.shared.len == 0
    }

    /// The label given at creation (shown by wgpu's validation messages and debuggers).
    pub fn label(&self) -> &str {
        &self.shared.label
    }

    /// Bytes allocated on the device (the element bytes rounded up to 16).
    pub fn size_bytes(&self) -> u64 {
        self.shared.raw.size()
    }

    /// The wgpu buffer, for applications that bind it in their own kernels.
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.shared.raw
    }

    /// The whole buffer as an op binds it.
    pub(crate) fn bind(&self) -> Bind<'_> {
        Bind {
            id: self.shared.id,
            buffer: self.raw(),
            offset: 0,
            size: None,
        }
    }

    /// Elements `start..start + len` as an op binds them (the caller keeps them in range and
    /// `start` aligned to the device's `min_storage_buffer_offset_alignment`).
    pub(crate) fn bind_range(&self, start: usize, len: usize) -> Bind<'_> {
        let element = size_of::<T>() as u64;
        Bind {
            id: self.shared.id,
            buffer: self.raw(),
            offset: start as u64 * element,
            size: Some(len as u64 * element),
        }
    }

    /// A binding of elements `start..start + len` (the caller keeps them in range and aligned
    /// to the device's `min_storage_buffer_offset_alignment`).
    pub(crate) fn range_binding(&self, start: usize, len: usize) -> wgpu::BindingResource<'_> {
        let element = size_of::<T>() as u64;
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.raw(),
            offset: start as u64 * element,
            size: wgpu::BufferSize::new(len as u64 * element),
        })
    }

    /// Fails with [`Error::WrongContext`] unless `ctx` created this buffer.
    pub(crate) fn check_context(&self, ctx: &GpuContext, op: &'static str) -> Result<()> {
        if self.shared.context == ctx.id {
            Ok(())
        } else {
            Err(Error::WrongContext {
                op,
                label: self.label().to_string(),
            })
        }
    }

    /// Fails with [`Error::BufferTooLarge`] when the whole buffer cannot be bound as one storage
    /// binding on this device.
    pub(crate) fn check_binding(&self, ctx: &GpuContext, op: &'static str) -> Result<()> {
        self.check_context(ctx, op)?;
        let limit = ctx.limits().max_storage_buffer_binding_size;
        if self.size_bytes() > limit {
            return Err(Error::BufferTooLarge {
                op,
                label: self.label().to_string(),
                bytes: self.size_bytes(),
                limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        Ok(())
    }
}
