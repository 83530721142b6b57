//! Prediction on host data: `predict`, `predict_classes` and `confusion_matrix` on any model,
//! in batches so that a large input never needs all its activations on the device at once,
//! and [`Predictor`], the same with its device memory kept from one call to the next (a
//! serving loop's).

use ndarray::{Array2, ArrayView2, s};

use super::passes::Activations;
use super::{Mode, Sequential};
use crate::backend::Backend;
use crate::error::{Error, Result};

/// Activations one batch of a prediction may hold per layer: 16 Mi values (64 MiB of f32).
const VALUES_PER_BATCH: usize = 1 << 24;

/// Batch sizes a [`Predictor`] keeps buffers for; the least recently used goes first.
const SIZES_KEPT: usize = 4;

impl<B: Backend> Sequential<B> {
    /// The network's outputs for every row of `x` (samples × inputs), as a host array of
    /// samples × outputs: logits for a classifier trained with a cross-entropy loss. Inputs
    /// are standardised first when the model carries a [`Sequential::standardizer`]. Runs in batches
    /// sized so each layer's activations stay under 64 MiB (and one GPU binding).
    ///
    /// Each call allocates the batch's device memory anew; a loop that predicts again and
    /// again keeps it in a [`Predictor`] ([`Sequential::predictor`]) instead.
    ///
    /// ```
    /// use ndarray::array;
    /// use steepest::{Activation, CpuBackend, Init, Mlp, MlpSpec};
    /// # fn main() -> steepest::Result<()> {
    /// let spec = MlpSpec::new(2).layer(8, Activation::Relu).layer(3, Activation::Identity);
    /// let model = Mlp::new(&CpuBackend, &spec, Init::default(), 1)?;
    /// let logits = model.predict(&CpuBackend, array![[0.5, -1.0], [2.0, 0.0]].view())?;
    /// assert_eq!(logits.dim(), (2, 3));
    /// let classes = model.predict_classes(&CpuBackend, array![[0.5, -1.0]].view())?;
    /// assert!(classes[0] < 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn predict(&self, backend: &B, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let widest = self
            .layers()
            .iter()
            .map(|l| l.outputs())
            .chain([self.inputs()])
            .max()
            .unwrap_or(1)
            .max(1);
        // (and within what one matrix may hold on the backend: one GPU binding)
        let values = VALUES_PER_BATCH.min(backend.max_matrix_elements());
        let batch = (values / widest).clamp(1, x.nrows().max(1));
        self.predictor(batch)?.run("predict", backend, self, x)
    }

    /// The predicted class of every row of `x`: the index of the largest output (the first
    /// of equals) for a network with several outputs, as softmax cross-entropy trains it; for
    /// one output, a logit as binary cross-entropy trains it, class 1 when it is above 0.
    pub fn predict_classes(&self, backend: &B, x: ArrayView2<'_, f32>) -> Result<Vec<usize>> {
        Ok(classes(&self.predict(backend, x)?))
    }

    /// The confusion matrix of the model's predictions on `data` (classification data, as
    /// [`Dataset::classification`](crate::Dataset::classification) builds it): entry
    /// `[t, p]` counts the samples of class `t` predicted as class `p` (scikit-learn's
    /// `confusion_matrix`: rows the true classes), classes × classes, the predictions as
    /// [`Sequential::predict_classes`] makes them. The model has an output per class, or one
    /// for two classes (a logit, as binary cross-entropy trains it).
    ///
    /// ```
    /// use steepest::{Activation, CpuBackend, Init, Mlp, MlpSpec, data};
    /// # fn main() -> steepest::Result<()> {
    /// let blobs = data::blobs(60, &[[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]], 0.5, 1)?;
    /// let spec = MlpSpec::stack(&[2, 8, 3], Activation::Tanh);
    /// let model = Mlp::new(&CpuBackend, &spec, Init::default(), 1)?;
    /// let counts = model.confusion_matrix(&CpuBackend, &blobs)?;
    /// assert_eq!((counts.dim(), counts.sum()), ((3, 3), 60)); // rows: true classes
    /// let right = counts.diag().sum(); // the samples classified right
    /// # let _ = right;
    /// # Ok(())
    /// # }
    /// ```
    pub fn confusion_matrix(&self, backend: &B, data: &crate::Dataset) -> Result<Array2<u64>> {
        let op = "Sequential::confusion_matrix";
        let (Some(labels), Some(classes)) = (data.labels(), data.classes()) else {
            return Err(Error::Data {
                op,
                detail: "the data has no class labels (build it with Dataset::classification)"
                    .into(),
            });
        };
        let outputs = self.outputs();
        if outputs != classes && !(outputs == 1 && classes == 2) {
            return Err(Error::Data {
                op,
                detail: format!(
                    "the data has {classes} classes and the model {outputs} outputs: one per \
                     class, or one for two classes"
                ),
            });
        }
        let predicted = self.predict_classes(backend, data.x().view())?;
        let mut counts = Array2::zeros((classes, classes));
        for (truth, guess) in labels.into_iter().zip(predicted) {
            counts[[truth, guess]] += 1;
        }
        Ok(counts)
    }

    /// A [`Predictor`] for this model (or any of its architecture) that runs up to `batch`
    /// rows per forward pass. It allocates nothing until its first prediction.
    ///
    /// Fails when `batch` is 0.
    pub fn predictor(&self, batch: usize) -> Result<Predictor<B>> {
        if batch == 0 {
            return Err(Error::Shape {
                op: "Sequential::predictor",
                detail: "a batch of 0 rows: a prediction needs at least 1 row per pass".into(),
            });
        }
        Ok(Predictor {
            batch,
            architecture: self.architecture(),
            inputs: self.inputs(),
            kept: Vec::new(),
            passes: 0,
        })
    }
}

/// Prediction with its device memory kept from one call to the next: what a loop that
/// predicts again and again (a server answering requests, an evaluation every epoch) wants on
/// the GPU, where [`Sequential::predict`] would allocate its input, its activations and their
/// bind groups on every call.
///
/// Inputs run in passes of up to `batch` rows (the last pass of a call takes what is left).
/// The predictor keeps one set of buffers per pass size for the four sizes used most recently,
/// so once each size has been seen a call creates no buffer, bind group or pipeline
/// ([`GpuContext::counters`](crate::GpuContext::counters) counts them), writes its input
/// into device memory that is already there, and waits once per pass for the outputs.
///
/// A predictor belongs to no model: each call names the model, which may have been trained
/// since the last call, and must have the architecture the predictor was made for. Its
/// buffers live on the backend of the calls that made them (on the GPU, one context: another
/// context's model fails with [`Error::WrongContext`]).
///
/// ```
/// use ndarray::array;
/// use steepest::{Activation, CpuBackend, Init, Mlp, MlpSpec};
/// # fn main() -> steepest::Result<()> {
/// let spec = MlpSpec::new(2).layer(8, Activation::Relu).layer(3, Activation::Identity);
/// let model = Mlp::new(&CpuBackend, &spec, Init::default(), 1)?;
/// let mut predictor = model.predictor(64)?;
/// for request in [array![[0.5, -1.0]], array![[2.0, 0.0]]] {
///     let logits = predictor.predict(&CpuBackend, &model, request.view())?;
///     assert_eq!(logits, model.predict(&CpuBackend, request.view())?);
/// }
/// # Ok(())
/// # }
/// ```
pub struct Predictor<B: Backend> {
    batch: usize,
    architecture: String,
    inputs: usize,
    /// The buffers of each pass size kept.
    kept: Vec<Pass<B::Matrix>>,
    /// Passes run so far: each kept size remembers the number of its latest.
    passes: u64,
}

/// One pass size's device memory: its input and every layer's activations.
struct Pass<M> {
    rows: usize,
    /// The number of the latest pass that ran through these buffers (0: none has yet).
    used: u64,
    input: M,
    acts: Activations<M>,
}

impl<B: Backend> std::fmt::Debug for Predictor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor")
            .field("batch", &self.batch)
            .field("architecture", &self.architecture)
            .field("sizes_kept", &self.sizes_kept())
            .finish()
    }
}

impl<B: Backend> Predictor<B> {
    /// Rows per forward pass at most.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The pass sizes (rows) whose buffers are kept, the most recently used last.
    pub fn sizes_kept(&self) -> Vec<usize> {
        let mut kept: Vec<(u64, usize)> = self.kept.iter().map(|p| (p.used, p.rows)).collect();
        kept.sort_unstable();
        kept.into_iter().map(|(_, rows)| rows).collect()
    }

    /// `model`'s outputs for every row of `x`, as [`Sequential::predict`] gives them (inputs
    /// standardised first when the model carries a standardizer), in passes of at most
    /// [`Predictor::batch`] rows through the kept buffers.
    ///
    /// Fails, changing nothing, when `model` has another architecture than the model the
    /// predictor was made for, or `x` has another number of features or a value that is not
    /// finite.
    pub fn predict(
        &mut self,
        backend: &B,
        model: &Sequential<B>,
        x: ArrayView2<'_, f32>,
    ) -> Result<Array2<f32>> {
        self.run("Predictor::predict", backend, model, x)
    }

    /// The predicted class of every row of `x`, as [`Sequential::predict_classes`] gives it.
    pub fn predict_classes(
        &mut self,
        backend: &B,
        model: &Sequential<B>,
        x: ArrayView2<'_, f32>,
    ) -> Result<Vec<usize>> {
        Ok(classes(&self.run(
            "Predictor::predict_classes",
            backend,
            model,
            x,
        )?))
    }

    fn run(
        &mut self,
        op: &'static str,
        backend: &B,
        model: &Sequential<B>,
        x: ArrayView2<'_, f32>,
    ) -> Result<Array2<f32>> {
        if model.inputs() != self.inputs || model.architecture() != self.architecture {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "the predictor was made for a model of {}, not {}",
                    self.architecture,
                    model.architecture()
                ),
            });
        }
        let (rows, features) = x.dim();
        model.check_input(op, features)?;
        if let Some((r, c)) = x
            .indexed_iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(i, _)| i)
        {
            return Err(Error::Data {
                op,
                detail: format!("x[{r}, {c}] is {}: every input must be finite", x[[r, c]]),
            });
        }
        let mut outputs = Array2::zeros((rows, model.outputs()));
        if rows == 0 {
            return Ok(outputs);
        }
        let standardised = match model.standardizer() {
            Some(s) => Some(s.transform_x(x)?),
            None => None,
        };
        let x = standardised.as_ref().map_or(x, |s| s.view());
        // What the layers read, after standardisation (an embedding's indices).
        model.check_data(op, x)?;
        for start in (0..rows).step_by(self.batch) {
            let end = (start + self.batch).min(rows);
            self.passes += 1;
            let number = self.passes;
            let pass = self.pass(backend, model, end - start)?;
            backend.write(&mut pass.input, x.slice(s![start..end, ..]))?;
            model.forward_batch(backend, &pass.input, &mut pass.acts, Mode::Eval, 0)?;
            let output = pass.acts.outputs.last().ok_or_else(|| Error::Shape {
                op,
                detail: "the model has no layers".into(),
            })?;
            outputs
                .slice_mut(s![start..end, ..])
                .assign(&backend.download(output)?);
            // Only a pass that ran counts as a use: a refused one reorders nothing.
            pass.used = number;
        }
        Ok(outputs)
    }

    /// The buffers for a pass of `rows` rows: kept ones, or new ones (the least recently used
    /// size's dropped when four are kept already).
    fn pass(
        &mut self,
        backend: &B,
        model: &Sequential<B>,
        rows: usize,
    ) -> Result<&mut Pass<B::Matrix>> {
        let index = match self.kept.iter().position(|p| p.rows == rows) {
            Some(i) => i,
            None => {
                let pass = Pass {
                    rows,
                    used: 0,
                    input: backend.zeros(rows, model.inputs())?,
                    acts: model.activations(backend, rows, Mode::Eval)?,
                };
                if self.kept.len() == SIZES_KEPT
                    && let Some(oldest) = (0..self.kept.len()).min_by_key(|&i| self.kept[i].used)
                {
                    self.kept.swap_remove(oldest);
                }
                self.kept.push(pass);
                self.kept.len() - 1
            }
        };
        self.kept.get_mut(index).ok_or_else(|| Error::Shape {
            op: "Predictor::predict",
            detail: format!("no buffers kept for passes of {rows} rows"),
        })
    }
}

/// Each row's class: the first largest output, or for one output a logit above 0.
fn classes(outputs: &Array2<f32>) -> Vec<usize> {
    outputs
        .rows()
        .into_iter()
        .map(|row| {
            if row.len() == 1 {
                usize::from(row[0] > 0.0)
            } else {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                        if v > best.1 { (i, v) } else { best }
                    })
                    .0
            }
        })
        .collect()
}
