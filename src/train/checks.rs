//! The trainer's settings checked before anything is allocated: alone, and against the data
//! and the model.

use super::{Trainer, Watched};
use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Loss, Sequential};
use crate::optim::{Decay, Mode, OptimizerConfig, Swa};

/// Why a rule that sets the rate between updates is refused with ASGD.
const ASGD_RATE_SET: &str = "{with} with ASGD: PyTorch's ASGD computes each update's rate η \
    at the end of the update before, from that update's rate, so after a rate set between \
    epochs its next η still follows the old rate, which this optimizer does not keep";

impl Trainer {
    /// Checks the settings against the data and the model before anything is allocated.
    /// `op` names the caller in the errors about the data.
    pub(crate) fn check<B: Backend>(
        &self,
        op: &'static str,
        net: &Sequential<B>,
        train: &Dataset,
        validation: Option<&Dataset>,
    ) -> Result<()> {
        self.check_settings()?;
        let outputs = net.outputs();
        let bad = |detail: String| Err(Error::Data { op, detail });
        if let Some(b) = self.batch_size.filter(|&b| b > train.len()) {
            return bad(format!(
                "batch size {b} is larger than the {} training samples",
                train.len()
            ));
        }
        self.check_batch_rows(op, net, train.len())?;
        for (name, data) in [("training", Some(train)), ("validation", validation)] {
            let Some(data) = data else { continue };
            self.check_targets(op, name, outputs, data)?;
        }
        if let Some(val) = validation
            && val.features() != train.features()
        {
            return bad(format!(
                "validation data has {} features, training data {}",
                val.features(),
                train.features()
            ));
        }
        // A schedule that ends (one-cycle) must last the whole run.
        if let Some(last) = self.schedule.last_update() {
            let per_epoch = (self.batch_size).map_or(1, |b| {
                let samples = match self.drop_last {
                    true => train.len() - train.len() % b.max(1),
                    false => train.len(),
                };
                samples.div_ceil(b.saturating_mul(self.accumulate))
            });
            let updates = (per_epoch as u64).saturating_mul(self.epochs as u64);
            if updates > last {
                return bad(format!(
                    "the schedule ends after {last} updates, but this run takes {updates} \
                     ({} epochs of {per_epoch}): give it that many total_steps, or fewer epochs",
                    self.epochs
                ));
            }
        }
        Ok(())
    }

    /// Refuses a run with a batch smaller than a layer trains on (a batch norm: 2 rows), the
    /// epoch's last batch of what is left over included where it is kept, before the run
    /// starts: the batch itself would fail only when it comes, after the steps before it.
    fn check_batch_rows<B: Backend>(
        &self,
        op: &'static str,
        net: &Sequential<B>,
        samples: usize,
    ) -> Result<()> {
        let Some((least, layer)) = net.min_training_rows() else {
            return Ok(());
        };
        let batch = self.batch_size.unwrap_or(samples).max(1);
        let left = if self.drop_last { 0 } else { samples % batch };
        let (rows, which, fix) = if batch < least {
            (batch, "every batch", "a larger batch size".to_string())
        } else if left != 0 && left < least {
            (
                left,
                "the last batch of each epoch",
                format!("drop_last(true), or a batch size that leaves 0 or {least}+ samples over"),
            )
        } else {
            return Ok(());
        };
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        Err(Error::Data {
            op,
            detail: format!(
                "{which} would have {rows} row{} ({samples} sample{} in batches of {batch}), and \
                 {layer} trains on batches of {least} rows or more: set {fix}",
                plural(rows),
                plural(samples),
            ),
        })
    }

    /// Refuses batches of 0 samples, naming `op`.
    pub(crate) fn check_batch_size(&self, op: &'static str) -> Result<()> {
        match self.batch_size {
            Some(0) => Err(Error::Data {
                op,
                detail: "batch size 0: a batch needs at least one sample".into(),
            }),
            _ => Ok(()),
        }
    }

    /// Checks the settings that do not depend on the data.
    pub(crate) fn check_settings(&self) -> Result<()> {
        self.loss.validate()?;
        self.optimizer.validate()?;
        self.schedule.check_for(&self.optimizer)?;
        if let Some(rule) = &self.lr_plateau {
            rule.validate()?;
        }
        let op = "Trainer::fit";
        let bad = |detail: String| Err(Error::Data { op, detail });
        if let Some(weights) = &self.class_weights {
            check_class_weights("Trainer::class_weights", self.loss, weights)?;
        }
        if self.watched == Watched::Accuracy && !self.loss.has_accuracy() {
            return bad(format!(
                "watch(Watched::Accuracy) with {}: only the classification losses (softmax and \
                 binary cross-entropy) measure an accuracy",
                self.loss.name()
            ));
        }
        if self.lr_plateau.is_some() && matches!(self.optimizer, OptimizerConfig::Rprop(_)) {
            return bad(
                "reduce_lr_on_plateau with Rprop: its learning rate is only the step sizes' \
                 starting value, so lowering it later would change no step"
                    .into(),
            );
        }
        if self.lr_plateau.is_some() && matches!(self.optimizer, OptimizerConfig::Asgd(_)) {
            return bad(ASGD_RATE_SET.replace("{with}", "reduce_lr_on_plateau"));
        }
        if let Some(rule) = self.lr_plateau {
            let wanted = match self.watched {
                Watched::Loss => Mode::Min,
                Watched::Accuracy => Mode::Max,
            };
            if rule.mode != wanted {
                return bad(format!(
                    "reduce_lr_on_plateau in Mode::{:?} while watching {:?}, where {} is \
                     better: use ReduceLrOnPlateau::mode(Mode::{wanted:?})",
                    rule.mode,
                    self.watched,
                    if wanted == Mode::Min {
                        "lower"
                    } else {
                        "higher"
                    }
                ));
            }
        }
        self.check_batch_size(op)?;
        if self.epochs == 0 {
            return bad("0 epochs".into());
        }
        if self.log_every == Some(0) {
            return bad("log_every(0): log at least every step".into());
        }
        if let Some(decay) = self.ema.filter(|d| !(0.0..=1.0).contains(d)) {
            return bad(format!(
                "ema({decay}): the decay must be in [0, 1] (the share of the average each \
                 step keeps)"
            ));
        }
        if let Some(swa) = self.swa {
            self.check_swa(swa)?;
        }
        if self.accumulate == 0 {
            return bad(
                "accumulate_grad_batches(0): a step needs the gradient of at least one batch"
                    .into(),
            );
        }
        if self.drop_last && self.batch_size.is_none() {
            return bad(
                "drop_last with full_batch: the one batch of every sample is never shorter; \
                 give batch_size(B)"
                    .into(),
            );
        }
        if self.accumulate > 1 && self.batch_size.is_none() {
            return bad(format!(
                "accumulate_grad_batches({}) with full_batch: each step already sees every \
                 sample; give batch_size(B) for steps of {} × B samples",
                self.accumulate, self.accumulate
            ));
        }
        if self.steps_per_submit == 0 {
            return bad("steps_per_submit(0): submit at least every step".into());
        }
        if let Some(tol) = self.grad_tolerance
            && !(tol.is_finite() && tol > 0.0)
        {
            return bad(format!(
                "stop_when_grad_norm_below({tol}): the tolerance must be finite and > 0"
            ));
        }
        if let Some((patience, min_delta)) = self.plateau {
            if patience == 0 {
                return bad(
                    "stop_on_plateau(0, …): a patience of 0 epochs would stop a run that is \
                     still improving; use at least 1"
                        .into(),
                );
            }
            if !(min_delta.is_finite() && min_delta >= 0.0) {
                return bad(format!(
                    "stop_on_plateau(…, {min_delta}): min_delta must be finite and ≥ 0"
                ));
            }
        }
        if let Some(factor) = self.divergence_factor
            && !(factor.is_finite() && factor > 0.0)
        {
            return bad(format!(
                "diverge_above({factor}): the factor must be finite and > 0"
            ));
        }
        Ok(())
    }

    /// Stochastic weight averaging's settings, alone and against the rest.
    fn check_swa(&self, swa: Swa) -> Result<()> {
        swa.validate()?;
        let bad = |detail: String| {
            Err(Error::Data {
                op: "Trainer::fit",
                detail,
            })
        };
        let with = format!("swa starting after epoch {}", swa.start);
        if self.ema.is_some() {
            return bad(format!(
                "{with} and ema: a run keeps one average of its parameters; choose one"
            ));
        }
        if self.lr_plateau.is_some() {
            return bad(format!(
                "{with} and reduce_lr_on_plateau: both would set the learning rate after \
                 each epoch; SWA anneals it to its own rate"
            ));
        }
        if matches!(self.schedule.decay, Decay::OneCycle(_) | Decay::Cyclic(_)) {
            return bad(format!(
                "{with} and a one-cycle or cyclic schedule: they cycle the momentum too, \
                 which SWA's constant rate would leave where the cycle stopped; use a decay \
                 before the SWA epochs"
            ));
        }
        if matches!(self.optimizer, OptimizerConfig::Rprop(_)) {
            return bad(format!(
                "{with} with Rprop: its learning rate is only the step sizes' starting value, \
                 so SWA's rate would change no step"
            ));
        }
        if matches!(self.optimizer, OptimizerConfig::Asgd(_)) {
            return bad(ASGD_RATE_SET.replace("{with}", &with));
        }
        if swa.start > self.epochs {
            return bad(format!(
                "{with}, but the run has {} epochs: no epoch would join the average",
                self.epochs
            ));
        }
        Ok(())
    }

    /// Whether `data`'s targets suit the loss and the model's `outputs` (`name` says which
    /// data it is in the error, `op` who asked).
    pub(crate) fn check_targets(
        &self,
        op: &'static str,
        name: &str,
        outputs: usize,
        data: &Dataset,
    ) -> Result<()> {
        let bad = |detail: String| {
            Err(Error::Data {
                op,
                detail: format!("{name} data: {detail}"),
            })
        };
        match (self.loss, data.classes()) {
            (loss, Some(classes)) if loss.takes_class_indices() && classes == outputs => Ok(()),
            (loss, Some(classes)) if loss.takes_class_indices() => bad(format!(
                "{classes} classes, but the model has {outputs} outputs"
            )),
            (loss, None) if loss.takes_class_indices() => {
                bad("cross-entropy needs class labels (Dataset::classification)".into())
            }
            (loss, Some(2)) if loss.is_binary() && outputs == 1 => Ok(()),
            (loss, Some(classes)) if loss.is_binary() => bad(format!(
                "binary cross-entropy on labels needs 2 classes and 1 output, got {classes} \
                 classes and {outputs} outputs"
            )),
            (loss, Some(_)) => bad(format!(
                "{} needs regression targets (Dataset::regression)",
                loss.name()
            )),
            (loss, None) => {
                if data.y().ncols() != outputs {
                    return bad(format!(
                        "targets have {} columns, the model {outputs} outputs",
                        data.y().ncols()
                    ));
                }
                if loss.is_binary()
                    && let Some(t) = data.y().iter().find(|t| !(0.0..=1.0).contains(*t))
                {
                    return bad(format!("binary cross-entropy target {t} is outside [0, 1]"));
                }
                Ok(())
            }
        }
    }
}

/// Class weights' own checks: a softmax cross-entropy to weigh, each weight finite and ≥ 0,
/// not all 0; errors name `op`.
fn check_class_weights(op: &'static str, loss: Loss, weights: &[f32]) -> Result<()> {
    let bad = |detail: String| Err(Error::Data { op, detail });
    if !loss.takes_class_indices() {
        return bad(format!(
            "{} weighs no classes: class weights go with the softmax cross-entropies",
            loss.name()
        ));
    }
    if let Some((c, w)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
    {
        return bad(format!(
            "class {c}'s weight is {w}: each must be finite and ≥ 0"
        ));
    }
    if !weights.iter().any(|&w| w > 0.0) {
        return bad(format!(
            "{} class weights, all 0: at least one must count",
            weights.len()
        ));
    }
    Ok(())
}

impl Trainer {
    /// Fails unless the class weights, if any, are valid and one per output of the model.
    pub(crate) fn check_class_weight_count(&self, op: &'static str, outputs: usize) -> Result<()> {
        let Some(weights) = &self.class_weights else {
            return Ok(());
        };
        check_class_weights("Trainer::class_weights", self.loss, weights)?;
        check_weight_count(op, weights, outputs)
    }
}

/// Fails unless `weights` (a full-batch method's class weights, `op` naming its setting) are
/// valid for `loss` and one per output of the model.
pub(crate) fn check_class_weights_for(
    op: &'static str,
    loss: Loss,
    weights: &[f32],
    outputs: usize,
) -> Result<()> {
    check_class_weights(op, loss, weights)?;
    check_weight_count(op, weights, outputs)
}

fn check_weight_count(op: &'static str, weights: &[f32], outputs: usize) -> Result<()> {
    if weights.len() != outputs {
        return Err(Error::Data {
            op,
            detail: format!(
                "{} class weights for a model of {outputs} classes: one per class",
                weights.len()
            ),
        });
    }
    Ok(())
}
