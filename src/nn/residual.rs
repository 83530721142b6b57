//! `Residual`: `x + f(x)`, where `f` is a chain of layers of the same width at both ends.

use ndarray::ArrayView2;
use rand::rngs::StdRng;

use super::Init;
use super::layer::{Backward, BufferUpdate, Forward, InputGrad, Layer, ParamSpec};
use crate::backend::{Activation, Backend};
use crate::error::{Error, Result};

/// A residual block, `x + f(x)`, with `f` a chain of layers (PyTorch: a module holding them in
/// an `nn.Sequential` named `block`, so their parameters are `block.{j}.weight`, …, and their
/// buffers `block.{j}.running_mean`, …: a [`BatchNorm`](super::BatchNorm) may sit inside).
///
/// The chain's last layer may not fuse an activation ([`Layer::fused_activation`]): its
/// output is added to `x` as it is. End the chain with an identity [`Linear`](super::Linear)
/// or an [`Elementwise`](super::Elementwise) layer.
pub struct Residual<B: Backend> {
    width: usize,
    layers: Vec<Box<dyn Layer<B>>>,
    /// Parameter tensors of each layer of the chain, counted once.
    tensor_counts: Vec<usize>,
    /// Buffers of each layer of the chain, counted once.
    buffer_counts: Vec<usize>,
    /// Saved matrices of each layer of the chain (its output, its output's gradient, and
    /// what it keeps), counted once.
    saved_counts: Vec<usize>,
}

impl<B: Backend> std::fmt::Debug for Residual<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Residual")
            .field("layers", &self.layers)
            .finish()
    }
}

impl<B: Backend> Residual<B> {
    /// `x + f(x)` with `f` the chain of `layers`; fails unless the chain takes and gives the
    /// same width, each layer takes what the one before gives, and the last fuses no
    /// activation.
    pub fn new(layers: Vec<Box<dyn Layer<B>>>) -> Result<Self> {
        let bad = |detail: String| {
            Err(Error::Shape {
                op: "Residual::new",
                detail,
            })
        };
        for layer in &layers {
            layer.validate()?;
        }
        let (Some(first), Some(last)) = (layers.first(), layers.last()) else {
            return bad("the block has no layers".into());
        };
        if first.inputs() != last.outputs() {
            return bad(format!(
                "the block takes {} features and gives {}; a residual block gives what it takes",
                first.inputs(),
                last.outputs()
            ));
        }
        if let Some(j) = (1..layers.len()).find(|&j| layers[j].inputs() != layers[j - 1].outputs())
        {
            return bad(format!(
                "layer {} ({}) gives {} features, layer {j} ({}) takes {}",
                j - 1,
                layers[j - 1].describe(),
                layers[j - 1].outputs(),
                layers[j].describe(),
                layers[j].inputs()
            ));
        }
        if last.fused_activation() != Activation::Identity {
            return bad(format!(
                "the last layer ({}) fuses an activation, which the skip connection would \
                 bypass; end the block with an identity Linear or an Elementwise layer",
                last.describe()
            ));
        }
        Ok(Self {
            width: first.inputs(),
            tensor_counts: layers.iter().map(|l| l.parameters().len()).collect(),
            buffer_counts: layers.iter().map(|l| l.buffers().len()).collect(),
            saved_counts: layers.iter().map(|l| 2 + l.saved_shapes(1).len()).collect(),
            layers,
        })
    }

    /// Checks that a pass was given the tensors the block declares, so that splitting them
    /// among its layers cannot come up short.
    fn check_given(
        &self,
        op: &'static str,
        params: Option<usize>,
        buffers: usize,
        saved: usize,
    ) -> Result<()> {
        let declared = |counts: &[usize]| counts.iter().sum::<usize>();
        let (own_params, own_saved) = (declared(&self.tensor_counts), declared(&self.saved_counts));
        if params.is_some_and(|p| p != own_params) || saved != own_saved {
            let given = params.unwrap_or(own_params);
            return Err(super::wrong_tensors(
                op,
                (given, own_params),
                (saved, own_saved),
            ));
        }
        let own_buffers = declared(&self.buffer_counts);
        if buffers != own_buffers {
            return Err(super::wrong_buffers(op, buffers, own_buffers));
        }
        Ok(())
    }
}

/// Splits `items` into consecutive chunks of `counts`.
fn chunks<'s, T>(mut items: &'s [T], counts: &[usize]) -> Vec<&'s [T]> {
    counts
        .iter()
        .map(|&n| {
            let (head, rest) = items.split_at(n.min(items.len()));
            items = rest;
            head
        })
        .collect()
}

/// Splits `items` into consecutive writable chunks of `counts`.
fn chunks_mut<'s, T>(mut items: &'s mut [T], counts: &[usize]) -> Vec<&'s mut [T]> {
    counts
        .iter()
        .map(|&n| {
            let at = n.min(items.len());
            let (head, rest) = std::mem::take(&mut items).split_at_mut(at);
            items = rest;
            head
        })
        .collect()
}

impl<B: Backend> Layer<B> for Residual<B> {
    fn describe(&self) -> String {
        let parts: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
        format!("residual({})", parts.join(" | "))
    }

    fn inputs(&self) -> usize {
        self.width
    }

    /// What the chain's first layer checks: the block's input is its input.
    fn check_data(&self, op: &'static str, x: ArrayView2<'_, f32>) -> Result<()> {
        match self.layers.first() {
            Some(first) => first.check_data(op, x),
            None => Ok(()),
        }
    }

    fn outputs(&self) -> usize {
        self.width
    }

    fn min_training_rows(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.min_training_rows())
            .max()
            .unwrap_or(1)
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        let mut out = Vec::new();
        for (j, layer) in self.layers.iter().enumerate() {
            out.extend(layer.parameters().into_iter().map(|p| ParamSpec {
                name: format!("block.{j}.{}", p.name),
                ..p
            }));
        }
        out
    }

    fn initial_values(&self, init: Init, rng: &mut StdRng) -> Vec<f32> {
        self.layers
            .iter()
            .flat_map(|l| l.initial_values(init, rng))
            .collect()
    }

    fn buffers(&self) -> Vec<ParamSpec> {
        let mut out = Vec::new();
        for (j, layer) in self.layers.iter().enumerate() {
            out.extend(layer.buffers().into_iter().map(|p| ParamSpec {
                name: format!("block.{j}.{}", p.name),
                ..p
            }));
        }
        out
    }

    fn initial_buffers(&self) -> Vec<f32> {
        self.layers
            .iter()
            .flat_map(|l| l.initial_buffers())
            .collect()
    }

    /// Each layer of the chain with buffers updates them from what it kept and its input.
    fn update_buffers(&self, backend: &B, pass: BufferUpdate<'_, B>) -> Result<()> {
        let op = "Residual::update_buffers";
        self.check_given(op, None, pass.buffers.len(), pass.saved.len())?;
        let buffers = chunks_mut(pass.buffers, &self.buffer_counts);
        let saved = chunks(pass.saved, &self.saved_counts);
        for (j, (layer, own)) in self.layers.iter().zip(buffers).enumerate() {
            if own.is_empty() {
                continue;
            }
            // Every layer's chunk starts with its output (checked above).
            let input = match j.checked_sub(1) {
                Some(below) => &saved[below][0],
                None => pass.input,
            };
            layer.update_buffers(
                backend,
                BufferUpdate {
                    buffers: own,
                    saved: &saved[j][2..],
                    input,
                },
            )?;
        }
        Ok(())
    }

    /// Per layer of the chain: its output, its output's gradient, then what it keeps.
    fn saved_shapes(&self, rows: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for layer in &self.layers {
            out.push((rows, layer.outputs()));
            out.push((rows, layer.outputs()));
            out.extend(layer.saved_shapes(rows));
        }
        out
    }

    fn forward(&self, backend: &B, pass: Forward<'_, B>) -> Result<()> {
        let (params, buffers, saved) = (pass.params.len(), pass.buffers.len(), pass.saved.len());
        self.check_given("Residual::forward", Some(params), buffers, saved)?;
        let params = chunks(pass.params, &self.tensor_counts);
        let buffers = chunks(pass.buffers, &self.buffer_counts);
        let mut saved = chunks_mut(pass.saved, &self.saved_counts);
        for (j, layer) in self.layers.iter().enumerate() {
            let (done, rest) = saved.split_at_mut(j);
            let input = done.last().map_or(pass.input, |chunk| &chunk[0]);
            let (output, kept) = rest[0].split_at_mut(2);
            layer.forward(
                backend,
                Forward {
                    params: params[j],
                    buffers: buffers[j],
                    input,
                    output: &mut output[0],
                    saved: kept,
                    mode: pass.mode,
                    step: pass.step,
                },
            )?;
        }
        let branch = saved
            .last()
            .map(|chunk| &chunk[0])
            .ok_or_else(|| Error::Shape {
                op: "Residual::forward",
                detail: "the block has no layers".into(),
            })?;
        backend.add_into(pass.input, branch, pass.output)
    }

    fn backward(&self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let (buffers, saved) = (pass.buffers.len(), pass.saved.len());
        for given in [
            pass.params.len(),
            pass.grad_params.len(),
            pass.trained.len(),
        ] {
            self.check_given("Residual::backward", Some(given), buffers, saved)?;
        }
        let params = chunks(pass.params, &self.tensor_counts);
        let buffers = chunks(pass.buffers, &self.buffer_counts);
        let trained = chunks(pass.trained, &self.tensor_counts);
        let mut grads = chunks_mut(pass.grad_params, &self.tensor_counts);
        let mut saved = chunks_mut(pass.saved, &self.saved_counts);
        let mut below = pass.grad_input;
        let top = self.layers.len() - 1;
        for j in (0..=top).rev() {
            let (lower, upper) = saved.split_at_mut(j);
            let (own, kept) = upper[0].split_at_mut(2);
            let grad_output = if j == top { pass.grad_output } else { &own[1] };
            let (input, grad_input) = match lower.last_mut() {
                Some(chunk) => {
                    let (out, grad) = chunk.split_at_mut(1);
                    let input = &out[0];
                    let grad_input = InputGrad {
                        grad: &mut grad[0],
                        activation: self.layers[j - 1].fused_activation(),
                        below_output: input,
                    };
                    (input, Some(grad_input))
                }
                // The chain's first layer passes ∂/∂x itself down; the skip is added after.
                None => (
                    pass.input,
                    below.as_mut().map(|b| InputGrad {
                        grad: &mut *b.grad,
                        activation: Activation::Identity,
                        below_output: pass.input,
                    }),
                ),
            };
            self.layers[j].backward(
                backend,
                Backward {
                    params: params[j],
                    buffers: buffers[j],
                    input,
                    output: &own[0],
                    saved: kept,
                    grad_output,
                    grad_params: grads[j],
                    trained: trained[j],
                    grad_input,
                },
            )?;
        }
        if let Some(mut below) = below {
            // ∂/∂x = ∂/∂x through the chain + ∂/∂y through the skip.
            backend.axpy(1.0, pass.grad_output, below.grad)?;
            below.apply_activation(backend)?;
        }
        Ok(())
    }
}
