//! `Session`: one training run in progress, step by step. Each step records gather, forward,
//! loss, backward, clipping and the update, then submits once; the host reads back only at
//! epoch ends and at logged steps.

use std::io::IsTerminal;

use super::{BatchOrder, EpochRecord, History, StepRecord, StopReason, Trainer};
use crate::backend::{Arena, Backend};
use crate::data::{Dataset, shuffled};
use crate::error::{Error, Result};
use crate::nn::{Mlp, Mode, Model, Workspace, seeded};

/// Layout of the totals row the kernels accumulate into (one readback gets everything).
pub(crate) mod slot {
    /// Batch loss, batch correct, epoch loss, epoch correct.
    pub const TRAIN: usize = 0;
    /// The same for the validation pass.
    pub const VALIDATION: usize = 4;
    /// Σg², Σθ², ΣΔθ² of the last step.
    pub const STATS: usize = 8;
    /// Scratch for single values (line search).
    pub const SCRATCH: usize = 11;
    /// Entries in all.
    pub const LEN: usize = 12;
}

/// The workspace for batches of `rows` samples, built on first use (one per batch size seen:
/// the full batches, the last shorter one, the validation chunks).
pub(super) fn workspace<'w, B: Backend>(
    workspaces: &'w mut Vec<Workspace<B::Matrix>>,
    backend: &B,
    model: &crate::nn::Sequential<B>,
    loss: crate::nn::Loss,
    rows: usize,
) -> Result<&'w mut Workspace<B::Matrix>> {
    let index = match workspaces.iter().position(|w| w.rows == rows) {
        Some(i) => i,
        None => {
            let target_cols = loss.target_cols(model.outputs());
            workspaces.push(model.workspace(backend, rows, target_cols)?);
            workspaces.len() - 1
        }
    };
    Ok(&mut workspaces[index])
}

/// Gathers the batch at `start` of `data` in `order` into `ws`, runs the forward pass and the
/// fused loss into `totals[slot..]`; with `grad`, also ∂loss/∂logits for the backward pass.
fn forward_loss<B: Backend>(
    backend: &B,
    model: &crate::nn::Sequential<B>,
    loss: crate::nn::Loss,
    (data, order, start): (&DeviceData<B>, &B::Indices, usize),
    ws: &mut Workspace<B::Matrix>,
    (totals, slot): (&mut B::Matrix, usize),
    (mode, step): (Mode, u64),
) -> Result<()> {
    backend.gather_rows_into(&data.x, order, start, &mut ws.input)?;
    backend.gather_rows_into(&data.y, order, start, &mut ws.target)?;
    model.forward_batch(backend, &ws.input, &mut ws.acts, mode, step)?;
    batch_loss(
        backend,
        loss,
        &mut ws.acts,
        &ws.target,
        (totals, slot),
        mode,
    )
}

/// The fused loss of the model output in `acts` against `target` into `totals[slot..]`; in
/// training mode, also ∂loss/∂output for the backward pass.
pub(crate) fn batch_loss<B: Backend>(
    backend: &B,
    loss: crate::nn::Loss,
    acts: &mut crate::nn::Activations<B::Matrix>,
    target: &B::Matrix,
    (totals, slot): (&mut B::Matrix, usize),
    mode: Mode,
) -> Result<()> {
    let (Some(output), Some(grad)) = (acts.outputs.last(), acts.output_grads.last_mut()) else {
        return Err(Error::Shape {
            op: "loss",
            detail: "the model has no layers".into(),
        });
    };
    let grad = (mode == Mode::Train).then_some(grad);
    backend.loss_into(loss, output, target, grad, totals, slot)
}

/// A dataset on the backend.
pub(crate) struct DeviceData<B: Backend> {
    pub x: B::Matrix,
    pub y: B::Matrix,
    pub len: usize,
}

impl<B: Backend> DeviceData<B> {
    pub fn upload(backend: &B, data: &Dataset) -> Result<Self> {
        Ok(Self {
            x: backend.upload(data.x().view())?,
            y: backend.upload(data.y().view())?,
            len: data.len(),
        })
    }
}

/// One training run in progress: [`Session::step`] takes one optimizer step,
/// [`Session::run_epoch`] finishes the current epoch, [`Session::run`] trains to the end.
pub struct Session<'a, B: Backend, M: Model<B> = Mlp<B>> {
    pub(super) trainer: &'a Trainer,
    pub(super) backend: &'a B,
    pub(super) model: &'a mut M,
    /// The training data, or none for a session that trains on given batches only.
    pub(super) train: Option<DeviceData<B>>,
    validation: Option<(DeviceData<B>, B::Indices)>,
    pub(super) optimizer: B::Optimizer,
    pub(super) totals: B::Matrix,
    /// One per batch size seen (the full batches and the last, shorter one).
    pub(super) workspaces: Vec<Workspace<B::Matrix>>,
    /// This epoch's sample order, and how far into it the steps have gone.
    pub(super) order: Option<B::Indices>,
    /// The last epoch's order, kept so the next one is written into its memory.
    spare_order: Option<B::Indices>,
    pub(super) position: usize,
    pub(super) epoch: usize,
    pub(super) step: u64,
    /// Samples in the last step's batch.
    pub(super) last_rows: usize,
    /// The parameters after the last epoch whose loss was finite.
    pub(super) last_good: B::Arena,
    pub(super) first_loss: Option<f64>,
    pub(super) best: Option<(f64, usize)>,
    pub(super) history: History,
    progress: Option<indicatif::ProgressBar>,
}

impl<B: Backend, M: Model<B>> std::fmt::Debug for Session<'_, B, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("trainer", self.trainer)
            .field("epoch", &self.epoch)
            .field("step", &self.step)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<'a, B: Backend, M: Model<B>> Session<'a, B, M> {
    /// Checks the settings and data, uploads the data once and builds the optimizer.
    pub fn new(
        trainer: &'a Trainer,
        backend: &'a B,
        model: &'a mut M,
        train: &Dataset,
        validation: Option<&Dataset>,
    ) -> Result<Self> {
        let net = model.network();
        trainer.check(net.outputs(), train, validation)?;
        if train.features() != net.inputs() {
            return Err(Error::Data {
                op: "Trainer::fit",
                detail: format!(
                    "the data has {} features, the model takes {}",
                    train.features(),
                    net.inputs()
                ),
            });
        }
        let train = DeviceData::upload(backend, train)?;
        Self::build(trainer, backend, model, Some(train), validation)
    }

    /// A session that trains only on batches given to [`Session::step_on_batch`] or
    /// [`Session::step_on`] (a stream, or an order of the application's own): no training set,
    /// no epochs. The trainer's batch size, epochs and stopping rules do not apply.
    pub fn for_batches(trainer: &'a Trainer, backend: &'a B, model: &'a mut M) -> Result<Self> {
        trainer.check_settings()?;
        Self::build(trainer, backend, model, None, None)
    }

    fn build(
        trainer: &'a Trainer,
        backend: &'a B,
        model: &'a mut M,
        train: Option<DeviceData<B>>,
        validation: Option<&Dataset>,
    ) -> Result<Self> {
        let net = model.network();
        let optimizer = backend.optimizer(
            trainer.optimizer,
            &net.params,
            trainer.schedule,
            trainer.clip,
            trainer.monitor,
        )?;
        let validation = match validation {
            Some(v) => {
                let all: Vec<u32> = (0..v.len() as u32).collect();
                Some((
                    DeviceData::upload(backend, v)?,
                    backend.upload_indices(&all)?,
                ))
            }
            None => None,
        };
        let shapes: Vec<(usize, usize)> = net
            .params
            .tensors()
            .iter()
            .map(crate::backend::Matrix::shape)
            .collect();
        let mut last_good = backend.arena("last good parameters", &shapes)?;
        backend.copy_arena(&net.params, &mut last_good)?;
        let progress = (trainer.progress && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(trainer.epochs as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} epoch {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Ok(Self {
            trainer,
            backend,
            train,
            validation,
            optimizer,
            totals: backend.zeros(1, slot::LEN)?,
            workspaces: Vec::new(),
            order: None,
            spare_order: None,
            position: 0,
            epoch: 0,
            step: 0,
            last_rows: 0,
            last_good,
            first_loss: None,
            best: None,
            history: History::default(),
            progress,
            model,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &M {
        self.model
    }

    /// The model, writable (to set parameters between steps).
    pub fn model_mut(&mut self) -> &mut M {
        self.model
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The measurements so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The measurements, ending the session.
    pub fn into_history(self) -> History {
        if let Some(bar) = &self.progress {
            bar.finish();
        }
        self.history
    }

    /// The optimizer's state (PyTorch's names).
    ///
    /// Each buffer holds one value per model parameter, in [`Sequential::parameters_flat`](crate::nn::Sequential::parameters_flat)'s order,
    /// on every backend (the GPU arena's alignment gaps are left out).
    pub fn optimizer_state(&self) -> Result<crate::optim::OptimizerState> {
        let mut state = self.backend.optimizer_state(&self.optimizer)?;
        let params = &self.model.network().params;
        let ranges: Vec<(usize, usize)> = params
            .offsets()
            .into_iter()
            .zip(params.tensors())
            .map(|(start, t)| {
                let (rows, cols) = crate::backend::Matrix::shape(t);
                (start, rows * cols)
            })
            .collect();
        for (_, values) in &mut state.buffers {
            *values = ranges
                .iter()
                .flat_map(|&(start, len)| values[start..start + len].iter().copied())
                .collect();
        }
        Ok(state)
    }

    fn batch_rows(&self) -> usize {
        self.trainer
            .batch_size
            .unwrap_or(self.train.as_ref().map_or(0, |t| t.len))
    }

    /// The learning rate of step `step` (1-based).
    fn lr_of(&self, step: u64) -> f64 {
        self.trainer
            .schedule
            .lr_at(self.trainer.optimizer.lr(), step.saturating_sub(1))
    }

    /// One optimizer step on the next mini-batch, starting a new epoch (a fresh shuffle, or
    /// the data in order, as [`Trainer::batch_order`] says) when the last one is used up.
    /// Recorded and submitted once; reads back only when this step is logged.
    pub fn step(&mut self) -> Result<()> {
        let len = self.train_len("Session::step")?;
        if self.order.is_none() || self.epoch_done() {
            // The finished epoch's order memory takes the new one (nothing allocated).
            self.end_epoch_order();
            self.epoch += 1;
            self.position = 0;
            self.order = Some(self.epoch_order()?);
        }
        let rows = self.batch_rows().min(len - self.position);
        let backend = self.backend;
        let net = self.model.network_mut();
        let ws = workspace(&mut self.workspaces, backend, net, self.trainer.loss, rows)?;
        let (Some(order), Some(train)) = (&self.order, &self.train) else {
            return Err(Error::Data {
                op: "Session::step",
                detail: "no epoch order".into(),
            });
        };
        backend.gather_rows_into(&train.x, order, self.position, &mut ws.input)?;
        backend.gather_rows_into(&train.y, order, self.position, &mut ws.target)?;
        let mut pass = Descent {
            backend,
            trainer: self.trainer,
            optimizer: &mut self.optimizer,
            totals: &mut self.totals,
            step: self.step,
        };
        pass.run(net, &ws.input, &ws.target, &mut ws.acts)?;
        self.position += rows;
        self.after_step(rows)
    }

    /// Counts a step just submitted over `rows` samples, and logs it when due.
    pub(super) fn after_step(&mut self, rows: usize) -> Result<()> {
        self.step += 1;
        self.last_rows = rows;
        if self
            .trainer
            .log_every
            .is_some_and(|every| self.step.is_multiple_of(every))
        {
            let loss = self.last_batch_loss()?;
            self.history.steps.push(StepRecord {
                step: self.step,
                epoch: self.epoch,
                loss,
                lr: self.lr_of(self.step),
            });
            self.check_divergence(loss)?;
        }
        Ok(())
    }

    /// The sample order of the current epoch. A shuffled epoch draws from its own generator,
    /// seeded by (seed, epoch), so a resumed run shuffles exactly as an unbroken one.
    pub(super) fn epoch_order(&mut self) -> Result<B::Indices> {
        let seed = self
            .trainer
            .seed
            .wrapping_add((self.epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let len = self.train_len("Session::step")?;
        let order: Vec<u32> = match self.trainer.batch_order {
            BatchOrder::Shuffled => shuffled(len, &mut seeded(seed))
                .into_iter()
                .map(|i| i as u32)
                .collect(),
            BatchOrder::InOrder => (0..len as u32).collect(),
        };
        match self.spare_order.take() {
            Some(mut spare) => {
                self.backend.write_indices(&mut spare, &order)?;
                Ok(spare)
            }
            None => self.backend.upload_indices(&order),
        }
    }

    /// Closes the current epoch's order, keeping its memory for the next.
    pub(super) fn end_epoch_order(&mut self) {
        if let Some(order) = self.order.take() {
            self.spare_order = Some(order);
        }
    }

    /// Whether the current epoch has used every sample.
    pub(super) fn epoch_done(&self) -> bool {
        self.order.is_some() && self.position >= self.train.as_ref().map_or(0, |t| t.len)
    }

    /// The number of training samples, or an error naming `op` for a session built without
    /// data ([`Session::for_batches`]).
    pub(super) fn train_len(&self, op: &'static str) -> Result<usize> {
        match &self.train {
            Some(train) => Ok(train.len),
            None => Err(Error::Data {
                op,
                detail: "this session was built without training data (Session::for_batches): \
                         give it batches with step_on_batch or step_on"
                    .into(),
            }),
        }
    }

    /// Finishes the current epoch (or runs a whole new one): its remaining steps, the
    /// validation pass, and one readback of every measurement.
    pub fn run_epoch(&mut self) -> Result<EpochRecord> {
        let len = self.train_len("Session::run_epoch")?;
        while !self.epoch_done() {
            self.step()?;
        }
        self.end_epoch_order();
        if let Some((data, all)) = &self.validation {
            let rows = self.batch_rows().max(1024).min(data.len);
            let mut start = 0;
            while start < data.len {
                let n = rows.min(data.len - start);
                let backend = self.backend;
                let net = self.model.network();
                let ws = workspace(&mut self.workspaces, backend, net, self.trainer.loss, n)?;
                forward_loss(
                    backend,
                    net,
                    self.trainer.loss,
                    (data, all, start),
                    ws,
                    (&mut self.totals, slot::VALIDATION),
                    (Mode::Eval, self.step),
                )?;
                start += n;
            }
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
            if let Some(path) = &checkpoint {
                self.save_checkpoint(path)?;
            }
            if let Some(reason) = self.stop_reason(&record) {
                self.history.stop = reason;
                return Ok(());
            }
        }
        self.history.stop = StopReason::MaxEpochs;
        Ok(())
    }
}

/// One descent step's recording: forward, loss, backward, update (and the monitoring sums),
/// then one submit.
pub(super) struct Descent<'s, B: Backend> {
    pub backend: &'s B,
    pub trainer: &'s Trainer,
    pub optimizer: &'s mut B::Optimizer,
    pub totals: &'s mut B::Matrix,
    /// Steps taken before this one.
    pub step: u64,
}

impl<B: Backend> Descent<'_, B> {
    pub fn run(
        &mut self,
        net: &mut crate::nn::Sequential<B>,
        input: &B::Matrix,
        target: &B::Matrix,
        acts: &mut crate::nn::Activations<B::Matrix>,
    ) -> Result<()> {
        let backend = self.backend;
        net.forward_batch(backend, input, acts, Mode::Train, self.step)?;
        batch_loss(
            backend,
            self.trainer.loss,
            acts,
            target,
            (&mut *self.totals, slot::TRAIN),
            Mode::Train,
        )?;
        net.backward_batch(backend, input, acts)?;
        let (params, grads) = net.parameters_and_gradients();
        backend.optimizer_step(self.optimizer, params, grads)?;
        if self.trainer.monitor {
            backend.optimizer_stats_into(self.optimizer, self.totals, slot::STATS)?;
        }
        backend.flush()
    }
}
