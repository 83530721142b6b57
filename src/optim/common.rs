//! The configuration methods `CpuOptimizer` and `GpuOptimizer` share, as one macro.

/// The configuration methods both optimizers share (each holds its `OptimizerCore` in `core`).
macro_rules! common_optimizer_methods {
    ($ty:ident) => {
        impl $ty {
            /// Uses `schedule` for the learning rate from the next update on.
            pub fn with_schedule(
                mut self,
                schedule: $crate::optim::LrSchedule,
            ) -> $crate::Result<Self> {
                self.core.set_schedule(schedule)?;
                Ok(self)
            }

            /// Sets the base learning rate γ (the rate a schedule scales) from the next update
            /// on, as assigning PyTorch's `param_group["lr"]` does; the rest of the
            /// configuration and the state stay; each parameter group's rate follows by its
            /// `lr_scale`. A rate that is negative or not finite (also once rounded to f32,
            /// and for every group) is refused, changing nothing.
            pub fn set_lr(&mut self, lr: f64) -> $crate::Result<()> {
                self.core.set_lr(lr)
            }

            /// Clips gradients as `clip` says, from the next update on.
            pub fn with_clip(mut self, clip: $crate::optim::Clip) -> $crate::Result<Self> {
                self.core.set_clip(clip)?;
                Ok(self)
            }

            /// Measures ‖g‖, ‖θ‖ and ‖Δθ‖ during each update (fused into the update's own pass).
            pub fn with_monitoring(mut self, on: bool) -> Self {
                self.core.monitor = on;
                self
            }

            /// The configuration.
            pub fn config(&self) -> &$crate::optim::OptimizerConfig {
                &self.core.config
            }

            /// The schedule.
            pub fn schedule(&self) -> &$crate::optim::LrSchedule {
                &self.core.schedule
            }

            /// Number of parameters in the arena.
            pub fn len(&self) -> usize {
                self.core.len
            }

            /// Always `false`: an optimizer is never built for an empty arena.
            pub fn is_empty(&self) -> bool {
                self.core.len == 0
            }

            /// Updates taken so far.
            pub fn steps(&self) -> u64 {
                self.core.step
            }

            /// The learning rate of update number `update` (1 is the first, as PyTorch counts).
            pub fn lr_at(&self, update: u64) -> f64 {
                self.core.lr_for_update(update)
            }
        }
    };
}
pub(crate) use common_optimizer_methods;
