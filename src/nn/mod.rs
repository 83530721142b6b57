//! Layers, losses, initialisation and the `Mlp` model, written once against [`Backend`].
//!
//! [`Backend`]: crate::Backend

mod init;
mod loss;
mod mlp;
mod predict;

pub use init::Init;
pub(crate) use init::{seeded, standard_normal};
pub use loss::Loss;
pub(crate) use mlp::Workspace;
pub use mlp::{Linear, Mlp, MlpSpec};
