//! A `Sequential` model's parameters as host values: flat, or by PyTorch's `state_dict` names;
//! and the standardisation attached to it.

use ndarray::{ArrayD, IxDyn};

use super::Sequential;
use crate::backend::Backend;
use crate::error::{Error, Result};

impl<B: Backend> Sequential<B> {
    /// Every parameter in arena order (layer by layer, each tensor row-major), each layer's
    /// buffers ([`Layer::buffers`](super::Layer::buffers)) after its parameters.
    pub fn parameters_flat(&self, backend: &B) -> Result<Vec<f32>> {
        backend.read_arena(&self.params)
    }

    /// Sets every parameter from values laid out as [`Sequential::parameters_flat`] returns
    /// them. A value that is not finite is refused (as a model file's or an optimizer state's
    /// are), and nothing changes.
    pub fn set_parameters_flat(&mut self, backend: &B, values: &[f32]) -> Result<()> {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Data {
                op: "set_parameters_flat",
                detail: format!(
                    "values[{i}] is {}: every parameter must be finite",
                    values[i]
                ),
            });
        }
        backend.write_arena(&mut self.params, values)
    }

    /// The parameters and buffers by PyTorch's names and shapes (a linear layer's `weight`
    /// `[out, in]`, `bias` `[out]`; a batch norm's `running_mean`), so weights move between
    /// the two (PyTorch's batch norms also keep an I64 `num_batches_tracked`, which a
    /// `load_state_dict` without it fills in).
    pub fn state_dict(&self, backend: &B) -> Result<Vec<(String, ArrayD<f32>)>> {
        let flat = self.parameters_flat(backend)?;
        let mut at = 0;
        let mut out = Vec::new();
        for p in self.parameter_specs() {
            let len = p.rows * p.cols;
            let values = flat.get(at..at + len).unwrap_or_default().to_vec();
            at += len;
            let array = ArrayD::from_shape_vec(IxDyn(&p.torch_shape), values).map_err(|e| {
                Error::Shape {
                    op: "state_dict",
                    detail: format!("{}: {e}", p.name),
                }
            })?;
            out.push((p.name.clone(), array));
        }
        Ok(out)
    }

    /// Loads parameters by name (as [`Sequential::state_dict`] gives them). Every expected name
    /// must be present with its exact shape and finite values; on any error nothing is
    /// changed.
    pub fn load_state_dict(
        &mut self,
        backend: &B,
        tensors: &[(String, ArrayD<f32>)],
    ) -> Result<()> {
        let mut values = Vec::with_capacity(self.parameter_count());
        for p in self.parameter_specs() {
            let Some((_, array)) = tensors.iter().find(|(n, _)| *n == p.name) else {
                return Err(Error::Shape {
                    op: "load_state_dict",
                    detail: format!("tensor {} is missing", p.name),
                });
            };
            if array.shape() != p.torch_shape.as_slice() {
                return Err(Error::Shape {
                    op: "load_state_dict",
                    detail: format!(
                        "tensor {} has shape {:?}, the model needs {:?}",
                        p.name,
                        array.shape(),
                        p.torch_shape
                    ),
                });
            }
            if let Some((i, v)) = array.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::Data {
                    op: "load_state_dict",
                    detail: format!(
                        "tensor {} holds {v} at index {i}: every parameter must be finite",
                        p.name
                    ),
                });
            }
            values.extend(array.iter().copied());
        }
        self.set_parameters_flat(backend, &values)
    }

    /// The standardisation [`Sequential::predict`] applies to raw inputs first, if any.
    pub fn standardizer(&self) -> Option<&crate::data::Standardizer> {
        self.standardizer.as_ref()
    }

    /// Attaches the standardisation the training data got (or none), so that
    /// [`Sequential::predict`] takes raw inputs and the model's file carries it. Training
    /// still takes standardised data ([`crate::Standardizer::transform`]). Fails if it was
    /// fitted on another number of features.
    pub fn set_standardizer(
        &mut self,
        standardizer: Option<crate::data::Standardizer>,
    ) -> Result<()> {
        if let Some(s) = &standardizer
            && s.mean().len() != self.inputs()
        {
            return Err(Error::Shape {
                op: "set_standardizer",
                detail: format!(
                    "the standardizer was fitted on {} features, the network takes {}",
                    s.mean().len(),
                    self.inputs()
                ),
            });
        }
        self.standardizer = standardizer;
        Ok(())
    }
}
