//! Models: the [`Layer`] seam, the layers, the [`Sequential`] model built from them, the
//! [`Mlp`] builder, losses and initialisation, written once against [`Backend`].
//!
//! [`Backend`]: crate::Backend

mod batch_norm;
mod dropout;
mod elementwise;
mod embedding;
mod glu;
mod init;
mod layer;
mod layer_norm;
mod linear;
mod mlp;
mod model;
mod model_file;
mod passes;
mod predict;
mod residual;
mod rms_norm;
mod sequential;
mod state;
mod summary;

pub use crate::backend::Loss;
pub use batch_norm::BatchNorm;
pub use dropout::Dropout;
pub use elementwise::Elementwise;
pub use embedding::Embedding;
pub use glu::Glu;
pub use init::Init;
pub(crate) use init::{seeded, standard_normal};
pub use layer::{Backward, BufferUpdate, Forward, InputGrad, Layer, Mode, ParamSpec};
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mlp::{Mlp, MlpSpec};
pub use model::Model;
pub(crate) use model_file::{
    parameter_tensors, parameter_values, prefixed_tensors, prefixed_values,
};
pub(crate) use passes::{Activations, Workspace};
pub use predict::Predictor;
pub use residual::Residual;
pub use rms_norm::RmsNorm;
pub use sequential::Sequential;
pub(crate) use sequential::{wrong_buffers, wrong_tensors};
