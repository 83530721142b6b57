//! Optimizer configurations: PyTorch's arguments, PyTorch's defaults, checked when built. The
//! structs live by family (`classic.rs`, `adam.rs`); [`OptimizerConfig`] holds any of them.

mod adam;
mod classic;

pub use adam::{Adam, AdamW, Adamax, NAdam, RAdam};
pub use classic::{Adadelta, Adagrad, Asgd, RmsProp, Rprop, Sgd};

use crate::error::{Error, Result};

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

use builders;

/// Any optimizer's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
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
    /// [`Adadelta`]
    Adadelta(Adadelta),
    /// [`Adamax`]
    Adamax(Adamax),
    /// [`NAdam`]
    NAdam(NAdam),
    /// [`RAdam`]
    RAdam(RAdam),
    /// [`Rprop`]
    Rprop(Rprop),
    /// [`Asgd`]
    Asgd(Asgd),
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
into_config!(
    Sgd, RmsProp, Adam, AdamW, Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop, Asgd
);

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

/// What every optimizer of the Adam family (Adam, AdamW, Adamax, NAdam, RAdam) has: its
/// moments' decay rates, ε and the weight decay.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamFamily {
    /// (β1, β2).
    pub betas: (f64, f64),
    pub eps: f64,
    /// λ, as an L2 term or decoupled, as the optimizer applies it.
    pub weight_decay: f64,
}

impl OptimizerConfig {
    /// The Adam family's shared settings; `None` for the other optimizers.
    pub(crate) fn adam_family(&self) -> Option<AdamFamily> {
        let family = |betas, eps, weight_decay| {
            Some(AdamFamily {
                betas,
                eps,
                weight_decay,
            })
        };
        match *self {
            OptimizerConfig::Adam(c) => family(c.betas, c.eps, c.weight_decay),
            OptimizerConfig::AdamW(c) => family(c.betas, c.eps, c.weight_decay),
            OptimizerConfig::Adamax(c) => family(c.betas, c.eps, c.weight_decay),
            OptimizerConfig::NAdam(c) => family(c.betas, c.eps, c.weight_decay),
            OptimizerConfig::RAdam(c) => family(c.betas, c.eps, c.weight_decay),
            _ => None,
        }
    }

    /// The optimizer's name as PyTorch spells its class.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "SGD",
            OptimizerConfig::RmsProp(_) => "RMSprop",
            OptimizerConfig::Adam(_) => "Adam",
            OptimizerConfig::AdamW(_) => "AdamW",
            OptimizerConfig::Adagrad(_) => "Adagrad",
            OptimizerConfig::Adadelta(_) => "Adadelta",
            OptimizerConfig::Adamax(_) => "Adamax",
            OptimizerConfig::NAdam(_) => "NAdam",
            OptimizerConfig::RAdam(_) => "RAdam",
            OptimizerConfig::Rprop(_) => "Rprop",
            OptimizerConfig::Asgd(_) => "ASGD",
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
            OptimizerConfig::Adadelta(c) => c.lr,
            OptimizerConfig::Adamax(c) => c.lr,
            OptimizerConfig::NAdam(c) => c.lr,
            OptimizerConfig::RAdam(c) => c.lr,
            OptimizerConfig::Rprop(c) => c.lr,
            OptimizerConfig::Asgd(c) => c.lr,
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
            OptimizerConfig::Adadelta(c) => OptimizerConfig::Adadelta(Adadelta { lr, ..c }),
            OptimizerConfig::Adamax(c) => OptimizerConfig::Adamax(Adamax { lr, ..c }),
            OptimizerConfig::NAdam(c) => OptimizerConfig::NAdam(NAdam { lr, ..c }),
            OptimizerConfig::RAdam(c) => OptimizerConfig::RAdam(RAdam { lr, ..c }),
            OptimizerConfig::Rprop(c) => OptimizerConfig::Rprop(Rprop { lr, ..c }),
            OptimizerConfig::Asgd(c) => OptimizerConfig::Asgd(Asgd { lr, ..c }),
        }
    }

    /// The weight decay λ (0 for Rprop, which has none).
    pub fn weight_decay(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.weight_decay,
            OptimizerConfig::RmsProp(c) => c.weight_decay,
            OptimizerConfig::Adagrad(c) => c.weight_decay,
            OptimizerConfig::Adadelta(c) => c.weight_decay,
            OptimizerConfig::Asgd(c) => c.weight_decay,
            OptimizerConfig::Rprop(_) => 0.0,
            _ => self.adam_family().map_or(0.0, |f| f.weight_decay),
        }
    }

    /// The same optimizer with weight decay `weight_decay`, or `None` for Rprop, which has no
    /// weight decay.
    pub fn with_weight_decay(self, weight_decay: f64) -> Option<Self> {
        Some(match self {
            OptimizerConfig::Sgd(c) => OptimizerConfig::Sgd(Sgd { weight_decay, ..c }),
            OptimizerConfig::RmsProp(c) => OptimizerConfig::RmsProp(RmsProp { weight_decay, ..c }),
            OptimizerConfig::Adam(c) => OptimizerConfig::Adam(Adam { weight_decay, ..c }),
            OptimizerConfig::AdamW(c) => OptimizerConfig::AdamW(AdamW { weight_decay, ..c }),
            OptimizerConfig::Adagrad(c) => OptimizerConfig::Adagrad(Adagrad { weight_decay, ..c }),
            OptimizerConfig::Adadelta(c) => {
                OptimizerConfig::Adadelta(Adadelta { weight_decay, ..c })
            }
            OptimizerConfig::Adamax(c) => OptimizerConfig::Adamax(Adamax { weight_decay, ..c }),
            OptimizerConfig::NAdam(c) => OptimizerConfig::NAdam(NAdam { weight_decay, ..c }),
            OptimizerConfig::RAdam(c) => OptimizerConfig::RAdam(RAdam { weight_decay, ..c }),
            OptimizerConfig::Asgd(c) => OptimizerConfig::Asgd(Asgd { weight_decay, ..c }),
            OptimizerConfig::Rprop(_) => return None,
        })
    }

    /// Every hyperparameter in range, or [`Error::InvalidHyperparameter`] naming the first that
    /// is not. Non-finite values are always rejected.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        non_negative(name, "lr", self.lr())?;
        if let Some(family) = self.adam_family() {
            unit_interval(name, "beta1", family.betas.0)?;
            unit_interval(name, "beta2", family.betas.1)?;
            positive(name, "eps", family.eps)?;
            non_negative(name, "weight_decay", family.weight_decay)?;
        }
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
            OptimizerConfig::NAdam(c) => {
                non_negative(name, "momentum_decay", c.momentum_decay)?;
            }
            OptimizerConfig::Adam(_)
            | OptimizerConfig::AdamW(_)
            | OptimizerConfig::Adamax(_)
            | OptimizerConfig::RAdam(_) => {}
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
            OptimizerConfig::Adadelta(c) => {
                require(
                    name,
                    "rho",
                    c.rho,
                    |v| (0.0..=1.0).contains(&v),
                    "must be in [0, 1]",
                )?;
                positive(name, "eps", c.eps)?;
                non_negative(name, "weight_decay", c.weight_decay)?;
            }
            OptimizerConfig::Asgd(c) => {
                non_negative(name, "lambd", c.lambd)?;
                non_negative(name, "alpha", c.alpha)?;
                non_negative(name, "weight_decay", c.weight_decay)?;
                // PyTorch leaves t0 unchecked and uses it in f64 only: any finite count works.
                if !c.t0.is_finite() {
                    return Err(Error::InvalidHyperparameter {
                        optimizer: name,
                        name: "t0".into(),
                        value: c.t0,
                        rule: "must be finite".into(),
                    });
                }
            }
            OptimizerConfig::Rprop(c) => {
                let (minus, plus) = c.etas;
                require(
                    name,
                    "eta_minus",
                    minus,
                    |v| v > 0.0 && v < 1.0,
                    "must be in (0, 1)",
                )?;
                require(name, "eta_plus", plus, |v| v > 1.0, "must be > 1")?;
                let (min, max) = c.step_sizes;
                non_negative(name, "step_size_min", min)?;
                require(
                    name,
                    "step_size_max",
                    max,
                    |v| v >= min,
                    &format!("must be ≥ step_size_min ({min})"),
                )?;
            }
        }
        Ok(())
    }
}
