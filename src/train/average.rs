//! `Trainer::ema`: an exponential moving average of the parameters, folded in after every
//! optimizer step, as PyTorch's `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))`
//! does when `update_parameters(model)` follows each `optimizer.step()`.

use crate::backend::Backend;
use crate::error::Result;

/// The averaged parameters and how many updates they hold.
pub(super) struct Average<B: Backend> {
    /// The weight the average keeps at each update (PyTorch's `decay`).
    pub decay: f64,
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
        decay: f64,
        params: &B::Arena,
        shapes: &[(usize, usize)],
    ) -> Result<Self> {
        let mut average = backend.arena("averaged parameters", shapes)?;
        backend.copy_arena(params, &mut average)?;
        Ok(Self {
            decay,
            params: average,
            count: 0,
        })
    }

    /// Folds the parameters an update left into the average: the first update's are copied,
    /// later ones move the average `1 − decay` of the way to them (`torch.lerp`, the weight
    /// rounded to f32 as PyTorch's `_foreach_lerp_` rounds its scalar for f32 tensors).
    pub fn update(&mut self, backend: &B, params: &B::Arena) -> Result<()> {
        match self.count {
            0 => backend.copy_arena(params, &mut self.params)?,
            _ => backend.lerp_arena((1.0 - self.decay) as f32, params, &mut self.params)?,
        }
        self.count = self.count.saturating_add(1);
        Ok(())
    }
}
