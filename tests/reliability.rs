//! Reliability: aliased calls and stray validation errors as errors before anything runs, a
//! long run without leaks, and a matmul wider than the workgroup grid (checkpoints are in
//! `checkpoints.rs`).

mod common;

use common::gpu;
use steepest::{Activation, Backend, Error, Init, Loss, Mlp, MlpSpec, Session, Sgd, Trainer, data};

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
fn work_that_fails_at_submit_comes_back_as_the_submits_error() {
    let g = common::own_gpu();
    let ctx = g.context();
    // An application's own recording that dispatches with no pipeline set: wgpu rejects the
    // command buffer when it is finished and submitted (outside any error scope), and the
    // flush returns that as its error instead of losing it.
    ctx.record_compute(|pass| pass.dispatch_workgroups(1, 1, 1))
        .unwrap();
    let err = g.flush().unwrap_err();
    assert!(matches!(err, Error::Gpu { op: "submit", .. }), "{err:?}");
    // Reported once; the context stays usable.
    g.flush().unwrap();
    let m = g.upload(ndarray::array![[2.0f32]].view()).unwrap();
    assert_eq!(g.download(&m).unwrap()[[0, 0]], 2.0);
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
