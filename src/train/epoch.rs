//! The end of an epoch: its remaining steps, the validation pass, one readback of every
//! measurement, the divergence checks; and `run`, epochs until a stopping rule fires.

use super::average::Average;
use super::evaluate::evaluation_pass;
use super::session::slot;
use super::{EpochRecord, History, Session, StopReason, Trainer};
use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::Result;
use crate::nn::Model;
use crate::optim::{LrSchedule, Optimizer, Swa};

impl<B: Backend, M: Model<B>> Session<'_, B, M> {
    /// Finishes the current epoch (or runs a whole new one): its remaining steps, with
    /// [`Trainer::swa`](crate::Trainer::swa) from its start epoch on the parameters folded
    /// into the average and SWA's rate step, the validation pass, and one readback of every
    /// measurement (epochs ended by [`Session::step`] alone are not averaged). What acts
    /// between epochs (the
    /// stopping rules, `restore_best`, the learning-rate rule on plateaus, checkpoints) is
    /// [`Session::run`]'s: a loop of one's own around `run_epoch` applies what it wants of it
    /// itself ([`Session::set_lr`], [`Session::save_checkpoint`], a `ReduceLrOnPlateau` stepped by
    /// hand).
    pub fn run_epoch(&mut self) -> Result<EpochRecord> {
        self.train_len("Session::run_epoch")?;
        let len = self.epoch_len();
        while !self.epoch_done() {
            self.step()?;
        }
        self.end_epoch_order();
        // Stochastic weight averaging (`Trainer::swa`): from its start on, the epoch's
        // parameters join the average before the validation pass measures it.
        let swa = self.trainer.swa.filter(|swa| self.epoch >= swa.start);
        if let (Some(_), Some(average)) = (swa, &mut self.average) {
            average.update(self.backend, &self.model.network().params)?;
        }
        if let Some((data, all)) = &self.validation {
            let batch = self.batch_rows();
            // With an average that holds an update (`Trainer::ema`, `Trainer::swa`), the
            // pass measures the average: its arena stands in for the model's parameters for
            // the pass (swapped, not copied).
            let net = self.model.network_mut();
            let average = self.average.as_mut().filter(|a| a.holding().is_some());
            let mut average = average.map(|a| &mut a.params);
            if let Some(average) = &mut average {
                std::mem::swap(&mut net.params, average);
            }
            let measured = evaluation_pass(
                self.backend,
                (net, self.trainer.loss, self.class_weights.as_ref()),
                (data, all),
                batch,
                &mut self.workspaces,
                (&mut self.totals, slot::VALIDATION),
                self.step,
            );
            if let Some(average) = average {
                std::mem::swap(&mut net.params, average);
            }
            measured?;
        }
        // Σθ² of the parameters as the epoch's last update left them (the epoch's loss was
        // measured before that update): they become the last good ones only if finite.
        self.backend.sum_squares_into(
            &self.model.network().params,
            &mut self.totals,
            slot::SCRATCH,
        )?;
        let totals = self.backend.download(&self.totals)?;
        let t = |i: usize| f64::from(totals[[0, i]]);
        let n = len as f64;
        let classify = self.trainer.loss.has_accuracy();
        let record = EpochRecord {
            epoch: self.epoch,
            step: self.step,
            loss: t(slot::TRAIN + 2) / n,
            accuracy: classify.then(|| t(slot::TRAIN + 3) / n),
            val_loss: self
                .validation
                .as_ref()
                .map(|(d, _)| t(slot::VALIDATION + 2) / d.len as f64),
            val_accuracy: self
                .validation
                .as_ref()
                .filter(|_| classify)
                .map(|(d, _)| t(slot::VALIDATION + 3) / d.len as f64),
            grad_norm: self.trainer.monitor.then(|| t(slot::STATS).sqrt()),
            update_ratio: self.trainer.monitor.then(|| {
                let (param, update) = (t(slot::STATS + 1).sqrt(), t(slot::STATS + 2).sqrt());
                if update == 0.0 { 0.0 } else { update / param }
            }),
            lr: self.lr_of(self.step),
        };
        self.check_divergence(record.loss)?;
        if let Some(val_loss) = record.val_loss {
            self.check_divergence(val_loss)?;
        }
        let params_squared = t(slot::SCRATCH);
        if !params_squared.is_finite() {
            return self
                .diverged(
                    record.loss,
                    format!("Σθ² = {params_squared} after the epoch's last update"),
                )
                .map(|()| record);
        }
        self.backend
            .copy_arena(&self.model.network().params, &mut self.last_good)?;
        if let Some(swa) = swa {
            self.anneal_to_swa_rate(swa)?;
        }
        self.backend.fill(&mut self.totals, 0.0)?;
        self.history.epochs.push(record);
        if let Some(bar) = &self.progress {
            bar.set_position(self.epoch as u64);
            bar.set_message(format!("loss {:.4}", record.loss));
        }
        Ok(record)
    }

    /// Trains until a stopping rule fires. With a checkpoint path configured, the state is saved
    /// before the first epoch and after every epoch, so the file always holds the last good one.
    pub fn run(&mut self) -> Result<()> {
        let checkpoint = self.trainer.checkpoint.clone();
        if let (Some(path), 0) = (&checkpoint, self.step) {
            self.save_checkpoint(path)?;
        }
        while self.epoch < self.trainer.epochs || self.order.is_some() && !self.epoch_done() {
            let record = self.run_epoch()?;
            // The rules see the epoch before it is saved, so the file remembers it too.
            self.keep_if_best(&record)?;
            let stop = self.stop_reason(&record);
            self.reduce_lr_on_plateau(&record)?;
            if let Some(path) = &checkpoint {
                self.save_checkpoint(path)?;
            }
            if let Some(reason) = stop {
                self.history.stop = reason;
                return self.end_run();
            }
        }
        self.history.stop = StopReason::MaxEpochs;
        self.end_run()
    }

    /// SWA's rate after an averaged epoch: one `SWALR` step from the rate the optimizer has
    /// now (the schedule's for the next update, or the last SWA rate), the schedule no longer
    /// stepping.
    fn anneal_to_swa_rate(&mut self, swa: Swa) -> Result<()> {
        let steps = self.average.as_ref().map_or(0, |a| a.count);
        let lr = swa.lr_after(steps, self.optimizer.lr_at(self.step.saturating_add(1)));
        self.optimizer.set_schedule(LrSchedule::constant())?;
        self.optimizer.set_lr(lr)
    }

    /// What a run ends with in the model: the best epoch's parameters (`restore_best`), else
    /// the average (`Trainer::ema`, `Trainer::swa`) once it holds an update, else the
    /// parameters trained.
    fn end_run(&mut self) -> Result<()> {
        if self.restore_best_epoch()? {
            return Ok(());
        }
        match self.average.as_ref().and_then(Average::holding) {
            Some(average) => self
                .backend
                .copy_arena(average, &mut self.model.network_mut().params),
            None => Ok(()),
        }
    }
}

impl Trainer {
    /// Trains `model` on `train` until a stopping rule fires, evaluating on `validation` after
    /// every epoch. On divergence the model keeps the parameters of the last good epoch and
    /// the error names the step and the loss.
    pub fn fit<B: Backend, M: Model<B>>(
        &self,
        backend: &B,
        model: &mut M,
        train: &Dataset,
        validation: Option<&Dataset>,
    ) -> Result<History> {
        let mut session = Session::new(self, backend, model, train, validation)?;
        session.run()?;
        Ok(session.into_history())
    }
}
