//! `Model`: what the trainer, the session, the searches and checkpoints train.

use super::{Mlp, Sequential};
use crate::backend::Backend;

/// A model the training stack can train: a [`Sequential`] model, or a type built on one
/// ([`Mlp`], or your own wrapper that keeps more beside it).
pub trait Model<B: Backend> {
    /// The layers and parameters.
    fn network(&self) -> &Sequential<B>;

    /// The layers and parameters, writable.
    fn network_mut(&mut self) -> &mut Sequential<B>;

    /// The architecture in one line, stored in checkpoints and model files so that a file
    /// from another model is refused by name.
    fn architecture(&self) -> String {
        self.network().architecture()
    }
}

impl<B: Backend> Model<B> for Sequential<B> {
    fn network(&self) -> &Sequential<B> {
        self
    }

    fn network_mut(&mut self) -> &mut Sequential<B> {
        self
    }
}

impl<B: Backend> Model<B> for Mlp<B> {
    fn network(&self) -> &Sequential<B> {
        self
    }

    fn network_mut(&mut self) -> &mut Sequential<B> {
        self
    }

    /// `inputs-outputs:activation-…` (`2-64:relu-2:identity`), the line steepest has always
    /// written for an MLP, so older files still load.
    fn architecture(&self) -> String {
        self.spec().architecture()
    }
}
