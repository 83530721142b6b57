//! The main job: train an MLP to separate two interleaved spirals, on the GPU when there is one.
//!
//! ```sh
//! cargo run --release --example mlp -- [--backend gpu|cpu] [--optimizer adam] [--lr 0.01]
//!     [--epochs 150] [--batch-size 64] [--seed 1] [--samples 2000] [--out target/mlp] [--quick]
//! ```
//!
//! Prints the backend and adapter, trains, reports validation accuracy (the target is 95%), and
//! writes the loss curve (`loss.svg`) and the history (`history.csv`, `history.json`) to `--out`.
//! With no GPU adapter it says so and trains on the CPU backend. `--quick` is the CI mode: a
//! smaller run that must still reach the target.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use common::{Flags, optimizer, plot};
use steepest::{
    Activation, Backend, CpuBackend, GpuBackend, History, Init, Loss, Mlp, MlpSpec, Standardizer,
    Trainer, data,
};

const TARGET_ACCURACY: f64 = 0.95;

struct Settings {
    trainer: Trainer,
    samples: usize,
    seed: u64,
    out: PathBuf,
}

fn settings(flags: &Flags) -> Result<Settings, String> {
    let quick = flags.on("quick");
    let name: String = flags.get("optimizer", "adam".to_string())?;
    let default_lr = match name.as_str() {
        "sgd" | "adagrad" => 0.1,
        "momentum" | "nesterov" => 0.05,
        _ => 0.01,
    };
    let seed = flags.get("seed", 1)?;
    let trainer = Trainer::new(
        optimizer(&name, flags.get("lr", default_lr)?)?,
        Loss::SoftmaxCrossEntropy,
    )
    .batch_size(flags.get("batch-size", 64)?)
    .epochs(flags.get("epochs", if quick { 60 } else { 150 })?)
    .seed(seed)
    .monitor(true)
    .progress(true);
    Ok(Settings {
        trainer,
        samples: flags.get("samples", if quick { 1000 } else { 2000 })?,
        seed,
        out: flags.get("out", PathBuf::from("target/mlp"))?,
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
    println!(
        "training {} parameters on {} spirals samples ({} for validation), {} on {}",
        model.parameter_count(),
        train.len() + val.len(),
        val.len(),
        s.trainer.optimizer().name(),
        backend.describe()
    );
    let start = Instant::now();
    let history = s.trainer.fit(backend, &mut model, &train, Some(&val))?;
    let seconds = start.elapsed().as_secs_f64();
    for r in history
        .epochs
        .iter()
        .filter(|r| r.epoch % 25 == 0 || r.epoch == 1)
    {
        println!(
            "epoch {:4}  loss {:.4}  val loss {:.4}  val accuracy {:.1}%",
            r.epoch,
            r.loss,
            r.val_loss.unwrap_or(f64::NAN),
            100.0 * r.val_accuracy.unwrap_or(0.0)
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

fn run() -> Result<f64, String> {
    let flags = Flags::parse(
        &[
            "backend",
            "optimizer",
            "lr",
            "epochs",
            "batch-size",
            "seed",
            "samples",
            "out",
        ],
        &["quick"],
    )?;
    let s = settings(&flags)?;
    let history = match flags.get("backend", "gpu".to_string())?.as_str() {
        "cpu" => train(&CpuBackend, &s),
        "gpu" => match GpuBackend::new() {
            Ok(gpu) => train(&gpu, &s),
            Err(e) => {
                println!("no GPU: {e}\nfalling back to the CPU backend");
                train(&CpuBackend, &s)
            }
        },
        other => return Err(format!("--backend must be gpu or cpu, not {other:?}")),
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
    plot(
        &s.out.join("loss.svg"),
        "two spirals: cross-entropy per epoch",
        "epoch",
        &[
            ("training".into(), curve(|r| Some(r.loss))),
            ("validation".into(), curve(|r| r.val_loss)),
        ],
    )?;
    println!(
        "wrote {0}/loss.svg, {0}/history.csv, {0}/history.json",
        s.out.display()
    );
    Ok(history.last().and_then(|r| r.val_accuracy).unwrap_or(0.0))
}

fn main() -> ExitCode {
    match run() {
        Ok(accuracy) if accuracy >= TARGET_ACCURACY => {
            println!(
                "validation accuracy {:.1}% (target {:.0}%)",
                100.0 * accuracy,
                100.0 * TARGET_ACCURACY
            );
            ExitCode::SUCCESS
        }
        Ok(accuracy) => {
            eprintln!(
                "validation accuracy {:.1}% is below the {:.0}% target",
                100.0 * accuracy,
                100.0 * TARGET_ACCURACY
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
