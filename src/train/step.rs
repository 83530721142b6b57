//! What one step records: the session's steps (`Session::step` on the epoch's next batches,
//! `descend` on a given one; each batch's `gradient`, summed into its step's where a step
//! accumulates several; the `update`), and what they share with the validation pass and the
//! full-batch methods: the per-batch-size workspaces, the fused loss, and where a step's batch
//! comes from (`Batch`).

use super::average::{Average, Averaging};
use super::device_data::DeviceData;
use super::session::{Pending, slot};
use super::{Session, StepRecord};
use crate::backend::{Backend, LossShare};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Mode, Model, Workspace};
use crate::optim::Optimizer;

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
pub(super) fn forward_loss<B: Backend>(
    backend: &B,
    model: &crate::nn::Sequential<B>,
    loss: (crate::nn::Loss, Option<&B::Matrix>),
    (data, order, start): (&DeviceData<B>, &B::Indices, usize),
    ws: &mut Workspace<B::Matrix>,
    (totals, slot): (&mut B::Matrix, usize),
    (mode, step): (Mode, u64),
) -> Result<()> {
    data.gather(backend, order, start, (&mut ws.input, &mut ws.target))?;
    model.forward_batch(backend, &ws.input, &mut ws.acts, mode, step)?;
    batch_loss(
        backend,
        loss,
        &mut ws.acts,
        &ws.target,
        (totals, slot),
        (mode, LossShare::whole(ws.rows)),
    )
}

/// The fused loss of the model output in `acts` against `target` into `totals[slot..]`
/// (weighted by class where `weights` are given); in training mode, also ∂loss/∂output for the
/// backward pass, as `share` of its update.
pub(crate) fn batch_loss<B: Backend>(
    backend: &B,
    (loss, weights): (crate::nn::Loss, Option<&B::Matrix>),
    acts: &mut crate::nn::Activations<B::Matrix>,
    target: &B::Matrix,
    (totals, slot): (&mut B::Matrix, usize),
    (mode, share): (Mode, LossShare),
) -> Result<()> {
    let (Some(output), Some(grad)) = (acts.outputs.last(), acts.output_grads.last_mut()) else {
        return Err(Error::Shape {
            op: "loss",
            detail: "the model has no layers".into(),
        });
    };
    let grad = (mode == Mode::Train).then_some(grad);
    backend.loss_into(loss, output, target, grad, share, weights, totals, slot)
}

/// Where a step's batch comes from.
pub(super) enum Batch<'b, B: Backend> {
    /// The training set's rows at this position of the epoch's order (gathered on the
    /// backend).
    Epoch(usize),
    /// Host data the application gave (written into the workspace).
    Host(&'b Dataset),
    /// Inputs and targets already on the backend (used as they are).
    Device(&'b B::Matrix, &'b B::Matrix),
}

/// Which of an optimizer step's batches a forward and backward pass is: one of `count`
/// whose gradients the step sums (gradient accumulation), the step being over `step_rows`
/// samples.
#[derive(Clone, Copy, Debug)]
struct Part {
    index: usize,
    count: usize,
    step_rows: usize,
}

impl<B: Backend, M: Model<B>> Session<'_, B, M> {
    /// One optimizer step on the next mini-batch (the next
    /// [`Trainer::accumulate_grad_batches`](super::Trainer::accumulate_grad_batches) of them, or what the epoch has left), starting a
    /// new epoch (a fresh shuffle, or the data in order, as [`Trainer::batch_order`](super::Trainer::batch_order) says)
    /// when the last one is used up. Recorded and submitted once (with the steps before it,
    /// every [`Trainer::steps_per_submit`](super::Trainer::steps_per_submit) steps); reads back only when this step is logged.
    pub fn step(&mut self) -> Result<()> {
        self.train_len("Session::step")?;
        let len = self.epoch_len();
        self.check_no_pending("Session::step")?;
        if self.order.is_none() || self.epoch_done() {
            // The finished epoch's order memory takes the new one (nothing allocated).
            self.end_epoch_order();
            self.epoch += 1;
            self.position = 0;
            self.order = Some(self.epoch_order()?);
        }
        let batch = self.batch_rows();
        let step_rows = batch
            .saturating_mul(self.trainer.accumulate)
            .min(len - self.position);
        let count = step_rows.div_ceil(batch);
        for index in 0..count {
            let done = index * batch;
            let part = Part {
                index,
                count,
                step_rows,
            };
            let rows = batch.min(step_rows - done);
            self.gradient(rows, Batch::Epoch(self.position + done), part)?;
        }
        self.update(step_rows)?;
        self.position += step_rows;
        Ok(())
    }

    /// A given batch of `rows` samples: its gradient, and the update where it completes a
    /// step. With gradient accumulation over k batches, each given batch is a kth of a step
    /// (PyTorch's `(loss / k).backward()`), the kth given one updating.
    pub(super) fn descend(&mut self, rows: usize, batch: Batch<'_, B>) -> Result<()> {
        let (index, count) = (self.pending.batches, self.trainer.accumulate);
        let part = Part {
            index,
            count,
            step_rows: rows.saturating_mul(count),
        };
        self.gradient(rows, batch, part)?;
        let samples = match index {
            0 => rows,
            _ => self.pending.samples.saturating_add(rows),
        };
        if index + 1 < count {
            self.pending = Pending {
                batches: index + 1,
                samples,
            };
            return Ok(());
        }
        self.pending = Pending::default();
        self.update(samples)
    }

    /// Given batches whose gradients are summed and await the rest of their step
    /// ([`Trainer::accumulate_grad_batches`](super::Trainer::accumulate_grad_batches)): from 0 (after a step) to k − 1.
    pub fn pending_batches(&self) -> usize {
        self.pending.batches
    }

    /// Fails, naming `op`, while given batches await the rest of their step: what they
    /// summed would be lost.
    pub(super) fn check_no_pending(&self, op: &'static str) -> Result<()> {
        match self.pending.batches {
            0 => Ok(()),
            pending => Err(Error::Data {
                op,
                detail: format!(
                    "{pending} given batch(es) of a step of {} await the rest of their step \
                     (accumulate_grad_batches): give the rest with step_on_batch or step_on \
                     first",
                    self.trainer.accumulate
                ),
            }),
        }
    }

    /// The forward pass, the loss and the backward pass of `rows` samples of `batch`, as
    /// `part` of a step: the gradient arena then holds the step's gradient (summed with the
    /// step's earlier batches', at its last batch).
    fn gradient(&mut self, rows: usize, batch: Batch<'_, B>, part: Part) -> Result<()> {
        let backend = self.backend;
        let net = self.model.network_mut();
        let ws = workspace(&mut self.workspaces, backend, net, self.trainer.loss, rows)?;
        let (input, target) = match batch {
            Batch::Epoch(start) => {
                let (Some(order), Some(train)) = (&self.order, &self.train) else {
                    return Err(Error::Data {
                        op: "Session::step",
                        detail: "no epoch order".into(),
                    });
                };
                train.gather(backend, order, start, (&mut ws.input, &mut ws.target))?;
                (&ws.input, &ws.target)
            }
            Batch::Host(data) => {
                backend.write(&mut ws.input, data.x().view())?;
                backend.write(&mut ws.target, data.y().view())?;
                (&ws.input, &ws.target)
            }
            Batch::Device(x, y) => (x, y),
        };
        let acts = &mut ws.acts;
        // Each of a step's batches draws its own dropout masks (one batch a step: the step's).
        let draw = (self.step.wrapping_mul(self.trainer.accumulate as u64))
            .wrapping_add(part.index as u64);
        net.train_forward_batch(backend, input, acts, draw)?;
        let totals = (&mut self.totals, slot::TRAIN);
        let share = LossShare {
            update_rows: part.step_rows,
            first: part.index == 0,
        };
        batch_loss(
            backend,
            (self.trainer.loss, self.class_weights.as_ref()),
            acts,
            target,
            totals,
            (Mode::Train, share),
        )?;
        net.backward_batch(backend, input, acts, &self.frozen)?;
        if part.count == 1 {
            return Ok(());
        }
        let Some(sum) = &mut self.grad_sum else {
            return Err(Error::Data {
                op: "Session::step",
                detail: "a step over several batches without their gradients' sum".into(),
            });
        };
        // The first batch's gradients become the sum by trading arenas with it: nothing is
        // copied, and the later batches' backward passes write into the sum's old arena.
        // Each later batch's gradients are added to the sum, and the last trades the arenas
        // back, so the update reads the model's own arena (whose bind groups it keeps). The
        // sum is formed as PyTorch's `grad += new` forms it: in batch order, two values at a
        // time.
        if part.index == 0 {
            crate::backend::check_same_tensors("Session::step", sum, &net.grads)?;
        } else {
            backend.axpy_arena(1.0, &net.grads, sum)?;
        }
        if part.index == 0 || part.index + 1 == part.count {
            std::mem::swap(sum, &mut net.grads);
        }
        Ok(())
    }

    /// The optimizer's update from the gradient arena, recorded and submitted (every
    /// `steps_per_submit` steps), then the step counted (and logged when due) over `rows`
    /// samples.
    fn update(&mut self, rows: usize) -> Result<()> {
        let backend = self.backend;
        let net = self.model.network_mut();
        let (params, grads) = net.parameters_and_gradients();
        self.optimizer.step(params, grads)?;
        // An exponential average folds in every step (an equal one, every epoch).
        let every_step = |a: &&mut Average<B>| matches!(a.averaging, Averaging::Exponential { .. });
        if let Some(average) = self.average.as_mut().filter(every_step) {
            average.update(backend, &net.params)?;
        }
        if self.trainer.monitor {
            self.optimizer.stats_into(&mut self.totals, slot::STATS)?;
        }
        // Every `steps_per_submit`-th step submits what is pending (its own and the steps
        // recorded since the last submit); anything that reads back submits first.
        if (self.step + 1).is_multiple_of(self.trainer.steps_per_submit) {
            backend.flush()?;
        }
        self.after_step(rows)
    }

    /// Counts a step just submitted over `rows` samples, and logs it when due.
    fn after_step(&mut self, rows: usize) -> Result<()> {
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
}
