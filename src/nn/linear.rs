//! `Linear`: `act(x · Wᵀ + b)`, the bias and the activation fused into the matmul.

use rand::rngs::StdRng;

use super::Init;
use super::layer::{Backward, Forward, Layer, ParamSpec};
use crate::backend::{Activation, Backend, Matmul};
use crate::error::Result;

/// A linear layer, `act(x · Wᵀ + b)`, with `W` stored `[outputs, inputs]` as PyTorch stores it
/// and named `weight` and `bias` as `nn.Linear` names them.
///
/// The bias and the activation run in the matmul's epilogue; the layer above multiplies the
/// activation's derivative into the gradient it passes down, in its own kernel. For GELU or
/// SiLU (whose derivatives need the input), follow an identity `Linear` with an
/// [`Elementwise`](super::Elementwise) layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// Applied to the output (fused into the matmul).
    pub activation: Activation,
}

impl Linear {
    /// `x · Wᵀ + b` from `inputs` to `outputs` features, with no activation.
    pub fn new(inputs: usize, outputs: usize) -> Self {
        Self {
            inputs,
            outputs,
            activation: Activation::Identity,
        }
    }

    /// The same layer with `activation` fused into its output.
    pub fn with_activation(self, activation: Activation) -> Self {
        Self { activation, ..self }
    }
}

impl<B: Backend> Layer<B> for Linear {
    fn describe(&self) -> String {
        format!(
            "linear({}→{}, {})",
            self.inputs,
            self.outputs,
            self.activation.name()
        )
    }

    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::matrix("weight", self.outputs, self.inputs),
            ParamSpec::vector("bias", self.outputs),
        ]
    }

    fn initial_values(&self, init: Init, rng: &mut StdRng) -> Vec<f32> {
        let (weight, bias) = init.draw(rng, self.inputs, self.outputs);
        weight.iter().chain(bias.iter()).copied().collect()
    }

    fn fused_activation(&self) -> Activation {
        self.activation
    }

    fn fusable_linear(&self) -> Option<Activation> {
        Some(self.activation)
    }

    fn forward(&self, backend: &B, pass: Forward<'_, B>) -> Result<()> {
        let [weight, bias] = pass.params else {
            return Err(super::wrong_tensors(
                "Linear::forward",
                (pass.params.len(), 2),
                (pass.saved.len(), 0),
            ));
        };
        backend.matmul_into(
            Matmul::nt().activation(self.activation),
            pass.input,
            weight,
            Some(bias),
            pass.output,
        )
    }

    fn backward(&self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let ([weight, _], [weight_grad, bias_grad]) = (pass.params, pass.grad_params) else {
            return Err(super::wrong_tensors(
                "Linear::backward",
                (pass.params.len(), 2),
                (pass.saved.len(), 0),
            ));
        };
        // grad_output is ∂/∂(pre-activation): the layer above (or the model, for the top
        // layer) multiplied the derivative in. ∂W = δᵀ · x, ∂b = Σ_rows δ.
        // ∂/∂(pre-activation below) = (δ · W) ⊙ act'(its output).
        let below = pass
            .grad_input
            .map(|below| (below.activation, below.below_output, below.grad));
        let trained = |t: usize| pass.trained.get(t).copied().unwrap_or(true);
        if !trained(0) {
            // A frozen weight gets no gradient, as PyTorch computes none for a tensor that
            // requires none: only the bias's, if it trains (BitFit fine-tunes biases alone),
            // and the gradient passed down.
            return backend.linear_backward_frozen_weight_into(
                pass.grad_output,
                pass.input,
                weight,
                (weight_grad, trained(1).then_some(bias_grad)),
                below,
            );
        }
        backend.linear_backward_into(
            pass.grad_output,
            pass.input,
            weight,
            (weight_grad, bias_grad),
            below,
        )
    }
}
