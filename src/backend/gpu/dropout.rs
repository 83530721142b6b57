//! Host side of `shaders/dropout.wgsl`: `gpu::dropout` and `gpu::dropout_backward`, twins of
//! the CPU functions of the same names.

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{
    Entry, bound, check_bindings, check_no_alias, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use crate::backend::{DropoutDraw, Matrix, same_shape};
use crate::error::Result;

const FORWARD: Kernel = Kernel {
    shader: "dropout.wgsl",
    source: include_str!("../../../shaders/dropout.wgsl"),
    entry: "forward",
    bindings: &[Binding::ReadOnly, Binding::ReadWrite, Binding::ReadWrite],
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
    in_offset: u32,
    mask_offset: u32,
    out_offset: u32,
    key0: u32,
    key1: u32,
    threshold: u32,
    scale: f32,
}

fn run(
    ctx: &GpuContext,
    op: &'static str,
    kernel: &Kernel,
    (input, mask, out): (&GpuMatrix, &GpuMatrix, &GpuMatrix),
    draw: DropoutDraw,
) -> Result<()> {
    same_shape(op, input.shape(), mask.shape())?;
    same_shape(op, input.shape(), out.shape())?;
    check_bindings(ctx, op, &[input, mask, out])?;
    check_no_alias(op, out, &[input, mask])?;
    check_no_alias(op, mask, &[input])?;
    let (rows, cols) = out.shape();
    let len = rows * cols;
    let (key0, key1, threshold, scale) = draw.kernel_params();
    let (ib, mb, ob) = (
        bound(ctx, op, &[input])?,
        bound(ctx, op, &[mask])?,
        bound(ctx, op, &[out])?,
    );
    let params = Params {
        len: to_u32(op, "elements", len)?,
        in_offset: ib.offset(op, "input offset", input)?,
        mask_offset: mb.offset(op, "mask offset", mask)?,
        out_offset: ob.offset(op, "output offset", out)?,
        key0,
        key1,
        threshold,
        scale,
    };
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[ib.bind, mb.bind, ob.bind],
        &[Entry {
            kernel,
            overrides: &[],
            groups: [striding_groups(len), 1, 1],
        }],
    )
}

/// `mask ← draw`, `out ← x ⊙ mask`: the twin of [`crate::backend::cpu::dropout`].
pub fn dropout(
    ctx: &GpuContext,
    draw: DropoutDraw,
    x: &GpuMatrix,
    mask: &GpuMatrix,
    out: &GpuMatrix,
) -> Result<()> {
    draw.validate("dropout")?;
    run(ctx, "dropout", &FORWARD, (x, mask, out), draw)
}

/// `grad_in ← grad_out ⊙ mask`: the twin of [`crate::backend::cpu::dropout_backward`].
pub fn dropout_backward(
    ctx: &GpuContext,
    grad_out: &GpuMatrix,
    mask: &GpuMatrix,
    grad_in: &GpuMatrix,
) -> Result<()> {
    let draw = DropoutDraw { p: 0.0, key: 0 };
    run(
        ctx,
        "dropout_backward",
        &BACKWARD,
        (grad_out, mask, grad_in),
        draw,
    )
}
