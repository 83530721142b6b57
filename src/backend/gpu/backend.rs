//! `GpuBackend`: the [`Backend`] ops on wgpu, each handing its context to the host side of
//! its kernel (the module of the shader's name).

use std::sync::Arc;

use ndarray::{Array2, ArrayView2};

use super::reduce::Reduction;
use super::{
    GpuArena, GpuContext, GpuIndices, GpuMatrix, GpuOptimizer, activation_backward, add, arena_ops,
    axpy, batch_norm, batch_norm_backward, batch_norm_stats, column_sum, dropout, dropout_backward,
    embedding, embedding_backward, gather_batch, gather_rows, glu, glu_backward, layer_norm,
    layer_norm_backward, lerp, linear_backward, linear_backward_frozen_weight, linear_chain,
    linear_grads, loss, matmul, matmul_activation_backward, nonlinearity, nonlinearity_backward,
    rms_norm, rms_norm_backward, scale,
};
use crate::backend::{Activation, Backend, DropoutDraw, LinearLink, Matmul, Nonlinearity};
use crate::backend::{Loss, LossShare};
use crate::error::Result;
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
    /// (see [`GpuOptions::from_env`](super::GpuOptions::from_env)).
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
        self.ctx.describe()
    }

    fn flush(&self) -> Result<()> {
        self.ctx.flush()
    }

    fn upload(&self, host: ArrayView2<'_, f32>) -> Result<GpuMatrix> {
        GpuMatrix::upload(&self.ctx, host)
    }

    fn max_matrix_elements(&self) -> usize {
        GpuMatrix::max_elements(&self.ctx)
    }

    fn download(&self, matrix: &GpuMatrix) -> Result<Array2<f32>> {
        matrix.read(&self.ctx)
    }

    fn zeros(&self, rows: usize, cols: usize) -> Result<GpuMatrix> {
        GpuMatrix::zeros(&self.ctx, rows, cols)
    }

    fn write(&self, matrix: &mut GpuMatrix, host: ArrayView2<'_, f32>) -> Result<()> {
        matrix.write(&self.ctx, host)
    }

    fn fill(&self, matrix: &mut GpuMatrix, value: f32) -> Result<()> {
        matrix.fill(&self.ctx, value)
    }

    fn copy_into(&self, src: &GpuMatrix, dst: &mut GpuMatrix) -> Result<()> {
        src.copy_to(&self.ctx, dst)
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

    fn glu_into(&self, x: &GpuMatrix, out: &mut GpuMatrix) -> Result<()> {
        glu(&self.ctx, x, out)
    }

    fn glu_backward(
        &self,
        x: &GpuMatrix,
        grad_out: &GpuMatrix,
        grad_in: &mut GpuMatrix,
    ) -> Result<()> {
        glu_backward(&self.ctx, x, grad_out, grad_in)
    }

    fn rms_norm_into(
        &self,
        x: &GpuMatrix,
        gamma: &GpuMatrix,
        eps: f32,
        stats: &mut GpuMatrix,
        out: &mut GpuMatrix,
        spare: &mut GpuMatrix,
    ) -> Result<()> {
        rms_norm(&self.ctx, x, gamma, eps, stats, out, spare)
    }

    fn rms_norm_backward(
        &self,
        x: &GpuMatrix,
        gamma: &GpuMatrix,
        grad_out: &GpuMatrix,
        stats: &GpuMatrix,
        grad_in: &mut GpuMatrix,
        prod: &mut GpuMatrix,
    ) -> Result<()> {
        rms_norm_backward(&self.ctx, x, gamma, grad_out, stats, grad_in, prod)
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

    fn embedding_into(
        &self,
        x: &GpuMatrix,
        column: usize,
        table: &GpuMatrix,
        out: &mut GpuMatrix,
    ) -> Result<()> {
        embedding(&self.ctx, x, column, table, out)
    }

    fn embedding_backward(
        &self,
        x: &GpuMatrix,
        column: (usize, Option<usize>),
        grad_out: &GpuMatrix,
        table_grad: Option<&mut GpuMatrix>,
        grad_in: Option<&mut GpuMatrix>,
    ) -> Result<()> {
        let (table_grad, grad_in) = (table_grad.map(|t| &*t), grad_in.map(|g| &*g));
        embedding_backward(&self.ctx, x, column, grad_out, table_grad, grad_in)
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
        weights: Option<&GpuMatrix>,
        totals: &mut GpuMatrix,
        slot: usize,
    ) -> Result<()> {
        let grad = grad.map(|g| &*g);
        loss::loss(
            &self.ctx,
            kind,
            logits,
            targets,
            (grad, share),
            weights,
            (totals, slot),
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
        super::copy::copy_arena(&self.ctx, src, dst)
    }

    fn axpy_arena(&self, alpha: f32, x: &GpuArena, y: &mut GpuArena) -> Result<()> {
        arena_ops::each_piece(&self.ctx, "axpy", (x, y), |x, y| {
            axpy(&self.ctx, alpha, x, y)
        })
    }

    fn lerp_arena(&self, weight: f32, end: &GpuArena, y: &mut GpuArena) -> Result<()> {
        // `lerp` checks the weight before the first piece records anything.
        arena_ops::each_piece(&self.ctx, "lerp", (end, y), |end, y| {
            lerp(&self.ctx, weight, end, y)
        })
    }

    fn scale_arena(&self, alpha: f32, x: &GpuArena, y: &mut GpuArena) -> Result<()> {
        arena_ops::each_piece(&self.ctx, "scale", (x, y), |x, y| {
            scale(&self.ctx, alpha, x, y)
        })
    }

    fn sum_squares_into(
        &self,
        arena: &GpuArena,
        totals: &mut GpuMatrix,
        slot: usize,
    ) -> Result<()> {
        arena_ops::reduce(&self.ctx, Reduction::SumSquares, arena, None, totals, slot)
    }

    fn dot_into(
        &self,
        x: &GpuArena,
        y: &GpuArena,
        totals: &mut GpuMatrix,
        slot: usize,
    ) -> Result<()> {
        arena_ops::check_layouts("dot", x, y)?;
        arena_ops::reduce(&self.ctx, Reduction::Dot, x, Some(y), totals, slot)
    }

    fn sum_abs_into(&self, arena: &GpuArena, totals: &mut GpuMatrix, slot: usize) -> Result<()> {
        arena_ops::reduce(&self.ctx, Reduction::SumAbs, arena, None, totals, slot)
    }

    fn max_abs_into(&self, arena: &GpuArena, totals: &mut GpuMatrix, slot: usize) -> Result<()> {
        arena_ops::reduce(&self.ctx, Reduction::MaxAbs, arena, None, totals, slot)
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
