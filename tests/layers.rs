//! The layers and losses against PyTorch: forward and backward values that
//! `tests/fixtures/torch_reference.py` computed with torch (committed, so the tests need no
//! torch), on both backends; and a model with every kind of layer, whose parameter names,
//! output, loss and gradients must be PyTorch's.

mod common;

use common::{assert_close, gpu};
use ndarray::{Array2, ArrayD};
use steepest::nn::{
    Backward, BatchNorm, BufferUpdate, Dropout, Elementwise, Forward, Glu, Layer, LayerNorm, Mode,
    Residual, RmsNorm, Sequential,
};
use steepest::{
    Arena, Backend, CpuBackend, Dataset, Init, Linear, Loss, LossShare, Nonlinearity, Session, Sgd,
    Trainer,
};

/// The fixture file (written by `torch_reference.py`), compiled in so the test binary runs
/// anywhere (a device machine has no source tree).
const FIXTURES: &[u8] = include_bytes!("fixtures/torch_reference.safetensors");

/// The fixture file's tensors by name; vectors come back as 1 × n rows.
fn fixture(name: &str) -> Array2<f32> {
    let file = safetensors::SafeTensors::deserialize(FIXTURES).unwrap();
    let tensor = file
        .tensor(name)
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    let values: Vec<f32> = tensor
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let shape = match tensor.shape() {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        other => panic!("fixture {name} has shape {other:?}"),
    };
    Array2::from_shape_vec(shape, values).unwrap()
}

/// Whether the fixture file holds `name`.
fn has_fixture(name: &str) -> bool {
    let file = safetensors::SafeTensors::deserialize(FIXTURES).unwrap();
    file.tensor(name).is_ok()
}

fn tol(expected: &Array2<f32>, rel: f32, abs: f32) -> Array2<f32> {
    expected.mapv(|e| rel * e.abs() + abs)
}

/// Runs `layer`'s forward and backward on `backend` with `params`, input `x` and upstream
/// gradient `g`: (output, input gradient, parameter gradients).
fn run_layer<B: Backend>(
    backend: &B,
    layer: &dyn Layer<B>,
    params: &[Array2<f32>],
    x: &Array2<f32>,
    g: &Array2<f32>,
) -> (Array2<f32>, Array2<f32>, Vec<Array2<f32>>) {
    let up = |a: &Array2<f32>| backend.upload(a.view()).unwrap();
    let params: Vec<B::Matrix> = params.iter().map(up).collect();
    let mut grads: Vec<B::Matrix> = params
        .iter()
        .map(|p| {
            let (r, c) = steepest::Matrix::shape(p);
            backend.zeros(r, c).unwrap()
        })
        .collect();
    let rows = x.nrows();
    let mut saved: Vec<B::Matrix> = layer
        .saved_shapes(rows)
        .into_iter()
        .map(|(r, c)| backend.zeros(r, c).unwrap())
        .collect();
    let input = up(x);
    let mut output = backend.zeros(rows, layer.outputs()).unwrap();
    layer
        .forward(
            backend,
            Forward {
                params: &params,
                buffers: &[],
                input: &input,
                output: &mut output,
                saved: &mut saved,
                mode: Mode::Train,
                step: 0,
            },
        )
        .unwrap();
    let grad_output = up(g);
    let mut grad_input = backend.zeros(rows, layer.inputs()).unwrap();
    layer
        .backward(
            backend,
            Backward {
                params: &params,
                buffers: &[],
                input: &input,
                output: &output,
                saved: &mut saved,
                grad_output: &grad_output,
                grad_params: &mut grads,
                trained: &vec![true; params.len()],
                grad_input: Some(steepest::nn::InputGrad {
                    grad: &mut grad_input,
                    activation: steepest::Activation::Identity,
                    below_output: &input,
                }),
            },
        )
        .unwrap();
    let down = |m: &B::Matrix| backend.download(m).unwrap();
    (
        down(&output),
        down(&grad_input),
        grads.iter().map(down).collect(),
    )
}

fn nonlinearities_match_pytorch_on<B: Backend>(backend: &B, name: &str) {
    let (x, g) = (fixture("nl.x"), fixture("nl.g"));
    for (case, function) in [
        ("relu", Nonlinearity::Relu),
        ("leaky_relu_0.01", Nonlinearity::LeakyRelu { slope: 0.01 }),
        ("leaky_relu_0.2", Nonlinearity::LeakyRelu { slope: 0.2 }),
        ("gelu", Nonlinearity::Gelu),
        ("gelu_tanh", Nonlinearity::GeluTanh),
        ("silu", Nonlinearity::Silu),
        ("tanh", Nonlinearity::Tanh),
        ("sigmoid", Nonlinearity::Sigmoid),
        ("elu_1", Nonlinearity::Elu { alpha: 1.0 }),
        ("elu_0.5", Nonlinearity::Elu { alpha: 0.5 }),
        ("selu", Nonlinearity::Selu),
        (
            "softplus",
            Nonlinearity::Softplus {
                beta: 1.0,
                threshold: 20.0,
            },
        ),
        (
            "softplus_2_5",
            Nonlinearity::Softplus {
                beta: 2.0,
                threshold: 5.0,
            },
        ),
        ("mish", Nonlinearity::Mish),
        ("hardswish", Nonlinearity::Hardswish),
        ("relu6", Nonlinearity::Relu6),
        (
            "hardtanh",
            Nonlinearity::Hardtanh {
                min_val: -1.0,
                max_val: 1.0,
            },
        ),
        (
            "hardtanh_-2_0.5",
            Nonlinearity::Hardtanh {
                min_val: -2.0,
                max_val: 0.5,
            },
        ),
        ("hardsigmoid", Nonlinearity::Hardsigmoid),
        ("softsign", Nonlinearity::Softsign),
        ("log_sigmoid", Nonlinearity::LogSigmoid),
        ("celu_1", Nonlinearity::Celu { alpha: 1.0 }),
        ("celu_0.5", Nonlinearity::Celu { alpha: 0.5 }),
    ] {
        let layer = Elementwise::new(x.ncols(), function);
        let (y, dx, _) = run_layer(backend, &layer, &[], &x, &g);
        let (want_y, want_dx) = (
            fixture(&format!("nl.{case}.y")),
            fixture(&format!("nl.{case}.dx")),
        );
        // erf by Abramowitz & Stegun is within 1.5e-7 of torch's; exp differs by ulps.
        assert_close(
            &format!("{name} {case} forward"),
            &y,
            &want_y,
            &tol(&want_y, 2e-6, 1e-6),
        );
        assert_close(
            &format!("{name} {case} backward"),
            &dx,
            &want_dx,
            &tol(&want_dx, 2e-6, 1e-6),
        );
    }
}

/// `BatchNorm1d(5)` against PyTorch: the training pass (the batch's statistics, one column
/// constant), its gradients, the running statistics after it, and the evaluation pass with
/// them on another batch.
fn batch_norm_matches_pytorch_on<B: Backend>(backend: &B, name: &str) {
    let layer = BatchNorm::new(5);
    let up = |a: &Array2<f32>| backend.upload(a.view()).unwrap();
    let params: Vec<B::Matrix> = ["weight", "bias"]
        .map(|k| up(&fixture(&format!("bn.{k}"))))
        .into();
    let mut buffers: Vec<B::Matrix> = ["running_mean", "running_var"]
        .map(|k| up(&fixture(&format!("bn.{k}"))))
        .into();
    let (x, g) = (up(&fixture("bn.x")), up(&fixture("bn.g")));
    let mut saved: Vec<B::Matrix> = Layer::<B>::saved_shapes(&layer, 6)
        .into_iter()
        .map(|(r, c)| backend.zeros(r, c).unwrap())
        .collect();
    let mut y = backend.zeros(6, 5).unwrap();
    let forward = |buffers: &[B::Matrix],
                   input: &B::Matrix,
                   saved: &mut [B::Matrix],
                   out: &mut B::Matrix,
                   mode| {
        layer
            .forward(
                backend,
                Forward {
                    params: &params,
                    buffers,
                    input,
                    output: out,
                    saved,
                    mode,
                    step: 0,
                },
            )
            .unwrap()
    };
    forward(&buffers, &x, &mut saved, &mut y, Mode::Train);
    let mut grads: Vec<B::Matrix> = (0..2).map(|_| backend.zeros(1, 5).unwrap()).collect();
    let mut dx = backend.zeros(6, 5).unwrap();
    layer
        .backward(
            backend,
            Backward {
                params: &params,
                buffers: &buffers,
                input: &x,
                output: &y,
                saved: &mut saved,
                grad_output: &g,
                grad_params: &mut grads,
                trained: &[true, true],
                grad_input: Some(steepest::nn::InputGrad {
                    grad: &mut dx,
                    activation: steepest::Activation::Identity,
                    below_output: &x,
                }),
            },
        )
        .unwrap();
    layer
        .update_buffers(
            backend,
            BufferUpdate {
                buffers: &mut buffers,
                saved: &saved,
                input: &x,
            },
        )
        .unwrap();
    let mut y_eval = backend.zeros(4, 5).unwrap();
    forward(
        &buffers,
        &up(&fixture("bn.eval_x")),
        &mut saved,
        &mut y_eval,
        Mode::Eval,
    );
    let down = |m: &B::Matrix| backend.download(m).unwrap();
    for (what, got, want, abs) in [
        ("y", down(&y), fixture("bn.y"), 2e-6),
        ("dx", down(&dx), fixture("bn.dx"), 2e-6),
        ("dweight", down(&grads[0]), fixture("bn.dweight"), 2e-6),
        ("dbias", down(&grads[1]), fixture("bn.dbias"), 2e-6),
        (
            "running mean",
            down(&buffers[0]),
            fixture("bn.running_mean_after"),
            1e-6,
        ),
        (
            "running var",
            down(&buffers[1]),
            fixture("bn.running_var_after"),
            1e-6,
        ),
        ("evaluation y", down(&y_eval), fixture("bn.eval_y"), 2e-6),
    ] {
        assert_close(
            &format!("{name} batch norm {what}"),
            &got,
            &want,
            &tol(&want, 1e-5, abs),
        );
    }
}

#[test]
fn batch_norm_matches_pytorch() {
    batch_norm_matches_pytorch_on(&CpuBackend, "cpu");
    batch_norm_matches_pytorch_on(gpu(), "gpu");
}

/// An embedding of column 1 of 3 (`torch.cat([x[:, [0, 2]], emb(x[:, 1].long())], 1)`): the
/// lookup, the table's gradient summed over repeated indices (a row no index names gets 0),
/// and the input's gradient (the index column's 0, as PyTorch gives a `long` none); with a
/// padding row, its zeros and no gradient.
#[test]
fn embedding_matches_pytorch() {
    let layer = steepest::nn::Embedding::new(5, 4).column(1, 3);
    let (x, g, weight) = (fixture("emb.x"), fixture("emb.g"), fixture("emb.weight"));
    for name in ["cpu", "gpu"] {
        let (y, dx, grads) = match name {
            "cpu" => run_layer(&CpuBackend, &layer, std::slice::from_ref(&weight), &x, &g),
            _ => run_layer(gpu(), &layer, std::slice::from_ref(&weight), &x, &g),
        };
        // A lookup, a copy and sums of up to three terms in PyTorch's order: exact.
        assert_eq!(y, fixture("emb.y"), "{name} embedding y");
        assert_eq!(dx, fixture("emb.dx"), "{name} embedding dx");
        assert_eq!(grads[0], fixture("emb.dweight"), "{name} embedding dweight");
    }
    // With padding_idx=3: the row starts at zeros and, named three times, gets no gradient.
    let padded = layer.padding_idx(3);
    let drawn = Layer::<CpuBackend>::initial_values(&padded, Init::default(), &mut common::rng(1));
    assert!(drawn[12..16].iter().all(|&v| v == 0.0), "{drawn:?}");
    assert!(drawn[..12].iter().all(|&v| v != 0.0), "{drawn:?}");
    let weight = fixture("emb_pad.weight");
    for name in ["cpu", "gpu"] {
        let (y, _, grads) = match name {
            "cpu" => run_layer(&CpuBackend, &padded, std::slice::from_ref(&weight), &x, &g),
            _ => run_layer(gpu(), &padded, std::slice::from_ref(&weight), &x, &g),
        };
        assert_eq!(y, fixture("emb_pad.y"), "{name} padded embedding y");
        assert_eq!(
            grads[0],
            fixture("emb_pad.dweight"),
            "{name} padded embedding dweight"
        );
    }
}

#[test]
fn nonlinearities_match_pytorch() {
    nonlinearities_match_pytorch_on(&CpuBackend, "cpu");
    nonlinearities_match_pytorch_on(gpu(), "gpu");
}

/// `layer` (with a weight and a bias) on fixture case `case`: output, input gradient and both
/// parameter gradients against PyTorch's, within `abs` plus 1e-5 relative.
fn affine_layer_matches_pytorch<B: Backend>(
    backend: &B,
    name: &str,
    case: &str,
    layer: &dyn Layer<B>,
    abs: f32,
) {
    let f = |k: &str| fixture(&format!("{case}.{k}"));
    let (y, dx, grads) = run_layer(backend, layer, &[f("weight"), f("bias")], &f("x"), &f("g"));
    for (what, got, want) in [
        ("y", &y, f("y")),
        ("dx", &dx, f("dx")),
        ("dweight", &grads[0], f("dweight")),
        ("dbias", &grads[1], f("dbias")),
    ] {
        assert_close(
            &format!("{name} {case} {what}"),
            got,
            &want,
            &tol(&want, 1e-5, abs),
        );
    }
}

fn linear_and_layer_norm_match_pytorch_on<B: Backend>(backend: &B, name: &str) {
    affine_layer_matches_pytorch(backend, name, "linear", &Linear::new(3, 4), 1e-6);
    affine_layer_matches_pytorch(backend, name, "layer_norm", &LayerNorm::new(6), 2e-6);
}

#[test]
fn linear_and_layer_norm_match_pytorch() {
    linear_and_layer_norm_match_pytorch_on(&CpuBackend, "cpu");
    linear_and_layer_norm_match_pytorch_on(gpu(), "gpu");
}

/// `nn.RMSNorm(6)` at PyTorch's default eps and at 1e-5, a constant row and a row of zeros
/// among its five: output, input gradient and gain gradient.
fn rms_norm_matches_pytorch_on<B: Backend>(backend: &B, name: &str) {
    let f = |k: &str| fixture(&format!("rms_norm.{k}"));
    let default = RmsNorm::new(6);
    assert_eq!(default.eps, f32::EPSILON);
    let with_eps = RmsNorm {
        eps: 1e-5,
        ..default
    };
    for (case, layer) in [("default", default), ("1e-5", with_eps)] {
        let (y, dx, grads) = run_layer(backend, &layer, &[f("weight")], &f("x"), &f("g"));
        for (what, got, want) in [
            ("y", &y, f(&format!("{case}.y"))),
            ("dx", &dx, f(&format!("{case}.dx"))),
            ("dweight", &grads[0], f(&format!("{case}.dweight"))),
        ] {
            // The zero row's gradient is 1/√eps ≈ 2 900 times h at the default eps.
            assert_close(
                &format!("{name} rms_norm {case} {what}"),
                got,
                &want,
                &tol(&want, 1e-5, 2e-6),
            );
        }
    }
}

/// `nn.GLU()` on 4 rows of two 5-wide halves, gates saturated at ±30 among them: output and
/// input gradient.
fn glu_matches_pytorch_on<B: Backend>(backend: &B, name: &str) {
    let f = |k: &str| fixture(&format!("glu.{k}"));
    let (y, dx, _) = run_layer(backend, &Glu::new(10), &[], &f("x"), &f("g"));
    for (what, got, want) in [("y", &y, f("y")), ("dx", &dx, f("dx"))] {
        let within = tol(&want, 1e-6, 1e-7);
        assert_close(&format!("{name} glu {what}"), got, &want, &within);
    }
}

#[test]
fn glu_matches_pytorch() {
    glu_matches_pytorch_on(&CpuBackend, "cpu");
    glu_matches_pytorch_on(gpu(), "gpu");
}

#[test]
fn rms_norm_matches_pytorch() {
    rms_norm_matches_pytorch_on(&CpuBackend, "cpu");
    rms_norm_matches_pytorch_on(gpu(), "gpu");
}

/// `cases` of the fixture's losses under `prefix` (its logits `{prefix}.x`, targets
/// `{prefix}.t`, class weights `{prefix}.w` where it has them, and each case's value and
/// gradient) on `backend`, against PyTorch's.
fn losses_match_pytorch_on<B: Backend>(
    backend: &B,
    name: &str,
    prefix: &str,
    cases: &[(&str, Loss)],
) {
    let (x, t) = (
        fixture(&format!("{prefix}.x")),
        fixture(&format!("{prefix}.t")),
    );
    let (logits, targets) = (
        backend.upload(x.view()).unwrap(),
        backend.upload(t.view()).unwrap(),
    );
    let weights = has_fixture(&format!("{prefix}.w")).then(|| {
        backend
            .upload(fixture(&format!("{prefix}.w")).view())
            .unwrap()
    });
    for &(case, loss) in cases {
        let mut grad = backend.zeros(x.nrows(), x.ncols()).unwrap();
        let mut totals = backend.zeros(1, 4).unwrap();
        backend
            .loss_into(
                loss,
                &logits,
                &targets,
                Some(&mut grad),
                LossShare::whole(x.nrows()),
                weights.as_ref(),
                &mut totals,
                0,
            )
            .unwrap();
        let value = backend.download(&totals).unwrap()[[0, 0]] / x.nrows() as f32;
        let want = fixture(&format!("{prefix}.{case}.value"))[[0, 0]];
        assert!(
            (value - want).abs() <= 1e-6 * want.abs() + 1e-7,
            "{name} {loss:?}: loss {value}, PyTorch {want}"
        );
        let want = fixture(&format!("{prefix}.{case}.grad"));
        assert_close(
            &format!("{name} {loss:?} gradient"),
            &backend.download(&grad).unwrap(),
            &want,
            &tol(&want, 1e-6, 1e-8),
        );
    }
}

/// The regression losses on 6 × 3 outputs, a few differences exactly 0 and at the threshold.
const REGRESSION_LOSSES: [(&str, Loss); 6] = [
    ("mse", Loss::MeanSquaredError),
    ("l1", Loss::L1),
    ("huber_1", Loss::Huber { delta: 1.0 }),
    ("huber_0.5", Loss::Huber { delta: 0.5 }),
    ("smooth_l1_1", Loss::SmoothL1 { beta: 1.0 }),
    ("smooth_l1_0.3", Loss::SmoothL1 { beta: 0.3 }),
];

#[test]
fn regression_losses_match_pytorch() {
    losses_match_pytorch_on(&CpuBackend, "cpu", "loss", &REGRESSION_LOSSES);
    losses_match_pytorch_on(gpu(), "gpu", "loss", &REGRESSION_LOSSES);
}

/// Binary cross-entropy on logits, plain and with the positives weighted, against
/// `nn.BCEWithLogitsLoss(pos_weight=p)` on 6 × 3 logits (one row of ±40), fractional targets
/// among them; p = 1 is the plain loss.
const BINARY_CROSS_ENTROPIES: [(&str, Loss); 4] = [
    ("plain", Loss::BinaryCrossEntropyWithLogits),
    (
        "plain",
        Loss::BinaryCrossEntropyWithLogitsWeighted { pos_weight: 1.0 },
    ),
    (
        "pw_3",
        Loss::BinaryCrossEntropyWithLogitsWeighted { pos_weight: 3.0 },
    ),
    (
        "pw_0.4",
        Loss::BinaryCrossEntropyWithLogitsWeighted { pos_weight: 0.4 },
    ),
];

#[test]
fn binary_cross_entropies_match_pytorch() {
    losses_match_pytorch_on(&CpuBackend, "cpu", "bce", &BINARY_CROSS_ENTROPIES);
    losses_match_pytorch_on(gpu(), "gpu", "bce", &BINARY_CROSS_ENTROPIES);
}

/// Softmax cross-entropy with class weights (one of them 0), plain and smoothed, against
/// `nn.CrossEntropyLoss(weight=w, label_smoothing=ε)`: the batch's mean over Σ w.
const WEIGHTED_CROSS_ENTROPIES: [(&str, Loss); 4] = [
    ("plain", Loss::SoftmaxCrossEntropy),
    (
        "plain",
        Loss::SoftmaxCrossEntropySmoothed { smoothing: 0.0 },
    ),
    ("0.1", Loss::SoftmaxCrossEntropySmoothed { smoothing: 0.1 }),
    (
        "0.35",
        Loss::SoftmaxCrossEntropySmoothed { smoothing: 0.35 },
    ),
];

#[test]
fn weighted_cross_entropies_match_pytorch() {
    let cases = &WEIGHTED_CROSS_ENTROPIES;
    losses_match_pytorch_on(&CpuBackend, "cpu", "ce_weighted", cases);
    losses_match_pytorch_on(gpu(), "gpu", "ce_weighted", cases);
}

/// Softmax cross-entropy, plain and with label smoothing, against
/// `nn.CrossEntropyLoss(label_smoothing=ε)` on 7 rows of 5 logits (one row of ±40 and more).
const CROSS_ENTROPIES: [(&str, Loss); 5] = [
    ("plain", Loss::SoftmaxCrossEntropy),
    (
        "plain",
        Loss::SoftmaxCrossEntropySmoothed { smoothing: 0.0 },
    ),
    ("0.1", Loss::SoftmaxCrossEntropySmoothed { smoothing: 0.1 }),
    (
        "0.35",
        Loss::SoftmaxCrossEntropySmoothed { smoothing: 0.35 },
    ),
    ("1", Loss::SoftmaxCrossEntropySmoothed { smoothing: 1.0 }),
];

#[test]
fn cross_entropies_match_pytorch() {
    losses_match_pytorch_on(&CpuBackend, "cpu", "ce", &CROSS_ENTROPIES);
    losses_match_pytorch_on(gpu(), "gpu", "ce", &CROSS_ENTROPIES);
}

/// The fixture model: Linear(3, 8) → LayerNorm(8) → GELU → Residual(Linear(8, 8) → SiLU →
/// Linear(8, 8)) → Linear(8, 2), with `dropout` after the GELU when given (PyTorch's has
/// none; in evaluation dropout is the identity).
fn fixture_model<B: Backend>(backend: &B, dropout: Option<Dropout>) -> Sequential<B> {
    let residual = Residual::new(vec![
        Box::new(Linear::new(8, 8)),
        Box::new(Elementwise::new(8, Nonlinearity::Silu)),
        Box::new(Linear::new(8, 8)),
    ])
    .unwrap();
    let mut layers: Vec<Box<dyn Layer<B>>> = vec![
        Box::new(Linear::new(3, 8)),
        Box::new(LayerNorm::new(8)),
        Box::new(Elementwise::new(8, Nonlinearity::Gelu)),
    ];
    if let Some(d) = dropout {
        layers.push(Box::new(d));
    }
    layers.push(Box::new(residual));
    layers.push(Box::new(Linear::new(8, 2)));
    Sequential::new(backend, layers, Init::default(), 3).unwrap()
}

fn model_matches_pytorch_on<B: Backend>(backend: &B, name: &str) {
    let mut model = fixture_model(backend, None);
    let names = model.tensor_names();
    assert_eq!(
        names,
        [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "3.block.0.weight",
            "3.block.0.bias",
            "3.block.2.weight",
            "3.block.2.bias",
            "4.weight",
            "4.bias"
        ],
        "{name}: PyTorch's state_dict names"
    );
    let state: Vec<(String, ArrayD<f32>)> = model
        .parameter_specs()
        .iter()
        .map(|p| {
            let values = fixture(&format!("model.param.{}", p.name));
            let array =
                ArrayD::from_shape_vec(p.torch_shape.clone(), values.into_raw_vec_and_offset().0);
            (p.name.clone(), array.unwrap())
        })
        .collect();
    model.load_state_dict(backend, &state).unwrap();
    // The same tensors in a file as PyTorch's `save_file(model.state_dict(), …)` writes it
    // load into a model built by the same code, by name.
    let file = std::env::temp_dir().join(format!(
        "steepest-torch-state-{name}-{}.safetensors",
        std::process::id()
    ));
    let tensors: Vec<(&str, &[usize], &[f32])> = state
        .iter()
        .map(|(n, a)| (n.as_str(), a.shape(), a.as_slice().unwrap()))
        .collect();
    std::fs::write(&file, common::bare_safetensors(&tensors)).unwrap();
    let mut from_file = fixture_model(backend, None);
    let loaded = model.parameters_flat(backend).unwrap();
    assert_ne!(from_file.parameters_flat(backend).unwrap(), loaded);
    from_file.load_safetensors(backend, &file).unwrap();
    assert_eq!(from_file.parameters_flat(backend).unwrap(), loaded);

    let (x, t) = (fixture("model.x"), fixture("model.t"));
    let y = model.predict(backend, x.view()).unwrap();
    let want = fixture("model.y");
    assert_close(
        &format!("{name} model output"),
        &y,
        &want,
        &tol(&want, 1e-5, 2e-6),
    );

    // One step at learning rate 0 leaves the gradients of the batch in the gradient arena.
    let trainer = Trainer::new(Sgd::default().lr(0.0), Loss::MeanSquaredError);
    let mut session = Session::for_batches(&trainer, backend, &mut model).unwrap();
    session
        .step_on_batch(&Dataset::regression(x, t).unwrap())
        .unwrap();
    let loss = session.last_batch_loss().unwrap();
    let want = f64::from(fixture("model.loss")[[0, 0]]);
    assert!(
        (loss - want).abs() < 1e-5 * want,
        "{name}: loss {loss}, PyTorch {want}"
    );
    drop(session);
    let grads = backend.read_arena(model.gradients()).unwrap();
    let mut at = 0;
    for p in model.parameter_specs() {
        let len = p.rows * p.cols;
        let got = Array2::from_shape_vec((p.rows, p.cols), grads[at..at + len].to_vec()).unwrap();
        at += len;
        let want = fixture(&format!("model.grad.{}", p.name))
            .into_shape_with_order((p.rows, p.cols))
            .unwrap();
        assert_close(
            &format!("{name} ∂{}", p.name),
            &got,
            &want,
            &tol(&want, 1e-4, 1e-6),
        );
    }
    assert_eq!(at, model.gradients().len());
}

#[test]
fn a_model_of_every_layer_matches_pytorch() {
    model_matches_pytorch_on(&CpuBackend, "cpu");
    model_matches_pytorch_on(gpu(), "gpu");
}

#[test]
fn a_model_of_every_layer_trains_in_lockstep_on_both_backends() {
    let dropout = Some(Dropout::new(8, 0.2, 99));
    let mut on_cpu = fixture_model(&CpuBackend, dropout);
    let mut on_gpu = fixture_model(gpu(), dropout);
    let x = Array2::from_shape_fn((64, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0);
    let y = Array2::from_shape_fn((64, 2), |(i, j)| {
        (x[[i, 0]] * (j as f32 + 1.0)).sin() + x[[i, 2]]
    });
    let data = Dataset::regression(x, y).unwrap();
    let trainer = Trainer::new(
        steepest::Adam::default().lr(0.01),
        Loss::Huber { delta: 1.0 },
    )
    .batch_size(16)
    .epochs(3);
    let a = trainer.fit(&CpuBackend, &mut on_cpu, &data, None).unwrap();
    let b = trainer.fit(gpu(), &mut on_gpu, &data, None).unwrap();
    let (p, q) = (
        on_cpu.parameters_flat(&CpuBackend).unwrap(),
        on_gpu.parameters_flat(gpu()).unwrap(),
    );
    let worst = common::max_abs_diff(&p, &q);
    assert!(
        worst < 1e-4,
        "parameters differ by up to {worst} after 12 steps"
    );
    for (x, y) in a.epochs.iter().zip(&b.epochs) {
        assert!(
            (x.loss - y.loss).abs() < 1e-5 * x.loss.max(1.0),
            "{x:?} vs {y:?}"
        );
    }
    assert!(
        a.epochs[2].loss < a.epochs[0].loss,
        "the loss falls: {:?}",
        a.epochs
    );
}

/// A model prints as a table of its layers: what it takes and gives, its parameters (the
/// buffers apart), and a row per layer.
#[test]
fn a_model_prints_as_a_table_of_its_layers() {
    let layers: Vec<Box<dyn Layer<CpuBackend>>> = vec![
        Box::new(Linear::new(2, 16).with_activation(steepest::Activation::Relu)),
        Box::new(BatchNorm::new(16)),
        Box::new(Glu::new(16)),
        Box::new(RmsNorm::new(8)),
        Box::new(Linear::new(8, 3)),
    ];
    let model = Sequential::new(&CpuBackend, layers, Init::default(), 1).unwrap();
    let printed = model.to_string();
    let expected = "\
Sequential: 2 inputs → 3 outputs, 115 parameters and 32 buffer values
  #  layer                                   outputs  parameters
  0  linear(2→16, relu)                           16          48
  1  batch_norm(16, eps=1e-5, momentum=0.1)       16          32 (+32 buffer values)
  2  glu(16→8)                                     8           0
  3  rms_norm(8, eps=1.1920929e-7)                 8           8
  4  linear(8→3, identity)                         3          27";
    assert_eq!(printed, expected);
    assert_eq!(model.parameter_count(), 48 + 32 + 8 + 27);
}
