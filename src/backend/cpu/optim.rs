//! `cpu::update`: the reference for `shaders/optim.wgsl`, and the optimizer on host slices.

use super::{CpuArena, sum_squares};
use crate::error::{Error, Result};
use crate::optim::{
    Algorithm, ArenaGroup, OptimizerConfig, OptimizerCore, OptimizerState, Segment, StepScalars,
    UpdateRule, UpdateStats,
};

/// `torch.lerp`'s formula, including its switch at weight 0.5.
fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

/// The optimizer state of one element, by slot (see `shaders/optim.wgsl` for the slot map).
struct Slots<'a>([Option<&'a mut f32>; 3]);

impl Slots<'_> {
    fn get(&self, slot: usize) -> f32 {
        self.0[slot].as_deref().copied().unwrap_or(0.0)
    }
    fn set(&mut self, slot: usize, value: f32) {
        if let Some(v) = self.0[slot].as_deref_mut() {
            *v = value;
        }
    }
}

/// `torch.sign`: 0 at 0 (`f32::signum` gives 1 there).
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// The Adam family's moments, updated in slots 0 and 1 and returned: m ← lerp(m, g, 1 − β1),
/// v ← v·β2 + ((1 − β2)·g)·g (the twin of `moments` in `shaders/optim.wgsl`).
fn moments(state: &mut Slots, g: f32, s: &StepScalars) -> (f32, f32) {
    let m = lerp(state.get(0), g, s.one_minus_beta1);
    state.set(0, m);
    let v = state.get(1) * s.beta2 + (s.one_minus_beta2 * g) * g;
    state.set(1, v);
    (m, v)
}

/// The new θ of one element given its (already clipped) gradient: the twin of `update_element`
/// in `shaders/optim.wgsl`, operation for operation.
fn update_element(
    rule: &UpdateRule,
    s: &StepScalars,
    theta: f32,
    g: f32,
    state: &mut Slots,
) -> f32 {
    let mut g = if rule.maximize { -g } else { g };
    let theta = if rule.decoupled {
        theta * s.decay_factor
    } else {
        theta
    };
    if rule.l2 {
        g += s.weight_decay * theta;
    }
    match rule.algorithm {
        Algorithm::Sgd => {
            if rule.momentum {
                let b = if s.first_step == 1 {
                    g
                } else {
                    state.get(0) * s.momentum + s.one_minus_dampening * g
                };
                state.set(0, b);
                g = if rule.nesterov { g + s.momentum * b } else { b };
            }
            theta + (-s.lr) * g
        }
        Algorithm::RmsProp => {
            let v = state.get(0) * s.beta2 + (s.one_minus_beta2 * g) * g;
            state.set(0, v);
            let d = if rule.centered {
                let mean = lerp(state.get(2), g, s.one_minus_beta2);
                state.set(2, mean);
                (v - mean * mean).sqrt() + s.eps
            } else {
                v.sqrt() + s.eps
            };
            if rule.momentum {
                let b = state.get(1) * s.momentum + g / d;
                state.set(1, b);
                theta + (-s.lr) * b
            } else {
                theta + ((-s.lr) * g) / d
            }
        }
        Algorithm::Adam => {
            let (m, mut v) = moments(state, g, s);
            if rule.amsgrad {
                v = state.get(2).max(v);
                state.set(2, v);
            }
            let denom = v.sqrt() / s.bias_correction2_sqrt + s.eps;
            theta + ((-s.step_size) * m) / denom
        }
        Algorithm::Adagrad => {
            let sum = state.get(0) + g * g;
            state.set(0, sum);
            theta + ((-s.step_size) * g) / (sum.sqrt() + s.eps)
        }
        Algorithm::Adadelta => {
            let v = state.get(0) * s.beta2 + (s.one_minus_beta2 * g) * g;
            state.set(0, v);
            let delta = (state.get(1) + s.eps).sqrt() / (v + s.eps).sqrt() * g;
            state.set(
                1,
                state.get(1) * s.beta2 + (s.one_minus_beta2 * delta) * delta,
            );
            theta + (-s.lr) * delta
        }
        Algorithm::Adamax => {
            let m = lerp(state.get(0), g, s.one_minus_beta1);
            state.set(0, m);
            let u = (state.get(1) * s.beta2).max(g.abs() + s.eps);
            state.set(1, u);
            theta + ((-s.step_size) * m) / u
        }
        Algorithm::NAdam => {
            let (m, v) = moments(state, g, s);
            let denom = (v / s.bias_correction2).sqrt() + s.eps;
            let theta = theta + ((-s.step_size) * g) / denom;
            theta + ((-s.momentum_step_size) * m) / denom
        }
        Algorithm::Rprop => {
            // The step size grows while the gradient keeps its sign and shrinks when it flips
            // (that update is skipped and forgotten); the first update starts from γ.
            let product = g * state.get(0);
            let factor = if product > 0.0 {
                s.eta_plus
            } else if product < 0.0 {
                s.eta_minus
            } else {
                1.0
            };
            let size = if s.first_step == 1 {
                s.lr
            } else {
                state.get(1)
            };
            let size = (size * factor).max(s.step_size_min).min(s.step_size_max);
            state.set(1, size);
            let g = if product < 0.0 { 0.0 } else { g };
            state.set(0, g);
            theta + -sign(g) * size
        }
        Algorithm::Asgd => {
            let theta = theta * s.decay_factor;
            let theta = theta + (-s.step_size) * g;
            // The average: a copy of θ while its weight is 1, then ax + (θ − ax)·μ.
            let ax = state.get(0);
            state.set(
                0,
                if s.momentum == 1.0 {
                    theta
                } else {
                    ax + (theta - ax) * s.momentum
                },
            );
            theta
        }
        Algorithm::RAdam => {
            let (m, v) = moments(state, g, s);
            let step = m / s.bias_correction1 * s.lr;
            if s.rectification > 0.0 {
                let adaptive = s.bias_correction2_sqrt / (v.sqrt() + s.eps);
                theta - step * adaptive * s.rectification
            } else {
                theta - step
            }
        }
    }
}

/// `torch.nn.utils.clip_grad_norm_`'s factor min(1, max_norm / (‖g‖ + 1e-6)) over the
/// gradient of every parameter trained (each of the `trained` runs of `grads`; a frozen one
/// has none in PyTorch), 1 without clipping by norm.
fn clip_scale<'a>(
    rule: &UpdateRule,
    s: &StepScalars,
    grads: &[f32],
    trained: impl Iterator<Item = &'a Segment>,
) -> f32 {
    if !rule.clip_norm {
        return 1.0;
    }
    let squares: f64 = trained
        .map(|segment| {
            let run = ndarray::aview1(&grads[segment.range.clone()]);
            sum_squares(run.insert_axis(ndarray::Axis(0)))
        })
        .sum();
    (s.max_norm / (squares.sqrt() as f32 + 1e-6)).min(1.0)
}

/// One update of `params` from `grads` (a run of the arena with one group's rule and
/// scalars, its state in `slots`), the twin of the `update` kernel: the gradient scaled by
/// `scale` (clipping by the whole arena's norm) and clamped, the rule, and, when `monitor` is
/// set, the monitoring sums (Σg², Σθ², ΣΔθ²) in f64.
pub(crate) fn update(
    rule: &UpdateRule,
    s: &StepScalars,
    scale: f32,
    params: &mut [f32],
    grads: &[f32],
    slots: [Option<&mut [f32]>; 3],
    monitor: bool,
) -> [f64; 3] {
    let [mut s0, mut s1, mut s2] = slots;
    let mut sums = [0.0f64; 3];
    for (i, (theta, &raw)) in params.iter_mut().zip(grads).enumerate() {
        let mut g = raw;
        if rule.clip_norm {
            g *= scale;
        }
        if rule.clip_value {
            g = g.clamp(-s.max_value, s.max_value);
        }
        let mut state = Slots([
            s0.as_deref_mut().map(|v| &mut v[i]),
            s1.as_deref_mut().map(|v| &mut v[i]),
            s2.as_deref_mut().map(|v| &mut v[i]),
        ]);
        let before = *theta;
        *theta = update_element(rule, s, before, g, &mut state);
        if monitor {
            let delta = f64::from(*theta - before);
            sums[0] += f64::from(raw) * f64::from(raw);
            sums[1] += f64::from(before) * f64::from(before);
            sums[2] += delta * delta;
        }
    }
    sums
}

/// An optimizer over a parameter arena held in host memory.
///
/// ```
/// use steepest::{Adam, CpuOptimizer};
/// # fn main() -> steepest::Result<()> {
/// let mut params = vec![1.0f32, -2.0, 3.0];
/// let mut adam = CpuOptimizer::new(Adam::default().lr(0.1), params.len())?;
/// let grads: Vec<f32> = params.iter().map(|p| 2.0 * p).collect(); // ∇ of Σθ²
/// adam.step(&mut params, &grads)?;
/// assert!((params[0] - 0.9).abs() < 1e-6); // Adam's first step moves each θ by γ
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct CpuOptimizer {
    pub(crate) core: OptimizerCore,
    slots: [Option<Vec<f32>>; 3],
    stats: Option<UpdateStats>,
    /// Reused contiguous copies of a model's tensors (see `step_arena`).
    flat: (Vec<f32>, Vec<f32>),
}

impl CpuOptimizer {
    /// An optimizer for an arena of `len` parameters; fails on invalid hyperparameters.
    pub fn new(config: impl Into<OptimizerConfig>, len: usize) -> Result<Self> {
        let core = OptimizerCore::new(config.into(), len)?;
        let mut initial = core.initial_state_values().into_iter();
        let slots = core
            .slot_names()
            .map(|name| initial.next().and_then(|v| name.map(|_| vec![v; len])));
        Ok(Self {
            core,
            slots,
            stats: None,
            flat: (Vec::new(), Vec::new()),
        })
    }

    /// Applies one update to `params` from `grads` (both of the arena's length).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) -> Result<()> {
        self.core.check_lengths(params.len(), grads.len())?;
        let step = self.core.next_step()?;
        let groups = self.core.group_steps(step)?;
        // Group 0, the optimizer's own, is never frozen; clipping is the same in every group.
        let Some((rule, scalars)) = &groups[0] else {
            return Err(Error::State {
                optimizer: self.core.config.name(),
                detail: "the optimizer's own settings are frozen".into(),
            });
        };
        let scale = clip_scale(rule, scalars, grads, self.core.trained_segments());
        let mut sums = [0.0f64; 3];
        // Each run of the arena with its group's rule and scalars, in arena order (the
        // monitoring sums, in f64, add each run's in turn); a frozen group's runs untouched.
        for segment in &self.core.segments {
            let Some((rule, scalars)) = &groups[segment.group] else {
                continue;
            };
            let range = segment.range.clone();
            let slots = self
                .slots
                .each_mut()
                .map(|slot| slot.as_deref_mut().map(|v| &mut v[range.clone()]));
            let part = update(
                rule,
                scalars,
                scale,
                &mut params[range.clone()],
                &grads[range],
                slots,
                self.core.monitor,
            );
            for (total, x) in sums.iter_mut().zip(part) {
                *total += x;
            }
        }
        self.core.finish_step(step);
        self.stats = self.core.monitor.then(|| UpdateStats {
            grad_norm: sums[0].sqrt() as f32,
            param_norm: sums[1].sqrt() as f32,
            update_norm: sums[2].sqrt() as f32,
        });
        Ok(())
    }

    /// One update of a model's tensors. The update works on one contiguous arena, so the
    /// tensors are copied into reused buffers and back: O(parameters), small beside the
    /// O(batch · parameters) matmuls of a training step.
    pub(crate) fn step_arena(&mut self, params: &mut CpuArena, grads: &CpuArena) -> Result<()> {
        let (mut flat_params, mut flat_grads) = std::mem::take(&mut self.flat);
        flat_params.clear();
        flat_grads.clear();
        params.flatten_into(&mut flat_params);
        grads.flatten_into(&mut flat_grads);
        let result = self.step(&mut flat_params, &flat_grads);
        if result.is_ok() {
            params.assign(&flat_params);
        }
        self.flat = (flat_params, flat_grads);
        result
    }

    /// Norms of the last step, if monitoring is on and a step was taken.
    pub fn stats(&self) -> Option<UpdateStats> {
        self.stats
    }

    /// A copy of the state: step count and every state buffer by PyTorch's name.
    pub fn state(&self) -> OptimizerState {
        OptimizerState {
            optimizer: self.core.config.name().to_string(),
            step: self.core.step,
            buffers: self
                .core
                .slot_names()
                .iter()
                .zip(&self.slots)
                .filter_map(|(name, values)| Some((name.as_ref()?.to_string(), values.clone()?)))
                .collect(),
        }
    }

    /// Trains the arena's `groups` with their own learning rate and weight decay (or not at all:
    /// a frozen group) from the next
    /// update on ([`ArenaGroup`]); the rest keeps this optimizer's settings. Fails, changing
    /// nothing, on a bad setting or a range outside the arena or in two groups.
    pub fn with_groups(mut self, groups: Vec<ArenaGroup>) -> Result<Self> {
        self.core.set_groups(groups)?;
        Ok(self)
    }

    /// Restores a state read by [`CpuOptimizer::state`] (or a `GpuOptimizer`'s); on error the
    /// current state is kept.
    pub fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.slots = self.core.check_state(state)?;
        self.core.restore_step(state.step);
        Ok(())
    }
}

crate::optim::common_optimizer_methods!(CpuOptimizer);

impl crate::optim::Optimizer<super::CpuBackend> for CpuOptimizer {
    fn step(&mut self, params: &mut CpuArena, grads: &CpuArena) -> Result<()> {
        self.step_arena(params, grads)
    }

    fn stats_into(&self, totals: &mut ndarray::Array2<f32>, slot: usize) -> Result<()> {
        crate::backend::totals_dims("optimizer stats", totals.dim(), slot, 3)?;
        let sums = self.stats().map_or([0.0; 3], |s| {
            [s.grad_norm, s.param_norm, s.update_norm].map(|n| n * n)
        });
        for (i, v) in sums.into_iter().enumerate() {
            totals[[0, slot + i]] = v;
        }
        Ok(())
    }

    fn state(&self) -> Result<OptimizerState> {
        Ok(CpuOptimizer::state(self))
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        CpuOptimizer::load_state(self, state)
    }

    fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.core.set_lr(lr)
    }

    fn base_lr(&self) -> f64 {
        self.core.config.lr()
    }

    fn set_schedule(&mut self, schedule: crate::optim::LrSchedule) -> Result<()> {
        self.core.set_schedule(schedule)
    }

    fn lr_at(&self, update: u64) -> f64 {
        self.core.lr_for_update(update)
    }
}
