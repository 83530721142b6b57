//! L-BFGS over the whole dataset, as PyTorch's `torch.optim.LBFGS` runs it: its two-loop
//! recursion, its first step's length, its stopping tests and its strong-Wolfe line search,
//! with every vector on the backend (arenas of the model's layout) and the scalars on the
//! host.

mod line_search;
mod problem;

use line_search::StrongWolfe;
use problem::Problem;

use super::session::slot;
use super::{EpochRecord, History, StopReason};
use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Loss, Model};

/// Limited-memory BFGS on the full batch: PyTorch's `torch.optim.LBFGS(params, lr, max_iter,
/// max_eval, tolerance_grad, tolerance_change, history_size, line_search_fn)` with its
/// defaults, called `steps` times as `optimizer.step(closure)` is in a loop, where the closure
/// evaluates the mean loss over every sample and its gradient.
///
/// Each step runs up to `max_iter` iterations: the direction from the last `history_size`
/// (s, y) pairs by the two-loop recursion, scaled by `yᵀs / yᵀy`; a step of `lr` along it
/// (the first iteration ever: `min(1, 1/‖g‖₁)·lr`), or the step a strong-Wolfe line search
/// finds (`strong_wolfe`). It stops early where PyTorch's does: `max |g| ≤ tolerance_grad`, a
/// direction that is no longer a descent one, a change of the loss or of the parameters under
/// `tolerance_change`, `max_eval` evaluations. The memory between steps (the pairs, the last
/// direction and step) carries over, as PyTorch's optimizer state does.
///
/// A model's buffers (a batch norm's running statistics) move with every loss evaluation, the
/// line search's trials included, as each call of PyTorch's closure in `model.train()` moves
/// them: a trial puts the parameters back and leaves the buffers as it made them.
///
/// The vectors stay on the backend; each dot product the recursion needs is read back (a wait
/// on the GPU, as each `.item()` PyTorch's recursion makes is a synchronisation on CUDA), so
/// an iteration waits about `2 · pairs + 3` times: it suits models whose full-batch pass is
/// the larger cost. Memory: `2 · history_size + 6` arenas of the parameters' size.
///
/// ```
/// use steepest::{Activation, CpuBackend, Init, Lbfgs, Loss, Mlp, MlpSpec, data};
/// # fn main() -> steepest::Result<()> {
/// let points = data::linear(64, &[2.0, -1.0], 0.5, 0.0, 1)?;
/// let spec = MlpSpec::new(2).layer(1, Activation::Identity);
/// let mut model = Mlp::new(&CpuBackend, &spec, Init::default(), 1)?;
/// let history = Lbfgs::default()
///     .strong_wolfe(true)
///     .run(&CpuBackend, &mut model, &points, Loss::MeanSquaredError)?;
/// // Least squares: a quadratic, which L-BFGS minimises in a few iterations.
/// let after = steepest::Trainer::new(steepest::Sgd::default(), Loss::MeanSquaredError)
///     .evaluate(&CpuBackend, &model, &points)?;
/// assert!(after.loss < 1e-8, "{history:?}");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Lbfgs {
    /// The step length of every iteration after the first, without a line search; the line
    /// search's first trial with one (PyTorch's `lr`, 1 by default).
    pub lr: f64,
    /// Iterations per step at most (`max_iter`, 20).
    pub max_iter: usize,
    /// Loss evaluations per step at most (`max_eval`; `None`: `max_iter · 5/4`).
    pub max_eval: Option<usize>,
    /// A step ends once `max |g|` is at most this (`tolerance_grad`, 1e-7).
    pub tolerance_grad: f64,
    /// A step ends once the loss, or the largest parameter change, moves less than this
    /// (`tolerance_change`, 1e-9).
    pub tolerance_change: f64,
    /// The (s, y) pairs kept (`history_size`, 100).
    pub history_size: usize,
    /// Find each step's length by PyTorch's strong-Wolfe line search (`line_search_fn =
    /// "strong_wolfe"`) instead of taking `lr`.
    pub strong_wolfe: bool,
    /// Calls of `optimizer.step(closure)` (1 by default); the run stops before them all when a
    /// step starts at a gradient under `tolerance_grad`.
    pub steps: usize,
    /// Each class's weight in a softmax cross-entropy (see [`Lbfgs::class_weights`]).
    pub class_weights: Option<Vec<f32>>,
}

impl Default for Lbfgs {
    /// PyTorch's defaults, one step.
    fn default() -> Self {
        Self {
            lr: 1.0,
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            strong_wolfe: false,
            steps: 1,
            class_weights: None,
        }
    }
}

macro_rules! setters {
    ($($field:ident: $t:ty),*) => {$(
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, $field: $t) -> Self {
            self.$field = $field;
            self
        }
    )*};
}

impl Lbfgs {
    setters!(lr: f64, max_iter: usize, tolerance_grad: f64, tolerance_change: f64,
        history_size: usize, strong_wolfe: bool, steps: usize);

    /// Sets `max_eval`.
    pub fn max_eval(mut self, max_eval: usize) -> Self {
        self.max_eval = Some(max_eval);
        self
    }

    /// Weighs each class in the softmax cross-entropies, as
    /// [`Trainer::class_weights`](crate::Trainer::class_weights) does: the closure's loss is
    /// the weighted mean over every sample (PyTorch's `CrossEntropyLoss(weight=w)`), and so
    /// is each step's recorded loss. One weight per class, finite and ≥ 0, not all 0; refused
    /// with the other losses, when `run` is called.
    pub fn class_weights(mut self, weights: Vec<f32>) -> Self {
        self.class_weights = Some(weights);
        self
    }

    /// Every setting in range, or [`Error::InvalidHyperparameter`] naming the first that is
    /// not.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f64, rule: &str| {
            Err(Error::InvalidHyperparameter {
                optimizer: "LBFGS",
                name: name.into(),
                value,
                rule: rule.into(),
            })
        };
        // The step is applied in f32.
        if !(self.lr >= 0.0 && self.lr <= f64::from(f32::MAX)) {
            return bad("lr", self.lr, "must be ≥ 0 and at most 3.4e38 (f32)");
        }
        for (name, value) in [
            ("max_iter", self.max_iter),
            ("history_size", self.history_size),
            ("steps", self.steps),
            ("max_eval", self.max_eval.unwrap_or(1)),
        ] {
            if value == 0 {
                return bad(name, 0.0, "must be ≥ 1");
            }
        }
        for (name, value) in [
            ("tolerance_grad", self.tolerance_grad),
            ("tolerance_change", self.tolerance_change),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(name, value, "must be finite and ≥ 0");
            }
        }
        Ok(())
    }

    /// Minimises `loss` of `model` over all of `data`. Each step's record holds the loss and
    /// the gradient's norm at its start (PyTorch's step returns that loss), the iterations
    /// taken so far (as `step`), and the last step length (as `lr`).
    pub fn run<B: Backend, M: Model<B>>(
        &self,
        backend: &B,
        model: &mut M,
        data: &Dataset,
        loss: Loss,
    ) -> Result<History> {
        self.validate()?;
        let model = model.network_mut();
        let weights = (self.class_weights.as_deref()).map(|w| ("Lbfgs::class_weights", w));
        let mut problem = Problem::new(backend, model, data, loss, weights)?;
        let mut memory = Memory::default();
        let mut history = History::default();
        for step in 1..=self.steps {
            let start = self.step(&mut problem, &mut memory)?;
            let record = EpochRecord {
                epoch: step,
                step: memory.iterations,
                loss: start.loss,
                accuracy: start.accuracy,
                val_loss: None,
                val_accuracy: None,
                grad_norm: Some(start.grad_norm),
                update_ratio: None,
                lr: memory.t,
            };
            history.epochs.push(record);
            if start.converged {
                history.stop = StopReason::GradientTolerance {
                    grad_norm: start.grad_norm,
                };
                return Ok(history);
            }
        }
        history.stop = StopReason::MaxEpochs;
        Ok(history)
    }

    /// One `optimizer.step(closure)`; what it measured at its start.
    fn step<B: Backend>(&self, p: &mut Problem<'_, B>, m: &mut Memory<B>) -> Result<Start> {
        let max_eval = self.max_eval.unwrap_or(self.max_iter * 5 / 4);
        let (mut loss, max_grad) = p.evaluate_with_max()?;
        let start = p.start(loss)?;
        let mut current_evals = 1;
        p.backend.copy_arena(&p.model.grads, &mut p.flat)?;
        let mut opt_cond = f64::from(max_grad) <= self.tolerance_grad;
        if opt_cond {
            return Ok(Start {
                converged: true,
                ..start
            });
        }
        let mut n_iter = 0;
        while n_iter < self.max_iter {
            n_iter += 1;
            m.iterations += 1;
            if m.iterations == 1 {
                p.backend.scale_arena(-1.0, &p.flat, &mut p.d)?;
                m.pairs.clear();
                m.h_diag = 1.0;
            } else {
                self.direction(p, m)?;
            }
            p.backend.copy_arena(&p.flat, &mut p.prev_flat)?;
            let prev_loss = loss;
            m.t = match m.iterations {
                1 => {
                    let inverse = 1.0
                        / read_one(p.backend, &mut p.scalar, |b, t| {
                            b.sum_abs_into(&p.flat, t, 0)
                        })?;
                    // `min(1., 1. / Σ|g|) * lr`: an f32 tensor times lr where it is under 1.
                    match inverse < 1.0 {
                        true => f64::from((f64::from(inverse) * self.lr) as f32),
                        false => self.lr,
                    }
                }
                _ => self.lr,
            };
            let gtd = f64::from(read_one(p.backend, &mut p.scalar, |b, t| {
                b.dot_into(&p.flat, &p.d, t, 0)
            })?);
            if gtd > -self.tolerance_change {
                break;
            }
            let mut ls_evals = 0;
            if self.strong_wolfe {
                let d_norm = p.start_search()?;
                let found = StrongWolfe {
                    max_ls: max_eval.saturating_sub(current_evals),
                }
                .search(p, (m.t, loss, gtd), d_norm)?;
                p.take_gradient(found.g)?;
                (loss, m.t, ls_evals) = (found.loss, found.t, found.evals);
                p.backend
                    .axpy_arena(m.t as f32, &p.d, &mut p.model.params)?;
                let max_grad = read_one(p.backend, &mut p.scalar, |b, t| {
                    b.max_abs_into(&p.flat, t, 0)
                })?;
                opt_cond = f64::from(max_grad) <= self.tolerance_grad;
            } else {
                p.backend
                    .axpy_arena(m.t as f32, &p.d, &mut p.model.params)?;
                if n_iter != self.max_iter {
                    let (new_loss, max_grad) = p.evaluate_with_max()?;
                    loss = new_loss;
                    p.backend.copy_arena(&p.model.grads, &mut p.flat)?;
                    opt_cond = f64::from(max_grad) <= self.tolerance_grad;
                    ls_evals = 1;
                }
            }
            current_evals += ls_evals;
            if n_iter == self.max_iter || current_evals >= max_eval || opt_cond {
                break;
            }
            // max |t·d|: rounding is monotonic, so it is |t|·max |d| rounded.
            let max_d = read_one(p.backend, &mut p.scalar, |b, t| b.max_abs_into(&p.d, t, 0))?;
            if f64::from((m.t as f32).abs() * max_d) <= self.tolerance_change {
                break;
            }
            if (loss - prev_loss).abs() < self.tolerance_change {
                break;
            }
        }
        Ok(start)
    }

    /// The two-loop recursion: the pair of the last iteration joins the memory (when its
    /// curvature `yᵀs` is over 1e-10), then `d ← −H·g` from every pair kept.
    fn direction<B: Backend>(&self, p: &mut Problem<'_, B>, m: &mut Memory<B>) -> Result<()> {
        let backend = p.backend;
        // y = g − g_prev, s = d·t, into spare arenas (the oldest pair's, once the memory is
        // full and a pair joins).
        let (mut y, mut s) = match m.spare.take() {
            Some(pair) => pair,
            None => (p.arena("lbfgs y")?, p.arena("lbfgs s")?),
        };
        backend.copy_arena(&p.flat, &mut y)?;
        backend.axpy_arena(-1.0, &p.prev_flat, &mut y)?;
        backend.scale_arena(m.t as f32, &p.d, &mut s)?;
        backend.dot_into(&y, &s, &mut p.totals, YS)?;
        backend.dot_into(&y, &y, &mut p.totals, YY)?;
        let read = backend.download(&p.totals)?;
        let (ys, yy) = (read[[0, YS]], read[[0, YY]]);
        if f64::from(ys) > 1e-10 {
            if m.pairs.len() == self.history_size {
                let (old_y, old_s, _) = m.pairs.remove(0);
                m.spare = Some((old_y, old_s));
            }
            m.pairs.push((y, s, 1.0 / ys));
            m.h_diag = ys / yy;
        } else {
            m.spare = Some((y, s));
        }
        // q = −g; for the pairs newest first: α_i = ρ_i·s_iᵀq, q −= α_i·y_i.
        backend.scale_arena(-1.0, &p.flat, &mut p.q)?;
        m.alphas.resize(m.pairs.len(), 0.0);
        for i in (0..m.pairs.len()).rev() {
            let (y, s, ro) = &m.pairs[i];
            let alpha = read_one(backend, &mut p.scalar, |b, t| b.dot_into(s, &p.q, t, 0))? * ro;
            m.alphas[i] = alpha;
            backend.axpy_arena(-alpha, y, &mut p.q)?;
        }
        // d = r = H_diag·q; for the pairs oldest first: β_i = ρ_i·y_iᵀr, r += (α_i − β_i)·s_i.
        backend.scale_arena(m.h_diag, &p.q, &mut p.d)?;
        for (i, (y, s, ro)) in m.pairs.iter().enumerate() {
            let beta = read_one(backend, &mut p.scalar, |b, t| b.dot_into(y, &p.d, t, 0))? * ro;
            backend.axpy_arena(m.alphas[i] - beta, s, &mut p.d)?;
        }
        Ok(())
    }
}

/// Slots of the scalars read back: the loss kernel's four, then these.
const MAX_GRAD: usize = slot::LEN;
const GRAD_SQUARES: usize = slot::LEN + 1;
const GTD: usize = slot::LEN + 2;
const YS: usize = slot::LEN + 3;
const YY: usize = slot::LEN + 4;
const SLOTS: usize = slot::LEN + 5;

/// One scalar `op` records into `scalar` (1 × 1), read back.
fn read_one<B: Backend>(
    backend: &B,
    scalar: &mut B::Matrix,
    op: impl FnOnce(&B, &mut B::Matrix) -> Result<()>,
) -> Result<f32> {
    op(backend, scalar)?;
    Ok(backend.download(scalar)?[[0, 0]])
}

/// What a step measured at its start.
#[derive(Clone, Copy, Debug)]
struct Start {
    loss: f64,
    accuracy: Option<f64>,
    grad_norm: f64,
    converged: bool,
}

/// What carries from one step to the next (PyTorch's optimizer state).
struct Memory<B: Backend> {
    /// (y, s, ρ = 1/yᵀs), oldest first.
    pairs: Vec<(B::Arena, B::Arena, f32)>,
    /// A pair's arenas not kept (its curvature was too small), for the next.
    spare: Option<(B::Arena, B::Arena)>,
    /// α_i of the recursion's first loop.
    alphas: Vec<f32>,
    h_diag: f32,
    /// The last step length.
    t: f64,
    /// Iterations over every step (PyTorch's `n_iter` state).
    iterations: u64,
}

impl<B: Backend> Default for Memory<B> {
    fn default() -> Self {
        Self {
            pairs: Vec::new(),
            spare: None,
            alphas: Vec::new(),
            h_diag: 1.0,
            t: 0.0,
            iterations: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_by_name() {
        for (lbfgs, name) in [
            (Lbfgs::default().lr(-1.0), "lr"),
            (Lbfgs::default().lr(f64::NAN), "lr"),
            (Lbfgs::default().max_iter(0), "max_iter"),
            (Lbfgs::default().history_size(0), "history_size"),
            (Lbfgs::default().steps(0), "steps"),
            (Lbfgs::default().max_eval(0), "max_eval"),
            (
                Lbfgs::default().tolerance_grad(f64::INFINITY),
                "tolerance_grad",
            ),
            (Lbfgs::default().tolerance_change(-1.0), "tolerance_change"),
        ] {
            let err = lbfgs.validate().unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("LBFGS"), "{err}");
        }
        Lbfgs::default().validate().unwrap();
    }
}
