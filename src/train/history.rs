//! What a training run measured, per epoch and per logged step, exported as CSV or JSON.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};

/// Measurements at the end of one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochRecord {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Optimizer steps taken so far.
    pub step: u64,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub loss: f64,
    /// Fraction of training samples predicted correctly (classification losses).
    pub accuracy: Option<f64>,
    /// Mean loss on the validation set after the epoch.
    pub val_loss: Option<f64>,
    /// Validation accuracy after the epoch (classification losses).
    pub val_accuracy: Option<f64>,
    /// ‖g‖ of the epoch's last step, before clipping (when monitoring).
    pub grad_norm: Option<f64>,
    /// ‖Δθ‖/‖θ‖ of the epoch's last step (when monitoring).
    pub update_ratio: Option<f64>,
    /// The learning rate of the epoch's last step (the optimizer's own: a parameter group's
    /// is this times its `lr_scale`).
    pub lr: f64,
}

/// The loss of one logged step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    /// The step, from 1.
    pub step: u64,
    /// The epoch it belongs to, from 1.
    pub epoch: usize,
    /// Mean loss of the step's batch (of its batches together, with gradient accumulation),
    /// before its update.
    pub loss: f64,
    /// The step's learning rate (the optimizer's own; a parameter group's is this times its
    /// `lr_scale`).
    pub lr: f64,
}

/// Why training stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum StopReason {
    /// Not stopped yet.
    Running,
    /// The configured number of epochs ran.
    MaxEpochs,
    /// The gradient norm fell below the tolerance.
    GradientTolerance {
        /// The norm that was measured.
        grad_norm: f64,
    },
    /// The watched value (the loss, or the accuracy: `Trainer::watch`) did not improve for
    /// `patience` epochs.
    Plateau {
        /// The best value seen.
        best: f64,
    },
    /// A line search found no step along −∇f that decreases the loss enough (Armijo), however
    /// far it backtracked: the parameters are (numerically) at a minimum along the gradient.
    NoDescent {
        /// The loss at the parameters kept.
        loss: f64,
        /// The backtracking steps tried.
        backtracks: usize,
    },
}

/// Per-epoch and per-step measurements of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    /// One record per finished epoch.
    pub epochs: Vec<EpochRecord>,
    /// One record per logged step (see `Trainer::log_every`).
    pub steps: Vec<StepRecord>,
    /// Why the run ended.
    pub stop: StopReason,
    /// The epoch whose parameters the model was given back at the end of the run
    /// ([`crate::Trainer::restore_best`]); `None` without it.
    pub restored_epoch: Option<usize>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            epochs: Vec::new(),
            steps: Vec::new(),
            stop: StopReason::Running,
            restored_epoch: None,
        }
    }
}

/// A number for CSV (empty when absent).
fn csv_number(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A number for JSON (`null` when absent or not finite, which JSON cannot spell).
fn json_number(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => v.to_string(),
        _ => "null".into(),
    }
}

const EPOCH_COLUMNS: [&str; 9] = [
    "epoch",
    "step",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "grad_norm",
    "update_ratio",
    "lr",
];

impl EpochRecord {
    fn values(&self) -> [Option<f64>; 9] {
        [
            Some(self.epoch as f64),
            Some(self.step as f64),
            Some(self.loss),
            self.accuracy,
            self.val_loss,
            self.val_accuracy,
            self.grad_norm,
            self.update_ratio,
            Some(self.lr),
        ]
    }
}

impl History {
    /// The last epoch's record.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// The per-epoch records as CSV, one header line then one line per epoch.
    pub fn to_csv(&self) -> String {
        let mut out = EPOCH_COLUMNS.join(",");
        out.push('\n');
        for record in &self.epochs {
            let line: Vec<String> = record.values().into_iter().map(csv_number).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }

    /// The epoch records back from [`History::to_csv`]'s text (checkpoints carry it: numbers
    /// in Rust's shortest exact form parse back to the same bits), or `None` if the text is
    /// not one it wrote.
    pub(crate) fn epochs_from_csv(text: &str) -> Option<Vec<EpochRecord>> {
        let mut lines = text.lines();
        if lines.next()? != EPOCH_COLUMNS.join(",") {
            return None;
        }
        lines
            .map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                let [
                    epoch,
                    step,
                    loss,
                    accuracy,
                    val_loss,
                    val_accuracy,
                    grad_norm,
                    ratio,
                    lr,
                ] = fields[..]
                else {
                    return None;
                };
                let optional = |f: &str| match f {
                    "" => Some(None),
                    f => f.parse::<f64>().ok().map(Some),
                };
                Some(EpochRecord {
                    epoch: epoch.parse().ok()?,
                    step: step.parse().ok()?,
                    loss: loss.parse().ok()?,
                    accuracy: optional(accuracy)?,
                    val_loss: optional(val_loss)?,
                    val_accuracy: optional(val_accuracy)?,
                    grad_norm: optional(grad_norm)?,
                    update_ratio: optional(ratio)?,
                    lr: lr.parse().ok()?,
                })
            })
            .collect()
    }

    /// The logged steps as CSV (`step,epoch,loss,lr`).
    pub fn steps_to_csv(&self) -> String {
        let mut out = String::from("step,epoch,loss,lr\n");
        for s in &self.steps {
            let _ = writeln!(out, "{},{},{},{}", s.step, s.epoch, s.loss, s.lr);
        }
        out
    }

    /// The logged steps back from [`History::steps_to_csv`]'s text (checkpoints carry it), or
    /// `None` if the text is not one it wrote.
    pub(crate) fn steps_from_csv(text: &str) -> Option<Vec<StepRecord>> {
        let mut lines = text.lines();
        if lines.next()? != "step,epoch,loss,lr" {
            return None;
        }
        lines
            .map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                let [step, epoch, loss, lr] = fields[..] else {
                    return None;
                };
                Some(StepRecord {
                    step: step.parse().ok()?,
                    epoch: epoch.parse().ok()?,
                    loss: loss.parse().ok()?,
                    lr: lr.parse().ok()?,
                })
            })
            .collect()
    }

    /// Everything as JSON: `{"stop": …, "restored_epoch": …, "epochs": [{…}, …], "steps":
    /// [{…}, …]}`.
    pub fn to_json(&self) -> String {
        let epochs: Vec<String> = self
            .epochs
            .iter()
            .map(|r| {
                let fields: Vec<String> = EPOCH_COLUMNS
                    .iter()
                    .zip(r.values())
                    .map(|(name, v)| format!("\"{name}\":{}", json_number(v)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            })
            .collect();
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{{\"step\":{},\"epoch\":{},\"loss\":{},\"lr\":{}}}",
                    s.step,
                    s.epoch,
                    json_number(Some(s.loss)),
                    json_number(Some(s.lr))
                )
            })
            .collect();
        let stop = match self.stop {
            StopReason::Running => "\"running\"".to_string(),
            StopReason::MaxEpochs => "\"max_epochs\"".to_string(),
            StopReason::GradientTolerance { grad_norm } => format!(
                "{{\"gradient_tolerance\":{{\"grad_norm\":{}}}}}",
                json_number(Some(grad_norm))
            ),
            StopReason::Plateau { best } => {
                format!("{{\"plateau\":{{\"best\":{}}}}}", json_number(Some(best)))
            }
            StopReason::NoDescent { loss, backtracks } => format!(
                "{{\"no_descent\":{{\"loss\":{},\"backtracks\":{backtracks}}}}}",
                json_number(Some(loss))
            ),
        };
        let restored = self
            .restored_epoch
            .map_or("null".to_string(), |e| e.to_string());
        format!(
            "{{\"stop\":{stop},\"restored_epoch\":{restored},\"epochs\":[{}],\"steps\":[{}]}}\n",
            epochs.join(","),
            steps.join(",")
        )
    }

    /// Writes [`History::to_csv`] to `path`.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file("History::write_csv", path.as_ref(), &self.to_csv())
    }

    /// Writes [`History::to_json`] to `path`.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file("History::write_json", path.as_ref(), &self.to_json())
    }
}

fn write_file(op: &'static str, path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::Io {
        op,
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
