//! Loss functions, each computed with its gradient in one fused pass on either backend, and
//! the shape and label checks of that pass.

use ndarray::ArrayView2;

use crate::error::{Dims, Error, Result};

/// A loss over a batch, averaged as PyTorch's `reduction='mean'` does.
///
/// The fused op computes the per-row loss, its gradient with respect to the model's outputs
/// and a correct-prediction count in one pass (`shaders/loss.wgsl`, `cpu::loss`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Loss {
    /// Mean squared error over every element (`nn.MSELoss`); targets have the outputs' shape.
    #[default]
    MeanSquaredError,
    /// Binary cross-entropy on logits (`nn.BCEWithLogitsLoss`), in the form
    /// `max(x, 0) − x·t + log(1 + e^−|x|)` that never overflows; targets in [0, 1] with the
    /// logits' shape. A prediction is correct when `x > 0` agrees with `t > 0.5`.
    BinaryCrossEntropyWithLogits,
    /// Binary cross-entropy on logits with the positives weighted
    /// (`nn.BCEWithLogitsLoss(pos_weight=p)`, one weight for every output): each element's
    /// loss is `(1 − t)·x + (1 + (p − 1)·t)·(log(1 + e^−|x|) + max(−x, 0))`, its gradient
    /// `(1 + (p − 1)·t)·σ(x) − p·t`; p > 1 counts the positives more (a rare class), p < 1
    /// less. Targets and accuracy as [`Loss::BinaryCrossEntropyWithLogits`], which is p = 1.
    BinaryCrossEntropyWithLogitsWeighted {
        /// p, the positives' weight (finite, > 0).
        pos_weight: f32,
    },
    /// Softmax cross-entropy on class indices (`nn.CrossEntropyLoss`), through log-sum-exp;
    /// targets are one class index per row, stored as `f32` in a `rows × 1` matrix.
    SoftmaxCrossEntropy,
    /// Softmax cross-entropy with label smoothing (`nn.CrossEntropyLoss(label_smoothing=ε)`):
    /// the target is `1 − ε` on the label plus `ε/K` on each of the K classes, so the loss is
    /// `(1 − ε)·(lse − x_label) + ε·(lse − Σx/K)` and its gradient `softmax − (1 − ε)·onehot −
    /// ε/K`. Targets and accuracy as [`Loss::SoftmaxCrossEntropy`], which is ε = 0.
    SoftmaxCrossEntropySmoothed {
        /// ε, the share of the target spread over every class (0 ≤ ε ≤ 1, as PyTorch's).
        smoothing: f32,
    },
    /// Mean absolute error (`nn.L1Loss`); the gradient of |d| at d = 0 is 0, as PyTorch's.
    L1,
    /// Huber loss (`nn.HuberLoss(delta)`): `d²/2` where |d| < delta, else
    /// `delta · (|d| − delta/2)`; quadratic near the target, linear far from it.
    Huber {
        /// Where the quadratic part ends (> 0; PyTorch's default is 1).
        delta: f32,
    },
    /// Smooth L1 loss (`nn.SmoothL1Loss(beta)`): `d²/(2·beta)` where |d| < beta, else
    /// `|d| − beta/2`, which is Huber's divided by beta.
    SmoothL1 {
        /// Where the quadratic part ends (> 0; PyTorch's default is 1).
        beta: f32,
    },
}

impl Loss {
    /// The shader's `LOSS` override and the threshold it passes as immediate data.
    pub(crate) fn shader_code(self) -> (u32, f32) {
        match self {
            Loss::MeanSquaredError => (0, 0.0),
            Loss::BinaryCrossEntropyWithLogits => (1, 0.0),
            Loss::BinaryCrossEntropyWithLogitsWeighted { pos_weight } => (7, pos_weight),
            Loss::SoftmaxCrossEntropy => (2, 0.0),
            Loss::SoftmaxCrossEntropySmoothed { smoothing } => (6, smoothing),
            Loss::L1 => (3, 0.0),
            Loss::Huber { delta } => (4, delta),
            Loss::SmoothL1 { beta } => (5, beta),
        }
    }

    /// Columns the targets have for outputs `cols` wide.
    pub fn target_cols(self, logit_cols: usize) -> usize {
        match self.takes_class_indices() {
            true => 1,
            false => logit_cols,
        }
    }

    /// Whether the targets are class indices, one per row (the softmax cross-entropies).
    pub fn takes_class_indices(self) -> bool {
        matches!(
            self,
            Loss::SoftmaxCrossEntropy | Loss::SoftmaxCrossEntropySmoothed { .. }
        )
    }

    /// The factor that turns per-element gradients into the gradient of the batch mean.
    pub(crate) fn grad_scale(self, rows: usize, cols: usize) -> f32 {
        let count = match self.takes_class_indices() {
            true => rows,
            false => rows.saturating_mul(cols),
        };
        (1.0 / count as f64) as f32
    }

    /// Whether "correct predictions" mean anything for this loss (classification).
    pub fn has_accuracy(self) -> bool {
        self.takes_class_indices() || self.is_binary()
    }

    /// Whether the loss is a binary cross-entropy (targets in [0, 1], the logits' shape).
    pub fn is_binary(self) -> bool {
        matches!(
            self,
            Loss::BinaryCrossEntropyWithLogits | Loss::BinaryCrossEntropyWithLogitsWeighted { .. }
        )
    }

    /// Whether the loss takes regression targets (any real numbers, the outputs' shape).
    pub fn is_regression(self) -> bool {
        matches!(
            self,
            Loss::MeanSquaredError | Loss::L1 | Loss::Huber { .. } | Loss::SmoothL1 { .. }
        )
    }

    /// A short name for tables and files (`mse`, `bce`, `bce_weighted`, `cross_entropy`,
    /// `cross_entropy_smoothed`, `l1`, `huber`, `smooth_l1`).
    pub fn name(self) -> &'static str {
        match self {
            Loss::MeanSquaredError => "mse",
            Loss::BinaryCrossEntropyWithLogits => "bce",
            Loss::BinaryCrossEntropyWithLogitsWeighted { .. } => "bce_weighted",
            Loss::SoftmaxCrossEntropy => "cross_entropy",
            Loss::SoftmaxCrossEntropySmoothed { .. } => "cross_entropy_smoothed",
            Loss::L1 => "l1",
            Loss::Huber { .. } => "huber",
            Loss::SmoothL1 { .. } => "smooth_l1",
        }
    }

    /// Checks the loss's own setting: a Huber delta, smooth-L1 beta or positives' weight must
    /// be finite and > 0, a label smoothing in [0, 1].
    pub fn validate(self) -> crate::Result<()> {
        let (name, value, valid, rule) = match self {
            Loss::Huber { delta } => ("delta", delta, delta > 0.0, "must be finite and > 0"),
            Loss::SmoothL1 { beta } => ("beta", beta, beta > 0.0, "must be finite and > 0"),
            Loss::BinaryCrossEntropyWithLogitsWeighted { pos_weight } => (
                "pos_weight",
                pos_weight,
                pos_weight > 0.0,
                "must be finite and > 0",
            ),
            Loss::SoftmaxCrossEntropySmoothed { smoothing } => (
                "smoothing",
                smoothing,
                (0.0..=1.0).contains(&smoothing),
                "must be in [0, 1]",
            ),
            _ => return Ok(()),
        };
        if value.is_finite() && valid {
            return Ok(());
        }
        Err(crate::Error::InvalidHyperparameter {
            optimizer: self.name(),
            name: name.into(),
            value: f64::from(value),
            rule: rule.into(),
        })
    }

    /// Per element of a regression loss with difference `d = x − t`: (loss, ∂loss/∂x).
    /// `None` for the classification losses, whose rows are computed whole.
    pub(crate) fn regression_term(self, d: f32) -> Option<(f32, f32)> {
        match self {
            Loss::MeanSquaredError => Some((d * d, 2.0 * d)),
            Loss::L1 => Some((d.abs(), sign(d))),
            Loss::Huber { delta } => Some(if d.abs() < delta {
                (0.5 * d * d, d)
            } else {
                (delta * (d.abs() - 0.5 * delta), delta * sign(d))
            }),
            Loss::SmoothL1 { beta } => Some(if d.abs() < beta {
                (0.5 * d * d / beta, d / beta)
            } else {
                (d.abs() - 0.5 * beta, sign(d))
            }),
            Loss::BinaryCrossEntropyWithLogits
            | Loss::BinaryCrossEntropyWithLogitsWeighted { .. }
            | Loss::SoftmaxCrossEntropy
            | Loss::SoftmaxCrossEntropySmoothed { .. } => None,
        }
    }
}

/// Checks class weights given to a loss: only the softmax cross-entropies take them, one per
/// class (`1 × classes`).
pub(crate) fn class_weights_dims(
    kind: Loss,
    classes: usize,
    weights: Option<(usize, usize)>,
) -> crate::Result<()> {
    let Some(shape) = weights else {
        return Ok(());
    };
    let detail = match kind.takes_class_indices() {
        false => format!("{} takes no class weights", kind.name()),
        true if shape != (1, classes) => format!(
            "class weights of {}×{} for {classes} classes: they must be 1×{classes}",
            shape.0, shape.1
        ),
        true => return Ok(()),
    };
    Err(crate::Error::Shape { op: "loss", detail })
}

/// −1, 0 or 1, as `torch.sign` (0 at 0, where PyTorch's L1 gradient is 0).
fn sign(d: f32) -> f32 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// How a batch's fused loss counts in an optimizer update: alone ([`LossShare::whole`], a step
/// on one batch), or as one of the batches whose gradients one update sums (gradient
/// accumulation, [`Trainer::accumulate_grad_batches`](crate::Trainer::accumulate_grad_batches)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossShare {
    /// The rows of the update the batch belongs to (at least the batch's own): the gradient
    /// written is that of the batch's summed row losses over this many rows (and over the
    /// columns, for the losses averaged over every element), so the update's batches
    /// together give the gradient of the mean loss over all of its rows, as one batch of them
    /// would.
    pub update_rows: usize,
    /// Whether the batch is the update's first: its sums then set `totals[slot]` and
    /// `totals[slot + 1]`; a later one adds to them, so they end holding the update's sums.
    pub first: bool,
}

impl LossShare {
    /// A batch of `rows` rows that is a whole update: the gradient of its own mean loss.
    pub fn whole(rows: usize) -> Self {
        Self {
            update_rows: rows,
            first: true,
        }
    }
}

/// Targets and gradient fit the logits for `loss`, and the batch fits in its update.
pub(crate) fn loss_dims(
    loss: Loss,
    logits: (usize, usize),
    targets: (usize, usize),
    grad: Option<(usize, usize)>,
    share: LossShare,
) -> Result<()> {
    let op = "loss";
    if share.update_rows < logits.0 {
        return Err(Error::Shape {
            op,
            detail: format!(
                "the batch's {} rows are more than the {} of the update it is a share of",
                logits.0, share.update_rows
            ),
        });
    }
    let expected = (logits.0, loss.target_cols(logits.1));
    if targets != expected {
        return Err(Error::Shape {
            op,
            detail: format!(
                "{} targets are {}, expected {} for logits of {}",
                loss.name(),
                Dims(targets.0, targets.1),
                Dims(expected.0, expected.1),
                Dims(logits.0, logits.1)
            ),
        });
    }
    if let Some(grad) = grad.filter(|&g| g != logits) {
        return Err(Error::Shape {
            op,
            detail: format!(
                "gradient is {}, logits are {}",
                Dims(grad.0, grad.1),
                Dims(logits.0, logits.1)
            ),
        });
    }
    Ok(())
}

/// Every class label is an integer in `0..classes`.
pub(crate) fn check_labels(labels: ArrayView2<'_, f32>, classes: usize) -> Result<()> {
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| !(l >= 0.0 && l.fract() == 0.0 && (l as usize) < classes))
    {
        Some((row, &label)) => Err(Error::Label {
            row,
            label,
            classes,
        }),
        None => Ok(()),
    }
}
