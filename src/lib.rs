//! # steepest
//!
//! Gradient-descent training on any GPU that [wgpu] reaches (Vulkan, Metal, DX12), with a CPU
//! reference backend on [ndarray] that computes the same thing and is the oracle for every GPU
//! kernel.
//!
//! Both backends implement [`Backend`]: the few kernel-granularity ops a model needs. Pick one
//! and run the same code on it:
//!
//! ```no_run
//! use ndarray::array;
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
//! the fix (a Vulkan driver such as Mesa's `mesa-vulkan-drivers`, or [`CpuBackend`]).

#![warn(missing_docs)]

pub mod backend;
pub mod data;
mod error;
pub mod nn;
pub mod optim;
pub mod train;

pub use backend::cpu::{CpuArena, CpuBackend, CpuOptimizer};
pub use backend::gpu::{
    GpuArena, GpuBackend, GpuBuffer, GpuContext, GpuCounters, GpuIndices, GpuMatrix, GpuOptimizer,
    GpuOptions,
};
pub use backend::{Activation, Arena, Backend, Matmul, MatmulDims, Matrix};
pub use data::{Dataset, Standardizer};
pub use error::{Error, Result};
pub use nn::{Init, Linear, Loss, Mlp, MlpSpec};
pub use optim::{
    Adagrad, Adam, AdamW, Clip, LrSchedule, OptimizerConfig, OptimizerState, RmsProp, Sgd,
    UpdateStats,
};
pub use train::{
    EpochRecord, History, LineSearch, LrFinder, LrFinderResult, Session, StepRecord, StopReason,
    Trainer,
};
/// The wgpu version this crate is built on, for applications that bring their own kernels.
pub use wgpu;

/// Compiles the README's snippets as doctests, so the quick start cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
