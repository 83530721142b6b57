//! `cpu::column_sum`, `cpu::sum_squares`, `cpu::dot`, `cpu::sum_abs` and `cpu::max_abs`: the
//! references for `shaders/reduce.wgsl`.

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

/// Σ x·y over every element of two matrices of one shape (each product in f32, as the
/// kernel forms it), accumulated in f64: the twin of `reduce_terms` with `TERM` x·y.
pub fn dot(x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> Result<f64> {
    crate::backend::same_shape("dot", x.dim(), y.dim())?;
    Ok(x.iter().zip(y).map(|(&a, &b)| f64::from(a * b)).sum())
}

/// Σ |x| over every element, accumulated in f64: the twin of `reduce_terms` with `TERM` |x|.
pub fn sum_abs(m: ArrayView2<'_, f32>) -> f64 {
    m.iter().map(|&v| f64::from(v.abs())).sum()
}

/// max |x| over every element (0 for none; NaN if any is NaN): the twin of `reduce_terms`
/// with `TERM` |x| and `COMBINE` max.
pub fn max_abs(m: ArrayView2<'_, f32>) -> f32 {
    m.iter().fold(0.0, |acc, &v| nan_max(acc, v.abs()))
}

/// The larger of two values, NaN where either is (`f32::max` would drop a NaN): the
/// kernel's `combine` for a maximum.
pub(crate) fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}
