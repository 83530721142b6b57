//! Optimizer configurations: PyTorch's arguments, PyTorch's defaults, checked when built.

use crate::error::{Error, Result};

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

/// Adam, as `torch.optim.Adam` (L2 weight decay added to the gradient).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// (β1, β2): decay rates of the first and second moment (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ (default 0).
    pub weight_decay: f64,
    /// Use the maximum of all second-moment estimates so far (AMSGrad).
    pub amsgrad: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// AdamW, as `torch.optim.AdamW`: Adam with decoupled weight decay θ ← θ(1 − γλ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay λ (default 1e-2).
    pub weight_decay: f64,
    /// AMSGrad variant.
    pub amsgrad: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for AdamW {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
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

/// Builder methods named after PyTorch's arguments, e.g. `Adam::default().lr(3e-4)`.
macro_rules! builders {
    ($ty:ident { $($field:ident: $t:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets `", stringify!($field), "` (PyTorch's argument of the same name).")]
                pub fn $field(mut self, $field: $t) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
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
builders!(Adam {
    lr: f64,
    eps: f64,
    weight_decay: f64,
    amsgrad: bool,
    maximize: bool
});
builders!(AdamW {
    lr: f64,
    eps: f64,
    weight_decay: f64,
    amsgrad: bool,
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

impl Adam {
    /// Sets (β1, β2).
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.betas = (beta1, beta2);
        self
    }
}

impl AdamW {
    /// Sets (β1, β2).
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.betas = (beta1, beta2);
        self
    }
}

/// Any optimizer's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerConfig {
    /// [`Sgd`]
    Sgd(Sgd),
    /// [`RmsProp`]
    RmsProp(RmsProp),
    /// [`Adam`]
    Adam(Adam),
    /// [`AdamW`]
    AdamW(AdamW),
    /// [`Adagrad`]
    Adagrad(Adagrad),
}

macro_rules! into_config {
    ($($ty:ident),*) => {$(
        impl From<$ty> for OptimizerConfig {
            fn from(config: $ty) -> Self {
                OptimizerConfig::$ty(config)
            }
        }
    )*};
}
into_config!(Sgd, RmsProp, Adam, AdamW, Adagrad);

/// Checks one hyperparameter against `ok`, the condition PyTorch (or DESIGN.md) imposes, both
/// as given and as the kernels apply it (in f32): 1e-50 is > 0 but rounds to 0 in f32, 1e300
/// is finite but overflows f32.
fn require(
    optimizer: &'static str,
    name: &str,
    value: f64,
    ok: impl Fn(f64) -> bool,
    rule: &str,
) -> Result<()> {
    let applied = value as f32;
    let fail = |rule: String| {
        Err(Error::InvalidHyperparameter {
            optimizer,
            name: name.to_string(),
            value,
            rule,
        })
    };
    if !(ok(value) && value.is_finite()) {
        return fail(rule.to_string());
    }
    if !(applied.is_finite() && ok(f64::from(applied))) {
        return fail(format!(
            "{rule}, also in f32 as the kernels apply it (there it is {applied})"
        ));
    }
    Ok(())
}

fn non_negative(optimizer: &'static str, name: &str, value: f64) -> Result<()> {
    require(optimizer, name, value, |v| v >= 0.0, "must be ≥ 0")
}

fn positive(optimizer: &'static str, name: &str, value: f64) -> Result<()> {
    require(optimizer, name, value, |v| v > 0.0, "must be > 0")
}

fn unit_interval(optimizer: &'static str, name: &str, value: f64) -> Result<()> {
    require(
        optimizer,
        name,
        value,
        |v| (0.0..1.0).contains(&v),
        "must be in [0, 1)",
    )
}

impl OptimizerConfig {
    /// The optimizer's name as PyTorch spells its class.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "SGD",
            OptimizerConfig::RmsProp(_) => "RMSprop",
            OptimizerConfig::Adam(_) => "Adam",
            OptimizerConfig::AdamW(_) => "AdamW",
            OptimizerConfig::Adagrad(_) => "Adagrad",
        }
    }

    /// The base learning rate γ.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::RmsProp(c) => c.lr,
            OptimizerConfig::Adam(c) => c.lr,
            OptimizerConfig::AdamW(c) => c.lr,
            OptimizerConfig::Adagrad(c) => c.lr,
        }
    }

    /// The same optimizer with base learning rate `lr`.
    pub fn with_lr(self, lr: f64) -> Self {
        match self {
            OptimizerConfig::Sgd(c) => OptimizerConfig::Sgd(Sgd { lr, ..c }),
            OptimizerConfig::RmsProp(c) => OptimizerConfig::RmsProp(RmsProp { lr, ..c }),
            OptimizerConfig::Adam(c) => OptimizerConfig::Adam(Adam { lr, ..c }),
            OptimizerConfig::AdamW(c) => OptimizerConfig::AdamW(AdamW { lr, ..c }),
            OptimizerConfig::Adagrad(c) => OptimizerConfig::Adagrad(Adagrad { lr, ..c }),
        }
    }

    /// Every hyperparameter in range, or [`Error::InvalidHyperparameter`] naming the first that
    /// is not. Non-finite values are always rejected.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        non_negative(name, "lr", self.lr())?;
        match *self {
            OptimizerConfig::Sgd(c) => {
                non_negative(name, "momentum", c.momentum)?;
                non_negative(name, "dampening", c.dampening)?;
                non_negative(name, "weight_decay", c.weight_decay)?;
                if c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0) {
                    return Err(Error::InvalidHyperparameter {
                        optimizer: name,
                        name: "nesterov".into(),
                        value: c.momentum,
                        rule: format!(
                            "Nesterov momentum requires momentum > 0 and dampening = 0 (momentum = {}, dampening = {})",
                            c.momentum, c.dampening
                        ),
                    });
                }
            }
            OptimizerConfig::RmsProp(c) => {
                non_negative(name, "alpha", c.alpha)?;
                positive(name, "eps", c.eps)?;
                non_negative(name, "weight_decay", c.weight_decay)?;
                non_negative(name, "momentum", c.momentum)?;
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
                unit_interval(name, "beta1", betas.0)?;
                unit_interval(name, "beta2", betas.1)?;
                positive(name, "eps", eps)?;
                non_negative(name, "weight_decay", weight_decay)?;
            }
            OptimizerConfig::Adagrad(c) => {
                non_negative(name, "lr_decay", c.lr_decay)?;
                non_negative(name, "weight_decay", c.weight_decay)?;
                non_negative(
                    name,
                    "initial_accumulator_value",
                    c.initial_accumulator_value,
                )?;
                positive(name, "eps", c.eps)?;
            }
        }
        Ok(())
    }
}
