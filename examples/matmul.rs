//! The foundation at work: open the GPU (or say why not and fall back to the CPU), run the
//! forward pass of a linear layer, `relu(x·wᵀ + b)`, as one fused kernel on both backends, and
//! check that they agree.
//!
//! `cargo run --release --example matmul -- --help` lists the flags.

mod common;

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use common::{BackendChoice, finish};
use steepest::ndarray::Array2;
use steepest::{Activation, Backend, CpuBackend, Matmul};

/// One fused linear layer, relu(x·wᵀ + b), on the CPU backend and the GPU, checked against
/// each other.
#[derive(Parser)]
struct Args {
    /// The batch, the features and the units: an N×N×N product.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16384))]
    size: u32,
    /// Where to run besides the CPU reference: `auto` and `gpu` also run the GPU (`gpu` fails
    /// without one, `auto` says so and stops), `cpu` the reference alone.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
}

/// Runs the layer on `backend`, returning the output and the seconds it took (upload and
/// readback included: this is what an application sees).
fn forward<B: Backend>(
    backend: &B,
    x: &Array2<f32>,
    w: &Array2<f32>,
    b: &Array2<f32>,
) -> steepest::Result<(Array2<f32>, f64)> {
    let start = Instant::now();
    let (x, w, b) = (
        backend.upload(x.view())?,
        backend.upload(w.view())?,
        backend.upload(b.view())?,
    );
    let y = backend.matmul(Matmul::nt().activation(Activation::Relu), &x, &w, Some(&b))?;
    let y = backend.download(&y)?;
    Ok((y, start.elapsed().as_secs_f64()))
}

fn run(args: Args) -> Result<(), String> {
    let err = |e: steepest::Error| e.to_string();
    let n = args.size as usize;
    // A batch of n samples with n features through a layer of n units.
    let x = Array2::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 23) as f32 / 23.0 - 0.5);
    let w = Array2::from_shape_fn((n, n), |(i, j)| ((i * 5 + j * 11) % 19) as f32 / 19.0 - 0.5);
    let b = Array2::from_shape_fn((1, n), |(_, j)| (j % 5) as f32 * 0.1 - 0.2);
    let flops = 2.0 * (n as f64).powi(3);

    let (reference, cpu_seconds) = forward(&CpuBackend, &x, &w, &b).map_err(err)?;
    println!(
        "{:<48} {n}×{n}×{n} in {cpu_seconds:.3} s ({:.2} GFLOP/s)",
        CpuBackend.describe(),
        flops / cpu_seconds / 1e9
    );
    let Some(gpu) = args.backend.open()? else {
        return Ok(());
    };
    // The first call builds the pipeline; time the second.
    forward(&gpu, &x, &w, &b).map_err(err)?;
    let (y, gpu_seconds) = forward(&gpu, &x, &w, &b).map_err(err)?;
    println!(
        "{:<48} {n}×{n}×{n} in {gpu_seconds:.3} s ({:.2} GFLOP/s)",
        gpu.describe(),
        flops / gpu_seconds / 1e9
    );

    let worst = (&y - &reference).iter().fold(0.0f32, |m, d| m.max(d.abs()));
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!("largest difference GPU vs CPU: {worst:.3e} (outputs up to {scale:.3e})");
    if worst.is_nan() || worst > 1e-4 * scale.max(1.0) {
        return Err(format!("GPU and CPU disagree by {worst}"));
    }
    Ok(())
}

fn main() -> ExitCode {
    finish(run(Args::parse()))
}
