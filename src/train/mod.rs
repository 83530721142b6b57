//! The trainer: batch, stochastic and mini-batch descent with one submit per step, stopping
//! rules, monitoring, Armijo line search and a learning-rate finder.
//!
//! ```
//! use steepest::{Activation, Adam, CpuBackend, Loss, Mlp, MlpSpec, Init, Trainer, data};
//! # fn main() -> steepest::Result<()> {
//! let (train, val) = data::spirals(400, 0.05, 7)?.split(0.25, 7)?;
//! let spec = MlpSpec::new(2).layer(32, Activation::Tanh).layer(2, Activation::Identity);
//! let backend = CpuBackend;
//! let mut model = Mlp::new(&backend, &spec, Init::default(), 7)?;
//! let history = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
//!     .batch_size(32)
//!     .epochs(3)
//!     .fit(&backend, &mut model, &train, Some(&val))?;
//! assert_eq!(history.epochs.len(), 3);
//! # Ok(())
//! # }
//! ```

mod average;
mod batches;
mod checkpoint;
mod checkpoint_settings;
mod checks;
mod device_data;
mod epoch;
mod evaluate;
mod history;
mod lbfgs;
mod search;
mod session;
mod step;
mod stopping;

pub use evaluate::Evaluation;
pub use history::{EpochRecord, History, StepRecord, StopReason};
pub use lbfgs::Lbfgs;
pub use search::{LineSearch, LrFinder, LrFinderResult};
pub use session::{BatchOrder, Session};
pub use stopping::Watched;

use crate::nn::Loss;
use crate::optim::{Clip, LrSchedule, OptimizerConfig, ParamGroup, ReduceLrOnPlateau, Sgd, Swa};

/// How a run is trained: the optimizer, the loss, batching and when to stop.
///
/// Batch descent is `full_batch()`, stochastic descent `batch_size(1)`, mini-batch descent
/// `batch_size(B)`. Defaults: mini-batches of 32, 10 epochs, seed 0, constant learning rate,
/// no clipping, no logging between epochs, NaN/Inf loss is divergence.
#[derive(Clone, Debug, PartialEq)]
pub struct Trainer {
    pub(crate) optimizer: OptimizerConfig,
    pub(crate) param_groups: Vec<ParamGroup>,
    pub(crate) loss: Loss,
    pub(crate) batch_size: Option<usize>,
    pub(crate) accumulate: usize,
    pub(crate) ema: Option<f64>,
    pub(crate) swa: Option<Swa>,
    pub(crate) batch_order: BatchOrder,
    pub(crate) drop_last: bool,
    pub(crate) epochs: usize,
    pub(crate) seed: u64,
    pub(crate) schedule: LrSchedule,
    pub(crate) lr_plateau: Option<ReduceLrOnPlateau>,
    pub(crate) clip: Clip,
    pub(crate) log_every: Option<u64>,
    pub(crate) steps_per_submit: u64,
    pub(crate) grad_tolerance: Option<f64>,
    pub(crate) plateau: Option<(usize, f64)>,
    pub(crate) divergence_factor: Option<f64>,
    pub(crate) restore_best: bool,
    pub(crate) watched: Watched,
    pub(crate) monitor: bool,
    pub(crate) progress: bool,
    pub(crate) checkpoint: Option<std::path::PathBuf>,
    pub(crate) class_weights: Option<Vec<f32>>,
}

impl Default for Trainer {
    fn default() -> Self {
        Self::new(Sgd::default(), Loss::default())
    }
}

impl Trainer {
    /// A trainer with `optimizer` and `loss` and the defaults above.
    pub fn new(optimizer: impl Into<OptimizerConfig>, loss: Loss) -> Self {
        Self {
            optimizer: optimizer.into(),
            param_groups: Vec::new(),
            loss,
            batch_size: Some(32),
            accumulate: 1,
            ema: None,
            swa: None,
            batch_order: BatchOrder::Shuffled,
            drop_last: false,
            epochs: 10,
            seed: 0,
            schedule: LrSchedule::constant(),
            lr_plateau: None,
            clip: Clip::default(),
            log_every: None,
            steps_per_submit: 1,
            grad_tolerance: None,
            plateau: None,
            divergence_factor: None,
            restore_best: false,
            watched: Watched::Loss,
            monitor: false,
            progress: false,
            checkpoint: None,
            class_weights: None,
        }
    }

    /// Trains the parameters `group` picks (by name) with its own learning rate and weight
    /// decay, as a parameter group of PyTorch's optimizers does, or freezes them
    /// ([`ParamGroup::frozen`]); call it once per group. The rest train with the optimizer's
    /// settings. Building the run fails when a group matches no parameter, a parameter is in
    /// two groups or every parameter is frozen. Checkpoints record the groups: a resume
    /// must have the same.
    ///
    /// ```
    /// use steepest::{AdamW, Loss, ParamGroup, Trainer};
    /// // AdamW's weight decay on the weights only (not on biases and norms), as transformers
    /// // are usually trained, and the input layer at a tenth of the rate.
    /// let trainer = Trainer::new(AdamW::default().lr(1e-3), Loss::MeanSquaredError)
    ///     .param_group(ParamGroup::one_dimensional().weight_decay(0.0))
    ///     .param_group(ParamGroup::matching("layers.0.weight").lr_scale(0.1));
    /// assert_eq!(trainer.param_groups().len(), 2);
    /// // Fine-tuning: the first two layers frozen, only the layers above them trained.
    /// let head_only = Trainer::new(AdamW::default().lr(1e-3), Loss::MeanSquaredError)
    ///     .param_group(ParamGroup::matching("layers.0.*").or_matching("layers.1.*").frozen());
    /// assert!(head_only.param_groups()[0].settings.frozen);
    /// ```
    pub fn param_group(mut self, group: ParamGroup) -> Self {
        self.param_groups.push(group);
        self
    }

    /// The parameter groups, in the order given.
    pub fn param_groups(&self) -> &[ParamGroup] {
        &self.param_groups
    }

    /// Mini-batches of `size` samples (1: stochastic descent). The last batch of an epoch holds
    /// what is left, as PyTorch's `DataLoader` does by default.
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = Some(size);
        self
    }

    /// Sums the gradients of `batches` consecutive mini-batches into each optimizer step
    /// (gradient accumulation; default 1, a step per batch): a step then has the gradient of
    /// the mean loss over all their samples, as one batch of `batches` × the batch size would,
    /// while the memory a pass needs stays one mini-batch's. Each mini-batch's gradient is
    /// scaled by its share of the step's samples, so the epoch's last step, which holds what
    /// is left, is the mean over its own; PyTorch computes the same with
    /// `(loss * len(batch) / step_samples).backward()` for each batch and then one
    /// `optimizer.step()`. Steps (the schedule's, `log_every`'s, `steps_per_submit`'s and
    /// [`Session::steps`]) are optimizer steps; a logged loss is its step's mean; each batch
    /// draws its own dropout masks. Needs mini-batches (not `full_batch`). Batches the
    /// application gives ([`Session::step_on_batch`], [`Session::step_on`]) are each a kth of
    /// a step (PyTorch's `(loss / k).backward()`), every kth taking the step. Costs one more
    /// parameter-sized arena (the running sum), and an add over it per batch after the first
    /// (whose gradients become the sum without a copy).
    ///
    /// ```
    /// use steepest::{Adam, Loss, Trainer};
    /// // Steps of 256 samples with the memory of 64-sample batches.
    /// let trainer = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy)
    ///     .batch_size(64)
    ///     .accumulate_grad_batches(4);
    /// assert_eq!(trainer.grad_batches(), 4);
    /// ```
    pub fn accumulate_grad_batches(mut self, batches: usize) -> Self {
        self.accumulate = batches;
        self
    }

    /// The mini-batches whose gradients one optimizer step sums
    /// ([`Trainer::accumulate_grad_batches`]).
    pub fn grad_batches(&self) -> usize {
        self.accumulate
    }

    /// Keeps an exponential moving average of the parameters, updated after every optimizer
    /// step: the first step's parameters, then `average ← average + (1 − decay) · (θ −
    /// average)` (PyTorch's `AveragedModel(model,
    /// multi_avg_fn=get_ema_multi_avg_fn(decay))` with `update_parameters(model)` after each
    /// `optimizer.step()`; timm's model EMA). The average is the model the run produces: the
    /// validation pass measures it (so the rules that watch the validation loss or accuracy
    /// follow it, as timm's do), `restore_best` keeps it, and a run ([`Trainer::fit`],
    /// [`Session::run`]) ends with it in the model (the best epoch's, with `restore_best`);
    /// training itself goes on from the parameters the optimizer moves. A divergence leaves
    /// the last good epoch's trained parameters. Checkpoints carry it. Costs one more
    /// parameter-sized arena and one pass over it per step. `decay` in [0, 1]: typically 0.99
    /// to 0.9999, the average then spanning about 1/(1 − decay) steps. The model's buffers (a
    /// batch norm's running statistics) are averaged with the parameters, as
    /// `AveragedModel(use_buffers=True)` and timm's EMA average them.
    ///
    /// ```
    /// use steepest::{Adam, Loss, Trainer};
    /// let trainer = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy).ema(0.999);
    /// assert_eq!(trainer.ema_decay(), Some(0.999));
    /// ```
    pub fn ema(mut self, decay: f64) -> Self {
        self.ema = Some(decay);
        self
    }

    /// The decay of the parameters' moving average ([`Trainer::ema`]), if the run keeps one.
    pub fn ema_decay(&self) -> Option<f64> {
        self.ema
    }

    /// Stochastic weight averaging ([`Swa`], PyTorch's `swa_utils` loop): from the end of
    /// epoch `swa.start` on, every epoch's parameters join an equal average
    /// (`AveragedModel(model)` and `update_parameters(model)` after each of those epochs),
    /// and the learning rate anneals from the rate the schedule had reached to the SWA rate
    /// over `swa.anneal_epochs` epochs, one `SWALR` step after each of those epochs, the
    /// schedule no longer stepping. The epochs up to the start train as without it.
    ///
    /// As with [`Trainer::ema`], the average is the model the run produces: once it holds
    /// an epoch the validation pass measures it, `restore_best` keeps it, and a run ends with
    /// it in the model (a run stopped before the start ends with its trained parameters);
    /// training goes on from the parameters the optimizer moves. Checkpoints carry it.
    /// Costs one parameter-sized arena and one pass over it per epoch.
    ///
    /// Refused with `ema` (one average a run), with `reduce_lr_on_plateau` (two rules would
    /// set the rate), with a one-cycle or cyclic schedule (they cycle the momentum too), with
    /// Rprop (its rate is only its step sizes' start), when the run has fewer epochs than the
    /// start, and in a session of the application's batches, which has no epochs. Each
    /// parameter group anneals to the SWA rate times its `lr_scale` (PyTorch's `SWALR` given
    /// one rate per group).
    ///
    /// ```
    /// use steepest::{LrSchedule, Loss, Sgd, Swa, Trainer};
    /// // 60 epochs of cosine decay, then 15 averaged at a rate annealed to 0.01.
    /// let trainer = Trainer::new(Sgd::default().lr(0.1).momentum(0.9), Loss::SoftmaxCrossEntropy)
    ///     .epochs(75)
    ///     .schedule(LrSchedule::cosine(60 * 100, 0.02))
    ///     .swa(Swa::new(60, 0.01).anneal_epochs(5));
    /// assert_eq!(trainer.swa_settings().map(|s| s.start), Some(60));
    /// ```
    pub fn swa(mut self, swa: Swa) -> Self {
        self.swa = Some(swa);
        self
    }

    /// The stochastic weight averaging settings ([`Trainer::swa`]), if the run averages so.
    pub fn swa_settings(&self) -> Option<Swa> {
        self.swa
    }

    /// Leaves out each epoch's last batch when it is shorter than the others (PyTorch's
    /// `DataLoader(drop_last=True)`): every step sees a whole batch, which a batch norm
    /// needs when the samples would leave one row over. The samples left out are the
    /// epoch's last in its order, so a shuffled run leaves out others each epoch; the epoch's
    /// loss is the mean over the samples it trained on. Off by default.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// Whether each epoch leaves out a last, shorter batch ([`Trainer::drop_last`]).
    pub fn drops_last(&self) -> bool {
        self.drop_last
    }

    /// The order each epoch visits the training samples in: a fresh shuffle per epoch (the
    /// default), or the data's own order.
    pub fn batch_order(mut self, order: BatchOrder) -> Self {
        self.batch_order = order;
        self
    }

    /// Batch gradient descent: every step sees the whole training set.
    pub fn full_batch(mut self) -> Self {
        self.batch_size = None;
        self
    }

    /// Stop after `epochs` epochs (the upper bound whatever the other rules say).
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Seed of the per-epoch shuffle.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The learning-rate schedule, counted in optimizer steps (with gradient accumulation,
    /// one per [`Trainer::accumulate_grad_batches`] mini-batches).
    pub fn schedule(mut self, schedule: LrSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Lowers the learning rate when the watched value ([`Trainer::watch`]: the validation
    /// loss, or the training loss without validation data, by default) stops improving: `rule`
    /// takes each epoch's value, as PyTorch's `ReduceLROnPlateau` does when its
    /// `step(val_loss)` is called after every epoch, and the rate it leaves is the optimizer's
    /// base rate from the next step on. With the default constant schedule
    /// that is PyTorch's trajectory; with another schedule, the schedule scales the lowered
    /// base rate (a warm-up climbs to it, a cosine decays from it). Runs (`fit`,
    /// [`Session::run`]) apply it after each epoch, before the epoch's checkpoint is
    /// saved; checkpoints carry what it remembers, so a resumed run lowers the rate at the
    /// same epochs. [`EpochRecord::lr`] shows the rate each epoch ended with.
    pub fn reduce_lr_on_plateau(mut self, rule: ReduceLrOnPlateau) -> Self {
        self.lr_plateau = Some(rule);
        self
    }

    /// Gradient clipping.
    pub fn clip(mut self, clip: Clip) -> Self {
        self.clip = clip;
        self
    }

    /// Read the batch loss back every `steps` steps (each read is one wait on the GPU).
    pub fn log_every(mut self, steps: u64) -> Self {
        self.log_every = Some(steps);
        self
    }

    /// Record `steps` steps before submitting them to the GPU together (default 1: every step
    /// is submitted as it is recorded), as Keras's `steps_per_execution`. A submit has a fixed
    /// host cost (on an NVIDIA GPU through Vulkan, 12–19 µs measured), a large share of a small
    /// model's step; fewer submits save most of it. The steps compute exactly the same values: a
    /// readback (a logged step, an epoch's end, a checkpoint, reading the model) and a write
    /// through the crate submit what is pending first. What it costs: the GPU starts a group's
    /// steps only once the last is recorded, and an application that writes a step's input
    /// buffers through wgpu itself, bypassing the crate, must call
    /// [`GpuContext::flush`](crate::GpuContext::flush) first. Steps on batches from the host
    /// ([`Session::step_on_batch`]) still submit one by one: writing each batch submits what
    /// is pending first. No effect on the CPU backend.
    pub fn steps_per_submit(mut self, steps: u64) -> Self {
        self.steps_per_submit = steps;
        self
    }

    /// Stop when ‖g‖ of an epoch's last step falls below `tolerance` (turns monitoring on).
    pub fn stop_when_grad_norm_below(mut self, tolerance: f64) -> Self {
        self.grad_tolerance = Some(tolerance);
        self.monitor = true;
        self
    }

    /// Stop when the watched value ([`Trainer::watch`]: the validation loss, or the training
    /// loss without validation data, by default) has not improved by more than `min_delta`
    /// for `patience` epochs.
    pub fn stop_on_plateau(mut self, patience: usize, min_delta: f64) -> Self {
        self.plateau = Some((patience, min_delta));
        self
    }

    /// Also count as divergence a loss above `factor` × the first measured loss.
    pub fn diverge_above(mut self, factor: f64) -> Self {
        self.divergence_factor = Some(factor);
        self
    }

    /// At the end of the run (its last epoch, a plateau, the gradient tolerance), put back the
    /// parameters of the epoch whose watched value ([`Trainer::watch`]) was best, the first
    /// of equals: by default the lowest validation loss, or training loss without validation
    /// data (Keras's `restore_best_weights`). It keeps one more copy of the parameters on the
    /// backend, copied there (device to device) after each epoch that sets a new best;
    /// checkpoints carry it. [`History::restored_epoch`] says
    /// which epoch the model holds. A divergence still leaves the last good epoch's.
    pub fn restore_best(mut self, on: bool) -> Self {
        self.restore_best = on;
        self
    }

    /// What [`Trainer::stop_on_plateau`], [`Trainer::restore_best`] and
    /// [`Trainer::reduce_lr_on_plateau`] watch (as Keras's `monitor`): the loss (the default)
    /// or, for a classification loss, the accuracy, each on the validation data when the run
    /// has some. A learning-rate rule must agree on which way is better: [`Mode::Max`] for the
    /// accuracy.
    ///
    /// [`Mode::Max`]: crate::optim::Mode::Max
    pub fn watch(mut self, watched: Watched) -> Self {
        self.watched = watched;
        self
    }

    /// Measure ‖g‖ and ‖Δθ‖/‖θ‖ every step (fused into the update; read at epoch end).
    pub fn monitor(mut self, on: bool) -> Self {
        self.monitor = on;
        self
    }

    /// Show a progress bar on stderr when it is a terminal (quiet otherwise).
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Save a checkpoint to `path` before training and after every epoch (atomically). After a
    /// divergence the file holds the last good epoch.
    pub fn checkpoint(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.checkpoint = Some(path.into());
        self
    }

    /// The optimizer configuration.
    pub fn optimizer(&self) -> &OptimizerConfig {
        &self.optimizer
    }

    /// The loss.
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// Weighs each class in the softmax cross-entropies (PyTorch's
    /// `CrossEntropyLoss(weight=w)`, reduction `mean`): a sample of class c counts `weights[c]`
    /// times, and a batch's loss is the weighted mean, over Σ of its samples' weights, so a
    /// rare class can count as much as a common one. One weight per class, finite and ≥ 0,
    /// not all 0; refused with the other losses. Training and validation use them; an epoch's
    /// loss and a validation loss are then the batches' weighted means averaged over their
    /// samples. With label smoothing each class's share of the target is weighted too, as
    /// PyTorch's is. [`Dataset::balanced_class_weights`](crate::Dataset::balanced_class_weights)
    /// gives weights that make every class count alike.
    pub fn class_weights(mut self, weights: Vec<f32>) -> Self {
        self.class_weights = Some(weights);
        self
    }

    /// The class weights ([`Trainer::class_weights`]), if any.
    pub fn weights_per_class(&self) -> Option<&[f32]> {
        self.class_weights.as_deref()
    }
}
