//! `cpu::column_sum` and `cpu::sum_squares`: the references for `shaders/reduce.wgsl`.

use ndarray::{Array2, ArrayView2, Axis};

use crate::backend::column_sum_dims;
use crate::error::Result;

/// `out[0, c] ← Σ_r m[r, c]` (the bias gradient of a linear layer).
pub fn column_sum(m: ArrayView2<'_, f32>, out: &mut Array2<f32>) -> Result<()> {
    column_sum_dims(m.dim(), out.dim())?;
    out.row_mut(0).assign(&m.sum_axis(Axis(0)));
    Ok(())
}

/// Σ x² over every element, accumulated in f64.
pub fn sum_squares(m: ArrayView2<'_, f32>) -> f64 {
    m.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}
