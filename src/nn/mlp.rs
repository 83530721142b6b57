//! `Mlp`: a stack of linear layers, built as a [`Sequential`] model whose parameters are
//! named `layers.{i}.weight` and `layers.{i}.bias`.

use std::ops::{Deref, DerefMut};

use super::{Init, Layer, Linear, Sequential};
use crate::backend::{Activation, Backend};
use crate::error::{Error, Result};

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

    /// The architecture as one line (`2-64:relu-2:identity`), stored in model files and
    /// checkpoints so that one for another network is refused by name.
    pub(crate) fn architecture(&self) -> String {
        let mut text = self.inputs.to_string();
        for layer in &self.layers {
            text.push_str(&format!("-{}:{}", layer.outputs, layer.activation.name()));
        }
        text
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

/// A multi-layer perceptron on backend `B`: a [`Sequential`] model of [`Linear`] layers (each
/// activation fused into its layer) built from an [`MlpSpec`], which it keeps for its file's
/// architecture line. Everything a model does ([`Sequential::predict`],
/// [`Sequential::state_dict`], …) it does through `Deref`.
pub struct Mlp<B: Backend> {
    spec: MlpSpec,
    net: Sequential<B>,
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
        let layers: Vec<Box<dyn Layer<B>>> = spec
            .layers
            .iter()
            .map(|l| Box::new(*l) as Box<dyn Layer<B>>)
            .collect();
        Ok(Self {
            spec: spec.clone(),
            net: Sequential::with_prefix(backend, "layers.", layers, init, seed)?,
        })
    }

    /// The network's shape.
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// The model it is built as.
    pub fn into_sequential(self) -> Sequential<B> {
        self.net
    }
}

impl<B: Backend> Deref for Mlp<B> {
    type Target = Sequential<B>;
    fn deref(&self) -> &Sequential<B> {
        &self.net
    }
}

impl<B: Backend> DerefMut for Mlp<B> {
    fn deref_mut(&mut self) -> &mut Sequential<B> {
        &mut self.net
    }
}
