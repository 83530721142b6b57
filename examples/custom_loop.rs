//! A training loop the application drives: batches come from a generator (a stream, never a
//! stored training set), each step trains on the batch it is given, and the loop logs metrics
//! of its own: the batch loss, a moving average, and the loss on a held-out set it made
//! (evaluated through a `Predictor`, which keeps its device memory between evaluations). The
//! held-out loss also drives a `ReduceLrOnPlateau` of the loop's own, as a PyTorch loop steps
//! its scheduler: the rate it returns goes to the session with `Session::set_lr`.
//!
//! The stream samples y = sin(3x₀)·x₁ + 0.05·noise; the model is a GELU network built from
//! layers. Halfway through, the loop hands the optimizer's state to a new session in memory
//! (as a program that rebuilds its session would), and training goes on where it was.
//!
//! `cargo run --release --example custom_loop -- --help` lists the flags.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::{BackendChoice, finish};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use steepest::nn::{Elementwise, Layer, Sequential};
use steepest::optim::Threshold;
use steepest::{
    Adam, Backend, CpuBackend, Dataset, Init, Linear, Loss, Nonlinearity, Predictor,
    ReduceLrOnPlateau, Session, Trainer,
};

/// Train on a stream of generated batches with a loop of your own.
#[derive(Parser)]
struct Args {
    /// Where to run.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Steps to take (one generated batch each).
    #[arg(long, default_value_t = 3000)]
    steps: u64,
    /// Samples per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Log every this many steps (each log reads the loss back: one wait on the GPU).
    #[arg(long, default_value_t = 250)]
    log_every: u64,
    /// Seed of the stream and the weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A short run (CI): 600 steps.
    #[arg(long)]
    quick: bool,
}

/// An endless stream of batches: each call samples `rows` fresh points.
struct Stream {
    rng: StdRng,
}

impl Stream {
    fn batch(&mut self, rows: usize) -> steepest::Result<Dataset> {
        let x = Array2::from_shape_fn((rows, 2), |_| self.rng.random_range(-1.5f32..=1.5));
        let y = Array2::from_shape_fn((rows, 1), |(r, _)| {
            (3.0 * x[[r, 0]]).sin() * x[[r, 1]] + 0.05 * self.rng.random_range(-1.0f32..=1.0)
        });
        Dataset::regression(x, y)
    }
}

fn model<B: Backend>(backend: &B, seed: u64) -> steepest::Result<Sequential<B>> {
    let layers: Vec<Box<dyn Layer<B>>> = vec![
        Box::new(Linear::new(2, 64)),
        Box::new(Elementwise::new(64, Nonlinearity::Gelu)),
        Box::new(Linear::new(64, 64)),
        Box::new(Elementwise::new(64, Nonlinearity::Gelu)),
        Box::new(Linear::new(64, 1)),
    ];
    Sequential::new(backend, layers, Init::default(), seed)
}

/// Mean squared error of `model` on `data`, through `predictor` (which keeps its device
/// memory from one evaluation to the next), on the host.
fn held_out_mse<B: Backend>(
    backend: &B,
    predictor: &mut Predictor<B>,
    model: &Sequential<B>,
    data: &Dataset,
) -> steepest::Result<f64> {
    let d = predictor.predict(backend, model, data.x().view())? - data.y();
    Ok(f64::from(d.mapv(|v| v * v).mean().unwrap_or(f32::NAN)))
}

fn train<B: Backend>(backend: &B, args: &Args) -> Result<(), String> {
    let err = |e: steepest::Error| e.to_string();
    let mut stream = Stream {
        rng: StdRng::seed_from_u64(args.seed),
    };
    let held_out = stream.batch(2000).map_err(err)?;
    let mut net = model(backend, args.seed).map_err(err)?;
    let trainer = Trainer::new(Adam::default().lr(3e-3), Loss::MeanSquaredError);
    // The held-out set is evaluated at every log line: in one pass, through buffers kept.
    let mut predictor = net.predictor(held_out.len()).map_err(err)?;
    let first = held_out_mse(backend, &mut predictor, &net, &held_out).map_err(err)?;
    // Halve the rate when two evaluations in a row bring no held-out loss 10% below the best.
    let rule = ReduceLrOnPlateau::default()
        .factor(0.5)
        .patience(1)
        .threshold(0.1, Threshold::Relative);
    let mut plateau = rule.start(trainer.optimizer().lr());
    println!(
        "{:>6}  {:>10}  {:>10}  {:>10}  {:>8}",
        "step", "batch mse", "average", "held-out", "lr"
    );
    println!("{:>6}  {:>10}  {:>10}  {first:>10.5}", 0, "", "");
    let mut average: Option<f64> = None;
    let halfway = args.steps / 2;
    // The first session trains to halfway and hands its optimizer state on, in memory.
    let mut state = None;
    for (from, to) in [(0, halfway), (halfway, args.steps)] {
        let mut session = Session::for_batches(&trainer, backend, &mut net).map_err(err)?;
        if let Some(state) = state.take() {
            session.load_optimizer_state(&state).map_err(err)?;
            session.set_lr(plateau.lr).map_err(err)?;
            println!("        (a new session continues with the optimizer state handed over)");
        }
        for step in from + 1..=to {
            let batch = stream.batch(args.batch_size).map_err(err)?;
            session.step_on_batch(&batch).map_err(err)?;
            if step % args.log_every == 0 || step == args.steps {
                let loss = session.last_batch_loss().map_err(err)?;
                let avg = average.map_or(loss, |a| 0.7 * a + 0.3 * loss);
                average = Some(avg);
                let held = held_out_mse(backend, &mut predictor, session.model(), &held_out)
                    .map_err(err)?;
                let lr = session.lr();
                println!("{step:>6}  {loss:>10.5}  {avg:>10.5}  {held:>10.5}  {lr:>8.2e}");
                session.set_lr(rule.step(&mut plateau, held)).map_err(err)?;
            }
        }
        state = Some(session.optimizer_state().map_err(err)?);
    }
    let last = held_out_mse(backend, &mut predictor, &net, &held_out).map_err(err)?;
    println!(
        "held-out mse {first:.4} → {last:.4} after {} steps of {} fresh samples each",
        args.steps, args.batch_size
    );
    if last.is_nan() || last >= 0.25 * first {
        return Err(format!(
            "the held-out loss fell only from {first:.4} to {last:.4}"
        ));
    }
    Ok(())
}

fn run(mut args: Args) -> Result<(), String> {
    if args.quick {
        args.steps = args.steps.min(600);
        args.log_every = args.log_every.min(100);
    }
    if args.log_every == 0 || args.batch_size == 0 || args.steps == 0 {
        return Err("--steps, --batch-size and --log-every must be at least 1".into());
    }
    match args.backend.open()? {
        Some(gpu) => {
            println!("backend: {}", gpu.describe());
            train(&gpu, &args)
        }
        None => train(&CpuBackend, &args),
    }
}

fn main() -> ExitCode {
    finish(run(Args::parse()))
}
