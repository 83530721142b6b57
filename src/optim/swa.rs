//! Stochastic weight averaging: PyTorch's `torch.optim.swa_utils` recipe, an equal average
//! of the parameters at the end of every epoch from a start epoch on (`AveragedModel`), with
//! the learning rate annealed to a constant SWA rate meanwhile (`SWALR`).

use std::f64::consts::PI;

use super::Anneal;
use crate::error::{Error, Result};

/// Stochastic weight averaging (Izmailov et al., 2018), as PyTorch's `swa_utils` loop runs it:
/// after every epoch from epoch `start` on (epochs count from 1), the parameters are folded
/// into an equal average of those epochs' parameters (`AveragedModel(model)` and
/// `update_parameters(model)`), and the learning rate takes one step of `SWALR(optimizer,
/// swa_lr, anneal_epochs, anneal_strategy)`: from the rate the run had reached to `swa_lr`
/// over `anneal_epochs` epochs, then `swa_lr` to the end. Epochs up to `start` train at the
/// trainer's schedule; the schedule stops there, as PyTorch's loop stops stepping its
/// scheduler once `swa_scheduler.step()` takes over.
///
/// [`Trainer::swa`](crate::Trainer::swa) turns it on; the average is the model the run
/// produces (the validation pass measures it once it holds an epoch, `restore_best` keeps it,
/// the run ends with it). PyTorch's `update_bn` has nothing to do here: no layer of the crate
/// keeps batch statistics.
///
/// ```
/// use steepest::optim::{Anneal, Swa};
/// # fn main() -> steepest::Result<()> {
/// let swa = Swa::new(3, 0.01).anneal_epochs(2).anneal(Anneal::Linear);
/// swa.validate()?;
/// // From a rate of 0.05 at the end of epoch 3: half way after it, 0.01 from the next on.
/// let first = swa.lr_after(1, 0.05);
/// assert!((first - 0.03).abs() < 1e-15);
/// assert!((swa.lr_after(2, first) - 0.01).abs() < 1e-15);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Swa {
    /// The first epoch (counted from 1) whose parameters join the average; the rate starts
    /// annealing at its end.
    pub start: usize,
    /// The rate the annealing ends at and stays at (PyTorch's `swa_lr`; each parameter group
    /// reaches it times its `lr_scale`).
    pub lr: f64,
    /// Epochs the annealing takes (PyTorch's `anneal_epochs`, 10 by default; 0 jumps to
    /// `lr` at once).
    pub anneal_epochs: u64,
    /// The annealing's shape (PyTorch's `anneal_strategy`, cosine by default).
    pub anneal: Anneal,
}

impl Swa {
    /// Averages from the end of epoch `start` on, annealing to `lr` over 10 epochs along a
    /// cosine (PyTorch's defaults).
    pub fn new(start: usize, lr: f64) -> Self {
        Self {
            start,
            lr,
            anneal_epochs: 10,
            anneal: Anneal::Cos,
        }
    }

    /// Epochs the rate takes to reach the SWA rate (0: at once).
    pub fn anneal_epochs(mut self, epochs: u64) -> Self {
        self.anneal_epochs = epochs;
        self
    }

    /// The annealing's shape.
    pub fn anneal(mut self, anneal: Anneal) -> Self {
        self.anneal = anneal;
        self
    }

    /// Refuses a start before the first epoch and a rate that is negative or not finite.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f64, rule: &str| {
            Err(Error::InvalidHyperparameter {
                optimizer: "Swa",
                name: name.into(),
                value,
                rule: rule.into(),
            })
        };
        if self.start == 0 {
            return bad(
                "start",
                0.0,
                "epochs count from 1: the first epoch whose parameters join the average",
            );
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("lr", self.lr, "the SWA rate must be finite and ≥ 0");
        }
        Ok(())
    }

    /// The rate after the annealing's step `step` (1 after the start epoch, 2 after the next,
    /// …) from the rate `lr` the optimizer has before it: PyTorch's `SWALR.get_lr`, which
    /// recovers the annealing's starting rate from `lr` and the previous step's weight, so
    /// that a rate set between two steps ([`Session::set_lr`](crate::Session::set_lr)) is
    /// annealed from as PyTorch's would be. In f64, as Python computes it.
    pub fn lr_after(&self, step: u64, lr: f64) -> f64 {
        let step = match self.anneal_epochs {
            0 => step.max(1),
            _ => step,
        };
        let epochs = self.anneal_epochs.max(1) as f64;
        let progress = |s: f64| self.anneal.swa_weight((s / epochs).clamp(0.0, 1.0));
        let before = progress(step as f64 - 1.0);
        let start = match before == 1.0 {
            true => self.lr,
            false => (lr - before * self.lr) / (1.0 - before),
        };
        let weight = progress(step as f64);
        self.lr * weight + start * (1.0 - weight)
    }
}

impl Anneal {
    /// How far `SWALR` has moved towards the SWA rate at progress `t` ∈ [0, 1]
    /// (`_cosine_anneal`, `_linear_anneal`).
    fn swa_weight(self, t: f64) -> f64 {
        match self {
            Anneal::Cos => (1.0 - (PI * t).cos()) / 2.0,
            Anneal::Linear => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The steps from `lr`, as a loop applies them.
    fn rates(swa: Swa, lr: f64, steps: u64) -> Vec<f64> {
        let mut lr = lr;
        (1..=steps)
            .map(|step| {
                lr = swa.lr_after(step, lr);
                lr
            })
            .collect()
    }

    #[test]
    fn the_rate_anneals_from_where_it_was_to_the_swa_rate_and_stays() {
        let swa = Swa::new(1, 0.01).anneal_epochs(4);
        let got = rates(swa, 0.09, 6);
        for (step, &lr) in got.iter().enumerate() {
            let t = ((step + 1) as f64 / 4.0).min(1.0);
            let weight = (1.0 - (PI * t).cos()) / 2.0;
            let want = 0.01 * weight + 0.09 * (1.0 - weight);
            assert!(
                (lr - want).abs() < 1e-15,
                "step {}: {lr} vs {want}",
                step + 1
            );
        }
        assert_eq!(got[3..], [0.01, 0.01, 0.01]);
        let linear = rates(swa.anneal(Anneal::Linear), 0.09, 2);
        assert!((linear[0] - 0.07).abs() < 1e-15 && (linear[1] - 0.05).abs() < 1e-15);
    }

    #[test]
    fn no_annealing_jumps_to_the_swa_rate() {
        assert_eq!(rates(Swa::new(2, 0.02).anneal_epochs(0), 0.5, 3), [0.02; 3]);
    }

    #[test]
    fn a_rate_set_between_steps_is_annealed_from() {
        // PyTorch recovers the start from the rate it finds: one set by hand moves it.
        let swa = Swa::new(1, 0.0).anneal_epochs(2).anneal(Anneal::Linear);
        let first = swa.lr_after(1, 0.2);
        assert!((first - 0.1).abs() < 1e-15);
        // Halved by hand to 0.05: the start it implies is 0.1, so the end is 0.
        assert_eq!(swa.lr_after(2, 0.05), 0.0);
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let err = Swa::new(0, 0.1).validate().unwrap_err().to_string();
        assert!(err.contains("start"), "{err}");
        for lr in [-0.1, f64::NAN, f64::INFINITY] {
            let err = Swa::new(1, lr).validate().unwrap_err().to_string();
            assert!(err.contains("lr"), "{err}");
        }
        Swa::new(1, 0.0).validate().unwrap();
    }
}
