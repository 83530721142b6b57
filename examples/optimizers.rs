//! SGD, momentum, Nesterov, RMSprop, Adam and AdaGrad side by side, on the GPU when there is
//! one: on an ill-conditioned quadratic (least squares whose Hessian has condition number 100)
//! and on the two-spirals MLP. Prints a table (steps to tolerance, final loss) and plots the
//! curves (`quadratic.svg`, `spirals.svg` in `--out`).
//!
//! `cargo run --release --example optimizers -- [--backend gpu|cpu] [--out target/optimizers] [--quick]`

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use common::{Flags, optimizer, plot};
use ndarray::Array2;
use steepest::{
    Activation, Backend, CpuBackend, Dataset, GpuBackend, History, Init, Loss, Mlp, MlpSpec,
    Standardizer, Trainer, data,
};

/// (name in the table, optimizer flag, rate on the quadratic, rate on the spirals).
const CONTENDERS: [(&str, &str, f64, f64); 6] = [
    ("SGD", "sgd", 0.025, 0.1),
    ("momentum 0.9", "momentum", 0.01, 0.05),
    ("Nesterov 0.9", "nesterov", 0.01, 0.05),
    ("RMSprop", "rmsprop", 0.005, 0.005),
    ("Adam", "adam", 0.05, 0.01),
    ("AdaGrad", "adagrad", 0.5, 0.1),
];

/// Stop counting when the quadratic's loss falls below this.
const TOLERANCE: f64 = 1e-6;

/// Noise-free least squares with features scaled 1 and 10: the loss is a quadratic whose
/// Hessian has eigenvalues about 100 apart, the valley plain gradient descent zigzags in.
fn quadratic() -> steepest::Result<Dataset> {
    let base = data::linear(256, &[1.0, 1.0], 0.0, 0.0, 3)?;
    let x = Array2::from_shape_fn((256, 2), |(r, c)| base.x()[[r, c]] * [1.0, 10.0][c]);
    let y = Array2::from_shape_fn((256, 1), |(r, _)| 3.0 * x[[r, 0]] - 0.2 * x[[r, 1]]);
    Dataset::regression(x, y)
}

/// (x, loss) points of one run.
type Curve = Vec<(f64, f64)>;

struct Row {
    name: &'static str,
    steps_to_tolerance: Option<u64>,
    quadratic_loss: f64,
    spirals_loss: f64,
    spirals_accuracy: f64,
    quadratic_curve: Curve,
    spirals_curve: Curve,
}

fn curve(h: &History) -> Curve {
    h.epochs.iter().map(|r| (r.epoch as f64, r.loss)).collect()
}

fn compare<B: Backend>(backend: &B, quick: bool) -> Result<Vec<Row>, String> {
    let err = |e: steepest::Error| e.to_string();
    let quad = quadratic().map_err(err)?;
    let (train, val) = data::spirals(1000, 0.05, 1)
        .and_then(|d| d.split(0.2, 1))
        .map_err(err)?;
    let scale = Standardizer::fit(&train);
    let (train, val) = (
        scale.transform(&train).map_err(err)?,
        scale.transform(&val).map_err(err)?,
    );
    let (quad_steps, spiral_epochs) = if quick { (150, 3) } else { (1000, 60) };
    let mut rows = Vec::new();
    for (name, flag, quad_lr, spiral_lr) in CONTENDERS {
        let linear = MlpSpec::new(2).layer(1, Activation::Identity);
        let mut model = Mlp::new(backend, &linear, Init::default(), 1).map_err(err)?;
        let q = Trainer::new(optimizer(flag, quad_lr)?, Loss::MeanSquaredError)
            .full_batch()
            .epochs(quad_steps)
            .fit(backend, &mut model, &quad, None)
            .map_err(err)?;
        let spec = MlpSpec::new(2)
            .layer(64, Activation::Relu)
            .layer(64, Activation::Relu)
            .layer(2, Activation::Identity);
        let mut model = Mlp::new(backend, &spec, Init::HeUniform, 1).map_err(err)?;
        let s = Trainer::new(optimizer(flag, spiral_lr)?, Loss::SoftmaxCrossEntropy)
            .batch_size(64)
            .epochs(spiral_epochs)
            .seed(1)
            .fit(backend, &mut model, &train, Some(&val))
            .map_err(err)?;
        let last = s.last().ok_or("no epoch ran")?;
        rows.push(Row {
            name,
            // In full-batch descent one epoch is one step.
            steps_to_tolerance: q.epochs.iter().find(|r| r.loss < TOLERANCE).map(|r| r.step),
            quadratic_loss: q.last().map_or(f64::NAN, |r| r.loss),
            spirals_loss: last.loss,
            spirals_accuracy: last.val_accuracy.unwrap_or(0.0),
            quadratic_curve: curve(&q),
            spirals_curve: curve(&s),
        });
    }
    Ok(rows)
}

fn run() -> Result<(), String> {
    let flags = Flags::parse(&["backend", "out"], &["quick"])?;
    let quick = flags.on("quick");
    let out: PathBuf = flags.get("out", PathBuf::from("target/optimizers"))?;
    let rows = match flags.get("backend", "gpu".to_string())?.as_str() {
        "cpu" => compare(&CpuBackend, quick)?,
        "gpu" => match GpuBackend::new() {
            Ok(gpu) => {
                println!("backend: {}", gpu.describe());
                compare(&gpu, quick)?
            }
            Err(e) => {
                println!("no GPU: {e}\nfalling back to the CPU backend");
                compare(&CpuBackend, quick)?
            }
        },
        other => return Err(format!("--backend must be gpu or cpu, not {other:?}")),
    };
    println!(
        "\n{:<14} {:>22} {:>16} {:>14} {:>12}",
        "optimizer", "quadratic: steps < 1e-6", "final loss", "spirals loss", "val acc"
    );
    for r in &rows {
        let steps = r
            .steps_to_tolerance
            .map_or("not reached".to_string(), |s| s.to_string());
        println!(
            "{:<14} {:>22} {:>16.3e} {:>14.4} {:>11.1}%",
            r.name,
            steps,
            r.quadratic_loss,
            r.spirals_loss,
            100.0 * r.spirals_accuracy
        );
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let series = |pick: fn(&Row) -> &Curve| -> Vec<(String, Curve)> {
        rows.iter()
            .map(|r| (r.name.to_string(), pick(r).clone()))
            .collect()
    };
    plot(
        &out.join("quadratic.svg"),
        "ill-conditioned quadratic (κ = 100)",
        "step",
        &series(|r| &r.quadratic_curve),
    )?;
    plot(
        &out.join("spirals.svg"),
        "two-spirals MLP: training loss",
        "epoch",
        &series(|r| &r.spirals_curve),
    )?;
    println!(
        "\nwrote {0}/quadratic.svg and {0}/spirals.svg",
        out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
