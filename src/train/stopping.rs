//! When a run stops: the stopping rules checked after each epoch, and divergence (a non-finite
//! or runaway loss, or non-finite parameters), which puts the last good parameters back; and
//! what the rules remember between epochs, which checkpoints carry.

use std::path::Path;

use super::{EpochRecord, Session, StopReason};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::Model;
use crate::tensor_file::{File, corrupt};

/// What the stopping rules remember from earlier epochs: the best watched loss and its epoch
/// (the plateau rule's), and the first finite, non-zero loss (divergence's scale). A resumed
/// run that forgot them would stop at another epoch than the run it continues.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Memory {
    pub best: Option<(f64, usize)>,
    pub first_loss: Option<f64>,
}

impl Memory {
    /// As checkpoint metadata (values in Rust's shortest exact form: they parse back to the
    /// same bits).
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some((loss, epoch)) = self.best {
            out.push(("plateau_best".into(), format!("{loss:?}")));
            out.push(("plateau_best_epoch".into(), epoch.to_string()));
        }
        if let Some(loss) = self.first_loss {
            out.push(("first_loss".into(), format!("{loss:?}")));
        }
        out
    }

    /// From a checkpoint's metadata; a file from before these were saved has none, and its
    /// resumed run starts the rules afresh, as it did then.
    pub fn from_metadata(file: &File, path: &Path) -> Result<Self> {
        let loss = |key: &str| -> Result<Option<f64>> {
            let Some(text) = file.metadata.get(key) else {
                return Ok(None);
            };
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(corrupt(
                    path,
                    format!("metadata {key:?} = {text:?} is not a finite loss"),
                )),
            }
        };
        let best = match (
            loss("plateau_best")?,
            file.metadata.get("plateau_best_epoch"),
        ) {
            (Some(loss), Some(_)) => {
                Some((loss, file.meta_u64(path, "plateau_best_epoch")? as usize))
            }
            (None, None) => None,
            _ => {
                return Err(corrupt(
                    path,
                    "the file has one of plateau_best and plateau_best_epoch without the other",
                ));
            }
        };
        Ok(Self {
            best,
            first_loss: loss("first_loss")?,
        })
    }
}

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
        match self.memory.best {
            Some((best, _)) if watched >= best - min_delta => {}
            _ => self.memory.best = Some((watched, record.epoch)),
        }
        let (best, at) = self.memory.best?;
        (record.epoch - at >= patience).then_some(StopReason::Plateau { best })
    }

    /// Fails with [`Error::Diverged`] on a NaN, infinite or runaway loss, first putting the
    /// last good parameters back into the model.
    pub(super) fn check_divergence(&mut self, loss: f64) -> Result<()> {
        // Growth is measured against the first finite, non-zero loss: a first loss of exactly
        // 0 gives no scale to grow from.
        if self.memory.first_loss.is_none() && loss.is_finite() && loss != 0.0 {
            self.memory.first_loss = Some(loss);
        }
        let runaway = match (self.trainer.divergence_factor, self.memory.first_loss) {
            (Some(f), Some(first)) => loss > f * first.abs(),
            _ => false,
        };
        if loss.is_finite() && !runaway {
            return Ok(());
        }
        let reason = match (runaway, self.memory.first_loss) {
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
