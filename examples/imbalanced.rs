//! A rare class, two ways, on one budget: a classifier trained plainly, and one whose loss
//! weighs each class by `Dataset::balanced_class_weights` (PyTorch's
//! `CrossEntropyLoss(weight=w)`). One sample in twenty is of the rare class, and it overlaps
//! the common one: the plain model finds few of the rare samples, since missing them costs
//! little; the weighted one finds most of them, at the price of more false alarms. A
//! stratified split (`Dataset::split_stratified`) keeps the rare class's share in the
//! validation set, and the confusion matrices (`Sequential::confusion_matrix`) count the
//! validation predictions of each true class.
//!
//! `cargo run --release --example imbalanced -- --help` lists the flags.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::{BackendChoice, finish, on_backend};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use steepest::{
    Activation, Adam, Backend, Dataset, Init, Loss, Mlp, MlpSpec, Standardizer, Trainer,
};

/// A rare class with and without balanced class weights, on one budget.
#[derive(Parser)]
struct Args {
    /// Where to run.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Training epochs for each model.
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// Seed of the data, the split, the weights and the shuffles.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A short run (CI): 15 epochs.
    #[arg(long)]
    quick: bool,
}

/// Samples of the common class and of the rare one.
const COMMON: usize = 1900;
const RARE: usize = 100;

/// The common class spread around the origin, the rare one around (1.2, 1.2), both with
/// roughly normal noise (a sum of four uniforms) of deviation 1 and 0.6: they overlap.
fn problem(seed: u64) -> steepest::Result<Dataset> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut noise = |deviation: f32| {
        let sum: f32 = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum();
        // Four uniforms on [−1, 1] have variance 4/3.
        sum * deviation * (3.0f32 / 4.0).sqrt()
    };
    let n = COMMON + RARE;
    let labels: Vec<usize> = (0..n).map(|i| usize::from(i >= COMMON)).collect();
    let mut x = Array2::zeros((n, 2));
    for (i, &label) in labels.iter().enumerate() {
        let (center, deviation) = match label {
            0 => (0.0, 1.0),
            _ => (1.2, 0.6),
        };
        x[[i, 0]] = center + noise(deviation);
        x[[i, 1]] = center + noise(deviation);
    }
    Dataset::classification(x, &labels, 2)
}

/// The share of the rare class's samples predicted rare (recall), and of the samples
/// predicted rare that are (precision), from a confusion matrix.
fn rare_scores(counts: &Array2<u64>) -> (f64, f64) {
    let found = counts[[1, 1]] as f64;
    let recall = found / (counts[[1, 0]] + counts[[1, 1]]).max(1) as f64;
    let precision = found / (counts[[0, 1]] + counts[[1, 1]]).max(1) as f64;
    (recall, precision)
}

/// Trains both models on `backend` and reports them; the weighted model must find more of
/// the rare class than the plain one.
fn compare<B: Backend>(backend: &B, args: &Args) -> Result<(), String> {
    let err = |e: steepest::Error| e.to_string();
    let (train, val) = problem(args.seed)
        .and_then(|data| data.split_stratified(0.3, args.seed))
        .map_err(err)?;
    let standardizer = Standardizer::fit(&train);
    let (train, val) = (
        standardizer.transform(&train).map_err(err)?,
        standardizer.transform(&val).map_err(err)?,
    );
    let weights = train.balanced_class_weights().map_err(err)?;
    println!(
        "{} training samples, {} validation samples ({} and {} of the rare class, kept in \
         proportion by the stratified split); balanced class weights {weights:?}",
        train.len(),
        val.len(),
        count(&train, 1),
        count(&val, 1)
    );
    let spec = MlpSpec::stack(&[2, 32, 32, 2], Activation::Relu);
    let plain = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
        .batch_size(64)
        .epochs(args.epochs)
        .seed(args.seed);
    let weighted = plain.clone().class_weights(weights);
    let mut recalls = Vec::new();
    for (name, trainer) in [("plain", &plain), ("balanced weights", &weighted)] {
        let mut model = Mlp::new(backend, &spec, Init::HeUniform, args.seed).map_err(err)?;
        if recalls.is_empty() {
            println!("{model}");
        }
        trainer
            .fit(backend, &mut model, &train, None)
            .map_err(err)?;
        let counts = model.confusion_matrix(backend, &val).map_err(err)?;
        let (recall, precision) = rare_scores(&counts);
        println!(
            "{name}: validation confusion matrix (rows: true class, columns: predicted)\n\
             {counts}\n  rare class: {:.0}% found (recall), {:.0}% of the rare predictions \
             right (precision)",
            100.0 * recall,
            100.0 * precision
        );
        recalls.push(recall);
    }
    if recalls[1] <= recalls[0] {
        return Err(format!(
            "the weighted model found {:.0}% of the rare class, the plain one {:.0}%: the \
             weights should have found more",
            100.0 * recalls[1],
            100.0 * recalls[0]
        ));
    }
    Ok(())
}

/// The samples of class `class` in `data`.
fn count(data: &Dataset, class: usize) -> usize {
    data.labels()
        .map_or(0, |labels| labels.iter().filter(|&&l| l == class).count())
}

fn run(mut args: Args) -> Result<(), String> {
    if args.quick {
        args.epochs = args.epochs.min(15);
    }
    on_backend(
        args.backend,
        |gpu| compare(gpu, &args),
        |cpu| compare(cpu, &args),
    )
}

fn main() -> ExitCode {
    finish(run(Args::parse()))
}
