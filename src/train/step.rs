//! What one step records, shared by the session's own steps, the steps on given batches, the
//! validation pass and the line search: the per-batch-size workspaces, the data on the
//! backend, the fused loss, and where a step's batch comes from (`Batch`); `Session::descend`
//! records the step itself.

use ndarray::s;

use crate::backend::{Backend, LossShare};
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

/// The fused loss of the model output in `acts` against `target` into `totals[slot..]`; in
/// training mode, also ∂loss/∂output for the backward pass, as `share` of its update.
pub(crate) fn batch_loss<B: Backend>(
    backend: &B,
    loss: crate::nn::Loss,
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
    backend.loss_into(loss, output, target, grad, share, totals, slot)
}

/// A dataset on the backend: its inputs and targets, row for row, in one pair of matrices,
/// or in several of consecutive rows where one would be over the backend's
/// [`Backend::max_matrix_elements`] (a dataset larger than one GPU binding).
pub(crate) struct DeviceData<B: Backend> {
    shards: Vec<(B::Matrix, B::Matrix)>,
    pub len: usize,
}

impl<B: Backend> DeviceData<B> {
    pub fn upload(backend: &B, data: &Dataset) -> Result<Self> {
        Self::upload_in_shards(backend, data, backend.max_matrix_elements())
    }

    /// `data` in shards of at most `max_elements` elements per matrix (at least one row).
    fn upload_in_shards(backend: &B, data: &Dataset, max_elements: usize) -> Result<Self> {
        let width = data.features().max(data.y().ncols()).max(1);
        let rows_per_shard = (max_elements / width).max(1);
        let shards = (0..data.len())
            .step_by(rows_per_shard)
            .map(|first| {
                let rows = first..data.len().min(first.saturating_add(rows_per_shard));
                Ok((
                    backend.upload(data.x().slice(s![rows.clone(), ..]))?,
                    backend.upload(data.y().slice(s![rows, ..]))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            shards,
            len: data.len(),
        })
    }

    /// The rows `order[start..]` into `outputs` (see [`Backend::gather_batch_into`]).
    pub fn gather(
        &self,
        backend: &B,
        order: &B::Indices,
        start: usize,
        outputs: (&mut B::Matrix, &mut B::Matrix),
    ) -> Result<()> {
        match self.shards.as_slice() {
            // The usual case, without allocating.
            [(x, y)] => backend.gather_batch_into(&[(x, y)], order, start, outputs),
            shards => {
                let shards: Vec<_> = shards.iter().map(|(x, y)| (x, y)).collect();
                backend.gather_batch_into(&shards, order, start, outputs)
            }
        }
    }

    /// The matrices holding the data: one pair, or more where it is in shards.
    #[cfg(test)]
    fn shards(&self) -> usize {
        self.shards.len()
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

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::DeviceData;
    use crate::CpuBackend;
    use crate::backend::Backend;
    use crate::data::Dataset;

    /// Shards of consecutive rows, the last one shorter, gather what the data whole gathers.
    #[test]
    fn data_in_shards_gathers_as_the_whole() {
        let x = Array2::from_shape_fn((10, 3), |(i, j)| (10 * i + j) as f32);
        let labels: Vec<usize> = (0..10).map(|i| i % 3).collect();
        let data = Dataset::classification(x, &labels, 3).unwrap();
        let whole = DeviceData::upload(&CpuBackend, &data).unwrap();
        // 3 features a row: 9 elements hold 3 rows, so 10 rows take shards of 3, 3, 3 and 1.
        let shards = DeviceData::upload_in_shards(&CpuBackend, &data, 9).unwrap();
        assert_eq!((whole.shards(), shards.shards()), (1, 4));
        let order = vec![9, 0, 4, 3, 8, 2, 7, 1, 6, 5];
        let gathered = |d: &DeviceData<CpuBackend>| {
            let (mut x, mut y) = (Array2::zeros((6, 3)), Array2::zeros((6, 1)));
            d.gather(&CpuBackend, &order, 2, (&mut x, &mut y)).unwrap();
            (x, y)
        };
        let (x, y) = gathered(&shards);
        assert_eq!((&x, &y), (&gathered(&whole).0, &gathered(&whole).1));
        assert_eq!(
            x.column(0).to_vec(),
            vec![40.0, 30.0, 80.0, 20.0, 70.0, 10.0]
        );
        assert_eq!(CpuBackend.max_matrix_elements(), usize::MAX);
    }
}
