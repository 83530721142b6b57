//! `GpuMatrix`: a matrix as a view of a GPU buffer.

use super::GpuBuffer;
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
