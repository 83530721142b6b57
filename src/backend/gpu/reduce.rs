//! Host side of `shaders/reduce.wgsl`: `gpu::column_sum` and `gpu::sum_squares`.

use super::context::GpuContext;
use super::dispatch::{
    Entry, WORKGROUP, check_bindings, check_no_alias, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use super::{GpuBuffer, GpuMatrix};
use crate::backend::{Matrix, column_sum_dims};
use crate::error::Result;

const COLUMN_SUM: Kernel = Kernel {
    shader: "reduce.wgsl",
    source: include_str!("../../../shaders/reduce.wgsl"),
    entry: "column_sum",
    bindings: &[Binding::ReadOnly, Binding::ReadWrite, Binding::ReadWrite],
    immediate_size: size_of::<Params>() as u32,
};
const SUM_SQUARES: Kernel = Kernel {
    entry: "sum_squares",
    ..COLUMN_SUM
};
const FINISH_SUM: Kernel = Kernel {
    entry: "finish_sum",
    ..COLUMN_SUM
};

/// Workgroups of the first pass of `sum_squares` at most (the partials of the second pass).
const SUM_GROUPS: usize = 256;

/// The shader's `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    in_offset: u32,
    out_offset: u32,
}

/// `out[0, c] ← Σ_r m[r, c]` on the GPU: the twin of [`crate::backend::cpu::column_sum`].
pub fn column_sum(ctx: &GpuContext, m: &GpuMatrix, out: &GpuMatrix) -> Result<()> {
    let op = "column_sum";
    column_sum_dims(m.shape(), out.shape())?;
    check_bindings(ctx, op, &[m, out])?;
    check_no_alias(op, out, &[m])?;
    let (rows, cols) = m.shape();
    let params = Params {
        rows: to_u32(op, "rows", rows)?,
        cols: to_u32(op, "cols", cols)?,
        in_offset: to_u32(op, "input offset", m.offset())?,
        out_offset: to_u32(op, "output offset", out.offset())?,
    };
    to_u32(op, "elements", rows * cols)?;
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[
            m.buffer().bind(),
            out.buffer().bind(),
            ctx.placeholder_rw_bind(),
        ],
        &[Entry {
            kernel: &COLUMN_SUM,
            overrides: &[],
            groups: striding_groups(cols),
        }],
    )
}

/// `out[0, slot] ← Σ x²` over every element of `m`, in a fixed order: the twin of
/// [`crate::backend::cpu::sum_squares`]. `partials` is scratch of at least 256 elements.
pub(crate) fn sum_squares_into(
    ctx: &GpuContext,
    m: &GpuMatrix,
    out: &GpuMatrix,
    slot: usize,
    partials: &GpuBuffer<f32>,
) -> Result<()> {
    let op = "sum_squares";
    check_bindings(ctx, op, &[m, out])?;
    check_no_alias(op, out, &[m])?;
    let (rows, cols) = m.shape();
    let params = Params {
        rows: to_u32(op, "rows", rows)?,
        cols: to_u32(op, "cols", cols)?,
        in_offset: to_u32(op, "input offset", m.offset())?,
        out_offset: to_u32(op, "output offset", out.offset() + slot)?,
    };
    to_u32(op, "elements", rows * cols)?;
    // `finish_sum` sums every partial its binding holds, so bind exactly as many as there are
    // workgroups.
    let groups = (rows * cols).div_ceil(WORKGROUP).clamp(1, SUM_GROUPS);
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[
            m.buffer().bind(),
            out.buffer().bind(),
            partials.bind_range(0, groups),
        ],
        &[
            Entry {
                kernel: &SUM_SQUARES,
                overrides: &[],
                groups: groups as u32,
            },
            Entry {
                kernel: &FINISH_SUM,
                overrides: &[],
                groups: 1,
            },
        ],
    )
}
