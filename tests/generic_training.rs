//! The training stack on any model built on the seam: a `Sequential` with LayerNorm, GELU,
//! dropout and a residual block under the line search, the learning-rate finder, and
//! checkpoints (a resumed run draws the same dropout masks and ends bit for bit where an
//! unbroken one does; a checkpoint of another architecture is refused by name).

mod common;

use std::path::PathBuf;

use steepest::nn::{
    BatchNorm, Dropout, Elementwise, Embedding, Glu, Layer, LayerNorm, Residual, RmsNorm,
    Sequential,
};
use steepest::{
    Adam, CpuBackend, Init, LineSearch, Linear, Loss, LrFinder, Nonlinearity, Session, Trainer,
    data,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("steepest-generic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn net(dropout: f32, width: usize) -> Sequential<CpuBackend> {
    let block: Vec<Box<dyn Layer<CpuBackend>>> = vec![
        Box::new(LayerNorm::new(width)),
        Box::new(Linear::new(width, width)),
        Box::new(Elementwise::new(width, Nonlinearity::Gelu)),
        Box::new(Dropout::new(width, dropout, 3)),
        Box::new(Linear::new(width, width)),
    ];
    let layers: Vec<Box<dyn Layer<CpuBackend>>> = vec![
        Box::new(Linear::new(2, width)),
        Box::new(Residual::new(block).unwrap()),
        Box::new(Linear::new(width, 1)),
    ];
    Sequential::new(&CpuBackend, layers, Init::default(), 5).unwrap()
}

#[test]
fn a_resumed_run_with_dropout_ends_where_an_unbroken_one_does() {
    let data = data::linear(90, &[1.0, -0.5], 0.2, 0.1, 4).unwrap();
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::MeanSquaredError)
        .batch_size(16)
        .epochs(3)
        .seed(9);
    let mut unbroken = net(0.3, 16);
    trainer
        .fit(&CpuBackend, &mut unbroken, &data, None)
        .unwrap();

    let path = scratch("dropout.safetensors");
    let mut first = net(0.3, 16);
    {
        let mut session = Session::new(&trainer, &CpuBackend, &mut first, &data, None).unwrap();
        session.run_epoch().unwrap();
        for _ in 0..2 {
            session.step().unwrap(); // stop mid-epoch: the masks of later steps come after
        }
        session.save_checkpoint(&path).unwrap();
    }
    let mut resumed = net(0.3, 16);
    let mut session = Session::new(&trainer, &CpuBackend, &mut resumed, &data, None).unwrap();
    session.load_checkpoint(&path).unwrap();
    session.run().unwrap();
    drop(session);
    assert_eq!(
        resumed.parameters_flat(&CpuBackend).unwrap(),
        unbroken.parameters_flat(&CpuBackend).unwrap(),
        "the same masks and the same steps"
    );

    // Another architecture is refused by name.
    let mut other = net(0.3, 8);
    let mut session = Session::new(&trainer, &CpuBackend, &mut other, &data, None).unwrap();
    let err = session.load_checkpoint(&path).unwrap_err().to_string();
    assert!(
        err.contains("architecture") && err.contains("linear(2→16"),
        "{err}"
    );
}

#[test]
fn line_search_and_the_finder_work_on_a_sequential_model() {
    let data = data::linear(64, &[1.0, -0.5], 0.2, 0.05, 2).unwrap();
    let mut model = net(0.0, 8);
    let history = LineSearch {
        iterations: 30,
        ..LineSearch::default()
    }
    .run(&CpuBackend, &mut model, &data, Loss::MeanSquaredError)
    .unwrap();
    let (first, last) = (history.epochs[0].loss, history.last().unwrap().loss);
    assert!(last < 0.5 * first, "line search: {first} → {last}");

    let mut model = net(0.1, 8);
    let before = model.parameters_flat(&CpuBackend).unwrap();
    let trainer = Trainer::new(Adam::default(), Loss::MeanSquaredError).batch_size(16);
    let found = LrFinder {
        steps: 40,
        ..LrFinder::default()
    }
    .run(&CpuBackend, &mut model, &trainer, &data)
    .unwrap();
    assert!(found.suggested > 1e-6 && found.suggested < 1.0, "{found:?}");
    assert_eq!(
        model.parameters_flat(&CpuBackend).unwrap(),
        before,
        "put back"
    );
}

/// The line search's trial points are measured as its gradient point is, in training mode
/// (dropout's one mask, batch norm's batch statistics): Armijo's condition then holds
/// between the losses it records, each the one the accepted trial measured. Measured in
/// evaluation mode, as before, a trial without dropout's noise looked lower than the loss it
/// was compared with, and steps too long for the training objective were accepted.
#[test]
fn line_search_trials_measure_the_objective_the_gradient_is_of() {
    let data = data::linear(64, &[1.0, -0.5], 0.2, 0.05, 2).unwrap();
    let search = LineSearch {
        iterations: 12,
        ..LineSearch::default()
    };
    let mut model = net(0.4, 8);
    let history = search
        .run(&CpuBackend, &mut model, &data, Loss::MeanSquaredError)
        .unwrap();
    assert!(history.epochs.len() > 2, "{:?}", history.stop);
    for pair in history.epochs.windows(2) {
        let (now, next) = (&pair[0], &pair[1]);
        let g = now.grad_norm.unwrap();
        let bound = now.loss - search.c * now.lr * g * g;
        assert!(
            next.loss <= bound + 1e-6 * now.loss.abs(),
            "iteration {}: {} after a step of {} from {} (Armijo: ≤ {bound})",
            now.epoch,
            next.loss,
            now.lr,
            now.loss
        );
    }
}

#[test]
fn bad_layer_settings_are_refused_when_the_model_is_built() {
    let build = |layer: Box<dyn Layer<CpuBackend>>| {
        Sequential::new(
            &CpuBackend,
            vec![Box::new(Linear::new(2, 4)), layer],
            Init::default(),
            0,
        )
        .unwrap_err()
        .to_string()
    };
    let err = build(Box::new(Dropout::new(4, 1.0, 0)));
    assert!(err.contains("p = 1") && err.contains("[0, 1)"), "{err}");
    let err = build(Box::new(LayerNorm { width: 4, eps: 0.0 }));
    assert!(err.contains("eps = 0"), "{err}");
    let err = build(Box::new(RmsNorm {
        width: 4,
        eps: f32::NAN,
    }));
    assert!(
        err.contains("RmsNorm") && err.contains("eps = NaN"),
        "{err}"
    );
    let odd = Sequential::new(&CpuBackend, vec![Box::new(Glu::new(3))], Init::default(), 0);
    let err = odd.unwrap_err().to_string();
    assert!(
        err.contains("Glu::new") && err.contains("3 inputs"),
        "{err}"
    );
    let err = build(Box::new(Elementwise::new(
        4,
        Nonlinearity::LeakyRelu { slope: f32::NAN },
    )));
    assert!(err.contains("slope = NaN"), "{err}");
    for (function, words) in [
        (
            Nonlinearity::Elu {
                alpha: f32::INFINITY,
            },
            "alpha = inf",
        ),
        (
            Nonlinearity::Softplus {
                beta: 0.0,
                threshold: 20.0,
            },
            "beta = 0: it must be finite and > 0",
        ),
        (
            Nonlinearity::Softplus {
                beta: 1.0,
                threshold: f32::NAN,
            },
            "threshold = NaN",
        ),
    ] {
        let err = build(Box::new(Elementwise::new(4, function)));
        assert!(err.contains(words), "{err} lacks {words}");
    }
    let err = build(Box::new(Linear::new(3, 1)));
    assert!(
        err.contains("gives 4 features") && err.contains("takes 3"),
        "{err}"
    );
    let block: Vec<Box<dyn Layer<CpuBackend>>> = vec![Box::new(
        Linear::new(4, 4).with_activation(steepest::Activation::Relu),
    )];
    let err = Residual::new(block).unwrap_err().to_string();
    assert!(err.contains("fuses an activation"), "{err}");
    let err = build(Box::new(ClaimsLinear { buffer: false }));
    assert!(
        err.contains("layer 1 (claims-linear) says it is linear")
            && err.contains("[(4, 4), (1, 4)], not [(1, 4)]"),
        "{err}"
    );
    let err = build(Box::new(ClaimsLinear { buffer: true }));
    assert!(
        err.contains(
            "layer 1 (claims-linear) says it is linear, so it keeps no buffers, yet \
                      declares 1"
        ),
        "{err}"
    );
}

/// A layer that says its forward pass is a linear layer's (`Layer::fusable_linear`) with
/// parameters that are not a weight and a bias, or (`buffer`) a weight and a bias and a buffer.
#[derive(Debug)]
struct ClaimsLinear {
    buffer: bool,
}

impl Layer<CpuBackend> for ClaimsLinear {
    fn describe(&self) -> String {
        "claims-linear".into()
    }
    fn inputs(&self) -> usize {
        4
    }
    fn outputs(&self) -> usize {
        4
    }
    fn parameters(&self) -> Vec<steepest::nn::ParamSpec> {
        let bias = steepest::nn::ParamSpec::vector("bias", 4);
        match self.buffer {
            true => vec![steepest::nn::ParamSpec::matrix("weight", 4, 4), bias],
            false => vec![bias],
        }
    }
    fn buffers(&self) -> Vec<steepest::nn::ParamSpec> {
        match self.buffer {
            true => vec![steepest::nn::ParamSpec::vector("count", 1)],
            false => vec![],
        }
    }
    fn initial_values(&self, _: Init, _: &mut rand::rngs::StdRng) -> Vec<f32> {
        vec![0.0; if self.buffer { 20 } else { 4 }]
    }
    fn initial_buffers(&self) -> Vec<f32> {
        vec![0.0; usize::from(self.buffer)]
    }
    fn fusable_linear(&self) -> Option<steepest::Activation> {
        Some(steepest::Activation::Identity)
    }
    // Never run: a model of it is refused when built.
    fn forward(
        &self,
        _: &CpuBackend,
        _: steepest::nn::Forward<'_, CpuBackend>,
    ) -> steepest::Result<()> {
        Ok(())
    }
    fn backward(
        &self,
        _: &CpuBackend,
        _: steepest::nn::Backward<'_, CpuBackend>,
    ) -> steepest::Result<()> {
        Ok(())
    }
}

/// Linear(2, 8) → BatchNorm(8) → GELU → Linear(8, 1).
fn bn_net(seed: u64) -> Sequential<CpuBackend> {
    let layers: Vec<Box<dyn Layer<CpuBackend>>> = vec![
        Box::new(Linear::new(2, 8)),
        Box::new(BatchNorm::new(8)),
        Box::new(Elementwise::new(8, Nonlinearity::Gelu)),
        Box::new(Linear::new(8, 1)),
    ];
    Sequential::new(&CpuBackend, layers, Init::default(), seed).unwrap()
}

/// A batch norm's running statistics are buffers: named in the `state_dict`, not counted as
/// parameters, moved by training batches but by no optimizer (AdamW's decay, and a group that
/// picks every 1-D tensor, leave them alone), saved and restored with the model (a resumed run
/// ends bit for bit where an unbroken one does), and written to model files that load again,
/// as files PyTorch writes do with their I64 `num_batches_tracked`.
#[test]
fn running_statistics_are_buffers_that_train_save_and_resume() {
    use steepest::optim::ParamGroup;
    let data = data::linear(90, &[1.0, -0.5], 0.2, 0.1, 4).unwrap();
    let model = bn_net(1);
    assert_eq!(
        model.tensor_names(),
        [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "3.weight",
            "3.bias"
        ]
    );
    assert_eq!(model.parameter_count(), 2 * 8 + 8 + 8 + 8 + 8 + 1);
    let trainer = Trainer::new(
        steepest::AdamW::default().lr(0.01).weight_decay(0.5),
        Loss::MeanSquaredError,
    )
    .batch_size(16)
    .epochs(3)
    .param_group(ParamGroup::one_dimensional().lr_scale(2.0));
    let state = |m: &Sequential<CpuBackend>| m.state_dict(&CpuBackend).unwrap();
    let mut straight = bn_net(1);
    trainer
        .fit(&CpuBackend, &mut straight, &data, None)
        .unwrap();
    let trained = state(&straight);
    let running_mean = &trained[4].1;
    assert!(
        running_mean.iter().any(|v| v.abs() > 1e-3),
        "{running_mean}"
    );

    // The statistics only the batches move: the same run with the rate 0 moves no parameter,
    // and the running statistics exactly as far.
    let mut frozen = bn_net(1);
    let still = Trainer::new(
        steepest::AdamW::default().lr(0.0).weight_decay(0.5),
        Loss::MeanSquaredError,
    )
    .batch_size(16)
    .epochs(3);
    still.fit(&CpuBackend, &mut frozen, &data, None).unwrap();
    let (start, after) = (state(&bn_net(1)), state(&frozen));
    for (i, ((name, a), (_, b))) in start.iter().zip(&after).enumerate() {
        match i {
            4 | 5 => assert_ne!(a, b, "{name} did not follow the batches"),
            _ => assert_eq!(a, b, "{name} moved at rate 0"),
        }
    }

    // A checkpoint after epoch 1, resumed in a fresh model: bit for bit.
    let path = scratch("bn.safetensors");
    let mut first = bn_net(1);
    let mut session = Session::new(&trainer, &CpuBackend, &mut first, &data, None).unwrap();
    session.run_epoch().unwrap();
    session.save_checkpoint(&path).unwrap();
    drop(session);
    let mut resumed = bn_net(2);
    let mut session = Session::new(&trainer, &CpuBackend, &mut resumed, &data, None).unwrap();
    session.load_checkpoint(&path).unwrap();
    session.run().unwrap();
    drop(session);
    assert_eq!(state(&resumed), trained);

    // The model file: saved and loaded with its statistics, and a PyTorch file's counter.
    let file = scratch("bn_model.safetensors");
    straight.save_safetensors(&CpuBackend, &file).unwrap();
    let mut loaded = bn_net(3);
    loaded.load_safetensors(&CpuBackend, &file).unwrap();
    assert_eq!(state(&loaded), trained);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = trained
        .iter()
        .map(|(name, a)| {
            let bytes = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), a.shape().to_vec(), bytes)
        })
        .collect();
    tensors.push((
        "1.num_batches_tracked".into(),
        vec![],
        15i64.to_le_bytes().to_vec(),
    ));
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let dtype = match name.ends_with("tracked") {
                true => safetensors::Dtype::I64,
                false => safetensors::Dtype::F32,
            };
            let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes);
            (name.clone(), view.unwrap())
        })
        .collect();
    let pytorch = scratch("bn_pytorch.safetensors");
    safetensors::serialize_to_file(views, None, &pytorch).unwrap();
    let mut from_pytorch = bn_net(4);
    from_pytorch
        .load_safetensors(&CpuBackend, &pytorch)
        .unwrap();
    assert_eq!(state(&from_pytorch), trained);
}

/// Groups pick parameters, never buffers: one that picks only running statistics is refused
/// by name.
#[test]
fn buffers_are_no_groups() {
    use steepest::optim::ParamGroup;
    let data = data::linear(40, &[1.0, -0.5], 0.2, 0.1, 4).unwrap();
    let trainer = Trainer::new(Adam::default(), Loss::MeanSquaredError)
        .param_group(ParamGroup::matching("*.running_*").weight_decay(0.0));
    let mut model = bn_net(1);
    let err = trainer
        .fit(&CpuBackend, &mut model, &data, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("picks only buffers"), "{err}");
}

fn residual_bn_net(seed: u64) -> Sequential<CpuBackend> {
    let block: Vec<Box<dyn Layer<CpuBackend>>> =
        vec![Box::new(BatchNorm::new(4)), Box::new(Linear::new(4, 4))];
    let layers: Vec<Box<dyn Layer<CpuBackend>>> = vec![
        Box::new(Linear::new(2, 4)),
        Box::new(Residual::new(block).unwrap()),
        Box::new(Linear::new(4, 1)),
    ];
    Sequential::new(&CpuBackend, layers, Init::default(), seed).unwrap()
}

/// A residual block holds its layers' buffers: named under the block (after its parameters),
/// moved by training batches and by nothing else, saved to a model file that loads back; a
/// pass handed other buffers than the block declares is refused by name.
#[test]
fn a_residual_block_holds_its_layers_buffers() {
    use steepest::nn::{Forward, Mode};
    let model = residual_bn_net(1);
    assert_eq!(
        model.tensor_names(),
        [
            "0.weight",
            "0.bias",
            "1.block.0.weight",
            "1.block.0.bias",
            "1.block.1.weight",
            "1.block.1.bias",
            "1.block.0.running_mean",
            "1.block.0.running_var",
            "2.weight",
            "2.bias"
        ]
    );
    let state = |m: &Sequential<CpuBackend>| m.state_dict(&CpuBackend).unwrap();
    let data = data::linear(64, &[1.0, -0.5], 0.2, 0.1, 4).unwrap();
    let still = Trainer::new(Adam::default().lr(0.0), Loss::MeanSquaredError)
        .batch_size(16)
        .epochs(2);
    let mut trained = residual_bn_net(1);
    still.fit(&CpuBackend, &mut trained, &data, None).unwrap();
    let (start, after) = (state(&residual_bn_net(1)), state(&trained));
    for (i, ((name, a), (_, b))) in start.iter().zip(&after).enumerate() {
        match i {
            6 | 7 => assert_ne!(a, b, "{name} did not follow the batches"),
            _ => assert_eq!(a, b, "{name} moved at rate 0"),
        }
    }
    let file = scratch("residual_bn_model.safetensors");
    trained.save_safetensors(&CpuBackend, &file).unwrap();
    let mut loaded = residual_bn_net(2);
    loaded.load_safetensors(&CpuBackend, &file).unwrap();
    assert_eq!(state(&loaded), after);

    let block = &model.layers()[1];
    let tensors = steepest::Arena::tensors(model.parameters());
    let input = ndarray::Array2::<f32>::zeros((3, 4));
    let mut output = input.clone();
    let mut saved: Vec<_> = block
        .saved_shapes(3)
        .into_iter()
        .map(ndarray::Array2::<f32>::zeros)
        .collect();
    let err = block
        .forward(
            &CpuBackend,
            Forward {
                params: &tensors[2..6],
                buffers: &tensors[6..7],
                input: &input,
                output: &mut output,
                saved: &mut saved,
                mode: Mode::Eval,
                step: 0,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Residual::forward") && err.contains("given 1 buffers"),
        "{err}"
    );
}

/// 400 samples of a numeric feature u and a category c of 5 (column 1): y = sin(2u) + e[c],
/// the category's effect spread over [−1, 2], so a model must learn it to fit.
fn categorical_data(seed: u64) -> steepest::Dataset {
    use rand::{RngExt, SeedableRng};
    let effect = [-1.0f32, 0.5, 2.0, -0.3, 1.2];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rows: Vec<(f32, usize)> = (0..400)
        .map(|_| (rng.random_range(-1.0..1.0), rng.random_range(0..5)))
        .collect();
    let x = ndarray::Array2::from_shape_fn((400, 2), |(r, c)| match c {
        0 => rows[r].0,
        _ => rows[r].1 as f32,
    });
    let y = ndarray::Array2::from_shape_fn((400, 1), |(r, _)| {
        (2.0 * rows[r].0).sin() + effect[rows[r].1]
    });
    steepest::Dataset::regression(x, y).unwrap()
}

fn embedding_net<B: steepest::Backend>(backend: &B) -> Sequential<B> {
    let layers: Vec<Box<dyn Layer<B>>> = vec![
        Box::new(Embedding::new(5, 3).column(1, 2)),
        Box::new(Linear::new(4, 16).with_activation(steepest::Activation::Tanh)),
        Box::new(Linear::new(16, 1)),
    ];
    Sequential::new(backend, layers, Init::default(), 2).unwrap()
}

/// A model whose first layer embeds a categorical column learns the categories' effects (a
/// model without them cannot get below their variance, about 1.1) on both backends, the
/// table named as PyTorch names `nn.Embedding`'s, and its file loads into the same layers;
/// indices that name no row are refused by name in training, evaluation and prediction,
/// before anything runs.
#[test]
fn an_embedded_category_is_learned_and_bad_indices_are_refused() {
    fn train<B: steepest::Backend>(backend: &B, name: &str) -> f64 {
        let data = categorical_data(1);
        let mut model = embedding_net(backend);
        assert_eq!(model.tensor_names()[0], "0.weight");
        let trainer = Trainer::new(Adam::default().lr(0.02), Loss::MeanSquaredError)
            .batch_size(32)
            .epochs(60);
        trainer.fit(backend, &mut model, &data, None).unwrap();
        // Its file loads into the same layers, which predict the same.
        let file = scratch(&format!("embedding_{name}.safetensors"));
        model.save_safetensors(backend, &file).unwrap();
        let mut loaded = embedding_net(backend);
        loaded.load_safetensors(backend, &file).unwrap();
        let x = data.x().view();
        assert_eq!(
            loaded.predict(backend, x).unwrap(),
            model.predict(backend, x).unwrap()
        );
        trainer.evaluate(backend, &model, &data).unwrap().loss
    }
    let losses = [
        ("cpu", train(&CpuBackend, "cpu")),
        ("gpu", train(common::gpu(), "gpu")),
    ];
    for (name, loss) in losses {
        eprintln!("{name}: {loss}");
        assert!(
            loss < 0.05,
            "{name}: the mean squared error is still {loss}"
        );
    }

    let data = categorical_data(2);
    let mut x = data.x().clone();
    x[[7, 1]] = 5.0;
    let bad = steepest::Dataset::regression(x, data.y().clone()).unwrap();
    let mut model = embedding_net(&CpuBackend);
    let before = model.parameters_flat(&CpuBackend).unwrap();
    let trainer = Trainer::new(Adam::default(), Loss::MeanSquaredError);
    let words = "row 7: embedding(5×3, column 1 of 2) reads 5 in its index column, which names \
                 no row of its 5";
    for err in [
        trainer
            .fit(&CpuBackend, &mut model, &bad, None)
            .unwrap_err(),
        trainer
            .fit(&CpuBackend, &mut model, &data, Some(&bad))
            .unwrap_err(),
        trainer.evaluate(&CpuBackend, &model, &bad).unwrap_err(),
    ] {
        assert!(err.to_string().contains(words), "{err}");
    }
    assert_eq!(model.parameters_flat(&CpuBackend).unwrap(), before);
    let err = model
        .predict(&CpuBackend, ndarray::array![[0.5, 2.5]].view())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row 0: embedding(5×3, column 1 of 2) reads 2.5"),
        "{err}"
    );

    for (layer, words) in [
        (Embedding::new(0, 3), "a table of 0×3"),
        (
            Embedding::new(5, 3).column(2, 2),
            "the index is column 2 of 2",
        ),
        (
            Embedding::new(5, 3).padding_idx(5),
            "padding_idx 5: the table has rows 0 to 4",
        ),
    ] {
        let layers: Vec<Box<dyn Layer<CpuBackend>>> = vec![Box::new(layer)];
        let err = Sequential::new(&CpuBackend, layers, Init::default(), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains(words), "{err}");
    }
}

/// Two categorical columns, each through its own embedding, the second reading its index
/// through the first (which passes it on): the model fits y, which depends on both
/// categories, both tables train (the first through the second's input gradient), and the
/// second's indices are checked on the host as the first's are.
#[test]
fn chained_embeddings_learn_two_categories_and_check_both() {
    use rand::{RngExt, SeedableRng};
    let (a, b) = ([-1.0f32, 0.5, 2.0, -0.3, 1.2], [0.8f32, -0.6, 0.0, 1.5]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let x = ndarray::Array2::from_shape_fn((400, 3), |(_, c)| match c {
        0 => rng.random_range(-1.0f32..1.0),
        1 => rng.random_range(0..5) as f32,
        _ => rng.random_range(0..4) as f32,
    });
    let y = x.map_axis(ndarray::Axis(1), |row| {
        row[0] + a[row[1] as usize] * b[row[2] as usize]
    });
    let data = steepest::Dataset::regression(x, y.insert_axis(ndarray::Axis(1))).unwrap();
    fn net<B: steepest::Backend>(backend: &B) -> Sequential<B> {
        let layers: Vec<Box<dyn Layer<B>>> = vec![
            // [u, c1, c2] → [u, c2, e1(3)] → [u, e1(3), e2(2)]
            Box::new(Embedding::new(5, 3).column(1, 3)),
            Box::new(Embedding::new(4, 2).column(1, 5)),
            Box::new(Linear::new(6, 32).with_activation(steepest::Activation::Tanh)),
            Box::new(Linear::new(32, 1)),
        ];
        Sequential::new(backend, layers, Init::default(), 3).unwrap()
    }
    fn train<B: steepest::Backend>(backend: &B, data: &steepest::Dataset) -> f64 {
        let mut model = net(backend);
        let tables = |m: &Sequential<B>| {
            let state = m.state_dict(backend).unwrap();
            [state[0].1.clone(), state[1].1.clone()]
        };
        let start = tables(&model);
        let trainer = Trainer::new(Adam::default().lr(0.02), Loss::MeanSquaredError)
            .batch_size(32)
            .epochs(80);
        trainer.fit(backend, &mut model, data, None).unwrap();
        for (i, (before, after)) in start.iter().zip(tables(&model)).enumerate() {
            let moved = (&after - before).iter().fold(0.0f32, |m, d| m.max(d.abs()));
            assert!(moved > 0.05, "table {i} moved by at most {moved}");
        }
        trainer.evaluate(backend, &model, data).unwrap().loss
    }
    for (name, loss) in [
        ("cpu", train(&CpuBackend, &data)),
        ("gpu", train(common::gpu(), &data)),
    ] {
        eprintln!("{name}: {loss}");
        // The products a·b spread over about [−1.8, 3]: their variance is about 1.
        assert!(
            loss < 0.02,
            "{name}: the mean squared error is still {loss}"
        );
    }
    let mut x = data.x().clone();
    x[[11, 2]] = 4.0;
    let bad = steepest::Dataset::regression(x, data.y().clone()).unwrap();
    let mut model = net(&CpuBackend);
    let err = Trainer::new(Adam::default(), Loss::MeanSquaredError)
        .fit(&CpuBackend, &mut model, &bad, None)
        .unwrap_err()
        .to_string();
    let words = "row 11: embedding(4×2, column 1 of 5) reads 4 in its index column";
    assert!(err.contains(words), "{err}");
}
