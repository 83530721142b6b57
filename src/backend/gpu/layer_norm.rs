//! Host side of `shaders/layer_norm.wgsl`: `gpu::layer_norm`, `gpu::layer_norm_backward`,
//! `gpu::rms_norm` and `gpu::rms_norm_backward` (the kernels with `CENTERED` off), twins of the
//! CPU functions of the same names.

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{
    Entry, bound, check_bindings, check_no_alias, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use crate::backend::{Matrix, layer_norm_dims};
use crate::error::Result;

const FORWARD: Kernel = Kernel {
    shader: "layer_norm.wgsl",
    source: include_str!("../../../shaders/layer_norm.wgsl"),
    entry: "forward",
    bindings: &[
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadWrite,
    ],
    groups: 1,
    immediate_size: size_of::<Params>() as u32,
};
const BACKWARD: Kernel = Kernel {
    entry: "backward",
    ..FORWARD
};

/// The shader's `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    x_offset: u32,
    gamma_offset: u32,
    third_offset: u32,
    stats_offset: u32,
    out_offset: u32,
    prod_offset: u32,
    eps: f32,
}

/// Layer normalisation, or root-mean-square normalisation (the shader's `CENTERED`).
#[derive(Clone, Copy)]
enum Norm {
    Layer,
    Rms,
}

/// Records `kernel` with its six bindings, one workgroup per row.
fn run(
    ctx: &GpuContext,
    (op, kernel, norm): (&'static str, &Kernel, Norm),
    [x, gamma, third, stats, out, prod]: [&GpuMatrix; 6],
    eps: f32,
) -> Result<()> {
    check_bindings(ctx, op, &[x, gamma, third, stats, out, prod])?;
    check_no_alias(op, out, &[x, gamma, third, stats, prod])?;
    check_no_alias(op, stats, &[x, gamma, third, prod])?;
    check_no_alias(op, prod, &[x, gamma, third])?;
    let (rows, cols) = x.shape();
    let [xb, gb, tb, sb, ob, pb] =
        [x, gamma, third, stats, out, prod].map(|m| bound(ctx, op, &[m]));
    let [xb, gb, tb, sb, ob, pb] = [xb?, gb?, tb?, sb?, ob?, pb?];
    let params = Params {
        rows: to_u32(op, "rows", rows)?,
        cols: to_u32(op, "cols", cols)?,
        x_offset: xb.offset(op, "x offset", x)?,
        gamma_offset: gb.offset(op, "gamma offset", gamma)?,
        third_offset: tb.offset(op, "offset", third)?,
        stats_offset: sb.offset(op, "stats offset", stats)?,
        out_offset: ob.offset(op, "output offset", out)?,
        prod_offset: pb.offset(op, "product offset", prod)?,
        eps,
    };
    to_u32(op, "elements", rows * cols)?;
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[xb.bind, gb.bind, tb.bind, sb.bind, ob.bind, pb.bind],
        &[Entry {
            kernel,
            overrides: match norm {
                Norm::Layer => &[],
                Norm::Rms => &[("CENTERED", 0.0)],
            },
            // One workgroup per row: `striding_groups` counts 256-wide groups, so ask for rows
            // × 256 items to get one group per row (up to its cap, then rows stride).
            groups: [striding_groups(rows.saturating_mul(256)), 1, 1],
        }],
    )
}

/// `out ← (x − mean) / σ · γ + β` per row, with (mean, 1/σ) per row into `stats` (rows × 2):
/// the twin of [`crate::backend::cpu::layer_norm`]. `spare` is bound but not written (the
/// backward kernel's product buffer; the two share a layout).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    ctx: &GpuContext,
    x: &GpuMatrix,
    gamma: &GpuMatrix,
    beta: &GpuMatrix,
    eps: f32,
    stats: &GpuMatrix,
    out: &GpuMatrix,
    spare: &GpuMatrix,
) -> Result<()> {
    let op = "layer_norm";
    layer_norm_dims(op, x.shape(), gamma.shape(), stats.shape(), eps)?;
    layer_norm_dims(op, out.shape(), beta.shape(), stats.shape(), eps)?;
    run(
        ctx,
        (op, &FORWARD, Norm::Layer),
        [x, gamma, beta, stats, out, spare],
        eps,
    )
}

/// `grad_in ← ∂loss/∂x` from `grad_out` and the forward pass's `stats`, and `prod ← g ⊙ x̂`
/// (whose column sums are ∂loss/∂γ): the twin of [`crate::backend::cpu::layer_norm_backward`].
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    ctx: &GpuContext,
    x: &GpuMatrix,
    gamma: &GpuMatrix,
    grad_out: &GpuMatrix,
    stats: &GpuMatrix,
    grad_in: &GpuMatrix,
    prod: &GpuMatrix,
) -> Result<()> {
    backward(ctx, Norm::Layer, [x, gamma, grad_out, stats, grad_in, prod])
}

/// `out ← x / σ · γ` per row, σ = √(Σx²/n + eps), with (0, 1/σ) per row into `stats` (rows ×
/// 2, the layer norm's layout): the twin of [`crate::backend::cpu::rms_norm`]. `spare` is
/// bound but not written, as the layer norm's.
pub fn rms_norm(
    ctx: &GpuContext,
    x: &GpuMatrix,
    gamma: &GpuMatrix,
    eps: f32,
    stats: &GpuMatrix,
    out: &GpuMatrix,
    spare: &GpuMatrix,
) -> Result<()> {
    let op = "rms_norm";
    layer_norm_dims(op, x.shape(), gamma.shape(), stats.shape(), eps)?;
    crate::backend::same_shape(op, x.shape(), out.shape())?;
    // γ stands in for β, which the kernel does not read without CENTERED.
    run(
        ctx,
        (op, &FORWARD, Norm::Rms),
        [x, gamma, gamma, stats, out, spare],
        eps,
    )
}

/// `grad_in ← ∂loss/∂x` from `grad_out` and the forward pass's `stats`, and `prod ← g ⊙ x̂`
/// (whose column sums are ∂loss/∂γ): the twin of [`crate::backend::cpu::rms_norm_backward`].
pub fn rms_norm_backward(
    ctx: &GpuContext,
    x: &GpuMatrix,
    gamma: &GpuMatrix,
    grad_out: &GpuMatrix,
    stats: &GpuMatrix,
    grad_in: &GpuMatrix,
    prod: &GpuMatrix,
) -> Result<()> {
    backward(ctx, Norm::Rms, [x, gamma, grad_out, stats, grad_in, prod])
}

/// Either backward pass, after checking its shapes: the forward's, and `grad_out`, `grad_in`
/// and `prod` as `x`.
fn backward(ctx: &GpuContext, norm: Norm, matrices: [&GpuMatrix; 6]) -> Result<()> {
    let op = match norm {
        Norm::Layer => "layer_norm_backward",
        Norm::Rms => "rms_norm_backward",
    };
    let [x, gamma, grad_out, stats, grad_in, prod] = matrices;
    layer_norm_dims(op, x.shape(), gamma.shape(), stats.shape(), 1.0)?;
    for m in [grad_out, grad_in, prod] {
        crate::backend::same_shape(op, x.shape(), m.shape())?;
    }
    run(ctx, (op, &BACKWARD, norm), matrices, 0.0)
}
