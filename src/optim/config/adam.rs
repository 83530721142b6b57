//! The Adam family: a first moment (momentum) over an adaptive per-element rate, with PyTorch's
//! bias corrections: Adam, AdamW, Adamax, NAdam, RAdam.

use super::builders;

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
/// `betas(β1, β2)`, PyTorch's `betas=(β1, β2)`, for each config that has them.
macro_rules! betas {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// Sets (β1, β2).
            pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
                self.betas = (beta1, beta2);
                self
            }
        }
    )*};
}
betas!(Adam, AdamW, Adamax, NAdam, RAdam);

/// Adamax, as `torch.optim.Adamax`: Adam with the second moment replaced by an
/// exponentially weighted infinity norm, u ← max(β2·u, |g| + ε).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adamax {
    /// Learning rate γ (default 2e-3).
    pub lr: f64,
    /// (β1, β2): decay rates of the first moment and of the infinity norm (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to |g| before the maximum (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ (default 0).
    pub weight_decay: f64,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for Adamax {
    fn default() -> Self {
        Self {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// NAdam, as `torch.optim.NAdam`: Adam with Nesterov momentum, whose momentum coefficient
/// μ_t = β1·(1 − ½·0.96^(t·ψ)) warms up with the momentum decay ψ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NAdam {
    /// Learning rate γ (default 2e-3).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Weight decay λ: an L2 penalty, or decoupled as AdamW's with `decoupled_weight_decay`
    /// (default 0).
    pub weight_decay: f64,
    /// ψ, how fast μ_t approaches β1 (default 4e-3).
    pub momentum_decay: f64,
    /// θ ← θ(1 − γλ) instead of adding λθ to the gradient (NAdamW).
    pub decoupled_weight_decay: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for NAdam {
    fn default() -> Self {
        Self {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

/// RAdam, as `torch.optim.RAdam`: Adam whose adaptive rate is rectified by the variance of
/// its estimate, and left out (a bias-corrected momentum step) while that variance is
/// intractable, the first steps for the default β2 (ρ_t ≤ 5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RAdam {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Weight decay λ: an L2 penalty, or decoupled as AdamW's with `decoupled_weight_decay`
    /// (default 0).
    pub weight_decay: f64,
    /// θ ← θ(1 − γλ) instead of adding λθ to the gradient.
    pub decoupled_weight_decay: bool,
    /// Ascend instead of descend.
    pub maximize: bool,
}

impl Default for RAdam {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

builders!(Adamax {
    lr: f64,
    eps: f64,
    weight_decay: f64,
    maximize: bool
});
builders!(NAdam {
    lr: f64,
    eps: f64,
    weight_decay: f64,
    momentum_decay: f64,
    decoupled_weight_decay: bool,
    maximize: bool
});
builders!(RAdam {
    lr: f64,
    eps: f64,
    weight_decay: f64,
    decoupled_weight_decay: bool,
    maximize: bool
});
