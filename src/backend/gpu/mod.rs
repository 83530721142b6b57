//! The wgpu backend: every op is a WGSL compute kernel from `shaders/`, twin of a CPU op.

mod buffer;
mod context;
mod matmul;
mod optim;

pub use buffer::GpuBuffer;
pub use context::{GpuContext, GpuOptions};
pub use matmul::matmul;
pub use optim::GpuOptimizer;

use std::sync::Arc;

use ndarray::{Array2, ArrayView2};

use super::{Backend, Matmul, Matrix};
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

/// Runs every op on a GPU through wgpu.
#[derive(Clone, Debug)]
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
}

impl GpuBackend {
    /// A backend on the adapter chosen by wgpu's environment variables
    /// (see [`GpuOptions::from_env`]).
    pub fn new() -> Result<Self> {
        Ok(Self {
            ctx: GpuContext::new()?,
        })
    }

    /// A backend on an existing context (several backends may share one device).
    pub fn with_context(ctx: Arc<GpuContext>) -> Self {
        Self { ctx }
    }

    /// The context: adapter, device, limits, caches.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }
}

impl Backend for GpuBackend {
    type Matrix = GpuMatrix;

    fn describe(&self) -> String {
        format!(
            "gpu ({}, {:?})",
            self.ctx.adapter_name(),
            self.ctx.backend()
        )
    }

    fn upload(&self, host: ArrayView2<'_, f32>) -> Result<GpuMatrix> {
        let (rows, cols) = host.dim();
        let buffer = GpuBuffer::from_array(&self.ctx, "matrix", host)?;
        GpuMatrix::view(buffer, 0, rows, cols)
    }

    fn download(&self, matrix: &GpuMatrix) -> Result<Array2<f32>> {
        let all = matrix.buffer.read(&self.ctx)?;
        let start = matrix.offset;
        let values = all[start..start + matrix.rows * matrix.cols].to_vec();
        Array2::from_shape_vec((matrix.rows, matrix.cols), values).map_err(|e| Error::Readback {
            label: matrix.buffer.label().to_string(),
            message: e.to_string(),
        })
    }

    fn zeros(&self, rows: usize, cols: usize) -> Result<GpuMatrix> {
        let len = rows.saturating_mul(cols);
        let buffer = GpuBuffer::zeros(&self.ctx, "matrix", len)?;
        GpuMatrix::view(buffer, 0, rows, cols)
    }

    fn matmul_into(
        &self,
        spec: Matmul,
        a: &GpuMatrix,
        b: &GpuMatrix,
        bias: Option<&GpuMatrix>,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        matmul(&self.ctx, spec, a, b, bias, out)
    }
}
