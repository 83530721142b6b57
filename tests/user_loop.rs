//! Loops the application drives: steps on batches it supplies (host data or backend
//! matrices), batches in order, optimizer state handed between sessions in memory, and
//! prediction on any model.

mod common;

use common::{gpu, own_gpu};
use ndarray::{Array2, s};
use steepest::nn::{Dropout, Elementwise, Layer, LayerNorm, Residual, Sequential};
use steepest::{
    Activation, Adam, Backend, BatchOrder, CpuBackend, Dataset, Init, Linear, Loss, Mlp, MlpSpec,
    Nonlinearity, Session, Sgd, Trainer,
};

fn data(n: usize) -> Dataset {
    let x = Array2::from_shape_fn((n, 3), |(i, j)| ((i * 13 + j * 7) % 23) as f32 / 11.0 - 1.0);
    let y = Array2::from_shape_fn((n, 1), |(i, _)| x[[i, 0]] * x[[i, 1]] - x[[i, 2]]);
    Dataset::regression(x, y).unwrap()
}

fn mlp<B: Backend>(backend: &B) -> Mlp<B> {
    Mlp::new(
        backend,
        &MlpSpec::stack(&[3, 12, 12, 1], Activation::Relu),
        Init::default(),
        2,
    )
    .unwrap()
}

/// Rows `start..end` of `data` as a batch.
fn batch(data: &Dataset, start: usize, end: usize) -> Dataset {
    let rows: Vec<usize> = (start..end).collect();
    data.select(&rows).unwrap()
}

#[test]
fn steps_on_given_batches_are_the_trainers_steps_in_order() {
    let data = data(50);
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::MeanSquaredError)
        .batch_size(16)
        .epochs(2)
        .batch_order(BatchOrder::InOrder);
    let mut by_trainer = mlp(&CpuBackend);
    trainer
        .fit(&CpuBackend, &mut by_trainer, &data, None)
        .unwrap();

    let mut by_hand = mlp(&CpuBackend);
    let mut session = Session::for_batches(&trainer, &CpuBackend, &mut by_hand).unwrap();
    for _epoch in 0..2 {
        for start in (0..50).step_by(16) {
            session
                .step_on_batch(&batch(&data, start, (start + 16).min(50)))
                .unwrap();
        }
    }
    assert_eq!(session.steps(), 8);
    drop(session);
    assert_eq!(
        by_hand.parameters_flat(&CpuBackend).unwrap(),
        by_trainer.parameters_flat(&CpuBackend).unwrap(),
        "the same batches in the same order give the same bits"
    );
}

/// With `accumulate_grad_batches(3)`, each given batch is a third of a step: the first two
/// change no parameter and take no step, the third steps as one batch of all 24 samples
/// would (equal batches: the mean over them all); the logged loss is theirs together. An
/// epoch's step and a checkpoint wait for the step's batches to be complete.
fn given_batches_accumulate<B: Backend>(backend: &B, name: &str) {
    let data = data(48);
    let trainer = Trainer::new(Sgd::default().lr(0.1).momentum(0.9), Loss::MeanSquaredError)
        .batch_size(8)
        .accumulate_grad_batches(3);
    let one_batch =
        Trainer::new(Sgd::default().lr(0.1).momentum(0.9), Loss::MeanSquaredError).batch_size(24);
    let mut summed = mlp(backend);
    let mut whole = mlp(backend);
    let start = summed.parameters_flat(backend).unwrap();
    let mut session = Session::new(&trainer, backend, &mut summed, &data, None).unwrap();
    let mut reference = Session::for_batches(&one_batch, backend, &mut whole).unwrap();
    for step in 0..2 {
        let first = 24 * step;
        for part in 0..3 {
            let at = first + 8 * part;
            session.step_on_batch(&batch(&data, at, at + 8)).unwrap();
            assert_eq!(session.pending_batches(), (part + 1) % 3, "{name}");
            if part < 2 && step == 0 {
                let params = session.model().parameters_flat(backend).unwrap();
                assert_eq!(params, start, "{name}: a partial step moved the parameters");
                assert_eq!(session.steps(), 0);
                let err = session.step().unwrap_err().to_string();
                assert!(err.contains("await the rest of their step"), "{err}");
                let err = (session.save_checkpoint(std::env::temp_dir().join("never")))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains("await the rest of their step"), "{err}");
            }
        }
        reference
            .step_on_batch(&batch(&data, first, first + 24))
            .unwrap();
        let (a, b) = (
            session.last_batch_loss().unwrap(),
            reference.last_batch_loss().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{name}: loss {a}, {b}"
        );
    }
    assert_eq!(session.steps(), 2);
    let (got, want) = (
        session.model().parameters_flat(backend).unwrap(),
        reference.model().parameters_flat(backend).unwrap(),
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 2e-5 * w.abs().max(1.0),
            "{name}: parameter {i} is {g} from three batches, {w} from one"
        );
    }
}

#[test]
fn given_batches_accumulate_on_both_backends() {
    given_batches_accumulate(&CpuBackend, "cpu");
    given_batches_accumulate(gpu(), "gpu");
}

#[test]
fn in_order_and_shuffled_epochs_differ_and_in_order_is_reproducible() {
    let data = data(40);
    let fit = |order| {
        let mut model = mlp(&CpuBackend);
        Trainer::new(Sgd::default().lr(0.05), Loss::MeanSquaredError)
            .batch_size(8)
            .epochs(2)
            .batch_order(order)
            .fit(&CpuBackend, &mut model, &data, None)
            .unwrap();
        model.parameters_flat(&CpuBackend).unwrap()
    };
    assert_eq!(fit(BatchOrder::InOrder), fit(BatchOrder::InOrder));
    assert_ne!(fit(BatchOrder::InOrder), fit(BatchOrder::Shuffled));
}

#[test]
fn steps_on_backend_matrices_equal_steps_on_host_batches() {
    let g = gpu();
    let data = data(32);
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::MeanSquaredError);
    let mut host = mlp(g);
    let mut device = mlp(g);
    let mut a = Session::for_batches(&trainer, g, &mut host).unwrap();
    let mut b = Session::for_batches(&trainer, g, &mut device).unwrap();
    let x = g.upload(data.x().view()).unwrap();
    let y = g.upload(data.y().view()).unwrap();
    for _ in 0..5 {
        a.step_on_batch(&data).unwrap();
        b.step_on(&x, &y).unwrap();
    }
    assert_eq!(a.last_batch_loss().unwrap(), b.last_batch_loss().unwrap());
    drop((a, b));
    assert_eq!(
        host.parameters_flat(g).unwrap(),
        device.parameters_flat(g).unwrap()
    );
}

#[test]
fn host_batches_reuse_memory_and_submit_once_per_step() {
    let g = own_gpu();
    let data = data(64);
    let trainer = Trainer::new(Adam::default(), Loss::MeanSquaredError);
    let mut model = mlp(&g);
    let mut session = Session::for_batches(&trainer, &g, &mut model).unwrap();
    let batches: Vec<Dataset> = (0..4).map(|i| batch(&data, i * 16, i * 16 + 16)).collect();
    session.step_on_batch(&batches[0]).unwrap();
    let before = g.context().counters();
    for b in batches.iter().cycle().take(20) {
        session.step_on_batch(b).unwrap();
    }
    let after = g.context().counters();
    assert_eq!(
        after.buffers_created, before.buffers_created,
        "nothing allocated"
    );
    assert_eq!(after.bind_groups_created, before.bind_groups_created);
    assert_eq!(after.submits - before.submits, 20, "one submit per step");
    assert_eq!(after.waits, before.waits, "no step waits");
}

#[test]
fn optimizer_state_moves_between_sessions_in_memory() {
    let data = data(48);
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::MeanSquaredError).batch_size(16);
    let batches: Vec<Dataset> = (0..3).map(|i| batch(&data, i * 16, i * 16 + 16)).collect();

    let mut unbroken = mlp(&CpuBackend);
    let mut session = Session::for_batches(&trainer, &CpuBackend, &mut unbroken).unwrap();
    for b in batches.iter().cycle().take(9) {
        session.step_on_batch(b).unwrap();
    }
    drop(session);

    let mut handed = mlp(&CpuBackend);
    let state = {
        let mut first = Session::for_batches(&trainer, &CpuBackend, &mut handed).unwrap();
        for b in batches.iter().cycle().take(4) {
            first.step_on_batch(b).unwrap();
        }
        first.optimizer_state().unwrap()
    };
    assert_eq!(state.step, 4);
    let mut second = Session::for_batches(&trainer, &CpuBackend, &mut handed).unwrap();
    second.load_optimizer_state(&state).unwrap();
    for b in batches.iter().cycle().skip(4).take(5) {
        second.step_on_batch(b).unwrap();
    }
    drop(second);
    assert_eq!(
        handed.parameters_flat(&CpuBackend).unwrap(),
        unbroken.parameters_flat(&CpuBackend).unwrap(),
        "Adam's moments and step count carried over"
    );

    // A state for another shape of model is refused, naming the sizes.
    let mut other = Mlp::new(
        &CpuBackend,
        &MlpSpec::stack(&[3, 4, 1], Activation::Relu),
        Init::default(),
        0,
    )
    .unwrap();
    let mut session = Session::for_batches(&trainer, &CpuBackend, &mut other).unwrap();
    let err = session
        .load_optimizer_state(&state)
        .unwrap_err()
        .to_string();
    assert!(err.contains("parameters"), "{err}");
}

/// A loop that lowers the rate halfway (as it would with a `ReduceLrOnPlateau` of its own)
/// trains as a loop that hands its optimizer state to a session built at the lower rate; a
/// refused rate changes nothing.
fn a_new_rate_applies_from_the_next_step<B: Backend>(backend: &B) {
    let data = data(48);
    let at = |lr: f64| Trainer::new(Adam::default().lr(lr), Loss::MeanSquaredError).batch_size(16);
    let (fast, slow) = (at(0.02), at(0.01));
    let batches: Vec<Dataset> = (0..3).map(|i| batch(&data, i * 16, i * 16 + 16)).collect();

    let mut lowered = mlp(backend);
    let mut session = Session::for_batches(&fast, backend, &mut lowered).unwrap();
    for b in &batches {
        session.step_on_batch(b).unwrap();
    }
    assert_eq!(session.lr(), 0.02);
    session.set_lr(0.01).unwrap();
    assert!(session.set_lr(-1.0).is_err() && session.set_lr(f64::NAN).is_err());
    assert_eq!(session.lr(), 0.01, "a refused rate changes nothing");
    for b in &batches {
        session.step_on_batch(b).unwrap();
    }
    drop(session);

    let mut handed = mlp(backend);
    let state = {
        let mut first = Session::for_batches(&fast, backend, &mut handed).unwrap();
        for b in &batches {
            first.step_on_batch(b).unwrap();
        }
        first.optimizer_state().unwrap()
    };
    let mut second = Session::for_batches(&slow, backend, &mut handed).unwrap();
    second.load_optimizer_state(&state).unwrap();
    for b in &batches {
        second.step_on_batch(b).unwrap();
    }
    drop(second);
    assert_eq!(
        lowered.parameters_flat(backend).unwrap(),
        handed.parameters_flat(backend).unwrap()
    );
}

#[test]
fn a_loop_sets_the_rate_between_steps() {
    a_new_rate_applies_from_the_next_step(&CpuBackend);
    a_new_rate_applies_from_the_next_step(gpu());
}

#[test]
fn the_same_on_the_gpu_state_handoff() {
    let g = gpu();
    let data = data(32);
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::MeanSquaredError);
    let mut a_model = mlp(g);
    let mut b_model = mlp(g);
    let mut a = Session::for_batches(&trainer, g, &mut a_model).unwrap();
    for _ in 0..6 {
        a.step_on_batch(&data).unwrap();
    }
    drop(a);
    let state = {
        let mut s = Session::for_batches(&trainer, g, &mut b_model).unwrap();
        for _ in 0..3 {
            s.step_on_batch(&data).unwrap();
        }
        s.optimizer_state().unwrap()
    };
    let mut s = Session::for_batches(&trainer, g, &mut b_model).unwrap();
    s.load_optimizer_state(&state).unwrap();
    for _ in 0..3 {
        s.step_on_batch(&data).unwrap();
    }
    drop(s);
    assert_eq!(
        a_model.parameters_flat(g).unwrap(),
        b_model.parameters_flat(g).unwrap()
    );
}

#[test]
fn bad_batches_are_refused_before_anything_runs() {
    let trainer = Trainer::new(Sgd::default(), Loss::MeanSquaredError);
    let mut model = mlp(&CpuBackend);
    let before = model.parameters_flat(&CpuBackend).unwrap();
    let mut session = Session::for_batches(&trainer, &CpuBackend, &mut model).unwrap();
    let wide = Dataset::regression(Array2::zeros((4, 5)), Array2::zeros((4, 1))).unwrap();
    let err = session.step_on_batch(&wide).unwrap_err().to_string();
    assert!(
        err.contains("5 features") && err.contains("takes 3"),
        "{err}"
    );
    let labels = Dataset::classification(Array2::zeros((4, 3)), &[0, 1, 0, 1], 2).unwrap();
    let err = session.step_on_batch(&labels).unwrap_err().to_string();
    assert!(
        err.contains("regression targets") && err.starts_with("Session::step_on_batch"),
        "{err}"
    );
    let x = CpuBackend.upload(Array2::zeros((4, 3)).view()).unwrap();
    let y = CpuBackend.upload(Array2::zeros((3, 1)).view()).unwrap();
    let err = session.step_on(&x, &y).unwrap_err().to_string();
    assert!(err.contains("y must be 4×1"), "{err}");
    let err = session.step().unwrap_err().to_string();
    assert!(err.contains("without training data"), "{err}");
    let err = session.last_batch_loss().unwrap_err().to_string();
    assert!(err.contains("no step"), "{err}");
    drop(session);
    assert_eq!(model.parameters_flat(&CpuBackend).unwrap(), before);

    let huber = Trainer::new(Sgd::default(), Loss::Huber { delta: 0.0 });
    let err = Session::for_batches(&huber, &CpuBackend, &mut model)
        .unwrap_err()
        .to_string();
    assert!(err.contains("delta") && err.contains("> 0"), "{err}");
    for smoothing in [-0.1, 1.5, f32::NAN] {
        let smoothed = Trainer::new(
            Sgd::default(),
            Loss::SoftmaxCrossEntropySmoothed { smoothing },
        );
        let err = Session::for_batches(&smoothed, &CpuBackend, &mut model)
            .unwrap_err()
            .to_string();
        assert!(err.contains("smoothing") && err.contains("[0, 1]"), "{err}");
    }
    for pos_weight in [0.0, -1.0, f32::INFINITY] {
        let weighted = Trainer::new(
            Sgd::default(),
            Loss::BinaryCrossEntropyWithLogitsWeighted { pos_weight },
        );
        let err = Session::for_batches(&weighted, &CpuBackend, &mut model)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pos_weight") && err.contains("> 0"), "{err}");
    }
}

#[test]
fn predict_works_on_any_model() {
    for backend_is_gpu in [false, true] {
        let check = |model_out: Array2<f32>, direct: Array2<f32>| {
            assert_eq!(model_out.dim(), (10, 2));
            assert_eq!(model_out, direct);
        };
        fn build<B: Backend>(b: &B) -> Sequential<B> {
            let block: Vec<Box<dyn Layer<B>>> = vec![
                Box::new(Linear::new(6, 6)),
                Box::new(Elementwise::new(6, Nonlinearity::Silu)),
            ];
            let layers: Vec<Box<dyn Layer<B>>> = vec![
                Box::new(Linear::new(3, 6)),
                Box::new(LayerNorm::new(6)),
                Box::new(Dropout::new(6, 0.5, 1)),
                Box::new(Residual::new(block).unwrap()),
                Box::new(Linear::new(6, 2)),
            ];
            Sequential::new(b, layers, Init::default(), 8).unwrap()
        }
        let x = data(10).x().clone();
        if backend_is_gpu {
            let m = build(gpu());
            let direct =
                gpu().download(&m.forward(gpu(), &gpu().upload(x.view()).unwrap()).unwrap());
            check(m.predict(gpu(), x.view()).unwrap(), direct.unwrap());
        } else {
            let m = build(&CpuBackend);
            let direct = m.forward(&CpuBackend, &x).unwrap();
            // Evaluation mode: dropout keeps everything, so two passes agree.
            assert_eq!(m.forward(&CpuBackend, &x).unwrap(), direct);
            check(m.predict(&CpuBackend, x.view()).unwrap(), direct);
            assert_eq!(
                m.predict_classes(&CpuBackend, x.slice(s![..3, ..]))
                    .unwrap()
                    .len(),
                3
            );
        }
    }
}
