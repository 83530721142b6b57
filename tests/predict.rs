//! From host data to predictions, and models kept in files: `predict` and `predict_classes`
//! on both backends (batched), a `Predictor` that keeps its device memory from one call to the
//! next, any model's file loaded into a model of the same layers, `Mlp::from_safetensors`, and
//! files refused by a model of another architecture.

mod common;

use common::{bare_safetensors, gpu, random_matrix, rng};
use ndarray::{Array2, array};
use steepest::nn::{Dropout, Elementwise, Layer, LayerNorm, Residual, Sequential};
use steepest::{
    Activation, Backend, CpuBackend, Dataset, Error, Init, Linear, Mlp, MlpSpec, Model,
    Nonlinearity, Standardizer,
};

fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("steepest-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Predictions on `backend` against one unbatched forward pass on the CPU.
fn check_predict<B: Backend>(backend: &B, spec: &MlpSpec, rows: usize, seed: u64) {
    let model = Mlp::new(backend, spec, Init::default(), seed).unwrap();
    let params = model.parameters_flat(backend).unwrap();
    let mut reference = Mlp::new(&CpuBackend, spec, Init::default(), 0).unwrap();
    reference.set_parameters_flat(&CpuBackend, &params).unwrap();
    let x = random_matrix(&mut rng(seed), rows, spec.inputs(), 2.0);
    let expected = reference.forward(&CpuBackend, &x).unwrap();
    let actual = model.predict(backend, x.view()).unwrap();
    assert_eq!(actual.dim(), (rows, spec.outputs()));
    let worst = (&actual - &expected)
        .iter()
        .fold(0.0f32, |m, d| m.max(d.abs()));
    assert!(worst < 1e-3, "{}: off by {worst}", backend.describe());
}

#[test]
fn predictions_match_a_forward_pass_on_both_backends_in_batches() {
    // 70 000 wide: a batch holds 239 rows, so 500 rows take three batches.
    let wide = MlpSpec::new(3)
        .layer(70_000, Activation::Relu)
        .layer(2, Activation::Identity);
    let small = MlpSpec::new(2)
        .layer(16, Activation::Tanh)
        .layer(3, Activation::Identity);
    for (spec, rows) in [(&wide, 500), (&small, 1), (&small, 1000)] {
        check_predict(gpu(), spec, rows, 3);
        check_predict(&CpuBackend, spec, rows, 3);
    }
    let model = Mlp::new(&CpuBackend, &small, Init::default(), 1).unwrap();
    assert_eq!(
        model
            .predict(&CpuBackend, Array2::zeros((0, 2)).view())
            .unwrap()
            .dim(),
        (0, 3)
    );
}

#[test]
fn classes_are_the_largest_output_or_a_positive_logit() {
    let b = &CpuBackend;
    // Three outputs: identity weights pick the input's largest column, first of equals.
    let spec = MlpSpec::new(3).layer(3, Activation::Identity);
    let mut model = Mlp::new(b, &spec, Init::default(), 1).unwrap();
    model
        .set_parameters_flat(
            b,
            &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        )
        .unwrap();
    let x = array![[0.1f32, 0.9, 0.2], [5.0, -1.0, 4.0], [1.0, 1.0, 0.0]];
    assert_eq!(model.predict_classes(b, x.view()).unwrap(), vec![1, 0, 0]);
    // One output (binary cross-entropy's logit): class 1 above 0.
    let spec = MlpSpec::new(1).layer(1, Activation::Identity);
    let mut model = Mlp::new(gpu(), &spec, Init::default(), 1).unwrap();
    model.set_parameters_flat(gpu(), &[1.0, 0.0]).unwrap();
    let x = array![[-0.5f32], [0.0], [2.0]];
    assert_eq!(
        model.predict_classes(gpu(), x.view()).unwrap(),
        vec![0, 0, 1]
    );
}

#[test]
fn bad_inputs_to_predict_are_errors() {
    let spec = MlpSpec::new(2).layer(3, Activation::Identity);
    let model = Mlp::new(gpu(), &spec, Init::default(), 1).unwrap();
    let err = model
        .predict(gpu(), array![[1.0f32, 2.0, 3.0]].view())
        .unwrap_err();
    assert!(err.to_string().contains("3 features"), "{err}");
    let err = model
        .predict(gpu(), array![[1.0f32, f32::NAN]].view())
        .unwrap_err();
    assert!(err.to_string().contains("x[0, 1] is NaN"), "{err}");
}

#[test]
fn a_predictor_keeps_its_device_memory_from_one_call_to_the_next() {
    let g = &common::own_gpu();
    let ctx = g.context();
    let spec = MlpSpec::new(5)
        .layer(24, Activation::Relu)
        .layer(3, Activation::Identity);
    let mut model = Mlp::new(g, &spec, Init::default(), 4).unwrap();
    let mut r = rng(4);
    // Passes of 8, 8 and 4 rows; 3; 8.
    let inputs = [20, 3, 8].map(|rows| random_matrix(&mut r, rows, 5, 2.0));
    let expected: Vec<Array2<f32>> = inputs
        .iter()
        .map(|x| model.predict(g, x.view()).unwrap())
        .collect();
    let mut predictor = model.predictor(8).unwrap();
    assert_eq!(predictor.batch(), 8);
    assert!(
        predictor.sizes_kept().is_empty(),
        "nothing before the first call"
    );
    for x in &inputs {
        predictor.predict(g, &model, x.view()).unwrap();
    }
    assert_eq!(
        predictor.sizes_kept(),
        vec![4, 3, 8],
        "least recently used first"
    );
    let (before, sites) = (ctx.counters(), ctx.site_count());
    for _ in 0..10 {
        for (x, expected) in inputs.iter().zip(&expected) {
            assert_eq!(&predictor.predict(g, &model, x.view()).unwrap(), expected);
        }
    }
    let after = ctx.counters();
    assert_eq!(
        common::created(before, after),
        (0, 0, 0),
        "30 predictions through kept buffers created device objects"
    );
    assert_eq!(ctx.site_count(), sites, "the op sites grew");
    assert_eq!(
        after.waits - before.waits,
        10 * (3 + 1 + 1),
        "one wait per pass"
    );
    // The model is read at each call: trained (here: set) since, it predicts anew.
    let params = model.parameters_flat(g).unwrap();
    let doubled: Vec<f32> = params.iter().map(|p| 2.0 * p).collect();
    model.set_parameters_flat(g, &doubled).unwrap();
    let x = &inputs[0];
    let now = predictor.predict(g, &model, x.view()).unwrap();
    assert_ne!(&now, &expected[0]);
    assert_eq!(now, model.predict(g, x.view()).unwrap());
    assert_eq!(
        predictor.predict_classes(g, &model, x.view()).unwrap(),
        model.predict_classes(g, x.view()).unwrap()
    );
    // Sizes 3, 8 and 4 are kept, 4 used last; a fifth size makes room by dropping the least
    // recently used one (3).
    assert_eq!(predictor.sizes_kept(), vec![3, 8, 4]);
    for rows in [1, 2] {
        let x = random_matrix(&mut r, rows, 5, 1.0);
        predictor.predict(g, &model, x.view()).unwrap();
    }
    assert_eq!(predictor.sizes_kept(), vec![8, 4, 1, 2]);
    // The kept buffers live on the device that made them: another device's model is refused
    // by the first op that meets them, and they stay kept, in the same order.
    let other = common::own_gpu();
    let elsewhere = Mlp::new(&other, &spec, Init::default(), 4).unwrap();
    let err = predictor
        .predict(&other, &elsewhere, inputs[2].view())
        .unwrap_err();
    assert!(matches!(err, Error::WrongContext { .. }), "{err}");
    assert_eq!(predictor.sizes_kept(), vec![8, 4, 1, 2]);
}

/// A model of every kind of layer: LayerNorm, GELU, dropout (off when predicting) and a
/// residual block between linear layers.
fn layered<B: Backend>(backend: &B) -> Sequential<B> {
    layered_with(backend, Nonlinearity::Gelu, false, 6)
}

/// [`layered`]'s layers with `activation` in the residual block and, if `extra`, a tanh
/// after the output layer; weights from `seed`.
fn layered_with<B: Backend>(
    backend: &B,
    activation: Nonlinearity,
    extra: bool,
    seed: u64,
) -> Sequential<B> {
    let block: Vec<Box<dyn Layer<B>>> = vec![
        Box::new(LayerNorm::new(12)),
        Box::new(Linear::new(12, 12)),
        Box::new(Elementwise::new(12, activation)),
        Box::new(Dropout::new(12, 0.5, 3)),
        Box::new(Linear::new(12, 12)),
    ];
    let mut layers: Vec<Box<dyn Layer<B>>> = vec![
        Box::new(Linear::new(3, 12)),
        Box::new(Residual::new(block).unwrap()),
        Box::new(Linear::new(12, 2)),
    ];
    if extra {
        layers.push(Box::new(Elementwise::new(2, Nonlinearity::Tanh)));
    }
    Sequential::new(backend, layers, Init::default(), seed).unwrap()
}

#[test]
fn a_model_of_any_layers_keeps_its_parameters_and_standardisation_in_its_file() {
    let dir = scratch("layers-file");
    let path = dir.join("layered.safetensors");
    let g = gpu();
    let mut model = layered_with(g, Nonlinearity::Gelu, false, 6);
    let standardizer = Standardizer::new(vec![1.0, -2.0, 0.5], vec![2.0, 0.25, 3.0]).unwrap();
    model.set_standardizer(Some(standardizer.clone())).unwrap();
    model.save_safetensors(g, &path).unwrap();
    let saved = model.parameters_flat(g).unwrap();
    let x = random_matrix(&mut rng(9), 10, 3, 4.0);
    let want = model.predict(g, x.view()).unwrap();

    // A model built by the same code, with other weights, on the CPU backend.
    let mut on_cpu = layered_with(&CpuBackend, Nonlinearity::Gelu, false, 7);
    assert_ne!(on_cpu.parameters_flat(&CpuBackend).unwrap(), saved);
    on_cpu.load_safetensors(&CpuBackend, &path).unwrap();
    assert_eq!(on_cpu.parameters_flat(&CpuBackend).unwrap(), saved);
    assert_eq!(on_cpu.standardizer(), Some(&standardizer), "bit for bit");
    let got = on_cpu.predict(&CpuBackend, x.view()).unwrap();
    let worst = (&got - &want).iter().fold(0.0f32, |m, d| m.max(d.abs()));
    assert!(worst < 1e-4, "the CPU's predictions are off by {worst}");

    // And on the GPU: the same bits as the model that saved it.
    let mut again = layered_with(g, Nonlinearity::Gelu, false, 8);
    again.load_safetensors(g, &path).unwrap();
    assert_eq!(again.predict(g, x.view()).unwrap(), want);
}

#[test]
fn a_file_from_other_layers_is_refused_naming_the_first_that_differs() {
    let dir = scratch("layers-refused");
    let path = dir.join("layered.safetensors");
    layered_with(&CpuBackend, Nonlinearity::Gelu, false, 6)
        .save_safetensors(&CpuBackend, &path)
        .unwrap();
    let silu = "layer 1 is residual(layer_norm(12, eps=1e-5) | linear(12→12, identity) | \
                gelu(12) | dropout(12, p=0.5) | linear(12→12, identity)) in the file, \
                residual(layer_norm(12, eps=1e-5) | linear(12→12, identity) | silu(12) | \
                dropout(12, p=0.5) | linear(12→12, identity)) in the model";
    for (activation, extra, words) in [
        (Nonlinearity::Silu, false, silu),
        (
            Nonlinearity::Gelu,
            true,
            "the file has 3 layers, the model 4",
        ),
    ] {
        let mut model = layered_with(&CpuBackend, activation, extra, 1);
        let standardizer = Standardizer::new(vec![0.0; 3], vec![1.0; 3]).unwrap();
        model.set_standardizer(Some(standardizer.clone())).unwrap();
        let before = model.parameters_flat(&CpuBackend).unwrap();
        let err = model.load_safetensors(&CpuBackend, &path).unwrap_err();
        assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
        assert!(err.to_string().contains(words), "{err}");
        assert_eq!(model.parameters_flat(&CpuBackend).unwrap(), before);
        assert_eq!(model.standardizer(), Some(&standardizer));
    }
}

#[test]
fn an_mlp_file_and_its_network_file_load_into_either() {
    let dir = scratch("mlp-or-network");
    let (as_mlp, as_network) = (dir.join("mlp.safetensors"), dir.join("network.safetensors"));
    let tanh = MlpSpec::new(2)
        .layer(6, Activation::Tanh)
        .layer(2, Activation::Identity);
    let mlp = Mlp::new(&CpuBackend, &tanh, Init::default(), 1).unwrap();
    let saved = mlp.parameters_flat(&CpuBackend).unwrap();
    mlp.save_safetensors(&CpuBackend, &as_mlp).unwrap();
    let mut network = Mlp::new(&CpuBackend, &tanh, Init::default(), 2)
        .unwrap()
        .into_sequential();
    network.load_safetensors(&CpuBackend, &as_mlp).unwrap();
    assert_eq!(network.parameters_flat(&CpuBackend).unwrap(), saved);
    network.save_safetensors(&CpuBackend, &as_network).unwrap();
    let mut again = Mlp::new(&CpuBackend, &tanh, Init::default(), 3).unwrap();
    again.load_safetensors(&CpuBackend, &as_network).unwrap();
    assert_eq!(again.parameters_flat(&CpuBackend).unwrap(), saved);

    // Only an MLP's own line rebuilds an MLP from the file alone.
    let err = Mlp::from_safetensors(&CpuBackend, &as_network)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not an MLP's") && err.contains("load_safetensors"),
        "{err}"
    );
    // Another activation is refused either way, by the layer that differs.
    let relu = MlpSpec::new(2)
        .layer(6, Activation::Relu)
        .layer(2, Activation::Identity);
    let mut other = Mlp::new(&CpuBackend, &relu, Init::default(), 4).unwrap();
    let err = other
        .load_safetensors(&CpuBackend, &as_network)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("layer 0 is linear(2→6, tanh) in the file, linear(2→6, relu) in the model"),
        "{err}"
    );
    let mut other = other.into_sequential();
    let err = other.load_safetensors(&CpuBackend, &as_mlp).unwrap_err();
    assert!(
        err.to_string()
            .contains("layer 0 is linear(2→6, tanh) in the file, linear(2→6, relu) in the model"),
        "{err}"
    );
}

#[test]
fn a_predictor_runs_every_kind_of_layer_in_evaluation_mode() {
    let g = &common::own_gpu();
    let ctx = g.context();
    let model = layered(g);
    let mut reference = layered(&CpuBackend);
    reference
        .set_parameters_flat(&CpuBackend, &model.parameters_flat(g).unwrap())
        .unwrap();
    let x = random_matrix(&mut rng(6), 37, 3, 2.0);
    // A fresh forward pass (new buffers) of each batch the predictor will run: 16, 16, 5.
    let fresh: Vec<Array2<f32>> = [0..16, 16..32, 32..37]
        .into_iter()
        .map(|rows| {
            let batch = g.upload(x.slice(ndarray::s![rows, ..])).unwrap();
            g.download(&model.forward(g, &batch).unwrap()).unwrap()
        })
        .collect();
    let views: Vec<_> = fresh.iter().map(|a| a.view()).collect();
    let fresh = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
    let mut predictor = model.predictor(16).unwrap();
    let first = predictor.predict(g, &model, x.view()).unwrap();
    assert_eq!(first, fresh, "kept buffers, not the bits of fresh ones");
    let on_cpu = reference.predict(&CpuBackend, x.view()).unwrap();
    let worst = (&first - &on_cpu)
        .iter()
        .fold(0.0f32, |m, d| m.max(d.abs()));
    assert!(worst < 1e-4, "off the CPU twin by {worst}");
    // Dropout is off when predicting: the same outputs every call, and nothing created.
    let before = ctx.counters();
    for _ in 0..5 {
        assert_eq!(predictor.predict(g, &model, x.view()).unwrap(), first);
    }
    let after = ctx.counters();
    assert_eq!(
        (
            after.buffers_created - before.buffers_created,
            after.bind_groups_created - before.bind_groups_created,
        ),
        (0, 0)
    );
}

#[test]
fn a_predictor_refuses_another_architecture_and_changes_nothing() {
    let spec = MlpSpec::new(2)
        .layer(6, Activation::Tanh)
        .layer(2, Activation::Identity);
    for (backend_name, result) in [
        ("cpu", refusals(&CpuBackend, &spec)),
        ("gpu", refusals(gpu(), &spec)),
    ] {
        let messages = result.unwrap_or_else(|e| panic!("{backend_name}: {e}"));
        assert!(
            messages[0].contains("a model of linear(2→6, tanh)")
                && messages[0].contains("not linear(2→6, relu)"),
            "{backend_name}: {}",
            messages[0]
        );
        assert!(messages[1].contains("3 features"), "{}", messages[1]);
        assert!(messages[2].contains("x[1, 0] is inf"), "{}", messages[2]);
        assert!(messages[3].contains("at least 1 row"), "{}", messages[3]);
    }
}

/// The messages of a predictor's refusals on `backend` (another architecture, another width,
/// a value that is not finite, a batch of 0), after checking that none changed what it keeps.
fn refusals<B: Backend>(backend: &B, spec: &MlpSpec) -> Result<Vec<String>, String> {
    let model = Mlp::new(backend, spec, Init::default(), 1).map_err(|e| e.to_string())?;
    let relu = MlpSpec::new(2)
        .layer(6, Activation::Relu)
        .layer(2, Activation::Identity);
    let other = Mlp::new(backend, &relu, Init::default(), 1).map_err(|e| e.to_string())?;
    let mut predictor = model.predictor(4).map_err(|e| e.to_string())?;
    let x = array![[1.0f32, 2.0], [3.0, 4.0]];
    let first = predictor
        .predict(backend, &model, x.view())
        .map_err(|e| e.to_string())?;
    let mut messages = Vec::new();
    for attempt in [
        predictor.predict(backend, &other, x.view()),
        predictor.predict(backend, &model, array![[1.0f32, 2.0, 3.0]].view()),
        predictor.predict(
            backend,
            &model,
            array![[1.0f32, 2.0], [f32::INFINITY, 0.0]].view(),
        ),
    ] {
        messages.push(match attempt {
            Ok(_) => return Err("a bad call was accepted".into()),
            Err(e) => e.to_string(),
        });
        if predictor.sizes_kept() != [2] {
            return Err(format!("kept {:?} after a refusal", predictor.sizes_kept()));
        }
    }
    messages.push(match model.predictor(0) {
        Ok(_) => return Err("a batch of 0 was accepted".into()),
        Err(e) => e.to_string(),
    });
    let again = predictor
        .predict(backend, &model, x.view())
        .map_err(|e| e.to_string())?;
    if again != first {
        return Err("a refusal changed the predictions".into());
    }
    Ok(messages)
}

#[test]
fn a_saved_model_rebuilds_from_its_file_alone() {
    let dir = scratch("from-file");
    let path = dir.join("model.safetensors");
    let spec = MlpSpec::new(2)
        .layer(5, Activation::Tanh)
        .layer(4, Activation::Sigmoid)
        .layer(3, Activation::Identity);
    let model = Mlp::new(gpu(), &spec, Init::HeUniform, 4).unwrap();
    model.save_safetensors(gpu(), &path).unwrap();
    for rebuilt in [
        Mlp::from_safetensors(&CpuBackend, &path).map(|m| m.parameters_flat(&CpuBackend)),
        Mlp::from_safetensors(gpu(), &path).map(|m| m.parameters_flat(gpu())),
    ] {
        assert_eq!(
            rebuilt.unwrap().unwrap(),
            model.parameters_flat(gpu()).unwrap()
        );
    }
    let rebuilt = Mlp::from_safetensors(&CpuBackend, &path).unwrap();
    assert_eq!(rebuilt.spec(), &spec);
    let x = random_matrix(&mut rng(8), 6, 2, 1.0);
    let (a, b) = (
        rebuilt.predict(&CpuBackend, x.view()).unwrap(),
        model.predict(gpu(), x.view()).unwrap(),
    );
    assert!((&a - &b).iter().all(|d| d.abs() < 1e-5));
}

#[test]
fn a_file_from_another_architecture_is_refused_by_name() {
    let dir = scratch("architecture");
    let path = dir.join("tanh.safetensors");
    let tanh = MlpSpec::new(2)
        .layer(6, Activation::Tanh)
        .layer(2, Activation::Identity);
    Mlp::new(&CpuBackend, &tanh, Init::default(), 1)
        .unwrap()
        .save_safetensors(&CpuBackend, &path)
        .unwrap();
    let relu = MlpSpec::new(2)
        .layer(6, Activation::Relu)
        .layer(2, Activation::Identity);
    let mut model = Mlp::new(gpu(), &relu, Init::default(), 2).unwrap();
    let before = model.parameters_flat(gpu()).unwrap();
    let err = model.load_safetensors(gpu(), &path).unwrap_err();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("layer 0's activation is tanh in the file, relu in the model"),
        "{message}"
    );
    assert_eq!(model.parameters_flat(gpu()).unwrap(), before);
    // A file that does not describe itself cannot rebuild a model, and says what to do.
    let bare = dir.join("bare.safetensors");
    let bias: &[f32] = &[1.0, 2.0];
    std::fs::write(&bare, bare_safetensors(&[("layers.0.bias", &[2], bias)])).unwrap();
    let err = Mlp::from_safetensors(&CpuBackend, &bare)
        .unwrap_err()
        .to_string();
    assert!(err.contains("load_safetensors"), "{err}");
}

#[test]
fn a_model_file_that_cannot_be_read_or_written_says_so_by_its_name() {
    let dir = scratch("unreadable");
    let missing = dir.join("missing.safetensors");
    let err = Mlp::from_safetensors(&CpuBackend, &missing).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "load model file",
                ..
            }
        ),
        "{err}"
    );
    let spec = MlpSpec::new(2).layer(2, Activation::Identity);
    let model = Mlp::new(&CpuBackend, &spec, Init::default(), 1).unwrap();
    // A directory is no file to save into.
    let err = model.save_safetensors(&CpuBackend, &dir).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "save model file",
                ..
            }
        ),
        "{err}"
    );
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    let message = Mlp::from_safetensors(&CpuBackend, &garbage)
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(&garbage.display().to_string()) && !message.contains("checkpoint"),
        "{message}"
    );
}

#[test]
fn a_model_file_carries_its_standardisation() {
    let dir = scratch("standardizer");
    let path = dir.join("standardised.safetensors");
    let raw = array![[100.0f32, -3.0], [140.0, -1.0], [90.0, 2.0]];
    let data = steepest::Dataset::regression(raw.clone(), array![[1.0f32], [2.0], [3.0]]).unwrap();
    let standardizer = steepest::Standardizer::fit(&data);
    let spec = MlpSpec::new(2)
        .layer(4, Activation::Tanh)
        .layer(1, Activation::Identity);
    let mut model = Mlp::new(&CpuBackend, &spec, Init::default(), 3).unwrap();
    // Raw inputs through the attached standardizer give what standardised ones give without.
    let by_hand = model
        .predict(
            &CpuBackend,
            standardizer.transform_x(raw.view()).unwrap().view(),
        )
        .unwrap();
    model.set_standardizer(Some(standardizer.clone())).unwrap();
    assert_eq!(model.predict(&CpuBackend, raw.view()).unwrap(), by_hand);
    model.save_safetensors(&CpuBackend, &path).unwrap();
    let rebuilt = Mlp::from_safetensors(gpu(), &path).unwrap();
    assert_eq!(
        rebuilt.standardizer(),
        Some(&standardizer),
        "stored bit for bit"
    );
    let on_gpu = rebuilt.predict(gpu(), raw.view()).unwrap();
    assert!((&on_gpu - &by_hand).iter().all(|d| d.abs() < 1e-5));
    // A standardizer for another width is refused; stored statistics are checked.
    let wrong = steepest::Standardizer::new(vec![0.0; 3], vec![1.0; 3]).unwrap();
    assert!(model.set_standardizer(Some(wrong)).is_err());
    for (mean, std) in [
        (vec![0.0], vec![0.0]),
        (vec![f32::NAN], vec![1.0]),
        (vec![0.0, 1.0], vec![1.0]),
        (vec![], vec![]),
    ] {
        assert!(steepest::Standardizer::new(mean, std).is_err());
    }
    let restored =
        steepest::Standardizer::new(standardizer.mean().to_vec(), standardizer.std().to_vec())
            .unwrap();
    assert_eq!(restored, standardizer);
    assert!(restored.transform_x(array![[1.0f32]].view()).is_err());
}

/// The confusion matrix counts each true class's predictions: a trained blob classifier's
/// against the predictions themselves, on both backends alike; a one-logit binary model's
/// two classes; data without labels and a model of the wrong width refused.
#[test]
fn the_confusion_matrix_counts_predictions_by_true_class() {
    let data = steepest::data::blobs(90, &[[2.0, 0.0], [-2.0, 0.5], [0.0, -2.0]], 0.8, 5).unwrap();
    let spec = MlpSpec::new(2)
        .layer(12, Activation::Tanh)
        .layer(3, Activation::Identity);
    let trainer = steepest::Trainer::new(
        steepest::Adam::default().lr(0.05),
        steepest::Loss::SoftmaxCrossEntropy,
    )
    .batch_size(16)
    .epochs(5);
    let mut cpu_model = Mlp::new(&CpuBackend, &spec, Init::default(), 2).unwrap();
    trainer
        .fit(&CpuBackend, &mut cpu_model, &data, None)
        .unwrap();
    let matrix = cpu_model.confusion_matrix(&CpuBackend, &data).unwrap();
    let predicted = cpu_model
        .predict_classes(&CpuBackend, data.x().view())
        .unwrap();
    let labels = data.labels().unwrap();
    for t in 0..3 {
        for p in 0..3 {
            let count = (labels.iter().zip(&predicted))
                .filter(|&(&l, &q)| l == t && q == p)
                .count() as u64;
            assert_eq!(matrix[[t, p]], count, "[{t}, {p}]");
        }
    }
    assert_eq!(matrix.sum(), 90);
    assert!(
        matrix.diag().sum() > 60,
        "a trained classifier is mostly right: {matrix}"
    );
    let mut gpu_model = Mlp::new(gpu(), &spec, Init::default(), 2).unwrap();
    let trained = cpu_model.network().parameters_flat(&CpuBackend).unwrap();
    gpu_model
        .network_mut()
        .set_parameters_flat(gpu(), &trained)
        .unwrap();
    assert_eq!(gpu_model.confusion_matrix(gpu(), &data).unwrap(), matrix);
    // One logit for two classes.
    let binary = steepest::data::moons(40, 0.1, 3).unwrap();
    let labels: Vec<usize> = binary.y().column(0).iter().map(|&v| v as usize).collect();
    let binary = Dataset::classification(binary.x().clone(), &labels, 2).unwrap();
    let one = Mlp::new(
        &CpuBackend,
        &MlpSpec::stack(&[2, 4, 1], Activation::Tanh),
        Init::default(),
        1,
    )
    .unwrap();
    let two_by_two = one.confusion_matrix(&CpuBackend, &binary).unwrap();
    assert_eq!((two_by_two.dim(), two_by_two.sum()), ((2, 2), 40));
    // Refusals.
    let regression = Dataset::regression(data.x().clone(), data.x().clone()).unwrap();
    let err = cpu_model
        .confusion_matrix(&CpuBackend, &regression)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no class labels"), "{err}");
    let err = cpu_model
        .confusion_matrix(&CpuBackend, &binary)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 classes and the model 3 outputs"), "{err}");
}
