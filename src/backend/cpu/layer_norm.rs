//! `cpu::layer_norm`, `cpu::layer_norm_backward`, `cpu::rms_norm` and
//! `cpu::rms_norm_backward`: the references for `shaders/layer_norm.wgsl` (the last two for its
//! kernels with `CENTERED` off, as `centered` is false here).

use ndarray::{Array2, ArrayView2};

use crate::backend::{layer_norm_dims, same_shape};
use crate::error::Result;

/// `out ← (x − mean) / σ · γ + β` per row (biased variance, σ = √(var + eps)), with
/// (mean, 1/σ) of each row into `stats` (rows × 2): the twin of `forward` in
/// `shaders/layer_norm.wgsl`.
pub fn layer_norm(
    x: ArrayView2<'_, f32>,
    gamma: ArrayView2<'_, f32>,
    beta: ArrayView2<'_, f32>,
    eps: f32,
    stats: &mut Array2<f32>,
    out: &mut Array2<f32>,
) -> Result<()> {
    let op = "layer_norm";
    layer_norm_dims(op, x.dim(), gamma.dim(), stats.dim(), eps)?;
    layer_norm_dims(op, out.dim(), beta.dim(), stats.dim(), eps)?;
    forward(x, gamma, Some(beta), eps, stats, out);
    Ok(())
}

/// `out ← x / σ · γ` per row, σ = √(Σx²/n + eps) (PyTorch's `nn.RMSNorm`), with (0, 1/σ) of
/// each row into `stats` (rows × 2): the twin of `forward` in `shaders/layer_norm.wgsl` without
/// `CENTERED`.
pub fn rms_norm(
    x: ArrayView2<'_, f32>,
    gamma: ArrayView2<'_, f32>,
    eps: f32,
    stats: &mut Array2<f32>,
    out: &mut Array2<f32>,
) -> Result<()> {
    let op = "rms_norm";
    layer_norm_dims(op, x.dim(), gamma.dim(), stats.dim(), eps)?;
    same_shape(op, x.dim(), out.dim())?;
    forward(x, gamma, None, eps, stats, out);
    Ok(())
}

/// Both forward passes, on checked shapes: centred and shifted by β where it is given.
fn forward(
    x: ArrayView2<'_, f32>,
    gamma: ArrayView2<'_, f32>,
    beta: Option<ArrayView2<'_, f32>>,
    eps: f32,
    stats: &mut Array2<f32>,
    out: &mut Array2<f32>,
) {
    let n = x.ncols() as f32;
    for (r, row) in x.rows().into_iter().enumerate() {
        let mean = match beta {
            Some(_) => row.sum() / n,
            None => 0.0,
        };
        let variance = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let rstd = 1.0 / (variance + eps).sqrt();
        for (c, &v) in row.iter().enumerate() {
            let y = (v - mean) * rstd * gamma[[0, c]];
            out[[r, c]] = beta.map_or(y, |beta| y + beta[[0, c]]);
        }
        stats[[r, 0]] = mean;
        stats[[r, 1]] = rstd;
    }
}

/// `grad_in ← (h − Σh/n − x̂ · Σ(h·x̂)/n) / σ` with `h = g · γ`, and `prod ← g ⊙ x̂`, from the
/// forward pass's `stats`: the twin of `backward` in `shaders/layer_norm.wgsl`.
pub fn layer_norm_backward(
    x: ArrayView2<'_, f32>,
    gamma: ArrayView2<'_, f32>,
    grad_out: ArrayView2<'_, f32>,
    stats: ArrayView2<'_, f32>,
    grad_in: &mut Array2<f32>,
    prod: &mut Array2<f32>,
) -> Result<()> {
    let op = "layer_norm_backward";
    check_backward(op, x, gamma, grad_out, stats, (grad_in, prod))?;
    backward(true, x, gamma, grad_out, stats, (grad_in, prod));
    Ok(())
}

/// `grad_in ← (h − x̂ · Σ(h·x̂)/n) / σ` with `h = g · γ` and `x̂ = x / σ`, and `prod ← g ⊙ x̂`,
/// from the forward pass's `stats`: the twin of `backward` in `shaders/layer_norm.wgsl`
/// without `CENTERED`.
pub fn rms_norm_backward(
    x: ArrayView2<'_, f32>,
    gamma: ArrayView2<'_, f32>,
    grad_out: ArrayView2<'_, f32>,
    stats: ArrayView2<'_, f32>,
    grad_in: &mut Array2<f32>,
    prod: &mut Array2<f32>,
) -> Result<()> {
    let op = "rms_norm_backward";
    check_backward(op, x, gamma, grad_out, stats, (grad_in, prod))?;
    backward(false, x, gamma, grad_out, stats, (grad_in, prod));
    Ok(())
}

/// The backward passes' shapes: the forward's, and `grad_out`, `grad_in` and `prod` as `x`.
fn check_backward(
    op: &'static str,
    x: ArrayView2<'_, f32>,
    gamma: ArrayView2<'_, f32>,
    grad_out: ArrayView2<'_, f32>,
    stats: ArrayView2<'_, f32>,
    (grad_in, prod): (&Array2<f32>, &Array2<f32>),
) -> Result<()> {
    layer_norm_dims(op, x.dim(), gamma.dim(), stats.dim(), 1.0)?;
    same_shape(op, x.dim(), grad_out.dim())?;
    same_shape(op, x.dim(), grad_in.dim())?;
    same_shape(op, x.dim(), prod.dim())
}

/// Both backward passes, on checked shapes: with the Σh/n term where `centered`.
fn backward(
    centered: bool,
    x: ArrayView2<'_, f32>,
    gamma: ArrayView2<'_, f32>,
    grad_out: ArrayView2<'_, f32>,
    stats: ArrayView2<'_, f32>,
    (grad_in, prod): (&mut Array2<f32>, &mut Array2<f32>),
) {
    let n = x.ncols() as f32;
    for r in 0..x.nrows() {
        let (mean, rstd) = (stats[[r, 0]], stats[[r, 1]]);
        let xhat = |c: usize| (x[[r, c]] - mean) * rstd;
        let (mut sum_h, mut sum_hx) = (0.0f32, 0.0f32);
        for c in 0..x.ncols() {
            let h = grad_out[[r, c]] * gamma[[0, c]];
            sum_h += h;
            sum_hx += h * xhat(c);
        }
        let (mean_h, mean_hx) = (sum_h / n, sum_hx / n);
        for c in 0..x.ncols() {
            let g = grad_out[[r, c]];
            let h = g * gamma[[0, c]];
            let centred = if centered { h - mean_h } else { h };
            grad_in[[r, c]] = (centred - xhat(c) * mean_hx) * rstd;
            prod[[r, c]] = g * xhat(c);
        }
    }
}
