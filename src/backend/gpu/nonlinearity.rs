//! Host side of `shaders/nonlinearity.wgsl`: `gpu::nonlinearity` and
//! `gpu::nonlinearity_backward`, twins of the CPU functions of the same names.

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{
    Entry, bound, check_bindings, check_no_alias, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use crate::backend::{Matrix, Nonlinearity, same_shape};
use crate::error::Result;

const FORWARD: Kernel = Kernel {
    shader: "nonlinearity.wgsl",
    source: include_str!("../../../shaders/nonlinearity.wgsl"),
    entry: "forward",
    bindings: &[Binding::ReadOnly, Binding::ReadOnly, Binding::ReadWrite],
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
    len: u32,
    x_offset: u32,
    out_offset: u32,
    grad_offset: u32,
    /// The function's parameters (`Nonlinearity::shader_code`).
    parameters: [f32; 2],
}

/// Records `kernel` of `function` over every element of `out`.
fn run(
    ctx: &GpuContext,
    op: &'static str,
    kernel: &Kernel,
    function: Nonlinearity,
    (x, grad_out, out): (&GpuMatrix, &GpuMatrix, &GpuMatrix),
) -> Result<()> {
    let (rows, cols) = out.shape();
    let len = rows * cols;
    let (code, parameters) = function.shader_code();
    let (xb, gb, ob) = (
        bound(ctx, op, &[x])?,
        bound(ctx, op, &[grad_out])?,
        bound(ctx, op, &[out])?,
    );
    let params = Params {
        len: to_u32(op, "elements", len)?,
        x_offset: xb.offset(op, "x offset", x)?,
        out_offset: ob.offset(op, "output offset", out)?,
        grad_offset: gb.offset(op, "gradient offset", grad_out)?,
        parameters,
    };
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[xb.bind, gb.bind, ob.bind],
        &[Entry {
            kernel,
            overrides: &[("FUNCTION", f64::from(code))],
            groups: [striding_groups(len), 1, 1],
        }],
    )
}

/// `out ← f(x)` on the GPU: the twin of [`crate::backend::cpu::nonlinearity`].
pub fn nonlinearity(
    ctx: &GpuContext,
    function: Nonlinearity,
    x: &GpuMatrix,
    out: &GpuMatrix,
) -> Result<()> {
    let op = "nonlinearity";
    same_shape(op, x.shape(), out.shape())?;
    check_bindings(ctx, op, &[x, out])?;
    check_no_alias(op, out, &[x])?;
    run(ctx, op, &FORWARD, function, (x, x, out))
}

/// `grad_in ← grad_out · f'(x)` on the GPU: the twin of
/// [`crate::backend::cpu::nonlinearity_backward`].
pub fn nonlinearity_backward(
    ctx: &GpuContext,
    function: Nonlinearity,
    x: &GpuMatrix,
    grad_out: &GpuMatrix,
    grad_in: &GpuMatrix,
) -> Result<()> {
    let op = "nonlinearity_backward";
    same_shape(op, x.shape(), grad_out.shape())?;
    same_shape(op, x.shape(), grad_in.shape())?;
    check_bindings(ctx, op, &[x, grad_out, grad_in])?;
    check_no_alias(op, grad_in, &[x, grad_out])?;
    run(ctx, op, &BACKWARD, function, (x, grad_out, grad_in))
}
