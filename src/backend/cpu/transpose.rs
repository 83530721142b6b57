//! `cpu::transpose`: the reference for `shaders/transpose.wgsl`.

use ndarray::{Array2, ArrayView2};

use crate::backend::transpose_dims;
use crate::error::Result;

/// `out ← srcᵀ`; `out` must be `cols × rows` of the `rows × cols` source.
pub fn transpose(src: ArrayView2<'_, f32>, out: &mut Array2<f32>) -> Result<()> {
    transpose_dims("transpose", src.dim(), out.dim())?;
    out.assign(&src.t());
    Ok(())
}
