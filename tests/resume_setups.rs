//! Random training setups (`common/setups.rs`) stopped, saved and resumed: a session saves a
//! checkpoint after a random number of steps and runs on; a new session of a freshly built
//! model loads the checkpoint and takes the same steps. On the same backend the two must end
//! bit for bit alike (parameters, buffers, optimizer state, moving averages, history), on the
//! CPU and on the GPU: whatever a setup adds to a run's state, a checkpoint must keep. The
//! trained model, saved as a model file and loaded, and through a predictor, predicts the same
//! bits.

mod common;

use std::path::{Path, PathBuf};

use common::gpu;
use common::setups::{Setup, dataset, draw, network};
use proptest::prelude::*;
use steepest::nn::Sequential;
use steepest::{Backend, CpuBackend, Model, Session};

/// Steps taken before the save, at most, and after it.
const BEFORE: u64 = 9;
const AFTER: u64 = 7;

fn scratch() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("steepest-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("case-{n}.safetensors"))
}

/// What a run has to show for itself after its steps: parameters and buffers, the optimizer's
/// state, the moving averages, the history, all as bits.
fn state<B: Backend, M: Model<B>>(backend: &B, session: &Session<'_, B, M>) -> String {
    let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let params = session.model().network().parameters_flat(backend).unwrap();
    let optimizer = session.optimizer_state().unwrap();
    let buffers: Vec<_> = (optimizer.buffers.iter())
        .map(|(name, values)| (name.clone(), bits(values)))
        .collect();
    format!(
        "parameters {:?}\noptimizer step {} buffers {buffers:?}\naverage {:?}\nhistory {:?}",
        bits(&params),
        optimizer.step,
        session.averaged_parameters().unwrap().map(|a| bits(&a)),
        session.history(),
    )
}

/// Runs `setup` on `backend` with a save after `before` steps; `None` where the setup or a
/// step is refused (the lockstep test checks that both backends refuse alike).
fn resume_on<B: Backend>(backend: &B, setup: &Setup, before: u64, path: &Path) -> Option<()> {
    let data = dataset(setup);
    let mut net = network(backend, setup).unwrap();
    let mut run = Session::new(&setup.trainer, backend, &mut net, &data, None).ok()?;
    for _ in 0..before {
        run.step().ok()?;
    }
    run.save_checkpoint(path).unwrap();
    for _ in 0..AFTER {
        run.step().ok()?;
    }
    let unbroken = state(backend, &run);
    drop(run);
    // A model built afresh (another initialisation: the checkpoint brings the parameters).
    let mut fresh = network(backend, setup).unwrap();
    fresh
        .set_parameters_flat(
            backend,
            &vec![0.5; fresh.parameters_flat(backend).unwrap().len()],
        )
        .unwrap();
    let mut resumed = Session::new(&setup.trainer, backend, &mut fresh, &data, None).unwrap();
    resumed.load_checkpoint(path).unwrap();
    for _ in 0..AFTER {
        resumed.step().unwrap();
    }
    let again = state(backend, &resumed);
    drop(resumed);
    files_and_predictors(backend, setup, (&net, &mut fresh), path);
    assert!(
        unbroken == again,
        "resumed after {before} steps:\nunbroken {unbroken}\nresumed  {again}"
    );
    Some(())
}

/// The trained model saved as a model file and loaded into `fresh` predicts the same bits, and
/// so does a predictor of a small batch (several passes, a shorter last one) over either.
fn files_and_predictors<B: Backend>(
    backend: &B,
    setup: &Setup,
    (trained, fresh): (&Sequential<B>, &mut Sequential<B>),
    path: &Path,
) {
    let file = path.with_extension("model.safetensors");
    trained.save_safetensors(backend, &file).unwrap();
    fresh.load_safetensors(backend, &file).unwrap();
    let x = dataset(setup).x().clone();
    let bits = |a: &ndarray::Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let expected = bits(&trained.predict(backend, x.view()).unwrap());
    assert!(
        bits(&fresh.predict(backend, x.view()).unwrap()) == expected,
        "loaded from a file"
    );
    let mut predictor = trained.predictor(7).unwrap();
    for model in [trained, &*fresh] {
        let got = predictor.predict(backend, model, x.view()).unwrap();
        assert!(bits(&got) == expected, "through a predictor of 7 rows");
    }
}

fn resume(seed: u64) {
    let setup = draw(seed);
    let before = seed % (BEFORE + 1);
    for (name, result) in [
        (
            "CPU",
            std::panic::catch_unwind(|| resume_on(&CpuBackend, &setup, before, &scratch())),
        ),
        (
            "GPU",
            std::panic::catch_unwind(|| resume_on(gpu(), &setup, before, &scratch())),
        ),
    ] {
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("seed {seed} on the {name}: {setup:?}: {message}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_setups_resume_bit_for_bit(seed in any::<u64>()) {
        resume(seed);
    }
}
