//! Shape checks of the normalisation layers' ops (layer, RMS and batch norms), shared by both
//! backends and run before any allocation or dispatch, as `shapes.rs`'s are.

use crate::error::{Dims, Error, Result};

/// A layer norm over `x` (rows × cols): γ (and β) are 1 × cols, the statistics rows × 2, and
/// `eps` is finite and > 0.
pub(crate) fn layer_norm_dims(
    op: &'static str,
    x: (usize, usize),
    gamma: (usize, usize),
    stats: (usize, usize),
    eps: f32,
) -> Result<()> {
    let bad = |detail: String| Err(Error::Shape { op, detail });
    if x.0 == 0 || x.1 == 0 {
        return bad(format!("empty input {}", Dims(x.0, x.1)));
    }
    if gamma != (1, x.1) {
        return bad(format!(
            "the gain (or shift) is {}, expected {} for input {}",
            Dims(gamma.0, gamma.1),
            Dims(1, x.1),
            Dims(x.0, x.1)
        ));
    }
    if stats != (x.0, 2) {
        return bad(format!(
            "the statistics are {}, expected {}",
            Dims(stats.0, stats.1),
            Dims(x.0, 2)
        ));
    }
    if !(eps.is_finite() && eps > 0.0) {
        return bad(format!("eps = {eps}: it must be finite and > 0"));
    }
    Ok(())
}

/// A batch norm's shapes: a non-empty `x` and every per-feature vector `1 × cols`; `eps`
/// finite and > 0.
pub(crate) fn batch_norm_dims(
    op: &'static str,
    x: (usize, usize),
    vectors: &[(usize, usize)],
    eps: f32,
) -> Result<()> {
    let bad = |detail: String| Err(Error::Shape { op, detail });
    if x.0 == 0 || x.1 == 0 {
        return bad(format!("empty input {}", Dims(x.0, x.1)));
    }
    if let Some(v) = vectors.iter().find(|&&v| v != (1, x.1)) {
        return bad(format!(
            "a per-feature vector is {}, expected {} for input {}",
            Dims(v.0, v.1),
            Dims(1, x.1),
            Dims(x.0, x.1)
        ));
    }
    if !(eps.is_finite() && eps > 0.0) {
        return bad(format!("eps = {eps}: it must be finite and > 0"));
    }
    Ok(())
}

/// A batch's statistics need two rows at least (PyTorch's "expected more than 1 value per
/// channel when training").
pub(crate) fn batch_rows(op: &'static str, rows: usize) -> Result<()> {
    match rows {
        0 | 1 => Err(Error::Shape {
            op,
            detail: format!(
                "a batch of {rows} row has no variance across it: batch norm trains on \
                 batches of 2 rows or more"
            ),
        }),
        _ => Ok(()),
    }
}
