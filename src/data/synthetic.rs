//! Seeded synthetic datasets: the textbook problems gradient descent is taught on.

use std::f64::consts::PI;

use ndarray::Array2;
use rand::RngExt;

use super::Dataset;
use crate::error::{Error, Result};
use crate::nn::{seeded, standard_normal};

fn check_count(op: &'static str, n: usize, min: usize) -> Result<()> {
    if n < min {
        return Err(Error::Data {
            op,
            detail: format!("{n} samples requested, at least {min} needed"),
        });
    }
    Ok(())
}

/// `y = x · w + b + noise`: `n` samples with `weights.len()` features uniform in [−1, 1] and
/// Gaussian noise of standard deviation `noise` (regression, one output).
pub fn linear(n: usize, weights: &[f32], bias: f32, noise: f32, seed: u64) -> Result<Dataset> {
    check_count("data::linear", n, 1)?;
    let mut rng = seeded(seed);
    let x = Array2::from_shape_fn((n, weights.len()), |_| rng.random_range(-1.0f32..=1.0));
    let y = Array2::from_shape_fn((n, 1), |(r, _)| {
        let clean: f32 = x
            .row(r)
            .iter()
            .zip(weights)
            .map(|(x, w)| x * w)
            .sum::<f32>()
            + bias;
        clean + noise * standard_normal(&mut rng) as f32
    });
    Dataset::regression(x, y)
}

/// Two interleaved spirals (classes 0 and 1), `n` samples in all, each point jittered by
/// Gaussian noise of standard deviation `noise`: not separable by any line, the classic test of
/// a hidden layer.
pub fn spirals(n: usize, noise: f32, seed: u64) -> Result<Dataset> {
    check_count("data::spirals", n, 2)?;
    let mut rng = seeded(seed);
    let mut x = Array2::zeros((n, 2));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 2;
        // Radius and angle grow together along each arm; the second arm is the first turned by π.
        let t = rng.random_range(0.0..1.0f64);
        let radius = 0.1 + 0.9 * t;
        let angle = 3.0 * PI * t + PI * class as f64;
        x[[i, 0]] = (radius * angle.cos() + f64::from(noise) * standard_normal(&mut rng)) as f32;
        x[[i, 1]] = (radius * angle.sin() + f64::from(noise) * standard_normal(&mut rng)) as f32;
        labels.push(class);
    }
    Dataset::classification(x, &labels, 2)
}

/// Two interleaving half circles (scikit-learn's `make_moons`), `n` samples, Gaussian noise.
pub fn moons(n: usize, noise: f32, seed: u64) -> Result<Dataset> {
    check_count("data::moons", n, 2)?;
    let mut rng = seeded(seed);
    let mut x = Array2::zeros((n, 2));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 2;
        let angle = rng.random_range(0.0..PI);
        let (px, py) = if class == 0 {
            (angle.cos(), angle.sin())
        } else {
            (1.0 - angle.cos(), 0.5 - angle.sin())
        };
        x[[i, 0]] = (px + f64::from(noise) * standard_normal(&mut rng)) as f32;
        x[[i, 1]] = (py + f64::from(noise) * standard_normal(&mut rng)) as f32;
        labels.push(class);
    }
    Dataset::classification(x, &labels, 2)
}

/// Gaussian blobs: `n` samples spread evenly over `centers` (one class each) with standard
/// deviation `std` around each center.
pub fn blobs(n: usize, centers: &[[f32; 2]], std: f32, seed: u64) -> Result<Dataset> {
    let op = "data::blobs";
    if centers.len() < 2 {
        return Err(Error::Data {
            op,
            detail: format!(
                "{} centers: blobs needs at least 2 (one class per center)",
                centers.len()
            ),
        });
    }
    if let Some(c) = centers.iter().find(|c| !c.iter().all(|v| v.is_finite())) {
        return Err(Error::Data {
            op,
            detail: format!("center {c:?} is not finite"),
        });
    }
    if !std.is_finite() || std < 0.0 {
        return Err(Error::Data {
            op,
            detail: format!("std = {std}: the spread must be finite and ≥ 0"),
        });
    }
    check_count(op, n, centers.len())?;
    let mut rng = seeded(seed);
    let mut x = Array2::zeros((n, 2));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % centers.len();
        for d in 0..2 {
            x[[i, d]] = centers[class][d] + std * standard_normal(&mut rng) as f32;
        }
        labels.push(class);
    }
    Dataset::classification(x, &labels, centers.len())
}
