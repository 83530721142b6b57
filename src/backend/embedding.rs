//! The embedding lookup's vocabulary, shared by both backends' kernels and the layer's input
//! check: which values name a row of the table, and the lookup's shapes.

use crate::error::{Error, Result};

/// The largest vocabulary an embedding may have: every index must be exact in `f32` (2²⁴),
/// as the inputs that carry them are.
pub const MAX_EMBEDDING_VOCAB: usize = 1 << 24;

/// The row of a table of `vocab` rows that `value` names: an integer in [0, vocab); `None`
/// for anything else (a fraction, a negative, NaN, infinity, or past the table's end).
pub fn embedding_index(value: f32, vocab: usize) -> Option<usize> {
    let integer = value.fract() == 0.0;
    (integer && value >= 0.0 && (value as f64) < vocab as f64).then_some(value as usize)
}

/// The checked shapes of one lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EmbeddingDims {
    pub rows: usize,
    /// Columns of the input, the index column among them.
    pub inputs: usize,
    /// The index column.
    pub column: usize,
    /// Rows of the table (0 where the caller gave no table: the input gradient alone).
    pub vocab: usize,
    /// Columns of the table.
    pub dim: usize,
    /// The table row that gets no gradient (PyTorch's `padding_idx`), if any.
    pub padding: Option<usize>,
}

impl EmbeddingDims {
    /// Columns of the output: the input's other columns, then the table's.
    pub fn outputs(self) -> usize {
        self.inputs - 1 + self.dim
    }
}

/// Checks a lookup: `x` (rows × inputs) with its index in column `column`, a table
/// (vocab × dim, vocab ≤ [`MAX_EMBEDDING_VOCAB`]) and an output of rows × (inputs − 1 + dim).
pub(crate) fn embedding_dims(
    op: &'static str,
    x: (usize, usize),
    column: usize,
    table: (usize, usize),
    out: (usize, usize),
) -> Result<EmbeddingDims> {
    let bad = |detail: String| Err(Error::Shape { op, detail });
    let (rows, inputs) = x;
    let (vocab, dim) = table;
    if column >= inputs {
        return bad(format!(
            "the index column is {column}, but x has {inputs} columns"
        ));
    }
    if vocab == 0 || dim == 0 || vocab > MAX_EMBEDDING_VOCAB {
        return bad(format!(
            "the table is {vocab}×{dim}: it needs at least one row and one column, and at \
             most {MAX_EMBEDDING_VOCAB} rows (indices exact in f32)"
        ));
    }
    let dims = EmbeddingDims {
        rows,
        inputs,
        column,
        vocab,
        dim,
        padding: None,
    };
    let outputs = (inputs - 1).checked_add(dim);
    if rows == 0 || outputs.is_none_or(|n| out != (rows, n)) {
        return bad(format!(
            "x is {rows}×{inputs} and the table {vocab}×{dim}, so the output must be \
             {rows}×{}, not {}×{}",
            dims.outputs(),
            out.0,
            out.1
        ));
    }
    Ok(dims)
}

/// Checks a lookup's backward pass: `grad_out` shaped as its output, the table's gradient
/// (when given) `vocab × dim` with the dim `grad_out` implies and its `padding` row inside
/// it, and the input's gradient (when given) shaped as `x`. Returns the dims (vocab 0
/// without a table gradient).
pub(crate) fn embedding_backward_dims(
    op: &'static str,
    x: (usize, usize),
    (column, padding): (usize, Option<usize>),
    grad_out: (usize, usize),
    table_grad: Option<(usize, usize)>,
    grad_in: Option<(usize, usize)>,
) -> Result<EmbeddingDims> {
    let bad = |detail: String| Err(Error::Shape { op, detail });
    let (rows, inputs) = x;
    if column >= inputs || grad_out.0 != rows || grad_out.1 < inputs {
        return bad(format!(
            "x is {rows}×{inputs} with its index in column {column}, so ∂loss/∂output must \
             be {rows}×(at least {inputs}), not {}×{}",
            grad_out.0, grad_out.1
        ));
    }
    let dim = grad_out.1 - (inputs - 1);
    let vocab = match table_grad {
        Some(table) => embedding_dims(op, x, column, table, grad_out)?.vocab,
        None => 0,
    };
    if let Some(p) = padding.filter(|&p| table_grad.is_some() && p >= vocab) {
        return bad(format!(
            "the padding row is {p}, but the table has {vocab} rows"
        ));
    }
    if let Some(grad_in) = grad_in
        && grad_in != x
    {
        return bad(format!(
            "∂loss/∂x must be shaped as x, {rows}×{inputs}, not {}×{}",
            grad_in.0, grad_in.1
        ));
    }
    Ok(EmbeddingDims {
        rows,
        inputs,
        column,
        vocab,
        dim,
        padding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_integers_inside_the_table() {
        for (value, index) in [
            (0.0, Some(0)),
            (-0.0, Some(0)),
            (4.0, Some(4)),
            (5.0, None),
            (1.5, None),
            (-1.0, None),
            (f32::NAN, None),
            (f32::INFINITY, None),
        ] {
            assert_eq!(embedding_index(value, 5), index, "{value}");
        }
        let top = (MAX_EMBEDDING_VOCAB - 1) as f32;
        assert_eq!(
            embedding_index(top, MAX_EMBEDDING_VOCAB),
            Some(MAX_EMBEDDING_VOCAB - 1)
        );
    }

    #[test]
    fn shapes_are_checked() {
        let ok = embedding_dims("e", (4, 3), 1, (10, 5), (4, 7)).unwrap();
        assert_eq!(ok.outputs(), 7);
        for (x, column, table, out) in [
            ((4, 3), 3, (10, 5), (4, 7)),
            ((4, 3), 1, (0, 5), (4, 7)),
            ((4, 3), 1, (10, 0), (4, 2)),
            ((4, 3), 1, (10, 5), (4, 6)),
            ((0, 3), 1, (10, 5), (0, 7)),
            ((4, 3), 1, (MAX_EMBEDDING_VOCAB + 1, 5), (4, 7)),
        ] {
            assert!(embedding_dims("e", x, column, table, out).is_err());
        }
        let column = (1, None);
        let back = embedding_backward_dims("e", (4, 3), column, (4, 7), None, Some((4, 3)));
        assert_eq!(back.map(|b| (b.dim, b.vocab)).ok(), Some((5, 0)));
        let table = Some((10, 5));
        assert!(embedding_backward_dims("e", (4, 3), (1, Some(9)), (4, 7), table, None).is_ok());
        assert!(embedding_backward_dims("e", (4, 3), (1, Some(10)), (4, 7), table, None).is_err());
        assert!(embedding_backward_dims("e", (4, 3), column, (4, 7), Some((10, 4)), None).is_err());
        assert!(embedding_backward_dims("e", (4, 3), column, (4, 2), None, None).is_err());
        assert!(embedding_backward_dims("e", (4, 3), column, (4, 7), None, Some((4, 2))).is_err());
    }
}
