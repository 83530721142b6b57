//! Model files: a model's parameters under PyTorch's `state_dict` names, with its architecture
//! line and standardisation in the metadata, so a file says which model it holds
//! (`Sequential::{save,load}_safetensors`, `Mlp`'s, and `Mlp::from_safetensors`, which rebuilds
//! an MLP from its file alone).

use std::collections::HashMap;
use std::path::Path;

use crate::backend::Backend;
use crate::error::Result;
use crate::nn::{Layer, Linear, Mlp, MlpSpec, Model, ParamSpec, Sequential};
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

/// The layers line an architecture line stands for: an MLP's `2-16:relu-2:identity` as
/// `linear(2→16, relu) | linear(16→2, identity)`, the line its network describes itself by;
/// any other line as it is. A file fits a model when this is the model's network's line.
fn layers_line<B: Backend>(text: &str) -> String {
    match parse_architecture(text) {
        Some(spec) => spec
            .layers()
            .iter()
            .map(<Linear as Layer<B>>::describe)
            .collect::<Vec<_>>()
            .join(" | "),
        None => text.to_string(),
    }
}

/// A layers line's top-level layers (a residual block's own ` | ` stays inside its part).
fn top_level_layers(line: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in line.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => {
                parts.push(line[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(line[start..].trim());
    parts
}

/// Where two layers lines first differ, in words.
fn layers_difference(saved: &str, ours: &str) -> String {
    let (saved, ours) = (top_level_layers(saved), top_level_layers(ours));
    match saved.iter().zip(&ours).position(|(a, b)| a != b) {
        Some(i) => format!(
            "layer {i} is {} in the file, {} in the model",
            saved[i], ours[i]
        ),
        None => format!(
            "the file has {} layers, the model {}",
            saved.len(),
            ours.len()
        ),
    }
}

/// Where two MLPs' shapes first differ, in words.
fn mlp_difference(saved: &MlpSpec, spec: &MlpSpec) -> String {
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

/// Refuses a file that describes another architecture than `model`'s, naming the first
/// difference. A file that describes none (PyTorch's own) passes: its tensors decide.
fn check_architecture<B: Backend>(file: &File, path: &Path, model: &impl Model<B>) -> Result<()> {
    let Some(saved) = file.metadata.get("architecture") else {
        return Ok(());
    };
    let (saved_layers, ours) = (layers_line::<B>(saved), model.network().architecture());
    if saved_layers == ours {
        return Ok(());
    }
    let described = model.architecture();
    let difference = match (parse_architecture(saved), parse_architecture(&described)) {
        (Some(saved), Some(spec)) => mlp_difference(&saved, &spec),
        _ => layers_difference(&saved_layers, &ours),
    };
    Err(corrupt(
        path,
        format!("saved from a {saved} network, this model is {described}: {difference}"),
    ))
}

/// Writes `model`'s parameters under their `state_dict` names, its architecture line and its
/// standardisation, atomically.
fn save<B: Backend>(model: &impl Model<B>, backend: &B, path: &Path) -> Result<()> {
    let net = model.network();
    let mut metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("architecture".to_string(), model.architecture()),
    ]);
    if let Some(s) = net.standardizer() {
        metadata.insert("standardizer.mean".into(), float_list(s.mean().iter()));
        metadata.insert("standardizer.std".into(), float_list(s.std().iter()));
    }
    let bytes = encode(path, &parameter_tensors(net, backend)?, metadata)?;
    write_atomic("save model file", path, &bytes)
}

/// Reads a model file into `model`: the architecture checked, every parameter tensor taken
/// by name, a saved standardizer attached. On any error the model is unchanged.
fn load<B: Backend>(model: &mut impl Model<B>, backend: &B, path: &Path) -> Result<()> {
    let file = decode(path, &read("load model file", path)?)?;
    check_architecture(&file, path, model)?;
    let net = model.network_mut();
    let values = parameter_values(&file, path, net.parameter_specs())?;
    let Some(standardizer) = saved_standardizer(&file, path)? else {
        return net.set_parameters_flat(backend, &values);
    };
    // Attached first (it checks its width), taken back if the parameters cannot be written.
    let before = net.standardizer().cloned();
    net.set_standardizer(Some(standardizer))?;
    net.set_parameters_flat(backend, &values).inspect_err(|_| {
        net.standardizer = before;
    })
}

/// The model's parameters as `(name, shape, values)`, shapes as PyTorch holds them.
pub(crate) fn parameter_tensors<B: Backend>(
    model: &Sequential<B>,
    backend: &B,
) -> Result<Vec<Tensor>> {
    let values = model.parameters_flat(backend)?;
    Ok(prefixed_tensors("", &values, model.parameter_specs()))
}

/// An arena's values (in arena order, as `read_arena` gives them) as tensors named
/// `{prefix}{name}` with their parameters' shapes: [`prefixed_values`] read back.
pub(crate) fn prefixed_tensors(prefix: &str, values: &[f32], specs: &[ParamSpec]) -> Vec<Tensor> {
    let mut at = 0;
    specs
        .iter()
        .map(|p| {
            let len = p.rows * p.cols;
            let part = values.get(at..at + len).unwrap_or_default().to_vec();
            at += len;
            (format!("{prefix}{}", p.name), p.torch_shape.clone(), part)
        })
        .collect()
}

/// The values of the tensors `specs` names from `file`, in arena order; a non-finite value is
/// an error naming the tensor.
pub(crate) fn parameter_values(file: &File, path: &Path, specs: &[ParamSpec]) -> Result<Vec<f32>> {
    prefixed_values(file, path, "", specs)
}

/// [`parameter_values`] of the tensors named `{prefix}{name}` (a copy of the parameters kept
/// beside them, say).
pub(crate) fn prefixed_values(
    file: &File,
    path: &Path,
    prefix: &str,
    specs: &[ParamSpec],
) -> Result<Vec<f32>> {
    let mut values = Vec::new();
    for p in specs {
        let name = format!("{prefix}{}", p.name);
        let found = file.take(path, &name, &p.torch_shape)?;
        values.extend_from_slice(finite(path, &name, found)?);
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

impl<B: Backend> Sequential<B> {
    /// Saves the parameters as safetensors under their `state_dict` names
    /// ([`Sequential::tensor_names`], shapes as PyTorch holds them), with the architecture
    /// line ([`Sequential::architecture`]) and the standardizer, if any, in the metadata. The
    /// save is atomic.
    pub fn save_safetensors(&self, backend: &B, path: impl AsRef<Path>) -> Result<()> {
        save(self, backend, path.as_ref())
    }

    /// Loads parameters, and a standardizer if the file has one, into a model built by the
    /// same code (a file saved by [`Sequential::save_safetensors`], or by PyTorch's
    /// `save_file(module.state_dict())` from a module with these tensor names). Every
    /// parameter tensor must be present, F32, finite, with its exact shape; other tensors are
    /// ignored. A file that describes its architecture must describe this model's layers: one
    /// from a network with another layer, width, activation or epsilon is refused, naming the
    /// first layer that differs. On any error the model is unchanged.
    pub fn load_safetensors(&mut self, backend: &B, path: impl AsRef<Path>) -> Result<()> {
        load(self, backend, path.as_ref())
    }
}

impl<B: Backend> Mlp<B> {
    /// Saves the parameters alone as safetensors (`layers.{i}.weight` `[out, in]`,
    /// `layers.{i}.bias` `[out]`), loadable by PyTorch's `safetensors.torch.load_file` into a
    /// module holding its `nn.Linear`s in a `layers` list. The save is atomic.
    pub fn save_safetensors(&self, backend: &B, path: impl AsRef<Path>) -> Result<()> {
        save(self, backend, path.as_ref())
    }

    /// Loads parameters from safetensors (as saved by [`Mlp::save_safetensors`], by PyTorch, or
    /// inside a training checkpoint). Every `layers.{i}.*` tensor must be present, F32, finite,
    /// with its exact shape; other tensors are ignored. A file that describes its architecture
    /// (steepest's files do) must describe this model's: a file saved from a tanh network does
    /// not load into a relu one. On any error the model is unchanged.
    pub fn load_safetensors(&mut self, backend: &B, path: impl AsRef<Path>) -> Result<()> {
        load(self, backend, path.as_ref())
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
                format!(
                    "architecture {text:?} is not an MLP's; build the model and use \
                     load_safetensors"
                ),
            )
        })?;
        let mut model = Mlp::new(backend, &spec, crate::nn::Init::default(), 0)?;
        let values = parameter_values(&file, path, model.parameter_specs())?;
        model.set_parameters_flat(backend, &values)?;
        model.set_standardizer(saved_standardizer(&file, path)?)?;
        Ok(model)
    }
}
