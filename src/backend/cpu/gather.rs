//! `cpu::gather_rows` and `cpu::gather_batch`: the references for `shaders/gather.wgsl`.

use ndarray::{Array2, ArrayView2};

use crate::backend::{gather_batch_dims, gather_dims};
use crate::error::Result;

/// `out[r, :] ← src[indices[start + r], :]` for every row of `out`.
pub fn gather_rows(
    src: ArrayView2<'_, f32>,
    indices: &[u32],
    start: usize,
    out: &mut Array2<f32>,
) -> Result<()> {
    gather_dims("gather_rows", src.dim(), indices, start, out.dim())?;
    for (r, mut row) in out.rows_mut().into_iter().enumerate() {
        row.assign(&src.row(indices[start + r] as usize));
    }
    Ok(())
}

/// A batch's inputs and targets: row `r` of `x_out` and `y_out` is row `indices[start + r]`
/// of the data whose rows the `(x, y)` pairs of `shards` hold in order (one pair, or several
/// where the data is over a backend's [`max_matrix_elements`](crate::Backend::max_matrix_elements)).
/// Checks every shard and index before writing either output.
pub fn gather_batch(
    shards: &[(ArrayView2<'_, f32>, ArrayView2<'_, f32>)],
    indices: &[u32],
    start: usize,
    (x_out, y_out): (&mut Array2<f32>, &mut Array2<f32>),
) -> Result<()> {
    gather_batch_dims(
        "gather_batch",
        shards.iter().map(|(x, y)| (x.dim(), y.dim())),
        indices,
        start,
        (x_out.dim(), y_out.dim()),
    )?;
    for (r, &index) in indices[start..start + x_out.nrows()].iter().enumerate() {
        // The shard holding row `index`, and the row within it (the check above has put every
        // index below the shards' rows together).
        let mut row = index as usize;
        for (x, y) in shards {
            if row < x.nrows() {
                x_out.row_mut(r).assign(&x.row(row));
                y_out.row_mut(r).assign(&y.row(row));
                break;
            }
            row -= x.nrows();
        }
    }
    Ok(())
}
