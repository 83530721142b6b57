//! `cpu::matmul`: the reference for `shaders/matmul.wgsl`.

use ndarray::{Array2, ArrayView2, Axis};

use crate::backend::{Matmul, matmul_dims};
use crate::error::Result;

/// `out ← act(op(a) · op(b) + bias)`: the CPU twin of `shaders/matmul.wgsl`.
///
/// `bias` is a 1×N row added to every row of the product before the activation.
pub fn matmul(
    spec: Matmul,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    bias: Option<ArrayView2<'_, f32>>,
    out: &mut Array2<f32>,
) -> Result<()> {
    matmul_dims(spec, a.dim(), b.dim(), bias.map(|v| v.dim()), out.dim())?;
    let a = if spec.trans_a { a.t() } else { a };
    let b = if spec.trans_b { b.t() } else { b };
    out.assign(&a.dot(&b));
    if let Some(bias) = bias {
        // `bias` is 1×N and broadcasts over the rows.
        *out += &bias.index_axis(Axis(0), 0);
    }
    let activation = spec.activation;
    out.mapv_inplace(|x| activation.apply(x));
    Ok(())
}
