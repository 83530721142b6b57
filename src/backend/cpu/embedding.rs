//! `cpu::embedding` and `cpu::embedding_backward`: the references for `shaders/embedding.wgsl`.

use ndarray::{Array2, ArrayView2};

use crate::backend::embedding::{embedding_backward_dims, embedding_dims};
use crate::backend::embedding_index;
use crate::error::Result;

/// Row r of `out` ← row r of `x` without column `column`, then row `x[r, column]` of `table`
/// (NaN where that value names no row): the twin of `forward` in `shaders/embedding.wgsl`.
pub fn embedding(
    x: ArrayView2<'_, f32>,
    column: usize,
    table: ArrayView2<'_, f32>,
    out: &mut Array2<f32>,
) -> Result<()> {
    let d = embedding_dims("embedding", x.dim(), column, table.dim(), out.dim())?;
    let others = d.inputs - 1;
    for r in 0..d.rows {
        for j in 0..others {
            out[[r, j]] = x[[r, if j < column { j } else { j + 1 }]];
        }
        let row = embedding_index(x[[r, column]], d.vocab);
        for e in 0..d.dim {
            out[[r, others + e]] = row.map_or(f32::NAN, |v| table[[v, e]]);
        }
    }
    Ok(())
}

/// The lookup's gradients from `grad_out`: with `table_grad`, each table row the sum of
/// ∂loss/∂output's embedding columns over the rows whose index names it, in row order (0 for
/// a row none names, and for the `padding` row; the twin of `table_grad`); with `grad_in`,
/// ∂loss/∂x: the other columns' gradients passed through and 0 in the index column (the twin
/// of `input_grad`).
pub fn embedding_backward(
    x: ArrayView2<'_, f32>,
    (column, padding): (usize, Option<usize>),
    grad_out: ArrayView2<'_, f32>,
    table_grad: Option<&mut Array2<f32>>,
    grad_in: Option<&mut Array2<f32>>,
) -> Result<()> {
    let d = embedding_backward_dims(
        "embedding_backward",
        x.dim(),
        (column, padding),
        grad_out.dim(),
        table_grad.as_ref().map(|t| t.dim()),
        grad_in.as_ref().map(|g| g.dim()),
    )?;
    let others = d.inputs - 1;
    if let Some(table_grad) = table_grad {
        table_grad.fill(0.0);
        for r in 0..d.rows {
            let index = embedding_index(x[[r, column]], d.vocab);
            if let Some(v) = index.filter(|&v| Some(v) != padding) {
                for e in 0..d.dim {
                    table_grad[[v, e]] += grad_out[[r, others + e]];
                }
            }
        }
    }
    if let Some(grad_in) = grad_in {
        for r in 0..d.rows {
            for c in 0..d.inputs {
                grad_in[[r, c]] = match c {
                    c if c < column => grad_out[[r, c]],
                    c if c > column => grad_out[[r, c - 1]],
                    _ => 0.0,
                };
            }
        }
    }
    Ok(())
}
