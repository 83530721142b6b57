//! `Glu`: the gated linear unit, each sample's first half of features gated by the sigmoid of
//! its second half.

use super::layer::{Backward, Forward, Layer};
use crate::backend::Backend;
use crate::error::Result;

/// `a ⊙ σ(b)`, where `a` and `b` are the first and second halves of each row's `inputs`
/// features (PyTorch's `nn.GLU()`, over the last dimension): `inputs / 2` outputs, no
/// parameters. After a [`Linear`](super::Linear) of twice the width it makes a gated layer
/// (`GLU(x·Wᵀ + b)`).
///
/// ```
/// use steepest::nn::{Glu, Layer, Sequential};
/// use steepest::{CpuBackend, Init, Linear};
/// # fn main() -> steepest::Result<()> {
/// // 4 features → 2·16 → gated to 16 → 3.
/// let layers: Vec<Box<dyn Layer<CpuBackend>>> = vec![
///     Box::new(Linear::new(4, 32)),
///     Box::new(Glu::new(32)),
///     Box::new(Linear::new(16, 3)),
/// ];
/// let model = Sequential::new(&CpuBackend, layers, Init::default(), 1)?;
/// assert_eq!(model.outputs(), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Glu {
    /// Features in: an even number, the two halves.
    pub inputs: usize,
}

impl Glu {
    /// A gated linear unit over `inputs` features (an even number), giving `inputs / 2`.
    pub fn new(inputs: usize) -> Self {
        Self { inputs }
    }
}

impl<B: Backend> Layer<B> for Glu {
    fn describe(&self) -> String {
        format!("glu({}→{})", self.inputs, self.inputs / 2)
    }

    fn validate(&self) -> Result<()> {
        if self.inputs.is_multiple_of(2) && self.inputs > 0 {
            return Ok(());
        }
        Err(crate::Error::Shape {
            op: "Glu::new",
            detail: format!(
                "{} inputs: a gated linear unit splits its features in two halves, so it takes \
                 an even number of them, at least 2",
                self.inputs
            ),
        })
    }

    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.inputs / 2
    }

    fn forward(&self, backend: &B, pass: Forward<'_, B>) -> Result<()> {
        backend.glu_into(pass.input, pass.output)
    }

    fn backward(&self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        if let Some(mut below) = pass.grad_input {
            backend.glu_backward(pass.input, pass.grad_output, below.grad)?;
            below.apply_activation(backend)?;
        }
        Ok(())
    }
}
