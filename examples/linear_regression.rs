//! Gradient descent on the two classic linear models, on the GPU when there is one:
//!
//! - least squares: full-batch descent (and Armijo line search, and L-BFGS) recovers the
//!   line that generated the data;
//! - logistic regression on two Gaussian blobs reaches the Bayes-optimal accuracy
//!   Φ(d / 2σ) that no classifier can beat, within two points.
//!
//! `cargo run --release --example linear_regression -- --help` lists the flags.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::{BackendChoice, finish};
use steepest::{
    Activation, Backend, CpuBackend, Init, Lbfgs, LineSearch, Loss, Mlp, MlpSpec, Sgd, Trainer,
    data,
};

/// Least squares and logistic regression by gradient descent, against their known answers.
#[derive(Parser)]
struct Args {
    /// Where to run.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// A short run (CI): 100 full-batch steps, 5 epochs of logistic regression.
    #[arg(long)]
    quick: bool,
}

const WEIGHTS: [f32; 2] = [2.0, -3.0];
const BIAS: f32 = 0.5;

/// Least squares by full-batch gradient descent, by line search and by L-BFGS; fails unless
/// each lands within 0.02 of the generating line.
fn least_squares<B: Backend>(backend: &B, epochs: usize) -> Result<(), String> {
    let err = |e: steepest::Error| e.to_string();
    let data = data::linear(1000, &WEIGHTS, BIAS, 0.1, 1).map_err(err)?;
    let spec = MlpSpec::new(2).layer(1, Activation::Identity);
    let line = |p: &[f32]| format!("y = {:.3}·x₀ {:+.3}·x₁ {:+.3}", p[0], p[1], p[2]);
    println!(
        "least squares: data from y = {}·x₀ {:+}·x₁ {:+} + noise (σ = 0.1)",
        WEIGHTS[0], WEIGHTS[1], BIAS
    );

    let mut model = Mlp::new(backend, &spec, Init::default(), 1).map_err(err)?;
    let history = Trainer::new(Sgd::default().lr(0.5), Loss::MeanSquaredError)
        .full_batch()
        .epochs(epochs)
        .fit(backend, &mut model, &data, None)
        .map_err(err)?;
    let gd = model.parameters_flat(backend).map_err(err)?;
    println!(
        "  gradient descent, {} steps:  {}  (mse {:.5})",
        epochs,
        line(&gd),
        history.last().map_or(f64::NAN, |r| r.loss)
    );

    let mut model = Mlp::new(backend, &spec, Init::default(), 1).map_err(err)?;
    let history = LineSearch::default()
        .run(backend, &mut model, &data, Loss::MeanSquaredError)
        .map_err(err)?;
    let ls = model.parameters_flat(backend).map_err(err)?;
    println!(
        "  Armijo line search, {} iterations: {}",
        history.epochs.len(),
        line(&ls)
    );

    let mut model = Mlp::new(backend, &spec, Init::default(), 1).map_err(err)?;
    let history = Lbfgs::default()
        .strong_wolfe(true)
        .run(backend, &mut model, &data, Loss::MeanSquaredError)
        .map_err(err)?;
    let quasi_newton = model.parameters_flat(backend).map_err(err)?;
    println!(
        "  L-BFGS (strong Wolfe), {} iterations: {}",
        history.epochs.last().map_or(0, |r| r.step),
        line(&quasi_newton)
    );

    for p in [&gd, &ls, &quasi_newton] {
        let off = (p[0] - WEIGHTS[0])
            .abs()
            .max((p[1] - WEIGHTS[1]).abs())
            .max((p[2] - BIAS).abs());
        if off > 0.02 {
            return Err(format!("least squares missed the line by {off}"));
        }
    }
    Ok(())
}

/// Φ, the standard normal CDF (Abramowitz & Stegun 7.1.26 for erf, error < 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * (1.0 + erf.copysign(x))
}

/// Logistic regression on two blobs; fails unless validation accuracy is within two points of
/// the Bayes rate.
fn logistic<B: Backend>(backend: &B, epochs: usize) -> Result<(), String> {
    let err = |e: steepest::Error| e.to_string();
    let (center, sigma) = (1.2f32, 1.0f32);
    let all = data::blobs(4000, &[[-center, 0.0], [center, 0.0]], sigma, 2).map_err(err)?;
    let (train, val) = all.split(0.25, 2).map_err(err)?;
    let bayes = normal_cdf(f64::from(center / sigma));
    let spec = MlpSpec::new(2).layer(1, Activation::Identity);
    let mut model = Mlp::new(backend, &spec, Init::default(), 2).map_err(err)?;
    let history = Trainer::new(Sgd::default().lr(0.5), Loss::BinaryCrossEntropyWithLogits)
        .batch_size(100)
        .epochs(epochs)
        .fit(backend, &mut model, &train, Some(&val))
        .map_err(err)?;
    let accuracy = history.last().and_then(|r| r.val_accuracy).unwrap_or(0.0);
    // The Bayes rule (the sign of x₀) on the same validation samples: a finite sample can put
    // either classifier above the expected Bayes rate.
    let labels = val.labels().unwrap_or_default();
    let bayes_here = val
        .x()
        .rows()
        .into_iter()
        .zip(&labels)
        .filter(|(x, l)| usize::from(x[0] > 0.0) == **l)
        .count() as f64
        / val.len() as f64;
    println!(
        "logistic regression on two blobs (centers ±{center}, σ = {sigma}): validation \
         accuracy {:.1}% on {} samples; the Bayes-optimal rule scores {:.1}% on the same \
         samples and {:.1}% in expectation (no classifier beats that on average)",
        100.0 * accuracy,
        val.len(),
        100.0 * bayes_here,
        100.0 * bayes
    );
    if accuracy < bayes - 0.02 {
        return Err(format!(
            "accuracy {accuracy:.3} is more than 2 points below the Bayes rate {bayes:.3}"
        ));
    }
    Ok(())
}

fn run(args: Args) -> Result<(), String> {
    let (gd_epochs, logistic_epochs) = if args.quick { (100, 5) } else { (300, 20) };
    match args.backend.open()? {
        Some(gpu) => {
            println!("backend: {}", gpu.describe());
            least_squares(&gpu, gd_epochs)?;
            logistic(&gpu, logistic_epochs)
        }
        None => {
            least_squares(&CpuBackend, gd_epochs)?;
            logistic(&CpuBackend, logistic_epochs)
        }
    }
}

fn main() -> ExitCode {
    finish(run(Args::parse()))
}
