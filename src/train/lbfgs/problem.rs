//! The problem L-BFGS works on: the model, the whole dataset in one batch, the closure that
//! evaluates the loss and its gradient, and the arenas of the iterations.

use super::line_search::{Gradient, Line};
use super::{GRAD_SQUARES, GTD, MAX_GRAD, SLOTS, Start, read_one};
use crate::backend::{Arena, Backend, LossShare, Matrix};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Loss, Mode, Sequential, Workspace};
use crate::train::device_data::{WholeBatch, whole_batch};
use crate::train::session::slot;
use crate::train::step::batch_loss;

/// The model, the whole dataset in one batch, and the vectors of the iterations.
pub(super) struct Problem<'a, B: Backend> {
    pub(super) backend: &'a B,
    pub(super) model: &'a mut Sequential<B>,
    pub(super) loss: Loss,
    /// The loss's class weights on the backend ([`super::Lbfgs::class_weights`]).
    pub(super) class_weights: Option<B::Matrix>,
    pub(super) ws: Workspace<B::Matrix>,
    pub(super) totals: B::Matrix,
    /// One scalar at a time (a dot product of the recursion).
    pub(super) scalar: B::Matrix,
    pub(super) samples: usize,
    /// Loss evaluations so far: each one's dropout masks are its own.
    pub(super) evals: u64,
    pub(super) shapes: Vec<(usize, usize)>,
    /// The gradient at the current parameters (PyTorch's `flat_grad`).
    pub(super) flat: B::Arena,
    pub(super) prev_flat: B::Arena,
    /// The direction.
    pub(super) d: B::Arena,
    /// The recursion's first loop's vector.
    pub(super) q: B::Arena,
    /// The line search's: the parameters it searches from, and gradients it keeps.
    pub(super) search: Option<SearchArenas<B>>,
}

/// The line search's arenas, made at its first use.
pub(super) struct SearchArenas<B: Backend> {
    x: B::Arena,
    gradients: [B::Arena; 4],
}

impl<'a, B: Backend> Problem<'a, B> {
    pub(super) fn new(
        backend: &'a B,
        model: &'a mut Sequential<B>,
        data: &Dataset,
        loss: Loss,
        class_weights: Option<(&'static str, &[f32])>,
    ) -> Result<Self> {
        let samples = data.len();
        let WholeBatch { ws, class_weights } =
            whole_batch(backend, model, data, loss, ("Lbfgs::run", class_weights))?;
        let shapes: Vec<(usize, usize)> =
            model.params.tensors().iter().map(Matrix::shape).collect();
        Ok(Self {
            backend,
            loss,
            class_weights,
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

    pub(super) fn arena(&self, label: &str) -> Result<B::Arena> {
        self.backend.arena(label, &self.shapes)
    }

    /// The closure: the mean loss over every sample and its gradient into the model's
    /// gradient arena, recorded; the loss is read back with whatever else was recorded.
    pub(super) fn record_evaluation(&mut self) -> Result<()> {
        let (backend, model) = (self.backend, &mut *self.model);
        model.train_forward_batch(backend, &self.ws.input, &mut self.ws.acts, self.evals)?;
        self.evals += 1;
        batch_loss(
            backend,
            (self.loss, self.class_weights.as_ref()),
            &mut self.ws.acts,
            &self.ws.target,
            (&mut self.totals, slot::TRAIN),
            (Mode::Train, LossShare::whole(self.samples)),
        )?;
        model.backward_batch(backend, &self.ws.input, &mut self.ws.acts, &[])
    }

    /// The loss from a readback, refusing one that is not finite.
    pub(super) fn loss_of(&self, read: &ndarray::Array2<f32>) -> Result<f64> {
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
    pub(super) fn evaluate_with_max(&mut self) -> Result<(f64, f32)> {
        self.record_evaluation()?;
        self.backend
            .max_abs_into(&self.model.grads, &mut self.totals, MAX_GRAD)?;
        let read = self.backend.download(&self.totals)?;
        Ok((self.loss_of(&read)?, read[[0, MAX_GRAD]]))
    }

    /// What a step records at its start, from the evaluation just read (and ‖g‖, read now).
    pub(super) fn start(&mut self, loss: f64) -> Result<Start> {
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

impl<B: Backend> Line for Problem<'_, B> {
    /// PyTorch's `_directional_evaluate`: the loss at `x + t·d` and its derivative along `d`
    /// (its gradient left in the model's gradient arena), the parameters then back at `x`.
    /// The buffers keep what the evaluation made of them (a batch norm's running statistics
    /// follow every evaluation, trials included, as each call of PyTorch's closure moves
    /// them): they go into `x` before it comes back.
    fn along(&mut self, t: f64) -> Result<(f64, f64)> {
        let backend = self.backend;
        backend.axpy_arena(t as f32, &self.d, &mut self.model.params)?;
        self.record_evaluation()?;
        backend.dot_into(&self.model.grads, &self.d, &mut self.totals, GTD)?;
        let read = backend.download(&self.totals)?;
        if let Some(search) = &mut self.search {
            let (buffers, now) = (self.model.buffer_tensors(), self.model.params.tensors());
            let x = search.x.tensors_mut().iter_mut();
            for ((kept, now), _) in x.zip(now).zip(buffers).filter(|(_, buffer)| **buffer) {
                backend.copy_into(now, kept)?;
            }
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
    pub(super) fn start_search(&mut self) -> Result<f64> {
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
    pub(super) fn take_gradient(&mut self, gradient: Gradient) -> Result<()> {
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
