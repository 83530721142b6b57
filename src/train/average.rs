//! An average of the parameters kept beside them: `Trainer::ema`'s exponential moving
//! average, folded in after every optimizer step, as PyTorch's `AveragedModel(model,
//! multi_avg_fn=get_ema_multi_avg_fn(decay))` does when `update_parameters(model)` follows
//! each `optimizer.step()`; or `Trainer::swa`'s equal average of the parameters at the end of
//! each epoch from its start on (`AveragedModel(model)`, stochastic weight averaging).

use crate::backend::Backend;
use crate::error::Result;

/// How the average weighs what it folds in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Averaging {
    /// After every step, keeping `decay` of the average (`Trainer::ema`).
    Exponential { decay: f64 },
    /// After every epoch from the SWA start on, all of them alike (`Trainer::swa`).
    Equal,
}

impl Averaging {
    /// The prefix of the checkpoint tensors that hold the average, and the metadata key of
    /// its count: a checkpoint of one kind of average never resumes the other.
    pub fn checkpoint_names(self) -> (&'static str, &'static str) {
        match self {
            Averaging::Exponential { .. } => ("ema.", "ema_count"),
            Averaging::Equal => ("swa.", "swa_count"),
        }
    }
}

/// The averaged parameters and how many updates they hold.
pub(super) struct Average<B: Backend> {
    /// How each update is weighed.
    pub averaging: Averaging,
    /// The averaged parameters, laid out as the model's.
    pub params: B::Arena,
    /// Updates averaged so far (PyTorch's `n_averaged`).
    pub count: u64,
}

impl<B: Backend> Average<B> {
    /// An average that holds no update yet: the parameters as they start (PyTorch's deep
    /// copy of the model), which the first update replaces.
    pub fn new(
        backend: &B,
        averaging: Averaging,
        params: &B::Arena,
        shapes: &[(usize, usize)],
    ) -> Result<Self> {
        let mut average = backend.arena("averaged parameters", shapes)?;
        backend.copy_arena(params, &mut average)?;
        Ok(Self {
            averaging,
            params: average,
            count: 0,
        })
    }

    /// Folds `params` into the average: the first update's are copied; later ones move the
    /// average `1 − decay` of the way to them (exponential), or `1/(n + 1)` of the way with n
    /// updates averaged (equal: the mean of them all), through `torch.lerp` with the weight
    /// rounded to f32, as PyTorch's `_foreach_lerp_` rounds its scalar for f32 tensors (its
    /// CUDA path for both averages).
    pub fn update(&mut self, backend: &B, params: &B::Arena) -> Result<()> {
        let weight = match self.averaging {
            Averaging::Exponential { decay } => 1.0 - decay,
            Averaging::Equal => 1.0 / (self.count as f64 + 1.0),
        };
        match self.count {
            0 => backend.copy_arena(params, &mut self.params)?,
            _ => backend.lerp_arena(weight as f32, params, &mut self.params)?,
        }
        self.count = self.count.saturating_add(1);
        Ok(())
    }

    /// The averaged parameters, once they hold an update: what the validation pass measures,
    /// `restore_best` keeps and a run ends with. Before the first (an SWA run before its start
    /// epoch), the parameters trained stand for the model.
    pub fn holding(&self) -> Option<&B::Arena> {
        (self.count > 0).then_some(&self.params)
    }
}
