//! `cpu::batch_norm_stats`, `cpu::batch_norm` and `cpu::batch_norm_backward`: the references
//! for `shaders/batch_norm.wgsl`, in its order (each column's rows in order, in f32).

use ndarray::{Array2, ArrayView2};

use crate::backend::batch_norm_dims;
use crate::error::Result;

/// Each column's mean, biased variance and unbiased variance over the batch's rows (at least
/// 2): the twin of `stats`.
pub fn batch_norm_stats(
    x: ArrayView2<'_, f32>,
    mean: &mut Array2<f32>,
    var: &mut Array2<f32>,
    unbiased: &mut Array2<f32>,
) -> Result<()> {
    let op = "batch_norm_stats";
    batch_norm_dims(op, x.dim(), &[mean.dim(), var.dim(), unbiased.dim()], 1.0)?;
    crate::backend::batch_rows(op, x.nrows())?;
    let n = x.nrows() as f32;
    for (c, column) in x.columns().into_iter().enumerate() {
        let m = column.iter().fold(0.0f32, |s, &v| s + v) / n;
        let squares = column.iter().fold(0.0f32, |s, &v| s + (v - m) * (v - m));
        mean[[0, c]] = m;
        var[[0, c]] = squares / n;
        unbiased[[0, c]] = squares / (n - 1.0);
    }
    Ok(())
}

/// `out ← (x − mean) / √(var + eps) · γ + β` per column: the twin of `normalize`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: ArrayView2<'_, f32>,
    mean: ArrayView2<'_, f32>,
    var: ArrayView2<'_, f32>,
    gamma: ArrayView2<'_, f32>,
    beta: ArrayView2<'_, f32>,
    eps: f32,
    out: &mut Array2<f32>,
) -> Result<()> {
    let op = "batch_norm";
    batch_norm_dims(
        op,
        x.dim(),
        &[mean.dim(), var.dim(), gamma.dim(), beta.dim()],
        eps,
    )?;
    crate::backend::same_shape(op, x.dim(), out.dim())?;
    for c in 0..x.ncols() {
        let (m, s) = (mean[[0, c]], 1.0 / (var[[0, c]] + eps).sqrt());
        let (g, b) = (gamma[[0, c]], beta[[0, c]]);
        for r in 0..x.nrows() {
            out[[r, c]] = (x[[r, c]] - m) * s * g + b;
        }
    }
    Ok(())
}

/// The backward pass of [`batch_norm`] with the batch's own statistics: `dgamma ← Σ dy · x̂`,
/// `dbeta ← Σ dy`, and, when asked, `dx ← γ/σ · (dy − Σdy/n − x̂ · Σ(dy · x̂)/n)`: the twin of
/// `backward_sums` and `backward_input`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    x: ArrayView2<'_, f32>,
    mean: ArrayView2<'_, f32>,
    var: ArrayView2<'_, f32>,
    gamma: ArrayView2<'_, f32>,
    eps: f32,
    dy: ArrayView2<'_, f32>,
    (dgamma, dbeta): (&mut Array2<f32>, &mut Array2<f32>),
    dx: Option<&mut Array2<f32>>,
) -> Result<()> {
    let op = "batch_norm_backward";
    let vectors = [
        mean.dim(),
        var.dim(),
        gamma.dim(),
        dgamma.dim(),
        dbeta.dim(),
    ];
    batch_norm_dims(op, x.dim(), &vectors, eps)?;
    crate::backend::same_shape(op, x.dim(), dy.dim())?;
    if let Some(dx) = &dx {
        crate::backend::same_shape(op, x.dim(), dx.dim())?;
    }
    let n = x.nrows() as f32;
    let mut dx = dx;
    for c in 0..x.ncols() {
        let (m, s) = (mean[[0, c]], 1.0 / (var[[0, c]] + eps).sqrt());
        let xhat = |r: usize| (x[[r, c]] - m) * s;
        let (mut sum_dy, mut sum_dy_xhat) = (0.0f32, 0.0f32);
        for r in 0..x.nrows() {
            sum_dy += dy[[r, c]];
            sum_dy_xhat += dy[[r, c]] * xhat(r);
        }
        dbeta[[0, c]] = sum_dy;
        dgamma[[0, c]] = sum_dy_xhat;
        if let Some(dx) = dx.as_deref_mut() {
            let scale = gamma[[0, c]] * s;
            let (mean_dy, mean_dy_xhat) = (sum_dy / n, sum_dy_xhat / n);
            for r in 0..x.nrows() {
                dx[[r, c]] = scale * (dy[[r, c]] - mean_dy - xhat(r) * mean_dy_xhat);
            }
        }
    }
    Ok(())
}
