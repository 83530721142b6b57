//! A categorical feature two ways, on one budget: as a number (its index, standardised with
//! the numeric features, fed to a plain MLP) and through an `Embedding` (its index replaced by
//! a learned vector). The target depends on the category in a way no line through the
//! indices follows, so the embedding reaches the lower validation loss.
//!
//! The data: three numeric features and a store id of 40, y = sin(2x₀) + x₁·x₂ + a[store] +
//! b[store]·x₀ + noise, with each store's offset a and slope b drawn at random. The embedding
//! model keeps the store column out of standardisation (mean 0, deviation 1 in its
//! `Standardizer`), so the indices reach the layer as indices, and the standardiser travels
//! with the model: it predicts from raw rows.
//!
//! `cargo run --release --example categorical -- --help` lists the flags.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::{BackendChoice, finish, on_backend};
use ndarray::{Array2, array};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use steepest::nn::{Embedding, Layer, Sequential};
use steepest::{
    Activation, Adam, Backend, Dataset, Init, Linear, Loss, Mlp, MlpSpec, Model, Standardizer,
    Trainer,
};

/// A categorical feature as a number against an embedding of it, on one budget.
#[derive(Parser)]
struct Args {
    /// Where to run.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Training epochs for each model.
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// Width of each store's learned vector.
    #[arg(long, default_value_t = 8)]
    dim: usize,
    /// Seed of the data, the weights and the shuffles.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A short run (CI): 20 epochs.
    #[arg(long)]
    quick: bool,
}

/// Stores: the categorical feature's categories.
const STORES: usize = 40;
/// Numeric features, then the store id: the input's columns.
const NUMERIC: usize = 3;
const STORE_COLUMN: usize = NUMERIC;
const HIDDEN: usize = 64;

/// `n` samples: three numeric features uniform in [−1.5, 1.5] and a store id, y = sin(2x₀) +
/// x₁·x₂ + a[store] + b[store]·x₀ + 0.05·noise.
fn problem(n: usize, seed: u64) -> steepest::Result<Dataset> {
    let mut rng = StdRng::seed_from_u64(seed);
    let offset: Vec<f32> = (0..STORES).map(|_| rng.random_range(-1.5..1.5)).collect();
    let slope: Vec<f32> = (0..STORES).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut x = Array2::zeros((n, NUMERIC + 1));
    let mut y = Array2::zeros((n, 1));
    for r in 0..n {
        for c in 0..NUMERIC {
            x[[r, c]] = rng.random_range(-1.5f32..1.5);
        }
        let store = rng.random_range(0..STORES);
        x[[r, STORE_COLUMN]] = store as f32;
        let (x0, x1, x2) = (x[[r, 0]], x[[r, 1]], x[[r, 2]]);
        y[[r, 0]] = (2.0 * x0).sin()
            + x1 * x2
            + offset[store]
            + slope[store] * x0
            + 0.05 * rng.random_range(-1.0f32..1.0);
    }
    Dataset::regression(x, y)
}

/// The training set's standardisation of the numeric columns, with the store column left as
/// it is (mean 0, deviation 1).
fn keep_store_column(fitted: &Standardizer) -> steepest::Result<Standardizer> {
    let mut mean = fitted.mean().to_vec();
    let mut std = fitted.std().to_vec();
    mean[STORE_COLUMN] = 0.0;
    std[STORE_COLUMN] = 1.0;
    Standardizer::new(mean, std)
}

/// The store's row of a learned table beside the numeric features, then two ReLU layers.
fn embedding_net<B: Backend>(backend: &B, args: &Args) -> steepest::Result<Sequential<B>> {
    let layers: Vec<Box<dyn Layer<B>>> = vec![
        Box::new(Embedding::new(STORES, args.dim).column(STORE_COLUMN, NUMERIC + 1)),
        Box::new(Linear::new(NUMERIC + args.dim, HIDDEN).with_activation(Activation::Relu)),
        Box::new(Linear::new(HIDDEN, HIDDEN).with_activation(Activation::Relu)),
        Box::new(Linear::new(HIDDEN, 1)),
    ];
    Sequential::new(backend, layers, Init::default(), args.seed)
}

/// Trains `model` on `train` and returns its best validation MSE (it ends at that epoch).
fn train<B: Backend, M: Model<B>>(
    backend: &B,
    model: &mut M,
    args: &Args,
    (train, val): (&Dataset, &Dataset),
) -> steepest::Result<f64> {
    let history = Trainer::new(Adam::default().lr(2e-3), Loss::MeanSquaredError)
        .batch_size(64)
        .epochs(args.epochs)
        .seed(args.seed)
        .restore_best(true)
        .fit(backend, model, train, Some(val))?;
    Ok(history
        .epochs
        .iter()
        .filter_map(|r| r.val_loss)
        .fold(f64::INFINITY, f64::min))
}

fn compare<B: Backend>(backend: &B, args: &Args) -> Result<(), String> {
    let err = |e: steepest::Error| e.to_string();
    let data = problem(4000, args.seed).map_err(err)?;
    let (train_raw, val_raw) = data.split(0.25, args.seed).map_err(err)?;
    println!(
        "y = sin(2x₀) + x₁·x₂ + a[store] + b[store]·x₀ + noise, {STORES} stores: {} training \
         and {} validation samples, {} epochs of Adam (lr 2e-3), batches of 64",
        train_raw.len(),
        val_raw.len(),
        args.epochs
    );

    // The store id as a number, standardised with everything else.
    let as_number = Standardizer::fit(&train_raw);
    let sets = (
        &as_number.transform(&train_raw).map_err(err)?,
        &as_number.transform(&val_raw).map_err(err)?,
    );
    let spec = MlpSpec::new(NUMERIC + 1)
        .layer(HIDDEN, Activation::Relu)
        .layer(HIDDEN, Activation::Relu)
        .layer(1, Activation::Identity);
    let mut plain = Mlp::new(backend, &spec, Init::default(), args.seed).map_err(err)?;
    let plain_loss = train(backend, &mut plain, args, sets).map_err(err)?;
    println!("  the store id as a number (plain MLP):  best validation MSE {plain_loss:.4}");

    // The store id through an embedding, its column left out of standardisation.
    let kept = keep_store_column(&as_number).map_err(err)?;
    let sets = (
        &kept.transform(&train_raw).map_err(err)?,
        &kept.transform(&val_raw).map_err(err)?,
    );
    let mut embedded = embedding_net(backend, args).map_err(err)?;
    let embedded_loss = train(backend, &mut embedded, args, sets).map_err(err)?;
    println!(
        "  the store id embedded ({STORES}×{} table): best validation MSE {embedded_loss:.4}",
        args.dim
    );
    if embedded_loss.is_nan() || embedded_loss >= plain_loss {
        return Err(format!(
            "the embedding's validation loss {embedded_loss:.4} did not beat the plain \
             MLP's {plain_loss:.4}"
        ));
    }
    println!(
        "  the embedding's validation loss is {:.0}% of the plain MLP's",
        100.0 * embedded_loss / plain_loss
    );

    // The standardiser travels with the model: raw rows in, the store id as it is.
    embedded.set_standardizer(Some(kept)).map_err(err)?;
    let raw = array![[0.3f32, -0.5, 1.0, 7.0], [0.3, -0.5, 1.0, 12.0]];
    let predicted = embedded.predict(backend, raw.view()).map_err(err)?;
    println!(
        "  one row of features at stores 7 and 12: predicted {:.3} and {:.3}",
        predicted[[0, 0]],
        predicted[[1, 0]]
    );
    Ok(())
}

fn run(mut args: Args) -> Result<(), String> {
    if args.quick {
        args.epochs = args.epochs.min(20);
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
