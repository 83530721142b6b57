//! The run the checkpoint tests save and load: a model, data and trainer, and a scratch
//! directory per test.

use std::path::PathBuf;

use steepest::{Activation, Adam, Dataset, Loss, MlpSpec, Trainer, data};

/// A fresh directory for one test's files.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("steepest-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn spec() -> MlpSpec {
    MlpSpec::new(2)
        .layer(12, Activation::Tanh)
        .layer(3, Activation::Identity)
}

pub fn blobs() -> Dataset {
    data::blobs(100, &[[1.0, 1.0], [-1.0, 0.0], [0.5, -1.0]], 0.5, 5).unwrap()
}

pub fn trainer() -> Trainer {
    Trainer::new(Adam::default().lr(0.02), Loss::SoftmaxCrossEntropy)
        .batch_size(16)
        .seed(3)
}
