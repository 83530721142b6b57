//! `BatchNorm`: normalisation of each feature over the batch, with running statistics for
//! evaluation.

use rand::rngs::StdRng;

use super::layer::{Backward, BufferUpdate, Forward, Layer, Mode, ParamSpec};
use super::{Init, wrong_buffers, wrong_tensors};
use crate::backend::Backend;
use crate::error::{Error, Result};

/// `(x − mean) / √(var + eps) · γ + β` over each feature (PyTorch's `nn.BatchNorm1d(width, eps,
/// momentum)` on `rows × width` batches, affine, tracking running statistics): in training the
/// batch's mean and (biased) variance, in evaluation the running ones. Parameters `weight` (γ,
/// initially 1) and `bias` (β, initially 0); buffers `running_mean` (initially 0) and
/// `running_var` (initially 1), which every training batch moves `momentum` of the way to its
/// own mean and unbiased variance, as PyTorch's (its `num_batches_tracked` counts only for a
/// momentum of `None`, which this layer does not take: its files load without it).
///
/// Training needs batches of 2 rows or more (a batch of one row has no variance, as PyTorch
/// refuses): a run whose batches would be smaller, the epoch's last included, is refused
/// before it starts ([`Layer::min_training_rows`]); where the samples leave one row over,
/// [`Trainer::drop_last`](crate::Trainer::drop_last) leaves that batch out. The running statistics are buffers ([`Layer::buffers`]): saved in checkpoints and
/// model files under PyTorch's names, kept by `restore_best` and averaged by `ema` and `swa`
/// with the parameters (PyTorch's `AveragedModel(use_buffers=True)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    /// Features normalised.
    pub width: usize,
    /// Added to the variance (PyTorch's default 1e-5).
    pub eps: f32,
    /// How far each training batch moves the running statistics (PyTorch's default 0.1).
    pub momentum: f32,
}

impl BatchNorm {
    /// Batch normalisation over `width` features with PyTorch's `eps` of 1e-5 and momentum
    /// of 0.1.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

impl<B: Backend> Layer<B> for BatchNorm {
    fn min_training_rows(&self) -> usize {
        2
    }

    fn describe(&self) -> String {
        format!(
            "batch_norm({}, eps={:?}, momentum={:?})",
            self.width, self.eps, self.momentum
        )
    }

    fn validate(&self) -> Result<()> {
        let bad = |detail: String| {
            Err(Error::Shape {
                op: "BatchNorm::new",
                detail,
            })
        };
        super::layer_norm::check_eps("BatchNorm::new", self.eps)?;
        if !(0.0..=1.0).contains(&self.momentum) {
            return bad(format!(
                "momentum = {}: it must be in [0, 1]",
                self.momentum
            ));
        }
        Ok(())
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

    fn buffers(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::vector("running_mean", self.width),
            ParamSpec::vector("running_var", self.width),
        ]
    }

    fn initial_buffers(&self) -> Vec<f32> {
        let mut values = vec![0.0; self.width];
        values.resize(2 * self.width, 1.0);
        values
    }

    /// The batch's mean, biased variance (what training normalises by) and unbiased variance
    /// (what the running variance follows).
    fn saved_shapes(&self, _rows: usize) -> Vec<(usize, usize)> {
        vec![(1, self.width); 3]
    }

    fn forward(&self, backend: &B, pass: Forward<'_, B>) -> Result<()> {
        let op = "BatchNorm::forward";
        let given = (pass.params.len(), pass.saved.len());
        let ([gamma, beta], [mean, var, unbiased]) = (pass.params, pass.saved) else {
            return Err(wrong_tensors(op, (given.0, 2), (given.1, 3)));
        };
        let [running_mean, running_var] = pass.buffers else {
            return Err(wrong_buffers(op, pass.buffers.len(), 2));
        };
        match pass.mode {
            Mode::Train => {
                backend.batch_norm_stats(pass.input, mean, var, unbiased)?;
                let stats = (&*mean, &*var);
                backend.batch_norm_into(pass.input, stats, gamma, beta, self.eps, pass.output)
            }
            Mode::Eval => backend.batch_norm_into(
                pass.input,
                (running_mean, running_var),
                gamma,
                beta,
                self.eps,
                pass.output,
            ),
        }
    }

    /// `running ← running + momentum · (batch − running)`, the variance's with the batch's
    /// unbiased variance.
    fn update_buffers(&self, backend: &B, pass: BufferUpdate<'_, B>) -> Result<()> {
        let op = "BatchNorm::update_buffers";
        let [mean, _, unbiased] = pass.saved else {
            return Err(wrong_tensors(op, (0, 0), (pass.saved.len(), 3)));
        };
        let [running_mean, running_var] = pass.buffers else {
            return Err(wrong_buffers(op, pass.buffers.len(), 2));
        };
        backend.lerp_into(self.momentum, mean, running_mean)?;
        backend.lerp_into(self.momentum, unbiased, running_var)
    }

    fn backward(&self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let given = (pass.params.len(), pass.saved.len());
        let ([gamma, _], [gamma_grad, beta_grad], [mean, var, _]) =
            (pass.params, pass.grad_params, &*pass.saved)
        else {
            return Err(wrong_tensors(
                "BatchNorm::backward",
                (given.0, 2),
                (given.1, 3),
            ));
        };
        let mut below = pass.grad_input;
        backend.batch_norm_backward(
            pass.input,
            (mean, var),
            gamma,
            self.eps,
            pass.grad_output,
            (gamma_grad, beta_grad),
            below.as_mut().map(|b| &mut *b.grad),
        )?;
        match &mut below {
            Some(below) => below.apply_activation(backend),
            None => Ok(()),
        }
    }
}
