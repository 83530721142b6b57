//! `Mlp`: a stack of linear layers whose parameters live in one arena of the backend.

use ndarray::{ArrayD, IxDyn};

use super::init::{Init, seeded};
use crate::backend::{Activation, Arena, Backend, Matmul, Matrix};
use crate::error::{Error, Result};

/// One linear layer: `act(x · Wᵀ + b)` with `W` stored `[outputs, inputs]` as PyTorch stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// Applied to the output (fused into the matmul).
    pub activation: Activation,
}

/// The shape of an MLP: its input width and its layers in order.
///
/// ```
/// use steepest::{Activation, MlpSpec};
/// let spec = MlpSpec::new(2)
///     .layer(64, Activation::Relu)
///     .layer(64, Activation::Relu)
///     .layer(3, Activation::Identity); // logits
/// assert_eq!(spec.outputs(), 3);
/// assert_eq!(spec.parameter_count(), 2 * 64 + 64 + 64 * 64 + 64 + 64 * 3 + 3);
/// assert_eq!(spec, MlpSpec::stack(&[2, 64, 64, 3], Activation::Relu));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlpSpec {
    inputs: usize,
    layers: Vec<Linear>,
}

impl MlpSpec {
    /// A network taking `inputs` features, with no layers yet.
    pub fn new(inputs: usize) -> Self {
        Self {
            inputs,
            layers: Vec::new(),
        }
    }

    /// A network of `widths[0]` inputs and one layer per further width, each followed by
    /// `hidden` except the last, which is linear (logits, or a regression's outputs):
    /// `MlpSpec::stack(&[784, 256, 10], Activation::Relu)` is 784→256 ReLU →10.
    pub fn stack(widths: &[usize], hidden: Activation) -> Self {
        let mut spec = Self::new(widths.first().copied().unwrap_or(0));
        let layers = widths.len().saturating_sub(1);
        for (i, &outputs) in widths.iter().skip(1).enumerate() {
            let activation = if i + 1 == layers {
                Activation::Identity
            } else {
                hidden
            };
            spec = spec.layer(outputs, activation);
        }
        spec
    }

    /// Appends a linear layer of `outputs` features followed by `activation`.
    pub fn layer(mut self, outputs: usize, activation: Activation) -> Self {
        let inputs = self.outputs();
        self.layers.push(Linear {
            inputs,
            outputs,
            activation,
        });
        self
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output features of the last layer (the inputs when there is none).
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(self.inputs, |l| l.outputs)
    }

    /// The layers.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// Number of weights and biases (`usize::MAX` if that count overflows, which
    /// [`Mlp::new`] refuses).
    pub fn parameter_count(&self) -> usize {
        self.checked_parameter_count().unwrap_or(usize::MAX)
    }

    fn checked_parameter_count(&self) -> Option<usize> {
        self.layers.iter().try_fold(0usize, |sum, l| {
            l.inputs
                .checked_add(1)
                .and_then(|fan_in| fan_in.checked_mul(l.outputs))
                .and_then(|n| sum.checked_add(n))
        })
    }

    /// (rows, cols) of every tensor in arena order: weight then bias (1 × outputs), per layer.
    fn tensor_shapes(&self) -> Vec<(usize, usize)> {
        self.layers
            .iter()
            .flat_map(|l| [(l.outputs, l.inputs), (1, l.outputs)])
            .collect()
    }

    /// PyTorch's `state_dict` names in arena order: `layers.{i}.weight`, `layers.{i}.bias`.
    pub fn tensor_names(&self) -> Vec<String> {
        (0..self.layers.len())
            .flat_map(|i| [format!("layers.{i}.weight"), format!("layers.{i}.bias")])
            .collect()
    }

    fn validate(&self) -> Result<()> {
        let bad = |detail: String| {
            Err(Error::Shape {
                op: "Mlp::new",
                detail,
            })
        };
        if self.layers.is_empty() {
            return bad("the network has no layers".into());
        }
        if let Some((i, l)) = self
            .layers
            .iter()
            .enumerate()
            .find(|(_, l)| l.inputs == 0 || l.outputs == 0)
        {
            return bad(format!("layer {i} is {}→{}", l.inputs, l.outputs));
        }
        if self.checked_parameter_count().is_none() {
            return bad(format!(
                "the layers' parameter count overflows usize ({})",
                describe(self)
            ));
        }
        Ok(())
    }
}

/// The layer widths as `inputs-out-out-…`, for messages.
fn describe(spec: &MlpSpec) -> String {
    std::iter::once(spec.inputs)
        .chain(spec.layers.iter().map(|l| l.outputs))
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

/// The intermediate values of one batch: what the forward pass keeps for the backward pass.
pub(crate) struct Workspace<M> {
    pub rows: usize,
    /// The batch's inputs and targets (gathered from the dataset).
    pub input: M,
    pub target: M,
    /// Output of each layer, after its activation (the last one holds the logits).
    pub outputs: Vec<M>,
    /// ∂loss/∂(pre-activation) of each layer once the backward pass has reached it (the top
    /// layer's holds ∂loss/∂logits first and is turned in place).
    pub output_grads: Vec<M>,
}

/// A multi-layer perceptron on backend `B`: parameters and their gradients in two arenas of the
/// same layout, so one optimizer dispatch updates the whole model.
pub struct Mlp<B: Backend> {
    spec: MlpSpec,
    pub(crate) params: B::Arena,
    pub(crate) grads: B::Arena,
    /// The preprocessing its inputs get before [`Mlp::predict`], saved with the model.
    standardizer: Option<crate::data::Standardizer>,
}

impl<B: Backend> std::fmt::Debug for Mlp<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mlp")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Mlp<B> {
    /// A network shaped as `spec` with weights drawn by `init` from a generator seeded with
    /// `seed`; the same seed gives the same weights on both backends.
    pub fn new(backend: &B, spec: &MlpSpec, init: Init, seed: u64) -> Result<Self> {
        spec.validate()?;
        let shapes = spec.tensor_shapes();
        let mut params = backend.arena("parameters", &shapes)?;
        let grads = backend.arena("gradients", &shapes)?;
        let mut rng = seeded(seed);
        let mut values = Vec::with_capacity(spec.parameter_count());
        for layer in &spec.layers {
            let (weight, bias) = init.draw(&mut rng, layer.inputs, layer.outputs);
            values.extend(weight.iter().chain(bias.iter()));
        }
        backend.write_arena(&mut params, &values)?;
        Ok(Self {
            spec: spec.clone(),
            params,
            grads,
            standardizer: None,
        })
    }

    /// The standardisation [`Mlp::predict`] applies to raw inputs first, if any.
    pub fn standardizer(&self) -> Option<&crate::data::Standardizer> {
        self.standardizer.as_ref()
    }

    /// Attaches the standardisation the training data got (or none), so that
    /// [`Mlp::predict`] takes raw inputs and the model's file carries it
    /// ([`Mlp::save_safetensors`]). Training still takes standardised data
    /// ([`crate::Standardizer::transform`]). Fails if it was fitted on another number of
    /// features.
    pub fn set_standardizer(
        &mut self,
        standardizer: Option<crate::data::Standardizer>,
    ) -> Result<()> {
        if let Some(s) = &standardizer {
            if s.mean().len() != self.spec.inputs() {
                return Err(Error::Shape {
                    op: "Mlp::set_standardizer",
                    detail: format!(
                        "the standardizer was fitted on {} features, the network takes {}",
                        s.mean().len(),
                        self.spec.inputs()
                    ),
                });
            }
        }
        self.standardizer = standardizer;
        Ok(())
    }

    /// The network's shape.
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// The parameter arena (weights and biases as views on the GPU).
    pub fn parameters(&self) -> &B::Arena {
        &self.params
    }

    /// The gradient arena, as the last backward pass left it.
    pub fn gradients(&self) -> &B::Arena {
        &self.grads
    }

    /// Every parameter in arena order (layer by layer: weight row-major, then bias).
    pub fn parameters_flat(&self, backend: &B) -> Result<Vec<f32>> {
        backend.read_arena(&self.params)
    }

    /// Sets every parameter from values laid out as [`Mlp::parameters_flat`] returns them.
    pub fn set_parameters_flat(&mut self, backend: &B, values: &[f32]) -> Result<()> {
        backend.write_arena(&mut self.params, values)
    }

    /// The parameters by PyTorch's names: `layers.{i}.weight` `[out, in]` and `layers.{i}.bias`
    /// `[out]`, the layout `torch.nn.Linear` uses, so weights move between the two.
    pub fn state_dict(&self, backend: &B) -> Result<Vec<(String, ArrayD<f32>)>> {
        let flat = self.parameters_flat(backend)?;
        let mut at = 0;
        let mut out = Vec::new();
        for (name, (rows, cols)) in self
            .spec
            .tensor_names()
            .into_iter()
            .zip(self.spec.tensor_shapes())
        {
            let values = flat[at..at + rows * cols].to_vec();
            at += rows * cols;
            let shape = if name.ends_with(".bias") {
                IxDyn(&[cols])
            } else {
                IxDyn(&[rows, cols])
            };
            let array = ArrayD::from_shape_vec(shape, values).map_err(|e| Error::Shape {
                op: "state_dict",
                detail: e.to_string(),
            })?;
            out.push((name, array));
        }
        Ok(out)
    }

    /// Loads parameters by name (as [`Mlp::state_dict`] gives them). Every expected name must be
    /// present with its exact shape; on any error nothing is changed.
    pub fn load_state_dict(
        &mut self,
        backend: &B,
        tensors: &[(String, ArrayD<f32>)],
    ) -> Result<()> {
        let mut values = Vec::with_capacity(self.spec.parameter_count());
        for (name, (rows, cols)) in self
            .spec
            .tensor_names()
            .into_iter()
            .zip(self.spec.tensor_shapes())
        {
            let expected: Vec<usize> = if name.ends_with(".bias") {
                vec![cols]
            } else {
                vec![rows, cols]
            };
            let Some((_, array)) = tensors.iter().find(|(n, _)| *n == name) else {
                return Err(Error::Shape {
                    op: "load_state_dict",
                    detail: format!("tensor {name} is missing"),
                });
            };
            if array.shape() != expected.as_slice() {
                return Err(Error::Shape {
                    op: "load_state_dict",
                    detail: format!(
                        "tensor {name} has shape {:?}, the model needs {expected:?}",
                        array.shape()
                    ),
                });
            }
            values.extend(array.iter().copied());
        }
        self.set_parameters_flat(backend, &values)
    }

    /// The network's output for `x` (rows × inputs), in a new matrix.
    pub fn forward(&self, backend: &B, x: &B::Matrix) -> Result<B::Matrix> {
        check_input(&self.spec, x)?;
        let mut current: Option<B::Matrix> = None;
        for (i, layer) in self.spec.layers.iter().enumerate() {
            let input = current.as_ref().unwrap_or(x);
            let (weight, bias) = self.layer_params(i);
            let out = backend.matmul(
                Matmul::nt().activation(layer.activation),
                input,
                weight,
                Some(bias),
            )?;
            current = Some(out);
        }
        current.ok_or_else(|| Error::Shape {
            op: "Mlp::forward",
            detail: "the network has no layers".into(),
        })
    }

    fn layer_params(&self, layer: usize) -> (&B::Matrix, &B::Matrix) {
        let tensors = self.params.tensors();
        (&tensors[2 * layer], &tensors[2 * layer + 1])
    }

    /// Buffers for a batch of `rows` samples with targets `target_cols` wide.
    pub(crate) fn workspace(
        &self,
        backend: &B,
        rows: usize,
        target_cols: usize,
    ) -> Result<Workspace<B::Matrix>> {
        let mut outputs = Vec::new();
        let mut output_grads = Vec::new();
        for layer in &self.spec.layers {
            outputs.push(backend.zeros(rows, layer.outputs)?);
            output_grads.push(backend.zeros(rows, layer.outputs)?);
        }
        Ok(Workspace {
            rows,
            input: backend.zeros(rows, self.spec.inputs)?,
            target: backend.zeros(rows, target_cols)?,
            outputs,
            output_grads,
        })
    }

    /// The forward pass over `ws.input`, keeping every layer's output in `ws`.
    pub(crate) fn forward_batch(&self, backend: &B, ws: &mut Workspace<B::Matrix>) -> Result<()> {
        for (i, layer) in self.spec.layers.iter().enumerate() {
            let (done, rest) = ws.outputs.split_at_mut(i);
            let input = done.last().unwrap_or(&ws.input);
            let (weight, bias) = self.layer_params(i);
            backend.matmul_into(
                Matmul::nt().activation(layer.activation),
                input,
                weight,
                Some(bias),
                &mut rest[0],
            )?;
        }
        Ok(())
    }

    /// The backward pass: from ∂loss/∂logits in the last `ws.output_grads`, every weight and
    /// bias gradient into the gradient arena.
    pub(crate) fn backward_batch(
        &mut self,
        backend: &B,
        ws: &mut Workspace<B::Matrix>,
    ) -> Result<()> {
        let grads = self.grads.tensors_mut();
        let top = self.spec.layers.len() - 1;
        for i in (0..=top).rev() {
            let layer = self.spec.layers[i];
            let (lower, upper) = ws.output_grads.split_at_mut(i);
            let delta = &mut upper[0];
            // ∂/∂(pre-activation) = ∂/∂output · act'(output): for the top layer here; below
            // it, fused into the product that computes ∂/∂output (further down).
            if i == top && layer.activation != Activation::Identity {
                backend.activation_backward(layer.activation, &ws.outputs[i], delta)?;
            }
            let input = if i == 0 {
                &ws.input
            } else {
                &ws.outputs[i - 1]
            };
            let (weight_grad, rest) = grads[2 * i..].split_at_mut(1);
            // ∂W = δᵀ · x (outputs × inputs), ∂b = Σ_rows δ.
            backend.matmul_into(Matmul::tn(), delta, input, None, &mut weight_grad[0])?;
            backend.column_sum_into(delta, &mut rest[0])?;
            if let Some(below) = lower.last_mut() {
                // ∂/∂(pre-activation of the layer below) = (δ · W) ⊙ act'(its output).
                let weight = &self.params.tensors()[2 * i];
                let activation = self.spec.layers[i - 1].activation;
                if activation == Activation::Identity {
                    backend.matmul_into(Matmul::nn(), delta, weight, None, below)?;
                } else {
                    backend.matmul_activation_backward_into(
                        Matmul::nn(),
                        delta,
                        weight,
                        activation,
                        &ws.outputs[i - 1],
                        below,
                    )?;
                }
            }
        }
        Ok(())
    }
}

impl<B: Backend> Mlp<B> {
    /// Number of weights and biases.
    pub fn parameter_count(&self) -> usize {
        self.spec.parameter_count()
    }

    /// The rows × outputs shape the network gives for `rows` samples.
    pub fn output_shape(&self, rows: usize) -> (usize, usize) {
        (rows, self.spec.outputs())
    }
}

/// Checks that `x` has the network's input width.
fn check_input<M: Matrix>(spec: &MlpSpec, x: &M) -> Result<()> {
    if x.shape().1 != spec.inputs() {
        return Err(Error::Shape {
            op: "Mlp::forward",
            detail: format!(
                "inputs have {} features, the network takes {}",
                x.shape().1,
                spec.inputs()
            ),
        });
    }
    Ok(())
}
