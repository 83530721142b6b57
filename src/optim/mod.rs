//! Optimizers with PyTorch's exact update rules, learning-rate schedules and gradient clipping.
//!
//! Configurations ([`Sgd`], [`RmsProp`], [`Adagrad`], [`Adadelta`], [`Adam`], [`AdamW`],
//! [`Adamax`], [`NAdam`], [`RAdam`]) are backend-agnostic;
//! the state (momentum buffers, moments, …) lives in the backend, in arenas with the parameters'
//! layout: [`CpuOptimizer`](crate::CpuOptimizer) on host slices,
//! [`GpuOptimizer`](crate::GpuOptimizer) on GPU buffers (one dispatch per step for the whole
//! arena). Both get their per-step scalars (learning rate after the schedule, bias corrections)
//! from one shared core (`OptimizerCore`), so the host math exists once.

mod common;
mod config;
mod one_cycle;
mod optimizer;
mod plateau;
mod schedule;

pub(crate) use common::common_optimizer_methods;
pub use config::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, NAdam, OptimizerConfig, RAdam, RmsProp, Sgd,
};
pub use one_cycle::{Anneal, OneCycle};
pub use optimizer::Optimizer;
pub use plateau::{Mode, PlateauState, ReduceLrOnPlateau, Threshold};
pub use schedule::{Decay, LrSchedule};

use crate::error::{Error, Result};

/// Gradient clipping applied to the raw gradient as the optimizer reads it (the gradient
/// buffer itself is left untouched).
///
/// With both set, the norm is measured on the raw gradient, the gradient is scaled by
/// `min(1, max_norm / (‖g‖ + 1e-6))` (as `torch.nn.utils.clip_grad_norm_`), then clamped to
/// `[−max_value, max_value]` (as `clip_grad_value_`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clip {
    /// Clip by global L2 norm over the whole arena.
    pub max_norm: Option<f32>,
    /// Clip each element to `[−max_value, max_value]`.
    pub max_value: Option<f32>,
}

impl Clip {
    fn validate(&self) -> Result<()> {
        for (name, value) in [("max_norm", self.max_norm), ("max_value", self.max_value)] {
            if let Some(v) = value.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(Error::InvalidHyperparameter {
                    optimizer: "Clip",
                    name: name.into(),
                    value: f64::from(v),
                    rule: "must be finite and > 0".into(),
                });
            }
        }
        Ok(())
    }
}

/// Norms measured during the last step, when monitoring is on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateStats {
    /// ‖g‖ of the raw gradient, before clipping (what `clip_grad_norm_` returns).
    pub grad_norm: f32,
    /// ‖θ‖ before the update.
    pub param_norm: f32,
    /// ‖Δθ‖ of the update.
    pub update_norm: f32,
}

impl UpdateStats {
    /// ‖Δθ‖/‖θ‖ (0 when θ is all zeros and did not move, ∞ when only θ is zero).
    pub fn update_ratio(&self) -> f32 {
        if self.update_norm == 0.0 {
            0.0
        } else {
            self.update_norm / self.param_norm
        }
    }
}

/// An optimizer's state, as read out by `state()` and restored by `load_state()`.
///
/// Buffer names are PyTorch's state keys (`exp_avg`, `momentum_buffer`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// The optimizer, as [`OptimizerConfig::name`].
    pub optimizer: String,
    /// Updates taken so far.
    pub step: u64,
    /// Each state buffer by name, with the arena's length.
    pub buffers: Vec<(String, Vec<f32>)>,
}

/// The update kernels (AdamW is Adam with decoupled decay; NAdam's and RAdam's decoupled
/// variants likewise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Algorithm {
    Sgd = 0,
    RmsProp = 1,
    Adam = 2,
    Adagrad = 3,
    Adadelta = 4,
    Adamax = 5,
    NAdam = 6,
    RAdam = 7,
}

/// The branches of an update, fixed when the optimizer is built (override constants on the GPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct UpdateRule {
    pub algorithm: Algorithm,
    pub maximize: bool,
    /// L2 term λθ added to the gradient.
    pub l2: bool,
    /// AdamW's θ ← θ(1 − γλ).
    pub decoupled: bool,
    pub momentum: bool,
    pub nesterov: bool,
    pub centered: bool,
    pub amsgrad: bool,
    pub clip_norm: bool,
    pub clip_value: bool,
}

/// Per-step scalars, computed on the host in f64 and rounded once to f32, as PyTorch passes
/// Python floats to its kernels. Field for field the `Step` immediate data of `shaders/optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct StepScalars {
    /// γ after the schedule.
    pub lr: f32,
    pub weight_decay: f32,
    /// SGD and RMSprop momentum μ.
    pub momentum: f32,
    /// SGD: 1 − τ.
    pub one_minus_dampening: f32,
    /// The Adam family: 1 − β1, the lerp weight of the first moment.
    pub one_minus_beta1: f32,
    /// The Adam family's β2; RMSprop's α; Adadelta's ρ.
    pub beta2: f32,
    /// 1 − β2, 1 − α or 1 − ρ.
    pub one_minus_beta2: f32,
    pub eps: f32,
    /// Adam, Adamax: γ / (1 − β1^t); Adagrad: γ / (1 + (t − 1)·lr_decay); NAdam: the
    /// gradient's coefficient γ(1 − μ_t) / (1 − Π_{s≤t} μ_s).
    pub step_size: f32,
    /// Adam, RAdam: √(1 − β2^t).
    pub bias_correction2_sqrt: f32,
    /// Decoupled weight decay (AdamW, and NAdam and RAdam with it): 1 − γλ.
    pub decay_factor: f32,
    /// 1 on the first update (SGD's momentum buffer starts as the gradient).
    pub first_step: u32,
    pub max_norm: f32,
    pub max_value: f32,
    /// RAdam: 1 − β1^t, which divides the first moment.
    pub bias_correction1: f32,
    /// NAdam: 1 − β2^t, which divides the second moment.
    pub bias_correction2: f32,
    /// NAdam: the first moment's coefficient γ·μ_{t+1} / (1 − Π_{s≤t+1} μ_s).
    pub momentum_step_size: f32,
    /// RAdam: the rectification r_t, or 0 while ρ_t ≤ 5 (an unrectified step).
    pub rectification: f32,
    pub _pad: [u32; 2],
}

/// State slot `i` of an update holds the buffer named `names[i]`, if any.
pub(crate) type SlotNames = [Option<&'static str>; 3];

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
        self.config = config;
        Ok(())
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
        let mut rule = UpdateRule {
            algorithm: Algorithm::Sgd,
            maximize: false,
            l2: false,
            decoupled: false,
            momentum: false,
            nesterov: false,
            centered: false,
            amsgrad: false,
            clip_norm: self.clip.max_norm.is_some(),
            clip_value: self.clip.max_value.is_some(),
        };
        match self.config {
            OptimizerConfig::Sgd(c) => {
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
                rule.momentum = c.momentum != 0.0;
                rule.nesterov = c.nesterov;
            }
            OptimizerConfig::RmsProp(c) => {
                rule.algorithm = Algorithm::RmsProp;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
                rule.momentum = c.momentum > 0.0;
                rule.centered = c.centered;
            }
            OptimizerConfig::Adam(c) => {
                rule.algorithm = Algorithm::Adam;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
                rule.amsgrad = c.amsgrad;
            }
            OptimizerConfig::AdamW(c) => {
                rule.algorithm = Algorithm::Adam;
                rule.maximize = c.maximize;
                rule.decoupled = true;
                rule.amsgrad = c.amsgrad;
            }
            OptimizerConfig::Adagrad(c) => {
                rule.algorithm = Algorithm::Adagrad;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
            }
            OptimizerConfig::Adadelta(c) => {
                rule.algorithm = Algorithm::Adadelta;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
            }
            OptimizerConfig::Adamax(c) => {
                rule.algorithm = Algorithm::Adamax;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
            }
            OptimizerConfig::NAdam(c) => {
                rule.algorithm = Algorithm::NAdam;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0 && !c.decoupled_weight_decay;
                rule.decoupled = c.weight_decay != 0.0 && c.decoupled_weight_decay;
            }
            OptimizerConfig::RAdam(c) => {
                rule.algorithm = Algorithm::RAdam;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0 && !c.decoupled_weight_decay;
                rule.decoupled = c.weight_decay != 0.0 && c.decoupled_weight_decay;
            }
        }
        rule
    }

    /// Names of the state buffers in slots 0, 1, 2 (PyTorch's state keys).
    pub fn slot_names(&self) -> SlotNames {
        let rule = self.rule();
        match rule.algorithm {
            Algorithm::Sgd => [rule.momentum.then_some("momentum_buffer"), None, None],
            Algorithm::RmsProp => [
                Some("square_avg"),
                rule.momentum.then_some("momentum_buffer"),
                rule.centered.then_some("grad_avg"),
            ],
            Algorithm::Adam => [
                Some("exp_avg"),
                Some("exp_avg_sq"),
                rule.amsgrad.then_some("max_exp_avg_sq"),
            ],
            Algorithm::Adagrad => [Some("sum"), None, None],
            Algorithm::Adadelta => [Some("square_avg"), Some("acc_delta"), None],
            Algorithm::Adamax => [Some("exp_avg"), Some("exp_inf"), None],
            Algorithm::NAdam | Algorithm::RAdam => [Some("exp_avg"), Some("exp_avg_sq"), None],
        }
    }

    /// The value each state buffer starts at.
    pub fn initial_state_value(&self) -> f32 {
        match self.config {
            OptimizerConfig::Adagrad(c) => c.initial_accumulator_value as f32,
            _ => 0.0,
        }
    }

    /// Scalars for update number `step` (1-based).
    pub fn scalars(&self, step: u64) -> StepScalars {
        let lr = self.lr_for_update(step);
        // A one-cycle schedule's momentum replaces the configured one (β1 for Adam).
        let cycled = self.schedule.momentum_at(step.saturating_sub(1));
        let t = step as f64;
        let mut s = StepScalars {
            lr: lr as f32,
            first_step: u32::from(step == 1),
            max_norm: self.clip.max_norm.unwrap_or(0.0),
            max_value: self.clip.max_value.unwrap_or(0.0),
            ..StepScalars::default()
        };
        match self.config {
            OptimizerConfig::Sgd(c) => {
                s.weight_decay = c.weight_decay as f32;
                s.momentum = cycled.unwrap_or(c.momentum) as f32;
                s.one_minus_dampening = (1.0 - c.dampening) as f32;
            }
            OptimizerConfig::RmsProp(c) => {
                s.weight_decay = c.weight_decay as f32;
                s.momentum = cycled.unwrap_or(c.momentum) as f32;
                s.beta2 = c.alpha as f32;
                s.one_minus_beta2 = (1.0 - c.alpha) as f32;
                s.eps = c.eps as f32;
            }
            OptimizerConfig::Adam(Adam {
                betas,
                eps,
                weight_decay,
                ..
            })
            | OptimizerConfig::AdamW(AdamW {
                betas,
                eps,
                weight_decay,
                ..
            }) => {
                let beta1 = cycled.unwrap_or(betas.0);
                s.weight_decay = weight_decay as f32;
                s.one_minus_beta1 = (1.0 - beta1) as f32;
                s.beta2 = betas.1 as f32;
                s.one_minus_beta2 = (1.0 - betas.1) as f32;
                s.eps = eps as f32;
                s.step_size = (lr / (1.0 - beta1.powf(t))) as f32;
                s.bias_correction2_sqrt = (1.0 - betas.1.powf(t)).sqrt() as f32;
                s.decay_factor = (1.0 - lr * weight_decay) as f32;
            }
            OptimizerConfig::Adagrad(c) => {
                s.weight_decay = c.weight_decay as f32;
                s.eps = c.eps as f32;
                s.step_size = (lr / (1.0 + (t - 1.0) * c.lr_decay)) as f32;
            }
            OptimizerConfig::Adadelta(c) => {
                s.weight_decay = c.weight_decay as f32;
                s.beta2 = c.rho as f32;
                s.one_minus_beta2 = (1.0 - c.rho) as f32;
                s.eps = c.eps as f32;
            }
            OptimizerConfig::Adamax(c) => {
                let beta1 = cycled.unwrap_or(c.betas.0);
                s.weight_decay = c.weight_decay as f32;
                s.one_minus_beta1 = (1.0 - beta1) as f32;
                s.beta2 = c.betas.1 as f32;
                s.eps = c.eps as f32;
                s.step_size = (lr / (1.0 - beta1.powf(t))) as f32;
            }
            OptimizerConfig::NAdam(c) => {
                let beta1 = cycled.unwrap_or(c.betas.0);
                let (mu, mu_next) = (nadam_mu(&c, beta1, t), nadam_mu(&c, beta1, t + 1.0));
                // PyTorch's own order: the f32 product, read back as a Python float, then the
                // next step's product in f64.
                let product = f64::from(self.mu_product_through(step));
                let product_next = product * mu_next;
                s.weight_decay = c.weight_decay as f32;
                s.one_minus_beta1 = (1.0 - beta1) as f32;
                s.beta2 = c.betas.1 as f32;
                s.one_minus_beta2 = (1.0 - c.betas.1) as f32;
                s.eps = c.eps as f32;
                s.bias_correction2 = (1.0 - c.betas.1.powf(t)) as f32;
                s.step_size = (lr * (1.0 - mu) / (1.0 - product)) as f32;
                s.momentum_step_size = (lr * mu_next / (1.0 - product_next)) as f32;
                s.decay_factor = (1.0 - lr * c.weight_decay) as f32;
            }
            OptimizerConfig::RAdam(c) => {
                let beta1 = cycled.unwrap_or(c.betas.0);
                let (beta2, bias_correction2) = (c.betas.1, 1.0 - c.betas.1.powf(t));
                let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
                let rho_t = rho_inf - 2.0 * t * beta2.powf(t) / bias_correction2;
                s.weight_decay = c.weight_decay as f32;
                s.one_minus_beta1 = (1.0 - beta1) as f32;
                s.beta2 = beta2 as f32;
                s.one_minus_beta2 = (1.0 - beta2) as f32;
                s.eps = c.eps as f32;
                s.bias_correction1 = (1.0 - beta1.powf(t)) as f32;
                s.bias_correction2_sqrt = bias_correction2.sqrt() as f32;
                s.decay_factor = (1.0 - lr * c.weight_decay) as f32;
                if rho_t > 5.0 {
                    s.rectification = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                        / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                        .sqrt() as f32;
                }
            }
        }
        s
    }

    /// NAdam's Π μ_s over updates 1..=`step`, as PyTorch's f32 `mu_product` holds it after
    /// update `step`; 1 for the other optimizers. From the kept product when `step` is the
    /// next update, else recomputed from update 1 (a loaded state: every μ_s is a function
    /// of the configuration, the schedule's momentum and s).
    pub fn mu_product_through(&self, step: u64) -> f32 {
        let OptimizerConfig::NAdam(c) = self.config else {
            return 1.0;
        };
        let (mut product, first) = if step > self.step {
            (self.mu_product, self.step + 1)
        } else {
            (1.0, 1)
        };
        for s in first..=step {
            if product == 0.0 {
                break; // underflowed, as it does within a few thousand updates: it stays 0
            }
            let cycled = self.schedule.momentum_at(s.saturating_sub(1));
            // PyTorch multiplies its f32 tensor by the Python float, rounded to f32.
            let mu = nadam_mu(&c, cycled.unwrap_or(c.betas.0), s as f64) as f32;
            if mu == 1.0 && cycled.is_none() {
                break; // μ_s rises with s, so every later one rounds to 1 as well
            }
            product *= mu;
        }
        product
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
            if name.is_some() {
                if let Some((name, values)) = given.next() {
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
        }
        Ok(slots)
    }
}

/// NAdam's momentum coefficient for update `t`, μ_t = β1·(1 − ½·0.96^(t·ψ)), in PyTorch's
/// order of operations.
fn nadam_mu(c: &NAdam, beta1: f64, t: f64) -> f64 {
    beta1 * (1.0 - 0.5 * 0.96f64.powf(t * c.momentum_decay))
}
