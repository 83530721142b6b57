//! The `Layer` trait: the seam every model is built on.
//!
//! A layer is a batch forward and a batch backward written against [`Backend`] ops, the shapes
//! of its parameters (stored in the model's one arena, so one optimizer dispatch updates every
//! layer), and the matrices it keeps between its forward and its backward. [`Sequential`]
//! chains layers, owns the arena and the per-batch matrices, and hands each layer views of
//! them.
//!
//! [`Sequential`]: super::Sequential

use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;

use super::Init;
use crate::backend::{Activation, Backend};
use crate::error::Result;

/// One parameter tensor a layer owns: its name under the layer (PyTorch's, such as `weight`),
/// its shape as the backend stores it, and its shape as PyTorch's `state_dict` holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// The name after the layer's prefix: `weight` becomes `layers.0.weight`.
    pub name: String,
    /// Rows of the backend matrix.
    pub rows: usize,
    /// Columns of the backend matrix.
    pub cols: usize,
    /// The shape PyTorch gives it (a bias of `rows == 1` is `[cols]`).
    pub torch_shape: Vec<usize>,
}

impl ParamSpec {
    /// A matrix parameter, `[rows, cols]` in PyTorch too.
    pub fn matrix(name: &str, rows: usize, cols: usize) -> Self {
        Self {
            name: name.into(),
            rows,
            cols,
            torch_shape: vec![rows, cols],
        }
    }

    /// A vector parameter of `len` elements, stored as a 1 × `len` row (a bias, a gain).
    pub fn vector(name: &str, len: usize) -> Self {
        Self {
            name: name.into(),
            rows: 1,
            cols: len,
            torch_shape: vec![len],
        }
    }
}

/// Whether a forward pass is for training (dropout drops) or evaluation (it does not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Training: the backward pass follows.
    Train,
    /// Evaluation and prediction.
    #[default]
    Eval,
}

/// What a layer's forward pass gets.
pub struct Forward<'a, B: Backend> {
    /// The layer's parameters, in the order [`Layer::parameters`] declared them.
    pub params: &'a [B::Matrix],
    /// Its buffers, in the order [`Layer::buffers`] declared them, read-only (a training
    /// pass updates them afterwards, in [`Layer::update_buffers`]).
    pub buffers: &'a [B::Matrix],
    /// The batch's input, rows × [`Layer::inputs`].
    pub input: &'a B::Matrix,
    /// Where the output goes, rows × [`Layer::outputs`]; every element must be written.
    pub output: &'a mut B::Matrix,
    /// The matrices [`Layer::saved_shapes`] asked for, to keep values for the backward pass.
    pub saved: &'a mut [B::Matrix],
    /// Training or evaluation.
    pub mode: Mode,
    /// Optimizer steps taken before this pass: what a random layer (dropout) seeds its draw
    /// with, so the same step draws the same mask on every backend and after a resume. With
    /// gradient accumulation over k batches a step
    /// ([`Trainer::accumulate_grad_batches`](crate::Trainer::accumulate_grad_batches)), the
    /// steps times k plus the batch's place in its step, so that each batch draws its own.
    pub step: u64,
}

/// Where a layer's backward pass puts the gradient with respect to its input.
pub struct InputGrad<'a, B: Backend> {
    /// ∂loss/∂input, rows × [`Layer::inputs`]; every element must be written.
    pub grad: &'a mut B::Matrix,
    /// The activation fused into the layer below ([`Layer::fused_activation`]): the gradient
    /// written must be multiplied by its derivative, taken from `below_output`. Identity
    /// asks for ∂loss/∂input itself.
    pub activation: Activation,
    /// The layer below's output (this layer's input), where that derivative is taken.
    pub below_output: &'a B::Matrix,
}

impl<B: Backend> InputGrad<'_, B> {
    /// Multiplies the gradient already written into `grad` by the derivative of the fused
    /// activation below: what a layer that cannot fuse it into its own kernel calls last.
    pub fn apply_activation(&mut self, backend: &B) -> Result<()> {
        if self.activation == Activation::Identity {
            return Ok(());
        }
        backend.activation_backward(self.activation, self.below_output, self.grad)
    }
}

/// After a training-mode forward pass, what a layer with buffers ([`Layer::buffers`]) gets
/// to update them.
pub struct BufferUpdate<'a, B: Backend> {
    /// The buffers, in the order [`Layer::buffers`] declared them.
    pub buffers: &'a mut [B::Matrix],
    /// The matrices the forward pass kept.
    pub saved: &'a [B::Matrix],
    /// The batch's input.
    pub input: &'a B::Matrix,
}

/// What a layer's backward pass gets.
pub struct Backward<'a, B: Backend> {
    /// The layer's parameters (as [`Forward::params`]).
    pub params: &'a [B::Matrix],
    /// Its buffers (as [`Forward::buffers`]).
    pub buffers: &'a [B::Matrix],
    /// The input the forward pass saw.
    pub input: &'a B::Matrix,
    /// The output the forward pass wrote.
    pub output: &'a B::Matrix,
    /// The matrices the forward pass kept (writable: a layer may use them as scratch).
    pub saved: &'a mut [B::Matrix],
    /// ∂loss/∂output; with a [`Layer::fused_activation`], ∂loss/∂(its pre-activation).
    pub grad_output: &'a B::Matrix,
    /// ∂loss/∂parameter for each parameter, to be overwritten (not accumulated).
    pub grad_params: &'a mut [B::Matrix],
    /// For each of `params`, whether the optimizer trains it: `false` where it is frozen
    /// ([`ParamGroup::frozen`](crate::ParamGroup::frozen)). Nothing reads a frozen parameter's
    /// entry of `grad_params`, and the layer may leave it as it is (PyTorch's autograd
    /// computes no gradient for a tensor that requires none); it passes the gradient down
    /// either way. Computing it anyway is correct, only slower.
    pub trained: &'a [bool],
    /// The gradient to pass down, or `None` for the model's first layer.
    pub grad_input: Option<InputGrad<'a, B>>,
}

/// A layer of a [`Sequential`](super::Sequential) model: a batch forward and backward over the
/// [`Backend`] ops, its parameters and what it keeps between the two.
///
/// Implement it for a type of your own to add a layer. Every method but `forward` and
/// `backward` has a default for a layer without parameters or saved values. A layer written
/// with the [`Backend`] ops runs on both backends; one with a kernel of its own implements
/// `Layer<GpuBackend>` with it (recorded through
/// [`GpuContext::record_compute`](crate::GpuContext::record_compute), so it joins the step's
/// one submit) and `Layer<CpuBackend>` with ndarray: `tests/custom_layer.rs` does both.
///
/// ```
/// use steepest::nn::{Backward, Forward, Layer, Sequential};
/// use steepest::{Backend, CpuBackend, Init, Linear};
///
/// /// `y = 2x`: the input added to itself.
/// #[derive(Debug)]
/// struct Double(usize);
///
/// impl<B: Backend> Layer<B> for Double {
///     fn describe(&self) -> String {
///         format!("double({})", self.0)
///     }
///     fn inputs(&self) -> usize {
///         self.0
///     }
///     fn outputs(&self) -> usize {
///         self.0
///     }
///     fn forward(&self, backend: &B, pass: Forward<'_, B>) -> steepest::Result<()> {
///         backend.add_into(pass.input, pass.input, pass.output)
///     }
///     fn backward(&self, backend: &B, pass: Backward<'_, B>) -> steepest::Result<()> {
///         // ∂/∂x = 2·∂/∂y, times the derivative of the activation fused below, if any.
///         if let Some(mut below) = pass.grad_input {
///             backend.add_into(pass.grad_output, pass.grad_output, below.grad)?;
///             below.apply_activation(backend)?;
///         }
///         Ok(())
///     }
/// }
///
/// # fn main() -> steepest::Result<()> {
/// let layers: Vec<Box<dyn Layer<CpuBackend>>> =
///     vec![Box::new(Linear::new(3, 4)), Box::new(Double(4)), Box::new(Linear::new(4, 1))];
/// let model = Sequential::new(&CpuBackend, layers, Init::default(), 0)?;
/// assert_eq!(model.architecture(), "linear(3→4, identity) | double(4) | linear(4→1, identity)");
/// # Ok(())
/// # }
/// ```
pub trait Layer<B: Backend>: Send + Sync + std::fmt::Debug {
    /// A short description for architecture lines and messages, such as `linear(2→64, relu)`.
    fn describe(&self) -> String;

    /// Checks the layer's own settings (a probability, an epsilon) when a model is built, so
    /// a bad one is an error then, not at the first step. The default accepts anything.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Input features.
    fn inputs(&self) -> usize;

    /// Checks input values the layer reads as something other than numbers (an
    /// [`Embedding`](crate::nn::Embedding)'s indices) where its input is the data's own: as a
    /// model's first layer, or after layers that pass the data's columns through
    /// ([`Layer::data_after`]). Called on the host on the training, validation and
    /// evaluation data and every input to predict, before they reach the backend (`op` names
    /// the call in the error). The default accepts anything.
    fn check_data(&self, op: &'static str, x: ArrayView2<'_, f32>) -> Result<()> {
        let _ = (op, x);
        Ok(())
    }

    /// For a layer that passes some of its input columns to its output unchanged (an
    /// embedding passes every column but its index): its output for the data `x`, those
    /// columns in place and NaN in the others, which is what the next layer's
    /// [`Layer::check_data`] is given. The default, `None`: the layer computes every output,
    /// and the layers after it check nothing.
    fn data_after(&self, x: ArrayView2<'_, f32>) -> Option<Array2<f32>> {
        let _ = x;
        None
    }

    /// Output features.
    fn outputs(&self) -> usize;

    /// The fewest rows a training batch through this layer may have (a batch norm's 2: one
    /// row has no variance), so that a run whose batches would be smaller is refused before it
    /// starts instead of failing at that batch. The default: 1.
    fn min_training_rows(&self) -> usize {
        1
    }

    /// The parameter tensors, in arena order.
    fn parameters(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// Initial values of every parameter, concatenated in [`Layer::parameters`]' order, drawn
    /// from `rng` (which the model seeds, so the same seed gives the same model).
    fn initial_values(&self, init: Init, rng: &mut StdRng) -> Vec<f32> {
        let _ = (init, rng);
        Vec::new()
    }

    /// Tensors the layer keeps beside its parameters without training them (PyTorch's
    /// buffers: a batch norm's running statistics), named and shaped as parameters are. They
    /// live in the model's arena after the layer's parameters, so they are saved, restored
    /// and averaged with them and named in its `state_dict`; every run keeps them frozen (no
    /// update, no weight decay, out of clipping's norm), and only [`Layer::update_buffers`]
    /// moves them. The default: none.
    fn buffers(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// The buffers' starting values, concatenated in [`Layer::buffers`]' order.
    fn initial_buffers(&self) -> Vec<f32> {
        Vec::new()
    }

    /// Updates the buffers after a training-mode forward pass (a batch norm's running
    /// statistics follow the batch's), from what the pass kept. The default changes nothing.
    fn update_buffers(&self, backend: &B, pass: BufferUpdate<'_, B>) -> Result<()> {
        let _ = (backend, pass);
        Ok(())
    }

    /// An activation this layer applies last, fused into its own kernel (a linear layer's
    /// epilogue), whose derivative the layer above multiplies into the gradient it passes
    /// down (so that product is fused too). Only activations whose derivative follows from
    /// their output can be fused this way.
    fn fused_activation(&self) -> Activation {
        Activation::Identity
    }

    /// `Some(activation)` when this layer's forward pass is exactly a linear layer's:
    /// `act(x · Wᵀ + b)` over its two parameters `[weight, bias]` as [`Linear`] declares them,
    /// keeping nothing, the same in every [`Mode`]. A [`Sequential`] then runs consecutive
    /// such layers' forward passes as one op ([`Backend::linear_chain_into`]: on the GPU, small
    /// ones in one kernel) instead of calling [`Layer::forward`]. The default, `None`, always
    /// calls it. A model is refused when built if a layer says so and its parameters are not
    /// a weight of `outputs × inputs` and a bias of `1 × outputs`.
    ///
    /// [`Linear`]: crate::Linear
    /// [`Sequential`]: super::Sequential
    fn fusable_linear(&self) -> Option<Activation> {
        None
    }

    /// Shapes of the matrices kept from forward to backward for a batch of `rows` samples
    /// (how many may not depend on `rows`).
    fn saved_shapes(&self, rows: usize) -> Vec<(usize, usize)> {
        let _ = rows;
        Vec::new()
    }

    /// Writes the layer's output for the batch in `pass.input`.
    fn forward(&self, backend: &B, pass: Forward<'_, B>) -> Result<()>;

    /// From `pass.grad_output`, writes every parameter's gradient and, when asked, the input's.
    fn backward(&self, backend: &B, pass: Backward<'_, B>) -> Result<()>;
}
