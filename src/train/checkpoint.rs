//! Training checkpoints in safetensors: parameters under PyTorch's `state_dict` names, the
//! optimizer's state, the position in training, and the settings as metadata, so a resumed
//! run continues the same trajectory or is refused by name. Saves are atomic.

use std::collections::HashMap;
use std::path::Path;

use super::Session;
use super::checkpoint_settings::{difference, saved_setting, settings, unchanged};
use super::session::slot;
use super::stopping::Memory;
use crate::backend::{Arena, Backend};
use crate::error::{Error, Result};
use crate::nn::{Model, ParamSpec};
use crate::nn::{parameter_tensors, parameter_values, prefixed_tensors, prefixed_values};
use crate::optim::{LrSchedule, Optimizer, OptimizerState};
use crate::tensor_file::{File, Tensor, corrupt, decode, encode, read, write_atomic};

/// The `format` metadata value of a full training checkpoint.
pub(crate) const FORMAT: &str = "steepest.checkpoint.v1";

/// The prefix of the tensors that hold the parameters `Trainer::restore_best` keeps.
const KEPT: &str = "restore_best.";

/// The optimizer state split per tensor: `optimizer.{buffer}.{tensor}`, each with its
/// parameter's shape (the gaps of an aligned arena are left out).
pub(crate) fn optimizer_tensors<A: Arena>(
    state: &OptimizerState,
    params: &A,
    specs: &[ParamSpec],
) -> Vec<Tensor> {
    let offsets = params.offsets();
    let mut out = Vec::new();
    for (buffer, values) in &state.buffers {
        for (p, start) in specs.iter().zip(&offsets) {
            let len = p.rows * p.cols;
            out.push((
                format!("optimizer.{buffer}.{}", p.name),
                p.torch_shape.clone(),
                values[*start..*start + len].to_vec(),
            ));
        }
    }
    out
}

/// Rebuilds an optimizer state from a file, with the buffers `like` has and its arena layout.
pub(crate) fn optimizer_state<A: Arena>(
    file: &File,
    path: &Path,
    like: &OptimizerState,
    params: &A,
    specs: &[ParamSpec],
    step: u64,
) -> Result<OptimizerState> {
    // Every optimizer tensor in the file must be one this optimizer uses.
    if let Some((extra, _, _)) = file.tensors.iter().find(|(name, _, _)| {
        name.strip_prefix("optimizer.").is_some_and(|rest| {
            !like
                .buffers
                .iter()
                .any(|(buffer, _)| rest.starts_with(&format!("{buffer}.")))
        })
    }) {
        return Err(corrupt(
            path,
            format!(
                "tensor {extra} is optimizer state this {} does not keep (it keeps {:?})",
                like.optimizer,
                like.buffers.iter().map(|(b, _)| b).collect::<Vec<_>>()
            ),
        ));
    }
    let offsets = params.offsets();
    let mut buffers = Vec::new();
    for (buffer, _) in &like.buffers {
        let mut values = vec![0.0f32; params.storage_len()];
        for (p, start) in specs.iter().zip(&offsets) {
            let found = file.take(
                path,
                &format!("optimizer.{buffer}.{}", p.name),
                &p.torch_shape,
            )?;
            values[*start..*start + found.len()].copy_from_slice(found);
        }
        buffers.push((buffer.clone(), values));
    }
    Ok(OptimizerState {
        optimizer: like.optimizer.clone(),
        step,
        buffers,
    })
}

impl<B: Backend, M: Model<B>> Session<'_, B, M> {
    /// Saves everything a resumed run needs to continue the same trajectory: parameters,
    /// optimizer state, the base learning rate ([`Session::set_lr`]), the position in the
    /// epoch, the running sums, what the stopping rules remember (the best watched value so
    /// far and its epoch, the first loss; with `Trainer::restore_best`, the kept parameters
    /// and their value; with `Trainer::reduce_lr_on_plateau`, its state), the history (the
    /// epochs and the logged steps), and the configuration as metadata. Atomic: a crash mid-save
    /// leaves the previous file intact. Reads back (waits).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.check_no_pending("save checkpoint")?;
        let backend = self.backend;
        let net = self.model.network();
        let state = self.optimizer.state()?;
        let mut tensors = parameter_tensors(net, backend)?;
        tensors.extend(optimizer_tensors(
            &state,
            &net.params,
            net.parameter_specs(),
        ));
        if let Some(kept) = &self.kept {
            let values = backend.read_arena(kept)?;
            tensors.extend(prefixed_tensors(KEPT, &values, net.parameter_specs()));
        }
        // The average (`Trainer::ema`, `Trainer::swa`) under its kind's names, with its count.
        let mut average_count = None;
        if let Some(average) = &self.average {
            let (prefix, count_key) = average.averaging.checkpoint_names();
            let values = backend.read_arena(&average.params)?;
            tensors.extend(prefixed_tensors(prefix, &values, net.parameter_specs()));
            average_count = Some((count_key.to_string(), average.count.to_string()));
        }
        let totals = backend.download(&self.totals)?;
        tensors.push((
            "trainer.totals".into(),
            vec![slot::LEN],
            totals.iter().copied().collect(),
        ));
        let in_epoch = self.order.is_some() && !self.epoch_done();
        let metadata: HashMap<String, String> = [
            ("format".into(), FORMAT.to_string()),
            ("architecture".into(), self.model.architecture()),
            ("optimizer".into(), self.trainer.optimizer.name().into()),
            ("loss".into(), self.trainer.loss.name().into()),
            ("step".into(), self.step.to_string()),
            ("optimizer_step".into(), state.step.to_string()),
            ("epoch".into(), self.epoch.to_string()),
            ("lr".into(), format!("{:?}", self.optimizer.base_lr())),
            (
                "position".into(),
                if in_epoch { self.position } else { 0 }.to_string(),
            ),
            ("in_epoch".into(), u8::from(in_epoch).to_string()),
            (
                "samples".into(),
                self.train_len("save_checkpoint")?.to_string(),
            ),
            ("trainer".into(), format!("{:?}", self.trainer)),
        ]
        .into_iter()
        .chain(average_count)
        .chain(settings(self.trainer))
        .chain(self.memory.metadata())
        .chain([
            ("history.epochs".to_string(), self.history.to_csv()),
            ("history.steps".to_string(), self.history.steps_to_csv()),
        ])
        .collect();
        let bytes = encode(path, &tensors, metadata)?;
        write_atomic("save checkpoint", path, &bytes)
    }

    /// Continues from a checkpoint saved by [`Session::save_checkpoint`] for the same model
    /// shape, optimizer, loss, training data and training settings (seed, batch size and
    /// gradient accumulation, every
    /// optimizer option, schedule, clipping, `restore_best`, `reduce_lr_on_plateau`, what the
    /// rules watch): the steps that follow are the ones the saved run would have taken, and
    /// its stopping rules fire, its learning rate falls and `restore_best` restores at the
    /// same epochs as they would have. A setting that differs is an error naming it (see
    /// [`Session::load_checkpoint_overriding_settings`]). On any error the session is
    /// unchanged.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load(path.as_ref(), false)
    }

    /// [`Session::load_checkpoint`], continuing with this run's training settings where they
    /// differ from the saved ones (a new learning rate or batch size for the rest of a run,
    /// say). The model shape, optimizer kind, loss and data must still match. A
    /// `reduce_lr_on_plateau` rule continues from the saved rate and counts only when neither
    /// it, the optimizer's settings nor what the rules watch changed; otherwise it starts
    /// afresh from this run's rate. Watching something else, the rules also forget the best
    /// values they saw.
    pub fn load_checkpoint_overriding_settings(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.load(path.as_ref(), true)
    }

    fn load(&mut self, path: &Path, override_settings: bool) -> Result<()> {
        let file = decode(path, &read("load checkpoint", path)?)?;
        let bad = |detail: String| Error::Checkpoint {
            path: path.display().to_string(),
            detail,
        };
        let samples = self.train_len("load_checkpoint")?;
        let expect = |key: &str, want: &str| -> Result<()> {
            let found = file.meta(path, key)?;
            if found != want {
                return Err(bad(format!(
                    "saved with {key} {found:?}, this run has {want:?}"
                )));
            }
            Ok(())
        };
        expect("format", FORMAT)?;
        expect("architecture", &self.model.architecture())?;
        expect("optimizer", self.trainer.optimizer.name())?;
        expect("loss", self.trainer.loss.name())?;
        expect("samples", &samples.to_string())?;
        if !override_settings {
            for (key, want) in settings(self.trainer) {
                let found = saved_setting(&file, &key);
                let Some(found) = found else {
                    return Err(bad(format!(
                        "saved without its {key} setting, so a resumed run cannot be checked \
                         to continue the same trajectory; load it with \
                         load_checkpoint_overriding_settings to use this run's"
                    )));
                };
                if found != want {
                    let (saved, now) = difference(&found, &want);
                    return Err(bad(format!(
                        "saved with {key} {saved}, this run has {now}; load it with \
                         load_checkpoint_overriding_settings to continue with this run's"
                    )));
                }
            }
        }
        let step = file.meta_u64(path, "step")?;
        let epoch = file.meta_u64(path, "epoch")? as usize;
        let position = file.meta_u64(path, "position")? as usize;
        let in_epoch = file.meta_u64(path, "in_epoch")? == 1;
        if position > samples || (in_epoch && epoch == 0) {
            return Err(bad(format!(
                "position {position} of epoch {epoch} does not exist"
            )));
        }
        let net = self.model.network();
        let params = parameter_values(&file, path, net.parameter_specs())?;
        let like = self.optimizer.state()?;
        let state = optimizer_state(
            &file,
            path,
            &like,
            &net.params,
            net.parameter_specs(),
            file.meta_u64(path, "optimizer_step")?,
        )?;
        let mut memory = Memory::from_metadata(&file, path)?;
        // Best values of another watched quantity (settings overridden) mean nothing here.
        if !unchanged(&file, self.trainer, &["watched"]) {
            (memory.best, memory.kept_best) = (None, None);
        }
        // Files from before the history (or its logged steps) was saved resume without it.
        let epochs = match file.metadata.get("history.epochs") {
            None => Vec::new(),
            Some(text) => super::History::epochs_from_csv(text).ok_or_else(|| {
                bad("metadata \"history.epochs\" is not a history steepest wrote".into())
            })?,
        };
        let steps = match file.metadata.get("history.steps") {
            None => Vec::new(),
            Some(text) => super::History::steps_from_csv(text).ok_or_else(|| {
                bad("metadata \"history.steps\" is not a history steepest wrote".into())
            })?,
        };
        // The kept parameters come with their watched value; a run without restore_best forgets
        // both, and one that turns it on (settings overridden) starts keeping from here.
        let kept = match (&self.kept, memory.kept_best) {
            (Some(_), Some(_)) => Some(prefixed_values(&file, path, KEPT, net.parameter_specs())?),
            _ => None,
        };
        if self.kept.is_none() {
            memory.kept_best = None;
        }
        // The average continues from the file's average of its kind; a run that turns it on
        // (settings overridden) starts averaging afresh from the parameters loaded.
        let average = match &self.average {
            Some(average) => {
                let (prefix, count_key) = average.averaging.checkpoint_names();
                match file.metadata.contains_key(count_key) {
                    true => Some((
                        prefixed_values(&file, path, prefix, net.parameter_specs())?,
                        file.meta_u64(path, count_key)?,
                    )),
                    false => None,
                }
            }
            None => None,
        };
        // Once SWA has averaged an epoch its rate governs and the schedule no longer steps
        // (the saved base rate is the SWA rate); before, the trainer's schedule applies.
        let swa_started =
            self.trainer.swa.is_some() && average.as_ref().is_some_and(|(_, n)| *n > 0);
        let schedule = match swa_started {
            true => LrSchedule::constant(),
            false => self.trainer.schedule.clone(),
        };
        // The learning-rate rule continues from its saved state when neither it, the
        // optimizer's settings nor what it watches changed (always so in a strict resume);
        // otherwise it starts afresh from this run's rate, and a run without it trains at its
        // own rate.
        let rule_unchanged = unchanged(
            &file,
            self.trainer,
            &["optimizer_settings", "lr_on_plateau", "watched"],
        );
        // The rate the saved run trained at last (`Session::set_lr`, the rule), unless the
        // optimizer's settings are overridden; older files: the trainer's.
        let saved_lr = super::stopping::number(
            &file,
            path,
            "lr",
            |v| v.is_finite() && v >= 0.0,
            "a learning rate",
        )?;
        let base = match saved_lr {
            Some(lr) if unchanged(&file, self.trainer, &["optimizer_settings"]) => lr,
            _ => self.trainer.optimizer.lr(),
        };
        memory.lr_plateau = match (self.memory.lr_plateau, memory.lr_plateau) {
            (Some(_), Some(saved)) if rule_unchanged => Some(saved),
            (Some(_), _) => self.trainer.lr_plateau.map(|rule| rule.start(base)),
            (None, _) => None,
        };
        let lr = memory.lr_plateau.map_or(base, |state| state.lr);
        self.trainer.optimizer.with_lr(lr).validate()?;
        let totals = file.take(path, "trainer.totals", &[slot::LEN])?;
        let totals = ndarray::Array2::from_shape_vec((1, slot::LEN), totals.to_vec())
            .map_err(|e| bad(e.to_string()))?;
        // Everything is checked; now apply (the optimizer first: it validates its own state).
        self.optimizer.load_state(&state)?;
        self.optimizer.set_schedule(schedule)?;
        self.optimizer.set_lr(lr)?;
        if let (Some(arena), Some(values)) = (&mut self.kept, &kept) {
            self.backend.write_arena(arena, values)?;
        }
        let net = self.model.network_mut();
        net.set_parameters_flat(self.backend, &params)?;
        if let Some(arena) = &mut self.average {
            match &average {
                Some((values, count)) => {
                    self.backend.write_arena(&mut arena.params, values)?;
                    arena.count = *count;
                }
                None => {
                    self.backend.copy_arena(&net.params, &mut arena.params)?;
                    arena.count = 0;
                }
            }
        }
        self.totals = self.backend.upload(totals.view())?;
        self.backend
            .copy_arena(&self.model.network().params, &mut self.last_good)?;
        self.step = step;
        self.epoch = epoch;
        self.position = position;
        self.memory = memory;
        self.history = super::History {
            epochs,
            steps,
            ..Default::default()
        };
        self.end_epoch_order();
        if in_epoch {
            self.order = Some(self.epoch_order()?);
        }
        Ok(())
    }
}
