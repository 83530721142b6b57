//! Shape checks shared by both backends, run before any allocation or dispatch so that both
//! fail alike and a rejected call changes nothing.

use crate::error::{Dims, Error, Result};

/// Operands of an elementwise op must have one shape.
pub(crate) fn same_shape(op: &'static str, a: (usize, usize), b: (usize, usize)) -> Result<()> {
    if a != b {
        return Err(Error::Shape {
            op,
            detail: format!("operands are {} and {}", Dims(a.0, a.1), Dims(b.0, b.1)),
        });
    }
    Ok(())
}

/// The fused backward product `(op(a)·op(b)) ⊙ act'(output)`: its own activation is identity
/// (the derivative is the epilogue) and `output` is shaped as `out`. The product's shapes are
/// `matmul_dims`'.
pub(crate) fn fused_backward_dims(
    spec: super::Matmul,
    output: (usize, usize),
    out: (usize, usize),
) -> Result<()> {
    let op = "matmul_activation_backward";
    if spec.activation != super::Activation::Identity {
        return Err(Error::Shape {
            op,
            detail: format!(
                "the product's own activation must be identity, not {:?}",
                spec.activation
            ),
        });
    }
    same_shape(op, output, out)
}

/// A linear layer's parameter gradients fit δ (`delta`, batch × outputs) and the layer's input:
/// the weight gradient is δᵀ · input's shape, the bias gradient 1 × outputs.
pub(crate) fn linear_grads_dims(
    delta: (usize, usize),
    input: (usize, usize),
    (weight_grad, bias_grad): ((usize, usize), (usize, usize)),
) -> Result<()> {
    super::matmul_dims(super::Matmul::tn(), delta, input, None, weight_grad)?;
    column_sum_dims(delta, bias_grad)
}

/// A linear layer's backward pass fits: `delta` is batch × outputs, `input` batch × inputs,
/// `weight` and its gradient outputs × inputs, the bias gradient 1 × outputs, and the layer
/// below's output and gradient (when given) batch × inputs.
pub(crate) fn linear_backward_dims(
    delta: (usize, usize),
    input: (usize, usize),
    weight: (usize, usize),
    (weight_grad, bias_grad): ((usize, usize), (usize, usize)),
    below: Option<((usize, usize), (usize, usize))>,
) -> Result<()> {
    let op = "linear_backward";
    let ((batch, outputs), inputs) = (delta, input.1);
    let expected = [
        ("input", input, (batch, inputs)),
        ("weight", weight, (outputs, inputs)),
        ("weight gradient", weight_grad, (outputs, inputs)),
        ("bias gradient", bias_grad, (1, outputs)),
    ];
    let below = below.map(|(output, grad)| {
        [
            ("output below", output, (batch, inputs)),
            ("gradient below", grad, (batch, inputs)),
        ]
    });
    for (what, actual, wanted) in expected.into_iter().chain(below.into_iter().flatten()) {
        if actual != wanted {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "{what} is {}, expected {} for δ of {}",
                    Dims(actual.0, actual.1),
                    Dims(wanted.0, wanted.1),
                    Dims(batch, outputs)
                ),
            });
        }
    }
    if batch == 0 || outputs == 0 || inputs == 0 {
        return Err(Error::Shape {
            op,
            detail: format!(
                "empty operand: δ is {}, the input {}",
                Dims(batch, outputs),
                Dims(input.0, input.1)
            ),
        });
    }
    Ok(())
}

/// A chain of linear layers fits: at least one link, one output per link, and link `l`'s
/// weight `outputs × inputs` (its inputs the previous width: the input's columns for the
/// first), its bias `1 × outputs` and its output `rows × outputs`, none of them empty.
pub(crate) fn linear_chain_dims(
    input: (usize, usize),
    links: impl ExactSizeIterator<Item = ((usize, usize), (usize, usize))>,
    outputs: impl ExactSizeIterator<Item = (usize, usize)>,
) -> Result<()> {
    let op = "linear_chain";
    let bad = |detail: String| Err(Error::Shape { op, detail });
    if links.len() == 0 || links.len() != outputs.len() {
        return bad(format!(
            "{} links and {} outputs: give one output per link, at least one",
            links.len(),
            outputs.len()
        ));
    }
    let (rows, mut width) = input;
    if rows == 0 || width == 0 {
        return bad(format!("empty input: {}", Dims(rows, width)));
    }
    for (l, ((weight, bias), out)) in links.zip(outputs).enumerate() {
        let features = weight.0;
        let expected = [
            ("weight", weight, (features, width)),
            ("bias", bias, (1, features)),
            ("output", out, (rows, features)),
        ];
        for (what, actual, wanted) in expected {
            if actual != wanted || features == 0 {
                return bad(format!(
                    "link {l}'s {what} is {}, expected {} after an input of {}",
                    Dims(actual.0, actual.1),
                    Dims(wanted.0, wanted.1),
                    Dims(rows, width)
                ));
            }
        }
        width = features;
    }
    Ok(())
}

/// `out` is the transpose's shape: `cols × rows` of a `rows × cols` source.
pub(crate) fn transpose_dims(
    op: &'static str,
    src: (usize, usize),
    out: (usize, usize),
) -> Result<()> {
    if out != (src.1, src.0) {
        return Err(Error::Shape {
            op,
            detail: format!(
                "source is {}, so the output must be {}, not {}",
                Dims(src.0, src.1),
                Dims(src.1, src.0),
                Dims(out.0, out.1)
            ),
        });
    }
    Ok(())
}

/// `out` gathers rows `indices[start..start + out.rows]` of `src`: the widths agree, the index
/// range exists and every index names a row of `src`.
pub(crate) fn gather_dims(
    op: &'static str,
    src: (usize, usize),
    indices: &[u32],
    start: usize,
    out: (usize, usize),
) -> Result<()> {
    if src.1 != out.1 {
        return Err(Error::Shape {
            op,
            detail: format!(
                "source is {}, output is {}: widths differ",
                Dims(src.0, src.1),
                Dims(out.0, out.1)
            ),
        });
    }
    let Some(range) = indices.get(start..start.saturating_add(out.0)) else {
        return Err(Error::Shape {
            op,
            detail: format!(
                "rows {start}..{} of an index list of {}",
                start.saturating_add(out.0),
                indices.len()
            ),
        });
    };
    if let Some(bad) = range.iter().find(|&&i| i as usize >= src.0) {
        return Err(Error::Shape {
            op,
            detail: format!("index {bad} is out of range for a source of {} rows", src.0),
        });
    }
    Ok(())
}

/// The (inputs, targets) shapes of one shard of a dataset.
pub(crate) type ShardDims = ((usize, usize), (usize, usize));

/// A batch gathered from a dataset held in shards: `shards` are the (x, y) shapes of each,
/// holding the data's rows in order (x and y of a shard have the same rows, and the widths of
/// `x_out` and `y_out`), and `indices[start..]` pick `x_out`'s rows among all of them. Returns
/// the rows of all shards together.
pub(crate) fn gather_batch_dims(
    op: &'static str,
    shards: impl IntoIterator<Item = ShardDims>,
    indices: &[u32],
    start: usize,
    (x_out, y_out): ((usize, usize), (usize, usize)),
) -> Result<usize> {
    let mut rows = 0usize;
    let mut count = 0;
    for (i, (x, y)) in shards.into_iter().enumerate() {
        count += 1;
        if x.0 != y.0 || x.1 != x_out.1 || y.1 != y_out.1 {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "source {i} is {} and {}, the outputs {} and {}: a source's inputs and \
                     targets have the same rows, and the outputs' widths",
                    Dims(x.0, x.1),
                    Dims(y.0, y.1),
                    Dims(x_out.0, x_out.1),
                    Dims(y_out.0, y_out.1)
                ),
            });
        }
        rows = rows.saturating_add(x.0);
    }
    if count == 0 {
        return Err(Error::Shape {
            op,
            detail: "no source to gather from".into(),
        });
    }
    gather_dims(op, (rows, x_out.1), indices, start, x_out)?;
    gather_dims(op, (rows, y_out.1), indices, start, y_out)?;
    Ok(rows)
}

/// `x` holds each row's two halves, and `half` (its output, or the output's gradient) is
/// `rows × cols/2` of it: a gated linear unit's shapes. Returns the half width.
pub(crate) fn glu_dims(op: &'static str, x: (usize, usize), half: (usize, usize)) -> Result<usize> {
    if !x.1.is_multiple_of(2) || half != (x.0, x.1 / 2) {
        return Err(Error::Shape {
            op,
            detail: format!(
                "input {} (an even number of columns: two halves) against output {}: the \
                 output must be {}",
                Dims(x.0, x.1),
                Dims(half.0, half.1),
                Dims(x.0, x.1 / 2)
            ),
        });
    }
    Ok(x.1 / 2)
}

/// `out` is the 1×cols row of column sums of `m`.
pub(crate) fn column_sum_dims(m: (usize, usize), out: (usize, usize)) -> Result<()> {
    if out != (1, m.1) {
        return Err(Error::Shape {
            op: "column_sum",
            detail: format!(
                "output is {}, expected {} for an input of {}",
                Dims(out.0, out.1),
                Dims(1, m.1),
                Dims(m.0, m.1)
            ),
        });
    }
    Ok(())
}

/// `slots` consecutive entries starting at `slot` exist in a `totals` row.
pub(crate) fn totals_dims(
    op: &'static str,
    totals: (usize, usize),
    slot: usize,
    slots: usize,
) -> Result<()> {
    let end = slot.checked_add(slots);
    if totals.0 != 1 || end.is_none_or(|end| end > totals.1) {
        return Err(Error::Shape {
            op,
            detail: format!(
                "totals are {}, need a 1×n row with {slots} entries from slot {slot}",
                Dims(totals.0, totals.1),
            ),
        });
    }
    Ok(())
}

/// The arena has the tensors' total length.
pub(crate) fn arena_len(op: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected != actual {
        return Err(Error::Length {
            op,
            expected,
            actual,
        });
    }
    Ok(())
}

/// A `lerp` weight is finite (a NaN or infinite one would poison every element it touches).
pub(crate) fn check_lerp_weight(weight: f32) -> Result<()> {
    match weight.is_finite() {
        true => Ok(()),
        false => Err(Error::Shape {
            op: "lerp",
            detail: format!("the weight is {weight}; it must be finite"),
        }),
    }
}
