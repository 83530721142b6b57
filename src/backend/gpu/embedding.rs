//! Host side of `shaders/embedding.wgsl`: `gpu::embedding` and `gpu::embedding_backward`,
//! twins of the CPU functions of the same names.

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{
    Entry, bound, check_bindings, check_no_alias, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use crate::backend::Matrix;
use crate::backend::embedding::{EmbeddingDims, embedding_backward_dims, embedding_dims};
use crate::error::Result;

const FORWARD: Kernel = Kernel {
    shader: "embedding.wgsl",
    source: include_str!("../../../shaders/embedding.wgsl"),
    entry: "forward",
    bindings: &[Binding::ReadOnly, Binding::ReadOnly, Binding::ReadWrite],
    groups: 1,
    immediate_size: size_of::<Params>() as u32,
};
const TABLE_GRAD: Kernel = Kernel {
    entry: "table_grad",
    ..FORWARD
};
const TABLE_ZERO: Kernel = Kernel {
    entry: "table_zero",
    ..FORWARD
};
const TABLE_GRAD_ROWS: Kernel = Kernel {
    entry: "table_grad_rows",
    ..FORWARD
};
const INPUT_GRAD: Kernel = Kernel {
    entry: "input_grad",
    ..FORWARD
};

/// Invocations of a `table_grad` workgroup (`ROW_WORKGROUP`): a table row's columns, 64 at a
/// time.
const ROW_WORKGROUP: usize = 64;

/// Workgroups at most for `table_grad` and `table_grad_rows`, each striding through (row,
/// column block) pairs.
const MAX_TABLE_GROUPS: usize = 4096;

/// The shader's `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    inputs: u32,
    column: u32,
    vocab: u32,
    dim: u32,
    a_offset: u32,
    b_offset: u32,
    out_offset: u32,
    /// The table row that gets no gradient, or `NO_PADDING`.
    padding: u32,
    _pad: [u32; 3],
}

/// `padding` where no row is the padding row (no table has 2³² rows: at most 2²⁴).
const NO_PADDING: u32 = u32::MAX;

/// Records `entries` (kernel and workgroups, run in order) over (a, b, out) with `dims`,
/// after checking the bindings, aliasing and 32-bit sizes.
fn run<const N: usize>(
    ctx: &GpuContext,
    op: &'static str,
    entries: [(&Kernel, u32); N],
    (a, b, out): (&GpuMatrix, &GpuMatrix, &GpuMatrix),
    dims: EmbeddingDims,
) -> Result<()> {
    check_bindings(ctx, op, &[a, b, out])?;
    check_no_alias(op, out, &[a, b])?;
    // Every index a kernel forms stays below these (the table's only where there is one).
    to_u32(
        op,
        "output elements",
        dims.rows.saturating_mul(dims.outputs()),
    )?;
    to_u32(op, "input elements", dims.rows.saturating_mul(dims.inputs))?;
    to_u32(op, "table elements", dims.vocab.saturating_mul(dims.dim))?;
    let (ab, bb, ob) = (
        bound(ctx, op, &[a])?,
        bound(ctx, op, &[b])?,
        bound(ctx, op, &[out])?,
    );
    let params = Params {
        rows: to_u32(op, "rows", dims.rows)?,
        inputs: to_u32(op, "inputs", dims.inputs)?,
        column: to_u32(op, "column", dims.column)?,
        vocab: to_u32(op, "vocabulary", dims.vocab)?,
        dim: to_u32(op, "embedding width", dims.dim)?,
        a_offset: ab.offset(op, "first input offset", a)?,
        b_offset: bb.offset(op, "second input offset", b)?,
        out_offset: ob.offset(op, "output offset", out)?,
        padding: match dims.padding {
            Some(p) => to_u32(op, "padding row", p)?,
            None => NO_PADDING,
        },
        _pad: [0; 3],
    };
    let entries = entries.map(|(kernel, groups)| Entry {
        kernel,
        overrides: &[],
        groups: [groups, 1, 1],
    });
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[ab.bind, bb.bind, ob.bind],
        &entries,
    )
}

/// Row r of `out` ← row r of `x` without column `column`, then row `x[r, column]` of `table`
/// (NaN where that value names no row): the twin of [`crate::backend::cpu::embedding`].
pub fn embedding(
    ctx: &GpuContext,
    x: &GpuMatrix,
    column: usize,
    table: &GpuMatrix,
    out: &GpuMatrix,
) -> Result<()> {
    let op = "embedding";
    let dims = embedding_dims(op, x.shape(), column, table.shape(), out.shape())?;
    let groups = striding_groups(dims.rows.saturating_mul(dims.outputs()));
    run(ctx, op, [(&FORWARD, groups)], (x, table, out), dims)
}

/// The lookup's gradients: the twin of [`crate::backend::cpu::embedding_backward`].
pub fn embedding_backward(
    ctx: &GpuContext,
    x: &GpuMatrix,
    column: (usize, Option<usize>),
    grad_out: &GpuMatrix,
    table_grad: Option<&GpuMatrix>,
    grad_in: Option<&GpuMatrix>,
) -> Result<()> {
    let op = "embedding_backward";
    let dims = embedding_backward_dims(
        op,
        x.shape(),
        column,
        grad_out.shape(),
        table_grad.map(Matrix::shape),
        grad_in.map(Matrix::shape),
    )?;
    // Both checked before either records, so a refused call records nothing.
    for out in table_grad.iter().chain(&grad_in) {
        check_bindings(ctx, op, &[x, grad_out, out])?;
        check_no_alias(op, out, &[x, grad_out])?;
    }
    if let Some(table_grad) = table_grad {
        // Scanning the batch for every table row costs vocab · rows index reads a column
        // block; for a table larger than the batch, zeroing it and scanning the batch for
        // every batch row costs at most rows². The same sums in the same order either way.
        let blocks = dims.dim.div_ceil(ROW_WORKGROUP);
        let groups = |rows_of_items: usize| {
            (rows_of_items.saturating_mul(blocks)).clamp(1, MAX_TABLE_GROUPS) as u32
        };
        let views = (x, grad_out, table_grad);
        match dims.vocab <= dims.rows {
            true => run(ctx, op, [(&TABLE_GRAD, groups(dims.vocab))], views, dims)?,
            false => {
                let zero_groups = striding_groups(dims.vocab.saturating_mul(dims.dim));
                let entries = [
                    (&TABLE_ZERO, zero_groups),
                    (&TABLE_GRAD_ROWS, groups(dims.rows)),
                ];
                run(ctx, op, entries, views, dims)?
            }
        }
    }
    if let Some(grad_in) = grad_in {
        let groups = striding_groups(dims.rows.saturating_mul(dims.inputs));
        run(
            ctx,
            op,
            [(&INPUT_GRAD, groups)],
            (grad_out, grad_out, grad_in),
            dims,
        )?;
    }
    Ok(())
}
