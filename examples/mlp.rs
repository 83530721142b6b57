//! The main job: train an MLP to separate two interleaved spirals, on the GPU when there is one.
//!
//! ```sh
//! cargo run --release --example mlp -- --help
//! ```
//!
//! Prints the backend and adapter, trains, reports validation accuracy (the target is 95%), and
//! writes the curves (`loss.svg`: loss and accuracy per epoch) and the history
//! (`history.csv`, `history.json`) to `--out`. By default it trains on the GPU when there is one
//! and says so when it falls back to the CPU backend; `--backend gpu` makes a missing GPU an
//! error. `--quick` is the CI mode: a smaller run that must still reach the target. With
//! `STEEPEST_PROFILE=1` it also prints where the GPU's time went, op by op (every submit then
//! waits for the GPU, so steps/s is not the unprofiled figure).

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use common::{BackendChoice, OptimizerChoice, Panel, finish, plot_panels, positive_rate};
use steepest::optim::{OneCycle, ParamGroup};
use steepest::{
    Activation, Backend, CpuBackend, History, Init, Loss, LrSchedule, Mlp, MlpSpec, Standardizer,
    Swa, Trainer, data,
};

const TARGET_ACCURACY: f64 = 0.95;

/// Train an MLP to separate two interleaved spirals.
#[derive(Parser)]
struct Args {
    /// Where to run.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// The optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerChoice::Adam)]
    optimizer: OptimizerChoice,
    /// Learning rate [default: 0.1 for sgd and adagrad, 0.05 for momentum and nesterov, 3 for
    /// adadelta, 0.01 otherwise].
    #[arg(long, value_parser = positive_rate)]
    lr: Option<f64>,
    /// Weight decay λ on the weight matrices (the optimizer's own: L2, or AdamW's decoupled
    /// decay); the biases train without it, as a parameter group of their own [default:
    /// none, or AdamW's 0.01 on every parameter with --optimizer adamw].
    #[arg(long, value_parser = non_negative_decay)]
    weight_decay: Option<f64>,
    /// Epochs to train [default: 150, 60 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: Option<u32>,
    /// How the learning rate moves over the run: constant, cosine (annealed to 0 over the
    /// run), warm-restarts (cosine, restarting after 10 epochs, then 20, 40, …), multi-step
    /// (×0.1 at half and at three quarters of the run), polynomial (a straight line to 0 over
    /// the run) or one-cycle (PyTorch's OneCycleLR over the run, peaking at --lr; it also
    /// cycles the momentum of every optimizer but sgd, rmsprop, adagrad and adadelta).
    #[arg(long, value_enum, default_value_t = ScheduleChoice::Constant)]
    schedule: ScheduleChoice,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Mini-batches whose gradients each optimizer step sums (gradient accumulation): steps
    /// of this many × --batch-size samples, with one mini-batch's memory.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    accumulate: u32,
    /// Keep a moving average of the weights with this decay (in [0, 1], e.g. 0.99), which
    /// the validation pass measures and the run ends with [default: none].
    #[arg(long, value_parser = decay_in_unit_interval)]
    ema: Option<f64>,
    /// Stochastic weight averaging: from the end of this epoch on, every epoch's weights join
    /// an equal average, which the validation pass measures and the run ends with, while the
    /// rate anneals to --swa-lr over 5 epochs [default: none].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    swa: Option<u32>,
    /// The rate --swa anneals to [default: half the optimizer's rate].
    #[arg(long, value_parser = positive_rate, requires = "swa")]
    swa_lr: Option<f64>,
    /// Seed of the data, the initial weights and the shuffles.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Samples drawn (20% for validation) [default: 2000, 1000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(10..))]
    samples: Option<u32>,
    /// Directory for loss.svg, history.csv and history.json.
    #[arg(long, default_value = "target/mlp")]
    out: PathBuf,
    /// A smaller run (CI) that must still reach the target accuracy.
    #[arg(long)]
    quick: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScheduleChoice {
    Constant,
    Cosine,
    WarmRestarts,
    MultiStep,
    Polynomial,
    OneCycle,
}

struct Settings {
    trainer: Trainer,
    samples: usize,
    seed: u64,
    out: PathBuf,
}

/// A weight decay: finite and ≥ 0.
fn non_negative_decay(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(v) => Err(format!("{v} is not a weight decay (finite, ≥ 0)")),
        Err(e) => Err(e.to_string()),
    }
}

/// A moving average's decay: in [0, 1].
fn decay_in_unit_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is not a decay (in [0, 1])")),
        Err(e) => Err(e.to_string()),
    }
}

/// The run's settings, checked before any device is opened.
fn settings(args: &Args) -> Result<Settings, String> {
    let default_lr = match args.optimizer {
        OptimizerChoice::Sgd | OptimizerChoice::Adagrad => 0.1,
        OptimizerChoice::Momentum | OptimizerChoice::Nesterov => 0.05,
        // Adadelta's steps grow from √ε: at PyTorch's rate of 1 the quick run ends at 84%.
        OptimizerChoice::Adadelta => 3.0,
        _ => 0.01,
    };
    let mut config = args.optimizer.config(args.lr.unwrap_or(default_lr));
    if let Some(decay) = args.weight_decay {
        config = config.with_weight_decay(decay).ok_or_else(|| {
            format!(
                "--weight-decay: {} has no weight decay",
                args.optimizer.name()
            )
        })?;
    }
    config.validate().map_err(|e| e.to_string())?;
    let samples = args.samples.unwrap_or(if args.quick { 1000 } else { 2000 }) as usize;
    let train_samples = samples - (samples as f64 * 0.2).round() as usize;
    if args.batch_size as usize > train_samples {
        return Err(format!(
            "--batch-size {} is larger than the {train_samples} training samples",
            args.batch_size
        ));
    }
    let epochs = args.epochs.unwrap_or(if args.quick { 60 } else { 150 }) as u64;
    let step_samples = args.batch_size as usize * args.accumulate as usize;
    let per_epoch = train_samples.div_ceil(step_samples) as u64;
    let updates = epochs * per_epoch;
    let schedule = match args.schedule {
        ScheduleChoice::Constant => LrSchedule::constant(),
        ScheduleChoice::Cosine => LrSchedule::cosine(updates, 0.0),
        ScheduleChoice::WarmRestarts => LrSchedule::cosine_warm_restarts(10 * per_epoch, 2, 0.0),
        ScheduleChoice::MultiStep => LrSchedule::multi_step(&[updates / 2, updates * 3 / 4], 0.1),
        ScheduleChoice::Polynomial => LrSchedule::polynomial(updates, 1.0),
        ScheduleChoice::OneCycle => {
            // The cycle moves the momentum too, where the optimizer has one to move.
            let cycle = OneCycle::new(updates);
            LrSchedule::one_cycle(match args.optimizer {
                OptimizerChoice::Sgd
                | OptimizerChoice::Rmsprop
                | OptimizerChoice::Adagrad
                | OptimizerChoice::Adadelta => cycle.without_momentum_cycle(),
                _ => cycle,
            })
        }
    };
    let base_lr = config.lr();
    let mut trainer = Trainer::new(config, Loss::SoftmaxCrossEntropy);
    if args.weight_decay.is_some() {
        // The biases (PyTorch's 1-D parameters) in a group without decay.
        trainer = trainer.param_group(ParamGroup::one_dimensional().weight_decay(0.0));
    }
    if let Some(decay) = args.ema {
        trainer = trainer.ema(decay);
    }
    if let Some(start) = args.swa {
        if args.ema.is_some() {
            return Err("--swa with --ema: a run keeps one average of its weights".into());
        }
        if matches!(args.schedule, ScheduleChoice::OneCycle) {
            return Err(
                "--swa with --schedule one-cycle: the cycle moves the momentum too, \
                        which SWA's constant rate would leave mid-cycle"
                    .into(),
            );
        }
        if start as u64 > epochs {
            return Err(format!(
                "--swa {start}: the run has {epochs} epochs, so no epoch would be averaged"
            ));
        }
        let lr = args.swa_lr.unwrap_or(base_lr / 2.0);
        trainer = trainer.swa(Swa::new(start as usize, lr).anneal_epochs(5));
    }
    let trainer = trainer
        .batch_size(args.batch_size as usize)
        .accumulate_grad_batches(args.accumulate as usize)
        .epochs(epochs as usize)
        .schedule(schedule)
        .seed(args.seed)
        .monitor(true)
        .progress(true);
    Ok(Settings {
        trainer,
        samples,
        seed: args.seed,
        out: args.out.clone(),
    })
}

/// Trains on `backend` and returns the history.
fn train<B: Backend>(backend: &B, s: &Settings) -> steepest::Result<History> {
    let all = data::spirals(s.samples, 0.05, s.seed)?;
    let (train, val) = all.split(0.2, s.seed)?;
    // Fitted on the training split only, then applied to both.
    let scale = Standardizer::fit(&train);
    let (train, val) = (scale.transform(&train)?, scale.transform(&val)?);
    let spec = MlpSpec::new(2)
        .layer(64, Activation::Relu)
        .layer(64, Activation::Relu)
        .layer(2, Activation::Identity);
    let mut model = Mlp::new(backend, &spec, Init::HeUniform, s.seed)?;
    let optimizer = s.trainer.optimizer();
    let decay = match s.trainer.param_groups().is_empty() {
        true => String::new(),
        false => format!(
            " (weight decay {} on the weights)",
            optimizer.weight_decay()
        ),
    };
    println!(
        "training {} parameters on {} spirals samples ({} for validation), {}{decay} on {}",
        model.parameter_count(),
        train.len() + val.len(),
        val.len(),
        optimizer.name(),
        backend.describe()
    );
    println!("{model}");
    let start = Instant::now();
    let history = s.trainer.fit(backend, &mut model, &train, Some(&val))?;
    let seconds = start.elapsed().as_secs_f64();
    for r in history
        .epochs
        .iter()
        .filter(|r| r.epoch % 25 == 0 || r.epoch == 1)
    {
        println!(
            "epoch {:4}  loss {:.4}  val loss {:.4}  val accuracy {:.1}%  lr {:.2e}",
            r.epoch,
            r.loss,
            r.val_loss.unwrap_or(f64::NAN),
            100.0 * r.val_accuracy.unwrap_or(0.0),
            r.lr
        );
    }
    let steps = history.last().map_or(0, |r| r.step);
    println!(
        "{} epochs, {steps} steps in {seconds:.2} s ({:.0} steps/s)",
        history.epochs.len(),
        steps as f64 / seconds
    );
    Ok(history)
}

fn run(args: Args) -> Result<f64, String> {
    let s = settings(&args)?;
    let history = match args.backend.open()? {
        Some(gpu) => train(&gpu, &s).and_then(|h| common::print_kernel_times(&gpu).map(|()| h)),
        None => train(&CpuBackend, &s),
    }
    .map_err(|e| e.to_string())?;

    std::fs::create_dir_all(&s.out).map_err(|e| format!("{}: {e}", s.out.display()))?;
    history
        .write_csv(s.out.join("history.csv"))
        .map_err(|e| e.to_string())?;
    history
        .write_json(s.out.join("history.json"))
        .map_err(|e| e.to_string())?;
    let curve = |f: fn(&steepest::EpochRecord) -> Option<f64>| {
        history
            .epochs
            .iter()
            .filter_map(|r| Some((r.epoch as f64, f(r)?)))
            .collect::<Vec<_>>()
    };
    let losses = [
        ("training".to_string(), curve(|r| Some(r.loss))),
        ("validation".to_string(), curve(|r| r.val_loss)),
    ];
    let accuracies = [
        (
            "training".to_string(),
            curve(|r| r.accuracy.map(|a| 100.0 * a)),
        ),
        (
            "validation".to_string(),
            curve(|r| r.val_accuracy.map(|a| 100.0 * a)),
        ),
    ];
    plot_panels(
        &s.out.join("loss.svg"),
        "two spirals: per epoch",
        "epoch",
        &[
            Panel {
                y_label: "cross-entropy (log scale)",
                log: true,
                series: &losses,
            },
            Panel {
                y_label: "accuracy, % (linear scale)",
                log: false,
                series: &accuracies,
            },
        ],
    )?;
    println!(
        "wrote {0}/loss.svg, {0}/history.csv, {0}/history.json",
        s.out.display()
    );
    Ok(history.last().and_then(|r| r.val_accuracy).unwrap_or(0.0))
}

fn main() -> ExitCode {
    finish(run(Args::parse()).and_then(|accuracy| {
        if accuracy >= TARGET_ACCURACY {
            println!(
                "validation accuracy {:.1}% (target {:.0}%)",
                100.0 * accuracy,
                100.0 * TARGET_ACCURACY
            );
            Ok(())
        } else {
            Err(format!(
                "validation accuracy {:.1}% is below the {:.0}% target",
                100.0 * accuracy,
                100.0 * TARGET_ACCURACY
            ))
        }
    }))
}
