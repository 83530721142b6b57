//! `Matmul`: what one matrix product computes (transposes and the fused activation), and the
//! shape check both backends share.

use super::Activation;
use crate::error::{Dims, Error, Result};

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
    /// The output's shape, (M, N), for operands stored as `a` and `b` (unchecked: whether the
    /// inner dimensions agree is [`matmul_dims`]' question).
    pub fn output_shape(self, a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
        let m = if self.trans_a { a.1 } else { a.0 };
        let n = if self.trans_b { b.0 } else { b.1 };
        (m, n)
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
    if let Some(bias) = bias
        && bias != (1, n)
    {
        return Err(Error::Shape {
            op,
            detail: format!("bias is {}, expected {}", Dims(bias.0, bias.1), Dims(1, n)),
        });
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
