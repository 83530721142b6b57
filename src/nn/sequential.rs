//! `Sequential`: layers in a chain, their parameters in one arena, and the batch passes.

use std::ops::Range;

use ndarray::{Array2, ArrayView2};

use super::layer::{Layer, Mode, ParamSpec};
use super::{Init, seeded};
use crate::backend::{Arena, Backend, Matrix};
use crate::error::{Error, Result};

/// A model on backend `B`: layers applied in order, every parameter in one arena and every
/// gradient in another of the same layout, so one optimizer dispatch updates the whole model.
///
/// Parameters are named as PyTorch's `nn.Sequential` names them (`0.weight`, `2.bias`: the
/// index counts every layer), after a prefix ([`Mlp`](super::Mlp) uses `layers.`).
///
/// ```
/// use steepest::nn::{Elementwise, Layer, Sequential};
/// use steepest::{CpuBackend, Init, Linear, Nonlinearity};
/// # fn main() -> steepest::Result<()> {
/// let layers: Vec<Box<dyn Layer<CpuBackend>>> = vec![
///     Box::new(Linear::new(2, 16)),
///     Box::new(Elementwise::new(16, Nonlinearity::Gelu)),
///     Box::new(Linear::new(16, 1)),
/// ];
/// let model = Sequential::new(&CpuBackend, layers, Init::default(), 7)?;
/// assert_eq!(model.tensor_names(), ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// assert_eq!(model.parameter_count(), 2 * 16 + 16 + 16 + 1);
/// # Ok(())
/// # }
/// ```
pub struct Sequential<B: Backend> {
    pub(super) layers: Vec<Box<dyn Layer<B>>>,
    /// Each layer's parameters as a range of the arena's tensors.
    pub(super) param_ranges: Vec<Range<usize>>,
    /// Each layer's buffers ([`Layer::buffers`]) as a range of the arena's tensors, right
    /// after its parameters'.
    pub(super) buffer_ranges: Vec<Range<usize>>,
    /// Runs of two or more consecutive layers that are linear ([`Layer::fusable_linear`]),
    /// in order: each one's forward pass is one [`Backend::linear_chain_into`].
    pub(super) chains: Vec<Range<usize>>,
    /// Every parameter tensor (and buffer), in arena order, with its full name.
    specs: Vec<ParamSpec>,
    /// Whether each tensor of `specs` is a buffer.
    pub(super) buffer: Vec<bool>,
    pub(crate) params: B::Arena,
    pub(crate) grads: B::Arena,
    /// Whether each parameter tensor is trained, as the last backward pass was told (its
    /// `Backward::trained` slices; kept here so that a step allocates nothing).
    pub(super) trained: Vec<bool>,
    /// The preprocessing its inputs get before [`Sequential::predict`], saved with the model.
    pub(crate) standardizer: Option<crate::data::Standardizer>,
}

impl<B: Backend> std::fmt::Debug for Sequential<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequential")
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Sequential<B> {
    /// A model of `layers`, each one's inputs the outputs of the one before, with parameters
    /// drawn by `init` from a generator seeded with `seed` (layer by layer, in order; the same
    /// seed gives the same model on both backends).
    pub fn new(backend: &B, layers: Vec<Box<dyn Layer<B>>>, init: Init, seed: u64) -> Result<Self> {
        Self::with_prefix(backend, "", layers, init, seed)
    }

    /// [`Sequential::new`] with every parameter name starting with `prefix`.
    pub(crate) fn with_prefix(
        backend: &B,
        prefix: &str,
        layers: Vec<Box<dyn Layer<B>>>,
        init: Init,
        seed: u64,
    ) -> Result<Self> {
        let op = "Sequential::new";
        let bad = |detail: String| Err(Error::Shape { op, detail });
        if layers.is_empty() {
            return bad("the model has no layers".into());
        }
        for (i, layer) in layers.iter().enumerate() {
            layer.validate()?;
            if layer.inputs() == 0 || layer.outputs() == 0 {
                return bad(format!("layer {i} ({}) has no features", layer.describe()));
            }
            if let Some(next) = layers.get(i + 1)
                && next.inputs() != layer.outputs()
            {
                return bad(format!(
                    "layer {i} ({}) gives {} features, layer {} ({}) takes {}",
                    layer.describe(),
                    layer.outputs(),
                    i + 1,
                    next.describe(),
                    next.inputs()
                ));
            }
        }
        let mut specs = Vec::new();
        let mut buffer = Vec::new();
        let mut param_ranges = Vec::new();
        let mut buffer_ranges = Vec::new();
        let mut count = 0usize;
        for (i, layer) in layers.iter().enumerate() {
            let (params, buffers) = (layer.parameters(), layer.buffers());
            let start = specs.len();
            param_ranges.push(start..start + params.len());
            buffer_ranges.push(start + params.len()..start + params.len() + buffers.len());
            let params = params.into_iter().map(|p| (p, false));
            let buffers = buffers.into_iter().map(|p| (p, true));
            for (p, is_buffer) in params.chain(buffers) {
                count = p
                    .rows
                    .checked_mul(p.cols)
                    .and_then(|n| count.checked_add(n))
                    .ok_or_else(|| Error::Shape {
                        op,
                        detail: format!("the parameter count overflows usize at layer {i}"),
                    })?;
                specs.push(ParamSpec {
                    name: format!("{prefix}{i}.{}", p.name),
                    ..p
                });
                buffer.push(is_buffer);
            }
        }
        for (i, (layer, range)) in layers.iter().zip(&param_ranges).enumerate() {
            let declared: Vec<(usize, usize)> = specs[range.clone()]
                .iter()
                .map(|p| (p.rows, p.cols))
                .collect();
            let linear = [(layer.outputs(), layer.inputs()), (1, layer.outputs())];
            if layer.fusable_linear().is_some() && declared != linear {
                return bad(format!(
                    "layer {i} ({}) says it is linear, so its parameters must be a weight and a \
                     bias of shapes {linear:?}, not {declared:?}",
                    layer.describe()
                ));
            }
            if layer.fusable_linear().is_some() && !buffer_ranges[i].is_empty() {
                return bad(format!(
                    "layer {i} ({}) says it is linear, so it keeps no buffers, yet declares {}",
                    layer.describe(),
                    buffer_ranges[i].len()
                ));
            }
        }
        let shapes: Vec<(usize, usize)> = specs.iter().map(|p| (p.rows, p.cols)).collect();
        let mut params = backend.arena("parameters", &shapes)?;
        let grads = backend.arena("gradients", &shapes)?;
        let mut rng = seeded(seed);
        let mut values = Vec::with_capacity(count);
        for ((layer, range), buffers) in layers.iter().zip(&param_ranges).zip(&buffer_ranges) {
            let size =
                |r: Range<usize>| -> usize { specs[r].iter().map(|p| p.rows * p.cols).sum() };
            for (drawn, want, what) in [
                (
                    layer.initial_values(init, &mut rng),
                    size(range.clone()),
                    "parameters",
                ),
                (layer.initial_buffers(), size(buffers.clone()), "buffers"),
            ] {
                if drawn.len() != want {
                    return bad(format!(
                        "layer {} gave {} initial values for {want} {what}",
                        layer.describe(),
                        drawn.len()
                    ));
                }
                values.extend(drawn);
            }
        }
        backend.write_arena(&mut params, &values)?;
        let chains = super::passes::linear_chains(&layers);
        Ok(Self {
            layers,
            param_ranges,
            buffer_ranges,
            chains,
            trained: vec![true; specs.len()],
            specs,
            buffer,
            params,
            grads,
            standardizer: None,
        })
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer<B>>] {
        &self.layers
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.layers.first().map_or(0, |l| l.inputs())
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs())
    }

    /// The fewest rows a training batch may have ([`Layer::min_training_rows`] of the first
    /// layer that needs the most), with that layer's description; `None` when any will do.
    pub(crate) fn min_training_rows(&self) -> Option<(usize, String)> {
        let layer = self
            .layers
            .iter()
            .rev()
            .max_by_key(|l| l.min_training_rows())?;
        let rows = layer.min_training_rows();
        (rows > 1).then(|| (rows, layer.describe()))
    }

    /// The layers described in one line (`linear(2→16, identity) | gelu(16) | …`), stored
    /// in checkpoints and model files so that one from another model is refused by name.
    pub fn architecture(&self) -> String {
        let parts: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
        parts.join(" | ")
    }

    /// Every tensor of the arena with its full name, in arena order: each layer's parameters,
    /// then its buffers ([`Layer::buffers`]).
    pub fn parameter_specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// PyTorch's `state_dict` names in arena order (the buffers' too).
    pub fn tensor_names(&self) -> Vec<String> {
        self.specs.iter().map(|p| p.name.clone()).collect()
    }

    /// Whether each tensor of [`Sequential::parameter_specs`] is a buffer, which no optimizer
    /// trains.
    pub fn buffer_tensors(&self) -> &[bool] {
        &self.buffer
    }

    /// Number of parameters (the buffers not counted, as PyTorch's `parameters()` leaves
    /// them out).
    pub fn parameter_count(&self) -> usize {
        (self.specs.iter().zip(&self.buffer))
            .filter(|(_, b)| !**b)
            .map(|(p, _)| p.rows * p.cols)
            .sum()
    }

    /// The buffers' element ranges of the arena (each to the next tensor's start, as
    /// [`ParamGroup::resolve`](crate::optim::ParamGroup::resolve) lays out ranges), frozen in
    /// a group of their own: what an optimizer built by hand over the arena takes (with
    /// `with_groups`) so that no update moves them, as every run's does.
    pub fn buffer_group(&self) -> Option<crate::optim::ArenaGroup> {
        let offsets = self.params.offsets();
        let len = self.params.storage_len();
        let ranges: Vec<Range<usize>> = (0..self.specs.len())
            .filter(|&t| self.buffer[t])
            .map(|t| offsets[t]..offsets.get(t + 1).copied().unwrap_or(len))
            .collect();
        (!ranges.is_empty()).then(|| crate::optim::ArenaGroup {
            ranges,
            settings: crate::optim::GroupSettings {
                frozen: true,
                ..Default::default()
            },
        })
    }

    /// The rows × outputs shape the model gives for `rows` samples.
    pub fn output_shape(&self, rows: usize) -> (usize, usize) {
        (rows, self.outputs())
    }

    /// The parameter arena (views of one buffer on the GPU).
    pub fn parameters(&self) -> &B::Arena {
        &self.params
    }

    /// The gradient arena, as the last backward pass left it. A training step computes no
    /// gradient for a layer whose parameters are all frozen (`ParamGroup::frozen`, as
    /// PyTorch's autograd computes none for a tensor that requires none): their slots keep
    /// whatever they held.
    pub fn gradients(&self) -> &B::Arena {
        &self.grads
    }

    /// The parameter and gradient arenas together, the first writable (an optimizer step).
    pub fn parameters_and_gradients(&mut self) -> (&mut B::Arena, &B::Arena) {
        (&mut self.params, &self.grads)
    }

    /// The model's output for `x` (rows × inputs) in evaluation mode, in a new matrix.
    pub fn forward(&self, backend: &B, x: &B::Matrix) -> Result<B::Matrix> {
        self.check_input("Sequential::forward", x.shape().1)?;
        let mut acts = self.activations(backend, x.shape().0, Mode::Eval)?;
        self.forward_batch(backend, x, &mut acts, Mode::Eval, 0)?;
        acts.outputs.pop().ok_or_else(|| Error::Shape {
            op: "Sequential::forward",
            detail: "the model has no layers".into(),
        })
    }

    /// Runs [`Layer::check_data`] of the first layer on `x` (the data, as the model takes
    /// it), and of each layer after it as long as the one before passes the data's columns
    /// through ([`Layer::data_after`]): every embedding of a chain of them checks its indices.
    pub(crate) fn check_data(&self, op: &'static str, x: ArrayView2<'_, f32>) -> Result<()> {
        let mut after: Option<Array2<f32>> = None;
        for layer in &self.layers {
            let seen = after.as_ref().map_or(x, |a| a.view());
            layer.check_data(op, seen)?;
            match layer.data_after(seen) {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(())
    }

    /// Fails unless inputs of `features` columns are what the model takes.
    pub(crate) fn check_input(&self, op: &'static str, features: usize) -> Result<()> {
        if features != self.inputs() {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "inputs have {features} features, the model takes {}",
                    self.inputs()
                ),
            });
        }
        Ok(())
    }
}

/// The message for a layer handed other numbers of parameter or saved tensors than it
/// declared: (given, declared) of each.
pub(crate) fn wrong_tensors(
    op: &'static str,
    params: (usize, usize),
    saved: (usize, usize),
) -> Error {
    Error::Shape {
        op,
        detail: format!(
            "given {} parameter and {} saved tensors, the layer declares {} and {}",
            params.0, saved.0, params.1, saved.1
        ),
    }
}

/// The message for a layer handed another number of buffers than it declared.
pub(crate) fn wrong_buffers(op: &'static str, given: usize, declared: usize) -> Error {
    Error::Shape {
        op,
        detail: format!("given {given} buffers, the layer declares {declared}"),
    }
}
