//! The wgpu backend: every op is a WGSL compute kernel from `shaders/`, twin of a CPU op.

mod arena;
mod batch_norm;
mod buffer;
mod context;
mod counters;
mod dispatch;
mod dropout;
mod elementwise;
mod fingerprint;
mod gather;
mod in_flight;
mod kernel;
mod layer_norm;
mod linear_backward;
mod linear_chain;
mod loss;
mod matmul;
mod matrix;
mod memory;
mod nonlinearity;
mod optim;
mod optim_layout;
mod optim_state;
mod options;
mod pending;
mod profile;
mod reduce;
mod scopes;
mod sites;
mod tiling;
mod transpose;

pub use arena::GpuArena;
pub use batch_norm::{batch_norm, batch_norm_backward, batch_norm_stats};
pub use buffer::GpuBuffer;
pub use context::GpuContext;
pub use counters::GpuCounters;
pub use dropout::{dropout, dropout_backward};
pub use elementwise::{activation_backward, add, axpy, lerp, scale};
pub use gather::{GpuIndices, gather_batch, gather_rows};
pub use kernel::{Binding as KernelBinding, BuiltKernel};
pub use layer_norm::{layer_norm, layer_norm_backward};
pub use linear_backward::{
    linear_backward, linear_backward_frozen_weight, linear_grads, linear_grads_tiled,
};
pub use linear_chain::linear_chain;
pub use matmul::{matmul, matmul_activation_backward, matmul_tiled};
pub use matrix::GpuMatrix;
pub use nonlinearity::{nonlinearity, nonlinearity_backward};
pub use optim::GpuOptimizer;
pub use options::{DEFAULT_MAX_DISPATCHES_IN_FLIGHT, GpuOptions, MIN_STORAGE_BINDING};
pub use profile::KernelTime;
use reduce::Reduction;
pub use reduce::column_sum;
pub use tiling::{Tile, Tiling};
pub use transpose::transpose;

use std::sync::Arc;

use ndarray::{Array2, ArrayView2};

use super::{
    Activation, Backend, DropoutDraw, LinearLink, Matmul, Matrix, Nonlinearity, arena_len,
};
use crate::backend::{Loss, LossShare};
use crate::error::{Error, Result};
use crate::optim::{ArenaGroup, Clip, LrSchedule, OptimizerConfig};

/// Runs every op on a GPU through wgpu.
///
/// Ops are recorded into the context's pending work and submitted together by
/// [`Backend::flush`], or before any readback, host write or wait: a training step records its
/// whole forward and backward pass and its update, then submits once.
#[derive(Clone, Debug)]
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
}

impl GpuBackend {
    /// A backend on the adapter chosen by wgpu's environment variables
    /// (see [`GpuOptions::from_env`]).
    pub fn new() -> Result<Self> {
        Ok(Self::with_context(GpuContext::new()?))
    }

    /// A backend on an existing context (several backends may share one device).
    pub fn with_context(ctx: Arc<GpuContext>) -> Self {
        Self { ctx }
    }

    /// The context: adapter, device, limits, caches.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }
}

impl Backend for GpuBackend {
    type Matrix = GpuMatrix;
    type Indices = GpuIndices;
    type Arena = GpuArena;
    type Optimizer = GpuOptimizer;

    fn describe(&self) -> String {
        format!(
            "gpu ({}, {:?})",
            self.ctx.adapter_name(),
            self.ctx.backend()
        )
    }

    fn flush(&self) -> Result<()> {
        self.ctx.flush()
    }

    fn upload(&self, host: ArrayView2<'_, f32>) -> Result<GpuMatrix> {
        let (rows, cols) = host.dim();
        let buffer = GpuBuffer::from_array(&self.ctx, "matrix", host)?;
        GpuMatrix::view(buffer, 0, rows, cols)
    }

    fn max_matrix_elements(&self) -> usize {
        let limits = self.ctx.limits();
        let bytes = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        // Whole 16-byte blocks (buffers are allocated in them), and elements the kernels'
        // 32-bit indices reach.
        let elements = (bytes / 16 * 4).min(u64::from(u32::MAX) / 4 * 4);
        usize::try_from(elements).unwrap_or(usize::MAX)
    }

    fn download(&self, matrix: &GpuMatrix) -> Result<Array2<f32>> {
        let (rows, cols) = matrix.shape();
        let buffer = matrix.buffer();
        let values = buffer.read_range(&self.ctx, matrix.offset(), rows * cols)?;
        Array2::from_shape_vec((rows, cols), values).map_err(|e| Error::Readback {
            label: buffer.label().to_string(),
            message: e.to_string(),
        })
    }

    fn zeros(&self, rows: usize, cols: usize) -> Result<GpuMatrix> {
        let len = rows.saturating_mul(cols);
        let buffer = GpuBuffer::zeros(&self.ctx, "matrix", len)?;
        GpuMatrix::view(buffer, 0, rows, cols)
    }

    fn write(&self, matrix: &mut GpuMatrix, host: ArrayView2<'_, f32>) -> Result<()> {
        crate::backend::same_shape("write", matrix.shape(), host.dim())?;
        match host.as_slice() {
            Some(values) => matrix.buffer().write(&self.ctx, matrix.offset(), values),
            None => {
                let values: Vec<f32> = host.iter().copied().collect();
                matrix.buffer().write(&self.ctx, matrix.offset(), &values)
            }
        }
    }

    fn fill(&self, matrix: &mut GpuMatrix, value: f32) -> Result<()> {
        let (rows, cols) = matrix.shape();
        matrix
            .buffer()
            .write(&self.ctx, matrix.offset(), &vec![value; rows * cols])
    }

    fn upload_indices(&self, indices: &[u32]) -> Result<GpuIndices> {
        GpuIndices::new(&self.ctx, indices)
    }

    fn write_indices(&self, indices: &mut GpuIndices, values: &[u32]) -> Result<()> {
        indices.write(&self.ctx, values)
    }

    fn matmul_into(
        &self,
        spec: Matmul,
        a: &GpuMatrix,
        b: &GpuMatrix,
        bias: Option<&GpuMatrix>,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        matmul(&self.ctx, spec, a, b, bias, out)
    }

    fn matmul_activation_backward_into(
        &self,
        spec: Matmul,
        a: &GpuMatrix,
        b: &GpuMatrix,
        activation: Activation,
        output: &GpuMatrix,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        matmul_activation_backward(&self.ctx, spec, a, b, activation, output, out)
    }

    fn linear_chain_into(
        &self,
        input: &GpuMatrix,
        links: &[LinearLink<'_, GpuMatrix>],
        outputs: &mut [GpuMatrix],
    ) -> Result<()> {
        linear_chain(&self.ctx, input, links, outputs)
    }

    fn linear_backward_into(
        &self,
        delta: &GpuMatrix,
        input: &GpuMatrix,
        weight: &GpuMatrix,
        (weight_grad, bias_grad): (&mut GpuMatrix, &mut GpuMatrix),
        below: Option<(Activation, &GpuMatrix, &mut GpuMatrix)>,
    ) -> Result<()> {
        let below = below.map(|(activation, output, grad)| (activation, output, &*grad));
        linear_backward(
            &self.ctx,
            delta,
            input,
            weight,
            (weight_grad, bias_grad),
            below,
        )
    }

    fn linear_backward_frozen_weight_into(
        &self,
        delta: &GpuMatrix,
        input: &GpuMatrix,
        weight: &GpuMatrix,
        (weight_grad, bias_grad): (&mut GpuMatrix, Option<&mut GpuMatrix>),
        below: Option<(Activation, &GpuMatrix, &mut GpuMatrix)>,
    ) -> Result<()> {
        let below = below.map(|(activation, output, grad)| (activation, output, &*grad));
        linear_backward_frozen_weight(
            &self.ctx,
            delta,
            input,
            weight,
            (weight_grad, bias_grad.map(|b| &*b)),
            below,
        )
    }

    fn linear_grads_into(
        &self,
        delta: &GpuMatrix,
        input: &GpuMatrix,
        weight_grad: &mut GpuMatrix,
        bias_grad: &mut GpuMatrix,
    ) -> Result<()> {
        linear_grads(&self.ctx, delta, input, weight_grad, bias_grad)
    }

    fn gather_rows_into(
        &self,
        src: &GpuMatrix,
        indices: &GpuIndices,
        start: usize,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        gather_rows(&self.ctx, src, indices, start, out)
    }

    fn gather_batch_into(
        &self,
        shards: &[(&GpuMatrix, &GpuMatrix)],
        indices: &GpuIndices,
        start: usize,
        (x_out, y_out): (&mut GpuMatrix, &mut GpuMatrix),
    ) -> Result<()> {
        gather_batch(&self.ctx, shards, indices, start, (x_out, y_out))
    }

    fn activation_backward(
        &self,
        activation: Activation,
        output: &GpuMatrix,
        grad: &mut GpuMatrix,
    ) -> Result<()> {
        activation_backward(&self.ctx, activation, output, grad)
    }

    fn axpy(&self, alpha: f32, x: &GpuMatrix, y: &mut GpuMatrix) -> Result<()> {
        axpy(&self.ctx, alpha, x, y)
    }

    fn add_into(&self, a: &GpuMatrix, b: &GpuMatrix, out: &mut GpuMatrix) -> Result<()> {
        add(&self.ctx, a, b, out)
    }

    fn batch_norm_stats(
        &self,
        x: &GpuMatrix,
        mean: &mut GpuMatrix,
        var: &mut GpuMatrix,
        unbiased: &mut GpuMatrix,
    ) -> Result<()> {
        batch_norm_stats(&self.ctx, x, mean, var, unbiased)
    }

    fn batch_norm_into(
        &self,
        x: &GpuMatrix,
        stats: (&GpuMatrix, &GpuMatrix),
        gamma: &GpuMatrix,
        beta: &GpuMatrix,
        eps: f32,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        batch_norm(&self.ctx, x, stats, gamma, beta, eps, out)
    }

    fn batch_norm_backward(
        &self,
        x: &GpuMatrix,
        stats: (&GpuMatrix, &GpuMatrix),
        gamma: &GpuMatrix,
        eps: f32,
        dy: &GpuMatrix,
        (dgamma, dbeta): (&mut GpuMatrix, &mut GpuMatrix),
        dx: Option<&mut GpuMatrix>,
    ) -> Result<()> {
        batch_norm_backward(
            &self.ctx,
            x,
            stats,
            gamma,
            eps,
            dy,
            (dgamma, dbeta),
            dx.map(|d| &*d),
        )
    }

    fn lerp_into(&self, weight: f32, end: &GpuMatrix, y: &mut GpuMatrix) -> Result<()> {
        lerp(&self.ctx, weight, end, y)
    }

    fn layer_norm_into(
        &self,
        x: &GpuMatrix,
        gamma: &GpuMatrix,
        beta: &GpuMatrix,
        eps: f32,
        stats: &mut GpuMatrix,
        out: &mut GpuMatrix,
        spare: &mut GpuMatrix,
    ) -> Result<()> {
        layer_norm(&self.ctx, x, gamma, beta, eps, stats, out, spare)
    }

    fn layer_norm_backward(
        &self,
        x: &GpuMatrix,
        gamma: &GpuMatrix,
        grad_out: &GpuMatrix,
        stats: &GpuMatrix,
        grad_in: &mut GpuMatrix,
        prod: &mut GpuMatrix,
    ) -> Result<()> {
        layer_norm_backward(&self.ctx, x, gamma, grad_out, stats, grad_in, prod)
    }

    fn dropout_into(
        &self,
        draw: DropoutDraw,
        x: &GpuMatrix,
        mask: &mut GpuMatrix,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        dropout(&self.ctx, draw, x, mask, out)
    }

    fn dropout_backward(
        &self,
        grad_out: &GpuMatrix,
        mask: &GpuMatrix,
        grad_in: &mut GpuMatrix,
    ) -> Result<()> {
        dropout_backward(&self.ctx, grad_out, mask, grad_in)
    }

    fn nonlinearity_into(
        &self,
        function: Nonlinearity,
        x: &GpuMatrix,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        nonlinearity(&self.ctx, function, x, out)
    }

    fn nonlinearity_backward(
        &self,
        function: Nonlinearity,
        x: &GpuMatrix,
        grad_out: &GpuMatrix,
        grad_in: &mut GpuMatrix,
    ) -> Result<()> {
        nonlinearity_backward(&self.ctx, function, x, grad_out, grad_in)
    }

    fn column_sum_into(&self, m: &GpuMatrix, out: &mut GpuMatrix) -> Result<()> {
        column_sum(&self.ctx, m, out)
    }

    fn loss_into(
        &self,
        kind: Loss,
        logits: &GpuMatrix,
        targets: &GpuMatrix,
        grad: Option<&mut GpuMatrix>,
        share: LossShare,
        totals: &mut GpuMatrix,
        slot: usize,
    ) -> Result<()> {
        let row_sums = self.ctx.scratch(2 * logits.shape().0)?;
        loss::loss(
            &self.ctx,
            kind,
            logits,
            targets,
            (grad.map(|g| &*g), share),
            totals,
            slot,
            &row_sums,
        )
    }

    fn arena(&self, label: &str, shapes: &[(usize, usize)]) -> Result<GpuArena> {
        GpuArena::new(&self.ctx, label, shapes)
    }

    fn read_arena(&self, arena: &GpuArena) -> Result<Vec<f32>> {
        arena.read(&self.ctx)
    }

    fn write_arena(&self, arena: &mut GpuArena, values: &[f32]) -> Result<()> {
        arena.write(&self.ctx, values)
    }

    fn copy_arena(&self, src: &GpuArena, dst: &mut GpuArena) -> Result<()> {
        check_layouts("copy arena", src, dst)?;
        src.buffer().check_context(&self.ctx, "copy arena")?;
        dst.buffer().check_context(&self.ctx, "copy arena")?;
        self.ctx.record(|encoder| {
            encoder.copy_buffer_to_buffer(
                src.buffer().raw(),
                0,
                dst.buffer().raw(),
                0,
                src.buffer().size_bytes(),
            )
        })
    }

    fn axpy_arena(&self, alpha: f32, x: &GpuArena, y: &mut GpuArena) -> Result<()> {
        over_arena_pieces(&self.ctx, "axpy", (x, y), |x, y| {
            axpy(&self.ctx, alpha, x, y)
        })
    }

    fn lerp_arena(&self, weight: f32, end: &GpuArena, y: &mut GpuArena) -> Result<()> {
        // `lerp` checks the weight before the first piece records anything.
        over_arena_pieces(&self.ctx, "lerp", (end, y), |end, y| {
            lerp(&self.ctx, weight, end, y)
        })
    }

    fn scale_arena(&self, alpha: f32, x: &GpuArena, y: &mut GpuArena) -> Result<()> {
        over_arena_pieces(&self.ctx, "scale", (x, y), |x, y| {
            scale(&self.ctx, alpha, x, y)
        })
    }

    fn sum_squares_into(
        &self,
        arena: &GpuArena,
        totals: &mut GpuMatrix,
        slot: usize,
    ) -> Result<()> {
        self.reduce_arena(Reduction::SumSquares, arena, None, totals, slot)
    }

    fn dot_into(
        &self,
        x: &GpuArena,
        y: &GpuArena,
        totals: &mut GpuMatrix,
        slot: usize,
    ) -> Result<()> {
        check_layouts("dot", x, y)?;
        self.reduce_arena(Reduction::Dot, x, Some(y), totals, slot)
    }

    fn sum_abs_into(&self, arena: &GpuArena, totals: &mut GpuMatrix, slot: usize) -> Result<()> {
        self.reduce_arena(Reduction::SumAbs, arena, None, totals, slot)
    }

    fn max_abs_into(&self, arena: &GpuArena, totals: &mut GpuMatrix, slot: usize) -> Result<()> {
        self.reduce_arena(Reduction::MaxAbs, arena, None, totals, slot)
    }

    fn optimizer(
        &self,
        config: OptimizerConfig,
        params: &GpuArena,
        schedule: LrSchedule,
        clip: Clip,
        monitor: bool,
        groups: Vec<ArenaGroup>,
    ) -> Result<GpuOptimizer> {
        GpuOptimizer::new(&self.ctx, config, params.buffer().len())?
            .with_schedule(schedule)?
            .with_clip(clip)?
            .with_monitoring(monitor)
            .with_groups(groups)
    }
}

impl GpuBackend {
    /// `totals[slot] ←` the `reduction` over the whole arena `x` (and `y`, of its layout, for
    /// a dot product), its pieces (a binding's worth each) reduced in one fixed order.
    fn reduce_arena(
        &self,
        reduction: Reduction,
        x: &GpuArena,
        y: Option<&GpuArena>,
        totals: &GpuMatrix,
        slot: usize,
    ) -> Result<()> {
        crate::backend::totals_dims(reduction.op(), totals.shape(), slot, 1)?;
        let xs = x.as_rows(&self.ctx)?;
        let ys = y.map(|y| y.as_rows(&self.ctx)).transpose()?;
        let parts: Vec<(&GpuMatrix, Option<&GpuMatrix>)> = match &ys {
            // The same layout: the same pieces.
            Some(ys) => xs.iter().zip(ys).map(|(x, y)| (x, Some(y))).collect(),
            None => xs.iter().map(|x| (x, None)).collect(),
        };
        let partials = self.ctx.scratch(256 * parts.len())?;
        reduce::reduce_into(&self.ctx, reduction, &parts, totals, slot, &partials)
    }
}

/// Records `piece` over the matching pieces (a binding's worth each) of two arenas of one
/// layout, every piece checked before any is recorded, so a refused op records nothing.
fn over_arena_pieces(
    ctx: &GpuContext,
    op: &'static str,
    (x, y): (&GpuArena, &GpuArena),
    piece: impl Fn(&GpuMatrix, &GpuMatrix) -> Result<()>,
) -> Result<()> {
    check_layouts(op, x, y)?;
    let (xs, ys) = (x.as_rows(ctx)?, y.as_rows(ctx)?);
    // The same layout: the same pieces.
    for (x, y) in xs.iter().zip(&ys) {
        dispatch::check_bindings(ctx, op, &[x, y])?;
    }
    xs.iter().zip(&ys).try_for_each(|(x, y)| piece(x, y))
}

/// Arenas combined by one op must share one layout.
pub(crate) fn check_layouts(op: &'static str, a: &GpuArena, b: &GpuArena) -> Result<()> {
    arena_len(op, a.buffer().len(), b.buffer().len())?;
    if !a.same_layout(b) {
        return Err(Error::Shape {
            op,
            detail: "the arenas hold different tensors".into(),
        });
    }
    Ok(())
}
