//! Host side of `shaders/matmul.wgsl`: checks, specialisation and dispatch.

use wgpu::util::DeviceExt;

use super::GpuMatrix;
use super::context::{Binding, GpuContext, Kernel};
use super::dispatch::to_u32;
use crate::backend::{Matmul, Matrix, matmul_dims};
use crate::error::{Error, Result};

const KERNEL: Kernel = Kernel {
    shader: "matmul.wgsl",
    source: include_str!("../../../shaders/matmul.wgsl"),
    entry: "matmul",
    bindings: &[
        Binding::Uniform,
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadWrite,
    ],
};

/// Output rows and columns per workgroup (`TILE` in the shader).
const TILE: usize = 128;

/// The shader's `Params`, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_offset: u32,
    b_offset: u32,
    bias_offset: u32,
    c_offset: u32,
    /// The first tile row and column of this dispatch (a grid over the device's per-dimension
    /// workgroup limit is dispatched in pieces).
    row_tile_base: u32,
    col_tile_base: u32,
    _pad: [u32; 3],
}

/// `out ← act(op(a) · op(b) + bias)` on the GPU: the twin of [`crate::backend::cpu::matmul`].
///
/// Records one dispatch into the context's pending work (see [`GpuContext::flush`]).
pub fn matmul(
    ctx: &GpuContext,
    spec: Matmul,
    a: &GpuMatrix,
    b: &GpuMatrix,
    bias: Option<&GpuMatrix>,
    out: &GpuMatrix,
) -> Result<()> {
    record(ctx, spec, a, b, bias, out)
}

fn record(
    ctx: &GpuContext,
    spec: Matmul,
    a: &GpuMatrix,
    b: &GpuMatrix,
    bias: Option<&GpuMatrix>,
    out: &GpuMatrix,
) -> Result<()> {
    let op = "matmul";
    let dims = matmul_dims(
        spec,
        a.shape(),
        b.shape(),
        bias.map(Matrix::shape),
        out.shape(),
    )?;
    for input in [Some(a), Some(b), bias].into_iter().flatten() {
        if input.buffer().raw() == out.buffer().raw() {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "output buffer {:?} is also an input; write to a separate buffer",
                    out.buffer().label()
                ),
            });
        }
    }
    for matrix in [Some(a), Some(b), bias, Some(out)].into_iter().flatten() {
        matrix.buffer().check_binding(ctx, op)?;
    }
    let limit = ctx.limits().max_compute_workgroups_per_dimension.max(1) as usize;
    let groups_x = dims.n.div_ceil(TILE);
    let groups_y = dims.m.div_ceil(TILE);
    // (first tile, tiles) along each dimension, each piece within the device's limit.
    let pieces = |groups: usize| {
        (0..groups)
            .step_by(limit)
            .map(move |base| (base, limit.min(groups - base)))
    };

    let base = Params {
        m: to_u32(op, "M", dims.m)?,
        n: to_u32(op, "N", dims.n)?,
        k: to_u32(op, "K", dims.k)?,
        a_offset: to_u32(op, "a offset", a.offset())?,
        b_offset: to_u32(op, "b offset", b.offset())?,
        bias_offset: to_u32(op, "bias offset", bias.map_or(0, GpuMatrix::offset))?,
        c_offset: to_u32(op, "output offset", out.offset())?,
        row_tile_base: 0,
        col_tile_base: 0,
        _pad: [0; 3],
    };
    // A whole vec4 load needs the stored rows to start on 16-byte boundaries.
    let vec4_ok = |m: &GpuMatrix| m.shape().1.is_multiple_of(4) && m.offset().is_multiple_of(4);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let overrides = [
        ("TRANS_A", flag(spec.trans_a)),
        ("TRANS_B", flag(spec.trans_b)),
        ("HAS_BIAS", flag(bias.is_some())),
        ("ACTIVATION", f64::from(spec.activation.shader_code())),
        ("A_VEC4", flag(vec4_ok(a))),
        ("B_VEC4", flag(vec4_ok(b))),
    ];
    let pipeline = ctx.pipeline(&KERNEL, &overrides)?;

    ctx.record(op, |encoder| {
        let bias = bias.map_or(&ctx.placeholder, |m| m.buffer().raw());
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(op),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        for (row_base, rows) in pieces(groups_y) {
            for (col_base, cols) in pieces(groups_x) {
                let params = Params {
                    row_tile_base: row_base as u32,
                    col_tile_base: col_base as u32,
                    ..base
                };
                let params = ctx
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("matmul params"),
                        contents: bytemuck::bytes_of(&params),
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                let group = ctx.bind_group(
                    &KERNEL,
                    [
                        &params,
                        a.buffer().raw(),
                        b.buffer().raw(),
                        bias,
                        out.buffer().raw(),
                    ]
                    .map(wgpu::Buffer::as_entire_binding)
                    .into(),
                );
                pass.set_bind_group(0, &group, &[]);
                pass.dispatch_workgroups(cols as u32, rows as u32, 1);
            }
        }
    })
}
