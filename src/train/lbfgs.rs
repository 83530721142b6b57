//! L-BFGS over the whole dataset, as PyTorch's `torch.optim.LBFGS` runs it: its two-loop
//! recursion, its first step's length, its stopping tests and its strong-Wolfe line search,
//! with every vector on the backend (arenas of the model's layout) and the scalars on the
//! host.

use super::session::slot;
use super::step::{DeviceData, batch_loss};
use super::{EpochRecord, History, StopReason, Trainer};
use crate::backend::{Arena, Backend, LossShare, Matrix};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Loss, Mode, Model, Sequential, Workspace};

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
#[derive(Clone, Copy, Debug, PartialEq)]
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
        Trainer::new(crate::Sgd::default(), loss)
            .full_batch()
            .check("Lbfgs::run", model.outputs(), data, None)?;
        let mut problem = Problem::new(backend, model, data, loss)?;
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

/// The model, the whole dataset in one batch, and the vectors of the iterations.
struct Problem<'a, B: Backend> {
    backend: &'a B,
    model: &'a mut Sequential<B>,
    loss: Loss,
    ws: Workspace<B::Matrix>,
    totals: B::Matrix,
    /// One scalar at a time (a dot product of the recursion).
    scalar: B::Matrix,
    samples: usize,
    /// Loss evaluations so far: each one's dropout masks are its own.
    evals: u64,
    shapes: Vec<(usize, usize)>,
    /// The gradient at the current parameters (PyTorch's `flat_grad`).
    flat: B::Arena,
    prev_flat: B::Arena,
    /// The direction.
    d: B::Arena,
    /// The recursion's first loop's vector.
    q: B::Arena,
    /// The line search's: the parameters it searches from, and gradients it keeps.
    search: Option<SearchArenas<B>>,
}

/// The line search's arenas, made at its first use.
struct SearchArenas<B: Backend> {
    x: B::Arena,
    gradients: [B::Arena; 4],
}

impl<'a, B: Backend> Problem<'a, B> {
    fn new(
        backend: &'a B,
        model: &'a mut Sequential<B>,
        data: &Dataset,
        loss: Loss,
    ) -> Result<Self> {
        let device = DeviceData::upload(backend, data)?;
        let samples = data.len();
        let all: Vec<u32> = (0..samples as u32).collect();
        let all = backend.upload_indices(&all)?;
        let mut ws = model.workspace(backend, samples, loss.target_cols(model.outputs()))?;
        device.gather(backend, &all, 0, (&mut ws.input, &mut ws.target))?;
        let shapes: Vec<(usize, usize)> =
            model.params.tensors().iter().map(Matrix::shape).collect();
        Ok(Self {
            backend,
            loss,
            ws,
            totals: backend.zeros(1, SLOTS)?,
            scalar: backend.zeros(1, 1)?,
            samples,
            evals: 0,
            flat: backend.arena("lbfgs gradient", &shapes)?,
            prev_flat: backend.arena("lbfgs previous gradient", &shapes)?,
            d: backend.arena("lbfgs direction", &shapes)?,
            q: backend.arena("lbfgs recursion", &shapes)?,
            search: None,
            shapes,
            model,
        })
    }

    fn arena(&self, label: &str) -> Result<B::Arena> {
        self.backend.arena(label, &self.shapes)
    }

    /// The closure: the mean loss over every sample and its gradient into the model's
    /// gradient arena, recorded; the loss is read back with whatever else was recorded.
    fn record_evaluation(&mut self) -> Result<()> {
        let (backend, model) = (self.backend, &mut *self.model);
        model.forward_batch(
            backend,
            &self.ws.input,
            &mut self.ws.acts,
            Mode::Train,
            self.evals,
        )?;
        self.evals += 1;
        batch_loss(
            backend,
            self.loss,
            &mut self.ws.acts,
            &self.ws.target,
            (&mut self.totals, slot::TRAIN),
            (Mode::Train, LossShare::whole(self.samples)),
        )?;
        model.backward_batch(backend, &self.ws.input, &mut self.ws.acts, &[])
    }

    /// The loss from a readback, refusing one that is not finite.
    fn loss_of(&self, read: &ndarray::Array2<f32>) -> Result<f64> {
        let f = f64::from(read[[0, slot::TRAIN]]) / self.samples as f64;
        if !f.is_finite() {
            return Err(Error::Diverged {
                step: self.evals,
                epoch: 0,
                loss: f,
                reason: format!("loss = {f} at evaluation {}", self.evals),
            });
        }
        Ok(f)
    }

    /// The closure, then one readback of the loss and `max |g|`.
    fn evaluate_with_max(&mut self) -> Result<(f64, f32)> {
        self.record_evaluation()?;
        self.backend
            .max_abs_into(&self.model.grads, &mut self.totals, MAX_GRAD)?;
        let read = self.backend.download(&self.totals)?;
        Ok((self.loss_of(&read)?, read[[0, MAX_GRAD]]))
    }

    /// What a step records at its start, from the evaluation just read (and ‖g‖, read now).
    fn start(&mut self, loss: f64) -> Result<Start> {
        self.backend
            .sum_squares_into(&self.model.grads, &mut self.totals, GRAD_SQUARES)?;
        let read = self.backend.download(&self.totals)?;
        Ok(Start {
            loss,
            accuracy: self
                .loss
                .has_accuracy()
                .then(|| f64::from(read[[0, slot::TRAIN + 1]]) / self.samples as f64),
            grad_norm: f64::from(read[[0, GRAD_SQUARES]]).sqrt(),
            converged: false,
        })
    }
}

/// PyTorch's `_strong_wolfe` as `LBFGS` calls it (c1 = 1e-4, c2 = 0.9, its own
/// `tolerance_change` of 1e-9, `max_ls` the evaluations the step has left): a bracketing phase
/// that extrapolates by cubic interpolation, then a zoom, each trial a directional evaluation
/// `f(x + t·d)`.
struct StrongWolfe {
    max_ls: usize,
}

/// The step a line search accepted: its length, its loss, its gradient, and the evaluations
/// it made.
#[derive(Clone, Copy, Debug)]
struct Found {
    t: f64,
    loss: f64,
    g: Gradient,
    evals: usize,
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;
/// The line search's `tolerance_change` (LBFGS leaves `_strong_wolfe`'s default).
const SEARCH_TOLERANCE_CHANGE: f64 = 1e-9;

/// What a line search evaluates: f along the direction, and the gradients it keeps.
trait Line {
    /// `f(x + t·d)` and its derivative along `d`; the gradient there is [`Gradient::Last`]
    /// until the next call.
    fn along(&mut self, t: f64) -> Result<(f64, f64)>;

    /// `gradient` kept where none of `live` is (PyTorch's `g_new.clone()`); one already kept
    /// stays where it is.
    fn keep(&mut self, gradient: Gradient, live: &[Gradient]) -> Result<Gradient>;
}

/// Where a gradient the line search holds is: the one at its start (`flat`), the last
/// evaluation's (the model's gradient arena, until the next), or a copy in one of its arenas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gradient {
    Start,
    Last,
    Kept(usize),
}

/// One end of a bracket: its step, loss, directional derivative and gradient.
#[derive(Clone, Copy, Debug)]
struct End {
    t: f64,
    f: f64,
    gtd: f64,
    g: Gradient,
}

impl StrongWolfe {
    /// From step `t` at the start's loss `f` and derivative `gtd` along a direction whose
    /// largest element is `d_norm`.
    fn search(
        &self,
        p: &mut impl Line,
        (t, f, gtd): (f64, f64, f64),
        d_norm: f64,
    ) -> Result<Found> {
        let armijo = |t: f64, f_new: f64| f_new > f + C1 * t * gtd;
        let mut t = t;
        let (mut f_new, mut gtd_new) = p.along(t)?;
        let mut evals = 1;
        let mut prev = End {
            t: 0.0,
            f,
            gtd,
            g: Gradient::Start,
        };
        let mut done = false;
        let mut ls_iter = 0;
        // The bracketing phase: ends [low side, high side] once found.
        let mut bracket: Option<[End; 2]> = None;
        while ls_iter < self.max_ls {
            let here = End {
                t,
                f: f_new,
                gtd: gtd_new,
                g: Gradient::Last,
            };
            // PyTorch's order: too high, then curvature met, then going up.
            let too_high = armijo(t, f_new) || (ls_iter > 1 && f_new >= prev.f);
            if !too_high && gtd_new.abs() <= -C2 * gtd {
                bracket = Some([here, here]);
                done = true;
                break;
            }
            if too_high || gtd_new >= 0.0 {
                let kept = p.keep(here.g, &[prev.g])?;
                bracket = Some([prev, End { g: kept, ..here }]);
                break;
            }
            let (min_step, max_step) = (t + 0.01 * (t - prev.t), t * 10.0);
            let next = cubic_interpolate(
                (prev.t, prev.f, prev.gtd),
                (t, f_new, gtd_new),
                Some((min_step, max_step)),
            );
            let kept = p.keep(Gradient::Last, &[])?;
            prev = End { g: kept, ..here };
            t = next;
            (f_new, gtd_new) = p.along(t)?;
            evals += 1;
            ls_iter += 1;
        }
        let mut bracket = match bracket {
            Some(found) if ls_iter < self.max_ls || done => found,
            // Out of trials (or none allowed): [0, t], as PyTorch's (its zoom does not run).
            _ => [
                End {
                    t: 0.0,
                    f,
                    gtd,
                    g: Gradient::Start,
                },
                End {
                    t,
                    f: f_new,
                    gtd: gtd_new,
                    g: Gradient::Last,
                },
            ],
        };
        let order = |b: &[End; 2]| if b[0].f <= b[1].f { (0, 1) } else { (1, 0) };
        let (mut low, mut high) = order(&bracket);
        let mut insufficient = false;
        // The zoom.
        while !done && ls_iter < self.max_ls {
            if (bracket[1].t - bracket[0].t).abs() * d_norm < SEARCH_TOLERANCE_CHANGE {
                break;
            }
            let [a, b] = bracket;
            t = cubic_interpolate((a.t, a.f, a.gtd), (b.t, b.f, b.gtd), None);
            let (lo, hi) = (a.t.min(b.t), a.t.max(b.t));
            let eps = 0.1 * (hi - lo);
            if (hi - t).min(t - lo) < eps {
                if insufficient || t >= hi || t <= lo {
                    t = if (t - hi).abs() < (t - lo).abs() {
                        hi - eps
                    } else {
                        lo + eps
                    };
                    insufficient = false;
                } else {
                    insufficient = true;
                }
            } else {
                insufficient = false;
            }
            (f_new, gtd_new) = p.along(t)?;
            evals += 1;
            ls_iter += 1;
            if armijo(t, f_new) || f_new >= bracket[low].f {
                let kept = p.keep(Gradient::Last, &[bracket[low].g])?;
                bracket[high] = End {
                    t,
                    f: f_new,
                    gtd: gtd_new,
                    g: kept,
                };
                (low, high) = order(&bracket);
            } else {
                if gtd_new.abs() <= -C2 * gtd {
                    done = true;
                } else if gtd_new * (bracket[high].t - bracket[low].t) >= 0.0 {
                    bracket[high] = bracket[low];
                }
                let kept = p.keep(Gradient::Last, &[bracket[high].g])?;
                bracket[low] = End {
                    t,
                    f: f_new,
                    gtd: gtd_new,
                    g: kept,
                };
            }
        }
        let best = bracket[low];
        Ok(Found {
            t: best.t,
            loss: best.f,
            g: best.g,
            evals,
        })
    }
}

impl<B: Backend> Line for Problem<'_, B> {
    /// PyTorch's `_directional_evaluate`: the loss at `x + t·d` and its derivative along `d`
    /// (its gradient left in the model's gradient arena), the parameters then back at `x`.
    fn along(&mut self, t: f64) -> Result<(f64, f64)> {
        let backend = self.backend;
        backend.axpy_arena(t as f32, &self.d, &mut self.model.params)?;
        self.record_evaluation()?;
        backend.dot_into(&self.model.grads, &self.d, &mut self.totals, GTD)?;
        let read = backend.download(&self.totals)?;
        if let Some(search) = &self.search {
            backend.copy_arena(&search.x, &mut self.model.params)?;
        }
        Ok((self.loss_of(&read)?, f64::from(read[[0, GTD]])))
    }

    fn keep(&mut self, gradient: Gradient, live: &[Gradient]) -> Result<Gradient> {
        let Gradient::Last = gradient else {
            return Ok(gradient);
        };
        let search = self.search.as_mut().ok_or_else(|| Error::Data {
            op: "Lbfgs::run",
            detail: "the line search's arenas are missing".into(),
        })?;
        let free = (0..search.gradients.len())
            .find(|&i| !live.contains(&Gradient::Kept(i)))
            .unwrap_or(0);
        self.backend
            .copy_arena(&self.model.grads, &mut search.gradients[free])?;
        Ok(Gradient::Kept(free))
    }
}

impl<B: Backend> Problem<'_, B> {
    /// Readies a line search from the current parameters (its arenas made at the first):
    /// keeps them as `x`, and gives `max |d|`.
    fn start_search(&mut self) -> Result<f64> {
        if self.search.is_none() {
            self.search = Some(SearchArenas {
                x: self.arena("lbfgs line search start")?,
                gradients: [
                    self.arena("lbfgs line search gradient")?,
                    self.arena("lbfgs line search gradient")?,
                    self.arena("lbfgs line search gradient")?,
                    self.arena("lbfgs line search gradient")?,
                ],
            });
        }
        if let Some(search) = &mut self.search {
            self.backend.copy_arena(&self.model.params, &mut search.x)?;
        }
        let max_d = read_one(self.backend, &mut self.scalar, |b, m| {
            b.max_abs_into(&self.d, m, 0)
        })?;
        Ok(f64::from(max_d))
    }

    /// Makes `gradient` the current one (`flat`).
    fn take_gradient(&mut self, gradient: Gradient) -> Result<()> {
        match (gradient, &self.search) {
            (Gradient::Start, _) => Ok(()),
            (Gradient::Last, _) => self.backend.copy_arena(&self.model.grads, &mut self.flat),
            (Gradient::Kept(i), Some(search)) => self
                .backend
                .copy_arena(&search.gradients[i], &mut self.flat),
            (Gradient::Kept(_), None) => Err(Error::Data {
                op: "Lbfgs::run",
                detail: "the line search's arenas are missing".into(),
            }),
        }
    }
}

/// PyTorch's `_cubic_interpolate`: the minimiser of the cubic through (x1, f1, g1) and
/// (x2, f2, g2), within `bounds` (by default the interval between them); their midpoint where
/// the cubic has none.
fn cubic_interpolate(
    (x1, f1, g1): (f64, f64, f64),
    (x2, f2, g2): (f64, f64, f64),
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        min_pos.max(lo).min(hi)
    } else {
        (lo + hi) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `F(z) = sin 3z + z²/10 + cos(7z)/2` along the unit descent direction from `x0`.
    struct Wiggly {
        x0: f64,
        d: f64,
    }

    fn f(z: f64) -> f64 {
        (3.0 * z).sin() + 0.1 * z * z + 0.5 * (7.0 * z).cos()
    }

    fn f_prime(z: f64) -> f64 {
        3.0 * (3.0 * z).cos() + 0.2 * z - 3.5 * (7.0 * z).sin()
    }

    impl Line for Wiggly {
        fn along(&mut self, t: f64) -> Result<(f64, f64)> {
            let z = self.x0 + t * self.d;
            Ok((f(z), f_prime(z) * self.d))
        }

        fn keep(&mut self, gradient: Gradient, _: &[Gradient]) -> Result<Gradient> {
            Ok(gradient)
        }
    }

    /// PyTorch's `torch.optim.lbfgs._strong_wolfe` (torch 2.15, float64) on `Wiggly`, from
    /// `x0` with a first trial `t0` and `max_ls` trials: the step it returns, its loss and
    /// its evaluations. The cases were picked from a sweep so that together they take every
    /// branch: out of trials, above the Armijo line, not below the previous trial, going up,
    /// the zoom's aliasing of the bracket's ends, and its insufficient-progress rule set and
    /// applied; then a first trial accepted at once and a search allowed no trial.
    const PYTORCH: [(f64, f64, usize, f64, f64, usize); 8] = [
        (-2.0, 0.01, 2, 0.2795762178986101, -0.49232925197856103, 3),
        (-2.0, 4.0, 25, 0.5881577740410742, 0.045627927347221264, 3),
        (-1.794, 0.01, 25, 0.5755363567002533, -0.4924061716612673, 5),
        (-1.794, 4.0, 25, 0.5688984466699841, -0.49943395782484745, 4),
        (
            -0.455,
            4.0,
            25,
            0.011066066883413592,
            -1.4597721924120226,
            4,
        ),
        (1.811, 0.01, 25, 0.4098782082683262, -1.1406664291904933, 4),
        (1.7, 4.0, 25, 4.0, -0.5115061644247649, 1),
        (0.0, 1.0, 0, 1.0, 0.3358311191117851, 1),
    ];

    #[test]
    fn the_line_search_is_pytorchs() {
        for (x0, t0, max_ls, t, loss, evals) in PYTORCH {
            let d = -f_prime(x0).signum();
            let mut line = Wiggly { x0, d };
            let found = StrongWolfe { max_ls }
                .search(&mut line, (t0, f(x0), f_prime(x0) * d), 1.0)
                .unwrap();
            let what = format!("x0 {x0}, t0 {t0}, max_ls {max_ls}: {found:?}");
            assert!(
                (found.t - t).abs() <= 1e-12 * t.abs().max(1.0),
                "{what}, t {t}"
            );
            assert!((found.loss - loss).abs() <= 1e-12, "{what}, loss {loss}");
            assert_eq!(found.evals, evals, "{what}");
        }
    }

    #[test]
    fn the_cubic_is_minimised_within_its_bounds() {
        // f = (x − 1)²: the cubic through (0, 1, −2) and (3, 4, 4) is that parabola.
        assert!((cubic_interpolate((0.0, 1.0, -2.0), (3.0, 4.0, 4.0), None) - 1.0).abs() < 1e-12);
        assert_eq!(
            cubic_interpolate((0.0, 1.0, -2.0), (3.0, 4.0, 4.0), Some((2.0, 5.0))),
            2.0
        );
        // Rising at both ends with a slope between them under theirs: no real minimiser,
        // the middle of the bounds.
        assert_eq!(
            cubic_interpolate((0.0, 0.0, 1.0), (1.0, 2.0 / 3.0, 1.0), None),
            0.5
        );
    }

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
