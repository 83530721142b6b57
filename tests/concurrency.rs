//! Threads sharing one backend or one checkpoint path: one thread's bad calls never cost
//! another its work, ops that pass values through the shared scratch keep them their own,
//! and concurrent saves never leave a corrupt or missing file.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{Array2, array};
use steepest::{
    Activation, Adam, Backend, Dataset, Error, GpuBackend, Init, Loss, LossShare, Matmul, Mlp,
    MlpSpec, Session, Trainer, data,
};

fn spec() -> MlpSpec {
    MlpSpec::new(2)
        .layer(16, Activation::Relu)
        .layer(3, Activation::Identity)
}

fn blobs() -> Dataset {
    data::blobs(96, &[[1.0, 1.0], [-1.0, 0.0], [0.5, -1.0]], 0.4, 2).unwrap()
}

fn trainer() -> Trainer {
    Trainer::new(Adam::default().lr(0.02), Loss::SoftmaxCrossEntropy)
        .batch_size(16)
        .epochs(6)
        .seed(5)
}

/// Trains a fresh model on `g` and returns its parameters.
fn train(g: &GpuBackend) -> Vec<f32> {
    let mut model = Mlp::new(g, &spec(), Init::default(), 7).unwrap();
    trainer().fit(g, &mut model, &blobs(), None).unwrap();
    model.parameters_flat(g).unwrap()
}

/// Every kind of invalid call a careless thread might make; each must fail, and none may
/// record anything.
fn invalid_calls(g: &GpuBackend) {
    let buffer = steepest::GpuBuffer::from_slice(g.context(), "aliased", &[1.0f32; 32]).unwrap();
    let src = steepest::GpuMatrix::view(buffer.clone(), 0, 4, 4).unwrap();
    let mut out = steepest::GpuMatrix::view(buffer, 16, 4, 4).unwrap();
    let indices = g.upload_indices(&[0, 1, 2, 3]).unwrap();
    let mut results: Vec<steepest::Result<()>> = vec![
        g.gather_rows_into(&src, &indices, 0, &mut out),
        g.gather_rows_into(&src, &indices, 3, &mut out.clone()),
        g.activation_backward(Activation::Relu, &out.clone(), &mut out.clone()),
        g.column_sum_into(&src, &mut out.clone()),
    ];
    let a = g.upload(Array2::<f32>::ones((3, 4)).view()).unwrap();
    let b = g.upload(Array2::<f32>::ones((5, 2)).view()).unwrap();
    let mut c = g.zeros(3, 2).unwrap();
    results.push(g.matmul_into(Matmul::nn(), &a, &b, None, &mut c));
    let mut alias = a.clone();
    results.push(g.matmul_into(Matmul::nt(), &a, &a.clone(), None, &mut alias));
    let mut totals = g.zeros(1, 4).unwrap();
    results.push(g.loss_into(
        Loss::MeanSquaredError,
        &g.upload(array![[1.0f32]].view()).unwrap(),
        &g.upload(array![[1.0f32]].view()).unwrap(),
        None,
        LossShare::whole(1),
        None,
        &mut totals,
        3,
    ));
    for (i, result) in results.into_iter().enumerate() {
        assert!(result.is_err(), "invalid call {i} returned Ok");
    }
}

#[test]
fn one_threads_bad_calls_never_cost_another_its_work() {
    let g = common::own_gpu();
    let solo = train(&g);
    for round in 0..10 {
        let stop = AtomicBool::new(false);
        let trained = std::thread::scope(|s| {
            let careless = s.spawn(|| {
                let mut calls = 0;
                while !stop.load(Ordering::Relaxed) || calls == 0 {
                    invalid_calls(&g);
                    calls += 1;
                }
                calls
            });
            let trained = train(&g);
            stop.store(true, Ordering::Relaxed);
            assert!(careless.join().unwrap() > 0);
            trained
        });
        assert_eq!(
            trained, solo,
            "round {round}: the training thread's result changed"
        );
    }
}

/// Products whose operands are transposed into the context's scratch first, recorded by
/// four threads at once with nothing waited for between them: each thread's transposes and
/// product are recorded together, so no other thread's transpose lands in between.
#[test]
fn pretransposed_products_from_many_threads_keep_their_operands() {
    use steepest::backend::gpu::{Tile, Tiling, matmul_tiled};
    let g = common::gpu();
    let (m, n, k) = (40, 36, 50);
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                let mut r = common::rng(900 + t);
                let a = common::random_matrix(&mut r, m, k, 1.0);
                let b = common::random_matrix(&mut r, n, k, 1.0);
                let expected = a.dot(&b.t());
                let (ga, gb) = (g.upload(a.view()).unwrap(), g.upload(b.view()).unwrap());
                let tiling = Tiling {
                    pretranspose: true,
                    ..Tiling::whole(Tile::Small, k)
                };
                let outs: Vec<_> = (0..20).map(|_| g.zeros(m, n).unwrap()).collect();
                for out in &outs {
                    matmul_tiled(g.context(), Matmul::nt(), Some(tiling), &ga, &gb, None, out)
                        .unwrap();
                }
                for out in &outs {
                    let got = g.download(out).unwrap();
                    let worst = common::max_abs_diff(&got, &expected);
                    assert!(worst < 1e-3, "thread {t}: off by {worst}");
                }
            });
        }
    });
}

#[test]
fn threads_saving_one_checkpoint_never_leave_a_bad_file() {
    let dir = std::env::temp_dir().join(format!("steepest-saves-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shared.safetensors");
    // A temporary left by a process killed mid-save goes with the next save.
    let stale = dir.join("shared.safetensors.tmp-4000000000-0");
    left_by_a_killed_save(&stale);
    let g = &steepest::CpuBackend;
    let data = blobs();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let mut savers = Vec::new();
        for seed in 0..4u64 {
            let (path, data) = (&path, &data);
            savers.push(s.spawn(move || {
                let mut model = Mlp::new(g, &spec(), Init::default(), seed).unwrap();
                let trainer = trainer();
                let mut session = Session::new(&trainer, g, &mut model, data, None).unwrap();
                for _ in 0..15 {
                    session.step().unwrap();
                    session.save_checkpoint(path).unwrap();
                }
            }));
        }
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) {
                if path.exists() {
                    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
                    match model.load_safetensors(g, &path) {
                        Ok(()) => reads += 1,
                        // Renamed away between the check and the open is fine; a corrupt file
                        // is not.
                        Err(Error::Io { .. }) => {}
                        Err(e) => panic!("a reader saw a bad file: {e}"),
                    }
                }
            }
            reads
        });
        for saver in savers {
            saver.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    let mut model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    model.load_safetensors(g, &path).unwrap();
    assert!(!stale.exists(), "the stale temporary survived");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "shared.safetensors")
        .collect();
    assert!(left.is_empty(), "temporaries left behind: {left:?}");
}

/// A temporary as a process killed mid-save leaves it: unlocked, and written a minute ago.
fn left_by_a_killed_save(path: &std::path::Path) {
    std::fs::write(path, b"half a file").unwrap();
    let minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(minute_ago).unwrap();
}

#[test]
fn a_save_leaves_another_processs_save_in_flight_alone() {
    let dir = std::env::temp_dir().join(format!("steepest-in-flight-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.safetensors");
    let g = &steepest::CpuBackend;
    let model = Mlp::new(g, &spec(), Init::default(), 1).unwrap();
    // Another process's save in flight: its temporary locked by its writer (here this test,
    // under another process id), written long enough ago that only the lock can tell.
    let writing = dir.join("run.safetensors.tmp-4000000001-0");
    left_by_a_killed_save(&writing);
    let writer = std::fs::File::open(&writing).unwrap();
    writer.lock().unwrap();
    // One just created, its writer about to lock it.
    let new = dir.join("run.safetensors.tmp-4000000002-0");
    std::fs::write(&new, b"").unwrap();
    model.save_safetensors(g, &path).unwrap();
    assert!(
        writing.exists(),
        "a save removed a temporary whose writer holds its lock"
    );
    assert!(
        new.exists(),
        "a save removed a temporary created a moment ago"
    );
    // The writer killed: its lock goes with it, and the next save removes what it left.
    drop(writer);
    model.save_safetensors(g, &path).unwrap();
    assert!(!writing.exists(), "an abandoned temporary survived a save");
    assert!(new.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
