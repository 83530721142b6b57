//! The `Backend` trait: the few kernel-granularity ops every model needs, implemented twice.
//!
//! [`CpuBackend`](cpu::CpuBackend) is the reference (ndarray, written to be obviously correct)
//! and [`GpuBackend`](gpu::GpuBackend) runs WGSL compute shaders through wgpu. Both validate
//! shapes with the same helpers in this module, so they fail with the same errors.

pub mod cpu;
pub mod gpu;

use ndarray::{Array2, ArrayView2};

use crate::error::{Dims, Error, Result};

/// An elementwise nonlinearity, fused into the matmul epilogue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `x`
    #[default]
    Identity,
    /// `max(x, 0)`
    Relu,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// `tanh(x)`
    Tanh,
}

impl Activation {
    /// Every activation, for tests and tables.
    pub const ALL: [Activation; 4] = [
        Activation::Identity,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
    ];

    /// The activation applied to one value; the CPU backend's definition of truth.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
        }
    }

    /// The code the WGSL kernels use for this activation (their `ACTIVATION` override).
    pub(crate) fn shader_code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Sigmoid => 2,
            Activation::Tanh => 3,
        }
    }
}

/// Sigmoid that neither overflows nor loses precision for large |x|.
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// What a matmul computes: `act(op(A) · op(B) + bias)`, where `op` optionally transposes.
///
/// The three forms a backward pass needs are [`Matmul::nn`] (`A·B`), [`Matmul::nt`] (`A·Bᵀ`)
/// and [`Matmul::tn`] (`Aᵀ·B`); [`Matmul::tt`] completes the set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Matmul {
    /// Use `Aᵀ`: `a` is stored K×M.
    pub trans_a: bool,
    /// Use `Bᵀ`: `b` is stored N×K.
    pub trans_b: bool,
    /// Applied after the bias, element by element.
    pub activation: Activation,
}

impl Matmul {
    /// `A·B` with `A` M×K and `B` K×N.
    pub fn nn() -> Self {
        Self::default()
    }
    /// `A·Bᵀ` with `A` M×K and `B` N×K (input gradient of a linear layer).
    pub fn nt() -> Self {
        Self {
            trans_b: true,
            ..Self::default()
        }
    }
    /// `Aᵀ·B` with `A` K×M and `B` K×N (weight gradient of a linear layer).
    pub fn tn() -> Self {
        Self {
            trans_a: true,
            ..Self::default()
        }
    }
    /// `Aᵀ·Bᵀ` with `A` K×M and `B` N×K.
    pub fn tt() -> Self {
        Self {
            trans_a: true,
            trans_b: true,
            ..Self::default()
        }
    }
    /// The same product with `activation` fused into the epilogue.
    pub fn activation(self, activation: Activation) -> Self {
        Self { activation, ..self }
    }
}

/// The dimensions of one matmul, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    /// Rows of the output.
    pub m: usize,
    /// Columns of the output.
    pub n: usize,
    /// The contracted dimension.
    pub k: usize,
}

/// Checks that operands, bias and output fit `spec`, and returns M, N and K.
///
/// Shapes are (rows, cols) as stored. The bias, when present, is a 1×N row added to every row.
pub fn matmul_dims(
    spec: Matmul,
    a: (usize, usize),
    b: (usize, usize),
    bias: Option<(usize, usize)>,
    out: (usize, usize),
) -> Result<MatmulDims> {
    let op = "matmul";
    let (m, k) = if spec.trans_a { (a.1, a.0) } else { a };
    let (kb, n) = if spec.trans_b { (b.1, b.0) } else { b };
    let describe = || {
        format!(
            "a is {}{}, b is {}{}",
            Dims(a.0, a.1),
            if spec.trans_a { " (transposed)" } else { "" },
            Dims(b.0, b.1),
            if spec.trans_b { " (transposed)" } else { "" },
        )
    };
    if m == 0 || n == 0 || k == 0 {
        return Err(Error::Shape {
            op,
            detail: format!("empty operand: {}", describe()),
        });
    }
    if k != kb {
        return Err(Error::Shape {
            op,
            detail: format!("inner dimensions differ ({k} vs {kb}): {}", describe()),
        });
    }
    if let Some(bias) = bias {
        if bias != (1, n) {
            return Err(Error::Shape {
                op,
                detail: format!("bias is {}, expected {}", Dims(bias.0, bias.1), Dims(1, n)),
            });
        }
    }
    if out != (m, n) {
        return Err(Error::Shape {
            op,
            detail: format!(
                "output is {}, expected {} for {}",
                Dims(out.0, out.1),
                Dims(m, n),
                describe()
            ),
        });
    }
    Ok(MatmulDims { m, n, k })
}

/// A backend's 2-D matrix of `f32`, stored row-major.
pub trait Matrix {
    /// (rows, cols).
    fn shape(&self) -> (usize, usize);
}

/// The ops models and trainers are written against, at kernel granularity.
///
/// Every op exists on both backends under the same name; the CPU one is the oracle that the GPU
/// one is tested against.
pub trait Backend {
    /// Where this backend keeps a matrix.
    type Matrix: Matrix;

    /// A human-readable description: the backend and, for the GPU, the adapter.
    fn describe(&self) -> String;

    /// Copies a host array into a new backend matrix.
    fn upload(&self, host: ArrayView2<'_, f32>) -> Result<Self::Matrix>;

    /// Copies a backend matrix back to the host (waits for the GPU on the GPU backend).
    fn download(&self, matrix: &Self::Matrix) -> Result<Array2<f32>>;

    /// A new matrix of zeros.
    fn zeros(&self, rows: usize, cols: usize) -> Result<Self::Matrix>;

    /// `out ← act(op(a) · op(b) + bias)`, overwriting every element of `out`.
    fn matmul_into(
        &self,
        spec: Matmul,
        a: &Self::Matrix,
        b: &Self::Matrix,
        bias: Option<&Self::Matrix>,
        out: &mut Self::Matrix,
    ) -> Result<()>;

    /// `act(op(a) · op(b) + bias)` in a new matrix.
    fn matmul(
        &self,
        spec: Matmul,
        a: &Self::Matrix,
        b: &Self::Matrix,
        bias: Option<&Self::Matrix>,
    ) -> Result<Self::Matrix> {
        let (m, _) = if spec.trans_a {
            swap(a.shape())
        } else {
            a.shape()
        };
        let (_, n) = if spec.trans_b {
            swap(b.shape())
        } else {
            b.shape()
        };
        // Checked before allocating so a bad call does not cost a buffer.
        matmul_dims(spec, a.shape(), b.shape(), bias.map(Matrix::shape), (m, n))?;
        let mut out = self.zeros(m, n)?;
        self.matmul_into(spec, a, b, bias, &mut out)?;
        Ok(out)
    }
}

fn swap((r, c): (usize, usize)) -> (usize, usize) {
    (c, r)
}
