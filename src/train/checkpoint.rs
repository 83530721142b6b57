//! Checkpoints in safetensors: parameters under PyTorch's `state_dict` names, the optimizer's
//! state, the position in training and the configuration as metadata. Saves are atomic.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::Session;
use super::session::slot;
use crate::backend::{Arena, Backend};
use crate::error::{Error, Result};
use crate::nn::{Mlp, MlpSpec};
use crate::optim::OptimizerState;

/// The `format` metadata value of a full training checkpoint.
pub(crate) const FORMAT: &str = "steepest.checkpoint.v1";

/// One f32 tensor: name, shape, values in row-major order.
pub(crate) type Tensor = (String, Vec<usize>, Vec<f32>);

/// A safetensors file's f32 tensors and metadata.
pub(crate) struct File {
    pub tensors: Vec<Tensor>,
    pub metadata: HashMap<String, String>,
}

fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

impl File {
    /// The tensor called `name` with exactly `shape`.
    pub fn take(&self, path: &Path, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let Some((_, found, values)) = self.tensors.iter().find(|(n, _, _)| n == name) else {
            return Err(corrupt(path, format!("tensor {name} is missing")));
        };
        if found != shape {
            return Err(corrupt(
                path,
                format!("tensor {name} has shape {found:?}, expected {shape:?}"),
            ));
        }
        Ok(values)
    }

    /// The metadata entry `key`.
    pub fn meta(&self, path: &Path, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| corrupt(path, format!("metadata {key:?} is missing")))
    }

    /// The metadata entry `key` as an integer.
    pub fn meta_u64(&self, path: &Path, key: &str) -> Result<u64> {
        let text = self.meta(path, key)?;
        text.parse().map_err(|_| {
            corrupt(
                path,
                format!("metadata {key:?} = {text:?} is not an integer"),
            )
        })
    }
}

/// The file's bytes: tensors in the order given, metadata in the header's `__metadata__`.
pub(crate) fn encode(
    path: &Path,
    tensors: &[Tensor],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|view| (name.as_str(), view))
                .map_err(|e| corrupt(path, format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| corrupt(path, format!("cannot encode: {e}")))
}

/// Parses safetensors bytes, keeping every F32 tensor; any other dtype is an error.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<File> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| corrupt(path, format!("not a safetensors file: {e}")))?;
    let parsed = SafeTensors::deserialize(bytes)
        .map_err(|e| corrupt(path, format!("not a safetensors file: {e}")))?;
    let mut tensors = Vec::new();
    for (name, view) in parsed.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(
                path,
                format!("tensor {name} is {:?}; only F32 is supported", view.dtype()),
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.push((name, view.shape().to_vec(), values));
    }
    Ok(File {
        tensors,
        metadata: header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old file or the new
/// one: a temporary file beside it, flushed to disk, renamed over it, the directory synced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| Error::Io {
        op: "save checkpoint",
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("the path names no file")))?;
    // One temporary name per save (process, then a counter): threads saving to the same path
    // never write into each other's file; the last rename wins, whole.
    static SAVES: AtomicU64 = AtomicU64::new(0);
    let prefix = format!("{}.tmp-", name.to_string_lossy());
    let pid = std::process::id();
    let tmp = path.with_file_name(format!(
        "{prefix}{pid}-{}",
        SAVES.fetch_add(1, Ordering::Relaxed)
    ));
    remove_stale_temporaries(path, &prefix, pid);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory entry is.
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Removes temporaries of earlier saves of `path` left by other processes (a process killed
/// mid-save leaves one); this process's own are in flight in other threads and stay. Best
/// effort: what cannot be listed or removed is left alone.
fn remove_stale_temporaries(path: &Path, prefix: &str, pid: u32) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let ours = format!("{prefix}{pid}-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && !name.starts_with(&ours) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Reads a file whole, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io {
        op: "load checkpoint",
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The training settings a resumed run must share to continue the same trajectory, as
/// (metadata key, value).
fn settings(trainer: &super::Trainer) -> [(String, String); 5] {
    [
        ("seed".into(), trainer.seed.to_string()),
        (
            "batch_size".into(),
            trainer
                .batch_size
                .map_or("full batch".into(), |b| b.to_string()),
        ),
        (
            "optimizer_settings".into(),
            format!("{:?}", trainer.optimizer),
        ),
        ("schedule".into(), format!("{:?}", trainer.schedule)),
        ("clipping".into(), format!("{:?}", trainer.clip)),
    ]
}

/// The first differing `, `-separated parts of two settings' texts (the field that differs,
/// e.g. `amsgrad: false` and `amsgrad: true`), or the whole texts.
fn difference(saved: &str, now: &str) -> (String, String) {
    saved
        .split(", ")
        .zip(now.split(", "))
        .find(|(a, b)| a != b)
        .filter(|_| saved.split(", ").count() == now.split(", ").count())
        .map_or((saved.to_string(), now.to_string()), |(a, b)| {
            (a.to_string(), b.to_string())
        })
}

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

/// The architecture as one line (`2-64:relu-2:identity`), stored so that a checkpoint for
/// another network is refused by name, not by a shape deep inside.
pub(crate) fn architecture(spec: &MlpSpec) -> String {
    let mut text = spec.inputs().to_string();
    for layer in spec.layers() {
        text.push_str(&format!("-{}:{}", layer.outputs, layer.activation.name()));
    }
    text
}

/// The model's parameters as `(name, shape, values)`, shapes as PyTorch holds them.
pub(crate) fn parameter_tensors<B: Backend>(model: &Mlp<B>, backend: &B) -> Result<Vec<Tensor>> {
    Ok(model
        .state_dict(backend)?
        .into_iter()
        .map(|(name, array)| {
            let shape = array.shape().to_vec();
            (name, shape, array.into_iter().collect())
        })
        .collect())
}

/// The parameter values of `spec`'s tensors from `file`, in arena order; a non-finite value is
/// an error naming the tensor.
pub(crate) fn parameter_values(file: &File, path: &Path, spec: &MlpSpec) -> Result<Vec<f32>> {
    let mut values = Vec::with_capacity(spec.parameter_count());
    for (name, shape) in spec.tensor_names().into_iter().zip(torch_shapes(spec)) {
        values.extend_from_slice(finite(path, &name, file.take(path, &name, &shape)?)?);
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

/// Each tensor's shape as PyTorch holds it: weights [out, in], biases [out].
fn torch_shapes(spec: &MlpSpec) -> Vec<Vec<usize>> {
    spec.layers()
        .iter()
        .flat_map(|l| [vec![l.outputs, l.inputs], vec![l.outputs]])
        .collect()
}

/// The optimizer state split per tensor: `optimizer.{buffer}.{tensor}`, each with its
/// parameter's shape (the gaps of an aligned arena are left out).
pub(crate) fn optimizer_tensors<A: Arena>(
    state: &OptimizerState,
    params: &A,
    spec: &MlpSpec,
) -> Vec<Tensor> {
    let offsets = params.offsets();
    let mut out = Vec::new();
    for (buffer, values) in &state.buffers {
        for ((name, shape), start) in spec
            .tensor_names()
            .into_iter()
            .zip(torch_shapes(spec))
            .zip(&offsets)
        {
            let len: usize = shape.iter().product();
            out.push((
                format!("optimizer.{buffer}.{name}"),
                shape,
                values[*start..*start + len].to_vec(),
            ));
        }
    }
    out
}

/// Rebuilds an optimizer state from a file, with the buffers `like` has and its arena layout.
pub(crate) fn optimizer_state<A: Arena>(
    file: &File,
    path: &Path,
    like: &OptimizerState,
    params: &A,
    spec: &MlpSpec,
    step: u64,
) -> Result<OptimizerState> {
    // Every optimizer tensor in the file must be one this optimizer uses.
    if let Some((extra, _, _)) = file.tensors.iter().find(|(name, _, _)| {
        name.strip_prefix("optimizer.").is_some_and(|rest| {
            !like
                .buffers
                .iter()
                .any(|(buffer, _)| rest.starts_with(&format!("{buffer}.")))
        })
    }) {
        return Err(corrupt(
            path,
            format!(
                "tensor {extra} is optimizer state this {} does not keep (it keeps {:?})",
                like.optimizer,
                like.buffers.iter().map(|(b, _)| b).collect::<Vec<_>>()
            ),
        ));
    }
    let offsets = params.offsets();
    let mut buffers = Vec::new();
    for (buffer, _) in &like.buffers {
        let mut values = vec![0.0f32; params.storage_len()];
        for ((name, shape), start) in spec
            .tensor_names()
            .into_iter()
            .zip(torch_shapes(spec))
            .zip(&offsets)
        {
            let found = file.take(path, &format!("optimizer.{buffer}.{name}"), &shape)?;
            values[*start..*start + found.len()].copy_from_slice(found);
        }
        buffers.push((buffer.clone(), values));
    }
    Ok(OptimizerState {
        optimizer: like.optimizer.clone(),
        step,
        buffers,
    })
}

impl<B: Backend> Mlp<B> {
    /// Saves the parameters alone as safetensors (`layers.{i}.weight` `[out, in]`,
    /// `layers.{i}.bias` `[out]`), loadable by PyTorch's `safetensors.torch.load_file` into a
    /// module holding its `nn.Linear`s in a `layers` list. The save is atomic.
    pub fn save_safetensors(&self, backend: &B, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut metadata = HashMap::from([
            ("format".to_string(), "pt".to_string()),
            ("architecture".to_string(), architecture(self.spec())),
        ]);
        if let Some(s) = self.standardizer() {
            metadata.insert("standardizer.mean".into(), float_list(s.mean().iter()));
            metadata.insert("standardizer.std".into(), float_list(s.std().iter()));
        }
        let bytes = encode(path, &parameter_tensors(self, backend)?, metadata)?;
        write_atomic(path, &bytes)
    }

    /// Loads parameters from safetensors (as saved by [`Mlp::save_safetensors`], by PyTorch, or
    /// inside a training checkpoint). Every `layers.{i}.*` tensor must be present, F32, finite,
    /// with its exact shape; other tensors are ignored. A file that describes its architecture
    /// (steepest's files do) must describe this model's: a file saved from a tanh network does
    /// not load into a relu one. On any error the model is unchanged.
    pub fn load_safetensors(&mut self, backend: &B, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let file = decode(path, &read(path)?)?;
        if let Some(saved) = file.metadata.get("architecture") {
            let ours = architecture(self.spec());
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
        let values = parameter_values(&file, path, self.spec())?;
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
        let file = decode(path, &read(path)?)?;
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
        let values = parameter_values(&file, path, &spec)?;
        let mut model = Mlp::new(backend, &spec, crate::nn::Init::default(), 0)?;
        model.set_parameters_flat(backend, &values)?;
        model.set_standardizer(saved_standardizer(&file, path)?)?;
        Ok(model)
    }
}

impl<B: Backend> Session<'_, B> {
    /// Saves everything a resumed run needs to continue the same trajectory: parameters,
    /// optimizer state, the position in the epoch, the running sums, and the configuration as
    /// metadata. Atomic: a crash mid-save leaves the previous file intact. Reads back (waits).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let backend = self.backend;
        let spec = self.model.spec();
        let state = backend.optimizer_state(&self.optimizer)?;
        let mut tensors = parameter_tensors(self.model, backend)?;
        tensors.extend(optimizer_tensors(&state, &self.model.params, spec));
        let totals = backend.download(&self.totals)?;
        tensors.push((
            "trainer.totals".into(),
            vec![slot::LEN],
            totals.iter().copied().collect(),
        ));
        let in_epoch = self.order.is_some() && !self.epoch_done();
        let metadata: HashMap<String, String> = [
            ("format".into(), FORMAT.to_string()),
            ("architecture".into(), architecture(spec)),
            ("optimizer".into(), self.trainer.optimizer.name().into()),
            ("loss".into(), self.trainer.loss.name().into()),
            ("step".into(), self.step.to_string()),
            ("optimizer_step".into(), state.step.to_string()),
            ("epoch".into(), self.epoch.to_string()),
            (
                "position".into(),
                if in_epoch { self.position } else { 0 }.to_string(),
            ),
            ("in_epoch".into(), u8::from(in_epoch).to_string()),
            ("samples".into(), self.train.len.to_string()),
            ("trainer".into(), format!("{:?}", self.trainer)),
        ]
        .into_iter()
        .chain(settings(self.trainer))
        .collect();
        let bytes = encode(path, &tensors, metadata)?;
        write_atomic(path, &bytes)
    }

    /// Continues from a checkpoint saved by [`Session::save_checkpoint`] for the same model
    /// shape, optimizer, loss, training data and training settings (seed, batch size, every
    /// optimizer option, schedule, clipping): the steps that follow are the ones the saved run
    /// would have taken. A setting that differs is an error naming it (see
    /// [`Session::load_checkpoint_overriding_settings`]). On any error the session is
    /// unchanged.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load(path.as_ref(), false)
    }

    /// [`Session::load_checkpoint`], continuing with this run's training settings where they
    /// differ from the saved ones (a new learning rate or batch size for the rest of a run,
    /// say). The model shape, optimizer kind, loss and data must still match.
    pub fn load_checkpoint_overriding_settings(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load(path.as_ref(), true)
    }

    fn load(&mut self, path: &Path, override_settings: bool) -> Result<()> {
        let file = decode(path, &read(path)?)?;
        let bad = |detail: String| Error::Checkpoint {
            path: path.display().to_string(),
            detail,
        };
        let spec = self.model.spec().clone();
        let expect = |key: &str, want: &str| -> Result<()> {
            let found = file.meta(path, key)?;
            if found != want {
                return Err(bad(format!(
                    "saved with {key} {found:?}, this run has {want:?}"
                )));
            }
            Ok(())
        };
        expect("format", FORMAT)?;
        expect("architecture", &architecture(&spec))?;
        expect("optimizer", self.trainer.optimizer.name())?;
        expect("loss", self.trainer.loss.name())?;
        expect("samples", &self.train.len.to_string())?;
        if !override_settings {
            for (key, want) in settings(self.trainer) {
                let Some(found) = file.metadata.get(&key) else {
                    return Err(bad(format!(
                        "saved without its {key} setting, so a resumed run cannot be checked \
                         to continue the same trajectory; load it with \
                         load_checkpoint_overriding_settings to use this run's"
                    )));
                };
                if *found != want {
                    return Err(bad(format!(
                        "saved with {key} {}, this run has {}; load it with \
                         load_checkpoint_overriding_settings to continue with this run's",
                        difference(found, &want).0,
                        difference(found, &want).1
                    )));
                }
            }
        }
        let step = file.meta_u64(path, "step")?;
        let epoch = file.meta_u64(path, "epoch")? as usize;
        let position = file.meta_u64(path, "position")? as usize;
        let in_epoch = file.meta_u64(path, "in_epoch")? == 1;
        if position > self.train.len || (in_epoch && epoch == 0) {
            return Err(bad(format!(
                "position {position} of epoch {epoch} does not exist"
            )));
        }
        let params = parameter_values(&file, path, &spec)?;
        let like = self.backend.optimizer_state(&self.optimizer)?;
        let state = optimizer_state(
            &file,
            path,
            &like,
            &self.model.params,
            &spec,
            file.meta_u64(path, "optimizer_step")?,
        )?;
        let totals = file.take(path, "trainer.totals", &[slot::LEN])?;
        let totals = ndarray::Array2::from_shape_vec((1, slot::LEN), totals.to_vec())
            .map_err(|e| bad(e.to_string()))?;
        // Everything is checked; now apply (the optimizer first: it validates its own state).
        self.backend
            .optimizer_load_state(&mut self.optimizer, &state)?;
        self.model.set_parameters_flat(self.backend, &params)?;
        self.totals = self.backend.upload(totals.view())?;
        self.backend
            .copy_arena(&self.model.params, &mut self.last_good)?;
        self.step = step;
        self.epoch = epoch;
        self.position = position;
        self.end_epoch_order();
        if in_epoch {
            self.order = Some(self.epoch_order()?);
        }
        Ok(())
    }
}
