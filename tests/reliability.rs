//! Reliability: checkpoints in the safetensors format that resume bit-identically and are saved
//! atomically, corrupted or foreign checkpoints refused without touching anything, faults as
//! errors, a long run without leaks, and fuzzed checkpoint loading that never panics.

mod common;

use std::path::{Path, PathBuf};

use common::gpu;
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use steepest::{
    Activation, Adam, Backend, CpuBackend, Dataset, Error, Init, Loss, Mlp, MlpSpec, Session, Sgd,
    Trainer, data,
};

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("steepest-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spec() -> MlpSpec {
    MlpSpec::new(2)
        .layer(12, Activation::Tanh)
        .layer(3, Activation::Identity)
}

fn blobs() -> Dataset {
    data::blobs(100, &[[1.0, 1.0], [-1.0, 0.0], [0.5, -1.0]], 0.5, 5).unwrap()
}

fn trainer() -> Trainer {
    Trainer::new(Adam::default().lr(0.02), Loss::SoftmaxCrossEntropy)
        .batch_size(16)
        .seed(3)
}

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
fn resume_is_bit_identical<B: Backend>(backend: &B, dir: &Path) {
    let (data, trainer) = (blobs(), trainer());
    let n = 10; // 100 samples in batches of 16: step 10 is in the middle of epoch 2
    let mut straight = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&trainer, backend, &mut straight, &data, None).unwrap();
    for _ in 0..2 * n {
        session.step().unwrap();
    }
    let straight_state = session.optimizer_state().unwrap();
    let straight_record = session.run_epoch().unwrap();
    drop(session);
    let straight_params = straight.parameters_flat(backend).unwrap();

    let path = dir.join("resume.safetensors");
    let mut first = Mlp::new(backend, &spec(), Init::default(), 1).unwrap();
    let mut session = Session::new(&trainer, backend, &mut first, &data, None).unwrap();
    for _ in 0..n {
        session.step().unwrap();
    }
    session.save_checkpoint(&path).unwrap();
    drop(session);

    // Another initialisation: everything must come from the file.
    let mut resumed = Mlp::new(backend, &spec(), Init::HeNormal, 99).unwrap();
    let mut session = Session::new(&trainer, backend, &mut resumed, &data, None).unwrap();
    session.load_checkpoint(&path).unwrap();
    assert_eq!(session.steps(), n as u64);
    for _ in 0..n {
        session.step().unwrap();
    }
    assert_eq!(session.optimizer_state().unwrap(), straight_state);
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
    resume_is_bit_identical(&CpuBackend, &dir);
    resume_is_bit_identical(gpu(), &dir);
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
    broken.set_parameters_flat(&CpuBackend, &values).unwrap();
    broken.save_safetensors(&CpuBackend, &bad).unwrap();
    let before = model.parameters_flat(g).unwrap();
    let err = model.load_safetensors(g, &bad).unwrap_err().to_string();
    assert!(
        err.contains("layers.0.weight") && err.contains("finite"),
        "{err}"
    );
    assert_eq!(model.parameters_flat(g).unwrap(), before);
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

#[test]
fn an_aliased_call_is_refused_before_anything_is_recorded() {
    let g = common::own_gpu();
    // A gather whose output is a view into its own source: wgpu would reject the binding at
    // submit (and take the rest of the submit with it), so the host refuses it first.
    let buffer = steepest::GpuBuffer::from_slice(g.context(), "aliased", &[1.0f32; 32]).unwrap();
    let src = steepest::GpuMatrix::view(buffer.clone(), 0, 4, 4).unwrap();
    let mut out = steepest::GpuMatrix::view(buffer.clone(), 16, 4, 4).unwrap();
    let indices = g.upload_indices(&[0, 1, 2, 3]).unwrap();
    let submits = g.context().submits();
    let err = g.gather_rows_into(&src, &indices, 0, &mut out).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Shape {
                op: "gather_rows",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("also an input"), "{err}");
    g.flush().unwrap();
    assert_eq!(
        g.context().submits(),
        submits,
        "the refused call recorded work"
    );
    assert_eq!(buffer.read(g.context()).unwrap(), vec![1.0f32; 32]);
}

#[test]
fn a_validation_error_outside_any_scope_comes_back_as_an_error() {
    let g = common::own_gpu();
    // An application using the device directly makes an invalid buffer (MAP_READ may only be
    // paired with COPY_DST): wgpu reports it to the uncaptured-error handler, and the next
    // call through the context returns it instead of panicking.
    let _invalid = g
        .context()
        .device()
        .create_buffer(&steepest::wgpu::BufferDescriptor {
            label: Some("invalid usage"),
            size: 16,
            usage: steepest::wgpu::BufferUsages::MAP_READ | steepest::wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
    let err = g.flush().and_then(|()| g.context().wait()).unwrap_err();
    assert!(matches!(err, Error::Gpu { .. }), "{err:?}");
    // Reported once; the context stays usable.
    let m = g.upload(ndarray::array![[1.0f32]].view()).unwrap();
    assert_eq!(g.download(&m).unwrap()[[0, 0]], 1.0);
}

#[test]
fn twenty_thousand_steps_leak_no_buffers_and_no_memory() {
    let g = common::own_gpu();
    let data = data::moons(64, 0.1, 1).unwrap();
    let spec = MlpSpec::new(2)
        .layer(8, Activation::Relu)
        .layer(1, Activation::Identity);
    let mut model = Mlp::new(&g, &spec, Init::default(), 1).unwrap();
    let trainer = Trainer::new(
        Sgd::default().lr(0.05).momentum(0.9),
        Loss::BinaryCrossEntropyWithLogits,
    )
    .batch_size(8)
    .monitor(true);
    let mut session = Session::new(&trainer, &g, &mut model, &data, None).unwrap();
    let mut buffers = Vec::new();
    let mut resident = Vec::new();
    for chunk in 0..10 {
        for _ in 0..250 {
            session.run_epoch().unwrap(); // 8 steps each: 2,000 steps per chunk
        }
        g.context().wait().unwrap();
        if chunk >= 1 {
            buffers.push(g.context().live_buffers());
            resident.push(common::resident_bytes());
        }
    }
    assert_eq!(session.steps(), 20_000);
    let first = buffers[0];
    assert!(
        buffers.iter().all(|&b| b <= first),
        "live buffers grew: {buffers:?}"
    );
    assert!(first > 0, "buffer counting is off: {buffers:?}");
    let growth = resident.last().unwrap().saturating_sub(resident[0]);
    assert!(
        growth < 16 << 20,
        "resident memory grew by {growth} bytes: {resident:?}"
    );
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

#[test]
fn a_matmul_wider_than_the_workgroup_limit_is_split() {
    let g = gpu();
    let limit = g.context().limits().max_compute_workgroups_per_dimension as usize;
    // One row of output, 128 columns per workgroup: past the limit by a partial tile.
    let n = limit * 128 + 77;
    let a = ndarray::array![[2.0f32]];
    let b = ndarray::Array2::from_shape_fn((1, n), |(_, j)| (j % 1000) as f32);
    let bias = ndarray::Array2::from_shape_fn((1, n), |(_, j)| (j % 7) as f32);
    let out = g
        .matmul(
            steepest::Matmul::nn(),
            &g.upload(a.view()).unwrap(),
            &g.upload(b.view()).unwrap(),
            Some(&g.upload(bias.view()).unwrap()),
        )
        .unwrap();
    let out = g.download(&out).unwrap();
    for j in [0, 1, 127, 128, limit * 128 - 1, limit * 128, n - 1] {
        assert_eq!(
            out[[0, j]],
            2.0 * (j % 1000) as f32 + (j % 7) as f32,
            "column {j}"
        );
    }
}
