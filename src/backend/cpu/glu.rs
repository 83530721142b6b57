//! `cpu::glu` and `cpu::glu_backward`: the references for `shaders/glu.wgsl`.

use ndarray::{Array2, ArrayView2};

use crate::backend::{glu_dims, sigmoid};
use crate::error::Result;

/// `out[r, j] ← a · σ(b)` with `a = x[r, j]` and `b = x[r, half + j]` (PyTorch's `nn.GLU`
/// over the last dimension): the twin of `forward` in `shaders/glu.wgsl`.
pub fn glu(x: ArrayView2<'_, f32>, out: &mut Array2<f32>) -> Result<()> {
    let half = glu_dims("glu", x.dim(), out.dim())?;
    for ((r, j), y) in out.indexed_iter_mut() {
        *y = x[[r, j]] * sigmoid(x[[r, half + j]]);
    }
    Ok(())
}

/// `grad_in[r, j] ← σ(b) · g` and `grad_in[r, half + j] ← (1 − σ(b)) · σ(b) · a · g` with
/// `g = grad_out[r, j]`: the twin of `backward` in `shaders/glu.wgsl`.
pub fn glu_backward(
    x: ArrayView2<'_, f32>,
    grad_out: ArrayView2<'_, f32>,
    grad_in: &mut Array2<f32>,
) -> Result<()> {
    let op = "glu_backward";
    let half = glu_dims(op, x.dim(), grad_out.dim())?;
    crate::backend::same_shape(op, x.dim(), grad_in.dim())?;
    for ((r, j), &g) in grad_out.indexed_iter() {
        let (a, s) = (x[[r, j]], sigmoid(x[[r, half + j]]));
        grad_in[[r, j]] = s * g;
        grad_in[[r, half + j]] = (1.0 - s) * s * a * g;
    }
    Ok(())
}
