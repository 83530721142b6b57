//! `Sequential`: layers in a chain, their parameters in one arena, and the batch passes.

use std::ops::Range;

use super::layer::{Backward, Forward, InputGrad, Layer, Mode, ParamSpec};
use super::{Init, seeded};
use crate::backend::{Activation, Arena, Backend, LinearLink, Matrix};
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
    layers: Vec<Box<dyn Layer<B>>>,
    /// Each layer's parameters as a range of the arena's tensors.
    ranges: Vec<Range<usize>>,
    /// Runs of two or more consecutive layers that are linear ([`Layer::fusable_linear`]),
    /// in order: each one's forward pass is one [`Backend::linear_chain_into`].
    chains: Vec<Range<usize>>,
    /// Every parameter tensor, in arena order, with its full name.
    specs: Vec<ParamSpec>,
    pub(crate) params: B::Arena,
    pub(crate) grads: B::Arena,
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

/// The matrices of one batch: what each layer's forward pass keeps for its backward pass.
pub(crate) struct Activations<M> {
    /// Each layer's output (the last one holds the model's output).
    pub outputs: Vec<M>,
    /// ∂loss/∂output of each layer once the backward pass reaches it (∂/∂pre-activation for
    /// a fused activation); the last one holds ∂loss/∂(model output) first. Empty for a
    /// forward pass alone.
    pub output_grads: Vec<M>,
    /// What each layer asked to keep ([`Layer::saved_shapes`]).
    pub saved: Vec<Vec<M>>,
}

/// A batch's inputs and targets on the backend and its [`Activations`].
pub(crate) struct Workspace<M> {
    pub rows: usize,
    pub input: M,
    pub target: M,
    pub acts: Activations<M>,
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
            if let Some(next) = layers.get(i + 1) {
                if next.inputs() != layer.outputs() {
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
        }
        let mut specs = Vec::new();
        let mut ranges = Vec::new();
        let mut count = 0usize;
        for (i, layer) in layers.iter().enumerate() {
            let start = specs.len();
            for p in layer.parameters() {
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
            }
            ranges.push(start..specs.len());
        }
        for (i, (layer, range)) in layers.iter().zip(&ranges).enumerate() {
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
        }
        let shapes: Vec<(usize, usize)> = specs.iter().map(|p| (p.rows, p.cols)).collect();
        let mut params = backend.arena("parameters", &shapes)?;
        let grads = backend.arena("gradients", &shapes)?;
        let mut rng = seeded(seed);
        let mut values = Vec::with_capacity(count);
        for (layer, range) in layers.iter().zip(&ranges) {
            let drawn = layer.initial_values(init, &mut rng);
            let want: usize = specs[range.clone()].iter().map(|p| p.rows * p.cols).sum();
            if drawn.len() != want {
                return bad(format!(
                    "layer {} gave {} initial values for {want} parameters",
                    layer.describe(),
                    drawn.len()
                ));
            }
            values.extend(drawn);
        }
        backend.write_arena(&mut params, &values)?;
        let chains = linear_chains(&layers);
        Ok(Self {
            layers,
            ranges,
            chains,
            specs,
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

    /// The layers described in one line (`linear(2→16, identity) | gelu(erf) | …`), stored
    /// in checkpoints so that one from another model is refused by name.
    pub fn architecture(&self) -> String {
        let parts: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
        parts.join(" | ")
    }

    /// Every parameter tensor with its full name, in arena order.
    pub fn parameter_specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// PyTorch's `state_dict` names in arena order.
    pub fn tensor_names(&self) -> Vec<String> {
        self.specs.iter().map(|p| p.name.clone()).collect()
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.specs.iter().map(|p| p.rows * p.cols).sum()
    }

    /// The rows × outputs shape the model gives for `rows` samples.
    pub fn output_shape(&self, rows: usize) -> (usize, usize) {
        (rows, self.outputs())
    }

    /// The parameter arena (views of one buffer on the GPU).
    pub fn parameters(&self) -> &B::Arena {
        &self.params
    }

    /// The gradient arena, as the last backward pass left it.
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

    /// Matrices for the passes over a batch of `rows` samples (the gradients' only for
    /// training: a forward pass alone writes none).
    pub(crate) fn activations(
        &self,
        backend: &B,
        rows: usize,
        mode: Mode,
    ) -> Result<Activations<B::Matrix>> {
        let mut acts = Activations {
            outputs: Vec::new(),
            output_grads: Vec::new(),
            saved: Vec::new(),
        };
        for layer in &self.layers {
            acts.outputs.push(backend.zeros(rows, layer.outputs())?);
            if mode == Mode::Train {
                acts.output_grads
                    .push(backend.zeros(rows, layer.outputs())?);
            }
            let saved = layer
                .saved_shapes(rows)
                .into_iter()
                .map(|(r, c)| backend.zeros(r, c))
                .collect::<Result<Vec<_>>>()?;
            acts.saved.push(saved);
        }
        Ok(acts)
    }

    /// Buffers for a batch of `rows` samples with targets `target_cols` wide.
    pub(crate) fn workspace(
        &self,
        backend: &B,
        rows: usize,
        target_cols: usize,
    ) -> Result<Workspace<B::Matrix>> {
        Ok(Workspace {
            rows,
            input: backend.zeros(rows, self.inputs())?,
            target: backend.zeros(rows, target_cols)?,
            acts: self.activations(backend, rows, Mode::Train)?,
        })
    }

    /// The forward pass over `input`, keeping every layer's output in `acts`.
    pub(crate) fn forward_batch(
        &self,
        backend: &B,
        input: &B::Matrix,
        acts: &mut Activations<B::Matrix>,
        mode: Mode,
        step: u64,
    ) -> Result<()> {
        let tensors = self.params.tensors();
        let mut chains = self.chains.iter().peekable();
        let mut i = 0;
        while let Some(layer) = self.layers.get(i) {
            let (done, rest) = acts.outputs.split_at_mut(i);
            let input = done.last().unwrap_or(input);
            if let Some(chain) = chains.next_if(|c| c.start == i) {
                let links = chain
                    .clone()
                    .map(|j| self.link(tensors, j))
                    .collect::<Result<Vec<_>>>()?;
                let outputs = rest.get_mut(..chain.len()).ok_or_else(|| Error::Shape {
                    op: "Sequential::forward",
                    detail: format!("no outputs for layers {chain:?}"),
                })?;
                backend.linear_chain_into(input, &links, outputs)?;
                i = chain.end;
                continue;
            }
            let output = rest.first_mut().ok_or_else(|| Error::Shape {
                op: "Sequential::forward",
                detail: format!("no output for layer {i}"),
            })?;
            layer.forward(
                backend,
                Forward {
                    params: &tensors[self.ranges[i].clone()],
                    input,
                    output,
                    saved: &mut acts.saved[i],
                    mode,
                    step,
                },
            )?;
            i += 1;
        }
        Ok(())
    }

    /// Layer `i` of a chain as a link: its activation and its two parameters (checked when the
    /// model was built).
    fn link<'a>(&self, tensors: &'a [B::Matrix], i: usize) -> Result<LinearLink<'a, B::Matrix>> {
        let layer = &self.layers[i];
        match (&tensors[self.ranges[i].clone()], layer.fusable_linear()) {
            ([weight, bias], Some(activation)) => Ok(LinearLink {
                weight,
                bias,
                activation,
            }),
            (params, _) => Err(Error::Shape {
                op: "Sequential::forward",
                detail: format!(
                    "layer {i} ({}) runs as a linear link but declares {} parameters, not 2",
                    layer.describe(),
                    params.len()
                ),
            }),
        }
    }

    /// The backward pass: from ∂loss/∂output in the last `acts.output_grads`, every
    /// parameter's gradient into the gradient arena.
    pub(crate) fn backward_batch(
        &mut self,
        backend: &B,
        input: &B::Matrix,
        acts: &mut Activations<B::Matrix>,
    ) -> Result<()> {
        let top = self.layers.len() - 1;
        // The top layer's fused activation: its derivative comes from no layer above.
        let activation = self.layers[top].fused_activation();
        if activation != Activation::Identity {
            backend.activation_backward(
                activation,
                &acts.outputs[top],
                &mut acts.output_grads[top],
            )?;
        }
        let params = self.params.tensors();
        let grads = self.grads.tensors_mut();
        for i in (0..=top).rev() {
            let (lower, upper) = acts.output_grads.split_at_mut(i);
            let below = i.checked_sub(1);
            let grad_input = match (lower.last_mut(), below) {
                (Some(grad), Some(b)) => Some(InputGrad {
                    grad,
                    activation: self.layers[b].fused_activation(),
                    below_output: &acts.outputs[b],
                }),
                _ => None,
            };
            let range = self.ranges[i].clone();
            if grad_input.is_none() && range.is_empty() {
                continue; // nothing to compute for a first layer without parameters
            }
            self.layers[i].backward(
                backend,
                Backward {
                    params: &params[range.clone()],
                    input: below.map_or(input, |b| &acts.outputs[b]),
                    output: &acts.outputs[i],
                    saved: &mut acts.saved[i],
                    grad_output: &upper[0],
                    grad_params: &mut grads[range],
                    grad_input,
                },
            )?;
        }
        Ok(())
    }
}

/// The runs of two or more consecutive layers whose forward pass is a linear layer's.
fn linear_chains<B: Backend>(layers: &[Box<dyn Layer<B>>]) -> Vec<Range<usize>> {
    let mut chains = Vec::new();
    let mut start = None;
    for i in 0..=layers.len() {
        let linear = layers.get(i).is_some_and(|l| l.fusable_linear().is_some());
        match (linear, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s >= 2 {
                    chains.push(s..i);
                }
                start = None;
            }
            _ => {}
        }
    }
    chains
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
