//! From host data to predictions, and models rebuilt from their files alone: `predict` and
//! `predict_classes` on both backends (batched), `Mlp::from_safetensors`, and files refused by a
//! model of another architecture.

mod common;

use common::{gpu, random_matrix, rng};
use ndarray::{Array2, array};
use steepest::{Activation, Backend, CpuBackend, Error, Init, Mlp, MlpSpec};

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
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors_view(&data);
    std::fs::write(&bare, view).unwrap();
    let err = Mlp::from_safetensors(&CpuBackend, &bare)
        .unwrap_err()
        .to_string();
    assert!(err.contains("load_safetensors"), "{err}");
}

/// A minimal safetensors file holding one F32 tensor `layers.0.bias` [2] and no metadata.
fn safetensors_view(data: &[u8]) -> Vec<u8> {
    let header =
        r#"{"layers.0.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.to_string();
    let mut header = header.into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header);
    file.extend(data);
    file
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
