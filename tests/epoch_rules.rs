//! The rules applied after each epoch and what they watch. `Trainer::reduce_lr_on_plateau`:
//! each epoch trains at the rate the rule leaves after the epochs before it (PyTorch's
//! `ReduceLROnPlateau` stepped with the validation loss after every epoch), the optimizer
//! really updates at that rate, and a resumed run lowers it at the same epochs as the run it
//! continues. `Trainer::watch(Watched::Accuracy)`: the plateau rule, `restore_best` and the
//! learning-rate rule follow the accuracy, higher being better, also across a resume. The
//! rule's own arithmetic is unit-tested in `src/optim/plateau.rs`; refused settings are in
//! `bad_settings.rs`, refused files in `checkpoint_refusals.rs`.

mod common;

use std::path::Path;

use common::checkpoint_run::{blobs, scratch, spec, trainer};
use common::gpu;
use steepest::optim::{Mode, Threshold};
use steepest::{
    Adam, Backend, CpuBackend, Dataset, History, Init, Loss, Mlp, ReduceLrOnPlateau, Session,
    StopReason, Trainer, Watched,
};

/// The rates PyTorch's scheduler would have left for each epoch of `history`, stepped from `lr`
/// with each epoch's `watched` value.
fn rates_the_rule_gives(
    rule: ReduceLrOnPlateau,
    lr: f64,
    history: &History,
    watched: Watched,
) -> Vec<f64> {
    let mut state = rule.start(lr);
    let mut rate = lr;
    let mut rates = Vec::new();
    for record in &history.epochs {
        rates.push(rate);
        rate = rule.step(&mut state, watched.of(record));
    }
    rates
}

fn rates(history: &History) -> Vec<f64> {
    history.epochs.iter().map(|r| r.lr).collect()
}

/// `run` in two parts: its first `epochs` epochs checkpointed to `path`, then the rest in a
/// session of a model with other weights resumed from the file. The whole run's history and
/// the parameters it ends with.
fn in_two_parts<B: Backend>(
    run: &Trainer,
    backend: &B,
    (train, val): (&Dataset, &Dataset),
    epochs: usize,
    path: &Path,
) -> (History, Vec<f32>) {
    let mut first_part = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    run.clone()
        .epochs(epochs)
        .checkpoint(path)
        .fit(backend, &mut first_part, train, Some(val))
        .unwrap();
    let mut resumed = Mlp::new(backend, &spec(), Init::HeNormal, 99).unwrap();
    let mut session = Session::new(run, backend, &mut resumed, train, Some(val)).unwrap();
    session.load_checkpoint(path).unwrap();
    session.run().unwrap();
    let history = session.into_history();
    (history, resumed.parameters_flat(backend).unwrap())
}

/// A rule that lowers the rate a few times within 30 epochs of the checkpoint tests' run, on
/// its validation and its training loss: improvements of less than 5% do not count.
fn halving() -> ReduceLrOnPlateau {
    ReduceLrOnPlateau::default()
        .factor(0.5)
        .patience(1)
        .threshold(0.05, Threshold::Relative)
}

fn each_epoch_trains_at_the_rules_rate<B: Backend>(backend: &B) {
    let (train, val) = blobs().split(0.4, 2).unwrap();
    for (validation, watched) in [(Some(&val), "validation"), (None, "training")] {
        let mut model = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
        let history = trainer()
            .epochs(30)
            .reduce_lr_on_plateau(halving())
            .fit(backend, &mut model, &train, validation)
            .unwrap();
        let got = rates(&history);
        assert_eq!(
            got,
            rates_the_rule_gives(halving(), 0.02, &history, Watched::Loss),
            "watching the {watched} loss"
        );
        let lowest = got.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            lowest <= 0.005,
            "the rate fell at least twice ({watched} loss): {got:?}"
        );
    }
}

#[test]
fn each_epoch_trains_at_the_rate_the_rule_leaves() {
    each_epoch_trains_at_the_rules_rate(&CpuBackend);
    each_epoch_trains_at_the_rules_rate(gpu());
}

/// A rule that halves the rate after epoch 2 and then (in its cooldown) never again makes the
/// same parameters as a run that trains two epochs at 0.02, is checkpointed, and continues at
/// 0.01 without the rule: the optimizer takes the lowered rate, nothing else changes.
fn the_optimizer_steps_at_the_lowered_rate<B: Backend>(backend: &B, dir: &Path) {
    let data = blobs();
    // Every epoch after the first misses an absolute threshold of 1e9.
    let once = ReduceLrOnPlateau::default()
        .factor(0.5)
        .patience(0)
        .threshold(1e9, Threshold::Absolute)
        .cooldown(10);
    let mut ruled = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let history = trainer()
        .epochs(4)
        .reduce_lr_on_plateau(once)
        .fit(backend, &mut ruled, &data, None)
        .unwrap();
    assert_eq!(rates(&history), [0.02, 0.02, 0.01, 0.01]);

    let path = dir.join("halved.safetensors");
    let mut halved = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    trainer()
        .epochs(2)
        .checkpoint(&path)
        .fit(backend, &mut halved, &data, None)
        .unwrap();
    let slower = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
        .batch_size(16)
        .seed(3)
        .epochs(4);
    let mut session = Session::new(&slower, backend, &mut halved, &data, None).unwrap();
    session.load_checkpoint_overriding_settings(&path).unwrap();
    session.run().unwrap();
    drop(session);
    assert_eq!(
        ruled.parameters_flat(backend).unwrap(),
        halved.parameters_flat(backend).unwrap()
    );
}

#[test]
fn the_optimizer_steps_at_the_lowered_rate_on_both_backends() {
    let dir = scratch("lr-plateau-rate");
    the_optimizer_steps_at_the_lowered_rate(&CpuBackend, &dir);
    the_optimizer_steps_at_the_lowered_rate(gpu(), &dir);
}

/// A rate set between epochs (`Session::set_lr`) is in the checkpoint: a strict resume
/// continues at it, bit for bit the run that never stopped.
fn a_set_rate_survives_a_resume<B: Backend>(backend: &B, dir: &Path) {
    let data = blobs();
    let run = trainer().epochs(3);
    let mut straight = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&run, backend, &mut straight, &data, None).unwrap();
    session.run_epoch().unwrap();
    session.set_lr(0.005).unwrap();
    session.run_epoch().unwrap();
    session.run_epoch().unwrap();
    assert_eq!(rates(session.history()), [0.02, 0.005, 0.005]);
    drop(session);

    let path = dir.join("set-rate.safetensors");
    let mut first = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&run, backend, &mut first, &data, None).unwrap();
    session.run_epoch().unwrap();
    session.set_lr(0.005).unwrap();
    session.save_checkpoint(&path).unwrap();
    drop(session);
    let mut resumed = Mlp::new(backend, &spec(), Init::HeNormal, 99).unwrap();
    let mut session = Session::new(&run, backend, &mut resumed, &data, None).unwrap();
    session.load_checkpoint(&path).unwrap();
    assert_eq!(session.lr(), 0.005);
    session.run_epoch().unwrap();
    session.run_epoch().unwrap();
    drop(session);
    assert_eq!(
        resumed.parameters_flat(backend).unwrap(),
        straight.parameters_flat(backend).unwrap()
    );
}

#[test]
fn a_rate_set_between_epochs_survives_a_resume() {
    let dir = scratch("set-rate");
    a_set_rate_survives_a_resume(&CpuBackend, &dir);
    a_set_rate_survives_a_resume(gpu(), &dir);
}

/// A run resumed from a checkpoint after the rate has fallen once lowers it again at the epochs
/// the run it continues did, and ends with the same bits: the rate, the best loss and the
/// epochs counted since are in the file.
fn a_resumed_run_lowers_the_rate_where_it_did<B: Backend>(backend: &B, dir: &Path) {
    let (train, val) = blobs().split(0.4, 2).unwrap();
    let run = trainer().epochs(30).reduce_lr_on_plateau(halving());
    let mut straight = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let straight_history = run.fit(backend, &mut straight, &train, Some(&val)).unwrap();
    let straight_rates = rates(&straight_history);
    // Resume between the first reduction and a later one.
    let first = straight_rates.iter().position(|&r| r < 0.02).unwrap();
    let resume_at = first + 1;
    assert!(
        straight_rates[resume_at..]
            .iter()
            .any(|&r| r < straight_rates[resume_at]),
        "the rate falls again after epoch {resume_at}: {straight_rates:?}"
    );

    let path = dir.join("resume.safetensors");
    let (history, params) = in_two_parts(&run, backend, (&train, &val), resume_at, &path);
    assert_eq!(history.epochs, straight_history.epochs);
    assert_eq!(params, straight.parameters_flat(backend).unwrap());
}

#[test]
fn a_resumed_run_lowers_the_rate_at_the_same_epochs() {
    let dir = scratch("lr-plateau-resume");
    a_resumed_run_lowers_the_rate_where_it_did(&CpuBackend, &dir);
    a_resumed_run_lowers_the_rate_where_it_did(gpu(), &dir);
}

/// Watching the validation accuracy (40 samples: steps of 1/40), a run stops five epochs after
/// the first epoch of its highest accuracy, restores that epoch, lowers the rate as PyTorch's
/// rule in mode max does, and a run resumed on the way does all of it at the same epochs.
fn accuracy_is_watched<B: Backend>(backend: &B, dir: &Path) {
    let (train, val) = blobs().split(0.4, 2).unwrap();
    let rule = ReduceLrOnPlateau::default()
        .mode(Mode::Max)
        .factor(0.5)
        .patience(1);
    let run = trainer()
        .epochs(200)
        .watch(Watched::Accuracy)
        .stop_on_plateau(5, 0.0)
        .restore_best(true)
        .reduce_lr_on_plateau(rule);
    let mut straight = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let history = run.fit(backend, &mut straight, &train, Some(&val)).unwrap();
    let accuracies: Vec<f64> = history
        .epochs
        .iter()
        .map(|r| r.val_accuracy.unwrap())
        .collect();
    let highest = accuracies.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let best_epoch = accuracies.iter().position(|&a| a == highest).unwrap() + 1;
    assert_eq!(history.stop, StopReason::Plateau { best: highest });
    assert_eq!(
        history.last().unwrap().epoch,
        best_epoch + 5,
        "{accuracies:?}"
    );
    assert_eq!(history.restored_epoch, Some(best_epoch));
    assert_eq!(
        rates(&history),
        rates_the_rule_gives(rule, 0.02, &history, Watched::Accuracy)
    );
    assert!(
        rates(&history).iter().any(|&r| r < 0.02),
        "the rate fell: {:?}",
        rates(&history)
    );
    // Not the loss's choices: the lowest validation loss is at another epoch here.
    let lowest_loss = history
        .epochs
        .iter()
        .min_by(|a, b| a.val_loss.unwrap().total_cmp(&b.val_loss.unwrap()))
        .unwrap()
        .epoch;
    assert_ne!(lowest_loss, best_epoch, "{history:?}");

    let path = dir.join("accuracy.safetensors");
    let resumed = in_two_parts(&run, backend, (&train, &val), best_epoch + 2, &path);
    assert_eq!(
        resumed,
        (history, straight.parameters_flat(backend).unwrap())
    );
}

#[test]
fn watching_accuracy_stops_restores_and_lowers_the_rate_by_it() {
    let dir = scratch("watch-accuracy");
    accuracy_is_watched(&CpuBackend, &dir);
    accuracy_is_watched(gpu(), &dir);
}
