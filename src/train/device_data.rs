//! The data on the backend: a dataset uploaded once (in shards of consecutive rows where one
//! matrix would not hold it) and gathered into batches there, the checks data passes before
//! it gets there, and the whole dataset as one batch for the full-batch methods
//! (`LineSearch`, `Lbfgs`).

use ndarray::s;

use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::Workspace;

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

/// Fails unless `what` (the data, a batch) has the features the model takes and values its
/// layers accept ([`Layer::check_data`](crate::nn::Layer::check_data): an embedding's
/// indices).
pub(super) fn check_inputs<B: Backend>(
    op: &'static str,
    what: &str,
    x: ndarray::ArrayView2<'_, f32>,
    net: &crate::nn::Sequential<B>,
) -> Result<()> {
    check_features(op, what, x.ncols(), net.inputs())?;
    net.check_data(op, x)
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

/// What a full-batch method works with: the whole dataset in one batch, and its loss's class
/// weights on the backend, if any.
pub(super) struct WholeBatch<M> {
    pub ws: Workspace<M>,
    pub class_weights: Option<M>,
}

/// The whole of `data` as one batch in a new workspace, for the full-batch methods
/// (`LineSearch`, `Lbfgs`), after the data is checked against `model` and `loss` (`op` names
/// the caller in the errors); and their class weights, if any (with the name of their
/// setting, for its errors), checked and uploaded.
pub(super) fn whole_batch<B: Backend>(
    backend: &B,
    model: &crate::nn::Sequential<B>,
    data: &Dataset,
    loss: crate::nn::Loss,
    (op, weights): (&'static str, Option<(&'static str, &[f32])>),
) -> Result<WholeBatch<B::Matrix>> {
    super::Trainer::new(crate::Sgd::default(), loss)
        .full_batch()
        .check(op, model, data, None)?;
    if let Some((setting, weights)) = weights {
        super::checks::check_class_weights_for(setting, loss, weights, model.outputs())?;
    }
    check_inputs(op, "the data", data.x().view(), model)?;
    let device = DeviceData::upload(backend, data)?;
    let all: Vec<u32> = (0..data.len() as u32).collect();
    let all = backend.upload_indices(&all)?;
    let mut ws = model.workspace(backend, data.len(), loss.target_cols(model.outputs()))?;
    device.gather(backend, &all, 0, (&mut ws.input, &mut ws.target))?;
    let class_weights = weights
        .map(|(setting, weights)| super::session::upload_class_weights(backend, setting, weights))
        .transpose()?;
    Ok(WholeBatch { ws, class_weights })
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
