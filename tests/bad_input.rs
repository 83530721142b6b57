//! The bad-input table: every kind of bad input at the public entry points gets its own typed
//! error, and leaves parameters and optimizer state exactly as they were. (Settings, other contexts
//! and inputs that used to panic are in `bad_settings.rs`; corrupted, truncated and foreign
//! checkpoints in `checkpoints.rs`.)

mod common;

use common::bad::{blobs, cross_entropy, fit_error, spec};
use common::gpu;
use ndarray::{Array2, array};
use steepest::{
    Activation, Adam, Backend, CpuBackend, Dataset, Error, GpuBuffer, GpuOptimizer, Init, Loss,
    LossShare, Matmul, Mlp, MlpSpec, Sgd, Trainer, data,
};

#[test]
fn mismatched_matmul_shapes() {
    let g = gpu();
    let a = g.upload(Array2::<f32>::ones((3, 4)).view()).unwrap();
    let b = g.upload(Array2::<f32>::ones((5, 2)).view()).unwrap();
    let mut out = g.zeros(3, 2).unwrap();
    g.fill(&mut out, 7.0).unwrap();
    let err = g
        .matmul_into(Matmul::nn(), &a, &b, None, &mut out)
        .unwrap_err();
    assert!(matches!(err, Error::Shape { op: "matmul", .. }), "{err}");
    assert!(
        err.to_string().contains("3×4") && err.to_string().contains("5×2"),
        "{err}"
    );
    assert!(
        g.download(&out).unwrap().iter().all(|&v| v == 7.0),
        "the output was written"
    );
    let cpu_err = CpuBackend
        .matmul_into(
            Matmul::nn(),
            &Array2::ones((3, 4)),
            &Array2::ones((5, 2)),
            None,
            &mut Array2::zeros((3, 2)),
        )
        .unwrap_err();
    assert_eq!(
        cpu_err.to_string(),
        err.to_string(),
        "both backends fail alike"
    );
}

#[test]
fn mismatched_loss_shapes() {
    let g = gpu();
    let logits = g.upload(Array2::<f32>::zeros((4, 3)).view()).unwrap();
    let targets = g.upload(Array2::<f32>::zeros((4, 3)).view()).unwrap(); // CE wants 4×1
    let mut totals = g.zeros(1, 4).unwrap();
    let err = g
        .loss_into(
            Loss::SoftmaxCrossEntropy,
            &logits,
            &targets,
            None,
            LossShare::whole(4),
            None,
            &mut totals,
            0,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Shape { op: "loss", .. }), "{err}");
}

#[test]
fn mismatched_optimizer_lengths() {
    let ctx = gpu().context();
    let mut params = GpuBuffer::from_slice(ctx, "params", &[1.0f32; 10]).unwrap();
    let grads = GpuBuffer::from_slice(ctx, "grads", &[1.0f32; 9]).unwrap();
    let mut adam = GpuOptimizer::new(ctx, Adam::default(), 10).unwrap();
    let state = adam.state().unwrap();
    let err = adam.step(&mut params, &grads).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Length {
                expected: 10,
                actual: 9,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(params.read(ctx).unwrap(), vec![1.0; 10]);
    assert_eq!(adam.state().unwrap(), state);
}

#[test]
fn mismatched_model_inputs() {
    let g = gpu();
    let model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    let x = g.upload(Array2::<f32>::zeros((5, 3)).view()).unwrap();
    assert!(matches!(model.forward(g, &x), Err(Error::Shape { .. })));
    let three_features = Dataset::classification(Array2::zeros((10, 3)), &[0; 10], 3).unwrap();
    assert!(matches!(
        fit_error(cross_entropy(), &three_features),
        Error::Data { .. }
    ));
}

#[test]
fn mismatched_state_dict() {
    let g = gpu();
    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    let before = model.parameters_flat(g).unwrap();
    let mut state = model.state_dict(g).unwrap();
    state[1].1 = ndarray::ArrayD::zeros(ndarray::IxDyn(&[5]));
    assert!(matches!(
        model.load_state_dict(g, &state),
        Err(Error::Shape { .. })
    ));
    assert_eq!(model.parameters_flat(g).unwrap(), before);
}

#[test]
fn non_finite_parameters() {
    let g = gpu();
    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    let before = model.parameters_flat(g).unwrap();
    let mut values = before.clone();
    values[3] = f32::INFINITY;
    let err = model.set_parameters_flat(g, &values).unwrap_err();
    assert!(matches!(err, Error::Data { .. }), "{err}");
    assert!(err.to_string().contains("values[3] is inf"), "{err}");
    let mut state = model.state_dict(g).unwrap();
    state[1].1[[2]] = f32::NAN;
    let err = model.load_state_dict(g, &state).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("tensor {} holds NaN at index 2", state[1].0)),
        "{err}"
    );
    assert_eq!(model.parameters_flat(g).unwrap(), before);
}

#[test]
fn empty_dataset() {
    assert!(matches!(
        Dataset::classification(Array2::zeros((0, 2)), &[], 3),
        Err(Error::Data { .. })
    ));
    assert!(matches!(data::spirals(0, 0.1, 1), Err(Error::Data { .. })));
}

#[test]
fn batch_size_zero() {
    let err = fit_error(cross_entropy().batch_size(0), &blobs());
    assert!(
        matches!(err, Error::Data { .. }) && err.to_string().contains("batch size 0"),
        "{err}"
    );
}

#[test]
fn batch_larger_than_the_data() {
    let err = fit_error(cross_entropy().batch_size(31), &blobs());
    assert!(
        matches!(err, Error::Data { .. }) && err.to_string().contains("31"),
        "{err}"
    );
}

#[test]
fn class_labels_out_of_range() {
    let err = Dataset::classification(Array2::zeros((3, 2)), &[0, 1, 5], 3).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Label {
                row: 2,
                classes: 3,
                ..
            }
        ),
        "{err}"
    );
    // Labels for more classes than the model predicts.
    let four = data::blobs(
        20,
        &[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]],
        0.1,
        1,
    )
    .unwrap();
    assert!(matches!(
        fit_error(cross_entropy(), &four),
        Error::Data { .. }
    ));
}

#[test]
fn nan_or_inf_in_inputs_or_targets() {
    let err = Dataset::regression(array![[1.0, f32::NAN]], array![[0.0]]).unwrap_err();
    assert!(err.to_string().contains("x[0, 1] is NaN"), "{err}");
    let err = Dataset::regression(array![[1.0, 2.0]], array![[f32::NEG_INFINITY]]).unwrap_err();
    assert!(err.to_string().contains("y[0, 0] is -inf"), "{err}");
    assert!(matches!(
        Dataset::classification(array![[f32::INFINITY, 0.0]], &[0], 2),
        Err(Error::Data { .. })
    ));
}

#[test]
fn invalid_hyperparameters() {
    let ctx = gpu().context();
    let configs: [steepest::OptimizerConfig; 4] = [
        Adam::default().lr(-1.0).into(),
        Adam::default().betas(1.0, 0.999).into(),
        Adam::default().eps(0.0).into(),
        Sgd::default().nesterov(true).into(),
    ];
    for config in configs {
        let err = GpuOptimizer::new(ctx, config, 4).unwrap_err();
        assert!(matches!(err, Error::InvalidHyperparameter { .. }), "{err}");
        let err = fit_error(
            Trainer::new(config, Loss::SoftmaxCrossEntropy).batch_size(8),
            &blobs(),
        );
        assert!(matches!(err, Error::InvalidHyperparameter { .. }), "{err}");
    }
}

#[test]
fn buffers_over_the_device_limits() {
    let g = gpu();
    let limit = g.context().limits().max_buffer_size;
    let too_many = (limit / 4 + 1) as usize;
    let err = GpuBuffer::<f32>::zeros(g.context(), "huge", too_many).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BufferTooLarge {
                limit_name: "max_buffer_size",
                ..
            }
        ),
        "{err}"
    );
    // A layer whose weight alone is over the limit fails when the model is built.
    let side = ((limit / 4) as f64).sqrt() as usize + 2;
    let spec = MlpSpec::new(side).layer(side, Activation::Identity);
    assert!(matches!(
        Mlp::new(g, &spec, Init::default(), 1),
        Err(Error::BufferTooLarge { .. })
    ));
}

/// A batch whose matrices one GPU binding cannot hold is refused before the step, with the
/// batch size that fits, and the parameters stay as they were; a predictor's too.
#[test]
fn a_batch_over_one_binding_is_refused_with_the_size_that_fits() {
    let g = gpu();
    let width = 64;
    let fits = g.max_matrix_elements() / width;
    let rows = fits + 1;
    let x = Array2::from_shape_fn((rows, 2), |(i, j)| ((i + j) % 7) as f32);
    let labels: Vec<usize> = (0..rows).map(|i| i % 2).collect();
    let data = Dataset::classification(x, &labels, 2).unwrap();
    let spec = MlpSpec::new(2)
        .layer(width, Activation::Relu)
        .layer(2, Activation::Identity);
    let mut model = Mlp::new(g, &spec, Init::default(), 1).unwrap();
    let before = model.parameters_flat(g).unwrap();
    let err = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy)
        .full_batch()
        .fit(g, &mut model, &data, None)
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Shape { op: "batch", .. }), "{message}");
    assert!(
        message.contains(&format!("{rows}×{width} matrix for layer 0's outputs"))
            && message.contains(&format!("at most {fits} rows")),
        "{message}"
    );
    assert_eq!(model.parameters_flat(g).unwrap(), before);
    let mut predictor = model.predictor(rows).unwrap();
    let err = predictor.predict(g, &model, data.x().view()).unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
    // The model's own batching fits itself under the limit.
    assert_eq!(model.predict(g, data.x().view()).unwrap().dim(), (rows, 2));
}
