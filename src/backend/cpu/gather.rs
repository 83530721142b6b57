//! `cpu::gather_rows`: the reference for `shaders/gather.wgsl`.

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
    gather_dims(src.dim(), indices, start, out.dim())?;
    for (r, mut row) in out.rows_mut().into_iter().enumerate() {
        row.assign(&src.row(indices[start + r] as usize));
    }
    Ok(())
}
