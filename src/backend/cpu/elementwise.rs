//! `cpu::activation_backward`, `cpu::axpy`, `cpu::lerp`, `cpu::scale` and `cpu::add`: the
//! references for `shaders/elementwise.wgsl`.

use ndarray::{Array2, ArrayView2, Zip};

use crate::backend::{Activation, check_lerp_weight, same_shape};
use crate::error::Result;

/// `grad ← grad · act'(output)`, where `output` is what the activation produced in the forward
/// pass: the twin of `activation_backward` in `shaders/elementwise.wgsl`.
pub fn activation_backward(
    activation: Activation,
    output: ArrayView2<'_, f32>,
    grad: &mut Array2<f32>,
) -> Result<()> {
    same_shape("activation_backward", output.dim(), grad.dim())?;
    Zip::from(grad)
        .and(output)
        .for_each(|g, &a| *g *= activation.derivative_from_output(a));
    Ok(())
}

/// `y ← y + alpha · x`: the twin of `axpy` in `shaders/elementwise.wgsl`.
pub fn axpy(alpha: f32, x: ArrayView2<'_, f32>, y: &mut Array2<f32>) -> Result<()> {
    same_shape("axpy", x.dim(), y.dim())?;
    Zip::from(y).and(x).for_each(|y, &x| *y += alpha * x);
    Ok(())
}

/// `y ← alpha · x`: the twin of `scale` in `shaders/elementwise.wgsl`.
pub fn scale(alpha: f32, x: ArrayView2<'_, f32>, y: &mut Array2<f32>) -> Result<()> {
    same_shape("scale", x.dim(), y.dim())?;
    Zip::from(y).and(x).for_each(|y, &x| *y = alpha * x);
    Ok(())
}

/// `y ← lerp(y, end, weight)`, PyTorch's `torch.lerp`: `y + weight · (end − y)` where
/// |weight| < 0.5, else `end − (end − y) · (1 − weight)` (each form exact at its own end): the
/// twin of `lerp` in `shaders/elementwise.wgsl`.
pub fn lerp(weight: f32, end: ArrayView2<'_, f32>, y: &mut Array2<f32>) -> Result<()> {
    check_lerp_weight(weight)?;
    same_shape("lerp", end.dim(), y.dim())?;
    let small = weight.abs() < 0.5;
    Zip::from(y).and(end).for_each(|y, &end| {
        *y = match small {
            true => *y + weight * (end - *y),
            false => end - (end - *y) * (1.0 - weight),
        }
    });
    Ok(())
}

/// `out ← a + b`: the twin of `add` in `shaders/elementwise.wgsl`.
pub fn add(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, out: &mut Array2<f32>) -> Result<()> {
    same_shape("add", a.dim(), out.dim())?;
    same_shape("add", b.dim(), out.dim())?;
    Zip::from(out)
        .and(a)
        .and(b)
        .for_each(|o, &a, &b| *o = a + b);
    Ok(())
}
