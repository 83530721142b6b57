//! Host side of `shaders/elementwise.wgsl`: `gpu::activation_backward`, `gpu::axpy`,
//! `gpu::lerp`, `gpu::scale` and `gpu::add`.

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{
    Entry, bound, check_bindings, check_no_alias, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use crate::backend::{Activation, Matrix, check_lerp_weight, same_shape};
use crate::error::Result;

const ACTIVATION_BACKWARD: Kernel = Kernel {
    shader: "elementwise.wgsl",
    source: concat!(
        include_str!("../../../shaders/activation.wgsl"),
        include_str!("../../../shaders/elementwise.wgsl")
    ),
    entry: "activation_backward",
    bindings: &[Binding::ReadOnly, Binding::ReadOnly, Binding::ReadWrite],
    groups: 1,
    immediate_size: size_of::<Params>() as u32,
};
const AXPY: Kernel = Kernel {
    entry: "axpy",
    ..ACTIVATION_BACKWARD
};
const LERP: Kernel = Kernel {
    entry: "lerp",
    ..ACTIVATION_BACKWARD
};
const ADD: Kernel = Kernel {
    entry: "add",
    ..ACTIVATION_BACKWARD
};
const SCALE: Kernel = Kernel {
    entry: "scale",
    ..ACTIVATION_BACKWARD
};

/// The shader's `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    x_offset: u32,
    y_offset: u32,
    alpha: f32,
    z_offset: u32,
}

/// Records `kernel` over `len` elements of `x`, `z` and `y` from their element offsets.
#[allow(clippy::too_many_arguments)]
fn elementwise(
    ctx: &GpuContext,
    op: &'static str,
    kernel: &Kernel,
    overrides: &[(&'static str, f64)],
    (x, z, y): (&GpuMatrix, &GpuMatrix, &GpuMatrix),
    len: usize,
    alpha: f32,
) -> Result<()> {
    let (xb, zb, yb) = (
        bound(ctx, op, &[x])?,
        bound(ctx, op, &[z])?,
        bound(ctx, op, &[y])?,
    );
    let params = Params {
        len: to_u32(op, "elements", len)?,
        x_offset: xb.offset(op, "x offset", x)?,
        y_offset: yb.offset(op, "y offset", y)?,
        alpha,
        z_offset: zb.offset(op, "z offset", z)?,
    };
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[xb.bind, zb.bind, yb.bind],
        &[Entry {
            kernel,
            overrides,
            groups: [striding_groups(len), 1, 1],
        }],
    )
}

/// `grad ← grad · act'(output)` on the GPU: the twin of
/// [`crate::backend::cpu::activation_backward`].
pub fn activation_backward(
    ctx: &GpuContext,
    activation: Activation,
    output: &GpuMatrix,
    grad: &GpuMatrix,
) -> Result<()> {
    let op = "activation_backward";
    same_shape(op, output.shape(), grad.shape())?;
    check_bindings(ctx, op, &[output, grad])?;
    check_no_alias(op, grad, &[output])?;
    let (rows, cols) = grad.shape();
    elementwise(
        ctx,
        op,
        &ACTIVATION_BACKWARD,
        &[("ACTIVATION", f64::from(activation.shader_code()))],
        (output, output, grad),
        rows * cols,
        0.0,
    )
}

/// `y ← y + alpha · x` on the GPU: the twin of [`crate::backend::cpu::axpy`].
pub fn axpy(ctx: &GpuContext, alpha: f32, x: &GpuMatrix, y: &GpuMatrix) -> Result<()> {
    let op = "axpy";
    same_shape(op, x.shape(), y.shape())?;
    check_bindings(ctx, op, &[x, y])?;
    check_no_alias(op, y, &[x])?;
    let (rows, cols) = y.shape();
    elementwise(ctx, op, &AXPY, &[], (x, x, y), rows * cols, alpha)
}

/// `y ← lerp(y, end, weight)` (PyTorch's `torch.lerp`: `y + weight · (end − y)`, in the form
/// exact at `weight`'s nearer end) on the GPU: the twin of [`crate::backend::cpu::lerp`].
pub fn lerp(ctx: &GpuContext, weight: f32, end: &GpuMatrix, y: &GpuMatrix) -> Result<()> {
    let op = "lerp";
    check_lerp_weight(weight)?;
    same_shape(op, end.shape(), y.shape())?;
    check_bindings(ctx, op, &[end, y])?;
    check_no_alias(op, y, &[end])?;
    let (rows, cols) = y.shape();
    elementwise(ctx, op, &LERP, &[], (end, end, y), rows * cols, weight)
}

/// `y ← alpha · x` on the GPU: the twin of [`crate::backend::cpu::scale`].
pub fn scale(ctx: &GpuContext, alpha: f32, x: &GpuMatrix, y: &GpuMatrix) -> Result<()> {
    let op = "scale";
    same_shape(op, x.shape(), y.shape())?;
    check_bindings(ctx, op, &[x, y])?;
    check_no_alias(op, y, &[x])?;
    let (rows, cols) = y.shape();
    elementwise(ctx, op, &SCALE, &[], (x, x, y), rows * cols, alpha)
}

/// `out ← a + b` on the GPU: the twin of [`crate::backend::cpu::add`].
pub fn add(ctx: &GpuContext, a: &GpuMatrix, b: &GpuMatrix, out: &GpuMatrix) -> Result<()> {
    let op = "add";
    same_shape(op, a.shape(), out.shape())?;
    same_shape(op, b.shape(), out.shape())?;
    check_bindings(ctx, op, &[a, b, out])?;
    check_no_alias(op, out, &[a, b])?;
    let (rows, cols) = out.shape();
    elementwise(ctx, op, &ADD, &[], (a, b, out), rows * cols, 0.0)
}
