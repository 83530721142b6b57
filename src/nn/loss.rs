//! Loss functions, each computed with its gradient in one fused pass on either backend.

/// A loss over a batch, averaged as PyTorch's `reduction='mean'` does.
///
/// The fused op computes the per-row loss, its gradient with respect to the logits and a
/// correct-prediction count in one pass (`shaders/loss.wgsl`, `cpu::loss`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Mean squared error over every element (`nn.MSELoss`); targets have the logits' shape.
    #[default]
    MeanSquaredError,
    /// Binary cross-entropy on logits (`nn.BCEWithLogitsLoss`), in the form
    /// `max(x, 0) − x·t + log(1 + e^−|x|)` that never overflows; targets in [0, 1] with the
    /// logits' shape. A prediction is correct when `x > 0` agrees with `t > 0.5`.
    BinaryCrossEntropyWithLogits,
    /// Softmax cross-entropy on class indices (`nn.CrossEntropyLoss`), through log-sum-exp;
    /// targets are one class index per row, stored as `f32` in a `rows × 1` matrix.
    SoftmaxCrossEntropy,
}

impl Loss {
    /// The shader's `LOSS` override.
    pub(crate) fn shader_code(self) -> u32 {
        match self {
            Loss::MeanSquaredError => 0,
            Loss::BinaryCrossEntropyWithLogits => 1,
            Loss::SoftmaxCrossEntropy => 2,
        }
    }

    /// Columns the targets have for logits `cols` wide.
    pub fn target_cols(self, logit_cols: usize) -> usize {
        match self {
            Loss::SoftmaxCrossEntropy => 1,
            _ => logit_cols,
        }
    }

    /// The factor that turns per-element gradients into the gradient of the batch mean.
    pub(crate) fn grad_scale(self, rows: usize, cols: usize) -> f32 {
        let count = match self {
            Loss::SoftmaxCrossEntropy => rows,
            _ => rows * cols,
        };
        (1.0 / count as f64) as f32
    }

    /// Whether "correct predictions" mean anything for this loss (classification).
    pub fn has_accuracy(self) -> bool {
        self != Loss::MeanSquaredError
    }

    /// A short name for tables and files (`mse`, `bce`, `cross_entropy`).
    pub fn name(self) -> &'static str {
        match self {
            Loss::MeanSquaredError => "mse",
            Loss::BinaryCrossEntropyWithLogits => "bce",
            Loss::SoftmaxCrossEntropy => "cross_entropy",
        }
    }
}
