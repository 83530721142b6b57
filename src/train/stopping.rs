//! When a run stops: the stopping rules checked after each epoch, and divergence (a non-finite
//! or runaway loss, or non-finite parameters), which puts the last good parameters back; the
//! learning-rate rule that watches the same value; and what the rules remember between
//! epochs, which checkpoints carry.

use std::path::Path;

use super::average::Average;
use super::{EpochRecord, Session, StopReason};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::Model;
use crate::optim::{Optimizer, PlateauState};
use crate::tensor_file::{File, corrupt};

/// What the stopping rules remember from earlier epochs: the best watched value and its epoch
/// (the plateau rule's, better by its `min_delta`), the first finite, non-zero loss
/// (divergence's scale), and the best watched value and its epoch whose parameters
/// `Trainer::restore_best` keeps (saved as `lowest_loss`, its name from when only the loss was
/// watched); and the state of `Trainer::reduce_lr_on_plateau`. A resumed run that forgot them
/// would stop at another epoch, restore another or lower its rate at another than the run it
/// continues.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Memory {
    pub best: Option<(f64, usize)>,
    pub first_loss: Option<f64>,
    pub kept_best: Option<(f64, usize)>,
    pub lr_plateau: Option<PlateauState>,
}

/// What the rules applied after each epoch watch: [`Trainer::stop_on_plateau`],
/// [`Trainer::restore_best`] and [`Trainer::reduce_lr_on_plateau`]. Each is measured on the
/// validation data, or on the training data in a run without any.
///
/// [`Trainer::stop_on_plateau`]: super::Trainer::stop_on_plateau
/// [`Trainer::restore_best`]: super::Trainer::restore_best
/// [`Trainer::reduce_lr_on_plateau`]: super::Trainer::reduce_lr_on_plateau
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Watched {
    /// The mean loss: lower is better.
    #[default]
    Loss,
    /// The accuracy (classification losses): higher is better.
    Accuracy,
}

impl Watched {
    /// The watched value of an epoch (NaN for the accuracy of an epoch that has none: a
    /// regression loss's).
    pub fn of(self, record: &EpochRecord) -> f64 {
        match self {
            Watched::Loss => record.val_loss.unwrap_or(record.loss),
            // A run that watches the accuracy has it (`Trainer::check_settings`).
            Watched::Accuracy => record.val_accuracy.or(record.accuracy).unwrap_or(f64::NAN),
        }
    }

    /// Whether `value` is better than `best` by more than `margin` (≥ 0).
    pub(crate) fn improves(self, value: f64, best: f64, margin: f64) -> bool {
        match self {
            Watched::Loss => value < best - margin,
            Watched::Accuracy => value > best + margin,
        }
    }
}

/// The checkpoint metadata keys of a [`PlateauState`]'s fields.
const LR_PLATEAU_KEYS: [&str; 4] = [
    "lr_plateau_lr",
    "lr_plateau_best",
    "lr_plateau_bad_epochs",
    "lr_plateau_cooldown_left",
];

impl Memory {
    /// As checkpoint metadata (values in Rust's shortest exact form: they parse back to the
    /// same bits).
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, value) in [("plateau_best", self.best), ("lowest_loss", self.kept_best)] {
            if let Some((loss, epoch)) = value {
                out.push((key.to_string(), format!("{loss:?}")));
                out.push((format!("{key}_epoch"), epoch.to_string()));
            }
        }
        if let Some(loss) = self.first_loss {
            out.push(("first_loss".into(), format!("{loss:?}")));
        }
        if let Some(state) = self.lr_plateau {
            let values = [
                format!("{:?}", state.lr),
                format!("{:?}", state.best),
                state.bad_epochs.to_string(),
                state.cooldown_left.to_string(),
            ];
            out.extend(LR_PLATEAU_KEYS.map(String::from).into_iter().zip(values));
        }
        out
    }

    /// From a checkpoint's metadata; a file from before these were saved has none, and its
    /// resumed run starts the rules afresh, as it did then.
    pub fn from_metadata(file: &File, path: &Path) -> Result<Self> {
        let loss = |key: &str| number(file, path, key, f64::is_finite, "a finite loss");
        let at_epoch = |key: &str| -> Result<Option<(f64, usize)>> {
            let epoch_key = format!("{key}_epoch");
            match (loss(key)?, file.metadata.contains_key(&epoch_key)) {
                (Some(loss), true) => Ok(Some((loss, file.meta_u64(path, &epoch_key)? as usize))),
                (None, false) => Ok(None),
                _ => Err(corrupt(
                    path,
                    format!("the file has one of {key} and {epoch_key} without the other"),
                )),
            }
        };
        Ok(Self {
            best: at_epoch("plateau_best")?,
            first_loss: loss("first_loss")?,
            kept_best: at_epoch("lowest_loss")?,
            lr_plateau: lr_plateau_from_metadata(file, path)?,
        })
    }
}

/// The number under `key` in a checkpoint's metadata (`None` when it has none), refused unless
/// `ok` holds: "is not {what}".
pub(super) fn number(
    file: &File,
    path: &Path,
    key: &str,
    ok: fn(f64) -> bool,
    what: &str,
) -> Result<Option<f64>> {
    let Some(text) = file.metadata.get(key) else {
        return Ok(None);
    };
    match text.parse::<f64>() {
        Ok(v) if ok(v) => Ok(Some(v)),
        _ => Err(corrupt(
            path,
            format!("metadata {key:?} = {text:?} is not {what}"),
        )),
    }
}

/// A [`PlateauState`] from a checkpoint's metadata: all four keys or none.
fn lr_plateau_from_metadata(file: &File, path: &Path) -> Result<Option<PlateauState>> {
    let present = LR_PLATEAU_KEYS.map(|k| file.metadata.contains_key(k));
    if present.iter().all(|&p| !p) {
        return Ok(None);
    }
    if !present.iter().all(|&p| p) {
        return Err(corrupt(
            path,
            format!("the file has some of {LR_PLATEAU_KEYS:?} but not all"),
        ));
    }
    let present = |key: &str, ok: fn(f64) -> bool, what: &str| {
        number(file, path, key, ok, what).map(|v| v.unwrap_or(f64::NAN))
    };
    Ok(Some(PlateauState {
        lr: present(
            LR_PLATEAU_KEYS[0],
            |v| v.is_finite() && v >= 0.0,
            "a learning rate",
        )?,
        // ±∞ before the first epoch.
        best: present(LR_PLATEAU_KEYS[1], |v| !v.is_nan(), "a watched value")?,
        bad_epochs: file.meta_u64(path, LR_PLATEAU_KEYS[2])? as usize,
        cooldown_left: file.meta_u64(path, LR_PLATEAU_KEYS[3])? as usize,
    }))
}

impl<B: Backend, M: Model<B>> Session<'_, B, M> {
    /// The rule that says to stop after `record`, if any.
    pub(super) fn stop_reason(&mut self, record: &EpochRecord) -> Option<StopReason> {
        if let (Some(tol), Some(norm)) = (self.trainer.grad_tolerance, record.grad_norm)
            && norm < tol
        {
            return Some(StopReason::GradientTolerance { grad_norm: norm });
        }
        let (patience, min_delta) = self.trainer.plateau?;
        let (watch, value) = (self.trainer.watched, self.trainer.watched.of(record));
        match self.memory.best {
            Some((best, _)) if !watch.improves(value, best, min_delta) => {}
            _ => self.memory.best = Some((value, record.epoch)),
        }
        let (best, at) = self.memory.best?;
        (record.epoch - at >= patience).then_some(StopReason::Plateau { best })
    }

    /// With `Trainer::reduce_lr_on_plateau`, takes `record`'s watched value into the rule and
    /// gives the optimizer the rate it leaves.
    pub(super) fn reduce_lr_on_plateau(&mut self, record: &EpochRecord) -> Result<()> {
        let (Some(rule), Some(state)) = (self.trainer.lr_plateau, &mut self.memory.lr_plateau)
        else {
            return Ok(());
        };
        // As PyTorch's rule, it lowers the rate the optimizer has now (`Session::set_lr` may
        // have changed it since the last epoch).
        state.lr = self.optimizer.base_lr();
        let lr = rule.step(state, self.trainer.watched.of(record));
        self.optimizer.set_lr(lr)
    }

    /// With `Trainer::restore_best`, keeps the parameters after an epoch whose watched value is
    /// the best so far (a copy on the backend, nothing created).
    pub(super) fn keep_if_best(&mut self, record: &EpochRecord) -> Result<()> {
        let Some(kept) = &mut self.kept else {
            return Ok(());
        };
        let (watch, value) = (self.trainer.watched, self.trainer.watched.of(record));
        if self
            .memory
            .kept_best
            .is_some_and(|(best, _)| !watch.improves(value, best, 0.0))
        {
            return Ok(());
        }
        // The parameters the epoch was measured with: the average, once it holds an update.
        let measured = match self.average.as_ref().and_then(Average::holding) {
            Some(average) => average,
            None => &self.model.network().params,
        };
        self.backend.copy_arena(measured, kept)?;
        self.memory.kept_best = Some((value, record.epoch));
        Ok(())
    }

    /// With `Trainer::restore_best`, gives the model back the kept parameters at the end of
    /// a run, and records whose they are; whether it did.
    pub(super) fn restore_best_epoch(&mut self) -> Result<bool> {
        let (Some(kept), Some((_, epoch))) = (&self.kept, self.memory.kept_best) else {
            return Ok(false);
        };
        self.backend
            .copy_arena(kept, &mut self.model.network_mut().params)?;
        self.history.restored_epoch = Some(epoch);
        Ok(true)
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
