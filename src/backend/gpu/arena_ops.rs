//! Ops over whole arenas: a binding's worth of the arena at a time, so an arena larger than
//! one binding (a large model's parameters) still runs; every piece is checked before any is
//! recorded.

use super::reduce::{self, Reduction};
use super::{GpuArena, GpuContext, GpuMatrix, dispatch};
use crate::backend::{Matrix, arena_len};
use crate::error::{Error, Result};

/// `totals[slot] ←` the `reduction` over the whole arena `x` (and `y`, of its layout, for a
/// dot product), its pieces (a binding's worth each) reduced in one fixed order.
pub(super) fn reduce(
    ctx: &GpuContext,
    reduction: Reduction,
    x: &GpuArena,
    y: Option<&GpuArena>,
    totals: &GpuMatrix,
    slot: usize,
) -> Result<()> {
    crate::backend::totals_dims(reduction.op(), totals.shape(), slot, 1)?;
    let xs = x.as_rows(ctx)?;
    let ys = y.map(|y| y.as_rows(ctx)).transpose()?;
    let parts: Vec<(&GpuMatrix, Option<&GpuMatrix>)> = match &ys {
        // The same layout: the same pieces.
        Some(ys) => xs.iter().zip(ys).map(|(x, y)| (x, Some(y))).collect(),
        None => xs.iter().map(|x| (x, None)).collect(),
    };
    let partials = ctx.scratch(256 * parts.len())?;
    reduce::reduce_into(ctx, reduction, &parts, totals, slot, &partials)
}

/// Records `piece` over the matching pieces (a binding's worth each) of two arenas of one
/// layout, every piece checked before any is recorded, so a refused op records nothing.
pub(super) fn each_piece(
    ctx: &GpuContext,
    op: &'static str,
    (x, y): (&GpuArena, &GpuArena),
    piece: impl Fn(&GpuMatrix, &GpuMatrix) -> Result<()>,
) -> Result<()> {
    check_layouts(op, x, y)?;
    let (xs, ys) = (x.as_rows(ctx)?, y.as_rows(ctx)?);
    // The same layout: the same pieces.
    for (x, y) in xs.iter().zip(&ys) {
        dispatch::check_bindings(ctx, op, &[x, y])?;
    }
    xs.iter().zip(&ys).try_for_each(|(x, y)| piece(x, y))
}

/// Arenas combined by one op must share one layout.
pub(crate) fn check_layouts(op: &'static str, a: &GpuArena, b: &GpuArena) -> Result<()> {
    arena_len(op, a.buffer().len(), b.buffer().len())?;
    if !a.same_layout(b) {
        return Err(Error::Shape {
            op,
            detail: "the arenas hold different tensors".into(),
        });
    }
    Ok(())
}
