//! `GpuArena`: every tensor of a model in one buffer, so one dispatch updates them all.

use super::{GpuBuffer, GpuContext, GpuMatrix};
use crate::backend::{Arena, Matrix, arena_len};
use crate::error::Result;

/// Each tensor starts on a multiple of this many elements: 256 bytes, the largest
/// `min_storage_buffer_offset_alignment` any device asks for, so a tensor can be bound on its
/// own, and a multiple of 4 so the matmul's vec4 loads apply.
const TENSOR_ALIGNMENT: usize = 64;

/// A model's tensors as views into one GPU buffer. The gaps between tensors are zeros and stay
/// zeros: every kernel leaves them alone, and an optimizer moves nothing that starts at 0 with
/// a 0 gradient.
#[derive(Clone, Debug)]
pub struct GpuArena {
    buffer: GpuBuffer<f32>,
    tensors: Vec<GpuMatrix>,
}

impl GpuArena {
    /// A zeroed arena of tensors with these (rows, cols) shapes.
    pub fn new(ctx: &GpuContext, label: &str, shapes: &[(usize, usize)]) -> Result<Self> {
        let mut offsets = Vec::with_capacity(shapes.len());
        let mut end = 0usize;
        for &(rows, cols) in shapes {
            let start = end.next_multiple_of(TENSOR_ALIGNMENT);
            offsets.push(start);
            end = start.saturating_add(rows.saturating_mul(cols));
        }
        let buffer = GpuBuffer::zeros(ctx, label, end)?;
        let tensors = shapes
            .iter()
            .zip(offsets)
            .map(|(&(rows, cols), offset)| GpuMatrix::view(buffer.clone(), offset, rows, cols))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { buffer, tensors })
    }

    /// The buffer holding every tensor (and the zero gaps between them).
    pub fn buffer(&self) -> &GpuBuffer<f32> {
        &self.buffer
    }

    /// The whole buffer as 1×len matrices in order (for ops over every element): one, or for
    /// a buffer larger than one storage binding on `ctx`'s device, pieces of the largest
    /// aligned binding.
    pub(crate) fn as_rows(&self, ctx: &GpuContext) -> Result<Vec<GpuMatrix>> {
        let limits = ctx.limits();
        let align = u64::from(limits.min_storage_buffer_offset_alignment).max(16);
        let piece = usize::try_from(limits.max_storage_buffer_binding_size / align * align / 4)
            .unwrap_or(usize::MAX)
            .max(1);
        let len = self.buffer.len();
        (0..len)
            .step_by(piece)
            .map(|start| GpuMatrix::view(self.buffer.clone(), start, 1, piece.min(len - start)))
            .collect()
    }

    /// The tensors' values, concatenated in order (one readback).
    pub(crate) fn read(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let all = self.buffer.read(ctx)?;
        Ok(self
            .tensors
            .iter()
            .flat_map(|t| {
                let (rows, cols) = t.shape();
                all[t.offset()..t.offset() + rows * cols].iter().copied()
            })
            .collect())
    }

    /// Overwrites every tensor from `values` (laid out as [`GpuArena::read`] returns them).
    pub(crate) fn write(&self, ctx: &GpuContext, values: &[f32]) -> Result<()> {
        arena_len("write arena", self.len(), values.len())?;
        let mut all = vec![0.0f32; self.buffer.len()];
        let mut at = 0;
        for t in &self.tensors {
            let (rows, cols) = t.shape();
            let n = rows * cols;
            all[t.offset()..t.offset() + n].copy_from_slice(&values[at..at + n]);
            at += n;
        }
        self.buffer.write(ctx, 0, &all)
    }

    /// Whether `other` has this arena's layout: the same tensors
    /// ([`same_tensors`](crate::backend::same_tensors)) at the same offsets.
    pub(crate) fn same_layout(&self, other: &GpuArena) -> bool {
        crate::backend::same_tensors(self, other)
            && self
                .tensors
                .iter()
                .zip(&other.tensors)
                .all(|(a, b)| a.offset() == b.offset())
    }
}

impl Arena for GpuArena {
    type Matrix = GpuMatrix;
    fn tensors(&self) -> &[GpuMatrix] {
        &self.tensors
    }
    fn tensors_mut(&mut self) -> &mut [GpuMatrix] {
        &mut self.tensors
    }
    fn offsets(&self) -> Vec<usize> {
        self.tensors.iter().map(GpuMatrix::offset).collect()
    }
    fn storage_len(&self) -> usize {
        self.buffer.len()
    }
}
