//! SGD, momentum, Nesterov, ASGD, RMSprop, Adam, AdaGrad, Adadelta, Adamax, NAdam, RAdam and Rprop
//! side by side, on the GPU when there is one: on an ill-conditioned quadratic (least squares whose Hessian has condition number 100)
//! and on the two-spirals MLP. Prints a table (steps to tolerance, final loss) and plots the
//! curves (`quadratic.svg`, `spirals.svg` in `--out`).
//!
//! `cargo run --release --example optimizers -- --help` lists the flags.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use common::{BackendChoice, OptimizerChoice, finish, plot};
use steepest::ndarray::Array2;
use steepest::{
    Activation, Backend, CpuBackend, Dataset, History, Init, Loss, Mlp, MlpSpec, Standardizer,
    Trainer, data,
};

/// Compare the optimizers on an ill-conditioned quadratic and on the two-spirals MLP.
#[derive(Parser)]
struct Args {
    /// Where to run.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Directory for quadratic.svg and spirals.svg.
    #[arg(long, default_value = "target/optimizers")]
    out: PathBuf,
    /// A short run (CI): 150 steps on the quadratic, 3 epochs on the spirals.
    #[arg(long)]
    quick: bool,
}

/// (name in the table, optimizer, rate on the quadratic, rate on the spirals).
const CONTENDERS: [(&str, OptimizerChoice, f64, f64); 12] = [
    ("SGD", OptimizerChoice::Sgd, 0.025, 0.1),
    ("momentum 0.9", OptimizerChoice::Momentum, 0.01, 0.05),
    ("Nesterov 0.9", OptimizerChoice::Nesterov, 0.01, 0.05),
    ("ASGD", OptimizerChoice::Asgd, 0.025, 0.1),
    ("RMSprop", OptimizerChoice::Rmsprop, 0.005, 0.005),
    ("Adam", OptimizerChoice::Adam, 0.05, 0.01),
    ("AdaGrad", OptimizerChoice::Adagrad, 0.5, 0.1),
    ("Adadelta", OptimizerChoice::Adadelta, 1.0, 1.0),
    ("Adamax", OptimizerChoice::Adamax, 0.05, 0.02),
    ("NAdam", OptimizerChoice::Nadam, 0.05, 0.01),
    ("RAdam", OptimizerChoice::Radam, 0.05, 0.01),
    ("Rprop", OptimizerChoice::Rprop, 0.01, 0.001),
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
        let q = Trainer::new(flag.config(quad_lr), Loss::MeanSquaredError)
            .full_batch()
            .epochs(quad_steps)
            .fit(backend, &mut model, &quad, None)
            .map_err(err)?;
        let spec = MlpSpec::new(2)
            .layer(64, Activation::Relu)
            .layer(64, Activation::Relu)
            .layer(2, Activation::Identity);
        let mut model = Mlp::new(backend, &spec, Init::HeUniform, 1).map_err(err)?;
        let s = Trainer::new(flag.config(spiral_lr), Loss::SoftmaxCrossEntropy)
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

fn run(args: Args) -> Result<(), String> {
    let quick = args.quick;
    let out = args.out;
    let rows = match args.backend.open()? {
        Some(gpu) => {
            println!("backend: {}", gpu.describe());
            compare(&gpu, quick)?
        }
        None => compare(&CpuBackend, quick)?,
    };
    // The quadratic's columns: the first step whose loss was below the tolerance (a method
    // may oscillate above it afterwards), and the loss after the last step.
    println!(
        "\n{:<14} {:>28} {:>22} {:>14} {:>12}",
        "optimizer",
        "quadratic: first step < 1e-6",
        "quadratic: last loss",
        "spirals loss",
        "val acc"
    );
    for r in &rows {
        let steps = r
            .steps_to_tolerance
            .map_or("never".to_string(), |s| s.to_string());
        println!(
            "{:<14} {:>28} {:>22.3e} {:>14.4} {:>11.1}%",
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
    finish(run(Args::parse()))
}
