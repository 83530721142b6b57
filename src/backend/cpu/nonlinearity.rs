//! `cpu::nonlinearity` and `cpu::nonlinearity_backward`: the references for
//! `shaders/nonlinearity.wgsl`.

use ndarray::{Array2, ArrayView2, Zip};

use crate::backend::{Nonlinearity, same_shape};
use crate::error::Result;

/// `out ← f(x)`: the twin of `forward` in `shaders/nonlinearity.wgsl`.
pub fn nonlinearity(
    function: Nonlinearity,
    x: ArrayView2<'_, f32>,
    out: &mut Array2<f32>,
) -> Result<()> {
    same_shape("nonlinearity", x.dim(), out.dim())?;
    Zip::from(out)
        .and(x)
        .for_each(|o, &x| *o = function.apply(x));
    Ok(())
}

/// `grad_in ← grad_out · f'(x)`: the twin of `backward` in `shaders/nonlinearity.wgsl`.
pub fn nonlinearity_backward(
    function: Nonlinearity,
    x: ArrayView2<'_, f32>,
    grad_out: ArrayView2<'_, f32>,
    grad_in: &mut Array2<f32>,
) -> Result<()> {
    let op = "nonlinearity_backward";
    same_shape(op, x.dim(), grad_out.dim())?;
    same_shape(op, x.dim(), grad_in.dim())?;
    Zip::from(grad_in)
        .and(x)
        .and(grad_out)
        .for_each(|g, &x, &d| *g = d * function.derivative(x));
    Ok(())
}
