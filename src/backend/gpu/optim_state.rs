//! What a `GpuOptimizer` measured and holds: the monitoring sums, its state read back and
//! restored, and its `Optimizer` impl.

use super::optim::GpuOptimizer;
use super::{GpuArena, GpuMatrix};
use crate::backend::Matrix;
use crate::error::Result;
use crate::optim::{OptimizerState, UpdateStats};

impl GpuOptimizer {
    /// Records a copy of the last step's (Σg², Σθ², ΣΔθ²) into `totals[slot..slot + 3]`, or
    /// zeros there when the last step was not monitored.
    pub(crate) fn stats_into(&self, totals: &GpuMatrix, slot: usize) -> Result<()> {
        let op = "optimizer stats";
        crate::backend::totals_dims(op, totals.shape(), slot, 3)?;
        totals.buffer().check_context(&self.ctx, op)?;
        let at = ((totals.offset() + slot) * 4) as u64;
        self.ctx.record(|encoder| {
            if self.monitored {
                encoder.copy_buffer_to_buffer(self.stats.raw(), 16, totals.buffer().raw(), at, 12);
            } else {
                encoder.clear_buffer(totals.buffer().raw(), at, Some(12));
            }
        })
    }

    /// Norms of the last step, if monitoring was on for it (reads back: one wait).
    pub fn stats(&self) -> Result<Option<UpdateStats>> {
        if !self.monitored {
            return Ok(None);
        }
        let stats = self.stats.read(&self.ctx)?;
        Ok(Some(UpdateStats {
            grad_norm: stats[4].sqrt(),
            param_norm: stats[5].sqrt(),
            update_norm: stats[6].sqrt(),
        }))
    }

    /// The state, read back from the GPU: step count and every state buffer by PyTorch's name.
    pub fn state(&self) -> Result<OptimizerState> {
        let mut buffers = Vec::new();
        for (name, slot) in self.core.slot_names().iter().zip(&self.slots) {
            if let (Some(name), Some(buffer)) = (name, slot) {
                buffers.push((name.to_string(), buffer.read(&self.ctx)?));
            }
        }
        Ok(OptimizerState {
            optimizer: self.core.config.name().to_string(),
            step: self.core.step,
            buffers,
        })
    }

    /// Restores a state read by [`GpuOptimizer::state`] (or a `CpuOptimizer`'s); on error
    /// nothing is changed.
    pub fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        let values = self.core.check_state(state)?;
        for (slot, values) in self.slots.iter().zip(values) {
            if let (Some(buffer), Some(values)) = (slot, values) {
                buffer.write(&self.ctx, 0, &values)?;
            }
        }
        self.core.restore_step(state.step);
        Ok(())
    }
}

impl crate::optim::Optimizer<super::GpuBackend> for GpuOptimizer {
    fn step(&mut self, params: &mut GpuArena, grads: &GpuArena) -> Result<()> {
        super::arena_ops::check_layouts("optimizer step", params, grads)?;
        self.record_step(params.buffer(), grads.buffer())
    }

    fn stats_into(&self, totals: &mut GpuMatrix, slot: usize) -> Result<()> {
        GpuOptimizer::stats_into(self, totals, slot)
    }

    fn state(&self) -> Result<OptimizerState> {
        GpuOptimizer::state(self)
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        GpuOptimizer::load_state(self, state)
    }

    fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.core.set_lr(lr)
    }

    fn base_lr(&self) -> f64 {
        self.core.config.lr()
    }

    fn set_schedule(&mut self, schedule: crate::optim::LrSchedule) -> Result<()> {
        self.core.set_schedule(schedule)
    }

    fn lr_at(&self, update: u64) -> f64 {
        self.core.lr_for_update(update)
    }
}
