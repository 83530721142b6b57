//! Host side of `shaders/gather.wgsl`: `gpu::gather_rows`.

use super::context::GpuContext;
use super::dispatch::{Entry, check_bindings, check_no_alias, record, striding_groups, to_u32};
use super::kernel::{Binding, Kernel};
use super::{GpuBuffer, GpuMatrix};
use crate::backend::{Matrix, gather_dims};
use crate::error::Result;

const GATHER_ROWS: Kernel = Kernel {
    shader: "gather.wgsl",
    source: include_str!("../../../shaders/gather.wgsl"),
    entry: "gather_rows",
    bindings: &[Binding::ReadOnly, Binding::ReadOnly, Binding::ReadWrite],
    immediate_size: size_of::<Params>() as u32,
};

/// A list of row indices on the GPU, with the host copy that validates each gather.
#[derive(Clone, Debug)]
pub struct GpuIndices {
    buffer: GpuBuffer<u32>,
    host: Vec<u32>,
}

impl GpuIndices {
    /// Uploads `indices`.
    pub fn new(ctx: &GpuContext, indices: &[u32]) -> Result<Self> {
        Ok(Self {
            buffer: GpuBuffer::from_slice(ctx, "row indices", indices)?,
            host: indices.to_vec(),
        })
    }

    /// Overwrites the indices with `values` of the same length.
    pub fn write(&mut self, ctx: &GpuContext, values: &[u32]) -> Result<()> {
        crate::backend::arena_len("write indices", self.host.len(), values.len())?;
        self.buffer.write(ctx, 0, values)?;
        self.host.copy_from_slice(values);
        Ok(())
    }

    /// The indices, as uploaded.
    pub fn as_slice(&self) -> &[u32] {
        &self.host
    }
}

/// The shader's `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    start: u32,
    out_offset: u32,
    src_offset: u32,
    _pad: [u32; 3],
}

/// `out[r, :] ← src[indices[start + r], :]` on the GPU: the twin of
/// [`crate::backend::cpu::gather_rows`].
pub fn gather_rows(
    ctx: &GpuContext,
    src: &GpuMatrix,
    indices: &GpuIndices,
    start: usize,
    out: &GpuMatrix,
) -> Result<()> {
    let op = "gather_rows";
    gather_dims(src.shape(), &indices.host, start, out.shape())?;
    check_bindings(ctx, op, &[src, out])?;
    check_no_alias(op, out, &[src])?;
    indices.buffer.check_binding(ctx, op)?;
    let (rows, cols) = out.shape();
    let params = Params {
        rows: to_u32(op, "rows", rows)?,
        cols: to_u32(op, "cols", cols)?,
        start: to_u32(op, "start", start)?,
        out_offset: to_u32(op, "output offset", out.offset())?,
        src_offset: to_u32(op, "source offset", src.offset())?,
        _pad: [0; 3],
    };
    to_u32(op, "source elements", src.buffer().len())?;
    to_u32(op, "output elements", rows * cols)?;
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[
            src.buffer().bind(),
            indices.buffer.bind(),
            out.buffer().bind(),
        ],
        &[Entry {
            kernel: &GATHER_ROWS,
            overrides: &[],
            groups: [striding_groups(rows * cols), 1, 1],
        }],
    )
}
