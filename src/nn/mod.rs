//! Models: the [`Layer`] seam, the layers, the [`Sequential`] model built from them, the
//! [`Mlp`] builder, losses and initialisation, written once against [`Backend`].
//!
//! [`Backend`]: crate::Backend

mod elementwise;
mod init;
mod layer;
mod linear;
mod loss;
mod mlp;
mod model;
mod predict;
mod sequential;
mod state;

pub use elementwise::Elementwise;
pub use init::Init;
pub(crate) use init::{seeded, standard_normal};
pub use layer::{Backward, Forward, InputGrad, Layer, Mode, ParamSpec};
pub use linear::Linear;
pub use loss::Loss;
pub use mlp::{Mlp, MlpSpec};
pub use model::Model;
pub use sequential::Sequential;
pub(crate) use sequential::{Activations, Workspace, layer_params_error};
