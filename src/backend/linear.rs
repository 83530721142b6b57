//! The linear layer's ops composed from the primitive ones: what [`Backend`]'s default
//! `linear_*` methods run (the CPU's ops, and the reference the GPU's fused kernels match bit
//! for bit), and the link type a chain of linear layers is given in.

use super::{Activation, Backend, Matmul, Matrix};
use super::{linear_backward_dims, linear_chain_dims, linear_grads_dims};
use crate::error::Result;

/// One linear layer of a chain ([`Backend::linear_chain_into`]): `act(x · weightᵀ + bias)`,
/// with `weight` stored `outputs × inputs` (as [`crate::Linear`] stores it) and `bias`
/// `1 × outputs`.
#[derive(Debug)]
pub struct LinearLink<'a, M> {
    /// `outputs × inputs`.
    pub weight: &'a M,
    /// `1 × outputs`.
    pub bias: &'a M,
    /// Applied to the link's output.
    pub activation: Activation,
}

impl<M> Clone for LinearLink<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for LinearLink<'_, M> {}

/// [`Backend::linear_chain_into`] as one [`Backend::matmul_into`] a link.
pub(super) fn chain_link_by_link<B: Backend + ?Sized>(
    backend: &B,
    input: &B::Matrix,
    links: &[LinearLink<'_, B::Matrix>],
    outputs: &mut [B::Matrix],
) -> Result<()> {
    linear_chain_dims(
        input.shape(),
        links.iter().map(|l| (l.weight.shape(), l.bias.shape())),
        outputs.iter().map(Matrix::shape),
    )?;
    for (l, link) in links.iter().enumerate() {
        let (done, rest) = outputs.split_at_mut(l);
        let x = done.last().unwrap_or(input);
        // One output per link (checked above), so `rest` holds this one's.
        if let Some(out) = rest.first_mut() {
            let spec = Matmul::nt().activation(link.activation);
            backend.matmul_into(spec, x, link.weight, Some(link.bias), out)?;
        }
    }
    Ok(())
}

/// [`Backend::linear_grads_into`] as a product and a column sum.
pub(super) fn grads_op_by_op<B: Backend + ?Sized>(
    backend: &B,
    delta: &B::Matrix,
    input: &B::Matrix,
    weight_grad: &mut B::Matrix,
    bias_grad: &mut B::Matrix,
) -> Result<()> {
    linear_grads_dims(
        delta.shape(),
        input.shape(),
        (weight_grad.shape(), bias_grad.shape()),
    )?;
    backend.matmul_into(Matmul::tn(), delta, input, None, weight_grad)?;
    backend.column_sum_into(delta, bias_grad)
}

/// The layer below, as a linear layer's backward pass is given it: `(activation, output,
/// grad)`.
type Below<'a, M> = Option<(Activation, &'a M, &'a mut M)>;

/// [`Backend::linear_backward_into`] as the gradients' ops, then the product passed down.
pub(super) fn backward_op_by_op<B: Backend + ?Sized>(
    backend: &B,
    delta: &B::Matrix,
    input: &B::Matrix,
    weight: &B::Matrix,
    (weight_grad, bias_grad): (&mut B::Matrix, &mut B::Matrix),
    below: Below<'_, B::Matrix>,
) -> Result<()> {
    linear_backward_dims(
        delta.shape(),
        input.shape(),
        weight.shape(),
        (weight_grad.shape(), bias_grad.shape()),
        below
            .as_ref()
            .map(|(_, output, grad)| (output.shape(), grad.shape())),
    )?;
    backend.linear_grads_into(delta, input, weight_grad, bias_grad)?;
    passed_down(backend, delta, weight, below)
}

/// [`Backend::linear_backward_frozen_weight_into`] as the bias's column sum (where it
/// trains), then the product passed down.
pub(super) fn frozen_weight_backward_op_by_op<B: Backend + ?Sized>(
    backend: &B,
    delta: &B::Matrix,
    input: &B::Matrix,
    weight: &B::Matrix,
    (weight_grad, bias_grad): (&mut B::Matrix, Option<&mut B::Matrix>),
    below: Below<'_, B::Matrix>,
) -> Result<()> {
    // Without a bias gradient, the shape it would have.
    let bias_shape = bias_grad
        .as_ref()
        .map_or((1, delta.shape().1), |b| b.shape());
    linear_backward_dims(
        delta.shape(),
        input.shape(),
        weight.shape(),
        (weight_grad.shape(), bias_shape),
        below
            .as_ref()
            .map(|(_, output, grad)| (output.shape(), grad.shape())),
    )?;
    if let Some(bias_grad) = bias_grad {
        backend.column_sum_into(delta, bias_grad)?;
    }
    passed_down(backend, delta, weight, below)
}

/// A linear layer's gradient passed down, given the layer below as `(activation, output,
/// grad)`: `grad ← (delta · weight) ⊙ act'(output)` (a plain product for identity).
fn passed_down<B: Backend + ?Sized>(
    backend: &B,
    delta: &B::Matrix,
    weight: &B::Matrix,
    below: Below<'_, B::Matrix>,
) -> Result<()> {
    match below {
        None => Ok(()),
        Some((Activation::Identity, _, grad)) => {
            backend.matmul_into(Matmul::nn(), delta, weight, None, grad)
        }
        Some((activation, output, grad)) => backend.matmul_activation_backward_into(
            Matmul::nn(),
            delta,
            weight,
            activation,
            output,
            grad,
        ),
    }
}
