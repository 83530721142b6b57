//! The reference backend: plain ndarray and loops, written to be obviously correct; the oracle
//! every GPU kernel is tested against. Each op has the name of its GPU twin.

mod arena;
mod batch_norm;
mod dropout;
mod elementwise;
mod embedding;
mod gather;
mod glu;
mod layer_norm;
mod loss;
mod matmul;
mod nonlinearity;
mod optim;
mod reduce;
mod transpose;

pub use arena::CpuArena;
use arena::host_zeros;
pub use batch_norm::{batch_norm, batch_norm_backward, batch_norm_stats};
pub use dropout::{dropout, dropout_backward};
pub use elementwise::{activation_backward, add, axpy, lerp, scale};
pub use embedding::{embedding, embedding_backward};
pub use gather::{gather_batch, gather_rows};
pub use glu::{glu, glu_backward};
pub use layer_norm::{layer_norm, layer_norm_backward, rms_norm, rms_norm_backward};
pub use loss::loss;
pub use matmul::matmul;
pub use nonlinearity::{nonlinearity, nonlinearity_backward};
pub use optim::CpuOptimizer;
pub use reduce::{column_sum, dot, max_abs, sum_abs, sum_squares};
pub use transpose::transpose;

use ndarray::{Array2, ArrayView2};

use super::{
    Activation, Arena, Backend, DropoutDraw, Matmul, Nonlinearity, arena_len, totals_dims,
};
use crate::backend::{Loss, LossShare};
use crate::error::Result;
use crate::optim::{ArenaGroup, Clip, LrSchedule, OptimizerConfig};

/// Computes every op on the host with ndarray.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    type Matrix = Array2<f32>;
    type Indices = Vec<u32>;
    type Arena = CpuArena;
    type Optimizer = CpuOptimizer;

    fn describe(&self) -> String {
        "cpu (ndarray)".to_string()
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn upload(&self, host: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        Ok(host.to_owned())
    }

    fn max_matrix_elements(&self) -> usize {
        usize::MAX
    }

    fn download(&self, matrix: &Array2<f32>) -> Result<Array2<f32>> {
        Ok(matrix.clone())
    }

    fn zeros(&self, rows: usize, cols: usize) -> Result<Array2<f32>> {
        host_zeros("zeros", rows, cols)
    }

    fn write(&self, matrix: &mut Array2<f32>, host: ArrayView2<'_, f32>) -> Result<()> {
        crate::backend::same_shape("write", matrix.dim(), host.dim())?;
        matrix.assign(&host);
        Ok(())
    }

    fn fill(&self, matrix: &mut Array2<f32>, value: f32) -> Result<()> {
        matrix.fill(value);
        Ok(())
    }

    fn copy_into(&self, src: &Array2<f32>, dst: &mut Array2<f32>) -> Result<()> {
        crate::backend::same_shape("copy", src.dim(), dst.dim())?;
        dst.assign(src);
        Ok(())
    }

    fn upload_indices(&self, indices: &[u32]) -> Result<Vec<u32>> {
        Ok(indices.to_vec())
    }

    fn write_indices(&self, indices: &mut Vec<u32>, values: &[u32]) -> Result<()> {
        crate::backend::arena_len("write indices", indices.len(), values.len())?;
        indices.copy_from_slice(values);
        Ok(())
    }

    fn matmul_into(
        &self,
        spec: Matmul,
        a: &Array2<f32>,
        b: &Array2<f32>,
        bias: Option<&Array2<f32>>,
        out: &mut Array2<f32>,
    ) -> Result<()> {
        matmul(spec, a.view(), b.view(), bias.map(|v| v.view()), out)
    }

    fn gather_rows_into(
        &self,
        src: &Array2<f32>,
        indices: &Vec<u32>,
        start: usize,
        out: &mut Array2<f32>,
    ) -> Result<()> {
        gather_rows(src.view(), indices, start, out)
    }

    fn gather_batch_into(
        &self,
        shards: &[(&Array2<f32>, &Array2<f32>)],
        indices: &Vec<u32>,
        start: usize,
        (x_out, y_out): (&mut Array2<f32>, &mut Array2<f32>),
    ) -> Result<()> {
        let views: Vec<_> = shards.iter().map(|(x, y)| (x.view(), y.view())).collect();
        gather_batch(&views, indices, start, (x_out, y_out))
    }

    fn activation_backward(
        &self,
        activation: Activation,
        output: &Array2<f32>,
        grad: &mut Array2<f32>,
    ) -> Result<()> {
        activation_backward(activation, output.view(), grad)
    }

    fn axpy(&self, alpha: f32, x: &Array2<f32>, y: &mut Array2<f32>) -> Result<()> {
        axpy(alpha, x.view(), y)
    }

    fn add_into(&self, a: &Array2<f32>, b: &Array2<f32>, out: &mut Array2<f32>) -> Result<()> {
        add(a.view(), b.view(), out)
    }

    fn batch_norm_stats(
        &self,
        x: &Array2<f32>,
        mean: &mut Array2<f32>,
        var: &mut Array2<f32>,
        unbiased: &mut Array2<f32>,
    ) -> Result<()> {
        batch_norm_stats(x.view(), mean, var, unbiased)
    }

    fn batch_norm_into(
        &self,
        x: &Array2<f32>,
        (mean, var): (&Array2<f32>, &Array2<f32>),
        gamma: &Array2<f32>,
        beta: &Array2<f32>,
        eps: f32,
        out: &mut Array2<f32>,
    ) -> Result<()> {
        batch_norm(
            x.view(),
            mean.view(),
            var.view(),
            gamma.view(),
            beta.view(),
            eps,
            out,
        )
    }

    fn batch_norm_backward(
        &self,
        x: &Array2<f32>,
        (mean, var): (&Array2<f32>, &Array2<f32>),
        gamma: &Array2<f32>,
        eps: f32,
        dy: &Array2<f32>,
        grads: (&mut Array2<f32>, &mut Array2<f32>),
        dx: Option<&mut Array2<f32>>,
    ) -> Result<()> {
        batch_norm_backward(
            x.view(),
            mean.view(),
            var.view(),
            gamma.view(),
            eps,
            dy.view(),
            grads,
            dx,
        )
    }

    fn lerp_into(&self, weight: f32, end: &Array2<f32>, y: &mut Array2<f32>) -> Result<()> {
        lerp(weight, end.view(), y)
    }

    fn layer_norm_into(
        &self,
        x: &Array2<f32>,
        gamma: &Array2<f32>,
        beta: &Array2<f32>,
        eps: f32,
        stats: &mut Array2<f32>,
        out: &mut Array2<f32>,
        spare: &mut Array2<f32>,
    ) -> Result<()> {
        let _ = spare;
        layer_norm(x.view(), gamma.view(), beta.view(), eps, stats, out)
    }

    fn layer_norm_backward(
        &self,
        x: &Array2<f32>,
        gamma: &Array2<f32>,
        grad_out: &Array2<f32>,
        stats: &Array2<f32>,
        grad_in: &mut Array2<f32>,
        prod: &mut Array2<f32>,
    ) -> Result<()> {
        layer_norm_backward(
            x.view(),
            gamma.view(),
            grad_out.view(),
            stats.view(),
            grad_in,
            prod,
        )
    }

    fn glu_into(&self, x: &Array2<f32>, out: &mut Array2<f32>) -> Result<()> {
        glu(x.view(), out)
    }

    fn glu_backward(
        &self,
        x: &Array2<f32>,
        grad_out: &Array2<f32>,
        grad_in: &mut Array2<f32>,
    ) -> Result<()> {
        glu_backward(x.view(), grad_out.view(), grad_in)
    }

    fn rms_norm_into(
        &self,
        x: &Array2<f32>,
        gamma: &Array2<f32>,
        eps: f32,
        stats: &mut Array2<f32>,
        out: &mut Array2<f32>,
        spare: &mut Array2<f32>,
    ) -> Result<()> {
        let _ = spare;
        rms_norm(x.view(), gamma.view(), eps, stats, out)
    }

    fn rms_norm_backward(
        &self,
        x: &Array2<f32>,
        gamma: &Array2<f32>,
        grad_out: &Array2<f32>,
        stats: &Array2<f32>,
        grad_in: &mut Array2<f32>,
        prod: &mut Array2<f32>,
    ) -> Result<()> {
        rms_norm_backward(
            x.view(),
            gamma.view(),
            grad_out.view(),
            stats.view(),
            grad_in,
            prod,
        )
    }

    fn dropout_into(
        &self,
        draw: DropoutDraw,
        x: &Array2<f32>,
        mask: &mut Array2<f32>,
        out: &mut Array2<f32>,
    ) -> Result<()> {
        dropout(draw, x.view(), mask, out)
    }

    fn dropout_backward(
        &self,
        grad_out: &Array2<f32>,
        mask: &Array2<f32>,
        grad_in: &mut Array2<f32>,
    ) -> Result<()> {
        dropout_backward(grad_out.view(), mask.view(), grad_in)
    }

    fn embedding_into(
        &self,
        x: &Array2<f32>,
        column: usize,
        table: &Array2<f32>,
        out: &mut Array2<f32>,
    ) -> Result<()> {
        embedding(x.view(), column, table.view(), out)
    }

    fn embedding_backward(
        &self,
        x: &Array2<f32>,
        column: (usize, Option<usize>),
        grad_out: &Array2<f32>,
        table_grad: Option<&mut Array2<f32>>,
        grad_in: Option<&mut Array2<f32>>,
    ) -> Result<()> {
        embedding_backward(x.view(), column, grad_out.view(), table_grad, grad_in)
    }

    fn nonlinearity_into(
        &self,
        function: Nonlinearity,
        x: &Array2<f32>,
        out: &mut Array2<f32>,
    ) -> Result<()> {
        nonlinearity(function, x.view(), out)
    }

    fn nonlinearity_backward(
        &self,
        function: Nonlinearity,
        x: &Array2<f32>,
        grad_out: &Array2<f32>,
        grad_in: &mut Array2<f32>,
    ) -> Result<()> {
        nonlinearity_backward(function, x.view(), grad_out.view(), grad_in)
    }

    fn column_sum_into(&self, m: &Array2<f32>, out: &mut Array2<f32>) -> Result<()> {
        column_sum(m.view(), out)
    }

    fn loss_into(
        &self,
        kind: Loss,
        logits: &Array2<f32>,
        targets: &Array2<f32>,
        grad: Option<&mut Array2<f32>>,
        share: LossShare,
        weights: Option<&Array2<f32>>,
        totals: &mut Array2<f32>,
        slot: usize,
    ) -> Result<()> {
        totals_dims("loss", totals.dim(), slot, 4)?;
        let weights = weights.map(|w| w.view());
        let (loss_sum, correct) =
            loss(kind, logits.view(), targets.view(), (grad, share), weights)?;
        let (loss_sum, correct) = (loss_sum as f32, correct as f32);
        if share.first {
            totals[[0, slot]] = loss_sum;
            totals[[0, slot + 1]] = correct;
        } else {
            totals[[0, slot]] += loss_sum;
            totals[[0, slot + 1]] += correct;
        }
        totals[[0, slot + 2]] += loss_sum;
        totals[[0, slot + 3]] += correct;
        Ok(())
    }

    fn arena(&self, _label: &str, shapes: &[(usize, usize)]) -> Result<CpuArena> {
        CpuArena::zeroed(shapes)
    }

    fn read_arena(&self, arena: &CpuArena) -> Result<Vec<f32>> {
        Ok(arena.flatten())
    }

    fn write_arena(&self, arena: &mut CpuArena, values: &[f32]) -> Result<()> {
        arena_len("write arena", arena.len(), values.len())?;
        arena.assign(values);
        Ok(())
    }

    fn copy_arena(&self, src: &CpuArena, dst: &mut CpuArena) -> Result<()> {
        dst.copy_from(src)
    }

    fn axpy_arena(&self, alpha: f32, x: &CpuArena, y: &mut CpuArena) -> Result<()> {
        arena_len("axpy", y.len(), x.len())?;
        for (x, y) in x.tensors().iter().zip(y.tensors_mut()) {
            axpy(alpha, x.view(), y)?;
        }
        Ok(())
    }

    fn lerp_arena(&self, weight: f32, end: &CpuArena, y: &mut CpuArena) -> Result<()> {
        // `lerp` checks the weight before the first tensor is written.
        arena_len("lerp", y.len(), end.len())?;
        for (end, y) in end.tensors().iter().zip(y.tensors_mut()) {
            lerp(weight, end.view(), y)?;
        }
        Ok(())
    }

    fn scale_arena(&self, alpha: f32, x: &CpuArena, y: &mut CpuArena) -> Result<()> {
        arena_len("scale", y.len(), x.len())?;
        for (x, y) in x.tensors().iter().zip(y.tensors_mut()) {
            scale(alpha, x.view(), y)?;
        }
        Ok(())
    }

    fn sum_squares_into(
        &self,
        arena: &CpuArena,
        totals: &mut Array2<f32>,
        slot: usize,
    ) -> Result<()> {
        totals_dims("sum_squares", totals.dim(), slot, 1)?;
        totals[[0, slot]] = arena
            .tensors()
            .iter()
            .map(|t| sum_squares(t.view()))
            .sum::<f64>() as f32;
        Ok(())
    }

    fn dot_into(
        &self,
        x: &CpuArena,
        y: &CpuArena,
        totals: &mut Array2<f32>,
        slot: usize,
    ) -> Result<()> {
        totals_dims("dot", totals.dim(), slot, 1)?;
        arena_len("dot", y.len(), x.len())?;
        let mut total = 0.0;
        for (x, y) in x.tensors().iter().zip(y.tensors()) {
            total += dot(x.view(), y.view())?;
        }
        totals[[0, slot]] = total as f32;
        Ok(())
    }

    fn sum_abs_into(&self, arena: &CpuArena, totals: &mut Array2<f32>, slot: usize) -> Result<()> {
        totals_dims("sum_abs", totals.dim(), slot, 1)?;
        let total: f64 = arena.tensors().iter().map(|t| sum_abs(t.view())).sum();
        totals[[0, slot]] = total as f32;
        Ok(())
    }

    fn max_abs_into(&self, arena: &CpuArena, totals: &mut Array2<f32>, slot: usize) -> Result<()> {
        totals_dims("max_abs", totals.dim(), slot, 1)?;
        let maxima = arena.tensors().iter().map(|t| max_abs(t.view()));
        totals[[0, slot]] = maxima.fold(0.0, reduce::nan_max);
        Ok(())
    }

    fn optimizer(
        &self,
        config: OptimizerConfig,
        params: &CpuArena,
        schedule: LrSchedule,
        clip: Clip,
        monitor: bool,
        groups: Vec<ArenaGroup>,
    ) -> Result<CpuOptimizer> {
        CpuOptimizer::new(config, params.len())?
            .with_schedule(schedule)?
            .with_clip(clip)?
            .with_monitoring(monitor)
            .with_groups(groups)
    }
}
