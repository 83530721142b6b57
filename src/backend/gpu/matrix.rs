//! `GpuMatrix`: a matrix as a view of a GPU buffer.

use ndarray::{Array2, ArrayView2};

use super::{GpuBuffer, GpuContext};
use crate::backend::Matrix;
use crate::error::{Error, Result};

/// A row-major `rows × cols` matrix of `f32` in a GPU buffer, starting at element `offset`.
///
/// Cloning shares the GPU memory (it is a view, not a copy).
#[derive(Clone, Debug)]
pub struct GpuMatrix {
    buffer: GpuBuffer<f32>,
    offset: usize,
    rows: usize,
    cols: usize,
}

impl GpuMatrix {
    /// A `rows × cols` view of `buffer` starting at element `offset`.
    pub fn view(buffer: GpuBuffer<f32>, offset: usize, rows: usize, cols: usize) -> Result<Self> {
        let needed = rows.checked_mul(cols).and_then(|n| n.checked_add(offset));
        match needed {
            Some(end) if end <= buffer.len() && rows > 0 && cols > 0 => Ok(Self {
                buffer,
                offset,
                rows,
                cols,
            }),
            _ => Err(Error::Shape {
                op: "matrix view",
                detail: format!(
                    "{rows}×{cols} at offset {offset} does not fit in buffer {:?} of {} elements",
                    buffer.label(),
                    buffer.len()
                ),
            }),
        }
    }

    /// The buffer this matrix lives in.
    pub fn buffer(&self) -> &GpuBuffer<f32> {
        &self.buffer
    }

    /// Index of element (0, 0) within [`GpuMatrix::buffer`].
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl Matrix for GpuMatrix {
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
}

/// The backend's matrix management ([`Backend`](crate::Backend)'s `upload`, `zeros`,
/// `download`, `write`, `fill`).
impl GpuMatrix {
    /// A new buffer holding `host`.
    pub(super) fn upload(ctx: &GpuContext, host: ArrayView2<'_, f32>) -> Result<Self> {
        let (rows, cols) = host.dim();
        let buffer = GpuBuffer::from_array(ctx, "matrix", host)?;
        Self::view(buffer, 0, rows, cols)
    }

    /// The most elements one matrix may hold: whole 16-byte blocks (buffers are allocated in
    /// them) of the largest binding, within what the kernels' 32-bit indices reach.
    pub(super) fn max_elements(ctx: &GpuContext) -> usize {
        let limits = ctx.limits();
        let bytes = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let elements = (bytes / 16 * 4).min(u64::from(u32::MAX) / 4 * 4);
        usize::try_from(elements).unwrap_or(usize::MAX)
    }

    /// A new buffer of zeros.
    pub(super) fn zeros(ctx: &GpuContext, rows: usize, cols: usize) -> Result<Self> {
        let buffer = GpuBuffer::zeros(ctx, "matrix", rows.saturating_mul(cols))?;
        Self::view(buffer, 0, rows, cols)
    }

    /// The values, read back (pending work is submitted first).
    pub(super) fn read(&self, ctx: &GpuContext) -> Result<Array2<f32>> {
        let values = self
            .buffer
            .read_range(ctx, self.offset, self.rows * self.cols)?;
        Array2::from_shape_vec((self.rows, self.cols), values).map_err(|e| Error::Readback {
            label: self.buffer.label().to_string(),
            message: e.to_string(),
        })
    }

    /// Overwrites the values with `host`'s, of the same shape.
    pub(super) fn write(&mut self, ctx: &GpuContext, host: ArrayView2<'_, f32>) -> Result<()> {
        crate::backend::same_shape("write", self.shape(), host.dim())?;
        match host.as_slice() {
            Some(values) => self.buffer.write(ctx, self.offset, values),
            None => {
                let values: Vec<f32> = host.iter().copied().collect();
                self.buffer.write(ctx, self.offset, &values)
            }
        }
    }

    /// `dst ← self`, one copy recorded into the pending work (`dst` of this shape, in another
    /// buffer of this context).
    pub(super) fn copy_to(&self, ctx: &GpuContext, dst: &mut GpuMatrix) -> Result<()> {
        let op = "copy";
        crate::backend::same_shape(op, self.shape(), dst.shape())?;
        self.buffer.check_context(ctx, op)?;
        dst.buffer.check_context(ctx, op)?;
        super::dispatch::check_no_alias(op, dst, &[self])?;
        let (from, to, bytes) = (self.offset * 4, dst.offset * 4, self.rows * self.cols * 4);
        ctx.record(|encoder| {
            encoder.copy_buffer_to_buffer(
                self.buffer.raw(),
                from as u64,
                dst.buffer.raw(),
                to as u64,
                bytes as u64,
            )
        })
    }

    /// Sets every element to `value`.
    pub(super) fn fill(&mut self, ctx: &GpuContext, value: f32) -> Result<()> {
        let values = vec![value; self.rows * self.cols];
        self.buffer.write(ctx, self.offset, &values)
    }
}
