//! `cpu::activation_backward`, `cpu::axpy` and `cpu::add`: the references for
//! `shaders/elementwise.wgsl`.

use ndarray::{Array2, ArrayView2, Zip};

use crate::backend::{Activation, same_shape};
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
