//! `Dropout`: inverted dropout, seeded and deterministic per step.

use super::layer::{Backward, Forward, Layer, Mode};
use crate::backend::{Backend, DropoutDraw};
use crate::error::Result;

/// Zeroes each element with probability `p` in training and scales the rest by 1/(1 − p)
/// (PyTorch's `nn.Dropout(p)`); the identity in evaluation.
///
/// The mask of a step is a pure function of (`seed`, the session's step, the element's
/// index): the same on both backends and after resuming from a checkpoint. (With gradient
/// accumulation over k batches a step, batch i of step s draws as step s·k + i would.) Give each dropout
/// layer of a model its own seed. PyTorch's generator draws other masks, so trajectories
/// match PyTorch's only in distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Features in and out.
    pub width: usize,
    /// The probability of dropping an element, in [0, 1).
    pub p: f32,
    /// The seed of this layer's masks.
    pub seed: u64,
}

impl Dropout {
    /// Dropout with probability `p` over `width` features, its masks seeded with `seed`.
    pub fn new(width: usize, p: f32, seed: u64) -> Self {
        Self { width, p, seed }
    }
}

impl<B: Backend> Layer<B> for Dropout {
    fn describe(&self) -> String {
        format!("dropout({}, p={:?})", self.width, self.p)
    }

    fn validate(&self) -> Result<()> {
        DropoutDraw::new(self.p, self.seed, 0).validate("Dropout::new")
    }

    fn inputs(&self) -> usize {
        self.width
    }

    fn outputs(&self) -> usize {
        self.width
    }

    /// The mask of the last training pass.
    fn saved_shapes(&self, rows: usize) -> Vec<(usize, usize)> {
        vec![(rows, self.width)]
    }

    fn forward(&self, backend: &B, pass: Forward<'_, B>) -> Result<()> {
        let draw = DropoutDraw::new(self.p, self.seed, pass.step);
        // Evaluation keeps everything: p = 0 writes x · 1 = x exactly.
        let draw = match pass.mode {
            Mode::Train => draw,
            Mode::Eval => DropoutDraw { p: 0.0, ..draw },
        };
        let [mask] = pass.saved else {
            return Err(crate::nn::wrong_tensors(
                "Dropout::forward",
                (pass.params.len(), 0),
                (pass.saved.len(), 1),
            ));
        };
        backend.dropout_into(draw, pass.input, mask, pass.output)
    }

    fn backward(&self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let (Some(mut below), [mask]) = (pass.grad_input, pass.saved) else {
            return Ok(()); // the model's first layer: nothing to pass down
        };
        backend.dropout_backward(pass.grad_output, mask, below.grad)?;
        below.apply_activation(backend)
    }
}
