//! Host side of `shaders/batch_norm.wgsl`: `gpu::batch_norm_stats`, `gpu::batch_norm` and
//! `gpu::batch_norm_backward`, twins of the CPU functions of the same names.

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{
    Entry, bound, check_bindings, check_no_alias, record, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use crate::backend::{Matrix, batch_norm_dims, batch_rows, same_shape};
use crate::error::Result;

const STATS: Kernel = Kernel {
    shader: "batch_norm.wgsl",
    source: include_str!("../../../shaders/batch_norm.wgsl"),
    entry: "stats",
    bindings: &[
        Binding::ReadOnly,
        Binding::ReadOnly,
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
const NORMALIZE: Kernel = Kernel {
    entry: "normalize",
    ..STATS
};
const BACKWARD_SUMS: Kernel = Kernel {
    entry: "backward_sums",
    ..STATS
};
const BACKWARD_INPUT: Kernel = Kernel {
    entry: "backward_input",
    ..STATS
};

/// The shader's `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    x_offset: u32,
    mean_offset: u32,
    var_offset: u32,
    third_offset: u32,
    fourth_offset: u32,
    out_offset: u32,
    out2_offset: u32,
    out3_offset: u32,
    eps: f32,
}

/// Records `kernel` (with its `SUM` code) over `x`'s columns, one invocation per column:
/// `reads` are bindings 0–4, `writes` 5–7 (a write not given binds the context's placeholder).
fn run(
    ctx: &GpuContext,
    op: &'static str,
    (kernel, sum): (&Kernel, u32),
    reads: [&GpuMatrix; 5],
    writes: &[&GpuMatrix],
    eps: f32,
) -> Result<()> {
    let all: Vec<&GpuMatrix> = reads.iter().chain(writes).copied().collect();
    check_bindings(ctx, op, &all)?;
    // Each output against every input and the outputs before it (so every pair once).
    for (i, w) in writes.iter().enumerate() {
        check_no_alias(op, w, &reads)?;
        check_no_alias(op, w, &writes[..i])?;
    }
    let (rows, cols) = reads[0].shape();
    let reads_bound = reads.map(|m| bound(ctx, op, &[m]));
    let [xb, mb, vb, tb, fb] = reads_bound;
    let [xb, mb, vb, tb, fb] = [xb?, mb?, vb?, tb?, fb?];
    let mut binds = vec![xb.bind, mb.bind, vb.bind, tb.bind, fb.bind];
    let mut offsets = [0u32; 3];
    for (i, w) in writes.iter().enumerate() {
        let wb = bound(ctx, op, &[w])?;
        offsets[i] = wb.offset(op, "output offset", w)?;
        binds.push(wb.bind);
    }
    while binds.len() < 8 {
        binds.push(ctx.placeholder_rw_bind());
    }
    let params = Params {
        rows: to_u32(op, "rows", rows)?,
        cols: to_u32(op, "cols", cols)?,
        x_offset: xb.offset(op, "x offset", reads[0])?,
        mean_offset: mb.offset(op, "mean offset", reads[1])?,
        var_offset: vb.offset(op, "variance offset", reads[2])?,
        third_offset: tb.offset(op, "offset", reads[3])?,
        fourth_offset: fb.offset(op, "offset", reads[4])?,
        out_offset: offsets[0],
        out2_offset: offsets[1],
        out3_offset: offsets[2],
        eps,
    };
    to_u32(op, "elements", rows * cols)?;
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &binds,
        &[Entry {
            kernel,
            overrides: &[("SUM", f64::from(sum))],
            // One invocation per column: `striding_groups` counts 256-wide groups, the
            // kernel's are 64 wide.
            groups: [striding_groups(cols.saturating_mul(4)), 1, 1],
        }],
    )
}

/// Each column's mean, biased and unbiased variance: the twin of
/// [`crate::backend::cpu::batch_norm_stats`].
pub fn batch_norm_stats(
    ctx: &GpuContext,
    x: &GpuMatrix,
    mean: &GpuMatrix,
    var: &GpuMatrix,
    unbiased: &GpuMatrix,
) -> Result<()> {
    let op = "batch_norm_stats";
    batch_norm_dims(
        op,
        x.shape(),
        &[mean.shape(), var.shape(), unbiased.shape()],
        1.0,
    )?;
    batch_rows(op, x.shape().0)?;
    run(
        ctx,
        op,
        (&STATS, 0),
        [x, x, x, x, x],
        &[mean, var, unbiased],
        1.0,
    )
}

/// `out ← (x − mean) / √(var + eps) · γ + β` per column: the twin of
/// [`crate::backend::cpu::batch_norm`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    ctx: &GpuContext,
    x: &GpuMatrix,
    (mean, var): (&GpuMatrix, &GpuMatrix),
    gamma: &GpuMatrix,
    beta: &GpuMatrix,
    eps: f32,
    out: &GpuMatrix,
) -> Result<()> {
    let op = "batch_norm";
    let vectors = [mean.shape(), var.shape(), gamma.shape(), beta.shape()];
    batch_norm_dims(op, x.shape(), &vectors, eps)?;
    same_shape(op, x.shape(), out.shape())?;
    run(
        ctx,
        op,
        (&NORMALIZE, 0),
        [x, mean, var, gamma, beta],
        &[out],
        eps,
    )
}

/// `dgamma ← Σ dy · x̂`, `dbeta ← Σ dy` and, when asked, `dx`: the twin of
/// [`crate::backend::cpu::batch_norm_backward`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    ctx: &GpuContext,
    x: &GpuMatrix,
    (mean, var): (&GpuMatrix, &GpuMatrix),
    gamma: &GpuMatrix,
    eps: f32,
    dy: &GpuMatrix,
    (dgamma, dbeta): (&GpuMatrix, &GpuMatrix),
    dx: Option<&GpuMatrix>,
) -> Result<()> {
    let op = "batch_norm_backward";
    let vectors = [
        mean.shape(),
        var.shape(),
        gamma.shape(),
        dgamma.shape(),
        dbeta.shape(),
    ];
    batch_norm_dims(op, x.shape(), &vectors, eps)?;
    same_shape(op, x.shape(), dy.shape())?;
    if let Some(dx) = dx {
        same_shape(op, x.shape(), dx.shape())?;
    }
    // Three dispatches, each writing one of the outputs (∂γ and ∂β may be views of one
    // gradient arena): each checks its own output against what it reads.
    run(
        ctx,
        op,
        (&BACKWARD_SUMS, 0),
        [x, mean, var, dy, dy],
        &[dbeta],
        eps,
    )?;
    run(
        ctx,
        op,
        (&BACKWARD_SUMS, 1),
        [x, mean, var, dy, dy],
        &[dgamma],
        eps,
    )?;
    match dx {
        Some(dx) => run(
            ctx,
            op,
            (&BACKWARD_INPUT, 0),
            [x, mean, var, gamma, dy],
            &[dx],
            eps,
        ),
        None => Ok(()),
    }
}
