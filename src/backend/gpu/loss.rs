//! Host side of `shaders/loss.wgsl`: `gpu::loss`.

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{
    Entry, bound, check_bindings, check_no_alias, offset_in, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use crate::backend::{Loss, LossShare};
use crate::backend::{Matrix, class_weights_dims, loss_dims, totals_dims};
use crate::error::Result;

const LOSS_ROWS: Kernel = Kernel {
    shader: "loss.wgsl",
    source: include_str!("../../../shaders/loss.wgsl"),
    entry: "loss_rows",
    bindings: &[
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadOnly,
    ],
    groups: 1,
    immediate_size: size_of::<Params>() as u32,
};
const LOSS_TOTAL: Kernel = Kernel {
    entry: "loss_total",
    ..LOSS_ROWS
};
const LOSS_WEIGHT: Kernel = Kernel {
    entry: "loss_weight",
    ..LOSS_ROWS
};
const LOSS_ONE_PASS: Kernel = Kernel {
    entry: "loss_one_pass",
    ..LOSS_ROWS
};

/// Batches up to this many rows take `loss_one_pass`: one workgroup does rows and total in one
/// dispatch (16 rows per invocation at most), in the same order as the two passes, so the
/// results are the same bits.
const ONE_PASS_ROWS: usize = 4096;

/// The shader's `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    logits_offset: u32,
    targets_offset: u32,
    grad_offset: u32,
    totals_offset: u32,
    scale: f32,
    threshold: f32,
    first: u32,
    weights_offset: u32,
    _pad: [u32; 2],
}

/// The fused loss on the GPU: the twin of [`crate::backend::cpu::loss`], with the batch sums
/// written to `totals` (set, or added for a batch not its update's first) as
/// [`crate::Backend::loss_into`] says; each row's sums go through the context's scratch.
/// Class labels are not checked here (the GPU cannot fail a kernel): the dataset checks them
/// once, when it is built.
pub(crate) fn loss(
    ctx: &GpuContext,
    kind: Loss,
    logits: &GpuMatrix,
    targets: &GpuMatrix,
    (grad, share): (Option<&GpuMatrix>, LossShare),
    weights: Option<&GpuMatrix>,
    (totals, slot): (&GpuMatrix, usize),
) -> Result<()> {
    let op = "loss";
    kind.validate()?;
    loss_dims(
        kind,
        logits.shape(),
        targets.shape(),
        grad.map(Matrix::shape),
        share,
    )?;
    class_weights_dims(kind, logits.shape().1, weights.map(Matrix::shape))?;
    if let Some(weights) = weights {
        check_bindings(ctx, op, &[weights])?;
    }
    totals_dims(op, totals.shape(), slot, 4)?;
    check_bindings(ctx, op, &[logits, targets, totals])?;
    check_no_alias(op, totals, &[logits, targets])?;
    if let Some(grad) = grad {
        check_bindings(ctx, op, &[grad])?;
        check_no_alias(op, grad, &[logits, targets, totals])?;
    }
    let (rows, cols) = logits.shape();
    // One more pair where a weighted batch's rows / W passes between workgroups.
    let row_sums = ctx.scratch(2 * rows + 2)?;
    let (lb, tb, sb) = (
        bound(ctx, op, &[logits])?,
        bound(ctx, op, &[targets])?,
        bound(ctx, op, &[totals])?,
    );
    let gb = grad.map(|g| bound(ctx, op, &[g])).transpose()?;
    let wb = weights.map(|w| bound(ctx, op, &[w])).transpose()?;
    let params = Params {
        rows: to_u32(op, "rows", rows)?,
        cols: to_u32(op, "cols", cols)?,
        logits_offset: lb.offset(op, "logits offset", logits)?,
        targets_offset: tb.offset(op, "targets offset", targets)?,
        grad_offset: offset_in(op, "gradient offset", gb.zip(grad))?,
        totals_offset: to_u32(op, "totals offset", totals.offset() - sb.base + slot)?,
        scale: kind.grad_scale(share.update_rows, cols),
        threshold: kind.shader_code().1,
        first: u32::from(share.first),
        weights_offset: offset_in(op, "weights offset", wb.zip(weights))?,
        _pad: [0; 2],
    };
    to_u32(op, "elements", rows * cols)?;
    let overrides = [
        ("LOSS", f64::from(kind.shader_code().0)),
        ("WRITE_GRAD", if grad.is_some() { 1.0 } else { 0.0 }),
        ("WEIGHTED", if weights.is_some() { 1.0 } else { 0.0 }),
    ];
    let entries: Vec<Entry<'_>> = if rows <= ONE_PASS_ROWS {
        vec![Entry {
            kernel: &LOSS_ONE_PASS,
            overrides: &overrides,
            groups: [1, 1, 1],
        }]
    } else {
        let weight = weights.map(|_| Entry {
            kernel: &LOSS_WEIGHT,
            overrides: &overrides,
            groups: [1, 1, 1],
        });
        weight
            .into_iter()
            .chain([
                Entry {
                    kernel: &LOSS_ROWS,
                    overrides: &overrides,
                    groups: [striding_groups(rows), 1, 1],
                },
                Entry {
                    kernel: &LOSS_TOTAL,
                    overrides: &overrides,
                    groups: [1, 1, 1],
                },
            ])
            .collect()
    };
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[
            lb.bind,
            tb.bind,
            gb.map_or(ctx.placeholder_rw_bind(), |g| g.bind),
            row_sums.bind_range(0, 2 * rows + 2),
            sb.bind,
            // Unweighted, the logits stand in for the weights: bound, never read.
            wb.map_or(lb.bind, |w| w.bind),
        ],
        &entries,
    )
}
