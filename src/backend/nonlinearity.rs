//! `Nonlinearity`: the elementwise functions of the activation layers, with their derivatives
//! taken from the input (GELU and SiLU cannot be differentiated from their output).

use super::special::{erf, expm1, log1p, softplus, tanh};

/// An elementwise function `y = f(x)`, as PyTorch's `nn` module of the same name computes it.
///
/// [`Nonlinearity::apply`] and [`Nonlinearity::derivative`] are the CPU backend's definitions
/// of truth; `shaders/nonlinearity.wgsl` computes the same formulas.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Nonlinearity {
    /// `max(x, 0)` (`nn.ReLU`); derivative 1 where x > 0, else 0.
    Relu,
    /// `x` where x > 0, else `slope · x` (`nn.LeakyReLU(negative_slope)`, 0.01 by default).
    LeakyRelu {
        /// The slope for x ≤ 0.
        slope: f32,
    },
    /// `x · Φ(x) = x/2 · (1 + erf(x/√2))` (`nn.GELU()`).
    Gelu,
    /// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))` (`nn.GELU(approximate='tanh')`).
    GeluTanh,
    /// `x · σ(x)` (`nn.SiLU`).
    Silu,
    /// `tanh(x)` (`nn.Tanh`).
    Tanh,
    /// `1 / (1 + e^−x)` (`nn.Sigmoid`).
    Sigmoid,
    /// `x` where x > 0, else `alpha · (e^x − 1)` (`nn.ELU(alpha)`, 1 by default); the
    /// derivative at 0 is `alpha`, as PyTorch's.
    Elu {
        /// The value the function tends to for x → −∞ is −alpha.
        alpha: f32,
    },
    /// `λ · x` where x > 0, else `λ · α · (e^x − 1)`, with PyTorch's λ ≈ 1.0507 and α ≈ 1.6733
    /// (`nn.SELU`): the self-normalising network's function.
    Selu,
    /// `ln(1 + e^(beta·x)) / beta`, or `x` where `beta · x > threshold` (`nn.Softplus(beta,
    /// threshold)`, 1 and 20 by default); computed in the form `max(βx, 0) + ln(1 + e^−|βx|)`,
    /// which never overflows (PyTorch's is infinite past βx ≈ 88 with a threshold above it).
    Softplus {
        /// The sharpness β (> 0).
        beta: f32,
        /// Where the function becomes `x` (in units of βx).
        threshold: f32,
    },
    /// `x · tanh(softplus(x))` (`nn.Mish`).
    Mish,
    /// `x · min(max(x + 3, 0), 6) / 6` (`nn.Hardswish`).
    Hardswish,
    /// `min(max(x, 0), 6)` (`nn.ReLU6`); derivative 1 where 0 < x < 6, else 0.
    Relu6,
    /// `min(max(x, min_val), max_val)` (`nn.Hardtanh(min_val, max_val)`, −1 and 1 by
    /// default); derivative 1 where min_val < x < max_val, else 0.
    Hardtanh {
        /// The lower bound.
        min_val: f32,
        /// The upper bound (> min_val).
        max_val: f32,
    },
    /// `min(max(x + 3, 0), 6) / 6` (`nn.Hardsigmoid`); derivative 1/6 where −3 < x < 3.
    Hardsigmoid,
    /// `x / (1 + |x|)` (`nn.Softsign`).
    Softsign,
    /// `ln σ(x) = min(x, 0) − ln(1 + e^−|x|)` (`nn.LogSigmoid`).
    LogSigmoid,
    /// `x` where x > 0, else `alpha · (e^(x/alpha) − 1)` (`nn.CELU(alpha)`, 1 by default).
    Celu {
        /// The value the function tends to for x → −∞ is −alpha (≠ 0).
        alpha: f32,
    },
}

/// SELU's scale λ, as PyTorch rounds it to f32.
const SELU_SCALE: f32 = 1.050_701;
/// SELU's α, as PyTorch rounds it to f32.
const SELU_ALPHA: f32 = 1.673_263_2;

/// √(2/π), the tanh form's scale.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The tanh form's cubic coefficient.
const GELU_CUBIC: f32 = 0.044_715;
/// 1/√(2π), the normal density's scale.
const INV_SQRT_2PI: f32 = 0.398_942_3;

impl Nonlinearity {
    /// Every function (leaky ReLU with PyTorch's default slope), for tests and tables.
    pub const ALL: [Nonlinearity; 18] = [
        Nonlinearity::Relu,
        Nonlinearity::LeakyRelu { slope: 0.01 },
        Nonlinearity::Gelu,
        Nonlinearity::GeluTanh,
        Nonlinearity::Silu,
        Nonlinearity::Tanh,
        Nonlinearity::Sigmoid,
        Nonlinearity::Elu { alpha: 1.0 },
        Nonlinearity::Selu,
        Nonlinearity::Softplus {
            beta: 1.0,
            threshold: 20.0,
        },
        Nonlinearity::Mish,
        Nonlinearity::Hardswish,
        Nonlinearity::Relu6,
        Nonlinearity::Hardtanh {
            min_val: -1.0,
            max_val: 1.0,
        },
        Nonlinearity::Hardsigmoid,
        Nonlinearity::Softsign,
        Nonlinearity::LogSigmoid,
        Nonlinearity::Celu { alpha: 1.0 },
    ];

    /// `f(x)`.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Nonlinearity::Relu => x.max(0.0),
            Nonlinearity::LeakyRelu { slope } => {
                if x > 0.0 {
                    x
                } else {
                    slope * x
                }
            }
            Nonlinearity::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Nonlinearity::GeluTanh => 0.5 * x * (1.0 + tanh(gelu_inner(x))),
            Nonlinearity::Silu => x * super::sigmoid(x),
            Nonlinearity::Tanh => tanh(x),
            Nonlinearity::Sigmoid => super::sigmoid(x),
            Nonlinearity::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * expm1(x)
                }
            }
            Nonlinearity::Selu => {
                if x > 0.0 {
                    SELU_SCALE * x
                } else {
                    SELU_SCALE * (SELU_ALPHA * expm1(x))
                }
            }
            Nonlinearity::Softplus { beta, threshold } => {
                let bx = beta * x;
                if bx > threshold {
                    x
                } else {
                    softplus(bx) / beta
                }
            }
            Nonlinearity::Mish => x * tanh(softplus(x)),
            Nonlinearity::Hardswish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Nonlinearity::Relu6 => hardtanh(x, 0.0, 6.0),
            Nonlinearity::Hardtanh { min_val, max_val } => hardtanh(x, min_val, max_val),
            Nonlinearity::Hardsigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Nonlinearity::Softsign => x / (1.0 + x.abs()),
            Nonlinearity::LogSigmoid => x.min(0.0) - log1p((-x.abs()).exp()),
            Nonlinearity::Celu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * expm1(x / alpha)
                }
            }
        }
    }

    /// `f'(x)`, the factor the backward pass multiplies the output's gradient by.
    pub fn derivative(self, x: f32) -> f32 {
        match self {
            Nonlinearity::Relu => f32::from(u8::from(x > 0.0)),
            Nonlinearity::LeakyRelu { slope } => {
                if x > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
            Nonlinearity::Gelu => {
                let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                cdf + x * INV_SQRT_2PI * (-0.5 * x * x).exp()
            }
            Nonlinearity::GeluTanh => {
                let t = tanh(gelu_inner(x));
                let inner_derivative = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * inner_derivative
            }
            Nonlinearity::Silu => {
                let s = super::sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            }
            Nonlinearity::Tanh => {
                let t = tanh(x);
                1.0 - t * t
            }
            Nonlinearity::Sigmoid => {
                let s = super::sigmoid(x);
                s * (1.0 - s)
            }
            Nonlinearity::Elu { alpha } => {
                if x > 0.0 {
                    1.0
                } else {
                    alpha * x.exp()
                }
            }
            Nonlinearity::Selu => {
                if x > 0.0 {
                    SELU_SCALE
                } else {
                    SELU_SCALE * SELU_ALPHA * x.exp()
                }
            }
            Nonlinearity::Softplus { beta, threshold } => {
                let bx = beta * x;
                if bx > threshold {
                    1.0
                } else {
                    super::sigmoid(bx)
                }
            }
            Nonlinearity::Mish => {
                let t = tanh(softplus(x));
                t + x * super::sigmoid(x) * (1.0 - t * t)
            }
            Nonlinearity::Hardswish => {
                if x < -3.0 {
                    0.0
                } else if x <= 3.0 {
                    x / 3.0 + 0.5
                } else {
                    1.0
                }
            }
            Nonlinearity::Relu6 => inside(x, 0.0, 6.0, 1.0),
            Nonlinearity::Hardtanh { min_val, max_val } => inside(x, min_val, max_val, 1.0),
            Nonlinearity::Hardsigmoid => inside(x, -3.0, 3.0, 1.0 / 6.0),
            Nonlinearity::Softsign => {
                let b = 1.0 + x.abs();
                1.0 / (b * b)
            }
            Nonlinearity::LogSigmoid => {
                // PyTorch's form: 1 − σ(|x|) below 0, σ(−|x|) from 0.
                let z = (-x.abs()).exp();
                if x < 0.0 {
                    1.0 - z / (1.0 + z)
                } else {
                    z / (1.0 + z)
                }
            }
            Nonlinearity::Celu { alpha } => {
                if x > 0.0 {
                    1.0
                } else {
                    (x / alpha).exp()
                }
            }
        }
    }

    /// PyTorch's module name (`relu`, `leaky_relu(0.01)`, `gelu`, `gelu_tanh`, `silu`, …).
    pub fn name(self) -> String {
        match self {
            Nonlinearity::Relu => "relu".into(),
            Nonlinearity::LeakyRelu { slope } => format!("leaky_relu({slope:?})"),
            Nonlinearity::Gelu => "gelu".into(),
            Nonlinearity::GeluTanh => "gelu_tanh".into(),
            Nonlinearity::Silu => "silu".into(),
            Nonlinearity::Tanh => "tanh".into(),
            Nonlinearity::Sigmoid => "sigmoid".into(),
            Nonlinearity::Elu { alpha } => format!("elu({alpha:?})"),
            Nonlinearity::Selu => "selu".into(),
            Nonlinearity::Softplus { beta, threshold } => {
                format!("softplus({beta:?}, {threshold:?})")
            }
            Nonlinearity::Mish => "mish".into(),
            Nonlinearity::Hardswish => "hardswish".into(),
            Nonlinearity::Relu6 => "relu6".into(),
            Nonlinearity::Hardtanh { min_val, max_val } => {
                format!("hardtanh({min_val:?}, {max_val:?})")
            }
            Nonlinearity::Hardsigmoid => "hardsigmoid".into(),
            Nonlinearity::Softsign => "softsign".into(),
            Nonlinearity::LogSigmoid => "log_sigmoid".into(),
            Nonlinearity::Celu { alpha } => format!("celu({alpha:?})"),
        }
    }

    /// Its parameters that must be finite (and β, which divides, nonzero), named as
    /// PyTorch's arguments, or a description of the first that is not.
    pub(crate) fn check_parameters(self) -> std::result::Result<(), String> {
        let bad = |name: &str, value: f32, rule: &str| {
            Err(format!(
                "{} with {name} = {value}: it must be {rule}",
                self.name()
            ))
        };
        match self {
            Nonlinearity::LeakyRelu { slope } if !slope.is_finite() => {
                bad("slope", slope, "finite")
            }
            Nonlinearity::Elu { alpha } if !alpha.is_finite() => bad("alpha", alpha, "finite"),
            Nonlinearity::Softplus { beta, .. } if !(beta.is_finite() && beta > 0.0) => {
                bad("beta", beta, "finite and > 0")
            }
            Nonlinearity::Softplus { threshold, .. } if threshold.is_nan() => {
                bad("threshold", threshold, "a number")
            }
            Nonlinearity::Hardtanh { min_val, .. } if !min_val.is_finite() => {
                bad("min_val", min_val, "finite")
            }
            Nonlinearity::Hardtanh { min_val, max_val }
                if !(max_val.is_finite() && max_val > min_val) =>
            {
                bad("max_val", max_val, "finite and > min_val")
            }
            Nonlinearity::Celu { alpha } if !(alpha.is_finite() && alpha != 0.0) => {
                bad("alpha", alpha, "finite and ≠ 0")
            }
            _ => Ok(()),
        }
    }

    /// The shader's `FUNCTION` override and the two parameters it passes as immediate data.
    pub(crate) fn shader_code(self) -> (u32, [f32; 2]) {
        match self {
            Nonlinearity::Relu => (0, [0.0; 2]),
            Nonlinearity::LeakyRelu { slope } => (1, [slope, 0.0]),
            Nonlinearity::Gelu => (2, [0.0; 2]),
            Nonlinearity::GeluTanh => (3, [0.0; 2]),
            Nonlinearity::Silu => (4, [0.0; 2]),
            Nonlinearity::Tanh => (5, [0.0; 2]),
            Nonlinearity::Sigmoid => (6, [0.0; 2]),
            Nonlinearity::Elu { alpha } => (7, [alpha, 0.0]),
            Nonlinearity::Selu => (8, [0.0; 2]),
            Nonlinearity::Softplus { beta, threshold } => (9, [beta, threshold]),
            Nonlinearity::Mish => (10, [0.0; 2]),
            Nonlinearity::Hardswish => (11, [0.0; 2]),
            Nonlinearity::Relu6 => (12, [0.0, 6.0]),
            Nonlinearity::Hardtanh { min_val, max_val } => (12, [min_val, max_val]),
            Nonlinearity::Hardsigmoid => (13, [0.0; 2]),
            Nonlinearity::Softsign => (14, [0.0; 2]),
            Nonlinearity::LogSigmoid => (15, [0.0; 2]),
            Nonlinearity::Celu { alpha } => (16, [alpha, 0.0]),
        }
    }
}

/// `x` clamped to `[low, high]` in PyTorch's form (a NaN stays NaN).
fn hardtanh(x: f32, low: f32, high: f32) -> f32 {
    if x <= low {
        low
    } else if x >= high {
        high
    } else {
        x
    }
}

/// `slope` where `low < x < high`, else 0: the clamps' derivative (PyTorch's, 0 at the bounds).
fn inside(x: f32, low: f32, high: f32, slope: f32) -> f32 {
    if x > low && x < high { slope } else { 0.0 }
}

/// The tanh form's argument, clamped where tanh is ±1 in f32 anyway (so x³ never overflows
/// into an infinite argument).
fn gelu_inner(x: f32) -> f32 {
    let x = x.clamp(-20.0, 20.0);
    SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)
}
