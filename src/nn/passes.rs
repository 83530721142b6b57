//! A batch's matrices and the passes over them: the [`Activations`] a forward pass keeps for
//! the backward pass, a training step's [`Workspace`], and [`Sequential`]'s batch forward (runs
//! of linear layers as one [`Backend::linear_chain_into`]) and backward.

use std::ops::Range;

use super::Sequential;
use super::layer::{Backward, BufferUpdate, Forward, InputGrad, Layer, Mode};
use crate::backend::{Activation, Arena, Backend, LinearLink};
use crate::error::{Error, Result};

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
    /// Matrices for the passes over a batch of `rows` samples (the gradients' only for
    /// training: a forward pass alone writes none).
    pub(crate) fn activations(
        &self,
        backend: &B,
        rows: usize,
        mode: Mode,
    ) -> Result<Activations<B::Matrix>> {
        self.check_batch_fits(backend, rows, None)?;
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

    /// Fails, before anything is allocated, where a batch of `rows` samples (with targets
    /// `target_cols` wide, for training) needs a matrix over the backend's
    /// [`Backend::max_matrix_elements`], naming it and the batch size that would fit: a batch
    /// too large for one GPU binding is refused here rather than by the first kernel to bind it.
    pub(crate) fn check_batch_fits(
        &self,
        backend: &B,
        rows: usize,
        target_cols: Option<usize>,
    ) -> Result<()> {
        let max = backend.max_matrix_elements();
        // `what` names the matrix, built only for the error.
        let check = |what: &dyn Fn() -> String, (r, c): (usize, usize)| {
            let elements = r.saturating_mul(c);
            if elements <= max {
                return Ok(());
            }
            // The matrix's elements per sample, so the advice holds for any batch size.
            let per_row = elements.div_ceil(rows.max(1)).max(1);
            Err(Error::Shape {
                op: "batch",
                detail: format!(
                    "a batch of {rows} rows needs a {r}×{c} matrix for {}, over the {max} \
                     elements one matrix may hold on this backend \
                     (Backend::max_matrix_elements); use batches of at most {} rows",
                    what(),
                    max / per_row
                ),
            })
        };
        check(&|| "the inputs".into(), (rows, self.inputs()))?;
        if let Some(cols) = target_cols {
            check(&|| "the targets".into(), (rows, cols))?;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            check(&|| format!("layer {i}'s outputs"), (rows, layer.outputs()))?;
            for shape in layer.saved_shapes(rows) {
                check(&|| format!("what layer {i} keeps"), shape)?;
            }
        }
        Ok(())
    }

    /// Buffers for a batch of `rows` samples with targets `target_cols` wide.
    pub(crate) fn workspace(
        &self,
        backend: &B,
        rows: usize,
        target_cols: usize,
    ) -> Result<Workspace<B::Matrix>> {
        self.check_batch_fits(backend, rows, Some(target_cols))?;
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
                    params: &tensors[self.param_ranges[i].clone()],
                    buffers: &tensors[self.buffer_ranges[i].clone()],
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

    /// The forward pass of a training step over `input` ([`Sequential::forward_batch`] in
    /// [`Mode::Train`]), then each layer with buffers updates them from what it kept
    /// ([`Layer::update_buffers`]): a batch norm's running statistics follow every training
    /// batch, as PyTorch's do in `model.train()`.
    pub(crate) fn train_forward_batch(
        &mut self,
        backend: &B,
        input: &B::Matrix,
        acts: &mut Activations<B::Matrix>,
        step: u64,
    ) -> Result<()> {
        self.forward_batch(backend, input, acts, Mode::Train, step)?;
        let tensors = self.params.tensors_mut();
        for (i, buffers) in self.buffer_ranges.iter().enumerate() {
            if buffers.is_empty() {
                continue;
            }
            let below = i.checked_sub(1).map_or(input, |b| &acts.outputs[b]);
            self.layers[i].update_buffers(
                backend,
                BufferUpdate {
                    buffers: &mut tensors[buffers.clone()],
                    saved: &acts.saved[i],
                    input: below,
                },
            )?;
        }
        Ok(())
    }

    /// Layer `i` of a chain as a link: its activation and its two parameters (checked when the
    /// model was built).
    fn link<'a>(&self, tensors: &'a [B::Matrix], i: usize) -> Result<LinearLink<'a, B::Matrix>> {
        let layer = &self.layers[i];
        match (
            &tensors[self.param_ranges[i].clone()],
            layer.fusable_linear(),
        ) {
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

    /// The backward pass: from ∂loss/∂output in the last `acts.output_grads`, the gradient of
    /// every parameter tensor `t` that `frozen[t]` does not mark frozen into the gradient
    /// arena (`frozen` in [`Sequential::tensor_names`]' order; empty, or short: the rest
    /// train). As PyTorch's autograd does, the layers below the lowest trained one
    /// ([`Sequential::first_trained_layer`]) run no backward pass and it passes no gradient
    /// down, and every layer above it is told which of its parameters are frozen
    /// ([`Backward::trained`]): it passes the gradient down and may skip theirs. The
    /// gradients of frozen tensors are left as they are, or written: nothing reads them.
    pub(crate) fn backward_batch(
        &mut self,
        backend: &B,
        input: &B::Matrix,
        acts: &mut Activations<B::Matrix>,
        frozen: &[bool],
    ) -> Result<()> {
        let from = self.first_trained_layer(frozen);
        for (t, trained) in self.trained.iter_mut().enumerate() {
            *trained = !frozen.get(t).copied().unwrap_or(false) && !self.buffer[t];
        }
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
        for i in (from.min(top)..=top).rev() {
            let (lower, upper) = acts.output_grads.split_at_mut(i);
            let below = i.checked_sub(1);
            let grad_input = match (lower.last_mut(), below) {
                (Some(grad), Some(b)) if i > from => Some(InputGrad {
                    grad,
                    activation: self.layers[b].fused_activation(),
                    below_output: &acts.outputs[b],
                }),
                _ => None,
            };
            let range = self.param_ranges[i].clone();
            if grad_input.is_none() && range.is_empty() {
                continue; // nothing to compute for a first layer without parameters
            }
            self.layers[i].backward(
                backend,
                Backward {
                    params: &params[range.clone()],
                    buffers: &params[self.buffer_ranges[i].clone()],
                    input: below.map_or(input, |b| &acts.outputs[b]),
                    output: &acts.outputs[i],
                    saved: &mut acts.saved[i],
                    grad_output: &upper[0],
                    grad_params: &mut grads[range.clone()],
                    trained: &self.trained[range.clone()],
                    grad_input,
                },
            )?;
        }
        Ok(())
    }
}

impl<B: Backend> Sequential<B> {
    /// The lowest layer with a parameter to train, where `frozen[t]` says whether parameter
    /// tensor `t` (in [`Sequential::tensor_names`]' order) is frozen: the backward pass needs
    /// to run no lower. 0 when nothing is frozen (or, with everything frozen, which no
    /// optimizer accepts).
    pub(crate) fn first_trained_layer(&self, frozen: &[bool]) -> usize {
        self.param_ranges
            .iter()
            .position(|range| trains(range, frozen))
            .unwrap_or(0)
    }
}

/// Whether any of the parameter tensors `range` holds is trained (`frozen[t]` false, or
/// past its end).
fn trains(range: &Range<usize>, frozen: &[bool]) -> bool {
    range
        .clone()
        .any(|t| !frozen.get(t).copied().unwrap_or(false))
}

/// The runs of two or more consecutive layers whose forward pass is a linear layer's.
pub(super) fn linear_chains<B: Backend>(layers: &[Box<dyn Layer<B>>]) -> Vec<Range<usize>> {
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
