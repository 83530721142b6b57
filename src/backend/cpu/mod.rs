//! The reference backend: plain ndarray and loops, written to be obviously correct; the oracle
//! every GPU kernel is tested against. Each op has the name of its GPU twin.

mod matmul;
mod optim;

pub use matmul::matmul;
pub use optim::CpuOptimizer;

use ndarray::{Array2, ArrayView2};

use super::{Backend, Matmul, Matrix};
use crate::error::Result;

/// Computes every op on the host with ndarray.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl Matrix for Array2<f32> {
    fn shape(&self) -> (usize, usize) {
        self.dim()
    }
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
