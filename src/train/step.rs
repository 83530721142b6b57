//! What one step records, shared by the session's own steps, the steps on given batches, the
//! validation pass and the line search: the per-batch-size workspaces, the data on the
//! backend, the fused loss, and `Descent` (forward, loss, backward, update, one submit).

use super::Trainer;
use super::session::slot;
use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Mode, Workspace};
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
        self.optimizer.step(params, grads)?;
        if self.trainer.monitor {
            self.optimizer.stats_into(self.totals, slot::STATS)?;
        }
        backend.flush()
    }
}
