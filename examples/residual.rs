//! A residual network with LayerNorm, GELU and dropout against the plain MLP of the same
//! depth and width, on a synthetic regression problem, with the same budget (epochs, batch
//! size, optimizer, learning rate): the residual network reaches the lower validation loss.
//!
//! The target is a sum of products of sines of the inputs, plus noise; the training set is
//! small enough that a deep network can overfit it (dropout's job) and deep enough models are
//! needed to fit it (the skip connections' and LayerNorm's job: gradients reach the bottom).
//!
//! The trained residual network is then saved (`--out`, a safetensors file with its
//! architecture line) and loaded into the same layers built on the CPU backend, which must
//! predict what it predicts.
//!
//! `cargo run --release --example residual -- --help` lists the flags.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use common::{BackendChoice, finish, on_backend};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use steepest::nn::{Dropout, Elementwise, Layer, LayerNorm, Residual, Sequential};
use steepest::{
    Activation, Adam, Backend, CpuBackend, Dataset, Init, Linear, Loss, Mlp, MlpSpec, Model,
    Nonlinearity, Trainer,
};

/// Residual network (LayerNorm, GELU, dropout) against a plain MLP on one budget.
#[derive(Parser)]
struct Args {
    /// Where to run.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Training epochs for each model.
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// Hidden width of both models.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Residual blocks (the plain MLP gets two hidden layers per block, the same depth).
    #[arg(long, default_value_t = 4)]
    blocks: usize,
    /// Seed of the data, the weights and the shuffles.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the trained residual network's file goes.
    #[arg(long, default_value = "target/residual")]
    out: PathBuf,
    /// A short run (CI): 25 epochs.
    #[arg(long)]
    quick: bool,
}

const FEATURES: usize = 8;

/// `n` samples of y = Σᵢ sin(2xᵢ)·cos(xᵢ₊₁) + 0.1·noise, x uniform in [−2, 2]⁸.
fn problem(n: usize, seed: u64) -> steepest::Result<Dataset> {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, FEATURES), |_| rng.random_range(-2.0f32..=2.0));
    let y = Array2::from_shape_fn((n, 1), |(r, _)| {
        let v: f32 = (0..FEATURES)
            .map(|i| (2.0 * x[[r, i]]).sin() * x[[r, (i + 1) % FEATURES]].cos())
            .sum();
        v + 0.1 * rng.random_range(-1.0f32..=1.0)
    });
    Dataset::regression(x, y)
}

/// In → width, then `blocks` residual blocks of LayerNorm → Linear → GELU → dropout →
/// Linear, then a final LayerNorm and the output layer.
fn residual_net<B: Backend>(backend: &B, args: &Args) -> steepest::Result<Sequential<B>> {
    let w = args.width;
    let mut layers: Vec<Box<dyn Layer<B>>> = vec![Box::new(Linear::new(FEATURES, w))];
    for b in 0..args.blocks {
        let block: Vec<Box<dyn Layer<B>>> = vec![
            Box::new(LayerNorm::new(w)),
            Box::new(Linear::new(w, w)),
            Box::new(Elementwise::new(w, Nonlinearity::Gelu)),
            Box::new(Dropout::new(w, 0.1, args.seed * 100 + b as u64)),
            Box::new(Linear::new(w, w)),
        ];
        layers.push(Box::new(Residual::new(block)?));
    }
    layers.push(Box::new(LayerNorm::new(w)));
    layers.push(Box::new(Linear::new(w, 1)));
    Sequential::new(backend, layers, Init::default(), args.seed)
}

/// The plain MLP of the same depth: in → width, two ReLU layers per block, → 1.
fn plain_net<B: Backend>(backend: &B, args: &Args) -> steepest::Result<Mlp<B>> {
    let mut widths = vec![FEATURES];
    widths.extend(std::iter::repeat_n(args.width, 2 * args.blocks + 1));
    widths.push(1);
    Mlp::new(
        backend,
        &MlpSpec::stack(&widths, Activation::Relu),
        Init::default(),
        args.seed,
    )
}

/// Trains `model`, which ends with its best epoch's parameters, and returns (best validation
/// loss, its epoch, parameters).
fn train<B: Backend, M: Model<B>>(
    backend: &B,
    model: &mut M,
    args: &Args,
    (train, val): (&Dataset, &Dataset),
) -> steepest::Result<(f64, usize, usize)> {
    let history = Trainer::new(Adam::default().lr(1e-3), Loss::MeanSquaredError)
        .batch_size(64)
        .epochs(args.epochs)
        .seed(args.seed)
        .restore_best(true) // the model ends as it was at its best epoch
        .fit(backend, model, train, Some(val))?;
    let (epoch, best) = history
        .epochs
        .iter()
        .filter_map(|r| r.val_loss.map(|v| (r.epoch, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, f64::NAN));
    Ok((best, epoch, model.network().parameter_count()))
}

fn compare<B: Backend>(backend: &B, args: &Args) -> Result<(), String> {
    let err = |e: steepest::Error| e.to_string();
    let data = problem(3000, args.seed).map_err(err)?;
    let (train_set, val_set) = data.split(0.3, args.seed).map_err(err)?;
    let variance = {
        let y = val_set.y();
        let mean = y.mean().unwrap_or(0.0);
        f64::from(y.mapv(|v| (v - mean) * (v - mean)).mean().unwrap_or(0.0))
    };
    println!(
        "y = Σ sin(2xᵢ)·cos(xᵢ₊₁) + noise over {FEATURES} inputs: {} training and {} validation \
         samples (validation variance {variance:.3}, the loss of predicting the mean); {} \
         epochs of Adam (lr 1e-3), batches of 64",
        train_set.len(),
        val_set.len(),
        args.epochs
    );
    let sets = (&train_set, &val_set);
    let mut plain = plain_net(backend, args).map_err(err)?;
    let (plain_loss, plain_epoch, plain_params) =
        train(backend, &mut plain, args, sets).map_err(err)?;
    println!(
        "  plain MLP, {} ReLU layers of {}:                   best validation MSE {plain_loss:.4} \
         (epoch {plain_epoch}, {plain_params} parameters)",
        2 * args.blocks + 1,
        args.width
    );
    let mut residual = residual_net(backend, args).map_err(err)?;
    let (res_loss, res_epoch, res_params) =
        train(backend, &mut residual, args, sets).map_err(err)?;
    println!(
        "  residual, {} blocks (LayerNorm, GELU, dropout 0.1): best validation MSE {res_loss:.4} \
         (epoch {res_epoch}, {res_params} parameters)",
        args.blocks
    );
    if res_loss.is_nan() || res_loss >= plain_loss {
        return Err(format!(
            "the residual network's validation loss {res_loss:.4} did not beat the plain \
             MLP's {plain_loss:.4}"
        ));
    }
    println!(
        "  the residual network's validation loss is {:.0}% of the plain MLP's",
        100.0 * res_loss / plain_loss
    );
    reload_on_cpu(backend, &residual, &val_set, args)
}

/// Saves `trained` and loads the file into the same layers built on the CPU backend; their
/// validation predictions must agree.
fn reload_on_cpu<B: Backend>(
    backend: &B,
    trained: &Sequential<B>,
    val_set: &Dataset,
    args: &Args,
) -> Result<(), String> {
    let err = |e: steepest::Error| e.to_string();
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let path = args.out.join("residual.safetensors");
    trained.save_safetensors(backend, &path).map_err(err)?;
    let mut reloaded = residual_net(&CpuBackend, args).map_err(err)?;
    reloaded.load_safetensors(&CpuBackend, &path).map_err(err)?;
    let x = val_set.x().view();
    let ours = trained.predict(backend, x).map_err(err)?;
    let theirs = reloaded.predict(&CpuBackend, x).map_err(err)?;
    let worst = (&ours - &theirs).iter().fold(0.0f32, |m, d| m.max(d.abs()));
    if worst.is_nan() || worst > 1e-3 {
        return Err(format!(
            "the network loaded from {} predicts up to {worst} away from the trained one",
            path.display()
        ));
    }
    println!(
        "  saved to {}; the same layers built on the CPU backend load it and predict within \
         {worst:.1e} of the trained network",
        path.display()
    );
    Ok(())
}

fn run(mut args: Args) -> Result<(), String> {
    if args.quick {
        args.epochs = args.epochs.min(25);
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
