//! What the ops work on: a backend's matrices and its arenas of tensors.

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
