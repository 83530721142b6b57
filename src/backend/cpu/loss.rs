//! `cpu::loss`: the reference for `shaders/loss.wgsl`.

use ndarray::{Array2, ArrayView2};

use ndarray::{ArrayView1, ArrayViewMut1};

use crate::backend::{Loss, LossShare, class_weights_dims, loss_dims};
use crate::error::Result;

/// Σ over the batch's rows of (loss, correct predictions), with the gradient of the mean loss
/// over the update's rows (`share`: the batch's own, for a whole update) with respect to
/// `logits` written into `grad` when given; with class `weights`, the weighted mean's (the
/// sums then rows × the weighted mean, as [`crate::Backend::loss_into`] says). The formulas
/// are in `shaders/loss.wgsl`'s header and on [`Loss`].
pub fn loss(
    loss: Loss,
    logits: ArrayView2<'_, f32>,
    targets: ArrayView2<'_, f32>,
    (mut grad, share): (Option<&mut Array2<f32>>, LossShare),
    weights: Option<ArrayView2<'_, f32>>,
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
    class_weights_dims(loss, cols, weights.map(|w| w.dim()))?;
    if loss.takes_class_indices() {
        crate::backend::check_labels(targets, cols)?;
    }
    // rows / W, W = Σ w over the rows' labels, summed in f64 (the kernel's tree of f32 sums
    // comes within a few ulps of it; a running f32 sum would drift over thousands of rows).
    let weighted = weights.map(|w| {
        let total: f64 = (0..rows)
            .map(|r| f64::from(w[[0, targets[[r, 0]] as usize]]))
            .sum();
        (w, (rows as f64 / total) as f32)
    });
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
                if let Some((w, norm)) = weighted {
                    let g = grad.as_deref_mut().map(|g| g.row_mut(r));
                    let e = match loss {
                        Loss::SoftmaxCrossEntropySmoothed { smoothing } => smoothing,
                        _ => 0.0,
                    };
                    let row = WeightedRow {
                        x,
                        label,
                        m,
                        total,
                        lse,
                    };
                    let value = row.loss_and_grad(w.row(0), e, (g, scale, norm));
                    (value * norm, correct)
                } else {
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
            }
        };
        loss_sum += f64::from(row_loss);
        correct_sum += f64::from(correct);
    }
    Ok((loss_sum, correct_sum))
}

/// One cross-entropy row with class weights: its logits, label, max, Σ e^(x − max) and lse.
struct WeightedRow<'a> {
    x: ArrayView1<'a, f32>,
    label: usize,
    m: f32,
    total: f32,
    lse: f32,
}

impl WeightedRow<'_> {
    /// The row's weighted loss (smoothing `e`; before the batch's `norm`, rows / W, which the
    /// caller applies), its gradient times `scale` and `norm` into `grad` when given: the twin
    /// of `weighted_cross_entropy_row` in `shaders/loss.wgsl`.
    fn loss_and_grad(
        &self,
        w: ArrayView1<'_, f32>,
        e: f32,
        (grad, scale, norm): (Option<ArrayViewMut1<'_, f32>>, f32, f32),
    ) -> f32 {
        let (x, label, cols, lse) = (self.x, self.label, self.x.len(), self.lse);
        let spread = e / cols as f32;
        // Σ_c w_c and Σ_c w_c·x_c, for the smoothing's share.
        let (mut weight_sum, mut weighted_x) = (0.0f32, 0.0f32);
        if e != 0.0 {
            for c in 0..cols {
                weight_sum += w[c];
                weighted_x += w[c] * x[c];
            }
        }
        if let Some(mut g) = grad {
            for c in 0..cols {
                let p = (x[c] - self.m).exp() / self.total;
                let mut value = (1.0 - e) * w[label] * (p - f32::from(u8::from(c == label)));
                if e != 0.0 {
                    value += spread * (p * weight_sum - w[c]);
                }
                g[c] = value * scale * norm;
            }
        }
        let mut loss = (1.0 - e) * w[label] * (lse - x[label]);
        if e != 0.0 {
            loss += spread * (weight_sum * lse - weighted_x);
        }
        loss
    }
}
