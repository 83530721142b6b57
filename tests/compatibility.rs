//! Files written before the Layer/Model seam still load: a model file and a training
//! checkpoint that steepest wrote at commit 248cf8d (the last `Mlp` of its own), committed in
//! `tests/fixtures/v1_*`, with the values that version computed from them in
//! `v1_expected.txt`.
//!
//! They were written by a program that trained `MlpSpec::new(2).layer(8, Tanh).layer(8,
//! Relu).layer(2, Identity)` (seed 11) on `data::spirals(60, 0.05, 3)` with Adam (lr 0.01),
//! softmax cross-entropy, batches of 16, seed 5: it saved the checkpoint after one epoch and
//! one step, finished that epoch, and recorded the parameters; then attached a standardizer
//! (mean [0.5, −0.25], std [2, 4]), saved the model file and recorded its predictions for
//! [[0.1, 0.2], [−1, 3], [2.5, −0.5]].

use ndarray::array;
use steepest::{Activation, Adam, CpuBackend, Init, Loss, Mlp, MlpSpec, Session, Trainer, data};

/// The committed files, compiled in so the test binary runs anywhere (a device machine has no
/// source tree), and written out where the loaders can read them.
fn fixture(name: &str) -> std::path::PathBuf {
    let bytes: &[u8] = match name {
        "v1_model.safetensors" => include_bytes!("fixtures/v1_model.safetensors"),
        "v1_checkpoint.safetensors" => include_bytes!("fixtures/v1_checkpoint.safetensors"),
        other => panic!("no fixture {other}"),
    };
    let dir = std::env::temp_dir().join(format!("steepest-v1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The numbers on line `key` of `v1_expected.txt`.
fn expected(key: &str) -> Vec<f32> {
    let text = include_str!("fixtures/v1_expected.txt");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} line in v1_expected.txt"));
    line.split(',').map(|v| v.parse().unwrap()).collect()
}

fn spec() -> MlpSpec {
    MlpSpec::new(2)
        .layer(8, Activation::Tanh)
        .layer(8, Activation::Relu)
        .layer(2, Activation::Identity)
}

#[test]
fn a_model_file_from_before_the_seam_loads_and_predicts_the_same() {
    let x = array![[0.1f32, 0.2], [-1.0, 3.0], [2.5, -0.5]];
    let want = expected("predictions");
    let model = Mlp::from_safetensors(&CpuBackend, fixture("v1_model.safetensors")).unwrap();
    assert_eq!(model.spec(), &spec());
    let got = model.predict(&CpuBackend, x.view()).unwrap();
    assert_eq!(got.iter().copied().collect::<Vec<_>>(), want, "bit for bit");

    let mut built = Mlp::new(&CpuBackend, &spec(), Init::default(), 0).unwrap();
    built
        .load_safetensors(&CpuBackend, fixture("v1_model.safetensors"))
        .unwrap();
    assert_eq!(built.predict(&CpuBackend, x.view()).unwrap(), got);
}

#[test]
fn a_checkpoint_from_before_the_seam_resumes_the_same_trajectory() {
    let data = data::spirals(60, 0.05, 3).unwrap();
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
        .batch_size(16)
        .epochs(2)
        .seed(5);
    let mut model = Mlp::new(&CpuBackend, &spec(), Init::default(), 11).unwrap();
    let mut session = Session::new(&trainer, &CpuBackend, &mut model, &data, None).unwrap();
    session
        .load_checkpoint(fixture("v1_checkpoint.safetensors"))
        .unwrap();
    session.run_epoch().unwrap();
    assert_eq!(
        session.model().parameters_flat(&CpuBackend).unwrap(),
        expected("after_resume"),
        "the rest of the epoch, bit for bit"
    );
}
