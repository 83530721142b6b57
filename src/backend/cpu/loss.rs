//! `cpu::loss`: the reference for `shaders/loss.wgsl`.

use ndarray::{Array2, ArrayView2};

use crate::backend::loss_dims;
use crate::backend::{Loss, LossShare};
use crate::error::Result;

/// Σ over the batch's rows of (loss, correct predictions), with the gradient of the mean loss
/// over the update's rows (`share`: the batch's own, for a whole update) with respect to
/// `logits` written into `grad` when given. The formulas are in `shaders/loss.wgsl`'s header
/// and on [`Loss`].
pub fn loss(
    loss: Loss,
    logits: ArrayView2<'_, f32>,
    targets: ArrayView2<'_, f32>,
    mut grad: Option<&mut Array2<f32>>,
    share: LossShare,
) -> Result<(f64, f64)> {
    let (rows, cols) = logits.dim();
    loss.validate()?;
    loss_dims(
        loss,
        logits.dim(),
        targets.dim(),
        grad.as_ref().map(|g| g.dim()),
        share,
    )?;
    if loss.takes_class_indices() {
        crate::backend::check_labels(targets, cols)?;
    }
    let scale = loss.grad_scale(share.update_rows, cols);
    let (mut loss_sum, mut correct_sum) = (0.0f64, 0.0f64);
    for r in 0..rows {
        let x = logits.row(r);
        let (row_loss, correct) = match loss {
            Loss::BinaryCrossEntropyWithLogits => {
                let (mut sum, mut correct) = (0.0f32, 0.0f32);
                for c in 0..cols {
                    let (x, t) = (x[c], targets[[r, c]]);
                    sum += x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
                    correct += f32::from(u8::from((x > 0.0) == (t > 0.5)));
                    if let Some(g) = grad.as_deref_mut() {
                        g[[r, c]] = (crate::backend::sigmoid(x) - t) * scale;
                    }
                }
                (sum / cols as f32, correct / cols as f32)
            }
            Loss::BinaryCrossEntropyWithLogitsWeighted { pos_weight: p } => {
                let (mut sum, mut correct) = (0.0f32, 0.0f32);
                for c in 0..cols {
                    let (x, t) = (x[c], targets[[r, c]]);
                    // log σ(−x)'s weight: 1 for a negative target, p for a positive one.
                    let weight = 1.0 + (p - 1.0) * t;
                    let softplus = (-x.abs()).exp().ln_1p() + (-x).max(0.0);
                    sum += (1.0 - t) * x + weight * softplus;
                    correct += f32::from(u8::from((x > 0.0) == (t > 0.5)));
                    if let Some(g) = grad.as_deref_mut() {
                        g[[r, c]] = (weight * crate::backend::sigmoid(x) - p * t) * scale;
                    }
                }
                (sum / cols as f32, correct / cols as f32)
            }
            Loss::MeanSquaredError | Loss::L1 | Loss::Huber { .. } | Loss::SmoothL1 { .. } => {
                let mut sum = 0.0f32;
                for c in 0..cols {
                    let d = x[c] - targets[[r, c]];
                    let (term, slope) = loss.regression_term(d).unwrap_or((f32::NAN, f32::NAN));
                    sum += term;
                    if let Some(g) = grad.as_deref_mut() {
                        g[[r, c]] = slope * scale;
                    }
                }
                (sum / cols as f32, 0.0)
            }
            Loss::SoftmaxCrossEntropy | Loss::SoftmaxCrossEntropySmoothed { .. } => {
                let label = targets[[r, 0]] as usize;
                // The first index of the maximum, as the shader and torch.argmax pick it.
                let (argmax, m) =
                    x.iter().enumerate().fold(
                        (0, x[0]),
                        |(i, m), (j, &v)| {
                            if v > m { (j, v) } else { (i, m) }
                        },
                    );
                let total: f32 = x.iter().map(|&v| (v - m).exp()).sum();
                let lse = m + total.ln();
                let correct = f32::from(u8::from(argmax == label));
                match loss {
                    Loss::SoftmaxCrossEntropySmoothed { smoothing: e } => {
                        // The target: 1 − ε on the label and ε/K on every class.
                        let spread = e / cols as f32;
                        if let Some(g) = grad.as_deref_mut() {
                            for c in 0..cols {
                                let p = (x[c] - m).exp() / total;
                                let wanted = if c == label {
                                    (1.0 - e) + spread
                                } else {
                                    spread
                                };
                                g[[r, c]] = (p - wanted) * scale;
                            }
                        }
                        let mean = x.iter().sum::<f32>() / cols as f32;
                        ((1.0 - e) * (lse - x[label]) + e * (lse - mean), correct)
                    }
                    _ => {
                        if let Some(g) = grad.as_deref_mut() {
                            for c in 0..cols {
                                let p = (x[c] - m).exp() / total;
                                g[[r, c]] = (p - f32::from(u8::from(c == label))) * scale;
                            }
                        }
                        (lse - x[label], correct)
                    }
                }
            }
        };
        loss_sum += f64::from(row_loss);
        correct_sum += f64::from(correct);
    }
    Ok((loss_sum, correct_sum))
}
