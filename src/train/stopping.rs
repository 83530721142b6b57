//! When a run stops: the stopping rules checked after each epoch, and divergence (a non-finite
//! or runaway loss, or non-finite parameters), which puts the last good parameters back.

use super::{EpochRecord, Session, StopReason};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::Model;

impl<B: Backend, M: Model<B>> Session<'_, B, M> {
    /// The rule that says to stop after `record`, if any.
    pub(super) fn stop_reason(&mut self, record: &EpochRecord) -> Option<StopReason> {
        if let (Some(tol), Some(norm)) = (self.trainer.grad_tolerance, record.grad_norm) {
            if norm < tol {
                return Some(StopReason::GradientTolerance { grad_norm: norm });
            }
        }
        let (patience, min_delta) = self.trainer.plateau?;
        let watched = record.val_loss.unwrap_or(record.loss);
        match self.best {
            Some((best, _)) if watched >= best - min_delta => {}
            _ => self.best = Some((watched, record.epoch)),
        }
        let (best, at) = self.best?;
        (record.epoch - at >= patience).then_some(StopReason::Plateau { best })
    }

    /// Fails with [`Error::Diverged`] on a NaN, infinite or runaway loss, first putting the
    /// last good parameters back into the model.
    pub(super) fn check_divergence(&mut self, loss: f64) -> Result<()> {
        // Growth is measured against the first finite, non-zero loss: a first loss of exactly
        // 0 gives no scale to grow from.
        if self.first_loss.is_none() && loss.is_finite() && loss != 0.0 {
            self.first_loss = Some(loss);
        }
        let runaway = match (self.trainer.divergence_factor, self.first_loss) {
            (Some(f), Some(first)) => loss > f * first.abs(),
            _ => false,
        };
        if loss.is_finite() && !runaway {
            return Ok(());
        }
        let reason = match (runaway, self.first_loss) {
            (true, Some(first)) => format!(
                "loss = {loss}, more than {} × the first loss {first}",
                self.trainer.divergence_factor.unwrap_or(f64::NAN)
            ),
            _ => format!("loss = {loss}"),
        };
        self.diverged(loss, reason)
    }

    /// Puts the last good parameters back into the model and fails with [`Error::Diverged`].
    pub(super) fn diverged(&mut self, loss: f64, reason: String) -> Result<()> {
        self.backend
            .copy_arena(&self.last_good, &mut self.model.network_mut().params)?;
        self.backend.flush()?;
        Err(Error::Diverged {
            step: self.step,
            epoch: self.epoch,
            loss,
            reason,
        })
    }
}
