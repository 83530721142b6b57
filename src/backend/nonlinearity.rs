//! `Nonlinearity`: the elementwise functions of the activation layers, with their derivatives
//! taken from the input (GELU and SiLU cannot be differentiated from their output).

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
}

/// √(2/π), the tanh form's scale.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The tanh form's cubic coefficient.
const GELU_CUBIC: f32 = 0.044_715;
/// 1/√(2π), the normal density's scale.
const INV_SQRT_2PI: f32 = 0.398_942_3;

impl Nonlinearity {
    /// Every function (leaky ReLU with PyTorch's default slope), for tests and tables.
    pub const ALL: [Nonlinearity; 7] = [
        Nonlinearity::Relu,
        Nonlinearity::LeakyRelu { slope: 0.01 },
        Nonlinearity::Gelu,
        Nonlinearity::GeluTanh,
        Nonlinearity::Silu,
        Nonlinearity::Tanh,
        Nonlinearity::Sigmoid,
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
        }
    }

    /// The shader's `FUNCTION` override and the slope it passes as immediate data.
    pub(crate) fn shader_code(self) -> (u32, f32) {
        match self {
            Nonlinearity::Relu => (0, 0.0),
            Nonlinearity::LeakyRelu { slope } => (1, slope),
            Nonlinearity::Gelu => (2, 0.0),
            Nonlinearity::GeluTanh => (3, 0.0),
            Nonlinearity::Silu => (4, 0.0),
            Nonlinearity::Tanh => (5, 0.0),
            Nonlinearity::Sigmoid => (6, 0.0),
        }
    }
}

/// The tanh form's argument, clamped where tanh is ±1 in f32 anyway (so x³ never overflows
/// into an infinite argument).
fn gelu_inner(x: f32) -> f32 {
    let x = x.clamp(-20.0, 20.0);
    SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)
}

/// `tanh(x)` as the kernels compute it: `sign(x) · (1 − e^−2|x|) / (1 + e^−2|x|)`, finite
/// everywhere (some drivers' built-in is NaN for large |x|).
pub(crate) fn tanh(x: f32) -> f32 {
    let e = (-2.0 * x.abs()).exp();
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// The error function by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, under
/// f32's resolution near ±1), the formula `shaders/nonlinearity.wgsl` uses too; Rust's
/// standard library has no stable `erf`.
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * (-a * a).exp()).copysign(x)
}
