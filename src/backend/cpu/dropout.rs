//! `cpu::dropout` and `cpu::dropout_backward`: the references for `shaders/dropout.wgsl`.

use ndarray::{Array2, ArrayView2, Zip};

use crate::backend::{DropoutDraw, same_shape};
use crate::error::{Error, Result};

/// `mask ← draw` (0 or 1/(1 − p) per element, from the element's row-major index) and
/// `out ← x ⊙ mask`: the twin of `forward` in `shaders/dropout.wgsl`.
pub fn dropout(
    draw: DropoutDraw,
    x: ArrayView2<'_, f32>,
    mask: &mut Array2<f32>,
    out: &mut Array2<f32>,
) -> Result<()> {
    let op = "dropout";
    draw.validate(op)?;
    same_shape(op, x.dim(), mask.dim())?;
    same_shape(op, x.dim(), out.dim())?;
    let cols = x.ncols();
    u32::try_from(x.len()).map_err(|_| Error::Shape {
        op,
        detail: format!("{} elements do not fit the draw's 32-bit index", x.len()),
    })?;
    for ((r, c), m) in mask.indexed_iter_mut() {
        *m = draw.mask((r * cols + c) as u32);
    }
    Zip::from(out)
        .and(x)
        .and(&*mask)
        .for_each(|o, &x, &m| *o = x * m);
    Ok(())
}

/// `grad_in ← grad_out ⊙ mask`: the twin of `backward` in `shaders/dropout.wgsl`.
pub fn dropout_backward(
    grad_out: ArrayView2<'_, f32>,
    mask: ArrayView2<'_, f32>,
    grad_in: &mut Array2<f32>,
) -> Result<()> {
    same_shape("dropout_backward", grad_out.dim(), mask.dim())?;
    same_shape("dropout_backward", grad_out.dim(), grad_in.dim())?;
    Zip::from(grad_in)
        .and(grad_out)
        .and(mask)
        .for_each(|g, &d, &m| *g = d * m);
    Ok(())
}
