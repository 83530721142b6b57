//! The evaluation pass: a model's loss (and accuracy) over a whole dataset in evaluation mode,
//! chunk by chunk on the backend, as the session's validation pass and `Trainer::evaluate`
//! measure it.

use super::Trainer;
use super::device_data::{DeviceData, check_inputs};
use super::session::slot;
use super::step::{forward_loss, workspace};
use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Loss, Mode, Model, Sequential, Workspace};

/// A model's loss over a dataset, measured as the validation pass measures it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// The mean loss per sample (what [`crate::EpochRecord::val_loss`] reports).
    pub loss: f64,
    /// The fraction of samples classified right, for the classification losses.
    pub accuracy: Option<f64>,
    /// The samples evaluated.
    pub samples: usize,
}

/// Runs `net` in evaluation mode over every row of `data` (`all` lists them), adding the loss
/// and correct-count sums into `totals` at `at` + 2 and `at` + 3. Chunks of at least 1 024
/// rows, unless one GPU binding cannot hold their activations: then `batch` rows (the
/// training batch's size, whose workspace exists), or as many as fit, halving.
pub(super) fn evaluation_pass<B: Backend>(
    backend: &B,
    (net, loss, weights): (&Sequential<B>, Loss, Option<&B::Matrix>),
    (data, all): (&DeviceData<B>, &B::Indices),
    batch: usize,
    workspaces: &mut Vec<Workspace<B::Matrix>>,
    (totals, at): (&mut B::Matrix, usize),
    step: u64,
) -> Result<()> {
    let fits = |rows| {
        net.check_batch_fits(backend, rows, Some(loss.target_cols(net.outputs())))
            .is_ok()
    };
    let mut rows = match batch.max(1024).min(data.len) {
        rows if fits(rows) => rows,
        _ => batch.min(data.len),
    };
    // (A row that one binding cannot hold is refused when its workspace is built.)
    while rows > 1 && !fits(rows) {
        rows = rows.div_ceil(2);
    }
    let mut start = 0;
    while start < data.len {
        let n = rows.min(data.len - start);
        let ws = workspace(workspaces, backend, net, loss, n)?;
        forward_loss(
            backend,
            net,
            (loss, weights),
            (data, all, start),
            ws,
            (&mut *totals, at),
            (Mode::Eval, step),
        )?;
        start += n;
    }
    Ok(())
}

impl Trainer {
    /// The mean loss, and for classification the accuracy, of `model` over all of `data` in
    /// evaluation mode (dropout off): what this trainer's validation pass would report for it,
    /// in the same chunks (a test set after training, say). `data` is taken as `fit` takes it:
    /// standardised already where training data was (a standardizer attached to the model
    /// applies to predictions only). It is checked as validation data is and uploaded for the
    /// call; nothing of the model changes.
    ///
    /// ```
    /// use steepest::{Activation, Adam, CpuBackend, Init, Loss, Mlp, MlpSpec, Trainer, data};
    /// # fn main() -> steepest::Result<()> {
    /// let (train, test) = data::spirals(300, 0.05, 1)?.split(0.3, 1)?;
    /// let spec = MlpSpec::stack(&[2, 32, 2], Activation::Relu);
    /// let mut model = Mlp::new(&CpuBackend, &spec, Init::HeUniform, 1)?;
    /// let trainer = Trainer::new(Adam::default().lr(0.02), Loss::SoftmaxCrossEntropy).epochs(20);
    /// trainer.fit(&CpuBackend, &mut model, &train, None)?;
    /// let test = trainer.evaluate(&CpuBackend, &model, &test)?;
    /// assert_eq!(test.samples, 90);
    /// let accuracy = test.accuracy.unwrap_or(0.0); // Some for the classification losses
    /// println!("test loss {:.3}, accuracy {:.1}%", test.loss, 100.0 * accuracy);
    /// # Ok(())
    /// # }
    /// ```
    pub fn evaluate<B: Backend, M: Model<B>>(
        &self,
        backend: &B,
        model: &M,
        data: &Dataset,
    ) -> Result<Evaluation> {
        let op = "Trainer::evaluate";
        self.loss.validate()?;
        self.check_batch_size(op)?;
        let net = model.network();
        check_inputs(op, "the data", data.x().view(), net)?;
        self.check_targets(op, "evaluation", net.outputs(), data)?;
        self.check_class_weight_count(op, net.outputs())?;
        let samples = data.len();
        let rows = u32::try_from(samples).map_err(|_| Error::Data {
            op,
            detail: format!("{samples} samples: at most {} can be indexed", u32::MAX),
        })?;
        let all: Vec<u32> = (0..rows).collect();
        let device = DeviceData::upload(backend, data)?;
        let all = backend.upload_indices(&all)?;
        let mut totals = backend.zeros(1, slot::LEN)?;
        let weights = self.upload_class_weights(backend)?;
        evaluation_pass(
            backend,
            (net, self.loss, weights.as_ref()),
            (&device, &all),
            self.batch_size.unwrap_or(samples),
            &mut Vec::new(),
            (&mut totals, slot::VALIDATION),
            0,
        )?;
        let totals = backend.download(&totals)?;
        let mean = |i: usize| f64::from(totals[[0, slot::VALIDATION + i]]) / samples as f64;
        Ok(Evaluation {
            loss: mean(2),
            accuracy: self.loss.has_accuracy().then(|| mean(3)),
            samples,
        })
    }
}
