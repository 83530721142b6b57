//! `UpdateRule`: the branches of an update, fixed when an optimizer is built (override
//! constants on the GPU), and the state slots each algorithm keeps.

use super::{Clip, NAdam, OptimizerConfig, RAdam};

/// The update kernels (AdamW is Adam with decoupled decay; NAdam's and RAdam's decoupled
/// variants likewise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Algorithm {
    Sgd = 0,
    RmsProp = 1,
    Adam = 2,
    Adagrad = 3,
    Adadelta = 4,
    Adamax = 5,
    NAdam = 6,
    RAdam = 7,
    Rprop = 8,
    Asgd = 9,
}

/// The branches of an update, fixed when the optimizer is built (override constants on the GPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct UpdateRule {
    pub algorithm: Algorithm,
    pub maximize: bool,
    /// L2 term λθ added to the gradient.
    pub l2: bool,
    /// AdamW's θ ← θ(1 − γλ).
    pub decoupled: bool,
    pub momentum: bool,
    pub nesterov: bool,
    pub centered: bool,
    pub amsgrad: bool,
    pub clip_norm: bool,
    pub clip_value: bool,
}

/// State slot `i` of an update holds the buffer named `names[i]`, if any.
pub(crate) type SlotNames = [Option<&'static str>; 3];

impl UpdateRule {
    /// The branches of an update with `config` (the optimizer's, or a group's) and the
    /// optimizer's clipping.
    pub fn new(config: &OptimizerConfig, clip: &Clip) -> Self {
        let mut rule = UpdateRule {
            algorithm: Algorithm::Sgd,
            maximize: false,
            l2: false,
            decoupled: false,
            momentum: false,
            nesterov: false,
            centered: false,
            amsgrad: false,
            clip_norm: clip.max_norm.is_some(),
            clip_value: clip.max_value.is_some(),
        };
        match *config {
            OptimizerConfig::Sgd(c) => {
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
                rule.momentum = c.momentum != 0.0;
                rule.nesterov = c.nesterov;
            }
            OptimizerConfig::RmsProp(c) => {
                rule.algorithm = Algorithm::RmsProp;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
                rule.momentum = c.momentum > 0.0;
                rule.centered = c.centered;
            }
            OptimizerConfig::Adam(c) => {
                rule.algorithm = Algorithm::Adam;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
                rule.amsgrad = c.amsgrad;
            }
            OptimizerConfig::AdamW(c) => {
                rule.algorithm = Algorithm::Adam;
                rule.maximize = c.maximize;
                rule.decoupled = true;
                rule.amsgrad = c.amsgrad;
            }
            OptimizerConfig::Adagrad(c) => {
                rule.algorithm = Algorithm::Adagrad;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
            }
            OptimizerConfig::Adadelta(c) => {
                rule.algorithm = Algorithm::Adadelta;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
            }
            OptimizerConfig::Adamax(c) => {
                rule.algorithm = Algorithm::Adamax;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
            }
            OptimizerConfig::NAdam(NAdam {
                weight_decay,
                decoupled_weight_decay,
                maximize,
                ..
            })
            | OptimizerConfig::RAdam(RAdam {
                weight_decay,
                decoupled_weight_decay,
                maximize,
                ..
            }) => {
                rule.algorithm = match config {
                    OptimizerConfig::NAdam(_) => Algorithm::NAdam,
                    _ => Algorithm::RAdam,
                };
                rule.maximize = maximize;
                rule.l2 = weight_decay != 0.0 && !decoupled_weight_decay;
                rule.decoupled = weight_decay != 0.0 && decoupled_weight_decay;
            }
            OptimizerConfig::Asgd(c) => {
                rule.algorithm = Algorithm::Asgd;
                rule.maximize = c.maximize;
                rule.l2 = c.weight_decay != 0.0;
            }
            OptimizerConfig::Rprop(c) => {
                rule.algorithm = Algorithm::Rprop;
                rule.maximize = c.maximize;
            }
        }
        rule
    }

    /// The state slots this update keeps: PyTorch's state keys, in slots 0, 1, 2.
    pub fn slot_names(&self) -> SlotNames {
        match self.algorithm {
            Algorithm::Sgd => [self.momentum.then_some("momentum_buffer"), None, None],
            Algorithm::RmsProp => [
                Some("square_avg"),
                self.momentum.then_some("momentum_buffer"),
                self.centered.then_some("grad_avg"),
            ],
            Algorithm::Adam => [
                Some("exp_avg"),
                Some("exp_avg_sq"),
                self.amsgrad.then_some("max_exp_avg_sq"),
            ],
            Algorithm::Adagrad => [Some("sum"), None, None],
            Algorithm::Adadelta => [Some("square_avg"), Some("acc_delta"), None],
            Algorithm::Adamax => [Some("exp_avg"), Some("exp_inf"), None],
            Algorithm::NAdam | Algorithm::RAdam => [Some("exp_avg"), Some("exp_avg_sq"), None],
            Algorithm::Rprop => [Some("prev"), Some("step_size"), None],
            Algorithm::Asgd => [Some("ax"), None, None],
        }
    }
}

/// The value each state slot of an update with `config` starts at.
pub(crate) fn initial_state_values(config: &OptimizerConfig) -> [f32; 3] {
    match *config {
        OptimizerConfig::Adagrad(c) => [c.initial_accumulator_value as f32, 0.0, 0.0],
        // Every step size starts at the learning rate.
        OptimizerConfig::Rprop(c) => [0.0, c.lr as f32, 0.0],
        _ => [0.0; 3],
    }
}
