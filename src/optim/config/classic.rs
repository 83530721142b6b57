//! Gradient descent with or without momentum, averaged, and the per-element adaptive rates
//! that keep no first moment: SGD, ASGD, RMSprop, Adagrad, Adadelta, Rprop.

use super::builders;

/// Stochastic gradient descent, optionally with (Nesterov) momentum, as `torch.optim.SGD`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate γ (PyTorch's default 1e-3).
    pub lr: f64,
    /// Momentum factor μ (0: plain SGD).
    pub momentum: f64,
    /// Dampening τ of the momentum buffer's gradient term.
    pub dampening: f64,
    /// L2 penalty λ, added to the gradient as λθ.
    pub weight_decay: f64,
    /// Nesterov momentum; needs μ > 0 and τ = 0.
    pub nesterov: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for Sgd {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

/// Averaged stochastic gradient descent, as `torch.optim.ASGD`: plain descent whose rate η
/// decays with the update count, θ ← θ·(1 − λη) − η·g, beside a running average of the
/// parameters (the state buffer `ax`) that starts averaging after update `t0`.
///
/// Update t's rate is `lr / (1 + lambd·lr·(t − 1))^alpha` (the first update's is `lr`), from
/// the rate the schedule gave update t − 1, as PyTorch computes it at the end of each step;
/// the average's weight is `1 / max(1, t − 1 − t0)`, so `ax` is a copy of θ through update
/// `t0 + 2` and an average from the next. The average is optimizer state, as PyTorch keeps
/// it: read it with [`Optimizer::state`](crate::optim::Optimizer::state) (`ax`) or save it in
/// a checkpoint. A run that sets the rate itself between updates (`reduce_lr_on_plateau`,
/// `swa`) is refused: PyTorch computes the next η from the rate before the change, which this
/// optimizer does not keep (after [`set_lr`](crate::optim::Optimizer::set_lr), the next
/// update's η follows the new rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Asgd {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// The decay term λ (default 1e-4).
    pub lambd: f64,
    /// The power of η's decay (default 0.75).
    pub alpha: f64,
    /// The update count after which the average starts (default 1e6).
    pub t0: f64,
    /// L2 penalty, added to the gradient as λ_wd·θ.
    pub weight_decay: f64,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for Asgd {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            lambd: 1e-4,
            alpha: 0.75,
            t0: 1e6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

builders!(Asgd {
    lr: f64,
    lambd: f64,
    alpha: f64,
    t0: f64,
    weight_decay: f64,
    maximize: bool
});

/// RMSprop, as `torch.optim.RMSprop`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsProp {
    /// Learning rate γ (default 1e-2).
    pub lr: f64,
    /// Smoothing constant α of the squared-gradient average (default 0.99).
    pub alpha: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ.
    pub weight_decay: f64,
    /// Momentum factor μ (0: none).
    pub momentum: f64,
    /// Normalise by the gradient's estimated variance instead of its second moment.
    pub centered: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for RmsProp {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

/// Adagrad, as `torch.optim.Adagrad`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adagrad {
    /// Learning rate γ (default 1e-2).
    pub lr: f64,
    /// The rate at step t is γ / (1 + (t − 1)·lr_decay).
    pub lr_decay: f64,
    /// L2 penalty λ.
    pub weight_decay: f64,
    /// Starting value of the squared-gradient sum.
    pub initial_accumulator_value: f64,
    /// Added to the denominator (default 1e-10).
    pub eps: f64,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for Adagrad {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

builders!(Sgd {
    lr: f64,
    momentum: f64,
    dampening: f64,
    weight_decay: f64,
    nesterov: bool,
    maximize: bool
});
builders!(RmsProp {
    lr: f64,
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    momentum: f64,
    centered: bool,
    maximize: bool
});
builders!(Adagrad {
    lr: f64,
    lr_decay: f64,
    weight_decay: f64,
    initial_accumulator_value: f64,
    eps: f64,
    maximize: bool
});

/// Adadelta, as `torch.optim.Adadelta`: each step is the gradient scaled by the ratio of two
/// running RMS values, of past updates over past gradients, times γ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adadelta {
    /// Learning rate γ, which scales the delta (default 1.0).
    pub lr: f64,
    /// ρ, the decay rate of both running averages (default 0.9).
    pub rho: f64,
    /// Added inside both square roots (default 1e-6).
    pub eps: f64,
    /// L2 penalty λ.
    pub weight_decay: f64,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for Adadelta {
    fn default() -> Self {
        Self {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

builders!(Adadelta {
    lr: f64,
    rho: f64,
    eps: f64,
    weight_decay: f64,
    maximize: bool
});

/// Rprop, as `torch.optim.Rprop`: each parameter moves by its own step size in the direction
/// against its gradient's sign; the step grows by η+ while the sign holds and shrinks by η−
/// when it flips (that update is skipped). Meant for full-batch descent.
///
/// The learning rate is only every step size's starting value, as in PyTorch: after the first
/// update nothing reads it, so a schedule other than constant is refused and
/// [`set_lr`](crate::CpuOptimizer::set_lr) changes no step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rprop {
    /// The initial step size (default 1e-2).
    pub lr: f64,
    /// (η−, η+): how much a step shrinks and grows, 0 < η− < 1 < η+ (default (0.5, 1.2)).
    pub etas: (f64, f64),
    /// (smallest, largest) step size (default (1e-6, 50)).
    pub step_sizes: (f64, f64),
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for Rprop {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            etas: (0.5, 1.2),
            step_sizes: (1e-6, 50.0),
            maximize: false,
        }
    }
}

builders!(Rprop {
    lr: f64,
    maximize: bool
});

impl Rprop {
    /// Sets (η−, η+).
    pub fn etas(mut self, eta_minus: f64, eta_plus: f64) -> Self {
        self.etas = (eta_minus, eta_plus);
        self
    }

    /// Sets the (smallest, largest) step size.
    pub fn step_sizes(mut self, min: f64, max: f64) -> Self {
        self.step_sizes = (min, max);
        self
    }
}
