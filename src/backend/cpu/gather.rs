//! `cpu::gather_rows` and `cpu::gather_batch`: the references for `shaders/gather.wgsl`.

use ndarray::{Array2, ArrayView2};

use crate::backend::gather_dims;
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

/// The rows `indices[start..]` of `x` into `x_out` and of `y` into `y_out`: a batch's inputs
/// and targets. Checks both before writing either.
pub fn gather_batch(
    (x, y): (ArrayView2<'_, f32>, ArrayView2<'_, f32>),
    indices: &[u32],
    start: usize,
    (x_out, y_out): (&mut Array2<f32>, &mut Array2<f32>),
) -> Result<()> {
    gather_dims("gather_batch", x.dim(), indices, start, x_out.dim())?;
    gather_dims("gather_batch", y.dim(), indices, start, y_out.dim())?;
    gather_rows(x, indices, start, x_out)?;
    gather_rows(y, indices, start, y_out)
}
