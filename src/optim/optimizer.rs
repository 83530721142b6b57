//! `Optimizer`: one backend's optimizer over a model's arenas, as the training stack uses it.

use super::{LrSchedule, OptimizerState};
use crate::backend::Backend;
use crate::error::Result;

/// An optimizer built for a model's arenas by [`Backend::optimizer`]: it updates the
/// parameters from the gradients (recorded, not waited for, on the GPU), reports what it
/// measured, and saves and restores its state.
pub trait Optimizer<B: Backend + ?Sized> {
    /// One update of `params` from `grads` (arenas of the layout it was built for).
    fn step(&mut self, params: &mut B::Arena, grads: &B::Arena) -> Result<()>;

    /// `totals[slot..slot + 3] ← (Σg², Σθ², ΣΔθ²)` of the last update of a monitoring
    /// optimizer (zeros if it does not monitor).
    fn stats_into(&self, totals: &mut B::Matrix, slot: usize) -> Result<()>;

    /// The state (PyTorch's names; waits on the GPU), one value per arena element.
    fn state(&self) -> Result<OptimizerState>;

    /// Restores a state read by [`Optimizer::state`]; on error nothing changes.
    fn load_state(&mut self, state: &OptimizerState) -> Result<()>;

    /// Sets the base learning rate (what the schedule scales) from the next update on, each
    /// parameter group's following by its `lr_scale`; an invalid rate changes nothing.
    fn set_lr(&mut self, lr: f64) -> Result<()>;

    /// The base learning rate: the configured one, or the last [`Optimizer::set_lr`] set.
    fn base_lr(&self) -> f64;

    /// Uses `schedule` from the next update on (its clock still counts every update, from
    /// the first); one that does not suit the optimizer changes nothing.
    fn set_schedule(&mut self, schedule: LrSchedule) -> Result<()>;

    /// The learning rate of update number `update` (1 is the first, as PyTorch counts), after
    /// the schedule.
    fn lr_at(&self, update: u64) -> f64;
}
