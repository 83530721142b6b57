//! The host math of each step: `StepScalars`, the values an update's kernel takes as
//! immediate data, computed in f64 in PyTorch's order and rounded once to f32.

use super::core::OptimizerCore;
use super::{Adam, AdamW, NAdam, OptimizerConfig};

/// Per-step scalars, computed on the host in f64 and rounded once to f32, as PyTorch passes
/// Python floats to its kernels. Field for field the `Step` immediate data of `shaders/optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct StepScalars {
    /// γ after the schedule.
    pub lr: f32,
    pub weight_decay: f32,
    /// SGD and RMSprop momentum μ; ASGD: the average's weight μ_t (1: a copy of θ).
    pub momentum: f32,
    /// SGD: 1 − τ.
    pub one_minus_dampening: f32,
    /// The Adam family: 1 − β1, the lerp weight of the first moment.
    pub one_minus_beta1: f32,
    /// The Adam family's β2; RMSprop's α; Adadelta's ρ.
    pub beta2: f32,
    /// 1 − β2, 1 − α or 1 − ρ.
    pub one_minus_beta2: f32,
    pub eps: f32,
    /// Adam, Adamax: γ / (1 − β1^t); Adagrad: γ / (1 + (t − 1)·lr_decay); NAdam: the
    /// gradient's coefficient γ(1 − μ_t) / (1 − Π_{s≤t} μ_s); ASGD: η_t.
    pub step_size: f32,
    /// Adam, RAdam: √(1 − β2^t).
    pub bias_correction2_sqrt: f32,
    /// Decoupled weight decay (AdamW, and NAdam and RAdam with it): 1 − γλ; ASGD: 1 − λη_t.
    pub decay_factor: f32,
    /// 1 on the first update (SGD's momentum buffer starts as the gradient).
    pub first_step: u32,
    pub max_norm: f32,
    pub max_value: f32,
    /// RAdam: 1 − β1^t, which divides the first moment.
    pub bias_correction1: f32,
    /// NAdam: 1 − β2^t, which divides the second moment.
    pub bias_correction2: f32,
    /// NAdam: the first moment's coefficient γ·μ_{t+1} / (1 − Π_{s≤t+1} μ_s).
    pub momentum_step_size: f32,
    /// RAdam: the rectification r_t, or 0 while ρ_t ≤ 5 (an unrectified step).
    pub rectification: f32,
    /// Rprop: η−, the factor of a step whose gradient changed sign.
    pub eta_minus: f32,
    /// Rprop: η+, the factor of a step whose gradient kept its sign.
    pub eta_plus: f32,
    /// Rprop: the smallest step size.
    pub step_size_min: f32,
    /// Rprop: the largest step size.
    pub step_size_max: f32,
    pub _pad: [u32; 2],
}

impl OptimizerCore {
    /// Scalars for update number `step` (1-based) with `config` (the optimizer's, or a parameter
    /// group's: the same optimizer with its own rate and weight decay).
    pub fn scalars_with(&self, config: &OptimizerConfig, step: u64) -> StepScalars {
        let lr = self.schedule.lr_at(config.lr(), step.saturating_sub(1));
        // A one-cycle schedule's momentum replaces the configured one (β1 for Adam).
        let cycled = self.schedule.momentum_at(step.saturating_sub(1));
        let t = step as f64;
        let mut s = StepScalars {
            lr: lr as f32,
            first_step: u32::from(step == 1),
            max_norm: self.clip.max_norm.unwrap_or(0.0),
            max_value: self.clip.max_value.unwrap_or(0.0),
            ..StepScalars::default()
        };
        // The Adam family's shared scalars; β1 is the cycle's where a one-cycle schedule sets it.
        let family = config.adam_family();
        let beta1 = family.map_or(0.0, |f| cycled.unwrap_or(f.betas.0));
        if let Some(f) = family {
            s.weight_decay = f.weight_decay as f32;
            s.one_minus_beta1 = (1.0 - beta1) as f32;
            s.beta2 = f.betas.1 as f32;
            s.one_minus_beta2 = (1.0 - f.betas.1) as f32;
            s.eps = f.eps as f32;
            s.decay_factor = (1.0 - lr * f.weight_decay) as f32;
        }
        match *config {
            OptimizerConfig::Sgd(c) => {
                s.weight_decay = c.weight_decay as f32;
                s.momentum = cycled.unwrap_or(c.momentum) as f32;
                s.one_minus_dampening = (1.0 - c.dampening) as f32;
            }
            OptimizerConfig::RmsProp(c) => {
                s.weight_decay = c.weight_decay as f32;
                s.momentum = cycled.unwrap_or(c.momentum) as f32;
                s.beta2 = c.alpha as f32;
                s.one_minus_beta2 = (1.0 - c.alpha) as f32;
                s.eps = c.eps as f32;
            }
            OptimizerConfig::Adam(Adam { betas, .. })
            | OptimizerConfig::AdamW(AdamW { betas, .. }) => {
                s.step_size = (lr / (1.0 - beta1.powf(t))) as f32;
                s.bias_correction2_sqrt = (1.0 - betas.1.powf(t)).sqrt() as f32;
            }
            OptimizerConfig::Adagrad(c) => {
                s.weight_decay = c.weight_decay as f32;
                s.eps = c.eps as f32;
                s.step_size = (lr / (1.0 + (t - 1.0) * c.lr_decay)) as f32;
            }
            OptimizerConfig::Adadelta(c) => {
                s.weight_decay = c.weight_decay as f32;
                s.beta2 = c.rho as f32;
                s.one_minus_beta2 = (1.0 - c.rho) as f32;
                s.eps = c.eps as f32;
            }
            OptimizerConfig::Adamax(_) => {
                s.step_size = (lr / (1.0 - beta1.powf(t))) as f32;
            }
            OptimizerConfig::NAdam(c) => {
                let (mu, mu_next) = (nadam_mu(&c, beta1, t), nadam_mu(&c, beta1, t + 1.0));
                // PyTorch's own order: the f32 product, read back as a Python float, then the
                // next step's product in f64.
                let product = f64::from(self.mu_product_through(step));
                let product_next = product * mu_next;
                s.bias_correction2 = (1.0 - c.betas.1.powf(t)) as f32;
                s.step_size = (lr * (1.0 - mu) / (1.0 - product)) as f32;
                s.momentum_step_size = (lr * mu_next / (1.0 - product_next)) as f32;
            }
            OptimizerConfig::RAdam(c) => {
                let (beta2, bias_correction2) = (c.betas.1, 1.0 - c.betas.1.powf(t));
                let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
                let rho_t = rho_inf - 2.0 * t * beta2.powf(t) / bias_correction2;
                s.bias_correction1 = (1.0 - beta1.powf(t)) as f32;
                s.bias_correction2_sqrt = bias_correction2.sqrt() as f32;
                if rho_t > 5.0 {
                    s.rectification = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                        / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                        .sqrt() as f32;
                }
            }
            OptimizerConfig::Asgd(c) => {
                s.weight_decay = c.weight_decay as f32;
                // PyTorch computes η and μ at the end of each step, for the next, from that
                // step's rate and count, into f32 tensors; the first update's are γ and 1.
                let (eta, mu) = match step.checked_sub(2) {
                    None => (lr as f32, 1.0),
                    Some(before) => {
                        let (previous_lr, taken) =
                            (self.schedule.lr_at(config.lr(), before), (step - 1) as f64);
                        let decayed = 1.0 + c.lambd * previous_lr * taken;
                        let eta = previous_lr / decayed.powf(c.alpha);
                        (eta as f32, (1.0 / (taken - c.t0).max(1.0)) as f32)
                    }
                };
                s.step_size = eta;
                s.decay_factor = (1.0 - c.lambd * f64::from(eta)) as f32;
                s.momentum = mu;
            }
            OptimizerConfig::Rprop(c) => {
                s.eta_minus = c.etas.0 as f32;
                s.eta_plus = c.etas.1 as f32;
                s.step_size_min = c.step_sizes.0 as f32;
                s.step_size_max = c.step_sizes.1 as f32;
            }
        }
        s
    }

    /// NAdam's Π μ_s over updates 1..=`step` (`step` ≥ the updates taken), as PyTorch's f32
    /// `mu_product` holds it after update `step`, extended from the kept product; 1 for the
    /// other optimizers. A loaded state rebuilds it from update 1 (`restore_step`): every μ_s
    /// is a function of the configuration, the schedule's momentum and s.
    pub fn mu_product_through(&self, step: u64) -> f32 {
        let OptimizerConfig::NAdam(c) = self.config else {
            return 1.0;
        };
        let mut product = self.mu_product;
        for s in self.step.saturating_add(1)..=step {
            if product == 0.0 {
                break; // underflowed, as it does within a few thousand updates: it stays 0
            }
            let cycled = self.schedule.momentum_at(s.saturating_sub(1));
            // PyTorch multiplies its f32 tensor by the Python float, rounded to f32.
            let mu = nadam_mu(&c, cycled.unwrap_or(c.betas.0), s as f64) as f32;
            if mu == 1.0 && cycled.is_none() {
                break; // μ_s rises with s, so every later one rounds to 1 as well
            }
            product *= mu;
        }
        product
    }
}

/// NAdam's momentum coefficient for update `t`, μ_t = β1·(1 − ½·0.96^(t·ψ)), in PyTorch's
/// order of operations.
fn nadam_mu(c: &NAdam, beta1: f64, t: f64) -> f64 {
    beta1 * (1.0 - 0.5 * 0.96f64.powf(t * c.momentum_decay))
}
