//! Host side of `shaders/reduce.wgsl` (`gpu::column_sum`, the sum of squares) and
//! `shaders/reduce_terms.wgsl` (Σ x·y, Σ |x|, max |x|): [`reduce_into`] runs the arena
//! reductions.

use super::context::GpuContext;
use super::dispatch::{
    Entry, WORKGROUP, bound, check_bindings, check_no_alias, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use super::sites::{Bind, Dispatch, Step};
use super::{GpuBuffer, GpuMatrix};
use crate::backend::{Matrix, column_sum_dims, same_shape};
use crate::error::{Error, Result};

const COLUMN_SUM: Kernel = Kernel {
    shader: "reduce.wgsl",
    source: include_str!("../../../shaders/reduce.wgsl"),
    entry: "column_sum",
    bindings: &[Binding::ReadOnly, Binding::ReadWrite, Binding::ReadWrite],
    groups: 1,
    immediate_size: size_of::<Params>() as u32,
};
pub(super) const SUM_SQUARES: Kernel = Kernel {
    entry: "sum_squares",
    ..COLUMN_SUM
};
const COLUMN_SUM_FINISH: Kernel = Kernel {
    entry: "column_sum_finish",
    ..COLUMN_SUM
};
pub(super) const FINISH_SUM: Kernel = Kernel {
    entry: "finish_sum",
    ..COLUMN_SUM
};
const REDUCE_TERMS: Kernel = Kernel {
    shader: "reduce_terms.wgsl",
    source: include_str!("../../../shaders/reduce_terms.wgsl"),
    entry: "reduce_terms",
    bindings: &[
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadOnly,
    ],
    groups: 1,
    immediate_size: size_of::<Params>() as u32,
};
const FINISH_REDUCE: Kernel = Kernel {
    entry: "finish_reduce",
    ..REDUCE_TERMS
};

/// Workgroups of the first pass of `sum_squares` at most (the partials of the second pass).
pub(super) const SUM_GROUPS: usize = 256;

/// The shader's `Params`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Params {
    pub rows: u32,
    pub cols: u32,
    pub in_offset: u32,
    pub out_offset: u32,
    pub block_rows: u32,
    pub row_blocks: u32,
    pub partial_base: u32,
    pub other_offset: u32,
}

/// Rows per block of the column sum's first pass: enough work per lane (16 rows) to keep
/// loads in flight, few enough that a batch of a few hundred rows spreads over many
/// workgroups.
const COLUMN_SUM_BLOCK_ROWS: usize = 64;
/// Columns per workgroup of the column sum (`COLUMN_BLOCK` in the shader).
const COLUMN_SUM_BLOCK_COLS: usize = 64;

/// Rows per block for a `rows × cols` column sum: the default, grown (by doubling) until the
/// blocks fit the device's workgroup grid and their partial sums fit `max_partials`.
pub(super) fn column_sum_block_rows(
    rows: usize,
    cols: usize,
    grid_limit: usize,
    max_partials: usize,
) -> usize {
    let mut block_rows = COLUMN_SUM_BLOCK_ROWS;
    while block_rows < rows
        && (rows.div_ceil(block_rows) > grid_limit
            || rows.div_ceil(block_rows).saturating_mul(cols) > max_partials)
    {
        block_rows *= 2;
    }
    block_rows
}

/// `out[0, c] ← Σ_r m[r, c]` on the GPU: the twin of [`crate::backend::cpu::column_sum`].
pub fn column_sum(ctx: &GpuContext, m: &GpuMatrix, out: &GpuMatrix) -> Result<()> {
    let op = "column_sum";
    column_sum_dims(m.shape(), out.shape())?;
    check_bindings(ctx, op, &[m, out])?;
    check_no_alias(op, out, &[m])?;
    let (rows, cols) = m.shape();
    to_u32(op, "elements", rows * cols)?;
    let limits = ctx.limits();
    let grid_limit = limits.max_compute_workgroups_per_dimension.max(1) as usize;
    let max_partials = ctx.max_partials();
    let block_rows = column_sum_block_rows(rows, cols, grid_limit, max_partials);
    let row_blocks = rows.div_ceil(block_rows);
    let (mb, ob) = (bound(ctx, op, &[m])?, bound(ctx, op, &[out])?);
    let params = Params {
        rows: to_u32(op, "rows", rows)?,
        cols: to_u32(op, "cols", cols)?,
        in_offset: mb.offset(op, "input offset", m)?,
        out_offset: ob.offset(op, "output offset", out)?,
        block_rows: to_u32(op, "rows per block", block_rows)?,
        row_blocks: to_u32(op, "row blocks", row_blocks)?,
        partial_base: 0,
        other_offset: 0,
    };
    let first = Entry {
        kernel: &COLUMN_SUM,
        overrides: &[],
        groups: [
            cols.div_ceil(COLUMN_SUM_BLOCK_COLS).min(grid_limit) as u32,
            row_blocks as u32,
            1,
        ],
    };
    if row_blocks == 1 {
        return record(
            ctx,
            op,
            bytemuck::bytes_of(&params),
            &[mb.bind, ob.bind, ctx.placeholder_rw_bind()],
            &[first],
        );
    }
    let partials = ctx.scratch(row_blocks * cols)?;
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[mb.bind, ob.bind, partials.bind_range(0, row_blocks * cols)],
        &[
            first,
            Entry {
                kernel: &COLUMN_SUM_FINISH,
                overrides: &[],
                groups: [striding_groups(cols), 1, 1],
            },
        ],
    )
}

/// What [`reduce_into`] computes over every element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reduction {
    /// Σ x² (`sum_squares`).
    SumSquares,
    /// Σ |x|.
    SumAbs,
    /// max |x|.
    MaxAbs,
    /// Σ x·y over the elements of two arenas of one layout.
    Dot,
}

impl Reduction {
    /// The two kernels and their `TERM` and `COMBINE` overrides.
    fn kernels(
        self,
    ) -> (
        &'static Kernel,
        &'static Kernel,
        &'static [(&'static str, f64)],
    ) {
        match self {
            Reduction::SumSquares => (&SUM_SQUARES, &FINISH_SUM, &[]),
            Reduction::SumAbs => (
                &REDUCE_TERMS,
                &FINISH_REDUCE,
                &[("TERM", 0.0), ("COMBINE", 0.0)],
            ),
            Reduction::MaxAbs => (
                &REDUCE_TERMS,
                &FINISH_REDUCE,
                &[("TERM", 0.0), ("COMBINE", 1.0)],
            ),
            Reduction::Dot => (
                &REDUCE_TERMS,
                &FINISH_REDUCE,
                &[("TERM", 1.0), ("COMBINE", 0.0)],
            ),
        }
    }

    /// The op's name in errors.
    pub fn op(self) -> &'static str {
        match self {
            Reduction::SumSquares => "sum_squares",
            Reduction::SumAbs => "sum_abs",
            Reduction::MaxAbs => "max_abs",
            Reduction::Dot => "dot",
        }
    }
}

/// `out[0, slot] ←` the `reduction` over every element of `parts`, in a fixed order: the twin
/// of [`crate::backend::cpu::sum_squares`], `cpu::sum_abs`, `cpu::max_abs` and `cpu::dot`.
/// `parts` are views each bound on its own (one, or an arena larger than one binding in
/// pieces), each with the matching view of the second arena for [`Reduction::Dot`].
/// `partials` is scratch of at least 256 elements per part.
pub(crate) fn reduce_into(
    ctx: &GpuContext,
    reduction: Reduction,
    parts: &[(&GpuMatrix, Option<&GpuMatrix>)],
    out: &GpuMatrix,
    slot: usize,
    partials: &GpuBuffer<f32>,
) -> Result<()> {
    let op = reduction.op();
    if parts.is_empty() {
        return Err(Error::Gpu {
            op,
            message: "a reduction over no part".into(),
        });
    }
    // (`bound` checks each binding.)
    let ob = bound(ctx, op, &[out])?;
    let out_offset = to_u32(op, "output offset", out.offset() - ob.base + slot)?;
    // Each part's values and binding; its partials follow the earlier parts'.
    let mut planned = Vec::with_capacity(parts.len());
    let mut partial_base = 0;
    for &(m, other) in parts {
        check_no_alias(op, out, &[m])?;
        let (rows, cols) = m.shape();
        to_u32(op, "elements", rows * cols)?;
        let mb = bound(ctx, op, &[m])?;
        let (other_bind, other_offset) = match (reduction, other) {
            (Reduction::Dot, Some(o)) => {
                same_shape(op, o.shape(), m.shape())?;
                check_no_alias(op, out, &[o])?;
                let b = bound(ctx, op, &[o])?;
                (Some(b.bind), b.offset(op, "second input offset", o)?)
            }
            (Reduction::Dot, None) | (_, Some(_)) => {
                return Err(Error::Gpu {
                    op,
                    message: "a dot product takes a second input, the others none".into(),
                });
            }
            _ => (None, 0),
        };
        let groups = (rows * cols).div_ceil(WORKGROUP).clamp(1, SUM_GROUPS);
        let params = Params {
            rows: to_u32(op, "rows", rows)?,
            cols: to_u32(op, "cols", cols)?,
            in_offset: mb.offset(op, "input offset", m)?,
            out_offset,
            block_rows: 0,
            row_blocks: 0,
            partial_base: to_u32(op, "partial base", partial_base)?,
            other_offset,
        };
        planned.push((mb.bind, other_bind, params, groups));
        partial_base += groups;
    }
    // `finish` combines every partial its binding holds, so bind exactly as many as there are
    // workgroups.
    let partials = partials.bind_range(0, partial_base);
    let (first, finish_kernel, overrides) = reduction.kernels();
    let bindings: Vec<Vec<Bind<'_>>> = planned
        .iter()
        .map(|&(input, other, _, _)| {
            let mut b = vec![input, ob.bind, partials];
            if first.bindings.len() > 3 {
                b.push(other.unwrap_or_else(|| ctx.placeholder_bind()));
            }
            b
        })
        .collect();
    if let [(_, _, params, groups)] = planned[..] {
        // One part: both passes in one step, as the single-binding case always ran.
        return record(
            ctx,
            op,
            bytemuck::bytes_of(&params),
            &bindings[0][..],
            &[
                Entry {
                    kernel: first,
                    overrides,
                    groups: [groups as u32, 1, 1],
                },
                Entry {
                    kernel: finish_kernel,
                    overrides,
                    groups: [1, 1, 1],
                },
            ],
        );
    }
    let pass = ctx.pipeline(first, overrides)?;
    let finish = ctx.pipeline(finish_kernel, overrides)?;
    let dispatches: Vec<[Dispatch<'_>; 1]> = planned
        .iter()
        .map(|&(_, _, _, groups)| {
            [Dispatch {
                pipeline: &pass,
                groups: [groups as u32, 1, 1],
            }]
        })
        .collect();
    let finish_dispatch = [Dispatch {
        pipeline: &finish,
        groups: [1, 1, 1],
    }];
    let mut steps: Vec<Step<'_>> = planned
        .iter()
        .zip(&bindings)
        .zip(&dispatches)
        .map(|(((_, _, params, _), bindings), dispatches)| Step {
            kernel: first,
            immediates: bytemuck::bytes_of(params),
            bindings,
            dispatches,
        })
        .collect();
    // The parts' partials, then their combination (through the first part's bind group
    // layout).
    steps.push(Step {
        kernel: finish_kernel,
        immediates: bytemuck::bytes_of(&planned[0].2),
        bindings: &bindings[0],
        dispatches: &finish_dispatch,
    });
    // All in one recording: the partials are the context's scratch.
    ctx.dispatch_steps(op, &steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_sum_blocks_fit_the_grid_and_the_partials() {
        // A batch spreads over blocks of 64 rows.
        assert_eq!(column_sum_block_rows(512, 1024, 65535, usize::MAX), 64);
        assert_eq!(column_sum_block_rows(10, 3, 65535, usize::MAX), 64);
        // Too many blocks for the grid: taller blocks.
        let rows = 64 * 65535 + 1;
        let b = column_sum_block_rows(rows, 2, 65535, usize::MAX);
        assert!(rows.div_ceil(b) <= 65535 && b.is_multiple_of(4), "{b}");
        // Partials over the binding limit: taller blocks, down to one block (no partials).
        let b = column_sum_block_rows(1000, 100, 65535, 500);
        assert!(1000usize.div_ceil(b) * 100 <= 500, "{b}");
        assert!(column_sum_block_rows(1000, 100, 65535, 50) >= 1000);
    }
}
