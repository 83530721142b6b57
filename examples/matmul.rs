//! The foundation at work: open the GPU (or say why not and fall back to the CPU), run the
//! forward pass of a linear layer, `relu(x·wᵀ + b)`, as one fused kernel on both backends, and
//! check that they agree.
//!
//! `cargo run --release --example matmul -- [--size N] [--backend gpu|cpu]`

use std::time::Instant;

use ndarray::Array2;
use steepest::{Activation, Backend, CpuBackend, GpuBackend, Matmul};

struct Args {
    size: usize,
    cpu_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        size: 1024,
        cpu_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--size" => args.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--backend" => match value()?.as_str() {
                "gpu" => args.cpu_only = false,
                "cpu" => args.cpu_only = true,
                other => return Err(format!("--backend must be gpu or cpu, not {other:?}")),
            },
            other => {
                return Err(format!(
                    "unknown argument {other:?} (try --size N, --backend gpu|cpu)"
                ));
            }
        }
    }
    Ok(args)
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let n = args.size;
    // A batch of n samples with n features through a layer of n units.
    let x = Array2::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 23) as f32 / 23.0 - 0.5);
    let w = Array2::from_shape_fn((n, n), |(i, j)| ((i * 5 + j * 11) % 19) as f32 / 19.0 - 0.5);
    let b = Array2::from_shape_fn((1, n), |(_, j)| (j % 5) as f32 * 0.1 - 0.2);
    let flops = 2.0 * (n as f64).powi(3);

    let (reference, cpu_seconds) = forward(&CpuBackend, &x, &w, &b)?;
    println!(
        "{:<48} {n}×{n}×{n} in {cpu_seconds:.3} s ({:.2} GFLOP/s)",
        CpuBackend.describe(),
        flops / cpu_seconds / 1e9
    );

    if args.cpu_only {
        return Ok(());
    }
    let gpu = match GpuBackend::new() {
        Ok(gpu) => gpu,
        Err(e) => {
            println!("no GPU, so the CPU result above is the only one: {e}");
            return Ok(());
        }
    };
    // The first call builds the pipeline; time the second.
    forward(&gpu, &x, &w, &b)?;
    let (y, gpu_seconds) = forward(&gpu, &x, &w, &b)?;
    println!(
        "{:<48} {n}×{n}×{n} in {gpu_seconds:.3} s ({:.2} GFLOP/s)",
        gpu.describe(),
        flops / gpu_seconds / 1e9
    );

    let worst = (&y - &reference).iter().fold(0.0f32, |m, d| m.max(d.abs()));
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!("largest difference GPU vs CPU: {worst:.3e} (outputs up to {scale:.3e})");
    if worst.is_nan() || worst > 1e-4 * scale.max(1.0) {
        return Err(format!("GPU and CPU disagree by {worst}").into());
    }
    Ok(())
}
