//! The model, data and trainer the bad-input tables run, and `fit_error`, which also checks
//! that a refused fit moved no parameter.

use steepest::{Activation, Adam, Dataset, Error, Init, Loss, Mlp, MlpSpec, Trainer, data};

use super::gpu;

pub fn spec() -> MlpSpec {
    MlpSpec::new(2)
        .layer(4, Activation::Relu)
        .layer(3, Activation::Identity)
}

pub fn blobs() -> Dataset {
    data::blobs(30, &[[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], 0.3, 1).unwrap()
}

/// Runs `fit` with `trainer` on `data` on the GPU and returns its error, asserting that the
/// parameters did not move.
pub fn fit_error(trainer: Trainer, data: &Dataset) -> Error {
    let g = gpu();
    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    let before = model.parameters_flat(g).unwrap();
    let err = trainer.fit(g, &mut model, data, None).unwrap_err();
    assert_eq!(
        model.parameters_flat(g).unwrap(),
        before,
        "{err}: parameters changed"
    );
    err
}

pub fn cross_entropy() -> Trainer {
    Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy).batch_size(8)
}
