//! Parameter groups (PyTorch's `param_groups`): parameters picked by name that train with
//! settings of their own (or are frozen), within the one optimizer and its one update per
//! step. `ParamGroup` picks by name (what a [`crate::Trainer`] takes) and resolves to
//! `ArenaGroup`s, the same as ranges of an arena (what an optimizer takes, `segments.rs`).

use super::OptimizerConfig;
use super::segments::ArenaGroup;
use crate::error::{Error, Result};

/// What a parameter group changes: the learning rate, as a factor of the optimizer's, the
/// weight decay and any other hyperparameter (`optimizer`); or that its parameters are frozen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupSettings {
    /// The group's learning rate over the optimizer's (1: the same): PyTorch's group `lr` is
    /// the optimizer's `lr` times this. A schedule runs from the group's rate as PyTorch's
    /// schedulers run from each group's `initial_lr` (a one-cycle peaks at it; a cosine's
    /// η_min is the same for every group, as PyTorch's `eta_min` is). The learning-rate rule on
    /// plateaus and `set_lr` set the optimizer's rate, and every group's follows by its
    /// factor (PyTorch's `ReduceLROnPlateau` lowers each group's by the same factor too; its
    /// `min_lr` floor here bounds the optimizer's rate, not each group's).
    pub lr_scale: f64,
    /// The group's weight decay λ, or `None` for the optimizer's. For AdamW (and NAdam or
    /// RAdam with `decoupled_weight_decay`) it is the decoupled decay.
    pub weight_decay: Option<f64>,
    /// Whether the group's parameters are frozen (PyTorch's `requires_grad_(False)`, the
    /// parameter left out of the optimizer): never updated, no weight decay, their state
    /// left as it started, their gradients left out of clipping's norm and of the monitoring
    /// sums. A frozen group takes no other setting.
    pub frozen: bool,
    /// The group's own hyperparameters (PyTorch lets a group set any of its optimizer's: betas,
    /// ε, momentum, Nesterov, …), as a configuration of the optimizer's kind, or `None` for the
    /// optimizer's. Its `lr` must be the optimizer's (the group's rate is set by `lr_scale`),
    /// and it must keep the optimizer's state buffers (momentum on or off, AMSGrad, centered
    /// and an initial accumulator as the optimizer's; NAdam's β1 and momentum decay too, which
    /// set the one running product of its momentum coefficients); `weight_decay`, when set,
    /// overrides its decay.
    pub optimizer: Option<OptimizerConfig>,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            lr_scale: 1.0,
            weight_decay: None,
            frozen: false,
            optimizer: None,
        }
    }
}

impl GroupSettings {
    /// The configuration the group's parameters are updated with: `config` with the group's
    /// rate and weight decay, checked.
    pub(crate) fn apply(&self, config: &OptimizerConfig) -> Result<OptimizerConfig> {
        let name = config.name();
        let scale = self.lr_scale;
        if self.frozen && (scale != 1.0 || self.weight_decay.is_some() || self.optimizer.is_some())
        {
            let (setting, value) = match (self.weight_decay, &self.optimizer) {
                (Some(weight_decay), _) => ("weight_decay", weight_decay),
                (None, Some(own)) => ("optimizer lr", own.lr()),
                (None, None) => ("lr_scale", scale),
            };
            return Err(Error::InvalidHyperparameter {
                optimizer: name,
                name: format!("frozen param group {setting}"),
                value,
                rule: "a frozen group trains nothing, so it takes no lr_scale, weight_decay or \
                       optimizer"
                    .into(),
            });
        }
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(Error::InvalidHyperparameter {
                optimizer: name,
                name: "param group lr_scale".into(),
                value: scale,
                rule: "must be finite and ≥ 0".into(),
            });
        }
        let own = match self.optimizer {
            Some(own) if own.name() != name => {
                return Err(Error::InvalidHyperparameter {
                    optimizer: name,
                    name: format!("param group optimizer {}", own.name()),
                    value: own.lr(),
                    rule: format!("must configure {name}, the optimizer's kind"),
                });
            }
            Some(own) => own,
            None => *config,
        };
        let mut grouped = own.with_lr(config.lr() * scale);
        if let Some(weight_decay) = self.weight_decay {
            grouped = grouped.with_weight_decay(weight_decay).ok_or_else(|| {
                Error::InvalidHyperparameter {
                    optimizer: name,
                    name: "param group weight_decay".into(),
                    value: weight_decay,
                    rule: format!("{name} has no weight decay"),
                }
            })?;
        }
        grouped.validate()?;
        Ok(grouped)
    }
}

/// A parameter group: the parameters whose names match one of its patterns (or, with
/// [`ParamGroup::one_dimensional`], every parameter PyTorch holds as a 1-D tensor), and what
/// they train with ([`GroupSettings`]). Patterns are names with `*` standing for any run of
/// characters (`"*.bias"`, `"0.*"`, `"layers.2.weight"`); names are the model's own
/// ([`crate::Sequential::tensor_names`]: `{layer}.weight`, `{layer}.bias`, `layers.{i}.…` for
/// an [`crate::Mlp`]). A parameter no group picks trains with the optimizer's own settings,
/// as PyTorch's parameters outside every explicit group would in a group of the defaults.
///
/// ```
/// use steepest::optim::ParamGroup;
/// // No weight decay on biases and norms' scales and shifts (the usual recipe for AdamW),
/// // and the first layer at a tenth of the rate.
/// let no_decay = ParamGroup::one_dimensional().weight_decay(0.0);
/// let slow = ParamGroup::matching("layers.0.weight").lr_scale(0.1);
/// assert!(no_decay.picks("layers.3.bias", 1) && !no_decay.picks("layers.3.weight", 2));
/// assert!(slow.picks("layers.0.weight", 2) && !slow.picks("layers.1.weight", 2));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    /// The name patterns (`*`: any run of characters); a parameter matching any is in the group.
    pub patterns: Vec<String>,
    /// Whether every parameter PyTorch holds as a 1-D tensor (a bias, a norm's weight and
    /// bias) is in the group too.
    pub one_dimensional: bool,
    /// What the group's parameters train with.
    pub settings: GroupSettings,
}

impl ParamGroup {
    /// The parameters whose names match `pattern`, with the optimizer's settings until the
    /// builder methods change them.
    pub fn matching(pattern: impl Into<String>) -> Self {
        Self {
            patterns: vec![pattern.into()],
            one_dimensional: false,
            settings: GroupSettings::default(),
        }
    }

    /// Every parameter PyTorch holds as a 1-D tensor: biases, and a layer norm's weight and
    /// bias (what `p.ndim == 1` picks in a PyTorch script), with the optimizer's settings
    /// until the builder methods change them.
    pub fn one_dimensional() -> Self {
        Self {
            patterns: Vec::new(),
            one_dimensional: true,
            settings: GroupSettings::default(),
        }
    }

    /// Adds the parameters matching `pattern` as well.
    pub fn or_matching(mut self, pattern: impl Into<String>) -> Self {
        self.patterns.push(pattern.into());
        self
    }

    /// The group's learning rate over the optimizer's ([`GroupSettings::lr_scale`]).
    pub fn lr_scale(mut self, scale: f64) -> Self {
        self.settings.lr_scale = scale;
        self
    }

    /// The group's weight decay ([`GroupSettings::weight_decay`]).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.settings.weight_decay = Some(weight_decay);
        self
    }

    /// The group's own hyperparameters ([`GroupSettings::optimizer`]): a configuration of the
    /// optimizer's kind, with the optimizer's `lr`.
    pub fn optimizer(mut self, config: impl Into<OptimizerConfig>) -> Self {
        self.settings.optimizer = Some(config.into());
        self
    }

    /// Freezes the group's parameters ([`GroupSettings::frozen`]): PyTorch's
    /// `requires_grad_(False)` on them. Layers below the lowest one with a parameter left to
    /// train run no backward pass.
    pub fn frozen(mut self) -> Self {
        self.settings.frozen = true;
        self
    }

    /// Whether the parameter named `name`, which PyTorch holds as a tensor of `dims`
    /// dimensions, is in the group.
    pub fn picks(&self, name: &str, dims: usize) -> bool {
        (self.one_dimensional && dims == 1) || self.patterns.iter().any(|p| glob_matches(p, name))
    }

    /// The groups as ranges of an arena holding `tensors` (each its name and how many
    /// dimensions PyTorch gives it) at element `offsets` (ascending, as an arena lays them
    /// out) in `storage_len` elements: each tensor's range runs to the next one's start (or
    /// the end), so alignment padding goes with the tensor before it. Fails when a group
    /// picks no tensor (a misspelt pattern) or a tensor is in two groups (PyTorch refuses a
    /// parameter in two groups).
    pub fn resolve(
        groups: &[ParamGroup],
        tensors: &[(String, usize)],
        offsets: &[usize],
        storage_len: usize,
    ) -> Result<Vec<ArenaGroup>> {
        let op = "param groups";
        let ascending = offsets.windows(2).all(|w| w[0] <= w[1]);
        if tensors.len() != offsets.len() || !ascending || offsets.last() > Some(&storage_len) {
            return Err(Error::Data {
                op,
                detail: format!(
                    "{} tensors at offsets {offsets:?} in {storage_len} elements: one ascending \
                     offset per tensor, inside the arena, is needed",
                    tensors.len()
                ),
            });
        }
        let names: Vec<&str> = tensors.iter().map(|(name, _)| name.as_str()).collect();
        let mut resolved: Vec<ArenaGroup> = groups
            .iter()
            .map(|g| ArenaGroup {
                ranges: Vec::new(),
                settings: g.settings,
            })
            .collect();
        for (i, (name, dims)) in tensors.iter().enumerate() {
            let mut matched = groups
                .iter()
                .enumerate()
                .filter(|(_, g)| g.picks(name, *dims));
            let Some((first, _)) = matched.next() else {
                continue;
            };
            if let Some((second, _)) = matched.next() {
                return Err(Error::Data {
                    op,
                    detail: format!(
                        "parameter {name:?} is in group {first} ({}) and group {second} ({}): \
                         a parameter may be in one group only",
                        groups[first].describe(),
                        groups[second].describe()
                    ),
                });
            }
            let end = offsets.get(i + 1).copied().unwrap_or(storage_len);
            resolved[first].ranges.push(offsets[i]..end);
        }
        if let Some((i, _)) = resolved
            .iter()
            .enumerate()
            .find(|(_, g)| g.ranges.is_empty())
        {
            return Err(Error::Data {
                op,
                detail: format!(
                    "group {i} ({}) picks no parameter; the model's are {}",
                    groups[i].describe(),
                    names.join(", ")
                ),
            });
        }
        Ok(resolved)
    }
}

impl ParamGroup {
    /// What the group picks, for messages: its patterns, and `1-D` for the 1-D parameters.
    fn describe(&self) -> String {
        let mut parts: Vec<String> = self.patterns.iter().map(|p| format!("{p:?}")).collect();
        if self.one_dimensional {
            parts.push("1-D".into());
        }
        parts.join(" or ")
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (none included)
/// and every other character itself.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    // Without a `*` the pattern is one part and must be the whole name.
    let Some(first) = parts.next() else {
        return name.is_empty();
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    // Each middle part at its earliest place leaves the most room for the ones after it.
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
// Groups of one range are what these tests build, not a misspelt `vec![0; n]`.
#[allow(clippy::single_range_in_vec_init)]
mod tests;
