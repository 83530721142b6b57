//! A linear layer's gradients on the GPU: `gpu::linear_grads` (the weight gradient's product
//! with the bias gradient summed in its dispatch, `matmul.wgsl`'s `BIAS_GRAD`) and
//! `gpu::linear_backward`, the host side of `shaders/linear_backward.wgsl` (a small layer's
//! whole backward pass, weight, bias and input gradients, in one dispatch).

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{Entry, bound, check_bindings, check_no_alias, offset_in, record, to_u32};
use super::kernel::{Binding, Kernel};
use super::matmul::{Fused, chosen_tiling, matmul, matmul_activation_backward, matmul_tiled};
use super::reduce::{column_sum, column_sum_block_rows};
use super::tiling::Tiling;
use crate::backend::{Activation, Matmul, Matrix, linear_backward_dims, linear_grads_dims};
use crate::error::{Error, Result};

/// Batches of at most this many rows have their bias gradient summed in the weight
/// gradient's dispatch ([`linear_grads`]): each sum is one invocation's loop over the rows
/// (sixteen loads in flight at a time), which runs beside the product's tiles; longer batches
/// keep the separate, wider [`column_sum`].
const FUSED_BIAS_GRAD_ROWS: usize = 512;

/// A linear layer's parameter gradients from `delta` (δ, batch × outputs) and the layer's
/// `input` (batch × inputs): `weight_grad ← δᵀ · input` and `bias_grad ← Σ_rows δ`. The twin
/// of [`crate::backend::cpu::matmul`] followed by [`crate::backend::cpu::column_sum`], and bit
/// for bit [`matmul`] followed by [`column_sum`]: when both gradients are views of one buffer
/// (a model's gradient arena) and the batch has at most 512 rows, one dispatch computes both
/// (a training step records one kernel fewer per layer). Checks both before writing either.
pub fn linear_grads(
    ctx: &GpuContext,
    delta: &GpuMatrix,
    input: &GpuMatrix,
    weight_grad: &GpuMatrix,
    bias_grad: &GpuMatrix,
) -> Result<()> {
    linear_grads_tiled(ctx, None, delta, input, weight_grad, bias_grad)
}

/// [`linear_grads`] with the weight gradient's tiling given (`None`: chosen from the shape),
/// fused or not as `linear_grads` decides. This exists to test every tiling fused.
pub fn linear_grads_tiled(
    ctx: &GpuContext,
    tiling: Option<Tiling>,
    delta: &GpuMatrix,
    input: &GpuMatrix,
    weight_grad: &GpuMatrix,
    bias_grad: &GpuMatrix,
) -> Result<()> {
    let op = "linear_grads";
    let spec = Matmul::tn();
    linear_grads_dims(
        delta.shape(),
        input.shape(),
        (weight_grad.shape(), bias_grad.shape()),
    )?;
    check_bindings(ctx, op, &[delta, input, weight_grad, bias_grad])?;
    for out in [weight_grad, bias_grad] {
        check_no_alias(op, out, &[delta, input])?;
    }
    check_apart(
        op,
        ("weight gradient", weight_grad),
        ("bias gradient", bias_grad),
    )?;
    // The sums go to the product's binding: both gradients in one.
    let shared = bound(ctx, op, &[weight_grad, bias_grad]).is_ok();
    if !shared || delta.shape().0 > FUSED_BIAS_GRAD_ROWS {
        matmul_tiled(ctx, spec, tiling, delta, input, None, weight_grad)?;
        return column_sum(ctx, delta, bias_grad);
    }
    let fused = Fused {
        derivative: None,
        bias_grad: Some(bias_grad),
    };
    super::matmul::record(
        op,
        ctx,
        spec,
        tiling,
        (delta, input, None),
        fused,
        weight_grad,
    )
}

/// Fails when two of an op's outputs share an element of one buffer.
fn check_apart(
    op: &'static str,
    (x_name, x): (&str, &GpuMatrix),
    (y_name, y): (&str, &GpuMatrix),
) -> Result<()> {
    let span = |v: &GpuMatrix| v.offset()..v.offset() + v.shape().0 * v.shape().1;
    let (xs, ys) = (span(x), span(y));
    if x.buffer().raw() != y.buffer().raw() || xs.end <= ys.start || ys.end <= xs.start {
        return Ok(());
    }
    Err(Error::Shape {
        op,
        detail: format!(
            "the {y_name} (elements {ys:?}) overlaps the {x_name} ({xs:?}) in {:?}",
            x.buffer().label()
        ),
    })
}

const LINEAR_BACKWARD: Kernel = Kernel {
    shader: "linear_backward.wgsl",
    source: concat!(
        include_str!("../../../shaders/activation.wgsl"),
        include_str!("../../../shaders/linear_backward.wgsl")
    ),
    entry: "linear_backward",
    bindings: &[
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadWrite,
    ],
    groups: 1,
    immediate_size: size_of::<Params>() as u32,
};

/// Invocations per workgroup (`WORKGROUP` in the shader).
const WORKGROUP: usize = 64;

/// A layer runs in one kernel when its batch has at most this many rows (the bias gradient is
/// then summed as `linear_grads` sums it in its fused form)…
const MAX_ROWS: usize = 128;
/// …it has at most this many outputs (each element of the gradient below is one invocation's
/// loop over them)…
const MAX_OUTPUTS: usize = 256;
/// …and each of its two products has at most this many multiply-adds: beyond that the tiled
/// matmul, which shares its operands through workgroup memory, is the faster kernel.
const MAX_PRODUCT: usize = 1 << 21;

/// The shader's `Params`, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    inputs: u32,
    outputs: u32,
    delta_offset: u32,
    input_offset: u32,
    weight_offset: u32,
    below_offset: u32,
    weight_grad_offset: u32,
    bias_grad_offset: u32,
    grad_below_offset: u32,
    sum_block_rows: u32,
    _pad: u32,
}

// Every adapter steepest opens offers at least this much immediate data.
const _: () = assert!(size_of::<Params>() as u32 <= super::context::MIN_IMMEDIATE_SIZE);

/// A linear layer's backward pass on the GPU: [`linear_grads`] (`weight_grad ← δᵀ · input`,
/// `bias_grad ← Σ_rows δ`), then, given the layer below as `(activation, output, grad)`,
/// `grad ← (δ · weight) ⊙ act'(output)`. The twin of
/// [`Backend::linear_backward_into`](crate::Backend::linear_backward_into)'s default (the
/// separate ops), and bit for bit the GPU's separate ops: a small layer (at most 128 rows and
/// 256 outputs, products of at most 2²¹ multiply-adds, both gradients in one buffer) runs in
/// one dispatch that sums every element in the order those kernels do; any other runs them.
/// Checks everything before recording anything.
pub fn linear_backward(
    ctx: &GpuContext,
    delta: &GpuMatrix,
    input: &GpuMatrix,
    weight: &GpuMatrix,
    (weight_grad, bias_grad): (&GpuMatrix, &GpuMatrix),
    below: Option<(Activation, &GpuMatrix, &GpuMatrix)>,
) -> Result<()> {
    let op = "linear_backward";
    linear_backward_dims(
        delta.shape(),
        input.shape(),
        weight.shape(),
        (weight_grad.shape(), bias_grad.shape()),
        below.map(|(_, output, grad)| (output.shape(), grad.shape())),
    )?;
    let below_output = below.map(|b| b.1);
    let grad_below = below.map(|b| b.2);
    // δ stands in for the output below where there is none (it is read either way).
    let read = [delta, input, weight, below_output.unwrap_or(delta)];
    check_bindings(ctx, op, &read)?;
    check_bindings(ctx, op, &[weight_grad, bias_grad])?;
    for out in [Some(weight_grad), Some(bias_grad), grad_below]
        .into_iter()
        .flatten()
    {
        check_no_alias(op, out, &read)?;
    }
    check_apart(
        op,
        ("weight gradient", weight_grad),
        ("bias gradient", bias_grad),
    )?;
    if let Some(grad) = grad_below {
        check_bindings(ctx, op, &[grad])?;
        check_apart(
            op,
            ("weight gradient", weight_grad),
            ("gradient below", grad),
        )?;
        check_apart(op, ("bias gradient", bias_grad), ("gradient below", grad))?;
    }
    if !one_kernel(ctx, delta, input, (weight_grad, bias_grad), below) {
        linear_grads(ctx, delta, input, weight_grad, bias_grad)?;
        return passed_down(ctx, delta, weight, below);
    }

    let ((rows, outputs), inputs) = (delta.shape(), input.shape().1);
    let limits = ctx.limits();
    let grid_limit = limits.max_compute_workgroups_per_dimension.max(1) as usize;
    let (db, ib, wb) = (
        bound(ctx, op, &[delta])?,
        bound(ctx, op, &[input])?,
        bound(ctx, op, &[weight])?,
    );
    // Both gradients in one binding (`one_kernel` has checked that one holds them).
    let gb = bound(ctx, op, &[weight_grad, bias_grad])?;
    let below_output_b = below_output.map(|m| bound(ctx, op, &[m])).transpose()?;
    let below_b = below.map(|b| bound(ctx, op, &[b.2])).transpose()?;
    let params = Params {
        rows: to_u32(op, "rows", rows)?,
        inputs: to_u32(op, "inputs", inputs)?,
        outputs: to_u32(op, "outputs", outputs)?,
        delta_offset: db.offset(op, "δ offset", delta)?,
        input_offset: ib.offset(op, "input offset", input)?,
        weight_offset: wb.offset(op, "weight offset", weight)?,
        below_offset: offset_in(op, "offset below", below_output_b.zip(below_output))?,
        weight_grad_offset: gb.offset(op, "weight gradient offset", weight_grad)?,
        bias_grad_offset: gb.offset(op, "bias gradient offset", bias_grad)?,
        grad_below_offset: offset_in(op, "gradient offset below", below_b.zip(below.map(|b| b.2)))?,
        sum_block_rows: to_u32(
            op,
            "rows per block",
            column_sum_block_rows(rows, outputs, grid_limit, ctx.max_partials()),
        )?,
        _pad: 0,
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    // Rows of x and W start on 16-byte boundaries: they load as whole vec4s.
    let vec4 = inputs.is_multiple_of(4)
        && input.offset().is_multiple_of(4)
        && weight.offset().is_multiple_of(4);
    let overrides = [
        ("HAS_BELOW", flag(below.is_some())),
        ("VEC4", flag(vec4)),
        (
            "DERIVATIVE_OF",
            f64::from(below.map_or(0, |b| b.0.shader_code())),
        ),
    ];
    let invocations = invocations(rows, outputs, inputs, below.is_some());
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[
            db.bind,
            ib.bind,
            wb.bind,
            below_output_b.map_or(ctx.placeholder_bind(), |b| b.bind),
            gb.bind,
            below_b.map_or(ctx.placeholder_rw_bind(), |b| b.bind),
        ],
        &[Entry {
            kernel: &LINEAR_BACKWARD,
            overrides: &overrides,
            groups: [
                to_u32(op, "workgroups", invocations.div_ceil(WORKGROUP))?,
                1,
                1,
            ],
        }],
    )
}

/// [`Backend::linear_backward_frozen_weight_into`](crate::Backend::linear_backward_frozen_weight_into)
/// on the GPU, for a linear layer whose weight is frozen: a small layer whose bias trains (one
/// [`linear_backward`] runs as one dispatch) runs that dispatch, its weight gradient written
/// and never read, where two would cost more than the product it leaves out; any other runs
/// the bias's column sum (if it trains) and the product passed down, and computes no weight
/// gradient. Checks everything before recording anything.
pub fn linear_backward_frozen_weight(
    ctx: &GpuContext,
    delta: &GpuMatrix,
    input: &GpuMatrix,
    weight: &GpuMatrix,
    (weight_grad, bias_grad): (&GpuMatrix, Option<&GpuMatrix>),
    below: Option<(Activation, &GpuMatrix, &GpuMatrix)>,
) -> Result<()> {
    let op = "linear_backward_frozen_weight";
    let bias_shape = bias_grad.map_or((1, delta.shape().1), Matrix::shape);
    linear_backward_dims(
        delta.shape(),
        input.shape(),
        weight.shape(),
        (weight_grad.shape(), bias_shape),
        below.map(|(_, output, grad)| (output.shape(), grad.shape())),
    )?;
    if let Some(bias_grad) = bias_grad
        && one_kernel(ctx, delta, input, (weight_grad, bias_grad), below)
    {
        return linear_backward(ctx, delta, input, weight, (weight_grad, bias_grad), below);
    }
    // The column sum is recorded before the product: whatever the product would refuse is
    // refused here first, so that a refusal records nothing.
    let below_output = below.map(|b| b.1);
    let read = [delta, weight, below_output.unwrap_or(delta)];
    check_bindings(ctx, op, &read)?;
    let outputs = [bias_grad, below.map(|b| b.2)];
    for out in outputs.into_iter().flatten() {
        check_bindings(ctx, op, &[out])?;
        check_no_alias(op, out, &read)?;
    }
    if let (Some(bias_grad), Some((_, _, grad))) = (bias_grad, below) {
        check_apart(op, ("bias gradient", bias_grad), ("gradient below", grad))?;
    }
    if let Some(bias_grad) = bias_grad {
        column_sum(ctx, delta, bias_grad)?;
    }
    passed_down(ctx, delta, weight, below)
}

/// The gradient a linear layer passes down, given the layer below as `(activation, output,
/// grad)`: `grad ← (δ · weight) ⊙ act'(output)`, a plain product for identity.
fn passed_down(
    ctx: &GpuContext,
    delta: &GpuMatrix,
    weight: &GpuMatrix,
    below: Option<(Activation, &GpuMatrix, &GpuMatrix)>,
) -> Result<()> {
    match below {
        None => Ok(()),
        Some((Activation::Identity, _, grad)) => {
            matmul(ctx, Matmul::nn(), delta, weight, None, grad)
        }
        Some((activation, output, grad)) => {
            matmul_activation_backward(ctx, Matmul::nn(), delta, weight, activation, output, grad)
        }
    }
}

/// Whether this layer's backward pass runs as one kernel (see [`linear_backward`]): it is
/// small, its two gradients are apart in one buffer and the gradient below in another, and
/// the separate products would not split K (the one kernel sums each element over all of K,
/// as an unsplit product does).
fn one_kernel(
    ctx: &GpuContext,
    delta: &GpuMatrix,
    input: &GpuMatrix,
    (weight_grad, bias_grad): (&GpuMatrix, &GpuMatrix),
    below: Option<(Activation, &GpuMatrix, &GpuMatrix)>,
) -> bool {
    let ((rows, outputs), inputs) = (delta.shape(), input.shape().1);
    let grads = weight_grad.buffer().raw();
    let small = rows <= MAX_ROWS
        && outputs <= MAX_OUTPUTS
        && rows
            .checked_mul(inputs)
            .and_then(|n| n.checked_mul(outputs))
            .is_some_and(|n| n <= MAX_PRODUCT);
    if !small {
        return false;
    }
    // Small: none of these overflows.
    let grid_limit = ctx.limits().max_compute_workgroups_per_dimension as usize;
    invocations(rows, outputs, inputs, below.is_some()).div_ceil(WORKGROUP) <= grid_limit
        && bias_grad.buffer().raw() == grads
        && bound(ctx, "linear_backward", &[weight_grad, bias_grad]).is_ok()
        && below.is_none_or(|b| b.2.buffer().raw() != grads)
        && chosen_tiling(ctx, (outputs, inputs, rows)).splits == 1
        && below.is_none_or(|_| chosen_tiling(ctx, (rows, inputs, outputs)).splits == 1)
}

/// The kernel's invocations: one per four weight gradient elements of a row, one per bias
/// gradient element, one per four elements of a row of the gradient below.
fn invocations(rows: usize, outputs: usize, inputs: usize, below: bool) -> usize {
    let quads = inputs.div_ceil(4);
    outputs * quads + outputs + if below { rows * quads } else { 0 }
}
