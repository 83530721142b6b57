//! Optimizers with PyTorch's exact update rules, learning-rate schedules and gradient clipping.
//!
//! Configurations ([`Sgd`], [`Asgd`], [`RmsProp`], [`Adagrad`], [`Adadelta`], [`Adam`],
//! [`AdamW`], [`Adamax`], [`NAdam`], [`RAdam`], [`Rprop`]) are backend-agnostic;
//! the state (momentum buffers, moments, …) lives in the backend, in arenas with the parameters'
//! layout: [`CpuOptimizer`](crate::CpuOptimizer) on host slices,
//! [`GpuOptimizer`](crate::GpuOptimizer) on GPU buffers (one dispatch per step for the whole
//! arena). Both get their per-step scalars (learning rate after the schedule, bias corrections)
//! from one shared core (`OptimizerCore`), so the host math exists once.

mod common;
mod config;
mod core;
mod cyclic;
mod groups;
mod one_cycle;
mod optimizer;
mod plateau;
mod rule;
mod scalars;
mod schedule;
mod segments;
mod swa;

pub(crate) use common::common_optimizer_methods;
pub use config::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Asgd, NAdam, OptimizerConfig, RAdam, RmsProp, Rprop,
    Sgd,
};
pub(crate) use core::OptimizerCore;
pub use cyclic::{Cyclic, CyclicMode};
pub use groups::{GroupSettings, ParamGroup};
pub use one_cycle::{Anneal, OneCycle};
pub use optimizer::Optimizer;
pub use plateau::{Mode, PlateauState, ReduceLrOnPlateau, Threshold};
pub(crate) use rule::{Algorithm, UpdateRule};
pub(crate) use scalars::StepScalars;
pub use schedule::{Decay, LrSchedule};
pub use segments::ArenaGroup;
pub(crate) use segments::Segment;
pub use swa::Swa;

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
