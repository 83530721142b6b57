//! `OptimizerCore`: what both backends' optimizers share (the validated configuration,
//! schedule, clipping and step count). The update's branches and state slots are in
//! `rule.rs`, the per-step scalars it computes in `scalars.rs`.

use super::rule::{SlotNames, UpdateRule, initial_state_values};
use super::segments::{ArenaGroup, Segment, segments};
use super::{Clip, LrSchedule, OptimizerConfig, OptimizerState};
use crate::error::{Error, Result};

/// What both backends share: the validated configuration, schedule, clipping, step count, and
/// the host math of each step.
#[derive(Clone, Debug)]
pub(crate) struct OptimizerCore {
    pub config: OptimizerConfig,
    pub schedule: LrSchedule,
    pub clip: Clip,
    pub monitor: bool,
    /// Updates taken so far; update `t` (from 1) uses `schedule.lr_at(t − 1)`.
    pub step: u64,
    pub len: usize,
    /// NAdam: Π μ_s over the updates so far, in f32 as PyTorch keeps its `mu_product` (1 for
    /// the others).
    pub mu_product: f32,
    /// The parameter groups (`ArenaGroup`s), none by default.
    pub groups: Vec<ArenaGroup>,
    /// The arena in runs of one group's settings (one segment of group 0 without groups).
    pub segments: Vec<Segment>,
}

impl OptimizerCore {
    pub fn new(config: OptimizerConfig, len: usize) -> Result<Self> {
        config.validate()?;
        if len == 0 {
            return Err(Error::EmptyBuffer {
                op: "create optimizer",
                label: "parameters".into(),
            });
        }
        Ok(Self {
            config,
            schedule: LrSchedule::constant(),
            clip: Clip::default(),
            monitor: false,
            step: 0,
            len,
            mu_product: 1.0,
            groups: Vec::new(),
            segments: vec![Segment {
                range: 0..len,
                group: 0,
            }],
        })
    }

    pub fn set_schedule(&mut self, schedule: LrSchedule) -> Result<()> {
        schedule.check_for(&self.config)?;
        self.schedule = schedule;
        Ok(())
    }

    /// Replaces the base learning rate, keeping everything else; an invalid rate changes
    /// nothing.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        let config = self.config.with_lr(lr);
        config.validate()?;
        for group in &self.groups {
            group.settings.apply(&config)?;
        }
        self.config = config;
        Ok(())
    }

    /// Trains the arena's `groups` with their own settings from the next update on; the rest
    /// keeps the optimizer's. On error (a bad setting, a range outside the arena or in two
    /// groups) nothing changes.
    pub fn set_groups(&mut self, groups: Vec<ArenaGroup>) -> Result<()> {
        let trained = groups.iter().filter(|g| !g.settings.frozen).count();
        if matches!(self.config, OptimizerConfig::Rprop(_)) && trained > 0 {
            return Err(Error::InvalidHyperparameter {
                optimizer: "Rprop",
                name: "param groups (not frozen)".into(),
                value: trained as f64,
                rule: "Rprop takes no parameter groups but frozen ones: its learning rate is \
                       only the step sizes' starting value and it has no weight decay"
                    .into(),
            });
        }
        for group in &groups {
            let grouped = group.settings.apply(&self.config)?;
            self.check_group_optimizer(group, &grouped)?;
        }
        let segments = segments(self.len, &groups)?;
        let trains = |group: usize| group == 0 || !groups[group - 1].settings.frozen;
        if !segments.iter().any(|s| trains(s.group)) {
            return Err(Error::Data {
                op: "param groups",
                detail: format!(
                    "every one of the {} parameters is in a frozen group: nothing is left to \
                     train (PyTorch refuses an optimizer with no parameters too)",
                    self.len
                ),
            });
        }
        self.segments = segments;
        self.groups = groups;
        Ok(())
    }

    /// Checks a group's own optimizer settings (`GroupSettings::optimizer`), `grouped` being
    /// the configuration its parameters get: the optimizer's rate (the group's is set by
    /// `lr_scale`), and the same state buffers starting at the same values, since a group
    /// shares the optimizer's state arenas.
    fn check_group_optimizer(&self, group: &ArenaGroup, grouped: &OptimizerConfig) -> Result<()> {
        let Some(own) = group.settings.optimizer else {
            return Ok(());
        };
        let name = self.config.name();
        let bad = |setting: &str, value: f64, rule: String| {
            Err(Error::InvalidHyperparameter {
                optimizer: name,
                name: format!("param group optimizer {setting}"),
                value,
                rule,
            })
        };
        if own.lr() != self.config.lr() {
            return bad(
                "lr",
                own.lr(),
                format!(
                    "must be the optimizer's ({}): a group's rate is the optimizer's times its \
                     lr_scale, so schedules and the plateau rule move every group alike",
                    self.config.lr()
                ),
            );
        }
        // NAdam keeps one running product of μ_t, a function of β1 and momentum_decay.
        if let (OptimizerConfig::NAdam(base), OptimizerConfig::NAdam(own)) = (self.config, own)
            && (own.betas.0, own.momentum_decay) != (base.betas.0, base.momentum_decay)
        {
            return bad(
                "beta1 and momentum_decay",
                own.betas.0,
                format!(
                    "must be the optimizer's ({} and {}): NAdam keeps one running product \
                     of its momentum coefficients, which they set",
                    base.betas.0, base.momentum_decay
                ),
            );
        }
        let (slots, own_slots) = (
            self.slot_names(),
            UpdateRule::new(grouped, &self.clip).slot_names(),
        );
        let starts = initial_state_values(grouped);
        if slots != own_slots || starts != self.initial_state_values() {
            let state = |names: SlotNames| names.iter().flatten().copied().collect::<Vec<_>>();
            return bad(
                "state",
                f64::from(starts[0]),
                format!(
                    "must keep the optimizer's state buffers {:?} starting at {:?}, not {:?} \
                     starting at {starts:?} (momentum on or off, amsgrad, centered and an \
                     initial accumulator are the optimizer's for every group)",
                    state(slots),
                    self.initial_state_values(),
                    state(own_slots),
                ),
            );
        }
        Ok(())
    }

    /// Whether group `group` (0: the optimizer's own; `i + 1`: `groups[i]`) is updated: every
    /// group but a frozen one.
    pub fn trains(&self, group: usize) -> bool {
        group
            .checked_sub(1)
            .and_then(|i| self.groups.get(i))
            .is_none_or(|g| !g.settings.frozen)
    }

    /// The segments the update runs over: every one but the frozen groups'.
    pub fn trained_segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|s| self.trains(s.group))
    }

    /// The configuration of group `group` (0: the optimizer's own; `i + 1`: `groups[i]`).
    pub fn group_config(&self, group: usize) -> Result<OptimizerConfig> {
        match group.checked_sub(1).map(|i| self.groups.get(i)) {
            None => Ok(self.config),
            Some(Some(g)) => g.settings.apply(&self.config),
            Some(None) => Err(Error::Data {
                op: "param groups",
                detail: format!("group {group} of {} does not exist", self.groups.len()),
            }),
        }
    }

    /// Update `step`'s rule and scalars for each group, the optimizer's own first; `None` for
    /// a frozen group, which no update touches.
    pub fn group_steps(&self, step: u64) -> Result<Vec<Option<(UpdateRule, super::StepScalars)>>> {
        (0..=self.groups.len())
            .map(|group| {
                if !self.trains(group) {
                    return Ok(None);
                }
                let config = self.group_config(group)?;
                Ok(Some((
                    UpdateRule::new(&config, &self.clip),
                    self.scalars_with(&config, step),
                )))
            })
            .collect()
    }

    pub fn set_clip(&mut self, clip: Clip) -> Result<()> {
        clip.validate()?;
        self.clip = clip;
        Ok(())
    }

    /// The learning rate update `step` (1-based, as PyTorch counts) will use.
    pub fn lr_for_update(&self, step: u64) -> f64 {
        self.schedule
            .lr_at(self.config.lr(), step.saturating_sub(1))
    }

    pub fn rule(&self) -> UpdateRule {
        UpdateRule::new(&self.config, &self.clip)
    }

    /// Names of the state buffers in slots 0, 1, 2 (PyTorch's state keys).
    pub fn slot_names(&self) -> SlotNames {
        self.rule().slot_names()
    }

    /// The value each state slot starts at.
    pub fn initial_state_values(&self) -> [f32; 3] {
        initial_state_values(&self.config)
    }

    /// Records update `step` as taken.
    pub fn finish_step(&mut self, step: u64) {
        self.mu_product = self.mu_product_through(step);
        self.step = step;
    }

    /// Continues from a saved state's step count.
    pub fn restore_step(&mut self, step: u64) {
        self.step = 0;
        self.mu_product = 1.0;
        self.finish_step(step);
    }

    /// Checks that a step's parameter and gradient arenas have the optimizer's length.
    pub fn check_lengths(&self, params: usize, grads: usize) -> Result<()> {
        if params != self.len {
            return Err(Error::Length {
                op: "optimizer step (parameters)",
                expected: self.len,
                actual: params,
            });
        }
        if grads != self.len {
            return Err(Error::Length {
                op: "optimizer step (gradients)",
                expected: self.len,
                actual: grads,
            });
        }
        Ok(())
    }

    /// The number of the next update (1-based), or an error when the count would wrap or the
    /// schedule has ended.
    pub fn next_step(&self) -> Result<u64> {
        let next = self.step.checked_add(1).ok_or_else(|| Error::State {
            optimizer: self.config.name(),
            detail: format!("step count {} has no next step", self.step),
        })?;
        match self.schedule.last_update() {
            Some(last) if next > last => Err(Error::State {
                optimizer: self.config.name(),
                detail: format!(
                    "update {next} is past the schedule's last ({last}): a one-cycle schedule \
                     has a rate for its total_steps updates only"
                ),
            }),
            _ => Ok(next),
        }
    }

    /// Checks a saved state against this optimizer; returns the buffers in slot order.
    pub fn check_state(&self, state: &OptimizerState) -> Result<[Option<Vec<f32>>; 3]> {
        let optimizer = self.config.name();
        let fail = |detail: String| Err(Error::State { optimizer, detail });
        if state.optimizer != optimizer {
            return fail(format!("the state was saved by {}", state.optimizer));
        }
        if state.step == u64::MAX {
            return fail(format!(
                "step count {} has no next step (the bias corrections would wrap to step 0)",
                state.step
            ));
        }
        if let Some((name, i, v)) = state.buffers.iter().find_map(|(name, values)| {
            values
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| (name, i, values[i]))
        }) {
            return fail(format!("buffer {name}[{i}] is {v}: state must be finite"));
        }
        let names = self.slot_names();
        let expected: Vec<&str> = names.iter().flatten().copied().collect();
        let given: Vec<&str> = state.buffers.iter().map(|(n, _)| n.as_str()).collect();
        if expected != given {
            return fail(format!("expected buffers {expected:?}, got {given:?}"));
        }
        let mut slots: [Option<Vec<f32>>; 3] = Default::default();
        let mut given = state.buffers.iter();
        for (slot, name) in slots.iter_mut().zip(names) {
            if name.is_some()
                && let Some((name, values)) = given.next()
            {
                if values.len() != self.len {
                    return fail(format!(
                        "buffer {name} has {} values, the arena has {}",
                        values.len(),
                        self.len
                    ));
                }
                *slot = Some(values.clone());
            }
        }
        Ok(slots)
    }
}
