//! Beyond plain descent: Armijo backtracking line search for full-batch descent, and a
//! learning-rate finder.

use super::device_data::{WholeBatch, whole_batch};
use super::session::slot;
use super::step::batch_loss;
use super::{EpochRecord, History, StopReason, Trainer};
use crate::backend::{Arena, Backend, LossShare, Matrix};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Loss, Mode, Model};
use crate::optim::LrSchedule;

/// Full-batch gradient descent whose step length is found each iteration by Armijo
/// backtracking: start at `initial_step`, shrink by `shrink` until
/// `f(θ − α∇f) ≤ f(θ) − c·α·‖∇f‖²`. `f` is the training-mode loss over all the data, at the
/// trial points too: dropout's one mask (draw 0), batch norm on the data's statistics (its
/// running statistics move once an iteration, at the accepted point).
#[derive(Clone, Debug, PartialEq)]
pub struct LineSearch {
    /// α tried first each iteration.
    pub initial_step: f64,
    /// The sufficient-decrease constant c, in (0, 1).
    pub c: f64,
    /// The factor α shrinks by, in (0, 1).
    pub shrink: f64,
    /// Shrinks tried before an iteration gives up.
    pub max_backtracks: usize,
    /// Descent iterations, at least 1.
    pub iterations: usize,
    /// Stop once ‖∇f‖ falls below this (finite, ≥ 0; 0 runs every iteration).
    pub grad_tolerance: f64,
    /// Each class's weight in a softmax cross-entropy (see [`LineSearch::class_weights`]).
    pub class_weights: Option<Vec<f32>>,
}

impl Default for LineSearch {
    /// α₀ = 1, c = 1e-4, shrink 0.5 (Nocedal & Wright's usual choices), 100 iterations.
    fn default() -> Self {
        Self {
            initial_step: 1.0,
            c: 1e-4,
            shrink: 0.5,
            max_backtracks: 40,
            iterations: 100,
            grad_tolerance: 1e-6,
            class_weights: None,
        }
    }
}

impl LineSearch {
    /// Weighs each class in the softmax cross-entropies, as
    /// [`Trainer::class_weights`](crate::Trainer::class_weights) does: `f` is the weighted
    /// mean loss over every sample (PyTorch's `CrossEntropyLoss(weight=w)`), at the trial
    /// points too, and so is each iteration's recorded loss. One weight per class, finite and
    /// ≥ 0, not all 0; refused with the other losses, when `run` is called.
    pub fn class_weights(mut self, weights: Vec<f32>) -> Self {
        self.class_weights = Some(weights);
        self
    }

    fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f64, rule: &str| {
            Err(Error::InvalidHyperparameter {
                optimizer: "LineSearch",
                name: name.into(),
                value,
                rule: rule.into(),
            })
        };
        // The step is applied in f32.
        if !(self.initial_step > 0.0 && self.initial_step <= f64::from(f32::MAX)) {
            return bad(
                "initial_step",
                self.initial_step,
                "must be > 0 and at most 3.4e38 (f32)",
            );
        }
        if !(self.c > 0.0 && self.c < 1.0) {
            return bad("c", self.c, "must be in (0, 1)");
        }
        if !(self.shrink > 0.0 && self.shrink < 1.0) {
            return bad("shrink", self.shrink, "must be in (0, 1)");
        }
        if self.iterations == 0 {
            return bad("iterations", 0.0, "must be ≥ 1");
        }
        if !(self.grad_tolerance.is_finite() && self.grad_tolerance >= 0.0) {
            return bad(
                "grad_tolerance",
                self.grad_tolerance,
                "must be finite and ≥ 0",
            );
        }
        Ok(())
    }

    /// Minimises `loss` of `model` over all of `data`. Each iteration's record holds the loss
    /// before the step, ‖∇f‖ and the accepted α (as `lr`).
    pub fn run<B: Backend, M: Model<B>>(
        &self,
        backend: &B,
        model: &mut M,
        data: &Dataset,
        loss: Loss,
    ) -> Result<History> {
        self.validate()?;
        let model = model.network_mut();
        let n = data.len();
        let weights = (self.class_weights.as_deref()).map(|w| ("LineSearch::class_weights", w));
        let WholeBatch {
            mut ws,
            class_weights: weights,
        } = whole_batch(backend, model, data, loss, ("LineSearch::run", weights))?;
        let mut totals = backend.zeros(1, slot::LEN)?;
        let shapes: Vec<(usize, usize)> =
            model.params.tensors().iter().map(Matrix::shape).collect();
        let mut start = backend.arena("line search start", &shapes)?;
        let mut history = History::default();
        for iteration in 1..=self.iterations {
            model.train_forward_batch(backend, &ws.input, &mut ws.acts, 0)?;
            batch_loss(
                backend,
                (loss, weights.as_ref()),
                &mut ws.acts,
                &ws.target,
                (&mut totals, slot::TRAIN),
                (Mode::Train, LossShare::whole(n)),
            )?;
            model.backward_batch(backend, &ws.input, &mut ws.acts, &[])?;
            backend.sum_squares_into(&model.grads, &mut totals, slot::SCRATCH)?;
            let read = backend.download(&totals)?;
            let f = f64::from(read[[0, slot::TRAIN]]) / n as f64;
            let g2 = f64::from(read[[0, slot::SCRATCH]]);
            let mut record = EpochRecord {
                epoch: iteration,
                step: iteration as u64,
                loss: f,
                accuracy: loss
                    .has_accuracy()
                    .then(|| f64::from(read[[0, slot::TRAIN + 1]]) / n as f64),
                val_loss: None,
                val_accuracy: None,
                grad_norm: Some(g2.sqrt()),
                update_ratio: None,
                lr: 0.0,
            };
            if !f.is_finite() {
                return Err(Error::Diverged {
                    step: iteration as u64,
                    epoch: iteration,
                    loss: f,
                    reason: format!("loss = {f}"),
                });
            }
            if g2.sqrt() < self.grad_tolerance {
                history.epochs.push(record);
                history.stop = StopReason::GradientTolerance {
                    grad_norm: g2.sqrt(),
                };
                return Ok(history);
            }
            backend.copy_arena(&model.params, &mut start)?;
            let mut alpha = self.initial_step;
            let mut accepted = false;
            for _ in 0..=self.max_backtracks {
                backend.copy_arena(&start, &mut model.params)?;
                backend.axpy_arena(-alpha as f32, &model.grads, &mut model.params)?;
                // The objective f and ∇f are of: training mode, dropout's mask of draw 0,
                // batch norm on the batch's statistics (its running ones move only at the
                // accepted points, by the next iteration's forward pass).
                model.forward_batch(backend, &ws.input, &mut ws.acts, Mode::Train, 0)?;
                batch_loss(
                    backend,
                    (loss, weights.as_ref()),
                    &mut ws.acts,
                    &ws.target,
                    (&mut totals, slot::VALIDATION),
                    (Mode::Eval, LossShare::whole(n)),
                )?;
                let trial = f64::from(backend.download(&totals)?[[0, slot::VALIDATION]]) / n as f64;
                if trial.is_finite() && trial <= f - self.c * alpha * g2 {
                    accepted = true;
                    break;
                }
                alpha *= self.shrink;
            }
            if !accepted {
                // No step decreases f enough: θ is (numerically) at a minimum along −∇f.
                backend.copy_arena(&start, &mut model.params)?;
                history.epochs.push(record);
                history.stop = StopReason::NoDescent {
                    loss: f,
                    backtracks: self.max_backtracks,
                };
                return Ok(history);
            }
            record.lr = alpha;
            history.epochs.push(record);
        }
        backend.flush()?;
        history.stop = StopReason::MaxEpochs;
        Ok(history)
    }
}

/// The learning-rate range test: train with a rate growing exponentially from `min_lr` to
/// `max_lr` over `steps` steps, smooth the loss, stop once it passes `divergence` × its best,
/// and suggest the rate where the smoothed loss fell fastest (per decade of rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrFinder {
    /// The first rate.
    pub min_lr: f64,
    /// The last rate.
    pub max_lr: f64,
    /// Steps of the sweep.
    pub steps: usize,
    /// Exponential smoothing of the loss, in [0, 1) (0: none).
    pub smoothing: f64,
    /// The sweep stops when the smoothed loss exceeds this multiple of its minimum.
    pub divergence: f64,
}

impl Default for LrFinder {
    /// 1e-6 to 1 over 100 steps, smoothing 0.9, stop at 4× the best loss.
    fn default() -> Self {
        Self {
            min_lr: 1e-6,
            max_lr: 1.0,
            steps: 100,
            smoothing: 0.9,
            divergence: 4.0,
        }
    }
}

/// What the finder measured and suggests.
#[derive(Clone, Debug, PartialEq)]
pub struct LrFinderResult {
    /// The rate of each step.
    pub lrs: Vec<f64>,
    /// The smoothed loss of each step.
    pub losses: Vec<f64>,
    /// The rate with the steepest decrease of the smoothed loss before divergence.
    pub suggested: f64,
}

impl LrFinder {
    /// Sweeps with `trainer`'s optimizer, loss and batch size on `data`. The model's parameters
    /// are put back afterwards.
    pub fn run<B: Backend, M: Model<B>>(
        &self,
        backend: &B,
        model: &mut M,
        trainer: &Trainer,
        data: &Dataset,
    ) -> Result<LrFinderResult> {
        let bad = |name: &str, value: f64, rule: &str| Error::InvalidHyperparameter {
            optimizer: "LrFinder",
            name: name.into(),
            value,
            rule: rule.into(),
        };
        // The rates are applied in f32: both bounds must be normal f32 numbers.
        let f32_range =
            |v: f64| v.is_finite() && v >= f64::from(f32::MIN_POSITIVE) && v <= f64::from(f32::MAX);
        if !f32_range(self.min_lr) {
            return Err(bad(
                "min_lr",
                self.min_lr,
                "must be a positive rate that f32 represents (1.2e-38 ..= 3.4e38)",
            ));
        }
        if !(f32_range(self.max_lr) && self.max_lr > self.min_lr) {
            return Err(bad(
                "max_lr",
                self.max_lr,
                &format!(
                    "must be above min_lr = {} and at most 3.4e38 (f32)",
                    self.min_lr
                ),
            ));
        }
        if self.steps < 3 {
            return Err(bad("steps", self.steps as f64, "must be ≥ 3"));
        }
        if !(self.divergence.is_finite() && self.divergence > 1.0) {
            return Err(bad("divergence", self.divergence, "must be finite and > 1"));
        }
        if !(0.0..1.0).contains(&self.smoothing) {
            return Err(bad("smoothing", self.smoothing, "must be in [0, 1)"));
        }
        let growth = (self.max_lr / self.min_lr).powf(1.0 / (self.steps - 1) as f64);
        let sweep = Trainer {
            optimizer: trainer.optimizer.with_lr(self.min_lr),
            schedule: LrSchedule::step(1, growth),
            log_every: Some(1),
            epochs: usize::MAX,
            divergence_factor: None,
            plateau: None,
            grad_tolerance: None,
            monitor: false,
            progress: false,
            checkpoint: None,
            // The sweep reads the trained parameters' losses: an average would go unused.
            ema: None,
            swa: None,
            ..trainer.clone()
        };
        let saved = model.network().parameters_flat(backend)?;
        let (lrs, losses) = {
            let mut session = super::Session::new(&sweep, backend, model, data, None)?;
            let mut lrs = Vec::new();
            let mut losses = Vec::new();
            let mut average = 0.0;
            let mut best = f64::INFINITY;
            for i in 0..self.steps {
                match session.step() {
                    Ok(()) => {}
                    Err(Error::Diverged { .. }) => break,
                    Err(e) => return Err(e),
                }
                let Some(logged) = session.history().steps.last() else {
                    break;
                };
                // Bias-corrected exponential average, as the fastai finder smooths.
                average = self.smoothing * average + (1.0 - self.smoothing) * logged.loss;
                let smoothed = average / (1.0 - self.smoothing.powi(i as i32 + 1));
                lrs.push(logged.lr);
                losses.push(smoothed);
                best = best.min(smoothed);
                if smoothed > self.divergence * best {
                    break;
                }
            }
            (lrs, losses)
        };
        // What was there before, as it was (set_parameters_flat would refuse a model that
        // came in with non-finite values).
        backend.write_arena(&mut model.network_mut().params, &saved)?;
        let suggested = steepest_descent_rate(&lrs, &losses).ok_or_else(|| Error::Data {
            op: "LrFinder::run",
            detail: format!("only {} finite losses were measured", losses.len()),
        })?;
        Ok(LrFinderResult {
            lrs,
            losses,
            suggested,
        })
    }
}

/// The rate at which `losses` falls fastest per unit of log(rate), looking only up to the
/// minimum of the curve (past it the loss is diverging). The first tenth of the sweep is
/// skipped and slopes span a few points, as the smoothed loss is noisiest at its start.
fn steepest_descent_rate(lrs: &[f64], losses: &[f64]) -> Option<f64> {
    let end = losses
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .min_by(|a, b| a.1.total_cmp(b.1))?
        .0;
    let span = (losses.len() / 20).max(1);
    let skip = losses.len() / 10;
    (skip + span..=end)
        .map(|i| {
            let j = i - span;
            let slope = (losses[i] - losses[j]) / (lrs[i].ln() - lrs[j].ln());
            (j + span / 2, slope)
        })
        .filter(|(_, s)| s.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .or(Some((end, 0.0)))
        .map(|(i, _)| lrs[i])
}
