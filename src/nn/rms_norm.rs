//! `RmsNorm`: each sample's features divided by their root mean square, with a learned gain.

use rand::rngs::StdRng;

use super::layer::{Backward, Forward, Layer, ParamSpec};
use super::{Init, wrong_tensors};
use crate::backend::Backend;
use crate::error::Result;

/// `x / √(Σx²/n + eps) · γ` over each row's `n` features (PyTorch's `nn.RMSNorm(width)` with
/// `elementwise_affine=True`): unlike [`LayerNorm`](super::LayerNorm), no mean is taken out
/// and there is no shift. Parameter `weight` (γ, initially 1); PyTorch's default `eps` of
/// `None` is the float's machine epsilon, `f32::EPSILON`.
///
/// ```
/// use steepest::nn::RmsNorm;
/// let norm = RmsNorm::new(64); // nn.RMSNorm(64)
/// let with_eps = RmsNorm { eps: 1e-6, ..norm }; // nn.RMSNorm(64, eps=1e-6)
/// assert_eq!((norm.eps, with_eps.width), (f32::EPSILON, 64));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNorm {
    /// Features normalised over.
    pub width: usize,
    /// Added to the mean square.
    pub eps: f32,
}

impl RmsNorm {
    /// RMS normalisation over `width` features with PyTorch's default `eps` (`f32::EPSILON`).
    pub fn new(width: usize) -> Self {
        Self {
            width,
            eps: f32::EPSILON,
        }
    }
}

impl<B: Backend> Layer<B> for RmsNorm {
    fn describe(&self) -> String {
        format!("rms_norm({}, eps={:?})", self.width, self.eps)
    }

    fn validate(&self) -> Result<()> {
        super::layer_norm::check_eps("RmsNorm::new", self.eps)
    }

    fn inputs(&self) -> usize {
        self.width
    }

    fn outputs(&self) -> usize {
        self.width
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::vector("weight", self.width)]
    }

    fn initial_values(&self, _init: Init, _rng: &mut StdRng) -> Vec<f32> {
        vec![1.0; self.width]
    }

    /// Each row's (0, 1/σ); the backward kernel's product g ⊙ x̂; and a gradient buffer for
    /// when the layer is a model's first (its input gradient is then not asked for).
    fn saved_shapes(&self, rows: usize) -> Vec<(usize, usize)> {
        vec![(rows, 2), (rows, self.width), (rows, self.width)]
    }

    fn forward(&self, backend: &B, pass: Forward<'_, B>) -> Result<()> {
        let given = (pass.params.len(), pass.saved.len());
        let ([gamma], [stats, prod, _]) = (pass.params, pass.saved) else {
            return Err(wrong_tensors(
                "RmsNorm::forward",
                (given.0, 1),
                (given.1, 3),
            ));
        };
        backend.rms_norm_into(pass.input, gamma, self.eps, stats, pass.output, prod)
    }

    fn backward(&self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let given = (pass.params.len(), pass.saved.len());
        let ([gamma], [gamma_grad], [stats, prod, spare]) =
            (pass.params, pass.grad_params, pass.saved)
        else {
            return Err(wrong_tensors(
                "RmsNorm::backward",
                (given.0, 1),
                (given.1, 3),
            ));
        };
        match pass.grad_input {
            Some(mut below) => {
                let (input, output) = (pass.input, pass.grad_output);
                backend.rms_norm_backward(input, gamma, output, stats, below.grad, prod)?;
                below.apply_activation(backend)?;
            }
            None => {
                let (input, output) = (pass.input, pass.grad_output);
                backend.rms_norm_backward(input, gamma, output, stats, spare, prod)?;
            }
        }
        // ∂γ = Σ_rows g ⊙ x̂.
        backend.column_sum_into(prod, gamma_grad)
    }
}
