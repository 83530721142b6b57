//! Host side of `shaders/gather.wgsl`: `gpu::gather_rows` and `gpu::gather_batch`.

use super::context::GpuContext;
use super::dispatch::{
    Entry, bound, check_bindings, check_no_alias, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use super::{GpuBuffer, GpuMatrix};
use crate::backend::{Matrix, gather_batch_dims, gather_dims};
use crate::error::Result;

const GATHER_ROWS: Kernel = Kernel {
    shader: "gather.wgsl",
    source: include_str!("../../../shaders/gather.wgsl"),
    entry: "gather_rows",
    bindings: &[
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadOnly,
        Binding::ReadWrite,
    ],
    groups: 1,
    immediate_size: size_of::<Params>() as u32,
};
const GATHER_BATCH: Kernel = Kernel {
    entry: "gather_batch",
    ..GATHER_ROWS
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
    y_cols: u32,
    y_src_offset: u32,
    y_out_offset: u32,
    first_row: u32,
    shard_rows: u32,
    _pad: [u32; 2],
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
    gather_dims(op, src.shape(), &indices.host, start, out.shape())?;
    check_bindings(ctx, op, &[src, out])?;
    check_no_alias(op, out, &[src])?;
    indices.buffer.check_binding(ctx, op)?;
    let (rows, cols) = out.shape();
    let (sb, ob) = (bound(ctx, op, &[src])?, bound(ctx, op, &[out])?);
    let params = Params {
        rows: to_u32(op, "rows", rows)?,
        cols: to_u32(op, "cols", cols)?,
        start: to_u32(op, "start", start)?,
        out_offset: ob.offset(op, "output offset", out)?,
        src_offset: sb.offset(op, "source offset", src)?,
        y_cols: 0,
        y_src_offset: 0,
        y_out_offset: 0,
        first_row: 0,
        shard_rows: 0,
        _pad: [0; 2],
    };
    to_u32(op, "output elements", rows * cols)?;
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[
            sb.bind,
            indices.buffer.bind(),
            ob.bind,
            ctx.placeholder_bind(),
            ctx.placeholder_rw_bind(),
        ],
        &[Entry {
            kernel: &GATHER_ROWS,
            overrides: &[],
            groups: [striding_groups(rows * cols), 1, 1],
        }],
    )
}

/// A batch's inputs and targets (row `r` of `x_out` and `y_out` is row `indices[start + r]`
/// of the data whose rows the `(x, y)` pairs of `shards` hold in order), one dispatch per
/// shard, each copying the rows it holds: the twin of [`crate::backend::cpu::gather_batch`].
/// Checks every shard and index before recording any.
pub fn gather_batch<'a>(
    ctx: &GpuContext,
    shards: &[(&'a GpuMatrix, &'a GpuMatrix)],
    indices: &GpuIndices,
    start: usize,
    (x_out, y_out): (&GpuMatrix, &GpuMatrix),
) -> Result<()> {
    let op = "gather_batch";
    gather_batch_dims(
        op,
        shards.iter().map(|(x, y)| (x.shape(), y.shape())),
        &indices.host,
        start,
        (x_out.shape(), y_out.shape()),
    )?;
    // (`bound` checks each binding: the outputs' here, each shard's in `plan`.)
    let (xob, yob) = (bound(ctx, op, &[x_out])?, bound(ctx, op, &[y_out])?);
    indices.buffer.check_binding(ctx, op)?;
    let (rows, cols) = x_out.shape();
    let y_cols = y_out.shape().1;
    // Both outputs' elements together fit the kernel's 32-bit element index.
    let total = cols
        .checked_add(y_cols)
        .and_then(|width| rows.checked_mul(width))
        .ok_or_else(|| crate::error::Error::Shape {
            op,
            detail: format!("{rows} rows of {cols} + {y_cols} columns overflow"),
        })?;
    to_u32(op, "output elements", total)?;
    // Shard `x, y` from data row `first_row` on: its bindings and values, checked.
    let plan = |x: &'a GpuMatrix, y: &'a GpuMatrix, first_row: usize| {
        check_no_alias(op, x_out, &[x, y, y_out])?;
        check_no_alias(op, y_out, &[x, y])?;
        let (xb, yb) = (bound(ctx, op, &[x])?, bound(ctx, op, &[y])?);
        let params = Params {
            rows: to_u32(op, "rows", rows)?,
            cols: to_u32(op, "cols", cols)?,
            start: to_u32(op, "start", start)?,
            out_offset: xob.offset(op, "output offset", x_out)?,
            src_offset: xb.offset(op, "source offset", x)?,
            y_cols: to_u32(op, "target cols", y_cols)?,
            y_src_offset: yb.offset(op, "target source offset", y)?,
            y_out_offset: yob.offset(op, "target output offset", y_out)?,
            first_row: to_u32(op, "a source's first row", first_row)?,
            shard_rows: to_u32(op, "a source's rows", x.shape().0)?,
            _pad: [0; 2],
        };
        Result::Ok((xb.bind, yb.bind, params))
    };
    // Every shard is checked before any is recorded (the plan is pure: planned again below,
    // it gives the same values).
    let mut first_row = 0;
    for &(x, y) in shards {
        plan(x, y, first_row)?;
        first_row += x.shape().0;
    }
    let mut first_row = 0;
    for &(x, y) in shards {
        let (xb, yb, params) = plan(x, y, first_row)?;
        first_row += x.shape().0;
        record(
            ctx,
            op,
            bytemuck::bytes_of(&params),
            &[xb, indices.buffer.bind(), xob.bind, yb, yob.bind],
            &[Entry {
                kernel: &GATHER_BATCH,
                overrides: &[],
                groups: [striding_groups(total), 1, 1],
            }],
        )?;
    }
    Ok(())
}
