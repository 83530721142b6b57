//! # steepest
//!
//! Gradient-descent training on any GPU that [wgpu](https://wgpu.rs) reaches (Vulkan, Metal,
//! DX12), with a CPU reference backend on [ndarray](https://docs.rs/ndarray) that computes the
//! same thing and is the oracle for every GPU kernel.
//!
//! ## From data to predictions
//!
//! Build a [`Dataset`] from your arrays, standardise it, train an [`Mlp`] with a [`Trainer`],
//! predict on new inputs, and save a model file that describes itself (architecture,
//! activations, standardisation), so that tomorrow's program rebuilds it from the file alone:
//!
//! ```
//! use steepest::ndarray::{Array2, array};
//! use steepest::{Activation, Adam, CpuBackend, Dataset, Init, Loss, Mlp, MlpSpec};
//! use steepest::{Standardizer, Trainer};
//!
//! # fn main() -> steepest::Result<()> {
//! // Two features per sample, one of two classes each (from a Vec<Vec<f32>>, say).
//! let rows: Vec<[f32; 2]> = (0..200).map(|i| [i as f32 / 10.0, (i % 7) as f32]).collect();
//! let labels: Vec<usize> = rows.iter().map(|r| usize::from(r[0] > 10.0)).collect();
//! let x = Array2::from_shape_fn((rows.len(), 2), |(i, j)| rows[i][j]);
//! let data = Dataset::classification(x, &labels, 2)?;
//! // A fifth held out, each class in its share (`split` for any data, unstratified).
//! let (train, val) = data.split_stratified(0.2, 1)?;
//!
//! // Standardise with the training split's statistics, and keep them with the model.
//! let standardizer = Standardizer::fit(&train);
//! let (train, val) = (standardizer.transform(&train)?, standardizer.transform(&val)?);
//!
//! let backend = CpuBackend; // or GpuBackend::new()?
//! let spec = MlpSpec::new(2).layer(16, Activation::Relu).layer(2, Activation::Identity);
//! let mut model = Mlp::new(&backend, &spec, Init::HeUniform, 1)?;
//! Trainer::new(Adam::default().lr(0.05), Loss::SoftmaxCrossEntropy)
//!     .batch_size(32)
//!     .epochs(30)
//!     .fit(&backend, &mut model, &train, Some(&val))?;
//! model.set_standardizer(Some(standardizer))?;
//!
//! // Raw inputs in, classes out (the model standardises them itself).
//! let classes = model.predict_classes(&backend, array![[2.0, 3.0], [18.0, 1.0]].view())?;
//! assert_eq!(classes, vec![0, 1]);
//!
//! let path = std::env::temp_dir().join("steepest-doc-model.safetensors");
//! model.save_safetensors(&backend, &path)?;
//! let again = Mlp::from_safetensors(&backend, &path)?;
//! assert_eq!(again.predict_classes(&backend, array![[18.0, 1.0]].view())?, vec![1]);
//! # Ok(())
//! # }
//! ```
//!
//! A loop that predicts again and again (a server, an evaluation every epoch) keeps the
//! device memory of its predictions in a [`Predictor`] (`model.predictor(batch)?`), which
//! allocates nothing once each batch size has been seen.
//!
//! ## Models beyond the MLP
//!
//! [`Mlp`] builds a [`Sequential`] model of [`Linear`] layers. Any chain of layers is one:
//! the [`nn`] module has `Elementwise` (GELU, SiLU, leaky ReLU, ELU, SELU, Mish, …), `Glu`,
//! `LayerNorm`, `RmsNorm`, `BatchNorm`, `Dropout`, `Residual` and `Embedding` (a categorical input
//! column's learned vectors), and the [`Layer`] trait is the seam for layers of your own (its
//! docs show one).
//! The trainer takes any [`Model`]; [`Session::for_batches`] trains on batches your own loop
//! produces. [`Sequential::save_safetensors`] keeps any model in a file that names its layers,
//! and [`Sequential::load_safetensors`] loads it into the same layers built by the same code.
//!
//! ## Backends
//!
//! Both backends implement [`Backend`]: the few kernel-granularity ops a model needs. Pick one
//! and run the same code on it:
//!
//! ```no_run
//! use steepest::ndarray::array;
//! use steepest::{Activation, Backend, GpuBackend, Matmul};
//!
//! # fn main() -> steepest::Result<()> {
//! let gpu = GpuBackend::new()?; // honours WGPU_BACKEND, WGPU_ADAPTER_NAME, WGPU_POWER_PREF
//! let x = gpu.upload(array![[1.0, 2.0], [3.0, 4.0]].view())?;
//! let w = gpu.upload(array![[0.5, -1.0], [0.25, 2.0]].view())?;
//! let b = gpu.upload(array![[0.1, 0.2]].view())?;
//! // relu(x · wᵀ + b), the forward pass of a linear layer, in one kernel.
//! let y = gpu.matmul(Matmul::nt().activation(Activation::Relu), &x, &w, Some(&b))?;
//! println!("{} computed {}", gpu.describe(), gpu.download(&y)?);
//! # Ok(())
//! # }
//! ```
//!
//! With no GPU adapter, [`GpuBackend::new`] returns [`Error::NoAdapter`], whose message names
//! the fix (a Vulkan driver such as Mesa's `mesa-vulkan-drivers`, or [`CpuBackend`]). Errors
//! print their message under `{:?}` too, so `fn main() -> steepest::Result<()>` shows it.

#![warn(missing_docs)]

pub mod backend;
pub mod data;
mod error;
pub mod nn;
pub mod optim;
mod tensor_file;
pub mod train;

pub use backend::cpu::{CpuArena, CpuBackend, CpuOptimizer};
pub use backend::gpu::{
    GpuArena, GpuBackend, GpuBuffer, GpuContext, GpuCounters, GpuIndices, GpuMatrix, GpuOptimizer,
    GpuOptions, KernelTime,
};
pub use backend::{
    Activation, Arena, Backend, LinearLink, LossShare, Matmul, MatmulDims, Matrix, Nonlinearity,
};
pub use data::{Dataset, Standardizer};
pub use error::{Error, Result};
/// The ndarray version this crate's host arrays are, so applications need not match it.
pub use ndarray;
pub use nn::{Init, Layer, Linear, Loss, Mlp, MlpSpec, Model, Predictor, Sequential};
pub use optim::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Asgd, Clip, LrSchedule, NAdam, OptimizerConfig,
    OptimizerState, ParamGroup, RAdam, ReduceLrOnPlateau, RmsProp, Rprop, Sgd, Swa, UpdateStats,
};
pub use train::{
    BatchOrder, EpochRecord, Evaluation, History, Lbfgs, LineSearch, LrFinder, LrFinderResult,
    Session, StepRecord, StopReason, Trainer, Watched,
};
/// The wgpu version this crate is built on, for applications that bring their own kernels.
pub use wgpu;

/// Compiles the README's snippets as doctests, so the quick start cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
