//! The `Backend` trait: the few kernel-granularity ops every model needs, implemented twice.
//!
//! [`CpuBackend`](cpu::CpuBackend) is the reference (ndarray, written to be obviously correct)
//! and [`GpuBackend`](gpu::GpuBackend) runs WGSL compute shaders through wgpu. Both validate
//! shapes with the same helpers in this module, so they fail with the same errors.

mod activation;
pub mod cpu;
mod dropout;
mod embedding;
pub mod gpu;
mod linear;
mod loss;
mod matmul_spec;
mod nonlinearity;
mod normalization;
mod shapes;
mod special;
mod storage;

pub use activation::Activation;
pub(crate) use activation::sigmoid;
pub use dropout::DropoutDraw;
pub use embedding::{MAX_EMBEDDING_VOCAB, embedding_index};
pub use linear::LinearLink;
pub use loss::{Loss, LossShare};
pub(crate) use loss::{check_labels, class_weights_dims, loss_dims};
pub use matmul_spec::{Matmul, MatmulDims, matmul_dims};
pub use nonlinearity::Nonlinearity;
pub use storage::{Arena, Matrix};
pub(crate) use storage::{check_same_tensors, same_tensors};

use ndarray::{Array2, ArrayView2};

pub(crate) use normalization::{batch_norm_dims, batch_rows, layer_norm_dims};
pub(crate) use shapes::{
    arena_len, check_lerp_weight, column_sum_dims, fused_backward_dims, gather_batch_dims,
    gather_dims, glu_dims, linear_backward_dims, linear_chain_dims, linear_grads_dims, same_shape,
    totals_dims, transpose_dims,
};

use crate::error::Result;
use crate::optim::{ArenaGroup, Clip, LrSchedule, Optimizer, OptimizerConfig};

/// The ops models and trainers are written against, at kernel granularity.
///
/// Every op exists on both backends under the same name; the CPU one is the oracle that the GPU
/// one is tested against. On the GPU, ops are recorded and submitted together by
/// [`Backend::flush`] (or by the next readback), so a training step is one submit.
pub trait Backend: 'static {
    /// Where this backend keeps a matrix.
    type Matrix: Matrix;
    /// A list of row indices (a shuffled epoch order).
    type Indices;
    /// A model's parameters or gradients.
    type Arena: Arena<Matrix = Self::Matrix>;
    /// An optimizer over an arena.
    type Optimizer: Optimizer<Self>;

    /// A human-readable description: the backend and, for the GPU, the adapter.
    fn describe(&self) -> String;

    /// Submits the ops recorded so far (a no-op on the CPU); does not wait for them (on the GPU
    /// it waits for older work only past `GpuOptions::max_dispatches_in_flight`).
    fn flush(&self) -> Result<()>;

    /// Copies a host array into a new backend matrix.
    fn upload(&self, host: ArrayView2<'_, f32>) -> Result<Self::Matrix>;

    /// The most elements one matrix may hold so that every kernel can read it whole: on the
    /// GPU, what the device's storage binding and buffer limits allow; unbounded on the CPU.
    /// A dataset over it is held in several matrices (see [`Backend::gather_batch_into`]).
    fn max_matrix_elements(&self) -> usize;

    /// Copies a backend matrix back to the host (waits for the GPU on the GPU backend).
    fn download(&self, matrix: &Self::Matrix) -> Result<Array2<f32>>;

    /// A new matrix of zeros.
    fn zeros(&self, rows: usize, cols: usize) -> Result<Self::Matrix>;

    /// Overwrites `matrix` with a host array of its shape (memory reused, not allocated: how a
    /// batch the application produces reaches a training step).
    fn write(&self, matrix: &mut Self::Matrix, host: ArrayView2<'_, f32>) -> Result<()>;

    /// Sets every element of `matrix` to `value`.
    fn fill(&self, matrix: &mut Self::Matrix, value: f32) -> Result<()>;

    /// `dst ← src`, of one shape, on the backend (on the GPU a recorded copy; `dst` in another
    /// buffer than `src`).
    fn copy_into(&self, src: &Self::Matrix, dst: &mut Self::Matrix) -> Result<()>;

    /// Copies a host index list to the backend.
    fn upload_indices(&self, indices: &[u32]) -> Result<Self::Indices>;

    /// Overwrites an index list in place with `values` of the same length (a new epoch's
    /// order reuses the last one's memory).
    fn write_indices(&self, indices: &mut Self::Indices, values: &[u32]) -> Result<()>;

    /// `out ← act(op(a) · op(b) + bias)`, overwriting every element of `out`.
    fn matmul_into(
        &self,
        spec: Matmul,
        a: &Self::Matrix,
        b: &Self::Matrix,
        bias: Option<&Self::Matrix>,
        out: &mut Self::Matrix,
    ) -> Result<()>;

    /// `out ← (op(a) · op(b)) ⊙ act'(·)`, where `output` (shaped as `out`) is what
    /// `activation` produced: a backward pass's gradient through a layer's weights and the
    /// activation below it. The result is exactly [`Backend::matmul_into`] followed by
    /// [`Backend::activation_backward`] (the default); the GPU fuses the two into one kernel.
    fn matmul_activation_backward_into(
        &self,
        spec: Matmul,
        a: &Self::Matrix,
        b: &Self::Matrix,
        activation: Activation,
        output: &Self::Matrix,
        out: &mut Self::Matrix,
    ) -> Result<()> {
        fused_backward_dims(spec, output.shape(), out.shape())?;
        self.matmul_into(spec, a, b, None, out)?;
        self.activation_backward(activation, output, out)
    }

    /// The forward pass of linear layers in a chain: `outputs[0] ← act₀(input · W₀ᵀ + b₀)`,
    /// then each link's output from the one before (`links[l]` gives `W`, `b` and `act`), every
    /// output kept (the backward pass reads them). The result is exactly
    /// [`Backend::matmul_into`] (`Matmul::nt()` with the link's activation) link by link (the
    /// default); the GPU runs consecutive small links in one kernel, with the same bits. Checks
    /// the whole chain before writing anything.
    fn linear_chain_into(
        &self,
        input: &Self::Matrix,
        links: &[LinearLink<'_, Self::Matrix>],
        outputs: &mut [Self::Matrix],
    ) -> Result<()> {
        linear::chain_link_by_link(self, input, links, outputs)
    }

    /// A linear layer's parameter gradients from `delta` (∂/∂ its pre-activation output,
    /// batch × outputs) and its `input` (batch × inputs): `weight_grad ← deltaᵀ · input` and
    /// `bias_grad ← Σ_rows delta`. The result is exactly [`Backend::matmul_into`] (`Matmul::tn()`)
    /// followed by [`Backend::column_sum_into`] (the default); the GPU computes both in one
    /// kernel where it can. Checks both before writing either.
    fn linear_grads_into(
        &self,
        delta: &Self::Matrix,
        input: &Self::Matrix,
        weight_grad: &mut Self::Matrix,
        bias_grad: &mut Self::Matrix,
    ) -> Result<()> {
        linear::grads_op_by_op(self, delta, input, weight_grad, bias_grad)
    }

    /// A linear layer's backward pass from `delta` (∂/∂ its pre-activation output, batch ×
    /// outputs), its `input` (batch × inputs) and `weight` (outputs × inputs):
    /// [`Backend::linear_grads_into`] into `weight_grad` and `bias_grad`, then, given the layer
    /// below as `(activation, output, grad)`, `grad ← (delta · weight) ⊙ act'(output)`
    /// ([`Backend::matmul_activation_backward_into`], or [`Backend::matmul_into`] when the
    /// activation is identity). The result is exactly those ops (the default); the GPU runs a
    /// small layer's whole backward pass in one kernel. Checks everything before writing.
    fn linear_backward_into(
        &self,
        delta: &Self::Matrix,
        input: &Self::Matrix,
        weight: &Self::Matrix,
        (weight_grad, bias_grad): (&mut Self::Matrix, &mut Self::Matrix),
        below: Option<(Activation, &Self::Matrix, &mut Self::Matrix)>,
    ) -> Result<()> {
        linear::backward_op_by_op(self, delta, input, weight, (weight_grad, bias_grad), below)
    }

    /// [`Backend::linear_backward_into`] for a layer whose weight is frozen: the bias gradient
    /// (where `bias_grad` is given: BitFit trains biases alone) and the gradient passed down,
    /// with no weight gradient where leaving it out saves work (PyTorch computes none for a
    /// tensor that requires none). `weight_grad` may still be written: nothing reads a frozen
    /// parameter's gradient. The default runs [`Backend::column_sum_into`] and the product
    /// passed down; the GPU runs a small layer's one kernel instead, which costs no more than
    /// its product passed down alone. Checks everything before writing.
    fn linear_backward_frozen_weight_into(
        &self,
        delta: &Self::Matrix,
        input: &Self::Matrix,
        weight: &Self::Matrix,
        (weight_grad, bias_grad): (&mut Self::Matrix, Option<&mut Self::Matrix>),
        below: Option<(Activation, &Self::Matrix, &mut Self::Matrix)>,
    ) -> Result<()> {
        linear::frozen_weight_backward_op_by_op(
            self,
            delta,
            input,
            weight,
            (weight_grad, bias_grad),
            below,
        )
    }

    /// `out[r, :] ← src[indices[start + r], :]` for every row of `out` (a mini-batch).
    fn gather_rows_into(
        &self,
        src: &Self::Matrix,
        indices: &Self::Indices,
        start: usize,
        out: &mut Self::Matrix,
    ) -> Result<()>;

    /// A batch's inputs and targets: row `r` of `x_out` and `y_out` is row
    /// `indices[start + r]` of the data whose rows the `(x, y)` pairs of `shards` hold in
    /// order: one pair, or several where the data is over
    /// [`Backend::max_matrix_elements`]. One kernel per shard on the GPU. Checks every shard
    /// and index before writing either output.
    fn gather_batch_into(
        &self,
        shards: &[(&Self::Matrix, &Self::Matrix)],
        indices: &Self::Indices,
        start: usize,
        outputs: (&mut Self::Matrix, &mut Self::Matrix),
    ) -> Result<()>;

    /// `grad ← grad · act'(·)`, in place, where `output` is what `activation` produced.
    fn activation_backward(
        &self,
        activation: Activation,
        output: &Self::Matrix,
        grad: &mut Self::Matrix,
    ) -> Result<()>;

    /// `y ← y + alpha · x`, element by element.
    fn axpy(&self, alpha: f32, x: &Self::Matrix, y: &mut Self::Matrix) -> Result<()>;

    /// `out ← a + b`, element by element (a residual connection).
    fn add_into(&self, a: &Self::Matrix, b: &Self::Matrix, out: &mut Self::Matrix) -> Result<()>;

    /// `out ← f(x)`, element by element: an activation layer's forward pass.
    fn nonlinearity_into(
        &self,
        function: Nonlinearity,
        x: &Self::Matrix,
        out: &mut Self::Matrix,
    ) -> Result<()>;

    /// `grad_in ← grad_out · f'(x)`, element by element, where `x` is the function's input:
    /// an activation layer's backward pass.
    fn nonlinearity_backward(
        &self,
        function: Nonlinearity,
        x: &Self::Matrix,
        grad_out: &Self::Matrix,
        grad_in: &mut Self::Matrix,
    ) -> Result<()>;

    /// The gated linear unit (PyTorch's `nn.GLU` over the last dimension): `out ← a ⊙ σ(b)`,
    /// where `a` and `b` are the two halves of each row of `x` (rows × 2h; `out` rows × h).
    fn glu_into(&self, x: &Self::Matrix, out: &mut Self::Matrix) -> Result<()>;

    /// The gated linear unit's backward pass: `grad_in ← ∂loss/∂x` (rows × 2h: `σ(b) ⊙ g`,
    /// then `(1 − σ(b)) ⊙ σ(b) ⊙ a ⊙ g`) from `grad_out` (rows × h).
    fn glu_backward(
        &self,
        x: &Self::Matrix,
        grad_out: &Self::Matrix,
        grad_in: &mut Self::Matrix,
    ) -> Result<()>;

    /// Layer normalisation of each row of `x` (PyTorch's `nn.LayerNorm` over the last
    /// dimension): `out ← (x − mean) / √(var + eps) · γ + β`, with each row's (mean, 1/σ)
    /// into `stats` (rows × 2) for the backward pass. `spare` (shaped as `x`) is not written;
    /// the GPU binds it as the backward kernel's product buffer.
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_into(
        &self,
        x: &Self::Matrix,
        gamma: &Self::Matrix,
        beta: &Self::Matrix,
        eps: f32,
        stats: &mut Self::Matrix,
        out: &mut Self::Matrix,
        spare: &mut Self::Matrix,
    ) -> Result<()>;

    /// The layer norm's backward pass: `grad_in ← ∂loss/∂x` from `grad_out` and the forward
    /// pass's `stats`, and `prod ← grad_out ⊙ x̂`, whose column sums are ∂loss/∂γ.
    fn layer_norm_backward(
        &self,
        x: &Self::Matrix,
        gamma: &Self::Matrix,
        grad_out: &Self::Matrix,
        stats: &Self::Matrix,
        grad_in: &mut Self::Matrix,
        prod: &mut Self::Matrix,
    ) -> Result<()>;

    /// Root-mean-square normalisation of each row of `x` (PyTorch's `nn.RMSNorm` over the
    /// last dimension): `out ← x / √(Σx²/n + eps) · γ`, with each row's (0, 1/σ) into `stats`
    /// (rows × 2, the layer norm's layout) for the backward pass. `spare` (shaped as `x`) is
    /// not written, as [`Backend::layer_norm_into`]'s.
    fn rms_norm_into(
        &self,
        x: &Self::Matrix,
        gamma: &Self::Matrix,
        eps: f32,
        stats: &mut Self::Matrix,
        out: &mut Self::Matrix,
        spare: &mut Self::Matrix,
    ) -> Result<()>;

    /// The RMS norm's backward pass: `grad_in ← ∂loss/∂x` from `grad_out` and the forward
    /// pass's `stats`, and `prod ← grad_out ⊙ x̂`, whose column sums are ∂loss/∂γ.
    fn rms_norm_backward(
        &self,
        x: &Self::Matrix,
        gamma: &Self::Matrix,
        grad_out: &Self::Matrix,
        stats: &Self::Matrix,
        grad_in: &mut Self::Matrix,
        prod: &mut Self::Matrix,
    ) -> Result<()>;

    /// A batch's statistics per feature (column) of `x` (at least 2 rows): its mean, its
    /// biased variance (what batch normalisation divides by) and its unbiased variance (what
    /// the running variance follows), each `1 × cols`.
    fn batch_norm_stats(
        &self,
        x: &Self::Matrix,
        mean: &mut Self::Matrix,
        var: &mut Self::Matrix,
        unbiased: &mut Self::Matrix,
    ) -> Result<()>;

    /// Batch normalisation of each feature (column) of `x` (PyTorch's `nn.BatchNorm1d`):
    /// `out ← (x − mean) / √(var + eps) · γ + β`, with the batch's statistics in training, the
    /// running ones in evaluation.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_into(
        &self,
        x: &Self::Matrix,
        stats: (&Self::Matrix, &Self::Matrix),
        gamma: &Self::Matrix,
        beta: &Self::Matrix,
        eps: f32,
        out: &mut Self::Matrix,
    ) -> Result<()>;

    /// The training pass's backward: `dgamma ← Σ dy · x̂` and `dbeta ← Σ dy` per feature, and,
    /// when asked, `dx ← ∂loss/∂x` through the batch's own statistics.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward(
        &self,
        x: &Self::Matrix,
        stats: (&Self::Matrix, &Self::Matrix),
        gamma: &Self::Matrix,
        eps: f32,
        dy: &Self::Matrix,
        grads: (&mut Self::Matrix, &mut Self::Matrix),
        dx: Option<&mut Self::Matrix>,
    ) -> Result<()>;

    /// `y ← lerp(y, end, weight)` over one matrix, as [`Backend::lerp_arena`] (a running
    /// statistic's update).
    fn lerp_into(&self, weight: f32, end: &Self::Matrix, y: &mut Self::Matrix) -> Result<()>;

    /// Inverted dropout: `mask ← draw` (each element 0 with probability `p`, else
    /// 1/(1 − p); a pure function of the draw's key and the element's index) and
    /// `out ← x ⊙ mask`.
    fn dropout_into(
        &self,
        draw: DropoutDraw,
        x: &Self::Matrix,
        mask: &mut Self::Matrix,
        out: &mut Self::Matrix,
    ) -> Result<()>;

    /// Dropout's backward pass: `grad_in ← grad_out ⊙ mask`.
    fn dropout_backward(
        &self,
        grad_out: &Self::Matrix,
        mask: &Self::Matrix,
        grad_in: &mut Self::Matrix,
    ) -> Result<()>;

    /// An embedding lookup: row r of `out` (rows × (inputs − 1 + dim)) is row r of `x` (rows
    /// × inputs) without its column `column`, then the row of `table` (vocab × dim) that
    /// `x[r, column]` names. A value that names no row (not an integer in [0, vocab)) gives a
    /// row of NaN: check data before (the `Embedding` layer checks what it is given).
    fn embedding_into(
        &self,
        x: &Self::Matrix,
        column: usize,
        table: &Self::Matrix,
        out: &mut Self::Matrix,
    ) -> Result<()>;

    /// An embedding lookup's backward pass from `grad_out`: with `table_grad`, each of its
    /// rows the sum, over the rows of `x` whose index names it and in their order, of
    /// `grad_out`'s last `dim` columns (0 for a row no index names, and for the `padding`
    /// row, PyTorch's `padding_idx`); with `grad_in`, ∂loss/∂x: the other columns' gradients
    /// passed through, 0 in the index column. Checks both before writing either.
    fn embedding_backward(
        &self,
        x: &Self::Matrix,
        column: (usize, Option<usize>),
        grad_out: &Self::Matrix,
        table_grad: Option<&mut Self::Matrix>,
        grad_in: Option<&mut Self::Matrix>,
    ) -> Result<()>;

    /// `out[0, c] ← Σ_r m[r, c]`: the bias gradient.
    fn column_sum_into(&self, m: &Self::Matrix, out: &mut Self::Matrix) -> Result<()>;

    /// The fused loss: writes ∂(batch-mean loss)/∂logits into `grad` (when given; the mean
    /// over `share.update_rows` rows, see [`LossShare`]), sets `totals[slot]` to the batch's
    /// summed row losses and `totals[slot + 1]` to its correct predictions (adds them, for a
    /// batch that is not its update's first), and adds both to `totals[slot + 2]` and
    /// `totals[slot + 3]`. An update of fewer rows than the batch is an error.
    ///
    /// With `weights` (1 × classes, the softmax cross-entropies only: PyTorch's
    /// `CrossEntropyLoss(weight=w)`), the batch's mean is over W = Σ w of its rows' labels:
    /// each row's loss counts w_label times (a smoothed target's share each class's weight
    /// times), the gradient is that of the weighted mean, and the sums hold the batch's rows
    /// times its weighted mean, so they add up over batches and updates as unweighted ones do.
    ///
    /// Class labels must be integers in `0..cols`. The CPU backend checks them
    /// ([`Error::Label`](crate::Error::Label)); a GPU kernel cannot fail, so the GPU backend trusts them — build
    /// training data with [`Dataset::classification`](crate::Dataset::classification), which
    /// checks every label once.
    // One fused op: its inputs, its two outputs and the step it is a share of.
    #[allow(clippy::too_many_arguments)]
    fn loss_into(
        &self,
        loss: Loss,
        logits: &Self::Matrix,
        targets: &Self::Matrix,
        grad: Option<&mut Self::Matrix>,
        share: LossShare,
        weights: Option<&Self::Matrix>,
        totals: &mut Self::Matrix,
        slot: usize,
    ) -> Result<()>;

    /// A new zeroed arena of tensors with these (rows, cols) shapes.
    fn arena(&self, label: &str, shapes: &[(usize, usize)]) -> Result<Self::Arena>;

    /// Every tensor's elements, concatenated in order (waits on the GPU).
    fn read_arena(&self, arena: &Self::Arena) -> Result<Vec<f32>>;

    /// Overwrites every tensor from `values`, laid out as [`Backend::read_arena`] returns them.
    fn write_arena(&self, arena: &mut Self::Arena, values: &[f32]) -> Result<()>;

    /// `dst ← src` (arenas of the same layout), bit for bit, NaN payloads included.
    fn copy_arena(&self, src: &Self::Arena, dst: &mut Self::Arena) -> Result<()>;

    /// `y ← y + alpha · x` over whole arenas of the same layout.
    fn axpy_arena(&self, alpha: f32, x: &Self::Arena, y: &mut Self::Arena) -> Result<()>;

    /// `y ← lerp(y, end, weight)` over whole arenas of the same layout, as PyTorch's
    /// `torch.lerp` computes it (`y + weight · (end − y)`, in the form exact at `weight`'s
    /// nearer end): an exponential moving average's update. A weight that is not finite is
    /// an error.
    fn lerp_arena(&self, weight: f32, end: &Self::Arena, y: &mut Self::Arena) -> Result<()>;

    /// `y ← alpha · x` over whole arenas of the same layout.
    fn scale_arena(&self, alpha: f32, x: &Self::Arena, y: &mut Self::Arena) -> Result<()>;

    /// `totals[slot] ← Σ x²` over the whole arena (the squared global norm).
    fn sum_squares_into(
        &self,
        arena: &Self::Arena,
        totals: &mut Self::Matrix,
        slot: usize,
    ) -> Result<()>;

    /// `totals[slot] ← Σ x·y` over two whole arenas of the same layout (in a fixed order).
    fn dot_into(
        &self,
        x: &Self::Arena,
        y: &Self::Arena,
        totals: &mut Self::Matrix,
        slot: usize,
    ) -> Result<()>;

    /// `totals[slot] ← Σ |x|` over the whole arena.
    fn sum_abs_into(
        &self,
        arena: &Self::Arena,
        totals: &mut Self::Matrix,
        slot: usize,
    ) -> Result<()>;

    /// `totals[slot] ← max |x|` over the whole arena (NaN if any element is).
    fn max_abs_into(
        &self,
        arena: &Self::Arena,
        totals: &mut Self::Matrix,
        slot: usize,
    ) -> Result<()>;

    /// An optimizer for arenas laid out as `params`, training `groups` (ranges of the arena,
    /// as [`ParamGroup::resolve`](crate::optim::ParamGroup::resolve) gives them) with their
    /// own settings.
    fn optimizer(
        &self,
        config: OptimizerConfig,
        params: &Self::Arena,
        schedule: LrSchedule,
        clip: Clip,
        monitor: bool,
        groups: Vec<ArenaGroup>,
    ) -> Result<Self::Optimizer>;

    /// `act(op(a) · op(b) + bias)` in a new matrix.
    fn matmul(
        &self,
        spec: Matmul,
        a: &Self::Matrix,
        b: &Self::Matrix,
        bias: Option<&Self::Matrix>,
    ) -> Result<Self::Matrix> {
        let (m, n) = spec.output_shape(a.shape(), b.shape());
        // Checked before allocating so a bad call does not cost a buffer.
        matmul_dims(spec, a.shape(), b.shape(), bias.map(Matrix::shape), (m, n))?;
        let mut out = self.zeros(m, n)?;
        self.matmul_into(spec, a, b, bias, &mut out)?;
        Ok(out)
    }
}
