//! The cyclical learning rate: PyTorch's `CyclicLR`, its three policies and its momentum
//! cycle, in its order of f64 operations.

use crate::error::{Error, Result};

/// How the height of each cycle changes (PyTorch's `mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum CyclicMode {
    /// The same triangle every cycle (`"triangular"`, PyTorch's default).
    #[default]
    Triangular,
    /// Each cycle half as high as the one before (`"triangular2"`).
    Triangular2,
    /// The height scaled by γ^t at update t (`"exp_range"`).
    ExpRange {
        /// γ, in (0, 1] to shrink (finite, > 0).
        gamma: f64,
    },
}

/// A cyclical learning rate, PyTorch's `torch.optim.lr_scheduler.CyclicLR` with the
/// optimizer's learning rate as its `max_lr`: the rate climbs from `base_lr` to `max_lr` over
/// `step_size_up` updates and falls back over `step_size_down`, cycle after cycle, each cycle's
/// height as `mode` says. The momentum (Adam's β1, SGD's and RMSprop's momentum) moves the
/// other way, from `max_momentum` at `base_lr` to `base_momentum` at the peak, unless the
/// cycle is turned off. PyTorch's defaults: triangular, `step_size_down` = `step_size_up`,
/// momentum 0.9 → 0.8. `base_lr` is a rate, the same for every parameter group (as PyTorch's
/// one `base_lr`), and each group peaks at its own rate.
///
/// ```
/// use steepest::LrSchedule;
/// use steepest::optim::Cyclic;
/// // From 0.01 up to the optimizer's 0.1 in 4 updates and back down in 4.
/// let schedule = LrSchedule::cyclic(Cyclic::new(0.01, 4));
/// assert_eq!(schedule.lr_at(0.1, 0), 0.01);
/// assert!((schedule.lr_at(0.1, 4) - 0.1).abs() < 1e-15);
/// assert_eq!(schedule.momentum_at(0), Some(0.9));
/// assert_eq!(schedule.lr_at(0.1, 8), 0.01);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cyclic {
    /// The rate each cycle starts and ends at (finite, ≥ 0).
    pub base_lr: f64,
    /// Updates from `base_lr` up to the peak (> 0).
    pub step_size_up: u64,
    /// Updates from the peak back down; `None`: `step_size_up`.
    pub step_size_down: Option<u64>,
    /// How each cycle's height changes.
    pub mode: CyclicMode,
    /// `(base_momentum, max_momentum)`, each in [0, 1); `None`: the momentum is not cycled
    /// (PyTorch's `cycle_momentum=False`).
    pub momentum: Option<(f64, f64)>,
}

impl Cyclic {
    /// Cycles from `base_lr` up to the optimizer's rate in `step_size_up` updates and back in
    /// as many, with PyTorch's other defaults.
    pub fn new(base_lr: f64, step_size_up: u64) -> Self {
        Self {
            base_lr,
            step_size_up,
            step_size_down: None,
            mode: CyclicMode::Triangular,
            momentum: Some((0.8, 0.9)),
        }
    }

    /// Updates from the peak back down to `base_lr`.
    pub fn step_size_down(self, steps: u64) -> Self {
        Self {
            step_size_down: Some(steps),
            ..self
        }
    }

    /// How each cycle's height changes.
    pub fn mode(self, mode: CyclicMode) -> Self {
        Self { mode, ..self }
    }

    /// Cycles the momentum between `base` (at the peak rate) and `max`.
    pub fn momentum(self, base: f64, max: f64) -> Self {
        Self {
            momentum: Some((base, max)),
            ..self
        }
    }

    /// Leaves the optimizer's momentum as configured (PyTorch's `cycle_momentum=False`).
    pub fn without_momentum_cycle(self) -> Self {
        Self {
            momentum: None,
            ..self
        }
    }

    /// The rate and momentum of update `t` (0-based) when the peak rate is `max_lr`, as
    /// PyTorch's `CyclicLR.get_lr` computes them at `last_epoch = t`.
    pub(super) fn at(&self, max_lr: f64, t: u64) -> (f64, Option<f64>) {
        let up = self.step_size_up as f64;
        let down = self.step_size_down.map_or(up, |d| d as f64);
        let total = up + down;
        let ratio = up / total;
        let t = t as f64;
        let cycle = (1.0 + t / total).floor();
        let x = 1.0 + t / total - cycle;
        let scale_factor = if x <= ratio {
            x / ratio
        } else {
            (x - 1.0) / (ratio - 1.0)
        };
        // Triangular and triangular2 scale by the cycle, exp_range by the update.
        let scale = match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2.0f64.powf(cycle - 1.0),
            CyclicMode::ExpRange { gamma } => gamma.powf(t),
        };
        let lr = self.base_lr + (max_lr - self.base_lr) * scale_factor * scale;
        let momentum = self
            .momentum
            .map(|(base, max)| max - (max - base) * scale_factor * scale);
        (lr, momentum)
    }

    /// Checks every setting, naming the first out of range.
    pub(super) fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f64, rule: &str| {
            Err(Error::InvalidHyperparameter {
                optimizer: "Cyclic",
                name: name.to_string(),
                value,
                rule: rule.to_string(),
            })
        };
        if !(self.base_lr.is_finite() && self.base_lr >= 0.0) {
            return bad("base_lr", self.base_lr, "must be finite and ≥ 0");
        }
        if self.step_size_up == 0 {
            return bad("step_size_up", 0.0, "must be > 0");
        }
        // Both sizes become f64s and their sum the cycle's length: keep them exact.
        let exact = 1u64 << 52;
        let down = self.step_size_down.unwrap_or(self.step_size_up);
        if self.step_size_up > exact || down > exact {
            return bad(
                "step_size_up + step_size_down",
                self.step_size_up as f64 + down as f64,
                "each must be ≤ 2^52 updates",
            );
        }
        if let CyclicMode::ExpRange { gamma } = self.mode
            && !(gamma.is_finite() && gamma > 0.0)
        {
            return bad("gamma", gamma, "must be finite and > 0");
        }
        super::one_cycle::check_momentum_cycle("Cyclic", self.momentum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{LrSchedule, Sgd};

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let cases = [
            (Cyclic::new(-0.1, 3), "base_lr"),
            (Cyclic::new(f64::NAN, 3), "base_lr"),
            (Cyclic::new(0.01, 0), "step_size_up"),
            (
                Cyclic::new(0.01, 3).step_size_down(1 << 53),
                "step_size_up + step_size_down",
            ),
            (
                Cyclic::new(0.01, 3).mode(CyclicMode::ExpRange { gamma: 0.0 }),
                "gamma",
            ),
            (Cyclic::new(0.01, 3).momentum(-0.1, 0.9), "base_momentum"),
            (Cyclic::new(0.01, 3).momentum(0.8, 1.0), "max_momentum"),
        ];
        for (cycle, name) in cases {
            match LrSchedule::cyclic(cycle).validate() {
                Err(Error::InvalidHyperparameter { name: n, .. }) => {
                    assert_eq!(n, name, "{cycle:?}")
                }
                other => panic!("{cycle:?}: expected {name} refused, got {other:?}"),
            }
        }
        // A sawtooth (no way down) is PyTorch's too.
        let saw = LrSchedule::cyclic(Cyclic::new(0.0, 4).step_size_down(0));
        saw.validate().unwrap();
        assert_eq!(saw.lr_at(1.0, 3), 0.75);
        assert_eq!(saw.lr_at(1.0, 4), 0.0);
        // It climbs itself: no warm-up in front; a cycled momentum needs one to cycle.
        let warm = LrSchedule::cyclic(Cyclic::new(0.01, 3)).with_warmup(2);
        assert!(warm.validate().is_err());
        let plain = Sgd::default().lr(0.1).into();
        let err = LrSchedule::cyclic(Cyclic::new(0.01, 3))
            .check_for(&plain)
            .unwrap_err();
        assert!(
            err.to_string().contains("Cyclic::without_momentum_cycle"),
            "{err}"
        );
        let fixed = LrSchedule::cyclic(Cyclic::new(0.01, 3).without_momentum_cycle());
        fixed.check_for(&plain).unwrap();
    }
}
