//! `Session`: one training run in progress: what it holds, how it is built, and each epoch's
//! order. Each step (`step.rs`) records gather, forward, loss and backward (for each of its
//! batches, with gradient accumulation), clipping and the update, then submits once (or
//! every `Trainer::steps_per_submit` steps); the host reads back only at epoch ends and at
//! logged steps.

use std::io::IsTerminal;

use super::average::{Average, Averaging};
use super::device_data::{DeviceData, check_inputs};
use super::{History, Trainer};
use crate::backend::{Arena, Backend};
use crate::data::{Dataset, shuffled};
use crate::error::{Error, Result};
use crate::nn::{Mlp, Model, Workspace, seeded};
use crate::optim::{Optimizer, ParamGroup};

/// The order an epoch visits the training samples in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchOrder {
    /// A fresh permutation each epoch, drawn from a generator seeded by (seed, epoch).
    #[default]
    Shuffled,
    /// The samples in the data's own order, every epoch (for data already arranged, or
    /// sequences whose order matters).
    InOrder,
}

/// Layout of the totals row the kernels accumulate into (one readback gets everything).
pub(crate) mod slot {
    /// Batch loss, batch correct, epoch loss, epoch correct.
    pub const TRAIN: usize = 0;
    /// The same for the validation pass.
    pub const VALIDATION: usize = 4;
    /// Σg², Σθ², ΣΔθ² of the last step.
    pub const STATS: usize = 8;
    /// Scratch for single values (line search).
    pub const SCRATCH: usize = 11;
    /// Entries in all.
    pub const LEN: usize = 12;
}

/// One training run in progress: [`Session::step`] takes one optimizer step,
/// [`Session::run_epoch`] finishes the current epoch, [`Session::run`] trains to the end.
pub struct Session<'a, B: Backend, M: Model<B> = Mlp<B>> {
    pub(super) trainer: &'a Trainer,
    pub(super) backend: &'a B,
    pub(super) model: &'a mut M,
    /// The training data, or none for a session that trains on given batches only.
    pub(super) train: Option<DeviceData<B>>,
    pub(super) validation: Option<(DeviceData<B>, B::Indices)>,
    pub(super) optimizer: B::Optimizer,
    pub(super) totals: B::Matrix,
    /// One per batch size seen (the full batches and the last, shorter one).
    pub(super) workspaces: Vec<Workspace<B::Matrix>>,
    /// This epoch's sample order, and how far into it the steps have gone.
    pub(super) order: Option<B::Indices>,
    /// The last epoch's order, kept so the next one is written into its memory.
    spare_order: Option<B::Indices>,
    pub(super) position: usize,
    pub(super) epoch: usize,
    pub(super) step: u64,
    /// Samples in the last step's batch.
    pub(super) last_rows: usize,
    /// The parameters after the last epoch whose loss was finite.
    pub(super) last_good: B::Arena,
    /// What the stopping rules remember between epochs.
    pub(super) memory: super::stopping::Memory,
    /// The parameters of the epoch with the best watched value (`Trainer::restore_best`).
    pub(super) kept: Option<B::Arena>,
    pub(super) history: History,
    pub(super) progress: Option<indicatif::ProgressBar>,
    /// Whether each parameter tensor is frozen (`Sequential::tensor_names`' order): what the
    /// backward pass may skip.
    pub(super) frozen: Vec<bool>,
    /// The running sum of a step's batches' gradients, with gradient accumulation
    /// (`Trainer::accumulate_grad_batches` over 1).
    pub(super) grad_sum: Option<B::Arena>,
    /// The average of the parameters (`Trainer::ema`, `Trainer::swa`).
    pub(super) average: Option<Average<B>>,
    /// Given batches whose gradients are summed, awaiting the rest of their step (with
    /// gradient accumulation).
    pub(super) pending: Pending,
    /// The loss's class weights on the backend (`Trainer::class_weights`), uploaded once.
    pub(super) class_weights: Option<B::Matrix>,
}

/// Given batches summed toward a step that has not been taken yet.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Pending {
    /// How many (0 after a step).
    pub batches: usize,
    /// Their samples.
    pub samples: usize,
}

impl<B: Backend, M: Model<B>> std::fmt::Debug for Session<'_, B, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("trainer", self.trainer)
            .field("epoch", &self.epoch)
            .field("step", &self.step)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<'a, B: Backend, M: Model<B>> Session<'a, B, M> {
    /// Checks the settings and data, uploads the data once and builds the optimizer. Data over
    /// the backend's [`Backend::max_matrix_elements`] (more than one GPU binding holds) is
    /// uploaded in shards of consecutive rows; batches are gathered from all of them.
    pub fn new(
        trainer: &'a Trainer,
        backend: &'a B,
        model: &'a mut M,
        train: &Dataset,
        validation: Option<&Dataset>,
    ) -> Result<Self> {
        let net = model.network();
        trainer.check("Trainer::fit", net, train, validation)?;
        check_inputs("Trainer::fit", "the data", train.x().view(), net)?;
        if let Some(validation) = validation {
            check_inputs(
                "Trainer::fit",
                "the validation data",
                validation.x().view(),
                net,
            )?;
        }
        let train = DeviceData::upload(backend, train)?;
        Self::build(trainer, backend, model, Some(train), validation)
    }

    /// A session that trains only on batches given to [`Session::step_on_batch`] or
    /// [`Session::step_on`] (a stream, or an order of the application's own): no training set,
    /// no epochs. The trainer's batch size, epochs, stopping rules, `restore_best` and
    /// `reduce_lr_on_plateau` do not apply; `swa`, which acts at epoch ends, is refused.
    pub fn for_batches(trainer: &'a Trainer, backend: &'a B, model: &'a mut M) -> Result<Self> {
        if let Some(swa) = trainer.swa {
            return Err(Error::Data {
                op: "Session::for_batches",
                detail: format!(
                    "swa starting after epoch {}: it averages at the ends of epochs, and a \
                     session of the application's batches has none (train a dataset with \
                     Session::new, or keep an average with ema)",
                    swa.start
                ),
            });
        }
        trainer.check_settings()?;
        Self::build(trainer, backend, model, None, None)
    }

    fn build(
        trainer: &'a Trainer,
        backend: &'a B,
        model: &'a mut M,
        train: Option<DeviceData<B>>,
        validation: Option<&Dataset>,
    ) -> Result<Self> {
        let net = model.network();
        trainer.check_class_weight_count("Trainer::fit", net.outputs())?;
        let class_weights = trainer.upload_class_weights(backend)?;
        let tensors: Vec<(String, usize)> = net
            .parameter_specs()
            .iter()
            .map(|p| (p.name.clone(), p.torch_shape.len()))
            .collect();
        let offsets = net.params.offsets();
        let mut groups = ParamGroup::resolve(
            &trainer.param_groups,
            &tensors,
            &offsets,
            net.params.storage_len(),
        )?;
        // The buffers (a batch norm's running statistics) are no group's to train: they form
        // a frozen group of their own, whatever pattern picked them.
        if let Some(buffers) = net.buffer_group() {
            for (i, group) in groups.iter_mut().enumerate() {
                group.ranges.retain(|r| !buffers.ranges.contains(r));
                if group.ranges.is_empty() {
                    return Err(Error::Data {
                        op: "param groups",
                        detail: format!(
                            "group {i} picks only buffers, which no optimizer trains (a batch \
                             norm's running statistics)"
                        ),
                    });
                }
            }
            groups.push(buffers);
        }
        // A tensor is frozen where the resolved groups put its start in a frozen range.
        let frozen: Vec<bool> = offsets
            .iter()
            .map(|at| {
                (groups.iter().filter(|g| g.settings.frozen))
                    .any(|g| g.ranges.iter().any(|r| r.contains(at)))
            })
            .collect();
        let optimizer = backend.optimizer(
            trainer.optimizer,
            &net.params,
            trainer.schedule.clone(),
            trainer.clip,
            trainer.monitor,
            groups,
        )?;
        let validation = match validation {
            Some(v) => {
                let all: Vec<u32> = (0..v.len() as u32).collect();
                Some((
                    DeviceData::upload(backend, v)?,
                    backend.upload_indices(&all)?,
                ))
            }
            None => None,
        };
        let shapes: Vec<(usize, usize)> = net
            .params
            .tensors()
            .iter()
            .map(crate::backend::Matrix::shape)
            .collect();
        let mut last_good = backend.arena("last good parameters", &shapes)?;
        backend.copy_arena(&net.params, &mut last_good)?;
        // Only steps over several batches need a running sum of their gradients.
        let grad_sum = match trainer.accumulate > 1 {
            true => Some(backend.arena("summed gradients", &shapes)?),
            false => None,
        };
        let averaging = match (trainer.ema, trainer.swa) {
            (Some(decay), _) => Some(Averaging::Exponential { decay }),
            (None, Some(_)) => Some(Averaging::Equal),
            (None, None) => None,
        };
        let average = averaging
            .map(|averaging| Average::new(backend, averaging, &net.params, &shapes))
            .transpose()?;
        // Only runs of epochs restore (a session of the application's batches has none).
        // It holds the initial parameters until an epoch is kept (none is restored before):
        // that first copy also builds the arena's bind group, which every later copy to or from
        // it reuses, so keeping and restoring in a steady run create nothing.
        let kept = match trainer.restore_best && train.is_some() {
            true => {
                let mut kept = backend.arena("best epoch's parameters", &shapes)?;
                backend.copy_arena(&net.params, &mut kept)?;
                Some(kept)
            }
            false => None,
        };
        // Only runs of epochs have an epoch's loss to watch.
        let lr_plateau = trainer
            .lr_plateau
            .filter(|_| train.is_some())
            .map(|rule| rule.start(trainer.optimizer.lr()));
        let progress = (trainer.progress && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(trainer.epochs as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} epoch {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Ok(Self {
            trainer,
            backend,
            train,
            validation,
            optimizer,
            totals: backend.zeros(1, slot::LEN)?,
            workspaces: Vec::new(),
            order: None,
            spare_order: None,
            position: 0,
            epoch: 0,
            step: 0,
            last_rows: 0,
            last_good,
            memory: super::stopping::Memory {
                lr_plateau,
                ..Default::default()
            },
            kept,
            history: History::default(),
            progress,
            frozen,
            grad_sum,
            average,
            pending: Pending::default(),
            class_weights,
            model,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &M {
        self.model
    }

    /// The model, writable (to set parameters between steps).
    pub fn model_mut(&mut self) -> &mut M {
        self.model
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The measurements so far (after [`Session::load_checkpoint`], the saved run's epochs
    /// first; its logged steps are not kept).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The measurements, ending the session.
    pub fn into_history(self) -> History {
        if let Some(bar) = &self.progress {
            bar.finish();
        }
        self.history
    }

    /// The optimizer's state (PyTorch's names).
    ///
    /// Each buffer holds one value per model parameter, in [`Sequential::parameters_flat`](crate::nn::Sequential::parameters_flat)'s order,
    /// on every backend (the GPU arena's alignment gaps are left out).
    pub fn optimizer_state(&self) -> Result<crate::optim::OptimizerState> {
        let mut state = self.optimizer.state()?;
        let params = &self.model.network().params;
        let ranges: Vec<(usize, usize)> = params
            .offsets()
            .into_iter()
            .zip(params.tensors())
            .map(|(start, t)| {
                let (rows, cols) = crate::backend::Matrix::shape(t);
                (start, rows * cols)
            })
            .collect();
        for (_, values) in &mut state.buffers {
            *values = ranges
                .iter()
                .flat_map(|&(start, len)| values[start..start + len].iter().copied())
                .collect();
        }
        Ok(state)
    }

    pub(super) fn batch_rows(&self) -> usize {
        self.trainer
            .batch_size
            .unwrap_or(self.train.as_ref().map_or(0, |t| t.len))
    }

    /// The learning rate of step `step` (1-based).
    pub(super) fn lr_of(&self, step: u64) -> f64 {
        self.optimizer.lr_at(step)
    }

    /// The sample order of the current epoch. A shuffled epoch draws from its own generator,
    /// seeded by (seed, epoch), so a resumed run shuffles exactly as an unbroken one.
    pub(super) fn epoch_order(&mut self) -> Result<B::Indices> {
        let seed = self
            .trainer
            .seed
            .wrapping_add((self.epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let len = self.train_len("Session::step")?;
        let order: Vec<u32> = match self.trainer.batch_order {
            BatchOrder::Shuffled => shuffled(len, &mut seeded(seed))
                .into_iter()
                .map(|i| i as u32)
                .collect(),
            BatchOrder::InOrder => (0..len as u32).collect(),
        };
        match self.spare_order.take() {
            Some(mut spare) => {
                self.backend.write_indices(&mut spare, &order)?;
                Ok(spare)
            }
            None => self.backend.upload_indices(&order),
        }
    }

    /// Closes the current epoch's order, keeping its memory for the next.
    pub(super) fn end_epoch_order(&mut self) {
        if let Some(order) = self.order.take() {
            self.spare_order = Some(order);
        }
    }

    /// Whether the current epoch has used every sample.
    pub(super) fn epoch_done(&self) -> bool {
        self.order.is_some() && self.position >= self.epoch_len()
    }

    /// The samples an epoch trains on: all of them, or with `Trainer::drop_last` those of
    /// its whole batches.
    pub(super) fn epoch_len(&self) -> usize {
        let len = self.train.as_ref().map_or(0, |t| t.len);
        match (self.trainer.drop_last, self.trainer.batch_size) {
            (true, Some(b)) if b > 0 && len >= b => len - len % b,
            _ => len,
        }
    }

    /// The number of training samples, or an error naming `op` for a session built without
    /// data ([`Session::for_batches`]).
    pub(super) fn train_len(&self, op: &'static str) -> Result<usize> {
        match &self.train {
            Some(train) => Ok(train.len),
            None => Err(Error::Data {
                op,
                detail: "this session was built without training data (Session::for_batches): \
                         give it batches with step_on_batch or step_on"
                    .into(),
            }),
        }
    }
}

impl Trainer {
    /// The class weights as a `1 × classes` matrix on `backend`, if any.
    pub(crate) fn upload_class_weights<B: Backend>(
        &self,
        backend: &B,
    ) -> Result<Option<B::Matrix>> {
        (self.class_weights.as_deref())
            .map(|weights| upload_class_weights(backend, "Trainer::class_weights", weights))
            .transpose()
    }
}

/// `weights` as a `1 × classes` matrix on `backend` (`op` names their setting in an error).
pub(crate) fn upload_class_weights<B: Backend>(
    backend: &B,
    op: &'static str,
    weights: &[f32],
) -> Result<B::Matrix> {
    let row = ndarray::ArrayView2::from_shape((1, weights.len()), weights).map_err(|e| {
        crate::Error::Data {
            op,
            detail: e.to_string(),
        }
    })?;
    backend.upload(row)
}
