//! Checkpoints: the safetensors format byte for byte, files PyTorch writes, resumes that are
//! bit-identical and stop (or restore the best epoch) where the run they continue does, atomic
//! saves, divergence never saved, and fuzzed loading that never panics
//! (refused files are in `checkpoint_refusals.rs`).

mod common;

use std::path::Path;

use common::checkpoint_run::{blobs, scratch, spec, trainer};
use common::gpu;
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use steepest::optim::OneCycle;
use steepest::{
    Activation, AdamW, Asgd, Backend, CpuBackend, Error, Init, Loss, LrSchedule, Mlp, MlpSpec,
    NAdam, ParamGroup, Session, Sgd, StopReason, Swa, Trainer, data,
};

/// The header of a safetensors file: its JSON text and where the data starts.
fn header(bytes: &[u8]) -> (String, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (String::from_utf8(bytes[8..8 + n].to_vec()).unwrap(), 8 + n)
}

/// `data_offsets` of tensor `name` in a header, read with plain string search.
fn offsets(header: &str, name: &str) -> (usize, usize) {
    let entry = &header[header.find(&format!("\"{name}\"")).unwrap()..];
    let list = &entry[entry.find("\"data_offsets\"").unwrap()..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    let mut it = list.split(',').map(|v| v.trim().parse::<usize>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn saved_parameters_follow_the_safetensors_format_byte_for_byte() {
    let dir = scratch("format");
    let model = Mlp::new(&CpuBackend, &spec(), Init::default(), 1).unwrap();
    let path = dir.join("model.safetensors");
    model.save_safetensors(&CpuBackend, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (text, data_start) = header(&bytes);
    assert!(
        text.starts_with('{') && text.trim_end().ends_with('}'),
        "{text}"
    );
    assert_eq!(data_start % 8, 0, "the header is padded to 8 bytes");
    let mut end = 0;
    for (name, array) in model.state_dict(&CpuBackend).unwrap() {
        let shape: Vec<String> = array.shape().iter().map(|d| d.to_string()).collect();
        let entry = &text[text.find(&format!("\"{name}\"")).unwrap()..];
        assert!(entry.contains("\"dtype\":\"F32\""), "{name}: {entry}");
        assert!(
            entry.contains(&format!("\"shape\":[{}]", shape.join(","))),
            "{name}: {entry}"
        );
        let (from, to) = offsets(&text, &name);
        let expected: Vec<u8> = array.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            &bytes[data_start + from..data_start + to],
            &expected[..],
            "{name}"
        );
        end = end.max(to);
    }
    assert_eq!(
        bytes.len(),
        data_start + end,
        "nothing after the last tensor"
    );
    assert!(text.contains("\"__metadata__\""));
}

#[test]
fn a_file_written_as_pytorch_writes_it_loads() {
    // safetensors.torch.save_file's layout, built by hand: header length, JSON header padded
    // with spaces to 8 bytes, then little-endian F32 data.
    let weight: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 3.0).collect();
    let bias = [0.5f32, -0.5, 1.5];
    let spec = MlpSpec::new(8).layer(3, Activation::Relu);
    let mut json = String::from(
        "{\"__metadata__\":{\"format\":\"pt\"},\
         \"layers.0.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},\
         \"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[3,8],\"data_offsets\":[12,108]}}",
    );
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json.as_bytes());
    bytes.extend(bias.iter().chain(&weight).flat_map(|v| v.to_le_bytes()));
    let dir = scratch("pytorch");
    let path = dir.join("torch.safetensors");
    std::fs::write(&path, &bytes).unwrap();

    for backend in [0, 1] {
        let check = |state: Vec<(String, ArrayD<f32>)>| {
            assert_eq!(
                state[0].1,
                ArrayD::from_shape_vec(IxDyn(&[3, 8]), weight.clone()).unwrap()
            );
            assert_eq!(state[1].1.as_slice().unwrap(), &bias);
        };
        if backend == 0 {
            let mut model = Mlp::new(&CpuBackend, &spec, Init::default(), 1).unwrap();
            model.load_safetensors(&CpuBackend, &path).unwrap();
            check(model.state_dict(&CpuBackend).unwrap());
        } else {
            let mut model = Mlp::new(gpu(), &spec, Init::default(), 1).unwrap();
            model.load_safetensors(gpu(), &path).unwrap();
            check(model.state_dict(gpu()).unwrap());
        }
    }
}

/// 2N steps straight, against N steps, a save, a load into a fresh model and session, and N
/// more: the parameters and optimizer state must be bit-identical.
fn resume_is_bit_identical<B: Backend>(backend: &B, dir: &Path, trainer: &Trainer) {
    let data = blobs();
    let n = 10; // 100 samples in batches of 16: step 10 is in the middle of epoch 2
    let mut straight = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(trainer, backend, &mut straight, &data, None).unwrap();
    for _ in 0..2 * n {
        session.step().unwrap();
    }
    let straight_state = session.optimizer_state().unwrap();
    let straight_average = session.averaged_parameters().unwrap();
    let straight_record = session.run_epoch().unwrap();
    drop(session);
    let straight_params = straight.parameters_flat(backend).unwrap();

    let path = dir.join("resume.safetensors");
    let mut first = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(trainer, backend, &mut first, &data, None).unwrap();
    for _ in 0..n {
        session.step().unwrap();
    }
    session.save_checkpoint(&path).unwrap();
    drop(session);

    // Another initialisation: everything must come from the file.
    let mut resumed = Mlp::new(backend, &spec(), Init::HeNormal, 99).unwrap();
    let mut session = Session::new(trainer, backend, &mut resumed, &data, None).unwrap();
    session.load_checkpoint(&path).unwrap();
    assert_eq!(session.steps(), n as u64);
    for _ in 0..n {
        session.step().unwrap();
    }
    assert_eq!(session.optimizer_state().unwrap(), straight_state);
    assert_eq!(session.averaged_parameters().unwrap(), straight_average);
    let resumed_record = session.run_epoch().unwrap();
    assert_eq!(
        resumed_record, straight_record,
        "the epoch's sums continue too"
    );
    drop(session);
    let resumed_params = resumed.parameters_flat(backend).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&resumed_params), bits(&straight_params));
}

#[test]
fn resuming_continues_a_bit_identical_trajectory() {
    let dir = scratch("resume");
    // Adam, and NAdam, whose running product of momentum coefficients is no buffer in the
    // file: the resumed optimizer rebuilds it from the step count and the one-cycle schedule.
    let nadam = Trainer::new(NAdam::default().lr(0.02), Loss::SoftmaxCrossEntropy)
        .batch_size(16)
        .seed(3)
        .schedule(LrSchedule::one_cycle(OneCycle::new(100)));
    // AdamW with parameter groups (the settings every resume must share, in the file).
    let grouped = Trainer::new(AdamW::default().lr(0.02), Loss::SoftmaxCrossEntropy)
        .batch_size(16)
        .seed(3)
        .param_group(ParamGroup::matching("*.bias").weight_decay(0.0))
        .param_group(ParamGroup::matching("layers.0.weight").lr_scale(0.5));
    // The first layer frozen: the resumed run must leave it and its state as they were too.
    let frozen = trainer().param_group(ParamGroup::matching("layers.0.*").frozen());
    // Steps of three batches (48, 48 and 4 samples an epoch): step 10 is in epoch 4.
    let accumulated = trainer().accumulate_grad_batches(3);
    // A moving average of the parameters, which the file carries with its count.
    let averaged = trainer().ema(0.8);
    // ASGD, whose η and averaging weight are no buffer either: the resumed optimizer computes
    // them from the step count and the previous update's scheduled rate; its average (`ax`,
    // an average from update 6, t0 + 3, on) is a buffer.
    let asgd = Trainer::new(
        Asgd::default().lr(0.05).lambd(0.01).t0(3.0),
        Loss::SoftmaxCrossEntropy,
    )
    .batch_size(16)
    .seed(3)
    .schedule(LrSchedule::step(4, 0.7));
    for trainer in [
        trainer(),
        nadam,
        grouped,
        frozen,
        accumulated,
        averaged,
        asgd,
    ] {
        resume_is_bit_identical(&CpuBackend, &dir, &trainer);
        resume_is_bit_identical(gpu(), &dir, &trainer);
    }
}

/// Stochastic weight averaging resumed from a checkpoint saved in an averaged epoch (the
/// schedule stopped, the rate SWA's) and from one saved before the start continues the
/// uninterrupted run bit for bit: epochs, rates, average and parameters.
fn weight_averaging_resumes_bit_identically<B: Backend>(backend: &B, dir: &Path) {
    let (x, y) = blobs().split(0.3, 2).unwrap();
    let trainer = trainer()
        .epochs(6)
        .schedule(LrSchedule::step(3, 0.7))
        .swa(Swa::new(2, 0.005).anneal_epochs(3));
    let mut straight = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&trainer, backend, &mut straight, &x, Some(&y)).unwrap();
    session.run().unwrap();
    let history = session.into_history();
    let want = straight.parameters_flat(backend).unwrap();
    // 70 samples in batches of 16: 5 steps an epoch. Saved after epoch 1 (before the start),
    // and in the middle of epoch 4 (two epochs averaged).
    for (epochs, steps) in [(1, 0), (3, 2)] {
        let path = dir.join(format!("swa_{epochs}_{steps}.safetensors"));
        let mut first = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
        let mut session = Session::new(&trainer, backend, &mut first, &x, Some(&y)).unwrap();
        for _ in 0..epochs {
            session.run_epoch().unwrap();
        }
        for _ in 0..steps {
            session.step().unwrap();
        }
        session.save_checkpoint(&path).unwrap();
        drop(session);
        let mut resumed = Mlp::new(backend, &spec(), Init::HeNormal, 99).unwrap();
        let mut session = Session::new(&trainer, backend, &mut resumed, &x, Some(&y)).unwrap();
        session.load_checkpoint(&path).unwrap();
        session.run().unwrap();
        assert_eq!(
            session.into_history().epochs,
            history.epochs,
            "{epochs}, {steps}"
        );
        let got = resumed.parameters_flat(backend).unwrap();
        assert!(common::bit_identical(&got, &want), "{epochs}, {steps}");
    }
    // The rates: the schedule's up to the start, then annealed to the SWA rate and kept.
    let lrs: Vec<f64> = history.epochs.iter().map(|e| e.lr).collect();
    assert!(
        lrs[1] < lrs[0] && lrs[2] < lrs[1] && lrs[3] > lrs[4],
        "{lrs:?}"
    );
    assert_eq!(lrs[4..], [0.005, 0.005], "{lrs:?}");
}

#[test]
fn weight_averaging_resumes_bit_identically_on_both_backends() {
    let dir = scratch("swa");
    weight_averaging_resumes_bit_identically(&CpuBackend, &dir);
    weight_averaging_resumes_bit_identically(gpu(), &dir);
}

/// A moving average turned on at a resume (settings overridden) starts from the parameters
/// loaded, and its first update replaces them, as a fresh `AveragedModel` would; one turned
/// off leaves the file's average unused.
#[test]
fn a_moving_average_turned_on_at_a_resume_starts_there() {
    let dir = scratch("ema_on");
    let path = dir.join("plain.safetensors");
    let (g, data) = (gpu(), blobs());
    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    let plain = trainer();
    let mut session = Session::new(&plain, g, &mut model, &data, None).unwrap();
    for _ in 0..3 {
        session.step().unwrap();
    }
    session.save_checkpoint(&path).unwrap();
    drop(session);
    let averaged = trainer().ema(0.9);
    let mut other = Mlp::new(g, &spec(), Init::HeNormal, 7).unwrap();
    let mut session = Session::new(&averaged, g, &mut other, &data, None).unwrap();
    session.load_checkpoint_overriding_settings(&path).unwrap();
    let loaded = session.model().parameters_flat(g).unwrap();
    assert_eq!(session.averaged_parameters().unwrap(), Some(loaded));
    session.step().unwrap();
    let stepped = session.model().parameters_flat(g).unwrap();
    assert_eq!(session.averaged_parameters().unwrap(), Some(stepped));
    session
        .save_checkpoint(dir.join("averaged.safetensors"))
        .unwrap();
    drop(session);
    let mut third = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&plain, g, &mut third, &data, None).unwrap();
    session
        .load_checkpoint_overriding_settings(dir.join("averaged.safetensors"))
        .unwrap();
    assert_eq!(session.averaged_parameters().unwrap(), None);
    assert_eq!(session.steps(), 4);
}

/// A run that stops on a plateau, resumed from a checkpoint of its best epoch, stops at the
/// epoch the run it continues stops at, with the same parameters: the best loss so far is in
/// the file (a resumed run that forgot it would wait its patience out from a worse one).
fn a_plateau_stops_where_it_did<B: Backend>(backend: &B, dir: &Path) {
    let (train, val) = blobs().split(0.4, 2).unwrap();
    let trainer = trainer().epochs(300).stop_on_plateau(3, 0.0).log_every(3);
    let mut straight = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&trainer, backend, &mut straight, &train, Some(&val)).unwrap();
    session.run().unwrap();
    let straight_history = session.into_history();
    let history = &straight_history;
    let StopReason::Plateau { best } = history.stop else {
        panic!("expected a plateau, got {:?}", history.stop);
    };
    let best_epoch = history
        .epochs
        .iter()
        .find(|r| r.val_loss == Some(best))
        .unwrap()
        .epoch;
    let stopped = history.last().unwrap().epoch;
    assert_eq!(stopped, best_epoch + 3, "three epochs of patience");
    let straight = straight.parameters_flat(backend).unwrap();

    // The same run to its best epoch, checkpointed after each.
    let path = dir.join("plateau.safetensors");
    let mut first = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    trainer
        .clone()
        .epochs(best_epoch)
        .checkpoint(&path)
        .fit(backend, &mut first, &train, Some(&val))
        .unwrap();

    let mut resumed = Mlp::new(backend, &spec(), Init::HeNormal, 99).unwrap();
    let mut session = Session::new(&trainer, backend, &mut resumed, &train, Some(&val)).unwrap();
    session.load_checkpoint(&path).unwrap();
    session.run().unwrap();
    let history = session.into_history();
    assert_eq!(history.stop, StopReason::Plateau { best });
    assert_eq!(history.last().unwrap().epoch, stopped);
    assert_eq!(
        history.epochs, straight_history.epochs,
        "the epochs before the resume come back from the file"
    );
    assert!(!straight_history.steps.is_empty());
    assert_eq!(
        history.steps, straight_history.steps,
        "so do the steps logged before it"
    );
    assert_eq!(resumed.parameters_flat(backend).unwrap(), straight);
}

/// A run that diverges past a multiple of its first loss, resumed from a checkpoint after its
/// loss has fallen, diverges at the same step: the first loss is in the file.
fn divergence_keeps_its_scale<B: Backend>(backend: &B, dir: &Path) {
    let data = data::linear(64, &[1.0, -1.0], 0.5, 0.1, 1).unwrap();
    let spec = MlpSpec::new(2).layer(1, Activation::Identity);
    // Full batches, so a step is an epoch; the rate grows each step until it overshoots.
    let trainer = Trainer::new(Sgd::default().lr(0.02), Loss::MeanSquaredError)
        .full_batch()
        .epochs(500)
        .schedule(steepest::LrSchedule::step(1, 1.1))
        .diverge_above(4.0);
    let run = |resume_from: Option<&Path>| {
        let mut model = Mlp::new(backend, &spec, Init::default(), 1).unwrap();
        let mut session = Session::new(&trainer, backend, &mut model, &data, None).unwrap();
        if let Some(path) = resume_from {
            session.load_checkpoint(path).unwrap();
        }
        let mut losses = Vec::new();
        let err = loop {
            match session.run_epoch() {
                Ok(record) => losses.push(record.loss),
                Err(e) => break e,
            }
        };
        drop(session);
        (err, losses, model.parameters_flat(backend).unwrap())
    };
    let (Error::Diverged { step, .. }, losses, params) = run(None) else {
        panic!("expected divergence");
    };
    // A checkpoint where the loss is at its lowest, far under the first.
    let lowest = (0..losses.len())
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
        .unwrap();
    assert!(
        losses[lowest] * 4.0 < losses[0],
        "the loss fell from {} to {} before it grew",
        losses[0],
        losses[lowest]
    );
    let path = dir.join("diverge-scale.safetensors");
    let mut model = Mlp::new(backend, &spec, Init::default(), 1).unwrap();
    let mut session = Session::new(&trainer, backend, &mut model, &data, None).unwrap();
    for _ in 0..=lowest {
        session.run_epoch().unwrap();
    }
    session.save_checkpoint(&path).unwrap();
    drop(session);
    let (Error::Diverged { step: again, .. }, _, resumed) = run(Some(&path)) else {
        panic!("expected divergence after the resume");
    };
    assert_eq!(again, step);
    assert_eq!(resumed, params);
}

/// With `restore_best`, a run that overfits ends with the parameters of its lowest-validation
/// epoch, bit for bit those of the same run stopped there; and so does a run resumed from a
/// checkpoint saved after that epoch (the kept parameters are in the file).
fn the_lowest_epoch_is_restored<B: Backend>(backend: &B, dir: &Path) {
    let (train, val) = blobs().split(0.4, 2).unwrap();
    let epochs = 30;
    let keeping = trainer().epochs(epochs).restore_best(true);
    let fresh = || Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let mut model = fresh();
    let history = keeping
        .fit(backend, &mut model, &train, Some(&val))
        .unwrap();
    let lowest = history
        .epochs
        .iter()
        .min_by(|a, b| a.val_loss.unwrap().total_cmp(&b.val_loss.unwrap()))
        .unwrap()
        .epoch;
    assert!(lowest < epochs, "the run overfits after epoch {lowest}");
    assert_eq!(history.restored_epoch, Some(lowest));
    let restored = model.parameters_flat(backend).unwrap();
    let mut short = fresh();
    trainer()
        .epochs(lowest)
        .fit(backend, &mut short, &train, Some(&val))
        .unwrap();
    assert_eq!(short.parameters_flat(backend).unwrap(), restored);
    let mut last = fresh();
    let plain = trainer()
        .epochs(epochs)
        .fit(backend, &mut last, &train, Some(&val))
        .unwrap();
    assert_eq!(plain.restored_epoch, None);
    assert_ne!(last.parameters_flat(backend).unwrap(), restored);

    // Checkpointed one epoch after the lowest, resumed into another initialisation.
    let path = dir.join("restore-best.safetensors");
    keeping
        .clone()
        .epochs(lowest + 1)
        .checkpoint(&path)
        .fit(backend, &mut fresh(), &train, Some(&val))
        .unwrap();
    let mut resumed = Mlp::new(backend, &spec(), Init::HeNormal, 99).unwrap();
    let mut session = Session::new(&keeping, backend, &mut resumed, &train, Some(&val)).unwrap();
    session.load_checkpoint(&path).unwrap();
    session.run().unwrap();
    assert_eq!(session.into_history().restored_epoch, Some(lowest));
    assert_eq!(resumed.parameters_flat(backend).unwrap(), restored);
}

#[test]
fn restore_best_turned_on_or_off_at_a_resume_keeps_from_there_or_forgets() {
    let dir = scratch("restore-best-override");
    let (train, val) = blobs().split(0.4, 2).unwrap();
    let (path, again) = (dir.join("off.safetensors"), dir.join("again.safetensors"));
    let model = || Mlp::new(&CpuBackend, &spec(), Init::default(), 1).unwrap();
    // Saved without it after 4 epochs, continued with it for 6 more: only epochs 5..=10 count.
    trainer()
        .epochs(4)
        .checkpoint(&path)
        .fit(&CpuBackend, &mut model(), &train, Some(&val))
        .unwrap();
    let keeping = trainer().epochs(10).restore_best(true);
    let mut on = model();
    let mut session = Session::new(&keeping, &CpuBackend, &mut on, &train, Some(&val)).unwrap();
    assert!(
        session.load_checkpoint(&path).is_err(),
        "a strict resume refuses"
    );
    session.load_checkpoint_overriding_settings(&path).unwrap();
    session.run().unwrap();
    let history = session.into_history();
    let lowest = history.epochs[4..]
        .iter()
        .min_by(|a, b| a.val_loss.unwrap().total_cmp(&b.val_loss.unwrap()))
        .unwrap()
        .epoch;
    assert_eq!(
        history.epochs[4].epoch, 5,
        "the file's four epochs, then these"
    );
    assert_eq!(history.restored_epoch, Some(lowest));
    // Saved with it, continued without it: nothing restored, and its checkpoints forget the
    // kept parameters (a later resume with it on starts keeping afresh).
    let with = dir.join("on.safetensors");
    keeping
        .clone()
        .epochs(4)
        .checkpoint(&with)
        .fit(&CpuBackend, &mut model(), &train, Some(&val))
        .unwrap();
    let plain = trainer().epochs(6).checkpoint(&again);
    let mut off = model();
    let mut session = Session::new(&plain, &CpuBackend, &mut off, &train, Some(&val)).unwrap();
    session.load_checkpoint_overriding_settings(&with).unwrap();
    session.run().unwrap();
    assert_eq!(session.into_history().restored_epoch, None);
    let saved = std::fs::read(&again).unwrap();
    let (header, _) = header(&saved);
    assert!(
        !header.contains("lowest_loss") && !header.contains("restore_best.layers"),
        "{header}"
    );
}

#[test]
fn restore_best_gives_back_the_lowest_epoch_also_after_a_resume() {
    let dir = scratch("restore-best");
    the_lowest_epoch_is_restored(&CpuBackend, &dir);
    the_lowest_epoch_is_restored(gpu(), &dir);
}

#[test]
fn stopping_rules_fire_at_the_same_epoch_after_a_resume() {
    let dir = scratch("stopping-resume");
    a_plateau_stops_where_it_did(&CpuBackend, &dir);
    a_plateau_stops_where_it_did(gpu(), &dir);
    divergence_keeps_its_scale(&CpuBackend, &dir);
    divergence_keeps_its_scale(gpu(), &dir);
}

#[test]
fn saves_replace_the_file_atomically() {
    let dir = scratch("atomic");
    let path = dir.join("ckpt.safetensors");
    let (data, trainer) = (blobs(), trainer());
    let mut model = Mlp::new(&CpuBackend, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&trainer, &CpuBackend, &mut model, &data, None).unwrap();
    session.save_checkpoint(&path).unwrap();
    let first = std::fs::read(&path).unwrap();
    // A reader that opened the old file keeps seeing it whole: the new one arrives by rename,
    // never by rewriting the old bytes in place.
    let mut old = std::fs::File::open(&path).unwrap();
    session.step().unwrap();
    session.save_checkpoint(&path).unwrap();
    let mut seen = Vec::new();
    std::io::Read::read_to_end(&mut old, &mut seen).unwrap();
    assert_eq!(seen, first);
    assert_ne!(std::fs::read(&path).unwrap(), first);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("ckpt.safetensors")]);
    // A crash mid-save leaves at most a stray temporary file; the checkpoint itself still loads.
    std::fs::write(
        dir.join("ckpt.safetensors.tmp-1"),
        &first[..first.len() / 2],
    )
    .unwrap();
    session.load_checkpoint(&path).unwrap();
}

#[test]
fn divergence_keeps_the_last_good_checkpoint() {
    let dir = scratch("diverge");
    let path = dir.join("run.safetensors");
    let data = data::linear(64, &[1.0, -1.0], 0.0, 0.0, 1).unwrap();
    let spec = MlpSpec::new(2).layer(1, Activation::Identity);
    let mut model = Mlp::new(gpu(), &spec, Init::default(), 1).unwrap();
    // Stable for a few epochs, then the rate grows past stability.
    let result = Trainer::new(Sgd::default().lr(0.05), Loss::MeanSquaredError)
        .batch_size(64)
        .epochs(200)
        .schedule(steepest::LrSchedule::step(1, 1.5))
        .checkpoint(&path)
        .fit(gpu(), &mut model, &data, None);
    let Err(Error::Diverged { step, .. }) = result else {
        panic!("expected divergence, got {result:?}");
    };
    assert!(step > 3, "diverged at step {step}");
    let kept = model.parameters_flat(gpu()).unwrap();
    assert!(kept.iter().all(|v| v.is_finite()));
    let mut reloaded = Mlp::new(gpu(), &spec, Init::default(), 2).unwrap();
    reloaded.load_safetensors(gpu(), &path).unwrap();
    assert_eq!(reloaded.parameters_flat(gpu()).unwrap(), kept);
}

/// The case: SGD at lr 1e38 on a 2-feature regression, full batch, no validation. The
/// epoch's loss is measured before its only update, so only a check of the parameters
/// themselves catches that the update made them infinite.
fn an_overflowing_update_leaves_finite_parameters<B: Backend>(backend: &B, dir: &Path) {
    let path = dir.join("overflow.safetensors");
    let data = data::linear(32, &[1.0, -2.0], 0.5, 0.0, 1).unwrap();
    let spec = MlpSpec::new(2).layer(1, Activation::Identity);
    let mut model = Mlp::new(backend, &spec, Init::default(), 1).unwrap();
    let start = model.parameters_flat(backend).unwrap();
    let result = Trainer::new(Sgd::default().lr(1e38), Loss::MeanSquaredError)
        .full_batch()
        .epochs(5)
        .checkpoint(&path)
        .fit(backend, &mut model, &data, None);
    let Err(Error::Diverged { step, reason, .. }) = &result else {
        panic!("expected divergence, got {result:?}");
    };
    assert_eq!(*step, 1, "{result:?}");
    assert!(reason.contains("Σθ²"), "{reason}");
    assert_eq!(model.parameters_flat(backend).unwrap(), start);
    let mut reloaded = Mlp::new(backend, &spec, Init::default(), 2).unwrap();
    reloaded.load_safetensors(backend, &path).unwrap();
    assert_eq!(reloaded.parameters_flat(backend).unwrap(), start);
}

#[test]
fn divergence_never_keeps_non_finite_parameters() {
    let dir = scratch("overflow");
    an_overflowing_update_leaves_finite_parameters(gpu(), &dir);
    an_overflowing_update_leaves_finite_parameters(&CpuBackend, &dir);
}

#[test]
fn a_session_hands_out_optimizer_state_of_the_models_length() {
    let g = gpu();
    let data = blobs();
    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    let count = model.parameter_count();
    let trainer = trainer();
    let mut session = Session::new(&trainer, g, &mut model, &data, None).unwrap();
    session.step().unwrap();
    let state = session.optimizer_state().unwrap();
    let mut cpu_model = Mlp::new(&CpuBackend, &spec(), Init::default(), 1).unwrap();
    let mut cpu = Session::new(&trainer, &CpuBackend, &mut cpu_model, &data, None).unwrap();
    cpu.step().unwrap();
    let cpu_state = cpu.optimizer_state().unwrap();
    for ((name, values), (cpu_name, cpu_values)) in state.buffers.iter().zip(&cpu_state.buffers) {
        assert_eq!(name, cpu_name);
        assert_eq!(values.len(), count, "{name}");
        assert_eq!(cpu_values.len(), count, "{name} on the CPU");
    }
}

/// A file name no other case of this process uses (cases may run on several threads).
fn unique_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("case-{n}.safetensors")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the loader: they are refused with an error.
    #[test]
    fn loading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = std::env::temp_dir().join(format!("steepest-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(unique_name());
        std::fs::write(&path, &bytes).unwrap();
        let mut model = Mlp::new(&CpuBackend, &spec(), Init::default(), 1).unwrap();
        prop_assert!(model.load_safetensors(&CpuBackend, &path).is_err());
        let data = blobs();
        let trainer = trainer();
        let mut session = Session::new(&trainer, &CpuBackend, &mut model, &data, None).unwrap();
        prop_assert!(session.load_checkpoint(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    /// A valid checkpoint with random bytes changed loads or is refused, never panics.
    #[test]
    fn mutated_checkpoints_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let dir = std::env::temp_dir().join(format!("steepest-mutate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.safetensors");
        let data = blobs();
        let trainer = trainer();
        let mut model = Mlp::new(&CpuBackend, &spec(), Init::default(), 1).unwrap();
        let mut session = Session::new(&trainer, &CpuBackend, &mut model, &data, None).unwrap();
        if !good.exists() {
            session.save_checkpoint(&good).unwrap();
        }
        let mut bytes = std::fs::read(&good).unwrap();
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        let path = dir.join(unique_name());
        std::fs::write(&path, &bytes).unwrap();
        let _ = session.load_checkpoint(&path);
        std::fs::remove_file(&path).unwrap();
    }
}
