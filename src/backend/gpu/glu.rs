//! Host side of `shaders/glu.wgsl`: `gpu::glu` and `gpu::glu_backward`, twins of the CPU
//! functions of the same names.

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{
    Entry, bound, check_bindings, check_no_alias, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use crate::backend::{Matrix, glu_dims, same_shape};
use crate::error::Result;

const FORWARD: Kernel = Kernel {
    shader: "glu.wgsl",
    source: include_str!("../../../shaders/glu.wgsl"),
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
    rows: u32,
    half: u32,
    x_offset: u32,
    grad_offset: u32,
    out_offset: u32,
}

/// Records `kernel` over the rows × `half` outputs of `x` (rows × 2·half).
fn run(
    ctx: &GpuContext,
    op: &'static str,
    kernel: &Kernel,
    half: usize,
    (x, grad_out, out): (&GpuMatrix, &GpuMatrix, &GpuMatrix),
) -> Result<()> {
    let rows = x.shape().0;
    // Every index the kernel forms stays below the input's elements.
    to_u32(op, "elements", rows * x.shape().1)?;
    let (xb, gb, ob) = (
        bound(ctx, op, &[x])?,
        bound(ctx, op, &[grad_out])?,
        bound(ctx, op, &[out])?,
    );
    let params = Params {
        rows: to_u32(op, "rows", rows)?,
        half: to_u32(op, "half width", half)?,
        x_offset: xb.offset(op, "x offset", x)?,
        grad_offset: gb.offset(op, "gradient offset", grad_out)?,
        out_offset: ob.offset(op, "output offset", out)?,
    };
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[xb.bind, gb.bind, ob.bind],
        &[Entry {
            kernel,
            overrides: &[],
            groups: [striding_groups(rows * half), 1, 1],
        }],
    )
}

/// `out ← a ⊙ σ(b)` over each row's halves on the GPU: the twin of
/// [`crate::backend::cpu::glu`].
pub fn glu(ctx: &GpuContext, x: &GpuMatrix, out: &GpuMatrix) -> Result<()> {
    let op = "glu";
    let half = glu_dims(op, x.shape(), out.shape())?;
    check_bindings(ctx, op, &[x, out])?;
    check_no_alias(op, out, &[x])?;
    run(ctx, op, &FORWARD, half, (x, x, out))
}

/// `grad_in ← ∂loss/∂x` from `grad_out` on the GPU: the twin of
/// [`crate::backend::cpu::glu_backward`].
pub fn glu_backward(
    ctx: &GpuContext,
    x: &GpuMatrix,
    grad_out: &GpuMatrix,
    grad_in: &GpuMatrix,
) -> Result<()> {
    let op = "glu_backward";
    let half = glu_dims(op, x.shape(), grad_out.shape())?;
    same_shape(op, x.shape(), grad_in.shape())?;
    check_bindings(ctx, op, &[x, grad_out, grad_in])?;
    check_no_alias(op, grad_in, &[x, grad_out])?;
    run(ctx, op, &BACKWARD, half, (x, grad_out, grad_in))
}
