//! The 1cycle policy: PyTorch's `OneCycleLR`, its phases, annealing and momentum cycle, in its
//! order of f64 operations.

use std::f64::consts::PI;

use crate::error::{Error, Result};

/// How a phase of a [`OneCycle`], or the rate of a [`Swa`](super::Swa), moves from its start
/// to its end value (PyTorch's `anneal_strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anneal {
    /// Half a cosine (`"cos"`, PyTorch's default).
    #[default]
    Cos,
    /// A straight line (`"linear"`).
    Linear,
}

impl Anneal {
    /// From `start` (at `pct` 0) to `end` (at 1), as PyTorch's `_annealing_cos` and
    /// `_annealing_linear` compute it.
    fn between(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

/// The 1cycle learning-rate policy, PyTorch's `torch.optim.lr_scheduler.OneCycleLR` with the
/// optimizer's learning rate as its `max_lr`: the rate climbs from `max_lr / div_factor` to
/// `max_lr` over the first `pct_start` of `total_steps` updates, then falls to
/// `max_lr / div_factor / final_div_factor` (with `three_phase`, back to the start first and
/// then down). The momentum (Adam's β1, SGD's and RMSprop's momentum) moves the other way,
/// between `max_momentum` and `base_momentum`, unless the cycle is turned off. PyTorch's
/// defaults: 30% rising, cosine annealing, momentum 0.95 → 0.85 → 0.95, `div_factor` 25,
/// `final_div_factor` 1e4, two phases.
///
/// The schedule has `total_steps` updates: an optimizer refuses the one after (PyTorch's
/// scheduler refuses to step past them), and a trainer whose run would take more refuses to
/// start.
///
/// ```
/// use steepest::LrSchedule;
/// use steepest::optim::OneCycle;
/// // 1000 updates peaking at the optimizer's rate after 250, linear phases.
/// let schedule = LrSchedule::one_cycle(OneCycle::new(1000).pct_start(0.25).linear());
/// assert_eq!(schedule.lr_at(0.1, 0), 0.1 / 25.0);
/// assert_eq!(schedule.lr_at(0.1, 249), 0.1);
/// assert_eq!(schedule.momentum_at(249), Some(0.85));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneCycle {
    /// Updates in the cycle (> 0).
    pub total_steps: u64,
    /// The share of the updates spent rising, in [0, 1].
    pub pct_start: f64,
    /// How each phase moves.
    pub anneal: Anneal,
    /// `(base_momentum, max_momentum)`, each in [0, 1); `None`: the momentum is not cycled
    /// (PyTorch's `cycle_momentum=False`).
    pub momentum: Option<(f64, f64)>,
    /// The starting rate is `max_lr / div_factor` (> 0).
    pub div_factor: f64,
    /// The final rate is the starting rate `/ final_div_factor` (> 0).
    pub final_div_factor: f64,
    /// Three phases (up, back down to the start, then to the final rate) instead of two.
    pub three_phase: bool,
}

impl OneCycle {
    /// A cycle of `total_steps` updates with PyTorch's defaults.
    pub fn new(total_steps: u64) -> Self {
        Self {
            total_steps,
            pct_start: 0.3,
            anneal: Anneal::Cos,
            momentum: Some((0.85, 0.95)),
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }
    }

    /// The share of the updates spent rising.
    pub fn pct_start(self, pct_start: f64) -> Self {
        Self { pct_start, ..self }
    }

    /// Straight-line phases instead of half cosines.
    pub fn linear(self) -> Self {
        Self {
            anneal: Anneal::Linear,
            ..self
        }
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

    /// The starting and final rates' divisors.
    pub fn div_factors(self, div_factor: f64, final_div_factor: f64) -> Self {
        Self {
            div_factor,
            final_div_factor,
            ..self
        }
    }

    /// Three phases instead of two.
    pub fn three_phase(self, on: bool) -> Self {
        Self {
            three_phase: on,
            ..self
        }
    }

    /// The rate and momentum of update `t` (0-based) when the peak rate is `max_lr`.
    pub(super) fn at(&self, max_lr: f64, t: u64) -> (f64, Option<f64>) {
        let initial = max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let (base_m, max_m) = self.momentum.unwrap_or((0.0, 0.0));
        let total = self.total_steps as f64;
        let first_end = self.pct_start * total - 1.0;
        // (end step, rate from, rate to, momentum from, momentum to), as PyTorch lists them.
        let two = [
            (first_end, initial, max_lr, max_m, base_m),
            (total - 1.0, max_lr, min, base_m, max_m),
        ];
        let three = [
            (first_end, initial, max_lr, max_m, base_m),
            (
                2.0 * self.pct_start * total - 2.0,
                max_lr,
                initial,
                base_m,
                max_m,
            ),
            (total - 1.0, initial, min, max_m, max_m),
        ];
        let phases: &[(f64, f64, f64, f64, f64)] = if self.three_phase { &three } else { &two };
        let step = t as f64;
        let mut start = 0.0;
        for (i, &(end, lr_from, lr_to, m_from, m_to)) in phases.iter().enumerate() {
            if step <= end || i == phases.len() - 1 {
                let pct = (step - start) / (end - start);
                let momentum = self
                    .momentum
                    .map(|_| self.anneal.between(m_from, m_to, pct));
                return (self.anneal.between(lr_from, lr_to, pct), momentum);
            }
            start = end;
        }
        (min, self.momentum.map(|_| max_m))
    }

    /// Checks the cycle's parameters.
    pub(super) fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f64, rule: &str| {
            Err(Error::InvalidHyperparameter {
                optimizer: "OneCycle",
                name: name.to_string(),
                value,
                rule: rule.to_string(),
            })
        };
        let p = self.pct_start;
        if self.total_steps == 0 {
            return bad("total_steps", 0.0, "must be > 0");
        }
        if !(0.0..=1.0).contains(&p) {
            return bad("pct_start", p, "must be in [0, 1]");
        }
        if p * self.total_steps as f64 == 1.0 {
            // PyTorch divides 0 by 0 at update 0 there.
            return bad(
                "pct_start",
                p,
                &format!(
                    "gives a first phase of 0 updates (pct_start · total_steps = 1, with \
                     total_steps = {})",
                    self.total_steps
                ),
            );
        }
        for (name, value) in [
            ("div_factor", self.div_factor),
            ("final_div_factor", self.final_div_factor),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return bad(name, value, "must be finite and > 0");
            }
        }
        check_momentum_cycle("OneCycle", self.momentum)
    }
}

/// A cycled momentum's `(base_momentum, max_momentum)`, each in [0, 1), for `policy` (the
/// one-cycle's and the cyclic schedule's).
pub(super) fn check_momentum_cycle(
    policy: &'static str,
    momentum: Option<(f64, f64)>,
) -> Result<()> {
    let Some((base, max)) = momentum else {
        return Ok(());
    };
    for (name, value) in [("base_momentum", base), ("max_momentum", max)] {
        if !(0.0..1.0).contains(&value) {
            return Err(Error::InvalidHyperparameter {
                optimizer: policy,
                name: name.to_string(),
                value,
                rule: "must be in [0, 1)".to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(from: f64, to: f64, pct: f64) -> f64 {
        to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0)
    }

    fn lin(from: f64, to: f64, pct: f64) -> f64 {
        (to - from) * pct + from
    }

    /// PyTorch's OneCycleLR for `total_steps = 10`, its phase ends and fractions written out:
    /// the first phase ends at 0.3 · 10 − 1 = 2, where the rate peaks.
    #[test]
    fn two_cosine_phases_with_their_momentum() {
        let cycle = OneCycle::new(10);
        let (max, initial, min) = (0.1, 0.1 / 25.0, 0.1 / 25.0 / 1e4);
        let end1 = 0.3 * 10.0 - 1.0;
        assert_eq!(end1, 2.0);
        for t in 0..=2u32 {
            let pct = f64::from(t) / end1;
            let want = (cos(initial, max, pct), Some(cos(0.95, 0.85, pct)));
            assert_eq!(cycle.at(max, u64::from(t)), want, "update {t}");
        }
        for t in 3..=9u32 {
            let pct = (f64::from(t) - end1) / (9.0 - end1);
            let want = (cos(max, min, pct), Some(cos(0.85, 0.95, pct)));
            assert_eq!(cycle.at(max, u64::from(t)), want, "update {t}");
        }
        // Where they should be, within rounding: the start, just short of the peak, the end.
        let near = |a: f64, b: f64| (a - b).abs() <= 1e-15;
        assert!(near(cycle.at(max, 0).0, initial) && near(cycle.at(max, 9).0, min));
        assert_eq!(cycle.at(max, 2), (max, Some(0.85)));
    }

    #[test]
    fn linear_and_three_phases() {
        let cycle = OneCycle::new(100)
            .pct_start(0.25)
            .linear()
            .three_phase(true);
        let (max, initial, min) = (1.0, 1.0 / 25.0, 1.0 / 25.0 / 1e4);
        // Up over 0..=24, back down to the start by 48, then to the final rate by 99, the
        // momentum down, up, and level.
        let phases = [
            (0.0, 24.0, (initial, max), (0.95, 0.85)),
            (24.0, 48.0, (max, initial), (0.85, 0.95)),
            (48.0, 99.0, (initial, min), (0.95, 0.95)),
        ];
        for t in 0..100u32 {
            let step = f64::from(t);
            let &(from, to, lr, m) = phases.iter().find(|(_, end, ..)| step <= *end).unwrap();
            let pct = (step - from) / (to - from);
            let want = (lin(lr.0, lr.1, pct), Some(lin(m.0, m.1, pct)));
            assert_eq!(cycle.at(max, u64::from(t)), want, "update {t}");
        }
        assert_eq!(cycle.at(max, 0).0, initial);
        // Without the momentum cycle there is none.
        assert_eq!(cycle.without_momentum_cycle().at(max, 36).1, None);
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let bad = [
            (OneCycle::new(0), "total_steps"),
            (OneCycle::new(10).pct_start(1.5), "pct_start"),
            (OneCycle::new(10).pct_start(0.1), "pct_start"),
            (OneCycle::new(10).div_factors(0.0, 1e4), "div_factor"),
            (
                OneCycle::new(10).div_factors(25.0, f64::NAN),
                "final_div_factor",
            ),
            (OneCycle::new(10).momentum(0.85, 1.0), "max_momentum"),
            (OneCycle::new(10).momentum(-0.1, 0.9), "base_momentum"),
        ];
        for (cycle, name) in bad {
            let err = cycle.validate().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidHyperparameter { name: n, .. } if n == name),
                "{cycle:?}: {err}"
            );
        }
        OneCycle::new(10).validate().unwrap();
    }
}
