//! Whole training runs against PyTorch's training loop: `tests/fixtures/torch_optim.py`
//! trained two small models (layers, loss, batches of 8 in order, optimizer, clipping, a
//! schedule stepped per update), each also with parameter groups and with frozen parameters,
//! and committed their starting and final parameters and each step's loss; both backends must
//! end where PyTorch ended.

mod common;

use common::gpu;
use common::torch_fixture::fixture;
use ndarray::{Array2, ArrayD};
use steepest::nn::{BatchNorm, Elementwise, Layer, Residual, Sequential};
use steepest::optim::Anneal;
use steepest::{
    Adam, AdamW, Backend, BatchOrder, Clip, CpuBackend, Dataset, Init, Lbfgs, Linear, Loss,
    LrSchedule, Nonlinearity, OptimizerConfig, ParamGroup, Rprop, Sgd, Swa, Trainer,
};

/// How far a training run's batch losses and final parameters may be from PyTorch's,
/// relative to 1 + |value|: its products sum in another order than ours (a few ulps of each
/// output), and fifteen steps carry that into the parameters. Measured with torch 2.15: at
/// most 1.7e-7 on the CPU and on lavapipe. A wrong loss scale, gradient, clipping norm or
/// rate is off by 1e-3 or more after one step.
const TRAINED_TOLERANCE: f64 = 2e-6;

/// `torch_optim.py`'s training case `name` on `backend`: its model, loss and data, trained as
/// `trainer` (batches of 8 in order, 3 epochs); checks every step's batch loss and the final
/// parameters against PyTorch's.
fn check_training<B: Backend>(
    backend: &B,
    backend_name: &str,
    name: &str,
    layers: Vec<Box<dyn Layer<B>>>,
    loss: Loss,
    trainer: impl FnOnce(Trainer) -> Trainer,
    optimizer: impl Into<OptimizerConfig>,
) {
    let matrix = |key: &str| {
        let (values, shape) = fixture(&format!("train.{name}.{key}"));
        Array2::from_shape_vec(
            (shape[0], shape[1]),
            values.iter().map(|&v| v as f32).collect(),
        )
        .unwrap()
    };
    let (x, t) = (matrix("x"), matrix("t"));
    let data = if loss.is_regression() {
        Dataset::regression(x, t).unwrap()
    } else {
        let labels: Vec<usize> = t.iter().map(|&l| l as usize).collect();
        Dataset::classification(x, &labels, 3).unwrap()
    };
    let mut model = Sequential::new(backend, layers, Init::default(), 9).unwrap();
    let tensors = |stage: &str, model: &Sequential<B>| -> Vec<(String, ArrayD<f64>)> {
        model
            .parameter_specs()
            .iter()
            .map(|p| {
                let (values, _) = fixture(&format!("train.{name}.{stage}.{}", p.name));
                let array = ArrayD::from_shape_vec(p.torch_shape.clone(), values).unwrap();
                (p.name.clone(), array)
            })
            .collect()
    };
    let init: Vec<(String, ArrayD<f32>)> = tensors("init", &model)
        .into_iter()
        .map(|(n, a)| (n, a.mapv(|v| v as f32)))
        .collect();
    model.load_state_dict(backend, &init).unwrap();
    let trainer = trainer(
        Trainer::new(optimizer, loss)
            .batch_size(8)
            .epochs(3)
            .batch_order(BatchOrder::InOrder)
            .log_every(1),
    );
    let history = trainer.fit(backend, &mut model, &data, None).unwrap();

    let close = |a: f64, e: f64| (a - e).abs() / (1.0 + e.abs());
    let (losses, _) = fixture(&format!("train.{name}.loss"));
    assert_eq!(history.steps.len(), losses.len(), "{name}: steps logged");
    let mut worst = 0.0f64;
    for (record, &want) in history.steps.iter().zip(&losses) {
        let err = close(record.loss, want);
        worst = worst.max(err);
        assert!(
            err <= TRAINED_TOLERANCE,
            "{name} on {backend_name}: step {}'s loss {}, PyTorch's {want}",
            record.step,
            record.loss
        );
    }
    let trained = model.state_dict(backend).unwrap();
    let finals = tensors("final", &model);
    for (((got_name, got), (want_name, want)), (_, start)) in trained.iter().zip(finals).zip(&init)
    {
        assert_eq!(*got_name, want_name);
        // A tensor PyTorch left as it was (frozen) must be left bit for bit.
        if want.iter().zip(start).all(|(&e, &s)| e == f64::from(s)) {
            assert_eq!(
                got, start,
                "{name} on {backend_name}: frozen {got_name} moved"
            );
        }
        for (&a, &e) in got.iter().zip(want.iter()) {
            let err = close(f64::from(a), e);
            worst = worst.max(err);
            assert!(
                err <= TRAINED_TOLERANCE,
                "{name} on {backend_name}: {got_name} trained to {a}, PyTorch's to {e}"
            );
        }
    }
    eprintln!("{name} on {backend_name}: worst relative difference {worst:.2e}");
}

fn classifier<B: Backend>() -> Vec<Box<dyn Layer<B>>> {
    vec![
        Box::new(Linear::new(4, 16)),
        Box::new(Elementwise::new(16, Nonlinearity::Tanh)),
        Box::new(Linear::new(16, 16)),
        Box::new(Elementwise::new(16, Nonlinearity::Relu)),
        Box::new(Linear::new(16, 3)),
    ]
}

fn bn_classifier<B: Backend>() -> Vec<Box<dyn Layer<B>>> {
    vec![
        Box::new(Linear::new(4, 16)),
        Box::new(Elementwise::new(16, Nonlinearity::Tanh)),
        Box::new(BatchNorm::new(16)),
        Box::new(Linear::new(16, 3)),
    ]
}

/// The classifier's first layers, then a residual block holding a batch norm (the names
/// PyTorch's `block` gives: `2.block.0.running_mean`, `2.block.3.weight`), then its last.
fn residual_bn_classifier<B: Backend>() -> Vec<Box<dyn Layer<B>>> {
    let block: Vec<Box<dyn Layer<B>>> = vec![
        Box::new(BatchNorm::new(16)),
        Box::new(Linear::new(16, 16)),
        Box::new(Elementwise::new(16, Nonlinearity::Relu)),
        Box::new(Linear::new(16, 16)),
    ];
    vec![
        Box::new(Linear::new(4, 16)),
        Box::new(Elementwise::new(16, Nonlinearity::Tanh)),
        Box::new(Residual::new(block).unwrap()),
        Box::new(Linear::new(16, 3)),
    ]
}

fn regression<B: Backend>() -> Vec<Box<dyn Layer<B>>> {
    vec![
        Box::new(Linear::new(4, 12)),
        Box::new(Elementwise::new(12, Nonlinearity::Sigmoid)),
        Box::new(Linear::new(12, 2)),
    ]
}

fn classifier_trainer(t: Trainer) -> Trainer {
    t.schedule(LrSchedule::cosine(14, 0.001)).clip(Clip {
        max_norm: Some(0.4),
        max_value: None,
    })
}

fn nesterov() -> Sgd {
    Sgd::default()
        .lr(0.2)
        .momentum(0.9)
        .nesterov(true)
        .weight_decay(0.01)
}

fn train_both_cases_on<B: Backend>(backend: &B, backend_name: &str) {
    check_training(
        backend,
        backend_name,
        "classifier",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        classifier_trainer,
        AdamW::default().lr(0.02).weight_decay(0.01),
    );
    check_training(
        backend,
        backend_name,
        "regression",
        regression(),
        Loss::MeanSquaredError,
        |t| t.schedule(LrSchedule::step(4, 0.5)),
        nesterov(),
    );
}

/// The same runs with parameter groups, as `torch_optim.py` gave PyTorch's optimizers them:
/// AdamW's decoupled decay off for the biases (picked as the 1-D parameters) and the first weight at a quarter of the rate
/// (under a cosine whose η_min holds for every group, clipped over all groups); SGD's L2
/// decay off for the biases and the output layer at half the rate (under StepLR).
fn train_grouped_cases_on<B: Backend>(backend: &B, backend_name: &str) {
    check_training(
        backend,
        backend_name,
        "classifier_groups",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        |t| {
            classifier_trainer(t)
                .param_group(ParamGroup::one_dimensional().weight_decay(0.0))
                .param_group(ParamGroup::matching("0.weight").lr_scale(0.25))
        },
        AdamW::default().lr(0.02).weight_decay(0.1),
    );
    check_training(
        backend,
        backend_name,
        "regression_groups",
        regression(),
        Loss::MeanSquaredError,
        |t| {
            t.schedule(LrSchedule::step(4, 0.5))
                .param_group(ParamGroup::matching("0.bias").weight_decay(0.0))
                .param_group(ParamGroup::matching("2.weight").lr_scale(0.5))
                .param_group(
                    ParamGroup::matching("2.bias")
                        .lr_scale(0.5)
                        .weight_decay(0.0),
                )
        },
        nesterov(),
    );
}

/// The runs with frozen parameters, as `torch_optim.py` froze them (`requires_grad_(False)`,
/// left out of the optimizer and of clipping's norm): the classifier's first layer and its
/// output weight (AdamW, no decay on the biases, clipped), its middle layer (the same), the
/// regression net's first weight (Rprop). A frozen tensor must end bit for bit where it started.
fn train_frozen_cases_on<B: Backend>(backend: &B, backend_name: &str) {
    check_training(
        backend,
        backend_name,
        "classifier_frozen",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        |t| {
            classifier_trainer(t)
                .param_group(ParamGroup::matching("0.*").or_matching("4.weight").frozen())
                .param_group(
                    ParamGroup::matching("2.bias")
                        .or_matching("4.bias")
                        .weight_decay(0.0),
                )
        },
        AdamW::default().lr(0.02).weight_decay(0.1),
    );
    // The middle layer frozen whole, with trained layers below and above it: its backward
    // pass passes the gradient down and computes none of its own (`Backward::trained`).
    check_training(
        backend,
        backend_name,
        "classifier_frozen_middle",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        |t| {
            classifier_trainer(t)
                .param_group(ParamGroup::matching("2.*").frozen())
                .param_group(
                    ParamGroup::matching("0.bias")
                        .or_matching("4.bias")
                        .weight_decay(0.0),
                )
        },
        AdamW::default().lr(0.02).weight_decay(0.1),
    );
    // BitFit: every weight frozen, only the biases trained. Each linear layer computes its
    // bias's gradient and the gradient it passes down, and no weight gradient.
    check_training(
        backend,
        backend_name,
        "classifier_bitfit",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        |t| classifier_trainer(t).param_group(ParamGroup::matching("*.weight").frozen()),
        Adam::default().lr(0.05),
    );
    check_training(
        backend,
        backend_name,
        "regression_frozen",
        regression(),
        Loss::MeanSquaredError,
        |t| t.param_group(ParamGroup::matching("0.weight").frozen()),
        Rprop::default().lr(0.01),
    );
}

/// The runs whose groups set hyperparameters of their own, as `torch_optim.py`'s groups do:
/// Adam's biases with betas (0.8, 0.95) and ε 1e-6 at half the rate (cosine, clipped); Nesterov
/// SGD's output layer with momentum 0.5, dampening 0.1, no Nesterov and no decay (StepLR).
fn train_group_optimizer_cases_on<B: Backend>(backend: &B, backend_name: &str) {
    let adam = Adam::default().lr(0.02).weight_decay(0.01);
    check_training(
        backend,
        backend_name,
        "classifier_group_optimizer",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        |t| {
            classifier_trainer(t).param_group(
                ParamGroup::one_dimensional()
                    .lr_scale(0.5)
                    .optimizer(adam.betas(0.8, 0.95).eps(1e-6)),
            )
        },
        adam,
    );
    check_training(
        backend,
        backend_name,
        "regression_group_optimizer",
        regression(),
        Loss::MeanSquaredError,
        |t| {
            let output = nesterov().momentum(0.5).dampening(0.1).nesterov(false);
            t.schedule(LrSchedule::step(4, 0.5)).param_group(
                ParamGroup::matching("2.*")
                    .optimizer(output)
                    .weight_decay(0.0),
            )
        },
        nesterov(),
    );
}

/// The classifier's run with class weights (`CrossEntropyLoss(weight=[1, 2.5, 0.5])`): each
/// step's loss the batch's weighted mean, the parameters PyTorch's; and over three batches an
/// update, each batch's weighted mean scaled by its share of the update's samples.
fn class_weight_cases_on<B: Backend>(backend: &B, backend_name: &str) {
    let weighted = |t: Trainer| classifier_trainer(t).class_weights(vec![1.0, 2.5, 0.5]);
    check_training(
        backend,
        backend_name,
        "classifier_weighted",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        weighted,
        AdamW::default().lr(0.02).weight_decay(0.01),
    );
    check_training(
        backend,
        backend_name,
        "classifier_weighted_accumulated",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        |t| weighted(t).accumulate_grad_batches(3),
        AdamW::default().lr(0.02).weight_decay(0.01),
    );
}

#[test]
fn class_weights_train_as_pytorchs_on_the_cpu() {
    class_weight_cases_on(&CpuBackend, "the CPU");
}

#[test]
fn class_weights_train_as_pytorchs_on_the_gpu() {
    class_weight_cases_on(gpu(), "the GPU");
}

/// The runs whose updates each sum several batches' gradients, as PyTorch's accumulation loop
/// does (each batch's loss scaled by its share of the update's samples): the classifier's
/// settings over three batches an update, the regression net's over two.
fn train_accumulated_cases_on<B: Backend>(backend: &B, backend_name: &str) {
    check_training(
        backend,
        backend_name,
        "classifier_accumulated",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        |t| classifier_trainer(t).accumulate_grad_batches(3),
        AdamW::default().lr(0.02).weight_decay(0.01),
    );
    check_training(
        backend,
        backend_name,
        "regression_accumulated",
        regression(),
        Loss::MeanSquaredError,
        |t| {
            t.schedule(LrSchedule::step(4, 0.5))
                .accumulate_grad_batches(2)
        },
        nesterov(),
    );
}

/// The classifier's run with a moving average of its parameters (PyTorch's `AveragedModel`
/// with `get_ema_multi_avg_fn(0.9)`, updated after every step): the steps' losses are the
/// trained parameters', and the run ends with the average, PyTorch's final average.
fn train_averaged_case_on<B: Backend>(backend: &B, backend_name: &str) {
    check_training(
        backend,
        backend_name,
        "classifier_ema",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        |t| classifier_trainer(t).ema(0.9),
        AdamW::default().lr(0.02).weight_decay(0.01),
    );
}

/// Stochastic weight averaging as PyTorch's `swa_utils` loop runs it (`AveragedModel` updated
/// and `SWALR` stepped after each epoch from the start, the schedule stepped per update
/// before): the classifier's run from the end of epoch 1, annealed along a cosine over 2
/// epochs; the regression net's from the end of epoch 2, along a line over 3. The steps'
/// losses follow the annealed rates; the run ends with the average, PyTorch's final one.
fn train_swa_cases_on<B: Backend>(backend: &B, backend_name: &str) {
    check_training(
        backend,
        backend_name,
        "classifier_swa",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        |t| classifier_trainer(t).swa(Swa::new(1, 0.005).anneal_epochs(2)),
        AdamW::default().lr(0.02).weight_decay(0.01),
    );
    check_training(
        backend,
        backend_name,
        "regression_swa",
        regression(),
        Loss::MeanSquaredError,
        |t| {
            let swa = Swa::new(2, 0.02).anneal_epochs(3).anneal(Anneal::Linear);
            t.schedule(LrSchedule::step(4, 0.5)).swa(swa)
        },
        nesterov(),
    );
}

/// How far an L-BFGS run may end from PyTorch's, relative to 1 + |value|: each direction is
/// built from dot products summed in another order than PyTorch's, and a quasi-Newton method
/// carries that further than first-order steps do (PyTorch's own runs of these cases end
/// within 6e-7 of the same runs in float64). A missed pair, a wrong step length or a line
/// search that takes another branch is off by 1e-3 or more.
const LBFGS_TOLERANCE: f64 = 2e-5;

/// `torch_optim.py`'s L-BFGS case `name` on `backend`: `lbfgs` run over the fixture's 40
/// samples, each step's starting loss and the final parameters against PyTorch's.
fn check_lbfgs<B: Backend>(
    backend: &B,
    backend_name: &str,
    name: &str,
    layers: Vec<Box<dyn Layer<B>>>,
    loss: Loss,
    lbfgs: Lbfgs,
) {
    let matrix = |key: &str| {
        let (values, shape) = fixture(&format!("train.classifier.{key}"));
        Array2::from_shape_vec(
            (shape[0], shape[1]),
            values.iter().map(|&v| v as f32).collect(),
        )
        .unwrap()
    };
    let x = matrix("x");
    let data = match loss.is_regression() {
        true => {
            let (values, shape) = fixture("train.regression.t");
            let t = Array2::from_shape_vec(
                (shape[0], shape[1]),
                values.iter().map(|&v| v as f32).collect(),
            );
            Dataset::regression(x, t.unwrap()).unwrap()
        }
        false => {
            let labels: Vec<usize> = matrix("t").iter().map(|&l| l as usize).collect();
            Dataset::classification(x, &labels, 3).unwrap()
        }
    };
    let mut model = Sequential::new(backend, layers, Init::default(), 9).unwrap();
    let tensors = |stage: &str, model: &Sequential<B>| -> Vec<(String, ArrayD<f64>)> {
        (model.parameter_specs().iter())
            .map(|p| {
                let (values, _) = fixture(&format!("lbfgs.{name}.{stage}.{}", p.name));
                (
                    p.name.clone(),
                    ArrayD::from_shape_vec(p.torch_shape.clone(), values).unwrap(),
                )
            })
            .collect()
    };
    let init: Vec<(String, ArrayD<f32>)> = (tensors("init", &model).into_iter())
        .map(|(n, a)| (n, a.mapv(|v| v as f32)))
        .collect();
    model.load_state_dict(backend, &init).unwrap();
    let history = lbfgs.run(backend, &mut model, &data, loss).unwrap();
    let close = |a: f64, e: f64| (a - e).abs() / (1.0 + e.abs());
    let (losses, _) = fixture(&format!("lbfgs.{name}.loss"));
    assert_eq!(history.epochs.len(), losses.len(), "{name}: steps");
    let mut worst = 0.0f64;
    for (record, &want) in history.epochs.iter().zip(&losses) {
        worst = worst.max(close(record.loss, want));
        assert!(
            close(record.loss, want) <= LBFGS_TOLERANCE,
            "{name} on {backend_name}: step {}'s loss {}, PyTorch's {want}",
            record.epoch,
            record.loss
        );
    }
    let trained = model.state_dict(backend).unwrap();
    for ((got_name, got), (_, want)) in trained.iter().zip(tensors("final", &model)) {
        for (&a, &e) in got.iter().zip(want.iter()) {
            worst = worst.max(close(f64::from(a), e));
            assert!(
                close(f64::from(a), e) <= LBFGS_TOLERANCE,
                "{name} on {backend_name}: {got_name} ended at {a}, PyTorch's at {e}"
            );
        }
    }
    eprintln!("{name} on {backend_name}: worst relative difference {worst:.2e}");
}

/// L-BFGS as `torch.optim.LBFGS` runs it: a fixed step with a short memory, and the
/// strong-Wolfe line search on the regression net and on the classifier (with a batch norm,
/// and with class weights).
fn lbfgs_cases_on<B: Backend>(backend: &B, backend_name: &str) {
    let fixed = Lbfgs::default()
        .lr(0.5)
        .max_iter(6)
        .history_size(3)
        .steps(2);
    check_lbfgs(
        backend,
        backend_name,
        "regression",
        regression(),
        Loss::MeanSquaredError,
        fixed,
    );
    let wolfe = Lbfgs::default().strong_wolfe(true).max_iter(4).steps(2);
    check_lbfgs(
        backend,
        backend_name,
        "regression_wolfe",
        regression(),
        Loss::MeanSquaredError,
        wolfe,
    );
    let wolfe = Lbfgs::default()
        .strong_wolfe(true)
        .history_size(4)
        .max_iter(6)
        .steps(2);
    check_lbfgs(
        backend,
        backend_name,
        "classifier_wolfe",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        wolfe,
    );
    // A batch norm in training mode: every evaluation, the line search's trials among them,
    // moves its running statistics, as each call of PyTorch's closure does.
    let wolfe = Lbfgs::default().strong_wolfe(true).max_iter(4).steps(2);
    check_lbfgs(
        backend,
        backend_name,
        "classifier_bn_wolfe",
        bn_classifier(),
        Loss::SoftmaxCrossEntropy,
        wolfe,
    );
    // Class weights: every evaluation's loss, the line search's trials among them, is the
    // weighted mean (`CrossEntropyLoss(weight=[1, 2.5, 0.5])`).
    let weighted = Lbfgs::default()
        .strong_wolfe(true)
        .history_size(4)
        .max_iter(6)
        .steps(2)
        .class_weights(vec![1.0, 2.5, 0.5]);
    check_lbfgs(
        backend,
        backend_name,
        "classifier_weighted_wolfe",
        classifier(),
        Loss::SoftmaxCrossEntropy,
        weighted,
    );
}

#[test]
fn lbfgs_ends_where_pytorchs_ends_on_the_cpu() {
    lbfgs_cases_on(&CpuBackend, "the CPU");
}

#[test]
fn lbfgs_ends_where_pytorchs_ends_on_the_gpu() {
    lbfgs_cases_on(gpu(), "the GPU");
}

/// The classifier with a batch norm after its first activation (AdamW with decay, clipped,
/// cosine): the steps' losses use each batch's statistics, and the run ends with PyTorch's
/// parameters and running statistics (which the optimizer never moves: no decay reaches them).
fn batch_norm_case_on<B: Backend>(backend: &B, backend_name: &str) {
    check_training(
        backend,
        backend_name,
        "classifier_bn",
        bn_classifier(),
        Loss::SoftmaxCrossEntropy,
        classifier_trainer,
        AdamW::default().lr(0.02).weight_decay(0.01),
    );
    // The batch norm inside a residual block: its running statistics are the block's buffers.
    check_training(
        backend,
        backend_name,
        "classifier_residual_bn",
        residual_bn_classifier(),
        Loss::SoftmaxCrossEntropy,
        classifier_trainer,
        AdamW::default().lr(0.02).weight_decay(0.01),
    );
}

#[test]
fn batch_norm_trains_as_pytorchs_on_the_cpu() {
    batch_norm_case_on(&CpuBackend, "the CPU");
}

#[test]
fn batch_norm_trains_as_pytorchs_on_the_gpu() {
    batch_norm_case_on(gpu(), "the GPU");
}

#[test]
fn weight_averaging_ends_where_pytorchs_ends_on_the_cpu() {
    train_swa_cases_on(&CpuBackend, "the CPU");
}

#[test]
fn weight_averaging_ends_where_pytorchs_ends_on_the_gpu() {
    train_swa_cases_on(gpu(), "the GPU");
}

#[test]
fn a_moving_average_ends_where_pytorchs_ends_on_the_cpu() {
    train_averaged_case_on(&CpuBackend, "the CPU");
}

#[test]
fn a_moving_average_ends_where_pytorchs_ends_on_the_gpu() {
    train_averaged_case_on(gpu(), "the GPU");
}

#[test]
fn accumulated_gradients_train_as_pytorchs_on_the_cpu() {
    train_accumulated_cases_on(&CpuBackend, "the CPU");
}

#[test]
fn accumulated_gradients_train_as_pytorchs_on_the_gpu() {
    train_accumulated_cases_on(gpu(), "the GPU");
}

#[test]
fn training_runs_end_where_pytorchs_end_on_the_cpu() {
    train_both_cases_on(&CpuBackend, "the CPU");
}

#[test]
fn training_runs_end_where_pytorchs_end_on_the_gpu() {
    train_both_cases_on(gpu(), "the GPU");
}

#[test]
fn parameter_groups_train_as_pytorchs_on_the_cpu() {
    train_grouped_cases_on(&CpuBackend, "the CPU");
}

#[test]
fn parameter_groups_train_as_pytorchs_on_the_gpu() {
    train_grouped_cases_on(gpu(), "the GPU");
}

#[test]
fn frozen_parameters_train_as_pytorchs_on_the_cpu() {
    train_frozen_cases_on(&CpuBackend, "the CPU");
}

#[test]
fn frozen_parameters_train_as_pytorchs_on_the_gpu() {
    train_frozen_cases_on(gpu(), "the GPU");
}

#[test]
fn groups_with_hyperparameters_of_their_own_train_as_pytorchs_on_the_cpu() {
    train_group_optimizer_cases_on(&CpuBackend, "the CPU");
}

#[test]
fn groups_with_hyperparameters_of_their_own_train_as_pytorchs_on_the_gpu() {
    train_group_optimizer_cases_on(gpu(), "the GPU");
}
