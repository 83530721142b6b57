//! Seeded weight initialisation: PyTorch's `nn.Linear` default, Xavier/Glorot and He/Kaiming.

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How a linear layer's weight `[out, in]` and bias `[out]` are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Init {
    /// `nn.Linear`'s own: weight and bias uniform in ±1/√fan_in.
    #[default]
    PyTorchDefault,
    /// Glorot & Bengio: weight uniform in ±√(6/(fan_in + fan_out)), bias 0.
    XavierUniform,
    /// Glorot & Bengio: weight normal with σ = √(2/(fan_in + fan_out)), bias 0.
    XavierNormal,
    /// He et al. (for ReLU): weight uniform in ±√(6/fan_in), bias 0.
    HeUniform,
    /// He et al. (for ReLU): weight normal with σ = √(2/fan_in), bias 0.
    HeNormal,
}

impl Init {
    /// A weight (outputs × inputs) and bias (1 × outputs) for one layer.
    pub fn draw(
        self,
        rng: &mut StdRng,
        inputs: usize,
        outputs: usize,
    ) -> (Array2<f32>, Array2<f32>) {
        let (fan_in, fan_out) = (inputs as f64, outputs as f64);
        let zeros = Array2::zeros((1, outputs));
        let uniform = |rng: &mut StdRng, bound: f64, shape: (usize, usize)| {
            Array2::from_shape_fn(shape, |_| (rng.random_range(-bound..bound)) as f32)
        };
        let normal = |rng: &mut StdRng, sigma: f64, shape: (usize, usize)| {
            Array2::from_shape_fn(shape, |_| (sigma * standard_normal(rng)) as f32)
        };
        let shape = (outputs, inputs);
        match self {
            Init::PyTorchDefault => {
                let bound = 1.0 / fan_in.sqrt();
                let weight = uniform(rng, bound, shape);
                (weight, uniform(rng, bound, (1, outputs)))
            }
            Init::XavierUniform => (
                uniform(rng, (6.0 / (fan_in + fan_out)).sqrt(), shape),
                zeros,
            ),
            Init::XavierNormal => (normal(rng, (2.0 / (fan_in + fan_out)).sqrt(), shape), zeros),
            Init::HeUniform => (uniform(rng, (6.0 / fan_in).sqrt(), shape), zeros),
            Init::HeNormal => (normal(rng, (2.0 / fan_in).sqrt(), shape), zeros),
        }
    }
}

/// One draw from N(0, 1) by the Box–Muller transform (keeps `rand_distr` out of the tree).
pub(crate) fn standard_normal(rng: &mut StdRng) -> f64 {
    // 1 − u lies in (0, 1], so the logarithm is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A generator seeded with `seed` (the same seed gives the same weights on every machine).
pub(crate) fn seeded(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
