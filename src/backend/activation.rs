//! `Activation`: the nonlinearities a matmul's epilogue fuses, with their derivatives taken
//! from their output (what a backward pass has kept).

/// An elementwise nonlinearity, fused into the matmul epilogue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Activation {
    /// `x`
    #[default]
    Identity,
    /// `max(x, 0)`
    Relu,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// `tanh(x)`
    Tanh,
}

impl Activation {
    /// Every activation, for tests and tables.
    pub const ALL: [Activation; 4] = [
        Activation::Identity,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
    ];

    /// The activation applied to one value; the CPU backend's definition of truth.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
        }
    }

    /// The derivative at the point where the activation produced `output`: what the backward
    /// pass needs, from what the forward pass kept.
    pub fn derivative_from_output(self, output: f32) -> f32 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => f32::from(u8::from(output > 0.0)),
            Activation::Sigmoid => output * (1.0 - output),
            Activation::Tanh => 1.0 - output * output,
        }
    }

    /// The name PyTorch's `nn` module gives it (`identity`, `relu`, `sigmoid`, `tanh`).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }

    /// The code the WGSL kernels use for this activation (their `ACTIVATION` override).
    pub(crate) fn shader_code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Sigmoid => 2,
            Activation::Tanh => 3,
        }
    }
}

/// Sigmoid that neither overflows nor loses precision for large |x|.
pub(crate) fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
