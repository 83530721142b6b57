//! Loops the application drives: a step on a batch it supplies (host data or backend
//! matrices), and optimizer state handed from one session to another in memory.

use super::Session;
use super::device_data::{check_features, check_inputs};
use super::session::slot;
use super::step::Batch;
use crate::backend::{Arena, Backend, Matrix};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::Model;
use crate::optim::{Optimizer, OptimizerState};

impl<B: Backend, M: Model<B>> Session<'_, B, M> {
    /// One optimizer step on `batch`, exactly as given (no shuffle): forward, loss, backward
    /// and update recorded and submitted once, as [`Session::step`] does. The batch is checked
    /// as training data is (features, targets for the loss) and written into memory the
    /// session reuses for every batch of its size, so a stream of equal batches allocates
    /// nothing on the backend after the first. With
    /// [`Trainer::accumulate_grad_batches(k)`](crate::Trainer::accumulate_grad_batches), each
    /// batch is a kth of a step, as PyTorch's `(loss / k).backward()` makes it (the mean over
    /// all their samples, for batches of one size), and every kth batch takes the step
    /// ([`Session::pending_batches`] counts those waiting; they are lost if the stream ends
    /// first).
    ///
    /// ```
    /// use steepest::{Activation, Adam, CpuBackend, Dataset, Init, Loss, Mlp, MlpSpec};
    /// use steepest::{Session, Trainer, ndarray::Array2};
    /// # fn main() -> steepest::Result<()> {
    /// let spec = MlpSpec::stack(&[3, 16, 1], Activation::Tanh);
    /// let mut model = Mlp::new(&CpuBackend, &spec, Init::default(), 1)?;
    /// let trainer = Trainer::new(Adam::default().lr(0.01), Loss::MeanSquaredError);
    /// let mut session = Session::for_batches(&trainer, &CpuBackend, &mut model)?;
    /// for step in 0..10 {
    ///     let x = Array2::from_shape_fn((8, 3), |(i, j)| ((step * 8 + i + j) % 5) as f32);
    ///     let y = x.sum_axis(steepest::ndarray::Axis(1)).insert_axis(steepest::ndarray::Axis(1));
    ///     session.step_on_batch(&Dataset::regression(x, y)?)?;
    /// }
    /// assert!(session.last_batch_loss()?.is_finite());
    /// # Ok(())
    /// # }
    /// ```
    pub fn step_on_batch(&mut self, batch: &Dataset) -> Result<()> {
        let net = self.model.network();
        check_inputs("Session::step_on_batch", "the batch", batch.x().view(), net)?;
        self.trainer
            .check_targets("Session::step_on_batch", "batch", net.outputs(), batch)?;
        self.descend(batch.len(), Batch::Host(batch))
    }

    /// One optimizer step on inputs `x` (rows × the model's inputs) and targets `y` already on
    /// the backend (rows × the model's outputs, or rows × 1 class indices for softmax
    /// cross-entropy), with no copy. Class indices are trusted as [`Backend::loss_into`]
    /// trusts them: check them once where they are made. With gradient accumulation, a kth of
    /// a step, as [`Session::step_on_batch`] says.
    pub fn step_on(&mut self, x: &B::Matrix, y: &B::Matrix) -> Result<()> {
        let op = "Session::step_on";
        let net = self.model.network();
        let (rows, features) = x.shape();
        check_features(op, "the batch", features, net.inputs())?;
        let want = (rows, self.trainer.loss.target_cols(net.outputs()));
        if rows == 0 || y.shape() != want {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "x is {rows}×{features} and y is {}×{}; y must be {}×{} for {} and the \
                     model's {} outputs, and a batch needs a row",
                    y.shape().0,
                    y.shape().1,
                    want.0,
                    want.1,
                    self.trainer.loss.name(),
                    net.outputs()
                ),
            });
        }
        self.descend(rows, Batch::Device(x, y))
    }

    /// The mean loss of the last step's batch (of its batches together, with
    /// [`Trainer::accumulate_grad_batches`](crate::Trainer::accumulate_grad_batches), and
    /// while given batches await the rest of their step, of those; reads back: waits for the
    /// GPU).
    pub fn last_batch_loss(&self) -> Result<f64> {
        let rows = match self.pending.batches {
            0 => self.last_rows,
            _ => self.pending.samples,
        };
        if rows == 0 {
            return Err(Error::Data {
                op: "Session::last_batch_loss",
                detail: "no step has been taken".into(),
            });
        }
        let totals = self.backend.download(&self.totals)?;
        Ok(f64::from(totals[[0, slot::TRAIN]]) / rows as f64)
    }

    /// The average of the parameters ([`Trainer::ema`](crate::Trainer::ema),
    /// [`Trainer::swa`](crate::Trainer::swa)), flat as
    /// [`Sequential::parameters_flat`](crate::Sequential::parameters_flat) lays them out
    /// (reads back: waits for the GPU); `None` for a run without one. Before its first update
    /// (an SWA run before its start epoch) it holds the parameters the session started from,
    /// as PyTorch's `AveragedModel` holds its copy. A run ends with it in the model; a loop
    /// of one's own sets it there itself
    /// ([`Sequential::set_parameters_flat`](crate::Sequential::set_parameters_flat)).
    pub fn averaged_parameters(&self) -> Result<Option<Vec<f32>>> {
        self.average
            .as_ref()
            .map(|average| self.backend.read_arena(&average.params))
            .transpose()
    }

    /// The optimizer's base learning rate (what the schedule scales): the trainer's, or the
    /// last one [`Session::set_lr`] or `Trainer::reduce_lr_on_plateau` set.
    pub fn lr(&self) -> f64 {
        self.optimizer.base_lr()
    }

    /// Sets the optimizer's base learning rate from the next step on, as assigning PyTorch's
    /// `param_group["lr"]` does between steps: a loop of your own that steps a
    /// [`ReduceLrOnPlateau`](crate::ReduceLrOnPlateau) hands the rate it returns here.
    /// Checkpoints keep it, so a resumed run continues at it (unless its optimizer settings
    /// are overridden); a `reduce_lr_on_plateau` rule lowers it from there. A rate that is
    /// negative or not finite (also once rounded to f32) is refused, changing nothing.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.optimizer.set_lr(lr)
    }

    /// Continues from optimizer state another session gave ([`Session::optimizer_state`]) for
    /// a model of the same parameter shapes and the same optimizer: momentum, moments and the
    /// step count carry over, in memory. On error nothing changes.
    pub fn load_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        let params = &self.model.network().params;
        let mut storage = state.clone();
        for (name, values) in &mut storage.buffers {
            if values.len() != params.len() {
                return Err(Error::Data {
                    op: "Session::load_optimizer_state",
                    detail: format!(
                        "buffer {name} holds {} values, the model has {} parameters",
                        values.len(),
                        params.len()
                    ),
                });
            }
            // From one value per parameter to the arena's layout (alignment gaps are zero).
            let mut laid_out = vec![0.0; params.storage_len()];
            let mut at = 0;
            for (start, tensor) in params.offsets().into_iter().zip(params.tensors()) {
                let (rows, cols) = tensor.shape();
                let len = rows * cols;
                laid_out[start..start + len].copy_from_slice(&values[at..at + len]);
                at += len;
            }
            *values = laid_out;
        }
        self.optimizer.load_state(&storage)
    }
}
