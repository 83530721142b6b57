//! The reference backend: plain ndarray, written to be obviously correct; the oracle for the GPU.

use ndarray::{Array2, ArrayView2, Axis};

use super::{Backend, Matmul, Matrix, matmul_dims};
use crate::error::Result;

/// Computes every op on the host with ndarray.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl Matrix for Array2<f32> {
    fn shape(&self) -> (usize, usize) {
        self.dim()
    }
}

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

impl Backend for CpuBackend {
    type Matrix = Array2<f32>;

    fn describe(&self) -> String {
        "cpu (ndarray)".to_string()
    }

    fn upload(&self, host: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        Ok(host.to_owned())
    }

    fn download(&self, matrix: &Array2<f32>) -> Result<Array2<f32>> {
        Ok(matrix.clone())
    }

    fn zeros(&self, rows: usize, cols: usize) -> Result<Array2<f32>> {
        Ok(Array2::zeros((rows, cols)))
    }

    fn matmul_into(
        &self,
        spec: Matmul,
        a: &Array2<f32>,
        b: &Array2<f32>,
        bias: Option<&Array2<f32>>,
        out: &mut Array2<f32>,
    ) -> Result<()> {
        matmul(spec, a.view(), b.view(), bias.map(|v| v.view()), out)
    }
}
