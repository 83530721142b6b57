//! Checkpoints refused without touching anything: corrupted, truncated or foreign files, files
//! saved under other training settings (named), unused optimizer buffers, non-finite
//! tensors, and stopping-rule memory (the learning-rate rule's too) or a history that does not
//! parse.

mod common;

use std::path::Path;

use common::checkpoint_run::{blobs, scratch, spec, trainer};
use common::gpu;
use steepest::{
    Activation, Adam, Backend, CpuBackend, Error, Init, Loss, Mlp, MlpSpec, ReduceLrOnPlateau,
    Session, Sgd, Swa, Trainer, Watched, optim::ParamGroup,
};

#[test]
fn bad_checkpoints_are_refused_and_change_nothing() {
    let dir = scratch("bad");
    let path = dir.join("good.safetensors");
    let (data, trainer) = (blobs(), trainer());
    let mut model = Mlp::new(gpu(), &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&trainer, gpu(), &mut model, &data, None).unwrap();
    session.step().unwrap();
    session.save_checkpoint(&path).unwrap();
    session.step().unwrap();
    let params = session.model().parameters_flat(gpu()).unwrap();
    let state = session.optimizer_state().unwrap();
    let good = std::fs::read(&path).unwrap();

    let bad = dir.join("bad.safetensors");
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [0, 4, 8, 20, good.len() / 2, good.len() - 1] {
        cases.push((format!("truncated at {cut}"), good[..cut].to_vec()));
    }
    let mut flipped = good.clone();
    flipped[12] ^= 0x55;
    cases.push(("a corrupted header".into(), flipped));
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    cases.push(("a header length past the end".into(), huge));
    for (what, bytes) in cases {
        std::fs::write(&bad, &bytes).unwrap();
        let err = session.load_checkpoint(&bad).unwrap_err();
        assert!(matches!(err, Error::Checkpoint { .. }), "{what}: {err:?}");
    }
    // A checkpoint of another network, and one of another optimizer.
    let other_spec = MlpSpec::new(2)
        .layer(5, Activation::Relu)
        .layer(3, Activation::Identity);
    let mut other = Mlp::new(gpu(), &other_spec, Init::default(), 1).unwrap();
    let other_path = dir.join("other.safetensors");
    Session::new(&trainer, gpu(), &mut other, &data, None)
        .unwrap()
        .save_checkpoint(&other_path)
        .unwrap();
    let err = session.load_checkpoint(&other_path).unwrap_err();
    assert!(err.to_string().contains("architecture"), "{err}");
    let sgd = Trainer::new(Sgd::default(), Loss::SoftmaxCrossEntropy).batch_size(16);
    let mut same_shape = Mlp::new(gpu(), &spec(), Init::default(), 1).unwrap();
    let sgd_path = dir.join("sgd.safetensors");
    Session::new(&sgd, gpu(), &mut same_shape, &data, None)
        .unwrap()
        .save_checkpoint(&sgd_path)
        .unwrap();
    let err = session.load_checkpoint(&sgd_path).unwrap_err();
    assert!(err.to_string().contains("optimizer"), "{err}");
    assert!(matches!(
        session.load_checkpoint(dir.join("missing")),
        Err(Error::Io { .. })
    ));
    // Parameters-only files are not training checkpoints.
    let plain = dir.join("plain.safetensors");
    session.model().save_safetensors(gpu(), &plain).unwrap();
    assert!(matches!(
        session.load_checkpoint(&plain),
        Err(Error::Checkpoint { .. })
    ));

    assert_eq!(session.model().parameters_flat(gpu()).unwrap(), params);
    assert_eq!(session.optimizer_state().unwrap(), state);
    assert_eq!(session.steps(), 2);
}

/// A session set up as `trainer` on `blobs()`, for checkpoint tests.
fn check_settings_refused(saved: Trainer, resumed: Trainer, words: &str, dir: &Path) {
    let path = dir.join("settings.safetensors");
    let g = gpu();
    let data = blobs();
    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&saved, g, &mut model, &data, None).unwrap();
    session.step().unwrap();
    session.save_checkpoint(&path).unwrap();
    drop(session);
    let mut other = Mlp::new(g, &spec(), Init::default(), 9).unwrap();
    let before = other.parameters_flat(g).unwrap();
    let mut session = Session::new(&resumed, g, &mut other, &data, None).unwrap();
    let err = session.load_checkpoint(&path).unwrap_err().to_string();
    assert!(err.contains(words), "{err} lacks {words:?}");
    assert!(err.contains("load_checkpoint_overriding_settings"), "{err}");
    assert_eq!(session.steps(), 0);
    session.load_checkpoint_overriding_settings(&path).unwrap();
    assert_eq!(session.steps(), 1);
    drop(session);
    assert_ne!(other.parameters_flat(g).unwrap(), before);
}

#[test]
fn a_checkpoint_saved_under_other_settings_is_refused_by_name() {
    let dir = scratch("settings");
    let adam = |a: Adam| {
        Trainer::new(a, Loss::SoftmaxCrossEntropy)
            .batch_size(16)
            .seed(3)
    };
    check_settings_refused(trainer(), trainer().seed(4), "seed", &dir);
    check_settings_refused(trainer(), trainer().batch_size(8), "batch_size", &dir);
    check_settings_refused(
        trainer(),
        trainer().accumulate_grad_batches(2),
        "grad_batches",
        &dir,
    );
    check_settings_refused(trainer(), trainer().ema(0.9), "ema", &dir);
    check_settings_refused(trainer(), trainer().swa(Swa::new(2, 0.01)), "swa", &dir);
    check_settings_refused(trainer(), trainer().drop_last(true), "drop_last", &dir);
    check_settings_refused(
        trainer(),
        trainer().class_weights(vec![1.0, 2.0, 0.5]),
        "class_weights",
        &dir,
    );
    check_settings_refused(
        adam(Adam::default().lr(0.02)),
        adam(Adam::default().lr(0.03)),
        "lr: 0.02",
        &dir,
    );
    check_settings_refused(
        Trainer::new(
            Sgd::default().lr(0.1).momentum(0.9),
            Loss::SoftmaxCrossEntropy,
        ),
        Trainer::new(
            Sgd::default().lr(0.1).momentum(0.5),
            Loss::SoftmaxCrossEntropy,
        ),
        "momentum: 0.9",
        &dir,
    );
    // Turning restore_best on would keep no parameters from before the resume.
    check_settings_refused(
        trainer(),
        trainer().restore_best(true),
        "restore_best false, this run has true",
        &dir,
    );
    check_settings_refused(
        trainer().reduce_lr_on_plateau(ReduceLrOnPlateau::default()),
        trainer().reduce_lr_on_plateau(ReduceLrOnPlateau::default().patience(3)),
        "patience: 10, this run has patience: 3",
        &dir,
    );
    check_settings_refused(
        trainer(),
        trainer().reduce_lr_on_plateau(ReduceLrOnPlateau::default()),
        "lr_on_plateau None, this run has Some(",
        &dir,
    );
    check_settings_refused(
        trainer(),
        trainer().watch(Watched::Accuracy),
        "watched Loss, this run has Accuracy",
        &dir,
    );
    // Parameter groups change the trajectory: added, or with another setting.
    let no_decay = ParamGroup::matching("*.bias").weight_decay(0.0);
    check_settings_refused(
        trainer(),
        trainer().param_group(no_decay.clone()),
        "param_groups [], this run has [ParamGroup",
        &dir,
    );
    check_settings_refused(
        trainer().param_group(no_decay.clone()),
        trainer().param_group(no_decay.lr_scale(0.5)),
        "saved with param_groups lr_scale: 1.0, this run has lr_scale: 0.5;",
        &dir,
    );
    let first = ParamGroup::matching("layers.0.*");
    check_settings_refused(
        trainer().param_group(first.clone().frozen()),
        trainer().param_group(first),
        "saved with param_groups frozen: true, this run has frozen: false",
        &dir,
    );
}

#[test]
fn unused_optimizer_buffers_and_non_finite_tensors_are_refused() {
    let dir = scratch("refused");
    let path = dir.join("amsgrad.safetensors");
    let g = gpu();
    let data = blobs();
    let ams = Trainer::new(Adam::default().amsgrad(true), Loss::SoftmaxCrossEntropy);
    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&ams, g, &mut model, &data, None).unwrap();
    session.step().unwrap();
    session.save_checkpoint(&path).unwrap();
    drop(session);
    // The file keeps max_exp_avg_sq, which plain Adam does not: even with the settings
    // overridden, that state would be dropped silently.
    let plain = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy);
    let mut session = Session::new(&plain, g, &mut model, &data, None).unwrap();
    let err = session
        .load_checkpoint_overriding_settings(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_exp_avg_sq") && err.contains("does not keep"),
        "{err}"
    );
    drop(session);
    // Non-finite parameters in a file are refused by name.
    let bad = dir.join("nan.safetensors");
    let mut broken = Mlp::new(&CpuBackend, &spec(), Init::default(), 1).unwrap();
    let mut values = broken.parameters_flat(&CpuBackend).unwrap();
    values[5] = f32::NAN;
    // (set_parameters_flat refuses it: the arena is written directly.)
    CpuBackend
        .write_arena(broken.parameters_and_gradients().0, &values)
        .unwrap();
    broken.save_safetensors(&CpuBackend, &bad).unwrap();
    let before = model.parameters_flat(g).unwrap();
    let err = model.load_safetensors(g, &bad).unwrap_err().to_string();
    assert!(
        err.contains("layers.0.weight") && err.contains("finite"),
        "{err}"
    );
    assert_eq!(model.parameters_flat(g).unwrap(), before);
}

/// `file` with metadata entry `key` set to `value` (`None`: the entry renamed away), the header
/// reframed around its new length.
fn with_metadata(file: &[u8], key: &str, value: Option<&str>) -> Vec<u8> {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&file[8..8 + n]).unwrap();
    let entry = format!("\"{key}\":\"");
    let start = header
        .find(&entry)
        .unwrap_or_else(|| panic!("no {key} in the file"));
    let end = start + entry.len() + header[start + entry.len()..].find('"').unwrap() + 1;
    let replacement = match value {
        Some(v) => format!("{entry}{v}\""),
        None => format!("\"renamed_{}", &header[start + 1..end]),
    };
    let header = format!("{}{replacement}{}", &header[..start], &header[end..]);
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(&file[8 + n..]);
    out
}

#[test]
fn what_the_stopping_rules_remember_and_the_history_are_checked_when_loaded() {
    let dir = scratch("stopping-memory");
    let path = dir.join("plateau.safetensors");
    let data = blobs();
    let run = trainer()
        .epochs(2)
        .stop_on_plateau(5, 0.0)
        .diverge_above(100.0)
        .reduce_lr_on_plateau(ReduceLrOnPlateau::default());
    let mut model = Mlp::new(&CpuBackend, &spec(), Init::default(), 1).unwrap();
    run.clone()
        .checkpoint(&path)
        .fit(&CpuBackend, &mut model, &data, None)
        .unwrap();
    let good = std::fs::read(&path).unwrap();
    let mut session = Session::new(&run, &CpuBackend, &mut model, &data, None).unwrap();
    session.load_checkpoint(&path).unwrap();
    let params = session.model().parameters_flat(&CpuBackend).unwrap();
    let bad = dir.join("bad.safetensors");
    for (key, value, words) in [
        (
            "plateau_best",
            Some("NaN"),
            "\"plateau_best\" = \"NaN\" is not a finite loss",
        ),
        ("plateau_best", Some("0.5x"), "is not a finite loss"),
        (
            "first_loss",
            Some("inf"),
            "\"first_loss\" = \"inf\" is not a finite loss",
        ),
        ("plateau_best_epoch", Some("-1"), "is not an integer"),
        (
            "plateau_best",
            None,
            "one of plateau_best and plateau_best_epoch",
        ),
        (
            "plateau_best_epoch",
            None,
            "one of plateau_best and plateau_best_epoch",
        ),
        (
            "history.epochs",
            Some("epoch,loss\\n1,0.5"),
            "not a history steepest wrote",
        ),
        (
            "history.steps",
            Some("step,epoch,loss,lr\\n3,1,0.5"),
            "\"history.steps\" is not a history steepest wrote",
        ),
        (
            "lr_plateau_lr",
            Some("-0.5"),
            "\"lr_plateau_lr\" = \"-0.5\" is not a learning rate",
        ),
        ("lr_plateau_lr", Some("inf"), "is not a learning rate"),
        ("lr_plateau_best", Some("NaN"), "is not a watched value"),
        ("lr_plateau_bad_epochs", Some("1.5"), "is not an integer"),
        ("lr_plateau_cooldown_left", None, "but not all"),
    ] {
        std::fs::write(&bad, with_metadata(&good, key, value)).unwrap();
        let err = session.load_checkpoint(&bad).unwrap_err();
        assert!(
            matches!(err, Error::Checkpoint { .. }) && err.to_string().contains(words),
            "{key} = {value:?}: {err}"
        );
        assert_eq!(
            session.steps(),
            14,
            "{key}: unchanged (two epochs of 7 steps)"
        );
        assert_eq!(
            session.model().parameters_flat(&CpuBackend).unwrap(),
            params
        );
    }
    // The editing itself leaves a file that loads.
    std::fs::write(&bad, with_metadata(&good, "first_loss", Some("1.5"))).unwrap();
    session.load_checkpoint(&bad).unwrap();
}
