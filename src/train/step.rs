//! What one step records, shared by the session's own steps, the steps on given batches, the
//! validation pass and the line search: the per-batch-size workspaces, the data on the
//! backend, the fused loss, and where a step's batch comes from (`Batch`); `Session::descend`
//! records the step itself.

use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Mode, Workspace};

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
    backend.gather_batch_into(
        (&data.x, &data.y),
        order,
        start,
        (&mut ws.input, &mut ws.target),
    )?;
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

/// Fails unless `what` (the data, a batch) has the `inputs` features the model takes.
pub(super) fn check_features(
    op: &'static str,
    what: &str,
    features: usize,
    inputs: usize,
) -> Result<()> {
    if features != inputs {
        return Err(Error::Data {
            op,
            detail: format!("{what} has {features} features, the model takes {inputs}"),
        });
    }
    Ok(())
}
