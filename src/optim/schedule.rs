//! Learning-rate schedules: the rate for update `t` as a function of the base rate α₀.

use std::f64::consts::PI;

use super::OptimizerConfig;
use super::cyclic::Cyclic;
use super::one_cycle::OneCycle;
use crate::error::{Error, Result};

/// How the learning rate decays after any warm-up. `t` counts updates from 0.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Decay {
    /// α₀ throughout.
    Constant,
    /// α₀·γ^⌊t/every⌋ (PyTorch's `StepLR` with `step_size = every`).
    Step {
        /// Updates between two decays (> 0).
        every: u64,
        /// Factor applied at each decay (> 0).
        gamma: f64,
    },
    /// α₀·γ^(the milestones ≤ t) (PyTorch's `MultiStepLR`): γ once at each milestone, twice
    /// at one given twice.
    MultiStep {
        /// Updates at which the rate is multiplied by γ, in ascending order.
        milestones: Vec<u64>,
        /// Factor applied at each milestone (> 0).
        gamma: f64,
    },
    /// α₀·(1 − min(t, total)/total)^power (PyTorch's `PolynomialLR`): down to 0 at `total`
    /// updates with power 1, a straight line.
    Polynomial {
        /// Updates until the rate reaches 0 (> 0).
        total: u64,
        /// The exponent (≥ 0).
        power: f64,
    },
    /// α₀·e^(−k·t).
    Exponential {
        /// Decay rate (≥ 0).
        k: f64,
    },
    /// α₀ / (1 + k·t).
    InverseTime {
        /// Decay rate (≥ 0).
        k: f64,
    },
    /// η_min + (α₀ − η_min)·(1 + cos(π·t/period))/2 for t ≤ period, then η_min (PyTorch's
    /// `CosineAnnealingLR` without its restart: the rate stays at η_min after the period).
    Cosine {
        /// Updates from α₀ down to η_min (> 0).
        period: u64,
        /// The final rate (≥ 0).
        min_lr: f64,
    },
    /// Cosine annealing from α₀ to η_min over `period` updates, then a restart at α₀, each
    /// period `mult` times the last (PyTorch's `CosineAnnealingWarmRestarts` with
    /// `T_0 = period`, `T_mult = mult`, stepped once per update).
    WarmRestarts {
        /// Updates of the first period (> 0).
        period: u64,
        /// Each period's length over the last's (≥ 1).
        mult: u64,
        /// The rate each period ends at (≥ 0).
        min_lr: f64,
    },
    /// The 1cycle policy with α₀ as its peak (PyTorch's `OneCycleLR` with `max_lr` = α₀),
    /// which also cycles the momentum; it has its own warm-up, so it takes no other.
    OneCycle(OneCycle),
    /// A cyclical rate peaking at α₀ (PyTorch's `CyclicLR` with `max_lr` = α₀), which also
    /// cycles the momentum; it starts at its base rate, so it takes no warm-up.
    Cyclic(Cyclic),
}

/// A decay with an optional linear warm-up in front: for the first `warmup` updates the rate
/// climbs linearly, `lr_at(t) = lr_after_warmup(0)·(t + 1)/(warmup + 1)` (or from a start
/// factor of one's own, PyTorch's `LinearLR`); afterwards the decay runs with its clock
/// starting at 0.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSchedule {
    /// The decay.
    pub decay: Decay,
    /// Updates of linear warm-up before the decay starts (0: none).
    pub warmup: u64,
    /// Where the warm-up starts, as a fraction f of the rate it climbs to: update t < warmup
    /// runs at `f + (1 − f)·t/warmup` of it, PyTorch's `LinearLR(start_factor=f,
    /// total_iters=warmup)` in a `SequentialLR` before the decay. `None`: f = 1/(warmup + 1),
    /// the rate of update t then being (t + 1)/(warmup + 1) of it.
    pub warmup_start: Option<f64>,
}

impl Default for LrSchedule {
    fn default() -> Self {
        Self::constant()
    }
}

impl LrSchedule {
    /// The base rate throughout.
    pub fn constant() -> Self {
        Self {
            decay: Decay::Constant,
            warmup: 0,
            warmup_start: None,
        }
    }
    /// α₀·γ^⌊t/every⌋.
    pub fn step(every: u64, gamma: f64) -> Self {
        Self {
            decay: Decay::Step { every, gamma },
            warmup: 0,
            warmup_start: None,
        }
    }
    /// α₀·γ^(the milestones ≤ t), PyTorch's `MultiStepLR`; the milestones in any order.
    pub fn multi_step(milestones: &[u64], gamma: f64) -> Self {
        let mut milestones = milestones.to_vec();
        milestones.sort_unstable();
        Self {
            decay: Decay::MultiStep { milestones, gamma },
            warmup: 0,
            warmup_start: None,
        }
    }
    /// α₀·(1 − min(t, total)/total)^power, PyTorch's `PolynomialLR`.
    pub fn polynomial(total: u64, power: f64) -> Self {
        Self {
            decay: Decay::Polynomial { total, power },
            warmup: 0,
            warmup_start: None,
        }
    }
    /// α₀·e^(−k·t).
    pub fn exponential(k: f64) -> Self {
        Self {
            decay: Decay::Exponential { k },
            warmup: 0,
            warmup_start: None,
        }
    }
    /// α₀/(1 + k·t).
    pub fn inverse_time(k: f64) -> Self {
        Self {
            decay: Decay::InverseTime { k },
            warmup: 0,
            warmup_start: None,
        }
    }
    /// Cosine annealing from α₀ to `min_lr` over `period` updates.
    pub fn cosine(period: u64, min_lr: f64) -> Self {
        Self {
            decay: Decay::Cosine { period, min_lr },
            warmup: 0,
            warmup_start: None,
        }
    }
    /// Cosine annealing from α₀ to `min_lr` over `period` updates, restarting at α₀ with
    /// each period `mult` times the last (PyTorch's `CosineAnnealingWarmRestarts`).
    pub fn cosine_warm_restarts(period: u64, mult: u64, min_lr: f64) -> Self {
        Self {
            decay: Decay::WarmRestarts {
                period,
                mult,
                min_lr,
            },
            warmup: 0,
            warmup_start: None,
        }
    }

    /// The 1cycle policy (PyTorch's `OneCycleLR`), peaking at the optimizer's learning rate.
    pub fn one_cycle(cycle: OneCycle) -> Self {
        Self {
            decay: Decay::OneCycle(cycle),
            warmup: 0,
            warmup_start: None,
        }
    }

    /// A cyclical rate (PyTorch's `CyclicLR`), peaking at the optimizer's learning rate.
    pub fn cyclic(cycle: Cyclic) -> Self {
        Self {
            decay: Decay::Cyclic(cycle),
            warmup: 0,
            warmup_start: None,
        }
    }

    /// The same schedule behind `steps` updates of linear warm-up, from 1/(steps + 1) of the
    /// rate it climbs to.
    pub fn with_warmup(self, steps: u64) -> Self {
        Self {
            warmup: steps,
            warmup_start: None,
            ..self
        }
    }

    /// The same schedule behind `steps` updates of linear warm-up from `start_factor` of the
    /// rate it climbs to (0 < start_factor ≤ 1), as PyTorch's `LinearLR(start_factor,
    /// total_iters=steps)` followed by the decay in a `SequentialLR` with `milestones=[steps]`.
    pub fn with_warmup_from(self, steps: u64, start_factor: f64) -> Self {
        Self {
            warmup: steps,
            warmup_start: Some(start_factor),
            ..self
        }
    }

    /// Checks the schedule's parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f64, rule: &str| {
            Err(Error::InvalidHyperparameter {
                optimizer: "LrSchedule",
                name: name.to_string(),
                value,
                rule: rule.to_string(),
            })
        };
        if self.warmup == u64::MAX {
            // lr_at divides by warmup + 1.
            return bad("warmup", self.warmup as f64, "must be < 2^64 − 1 steps");
        }
        match self.warmup_start {
            Some(f) if !(f.is_finite() && f > 0.0 && f <= 1.0) => {
                return bad(
                    "warmup_start",
                    f,
                    "must be in (0, 1], as LinearLR's start_factor",
                );
            }
            Some(f) if self.warmup == 0 => {
                return bad("warmup_start", f, "needs warm-up steps (warmup > 0)");
            }
            _ => {}
        }
        match self.decay {
            Decay::MultiStep { gamma, .. } if !(gamma.is_finite() && gamma > 0.0) => {
                bad("gamma", gamma, "must be > 0")
            }
            Decay::MultiStep { ref milestones, .. } if !milestones.is_sorted() => {
                let late = milestones
                    .windows(2)
                    .find(|w| w[1] < w[0])
                    .map_or(0, |w| w[1]);
                bad(
                    "milestones",
                    late as f64,
                    "must be in ascending order (LrSchedule::multi_step sorts them)",
                )
            }
            Decay::Polynomial { total: 0, .. } => bad("total", 0.0, "must be > 0"),
            Decay::Polynomial { power, .. } if !(power.is_finite() && power >= 0.0) => {
                bad("power", power, "must be ≥ 0")
            }
            Decay::OneCycle(_) if self.warmup > 0 => bad(
                "warmup",
                self.warmup as f64,
                "must be 0 with a one-cycle schedule, which warms up itself",
            ),
            Decay::OneCycle(cycle) => cycle.validate(),
            Decay::Cyclic(_) if self.warmup > 0 => bad(
                "warmup",
                self.warmup as f64,
                "must be 0 with a cyclic schedule, which starts at its base rate and climbs",
            ),
            Decay::Cyclic(cycle) => cycle.validate(),
            Decay::Constant => Ok(()),
            Decay::Step { every: 0, .. } => bad("every", 0.0, "must be > 0"),
            Decay::Step { gamma, .. } if !(gamma.is_finite() && gamma > 0.0) => {
                bad("gamma", gamma, "must be > 0")
            }
            Decay::Exponential { k } | Decay::InverseTime { k } if !(k.is_finite() && k >= 0.0) => {
                bad("k", k, "must be ≥ 0")
            }
            Decay::Cosine { period: 0, .. } | Decay::WarmRestarts { period: 0, .. } => {
                bad("period", 0.0, "must be > 0")
            }
            Decay::WarmRestarts { mult: 0, .. } => bad("mult", 0.0, "must be ≥ 1"),
            Decay::WarmRestarts { min_lr, .. } if !(min_lr.is_finite() && min_lr >= 0.0) => {
                bad("min_lr", min_lr, "must be ≥ 0")
            }
            Decay::Cosine { min_lr, .. } if !(min_lr.is_finite() && min_lr >= 0.0) => {
                bad("min_lr", min_lr, "must be ≥ 0")
            }
            _ => Ok(()),
        }
    }

    /// Whether the schedule is valid and suits `config`: a schedule that cycles the momentum
    /// needs an optimizer whose momentum (or β1) the update uses, as PyTorch's `OneCycleLR`
    /// does.
    pub(crate) fn check_for(&self, config: &OptimizerConfig) -> Result<()> {
        self.validate()?;
        if matches!(config, OptimizerConfig::Rprop(_)) && *self != LrSchedule::constant() {
            return Err(Error::InvalidHyperparameter {
                optimizer: "Rprop",
                name: "schedule (rate factor at update 2)".into(),
                value: self.lr_at(1.0, 1),
                rule: format!(
                    "Rprop takes no schedule ({self:?}): its learning rate is only the step \
                     sizes' starting value, as in PyTorch, so a schedule would change no step"
                ),
            });
        }
        let Some(momentum) = self.momentum_at(0) else {
            return Ok(());
        };
        let unused = match config {
            OptimizerConfig::Sgd(c) if c.momentum == 0.0 => Some("SGD without momentum"),
            OptimizerConfig::RmsProp(c) if c.momentum <= 0.0 => Some("RMSprop without momentum"),
            OptimizerConfig::Adagrad(_) => Some("Adagrad, which has no momentum,"),
            OptimizerConfig::Adadelta(_) => Some("Adadelta, which has no momentum,"),
            OptimizerConfig::Asgd(_) => Some("ASGD, which has no momentum,"),
            _ => None,
        };
        let policy = match self.decay {
            Decay::Cyclic(_) => "Cyclic",
            _ => "OneCycle",
        };
        match unused {
            Some(what) => Err(Error::InvalidHyperparameter {
                optimizer: policy,
                name: "momentum".into(),
                value: momentum,
                rule: format!(
                    "a cycled momentum needs an optimizer that uses one: {what} would ignore it \
                     (give it a momentum > 0, which the cycle replaces, or use \
                     {policy}::without_momentum_cycle)"
                ),
            }),
            None => Ok(()),
        }
    }

    /// The learning rate for update `t` (0-based) when the base rate is `base_lr`.
    pub fn lr_at(&self, base_lr: f64, t: u64) -> f64 {
        if t < self.warmup {
            // t < warmup, so neither sum overflows (and `validate` refuses warmup = u64::MAX).
            let start = self.decayed(base_lr, 0);
            return match self.warmup_start {
                None => start * (t as f64 + 1.0) / (self.warmup as f64 + 1.0),
                Some(f) => start * (f + (1.0 - f) * t as f64 / self.warmup as f64),
            };
        }
        self.decayed(base_lr, t - self.warmup)
    }

    fn decayed(&self, base_lr: f64, t: u64) -> f64 {
        match self.decay {
            Decay::Constant => base_lr,
            Decay::Step { every, gamma } => base_lr * gamma.powf((t / every.max(1)) as f64),
            Decay::MultiStep {
                ref milestones,
                gamma,
            } => base_lr * gamma.powf(milestones.partition_point(|&m| m <= t) as f64),
            Decay::Polynomial { total, power } => {
                base_lr * (1.0 - t.min(total) as f64 / total.max(1) as f64).powf(power)
            }
            Decay::Exponential { k } => base_lr * (-k * t as f64).exp(),
            Decay::InverseTime { k } => base_lr / (1.0 + k * t as f64),
            Decay::Cosine { period, min_lr } => {
                let progress = t.min(period) as f64 / period.max(1) as f64;
                min_lr + (base_lr - min_lr) * (1.0 + (PI * progress).cos()) / 2.0
            }
            Decay::WarmRestarts {
                period,
                mult,
                min_lr,
            } => {
                let (into, length) = restart_period(period, mult, t);
                min_lr + (base_lr - min_lr) * (1.0 + (PI * into as f64 / length as f64).cos()) / 2.0
            }
            Decay::OneCycle(cycle) => cycle.at(base_lr, t).0,
            Decay::Cyclic(cycle) => cycle.at(base_lr, t).0,
        }
    }

    /// The momentum (Adam's β1, SGD's and RMSprop's momentum) for update `t` (0-based), where
    /// the schedule sets it: a one-cycle or cyclic schedule that cycles it. `None`: the
    /// optimizer's own.
    pub fn momentum_at(&self, t: u64) -> Option<f64> {
        match self.decay {
            Decay::OneCycle(cycle) => cycle.at(0.0, t).1,
            Decay::Cyclic(cycle) => cycle.at(0.0, t).1,
            _ => None,
        }
    }

    /// The last update the schedule has a rate for (1-based), if it ends.
    pub fn last_update(&self) -> Option<u64> {
        match self.decay {
            Decay::OneCycle(cycle) => Some(cycle.total_steps),
            _ => None,
        }
    }
}

/// Where update `t` (0-based) falls in warm restarts whose first period is `period` updates,
/// each later one `mult` times the last: (updates into its period, the period's length), the
/// integers PyTorch's `CosineAnnealingWarmRestarts` counts as `T_cur` and `T_i`. A period too
/// long for u64 never ends.
fn restart_period(period: u64, mult: u64, t: u64) -> (u64, u64) {
    let period = period.max(1);
    if mult <= 1 {
        return (t % period, period);
    }
    // Periods grow geometrically: at most 64 of them before one passes any u64.
    let (mut into, mut length) = (t, period);
    while into >= length {
        into -= length;
        match length.checked_mul(mult) {
            Some(next) => length = next,
            None => return (into, u64::MAX),
        }
    }
    (into, length)
}
