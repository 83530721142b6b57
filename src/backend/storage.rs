//! What the ops work on: a backend's matrices and its arenas of tensors.

use crate::error::{Error, Result};

/// A backend's 2-D matrix of `f32`, stored row-major.
pub trait Matrix {
    /// (rows, cols).
    fn shape(&self) -> (usize, usize);
}

/// Every parameter (or gradient) tensor of a model, in one allocation where the backend can.
///
/// On the GPU the tensors are views into one buffer, so one optimizer dispatch updates all of
/// them; on the CPU each is its own array.
pub trait Arena {
    /// The backend's matrix type.
    type Matrix: Matrix;
    /// The tensors, in the order they were declared.
    fn tensors(&self) -> &[Self::Matrix];
    /// The tensors, writable.
    fn tensors_mut(&mut self) -> &mut [Self::Matrix];
    /// Elements over all tensors (without any alignment padding).
    fn len(&self) -> usize {
        self.tensors()
            .iter()
            .map(|t| t.shape().0 * t.shape().1)
            .sum()
    }
    /// Whether the arena holds no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Where each tensor starts in the arena's storage (what an optimizer's state buffers
    /// mirror), in elements.
    fn offsets(&self) -> Vec<usize>;
    /// Elements of storage, alignment gaps included: the length of the optimizer's buffers.
    fn storage_len(&self) -> usize;
}

/// Whether arenas `a` and `b` hold tensors of the same shapes, in order, in storage of one
/// length: one layout (a backend places tensors by their shapes), so that either can stand in
/// for the other or be combined with it element by element.
pub(crate) fn same_tensors<A: Arena>(a: &A, b: &A) -> bool {
    a.storage_len() == b.storage_len()
        && a.tensors().len() == b.tensors().len()
        && a.tensors()
            .iter()
            .zip(b.tensors())
            .all(|(x, y)| x.shape() == y.shape())
}

/// Fails unless `a` and `b` hold the same tensors ([`same_tensors`]), naming both arenas'
/// shapes.
pub(crate) fn check_same_tensors<A: Arena>(op: &'static str, a: &A, b: &A) -> Result<()> {
    if same_tensors(a, b) {
        return Ok(());
    }
    let shapes = |arena: &A| {
        arena
            .tensors()
            .iter()
            .map(Matrix::shape)
            .collect::<Vec<_>>()
    };
    Err(Error::Shape {
        op,
        detail: format!(
            "arenas of other tensors, one of shapes {:?}, the other {:?}",
            shapes(a),
            shapes(b)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::check_same_tensors;
    use crate::CpuBackend;
    use crate::backend::Backend;

    /// Arenas trade places only where they hold the same tensors.
    #[test]
    fn arenas_of_other_tensors_cannot_stand_in_for_each_other() {
        let arena = |shapes: &[(usize, usize)]| CpuBackend.arena("x", shapes).unwrap();
        let (a, b) = (arena(&[(2, 3), (1, 3)]), arena(&[(2, 3), (1, 3)]));
        assert!(check_same_tensors("t", &a, &b).is_ok());
        for other in [arena(&[(3, 2), (1, 3)]), arena(&[(2, 3)])] {
            let err = check_same_tensors("t", &a, &other).unwrap_err().to_string();
            assert!(err.contains("[(2, 3), (1, 3)]"), "{err}");
        }
    }
}
