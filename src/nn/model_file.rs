//! Model files: an `Mlp`'s parameters under PyTorch's `state_dict` names, with the
//! architecture, activations and standardisation in the metadata, so a file describes the model
//! it holds (`Mlp::{save,load,from}_safetensors`).

use std::collections::HashMap;
use std::path::Path;

use crate::backend::Backend;
use crate::error::Result;
use crate::nn::{Mlp, MlpSpec, ParamSpec, Sequential};
use crate::tensor_file::{File, Tensor, corrupt, decode, encode, read, write_atomic};

/// Floats as metadata text: Rust's shortest exact form, comma-separated (parses back to the
/// same bits).
fn float_list<'a>(values: impl Iterator<Item = &'a f32>) -> String {
    values
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The standardizer a file's metadata carries, if any.
fn saved_standardizer(file: &File, path: &Path) -> Result<Option<crate::data::Standardizer>> {
    let parse = |key: &str| -> Result<Option<Vec<f32>>> {
        let Some(text) = file.metadata.get(key) else {
            return Ok(None);
        };
        text.split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Some)
            .map_err(|e| {
                corrupt(
                    path,
                    format!("metadata {key:?} is not a list of numbers: {e}"),
                )
            })
    };
    match (parse("standardizer.mean")?, parse("standardizer.std")?) {
        (Some(mean), Some(std)) => crate::data::Standardizer::new(mean, std)
            .map(Some)
            .map_err(|e| corrupt(path, format!("the saved standardizer: {e}"))),
        (None, None) => Ok(None),
        _ => Err(corrupt(
            path,
            "the file has one of standardizer.mean and standardizer.std without the other",
        )),
    }
}

/// The spec an [`architecture`] line describes, or `None` if it is not one.
fn parse_architecture(text: &str) -> Option<MlpSpec> {
    let mut parts = text.split('-');
    let mut spec = MlpSpec::new(parts.next()?.parse().ok()?);
    for layer in parts {
        let (outputs, activation) = layer.split_once(':')?;
        let activation = crate::Activation::ALL
            .into_iter()
            .find(|a| a.name() == activation)?;
        spec = spec.layer(outputs.parse().ok()?, activation);
    }
    (!spec.layers().is_empty()).then_some(spec)
}

/// Where a saved architecture line and `spec` first differ, in words.
fn architecture_difference(saved: &str, spec: &MlpSpec) -> String {
    let Some(saved) = parse_architecture(saved) else {
        return "the saved architecture is not one steepest wrote".into();
    };
    if saved.inputs() != spec.inputs() {
        return format!(
            "the file takes {} inputs, the model {}",
            saved.inputs(),
            spec.inputs()
        );
    }
    if saved.layers().len() != spec.layers().len() {
        return format!(
            "the file has {} layers, the model {}",
            saved.layers().len(),
            spec.layers().len()
        );
    }
    for (i, (a, b)) in saved.layers().iter().zip(spec.layers()).enumerate() {
        if a.outputs != b.outputs {
            return format!(
                "layer {i} has {} outputs in the file, {} in the model",
                a.outputs, b.outputs
            );
        }
        if a.activation != b.activation {
            return format!(
                "layer {i}'s activation is {} in the file, {} in the model",
                a.activation.name(),
                b.activation.name()
            );
        }
    }
    "they differ".into()
}

/// The model's parameters as `(name, shape, values)`, shapes as PyTorch holds them.
pub(crate) fn parameter_tensors<B: Backend>(
    model: &Sequential<B>,
    backend: &B,
) -> Result<Vec<Tensor>> {
    Ok(model
        .state_dict(backend)?
        .into_iter()
        .map(|(name, array)| {
            let shape = array.shape().to_vec();
            (name, shape, array.into_iter().collect())
        })
        .collect())
}

/// The values of the tensors `specs` names from `file`, in arena order; a non-finite value is
/// an error naming the tensor.
pub(crate) fn parameter_values(file: &File, path: &Path, specs: &[ParamSpec]) -> Result<Vec<f32>> {
    let mut values = Vec::new();
    for p in specs {
        let found = file.take(path, &p.name, &p.torch_shape)?;
        values.extend_from_slice(finite(path, &p.name, found)?);
    }
    Ok(values)
}

/// `values` of tensor `name`, or an error naming the first non-finite one.
fn finite<'v>(path: &Path, name: &str, values: &'v [f32]) -> Result<&'v [f32]> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(corrupt(
            path,
            format!(
                "tensor {name} holds {} at index {i}: values must be finite",
                values[i]
            ),
        )),
        None => Ok(values),
    }
}

impl<B: Backend> Mlp<B> {
    /// Saves the parameters alone as safetensors (`layers.{i}.weight` `[out, in]`,
    /// `layers.{i}.bias` `[out]`), loadable by PyTorch's `safetensors.torch.load_file` into a
    /// module holding its `nn.Linear`s in a `layers` list. The save is atomic.
    pub fn save_safetensors(&self, backend: &B, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut metadata = HashMap::from([
            ("format".to_string(), "pt".to_string()),
            ("architecture".to_string(), self.spec().architecture()),
        ]);
        if let Some(s) = self.standardizer() {
            metadata.insert("standardizer.mean".into(), float_list(s.mean().iter()));
            metadata.insert("standardizer.std".into(), float_list(s.std().iter()));
        }
        let bytes = encode(path, &parameter_tensors(self, backend)?, metadata)?;
        write_atomic("save model file", path, &bytes)
    }

    /// Loads parameters from safetensors (as saved by [`Mlp::save_safetensors`], by PyTorch, or
    /// inside a training checkpoint). Every `layers.{i}.*` tensor must be present, F32, finite,
    /// with its exact shape; other tensors are ignored. A file that describes its architecture
    /// (steepest's files do) must describe this model's: a file saved from a tanh network does
    /// not load into a relu one. On any error the model is unchanged.
    pub fn load_safetensors(&mut self, backend: &B, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let file = decode(path, &read("load model file", path)?)?;
        if let Some(saved) = file.metadata.get("architecture") {
            let ours = self.spec().architecture();
            if *saved != ours {
                return Err(corrupt(
                    path,
                    format!(
                        "saved from a {saved} network, this model is {ours}: {}",
                        architecture_difference(saved, self.spec())
                    ),
                ));
            }
        }
        let values = parameter_values(&file, path, self.parameter_specs())?;
        let standardizer = saved_standardizer(&file, path)?;
        if standardizer.is_some() {
            self.set_standardizer(standardizer.clone())?;
        }
        self.set_parameters_flat(backend, &values)
    }

    /// A model rebuilt from a file alone: its architecture from the file's metadata (as
    /// [`Mlp::save_safetensors`] and training checkpoints write it), its parameters from the
    /// tensors. A file without that metadata (PyTorch's own) cannot say which activations
    /// follow its layers: build the [`MlpSpec`] and use [`Mlp::load_safetensors`].
    pub fn from_safetensors(backend: &B, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = decode(path, &read("load model file", path)?)?;
        let text = file.meta(path, "architecture").map_err(|_| {
            corrupt(
                path,
                "the file does not describe its architecture (no \"architecture\" metadata); \
                 build the MlpSpec and use Mlp::load_safetensors",
            )
        })?;
        let spec = parse_architecture(text).ok_or_else(|| {
            corrupt(
                path,
                format!("architecture {text:?} is not one steepest wrote"),
            )
        })?;
        let mut model = Mlp::new(backend, &spec, crate::nn::Init::default(), 0)?;
        let values = parameter_values(&file, path, model.parameter_specs())?;
        model.set_parameters_flat(backend, &values)?;
        model.set_standardizer(saved_standardizer(&file, path)?)?;
        Ok(model)
    }
}
