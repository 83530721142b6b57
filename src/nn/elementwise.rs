//! `Elementwise`: an activation layer (GELU, SiLU, leaky ReLU, …) applied on its own, with
//! its derivative taken from its input.

use super::layer::{Backward, Forward, Layer};
use crate::backend::{Backend, Nonlinearity};
use crate::error::Result;

/// `f(x)` element by element, as its own layer (PyTorch's `nn.GELU()`, `nn.SiLU()`, …); no
/// parameters. It costs a kernel of its own each way, where an activation fused into a
/// [`Linear`](super::Linear) costs none: use this for the functions a linear layer cannot fuse.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Elementwise {
    /// Features in and out.
    pub width: usize,
    /// The function.
    pub function: Nonlinearity,
}

impl Elementwise {
    /// `function` over `width` features.
    pub fn new(width: usize, function: Nonlinearity) -> Self {
        Self { width, function }
    }
}

impl<B: Backend> Layer<B> for Elementwise {
    fn describe(&self) -> String {
        format!("{}({})", self.function.name(), self.width)
    }

    fn validate(&self) -> Result<()> {
        self.function
            .check_parameters()
            .map_err(|detail| crate::Error::Shape {
                op: "Elementwise::new",
                detail,
            })
    }

    fn inputs(&self) -> usize {
        self.width
    }

    fn outputs(&self) -> usize {
        self.width
    }

    fn forward(&self, backend: &B, pass: Forward<'_, B>) -> Result<()> {
        backend.nonlinearity_into(self.function, pass.input, pass.output)
    }

    fn backward(&self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        if let Some(mut below) = pass.grad_input {
            backend.nonlinearity_backward(
                self.function,
                pass.input,
                pass.grad_output,
                below.grad,
            )?;
            below.apply_activation(backend)?;
        }
        Ok(())
    }
}
