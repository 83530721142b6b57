//! Lowering the learning rate when a watched quantity stops improving: PyTorch's
//! `ReduceLROnPlateau`, step for step.

use crate::error::{Error, Result};

/// Whether the watched quantity improves by falling (a loss) or by rising (an accuracy):
/// PyTorch's `mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Lower is better (PyTorch's `"min"`, its default).
    #[default]
    Min,
    /// Higher is better (PyTorch's `"max"`).
    Max,
}

/// How much better than the best value so far a value must be to count as an improvement
/// (PyTorch's `threshold_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Threshold {
    /// Below `best · (1 − threshold)` in [`Mode::Min`], above `best · (1 + threshold)` in
    /// [`Mode::Max`] (PyTorch's `"rel"`, its default).
    #[default]
    Relative,
    /// Below `best − threshold`, or above `best + threshold` (PyTorch's `"abs"`).
    Absolute,
}

/// Multiplies the learning rate by `factor` once the watched quantity has not improved for
/// more than `patience` epochs: PyTorch's `torch.optim.lr_scheduler.ReduceLROnPlateau`, with
/// its defaults (mode min, factor 0.1, patience 10, threshold 1e-4 relative, no cooldown, no
/// floor, eps 1e-8), its order of checks and its arithmetic in f64.
///
/// [`Trainer::reduce_lr_on_plateau`](crate::Trainer::reduce_lr_on_plateau) applies it after
/// every epoch to what the trainer watches ([`Trainer::watch`](crate::Trainer::watch): the
/// validation loss by default, in mode min). A loop of your own applies it with
/// [`ReduceLrOnPlateau::step`] and hands the rate to its session
/// ([`Session::set_lr`](crate::Session::set_lr)) or optimizer
/// ([`GpuOptimizer::set_lr`](crate::GpuOptimizer::set_lr)).
///
/// ```
/// use steepest::optim::ReduceLrOnPlateau;
/// # fn main() -> steepest::Result<()> {
/// let rule = ReduceLrOnPlateau::default().factor(0.5).patience(1);
/// rule.validate()?;
/// let mut state = rule.start(0.1);
/// let lrs: Vec<f64> = [1.0, 0.9, 0.95, 0.92, 0.91]
///     .into_iter()
///     .map(|loss| rule.step(&mut state, loss))
///     .collect();
/// // Two epochs without a new best (0.95, 0.92) exceed a patience of 1.
/// assert_eq!(lrs, [0.1, 0.1, 0.1, 0.05, 0.05]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReduceLrOnPlateau {
    /// Whether lower or higher values are better.
    pub mode: Mode,
    /// The multiplier of each reduction, in (0, 1).
    pub factor: f64,
    /// Epochs without improvement that are tolerated: the rate falls on the next one.
    pub patience: usize,
    /// The margin an improvement needs (see [`Threshold`]), ≥ 0.
    pub threshold: f64,
    /// Whether `threshold` is relative to the best value or absolute.
    pub threshold_mode: Threshold,
    /// Epochs after a reduction during which epochs without improvement are not counted.
    pub cooldown: usize,
    /// The rate never falls below this (≥ 0).
    pub min_lr: f64,
    /// A reduction smaller than this is not made (≥ 0).
    pub eps: f64,
}

impl Default for ReduceLrOnPlateau {
    fn default() -> Self {
        Self {
            mode: Mode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: Threshold::Relative,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// What [`ReduceLrOnPlateau`] remembers between epochs. Training checkpoints carry it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlateauState {
    /// The learning rate the rule leaves: the starting rate until its first reduction.
    pub lr: f64,
    /// The best value so far (the worst possible, ±∞, before the first epoch).
    pub best: f64,
    /// Epochs since the best, not counting those in a cooldown.
    pub bad_epochs: usize,
    /// Epochs of cooldown left.
    pub cooldown_left: usize,
}

impl ReduceLrOnPlateau {
    /// Lower (`Mode::Min`) or higher (`Mode::Max`) values are better.
    pub fn mode(self, mode: Mode) -> Self {
        Self { mode, ..self }
    }

    /// The state before the first epoch, starting from learning rate `lr`.
    pub fn start(&self, lr: f64) -> PlateauState {
        PlateauState {
            lr,
            best: match self.mode {
                Mode::Min => f64::INFINITY,
                Mode::Max => f64::NEG_INFINITY,
            },
            bad_epochs: 0,
            cooldown_left: 0,
        }
    }

    /// Each reduction multiplies the rate by `factor`.
    pub fn factor(self, factor: f64) -> Self {
        Self { factor, ..self }
    }

    /// Epochs without improvement tolerated before a reduction.
    pub fn patience(self, patience: usize) -> Self {
        Self { patience, ..self }
    }

    /// An improvement must beat the best value by `threshold`, measured as `mode` says.
    pub fn threshold(self, threshold: f64, mode: Threshold) -> Self {
        Self {
            threshold,
            threshold_mode: mode,
            ..self
        }
    }

    /// Epochs after a reduction before epochs without improvement count again.
    pub fn cooldown(self, cooldown: usize) -> Self {
        Self { cooldown, ..self }
    }

    /// The floor of the learning rate.
    pub fn min_lr(self, min_lr: f64) -> Self {
        Self { min_lr, ..self }
    }

    /// Reductions smaller than `eps` are skipped.
    pub fn eps(self, eps: f64) -> Self {
        Self { eps, ..self }
    }

    /// Every setting in range, or [`Error::InvalidHyperparameter`] naming the first that is not.
    pub fn validate(&self) -> Result<()> {
        let check = |name: &str, value: f64, ok: bool, rule: &str| {
            if ok && value.is_finite() {
                return Ok(());
            }
            Err(Error::InvalidHyperparameter {
                optimizer: "ReduceLrOnPlateau",
                name: name.to_string(),
                value,
                rule: rule.to_string(),
            })
        };
        let f = self.factor;
        check("factor", f, f > 0.0 && f < 1.0, "must be in (0, 1)")?;
        check(
            "threshold",
            self.threshold,
            self.threshold >= 0.0,
            "must be ≥ 0",
        )?;
        check("min_lr", self.min_lr, self.min_lr >= 0.0, "must be ≥ 0")?;
        check("eps", self.eps, self.eps >= 0.0, "must be ≥ 0")
    }

    /// Whether `value` improves on `best` by the threshold.
    fn is_better(&self, value: f64, best: f64) -> bool {
        match (self.mode, self.threshold_mode) {
            (Mode::Min, Threshold::Relative) => value < best * (1.0 - self.threshold),
            (Mode::Min, Threshold::Absolute) => value < best - self.threshold,
            (Mode::Max, Threshold::Relative) => value > best * (self.threshold + 1.0),
            (Mode::Max, Threshold::Absolute) => value > best + self.threshold,
        }
    }

    /// Takes one epoch's watched value into `state` (made by [`ReduceLrOnPlateau::start`])
    /// and returns the learning rate for the epochs that follow (`state.lr`), as PyTorch's
    /// `scheduler.step(value)` leaves `param_group["lr"]`. A value that is not a number never
    /// improves.
    pub fn step(&self, state: &mut PlateauState, value: f64) -> f64 {
        if self.is_better(value, state.best) {
            state.best = value;
            state.bad_epochs = 0;
        } else {
            state.bad_epochs = state.bad_epochs.saturating_add(1);
        }
        if state.cooldown_left > 0 {
            state.cooldown_left -= 1;
            state.bad_epochs = 0;
        }
        if state.bad_epochs > self.patience {
            let lower = (state.lr * self.factor).max(self.min_lr);
            if state.lr - lower > self.eps {
                state.lr = lower;
            }
            state.cooldown_left = self.cooldown;
            state.bad_epochs = 0;
        }
        state.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lrs(rule: ReduceLrOnPlateau, lr: f64, losses: &[f64]) -> Vec<f64> {
        let mut state = rule.start(lr);
        losses.iter().map(|&l| rule.step(&mut state, l)).collect()
    }

    #[test]
    fn the_rate_falls_on_the_epoch_after_the_patience_runs_out() {
        // patience 2: the third epoch in a row without a new best lowers the rate, and the
        // count starts again from there.
        let rule = ReduceLrOnPlateau::default().factor(0.5).patience(2);
        let got = lrs(rule, 1.0, &[5.0, 4.0, 4.0, 4.5, 4.2, 4.1, 4.3, 4.0, 3.0]);
        assert_eq!(got, [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]);
    }

    #[test]
    fn a_relative_threshold_scales_with_the_best_and_an_absolute_one_does_not() {
        // Best 100: 99.99 is not 1e-3 below it relatively (needs < 99.9), 99.8 is.
        let rule = ReduceLrOnPlateau::default()
            .patience(0)
            .threshold(1e-3, Threshold::Relative);
        assert_eq!(lrs(rule, 1.0, &[100.0, 99.99]), [1.0, 0.1]);
        assert_eq!(lrs(rule, 1.0, &[100.0, 99.8]), [1.0, 1.0]);
        // Absolute 0.5: 99.6 is not below 99.5, 99.4 is.
        let rule = rule.threshold(0.5, Threshold::Absolute);
        assert_eq!(lrs(rule, 1.0, &[100.0, 99.6]), [1.0, 0.1]);
        assert_eq!(lrs(rule, 1.0, &[100.0, 99.4]), [1.0, 1.0]);
    }

    #[test]
    fn in_mode_max_higher_values_improve() {
        // Best 0.5: relative 1e-2 needs more than 0.505, absolute 0.01 more than 0.51.
        let rule = ReduceLrOnPlateau::default().mode(Mode::Max).patience(0);
        let rel = rule.threshold(1e-2, Threshold::Relative);
        assert_eq!(lrs(rel, 1.0, &[0.5, 0.505]), [1.0, 0.1]);
        assert_eq!(lrs(rel, 1.0, &[0.5, 0.506]), [1.0, 1.0]);
        let abs = rule.threshold(0.01, Threshold::Absolute);
        assert_eq!(lrs(abs, 1.0, &[0.5, 0.51]), [1.0, 0.1]);
        assert_eq!(lrs(abs, 1.0, &[0.5, 0.52]), [1.0, 1.0]);
        // The first value always improves on −∞, a falling one never does.
        assert_eq!(lrs(rule, 1.0, &[-3.0, -4.0]), [1.0, 0.1]);
    }

    #[test]
    fn a_cooldown_ignores_the_epochs_after_a_reduction() {
        // patience 0, cooldown 2: every epoch after the first is bad; the rate falls after
        // epoch 2, the next two epochs are the cooldown, then it falls again on epoch 5.
        let rule = ReduceLrOnPlateau::default()
            .factor(0.5)
            .patience(0)
            .cooldown(2);
        let got = lrs(rule, 8.0, &[1.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
        assert_eq!(got, [8.0, 4.0, 4.0, 4.0, 2.0, 2.0]);
    }

    #[test]
    fn the_rate_stops_at_its_floor_and_skips_reductions_under_eps() {
        let rule = ReduceLrOnPlateau::default().patience(0).min_lr(0.03);
        assert_eq!(
            lrs(rule, 1.0, &[1.0, 2.0, 2.0, 2.0]),
            [1.0, 0.1, 0.03, 0.03]
        );
        // 1e-8 · 0.1 is a reduction of 9e-9, under the default eps: never made.
        let rule = ReduceLrOnPlateau::default().patience(0);
        assert_eq!(lrs(rule, 1e-8, &[1.0, 2.0, 2.0]), [1e-8, 1e-8, 1e-8]);
        // A loss that is not a number counts as no improvement.
        assert_eq!(lrs(rule, 1.0, &[1.0, f64::NAN]), [1.0, 0.1]);
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let bad = [
            (ReduceLrOnPlateau::default().factor(1.0), "factor"),
            (ReduceLrOnPlateau::default().factor(0.0), "factor"),
            (ReduceLrOnPlateau::default().factor(f64::NAN), "factor"),
            (
                ReduceLrOnPlateau::default().threshold(-1e-4, Threshold::Relative),
                "threshold",
            ),
            (ReduceLrOnPlateau::default().min_lr(-1.0), "min_lr"),
            (ReduceLrOnPlateau::default().eps(f64::INFINITY), "eps"),
        ];
        for (rule, name) in bad {
            let err = rule.validate().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidHyperparameter { name: n, .. } if n == name),
                "{err}"
            );
        }
        ReduceLrOnPlateau::default().validate().unwrap();
    }
}
