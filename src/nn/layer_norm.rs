//! `LayerNorm`: normalisation over each sample's features with a learned gain and shift.

use rand::rngs::StdRng;

use super::layer::{Backward, Forward, Layer, ParamSpec};
use super::{Init, wrong_tensors};
use crate::backend::Backend;
use crate::error::Result;

/// `(x − mean) / √(var + eps) · γ + β` over each row's features (PyTorch's
/// `nn.LayerNorm(width)` with `elementwise_affine=True`): parameters `weight` (γ, initially 1)
/// and `bias` (β, initially 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    /// Features normalised over.
    pub width: usize,
    /// Added to the variance (PyTorch's default 1e-5).
    pub eps: f32,
}

impl LayerNorm {
    /// Layer normalisation over `width` features with PyTorch's `eps` of 1e-5.
    pub fn new(width: usize) -> Self {
        Self { width, eps: 1e-5 }
    }
}

/// A normalisation's `eps` (layer, RMS and batch norms): finite and > 0, or an error naming
/// `op`.
pub(super) fn check_eps(op: &'static str, eps: f32) -> Result<()> {
    if eps.is_finite() && eps > 0.0 {
        return Ok(());
    }
    Err(crate::Error::Shape {
        op,
        detail: format!("eps = {eps}: it must be finite and > 0"),
    })
}

impl<B: Backend> Layer<B> for LayerNorm {
    fn describe(&self) -> String {
        format!("layer_norm({}, eps={:?})", self.width, self.eps)
    }

    fn validate(&self) -> Result<()> {
        check_eps("LayerNorm::new", self.eps)
    }

    fn inputs(&self) -> usize {
        self.width
    }

    fn outputs(&self) -> usize {
        self.width
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::vector("weight", self.width),
            ParamSpec::vector("bias", self.width),
        ]
    }

    fn initial_values(&self, _init: Init, _rng: &mut StdRng) -> Vec<f32> {
        let mut values = vec![1.0; self.width];
        values.resize(2 * self.width, 0.0);
        values
    }

    /// Each row's (mean, 1/σ); the backward kernel's product g ⊙ x̂; and a gradient buffer
    /// for when the layer is a model's first (its input gradient is then not asked for).
    fn saved_shapes(&self, rows: usize) -> Vec<(usize, usize)> {
        vec![(rows, 2), (rows, self.width), (rows, self.width)]
    }

    fn forward(&self, backend: &B, pass: Forward<'_, B>) -> Result<()> {
        let given = (pass.params.len(), pass.saved.len());
        let ([gamma, beta], [stats, prod, _]) = (pass.params, pass.saved) else {
            return Err(wrong_tensors(
                "LayerNorm::forward",
                (given.0, 2),
                (given.1, 3),
            ));
        };
        backend.layer_norm_into(pass.input, gamma, beta, self.eps, stats, pass.output, prod)
    }

    fn backward(&self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let given = (pass.params.len(), pass.saved.len());
        let ([gamma, _], [gamma_grad, beta_grad], [stats, prod, spare]) =
            (pass.params, pass.grad_params, pass.saved)
        else {
            return Err(wrong_tensors(
                "LayerNorm::backward",
                (given.0, 2),
                (given.1, 3),
            ));
        };
        match pass.grad_input {
            Some(mut below) => {
                backend.layer_norm_backward(
                    pass.input,
                    gamma,
                    pass.grad_output,
                    stats,
                    below.grad,
                    prod,
                )?;
                below.apply_activation(backend)?;
            }
            None => {
                backend.layer_norm_backward(
                    pass.input,
                    gamma,
                    pass.grad_output,
                    stats,
                    spare,
                    prod,
                )?;
            }
        }
        // ∂γ = Σ_rows g ⊙ x̂, ∂β = Σ_rows g.
        backend.column_sum_into(prod, gamma_grad)?;
        backend.column_sum_into(pass.grad_output, beta_grad)
    }
}
