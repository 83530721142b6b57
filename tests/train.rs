//! End-to-end training: GPU vs CPU in lockstep for every loss and activation, a free-running
//! loss-curve comparison, the wait budget, each stopping rule, evaluation, line search, the
//! finder and a one-cycle run.

mod common;

use common::gpu;
use common::lockstep::step_both;
use steepest::backend::Arena;
use steepest::optim::{Anneal, OneCycle};
use steepest::{
    Activation, Adam, Backend, BatchOrder, CpuBackend, Dataset, Error, Init, LineSearch, Loss,
    LrFinder, LrSchedule, Mlp, MlpSpec, Model, ParamGroup, Session, Sgd, StopReason, Swa, Trainer,
    data,
};

/// Data that fits `loss` for a model with `outputs` outputs and 2 inputs.
fn dataset(loss: Loss, outputs: usize) -> Dataset {
    match loss {
        Loss::SoftmaxCrossEntropy => data::blobs(
            150,
            &[[1.0, 1.0], [-1.0, 0.5], [0.0, -1.0]][..outputs],
            0.6,
            3,
        )
        .unwrap(),
        binary if binary.is_binary() => data::moons(150, 0.1, 4).unwrap(),
        _ => {
            let base = data::linear(150, &[0.7, -1.3], 0.2, 0.05, 5).unwrap();
            let y = ndarray::Array2::from_shape_fn((150, outputs), |(r, c)| {
                base.y()[[r, 0]] * (c as f32 + 1.0)
            });
            Dataset::regression(base.x().clone(), y).unwrap()
        }
    }
}

fn outputs_for(loss: Loss) -> usize {
    match loss {
        Loss::SoftmaxCrossEntropy => 3,
        binary if binary.is_binary() => 1,
        _ => 2,
    }
}

/// Steps both backends from the same parameters each step and compares the parameters after.
fn lockstep(loss: Loss, hidden: Activation, steps: usize) {
    let trainer = Trainer::new(Sgd::default().lr(0.1).momentum(0.9), loss)
        .batch_size(40)
        .seed(11);
    lockstep_with(&trainer, hidden, steps);
}

fn lockstep_with(trainer: &Trainer, hidden: Activation, steps: usize) {
    let loss = trainer.loss();
    let outputs = outputs_for(loss);
    let data = dataset(loss, outputs);
    let spec = MlpSpec::new(2)
        .layer(17, hidden)
        .layer(9, hidden)
        .layer(outputs, Activation::Identity);
    let g = gpu();
    let mut cpu_model = Mlp::new(&CpuBackend, &spec, Init::XavierUniform, 5).unwrap();
    let mut gpu_model = Mlp::new(g, &spec, Init::XavierUniform, 5).unwrap();
    let mut cpu = Session::new(trainer, &CpuBackend, &mut cpu_model, &data, None).unwrap();
    let mut gpu_session = Session::new(trainer, g, &mut gpu_model, &data, None).unwrap();
    for step in 1..=steps {
        let what = format!("{loss:?}/{hidden:?} step {step}");
        step_both(&mut cpu, (g, &mut gpu_session), &what);
    }
}

/// The elements of the parameter arena (as `parameters_flat` lays them out) that hold the
/// tensors whose names `pick` accepts.
fn arena_elements<B: Backend>(model: &Mlp<B>, pick: impl Fn(&str) -> bool) -> Vec<usize> {
    let offsets = model.network().parameters().offsets();
    let specs = model.network().parameter_specs();
    (specs.iter().zip(&offsets))
        .filter(|(p, _)| pick(&p.name))
        .flat_map(|(p, &at)| at..at + p.rows * p.cols)
        .collect()
}

/// A linear layer frozen whole between trained ones passes the gradient down through its
/// weight and the activation below (fused here) and computes none of its own: the backends
/// agree step by step, its parameters stay as they started, and after one step the layer
/// below is bit for bit where it is with nothing frozen (its gradient is the same product,
/// by another kernel on the GPU, summed in the same order).
#[test]
fn a_frozen_middle_layer_passes_the_gradient_down() {
    let data = dataset(Loss::SoftmaxCrossEntropy, 3);
    let spec = MlpSpec::new(2)
        .layer(17, Activation::Tanh)
        .layer(9, Activation::Sigmoid)
        .layer(3, Activation::Identity);
    let plain = Trainer::new(Adam::default().lr(0.05), Loss::SoftmaxCrossEntropy)
        .batch_size(40)
        .seed(3);
    let middle = plain
        .clone()
        .param_group(ParamGroup::matching("layers.1.*").frozen());
    let g = gpu();
    let cpu_start = Mlp::new(&CpuBackend, &spec, Init::XavierUniform, 5).unwrap();
    // The arena's elements of layer 0's tensors and of layer 1's.
    let tensors = |layer: &str| arena_elements(&cpu_start, |name| name.starts_with(layer));
    let (lower, frozen) = (tensors("layers.0."), tensors("layers.1."));
    let start = cpu_start.network().parameters_flat(&CpuBackend).unwrap();

    let mut cpu_model = Mlp::new(&CpuBackend, &spec, Init::XavierUniform, 5).unwrap();
    let mut gpu_model = Mlp::new(g, &spec, Init::XavierUniform, 5).unwrap();
    let mut cpu = Session::new(&middle, &CpuBackend, &mut cpu_model, &data, None).unwrap();
    let mut gpu_session = Session::new(&middle, g, &mut gpu_model, &data, None).unwrap();
    for step in 1..=6 {
        step_both(
            &mut cpu,
            (g, &mut gpu_session),
            &format!("frozen middle, step {step}"),
        );
    }
    let after = cpu.model().network().parameters_flat(&CpuBackend).unwrap();
    assert!(
        frozen
            .iter()
            .all(|&i| after[i].to_bits() == start[i].to_bits())
    );
    assert!(
        lower.iter().any(|&i| after[i] != start[i]),
        "layer 0 never moved"
    );

    // One step from the start, frozen middle and not, on each backend.
    fn first_step<B: Backend>(b: &B, spec: &MlpSpec, t: &Trainer, data: &Dataset) -> Vec<f32> {
        let mut model = Mlp::new(b, spec, Init::XavierUniform, 5).unwrap();
        Session::new(t, b, &mut model, data, None)
            .unwrap()
            .step()
            .unwrap();
        model.network().parameters_flat(b).unwrap()
    }
    for (name, with, without) in [
        (
            "cpu",
            first_step(&CpuBackend, &spec, &middle, &data),
            first_step(&CpuBackend, &spec, &plain, &data),
        ),
        (
            "gpu",
            first_step(g, &spec, &middle, &data),
            first_step(g, &spec, &plain, &data),
        ),
    ] {
        for &i in &lower {
            assert_eq!(
                with[i].to_bits(),
                without[i].to_bits(),
                "{name}: element {i}"
            );
        }
        assert!(
            frozen
                .iter()
                .all(|&i| with[i].to_bits() == start[i].to_bits())
        );
        assert!(frozen.iter().any(|&i| without[i] != start[i]), "{name}");
    }
}

/// BitFit (every weight frozen, the biases trained): the backends step in lockstep, every
/// weight ends bit for bit where it started while the biases move, and no weight gradient is
/// computed: the gradient arena's weight slots keep their zeros on the CPU, and on the GPU
/// for the 300-wide layer (over the one small-layer kernel's 256 outputs, whose dispatch
/// writes a weight gradient beside the bias's).
#[test]
fn bitfit_trains_the_biases_alone_and_computes_no_weight_gradient() {
    let data = dataset(Loss::SoftmaxCrossEntropy, 3);
    let spec = MlpSpec::new(2)
        .layer(300, Activation::Tanh)
        .layer(9, Activation::Relu)
        .layer(3, Activation::Identity);
    let bitfit = Trainer::new(Adam::default().lr(0.05), Loss::SoftmaxCrossEntropy)
        .batch_size(40)
        .seed(3)
        .param_group(ParamGroup::matching("*.weight").frozen());
    let g = gpu();
    let mut cpu_model = Mlp::new(&CpuBackend, &spec, Init::XavierUniform, 5).unwrap();
    let mut gpu_model = Mlp::new(g, &spec, Init::XavierUniform, 5).unwrap();
    let start = cpu_model.network().parameters_flat(&CpuBackend).unwrap();
    let elements = |suffix: &str, layer: &str| {
        arena_elements(&cpu_model, |name| {
            name.ends_with(suffix) && name.starts_with(layer)
        })
    };
    let (weights, biases) = (elements(".weight", ""), elements(".bias", ""));
    let wide_weight = elements(".weight", "layers.0.");
    assert_eq!(wide_weight.len(), 600);
    {
        let mut cpu = Session::new(&bitfit, &CpuBackend, &mut cpu_model, &data, None).unwrap();
        let mut gpu_session = Session::new(&bitfit, g, &mut gpu_model, &data, None).unwrap();
        for step in 1..=6 {
            step_both(
                &mut cpu,
                (g, &mut gpu_session),
                &format!("BitFit, step {step}"),
            );
        }
    }
    for (name, after, grads) in [
        (
            "cpu",
            cpu_model.network().parameters_flat(&CpuBackend).unwrap(),
            CpuBackend
                .read_arena(cpu_model.network().gradients())
                .unwrap(),
        ),
        (
            "gpu",
            gpu_model.network().parameters_flat(g).unwrap(),
            g.read_arena(gpu_model.network().gradients()).unwrap(),
        ),
    ] {
        assert!(
            weights
                .iter()
                .all(|&i| after[i].to_bits() == start[i].to_bits()),
            "{name}: a frozen weight moved"
        );
        assert!(
            biases.iter().filter(|&&i| after[i] != start[i]).count() > biases.len() / 2,
            "{name}: the biases hardly moved"
        );
        assert!(
            biases.iter().any(|&i| grads[i] != 0.0),
            "{name}: no bias gradient"
        );
        let unwritten = match name {
            "cpu" => &weights,
            _ => &wide_weight,
        };
        assert!(
            unwritten.iter().all(|&i| grads[i] == 0.0),
            "{name}: a frozen weight's gradient was computed"
        );
    }
}

#[test]
fn lockstep_every_loss_and_activation() {
    for loss in [
        Loss::MeanSquaredError,
        Loss::BinaryCrossEntropyWithLogits,
        Loss::BinaryCrossEntropyWithLogitsWeighted { pos_weight: 2.5 },
        Loss::SoftmaxCrossEntropy,
        Loss::L1,
        Loss::Huber { delta: 0.5 },
        Loss::SmoothL1 { beta: 0.3 },
    ] {
        for hidden in Activation::ALL {
            lockstep(loss, hidden, 8);
        }
    }
}

#[test]
fn stochastic_and_full_batch_descent_in_lockstep() {
    let stochastic = Trainer::new(Adam::default().lr(0.01), Loss::MeanSquaredError)
        .batch_size(1)
        .seed(2);
    lockstep_with(&stochastic, Activation::Tanh, 12);
    let full = Trainer::new(Sgd::default().lr(0.05), Loss::SoftmaxCrossEntropy).full_batch();
    lockstep_with(&full, Activation::Relu, 4);
}

/// Gradient accumulation: steps of 4 batches of 8 train as batches of 32 do, for each kind of
/// loss (a mean over rows, over elements, with labels): the same steps, the same logged
/// losses and parameters, up to the order of the sums. 150 samples make steps of 32, 32,
/// 32, 32 and 22, the last from batches of 8, 8 and 6, in the same shuffled order.
fn accumulated_batches_step_as_one<B: Backend>(backend: &B, name: &str) {
    for loss in [
        Loss::MeanSquaredError,
        Loss::SoftmaxCrossEntropy,
        Loss::BinaryCrossEntropyWithLogits,
    ] {
        let outputs = outputs_for(loss);
        let data = dataset(loss, outputs);
        let spec = MlpSpec::new(2)
            .layer(12, Activation::Tanh)
            .layer(outputs, Activation::Identity);
        let run = |batch: usize, batches: usize| {
            let mut model = Mlp::new(backend, &spec, Init::XavierUniform, 9).unwrap();
            let history = Trainer::new(Sgd::default().lr(0.2).momentum(0.9), loss)
                .batch_size(batch)
                .accumulate_grad_batches(batches)
                .epochs(2)
                .seed(4)
                .log_every(1)
                .fit(backend, &mut model, &data, None)
                .unwrap();
            (model.network().parameters_flat(backend).unwrap(), history)
        };
        let start = Mlp::new(backend, &spec, Init::XavierUniform, 9)
            .and_then(|model| model.network().parameters_flat(backend))
            .unwrap();
        let (large, large_history) = run(32, 1);
        let (summed, summed_history) = run(8, 4);
        let what = format!("{name} {loss:?}");
        assert_eq!(summed_history.steps.len(), 10, "{what}: steps");
        for (s, l) in summed_history.steps.iter().zip(&large_history.steps) {
            assert_eq!((s.step, s.epoch, s.lr), (l.step, l.epoch, l.lr), "{what}");
            assert!(
                (s.loss - l.loss).abs() <= 1e-5 * l.loss.abs().max(1.0),
                "{what}: step {} loss {} summed, {} in one batch",
                s.step,
                s.loss,
                l.loss
            );
        }
        for (s, l) in summed_history.epochs.iter().zip(&large_history.epochs) {
            assert_eq!(s.step, l.step, "{what}");
            assert!(
                (s.loss - l.loss).abs() <= 1e-5 * l.loss.abs().max(1.0),
                "{what}"
            );
        }
        let moved = (large.iter().zip(&start)).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(moved > 0.05, "{what}: the run hardly trained ({moved})");
        for (i, (s, l)) in summed.iter().zip(&large).enumerate() {
            assert!(
                (s - l).abs() <= 2e-5 * l.abs().max(1.0),
                "{what}: parameter {i} is {s} summed over batches, {l} from one batch"
            );
        }
    }
}

#[test]
fn accumulated_batches_step_as_one_on_both_backends() {
    accumulated_batches_step_as_one(&CpuBackend, "cpu");
    accumulated_batches_step_as_one(gpu(), "gpu");
}

/// Steps over three batches each (the epoch's last over what is left) agree between the
/// backends step by step, across an epoch's end.
#[test]
fn accumulated_steps_in_lockstep() {
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
        .batch_size(16)
        .accumulate_grad_batches(3)
        .seed(2);
    // 150 samples: steps of 48, 48, 48 and 6 an epoch.
    lockstep_with(&trainer, Activation::Relu, 6);
}

/// The averaged parameters against the formula's: bit for bit on the CPU (`name` "cpu"),
/// within a few ulps on the GPU (which may fuse a multiply and an add).
fn assert_average(average: &[f32], expected: &[f32], name: &str, when: &str) {
    for (i, (a, e)) in average.iter().zip(expected).enumerate() {
        let tol = match name {
            "cpu" => 0.0,
            _ => 4.0 * f32::EPSILON * e.abs().max(1.0),
        };
        assert!(
            (a - e).abs() <= tol,
            "{name} {when}: averaged parameter {i} is {a}, the formula's {e}"
        );
    }
}

/// A moving average of the parameters (`Trainer::ema`) follows PyTorch's formula step by step
/// (the first step's parameters, then `torch.lerp` toward each step's by 1 − decay, computed
/// here on the host: bit for bit on the CPU, within rounding on the GPU); the validation pass
/// measures it (what `Trainer::evaluate` says of a model holding it), and a run ends with it in
/// the model.
fn the_moving_average_is_pytorchs<B: Backend>(backend: &B, name: &str) {
    let (train, val) = data::spirals(200, 0.05, 3).unwrap().split(0.25, 3).unwrap();
    let spec = MlpSpec::new(2)
        .layer(16, Activation::Tanh)
        .layer(2, Activation::Identity);
    let decay = 0.75;
    let trainer = Trainer::new(Adam::default().lr(0.05), Loss::SoftmaxCrossEntropy)
        .batch_size(32)
        .seed(5)
        .epochs(2)
        .ema(decay);
    let mut model = Mlp::new(backend, &spec, Init::XavierUniform, 2).unwrap();
    let mut session = Session::new(&trainer, backend, &mut model, &train, Some(&val)).unwrap();
    let weight = (1.0 - decay) as f32;
    let mut expected: Vec<f32> = Vec::new();
    // 150 samples: 5 steps an epoch.
    for step in 1..=5 {
        session.step().unwrap();
        let params = session.model().network().parameters_flat(backend).unwrap();
        if step == 1 {
            expected = params;
        } else {
            for (e, p) in expected.iter_mut().zip(&params) {
                *e += weight * (p - *e);
            }
        }
        let average = session.averaged_parameters().unwrap().unwrap();
        assert_average(&average, &expected, name, &format!("step {step}"));
    }
    let trained = session.model().network().parameters_flat(backend).unwrap();
    assert!(
        (trained.iter().zip(&expected)).any(|(t, e)| (t - e).abs() > 1e-3),
        "{name}: the average is the trained parameters"
    );
    let record = session.run_epoch().unwrap();
    let average = session.averaged_parameters().unwrap().unwrap();
    // The rest of the run (its second epoch) ends with the average in the model.
    session.run().unwrap();
    let final_average = session.averaged_parameters().unwrap().unwrap();
    assert_eq!(session.into_history().epochs.len(), 2);
    let ended = model.network().parameters_flat(backend).unwrap();
    assert!(common::bit_identical(&ended, &final_average), "{name}");
    assert_ne!(
        final_average, average,
        "{name}: the second epoch moved the average"
    );
    let mut holding = Mlp::new(backend, &spec, Init::XavierUniform, 2).unwrap();
    holding
        .network_mut()
        .set_parameters_flat(backend, &average)
        .unwrap();
    let evaluated = trainer.evaluate(backend, &holding, &val).unwrap();
    assert!(
        (evaluated.loss - record.val_loss.unwrap()).abs() <= 1e-6 * evaluated.loss,
        "{name}: the validation pass measured {:?}, the average evaluates to {}",
        record.val_loss,
        evaluated.loss
    );
}

#[test]
fn the_moving_average_is_pytorchs_on_both_backends() {
    the_moving_average_is_pytorchs(&CpuBackend, "cpu");
    the_moving_average_is_pytorchs(gpu(), "gpu");
}

/// `torch.lerp(start, end, weight)` on the host, in PyTorch's two forms.
fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    match weight.abs() < 0.5 {
        true => start + weight * (end - start),
        false => end - (end - start) * (1.0 - weight),
    }
}

/// Stochastic weight averaging (`Trainer::swa`): epochs up to the start train at the schedule
/// and are validated as trained; from the start on each epoch's parameters join an equal
/// average (`torch.lerp` by 1/(n + 1), computed here on the host: bit for bit on the CPU,
/// within rounding on the GPU), which the validation pass measures, while the rate takes
/// SWALR's steps from the schedule's; the run ends with the average in the model.
fn weight_averaging_is_pytorchs<B: Backend>(backend: &B, name: &str) {
    let (train, val) = data::spirals(200, 0.05, 4).unwrap().split(0.25, 4).unwrap();
    let spec = MlpSpec::new(2)
        .layer(16, Activation::Tanh)
        .layer(2, Activation::Identity);
    let swa = Swa::new(3, 0.004).anneal_epochs(2).anneal(Anneal::Linear);
    let schedule = LrSchedule::step(4, 0.8);
    let trainer = Trainer::new(
        Sgd::default().lr(0.1).momentum(0.9),
        Loss::SoftmaxCrossEntropy,
    )
    .batch_size(32)
    .seed(6)
    .epochs(5)
    .schedule(schedule.clone())
    .swa(swa);
    let mut model = Mlp::new(backend, &spec, Init::XavierUniform, 3).unwrap();
    let mut session = Session::new(&trainer, backend, &mut model, &train, Some(&val)).unwrap();
    let evaluate = |params: &[f32]| {
        let mut holding = Mlp::new(backend, &spec, Init::XavierUniform, 3).unwrap();
        holding
            .network_mut()
            .set_parameters_flat(backend, params)
            .unwrap();
        trainer.evaluate(backend, &holding, &val).unwrap().loss
    };
    let mut expected: Vec<f32> = Vec::new();
    let mut rate = 0.0;
    // 150 samples: 5 steps an epoch.
    for epoch in 1..=4usize {
        let record = session.run_epoch().unwrap();
        let trained = session.model().network().parameters_flat(backend).unwrap();
        let steps = 5 * epoch as u64;
        let measured = match epoch {
            1 | 2 => {
                assert_eq!(record.lr, schedule.lr_at(0.1, steps - 1), "{name} {epoch}");
                trained
            }
            _ => {
                let weight = 1.0 / (epoch as f32 - 2.0);
                match epoch {
                    3 => expected = trained,
                    _ => (expected.iter_mut().zip(&trained))
                        .for_each(|(e, t)| *e = lerp(*e, *t, weight)),
                }
                let average = session.averaged_parameters().unwrap().unwrap();
                assert_average(&average, &expected, name, &format!("epoch {epoch}"));
                // The SWA rate: SWALR's step from the schedule's rate for the next update,
                // then from its own last.
                let before = match epoch {
                    3 => schedule.lr_at(0.1, steps),
                    _ => rate,
                };
                rate = swa.lr_after(epoch as u64 - 2, before);
                assert_eq!(session.lr(), rate, "{name}: the rate after epoch {epoch}");
                if epoch == 4 {
                    assert_eq!(record.lr, swa.lr_after(1, schedule.lr_at(0.1, 15)));
                }
                expected.clone()
            }
        };
        let val_loss = record.val_loss.unwrap();
        assert!(
            (evaluate(&measured) - val_loss).abs() <= 1e-6 * val_loss,
            "{name} epoch {epoch}: the validation pass measured {val_loss}, not what it should"
        );
    }
    assert_eq!(rate, 0.004, "{name}: two epochs anneal to the SWA rate");
    session.run().unwrap();
    let average = session.averaged_parameters().unwrap().unwrap();
    drop(session);
    let ended = model.network().parameters_flat(backend).unwrap();
    assert!(common::bit_identical(&ended, &average), "{name}");
    assert_ne!(
        ended, expected,
        "{name}: the fifth epoch joined the average"
    );

    // A run that stops before the start ends with the parameters it trained.
    let stopping = trainer.clone().stop_when_grad_norm_below(1e9);
    let mut model = Mlp::new(backend, &spec, Init::XavierUniform, 3).unwrap();
    let mut session = Session::new(&stopping, backend, &mut model, &train, Some(&val)).unwrap();
    session.run().unwrap();
    let trained = session.history().epochs.len();
    let start = session.averaged_parameters().unwrap().unwrap();
    drop(session);
    assert_eq!(trained, 1, "{name}: the rule stops after one epoch");
    let ended = model.network().parameters_flat(backend).unwrap();
    assert_ne!(ended, start, "{name}: ended with the untrained copy");
}

#[test]
fn weight_averaging_is_pytorchs_on_both_backends() {
    weight_averaging_is_pytorchs(&CpuBackend, "cpu");
    weight_averaging_is_pytorchs(gpu(), "gpu");
}

/// `Trainer::drop_last`: an epoch of 41 samples in batches of 8 takes 5 whole batches and
/// leaves the 41st sample out (its loss is the mean over the 40 trained on; without it, over
/// all 41), a one-cycle schedule's length counts those 5, and a model with a batch norm, which
/// a last batch of one row would stop (so it is refused with it), trains.
fn dropping_the_last_batch<B: Backend>(backend: &B, name: &str) {
    let data = data::blobs(41, &[[1.0, 0.0], [-1.0, 0.5]], 0.6, 3).unwrap();
    let spec = MlpSpec::new(2)
        .layer(8, Activation::Tanh)
        .layer(2, Activation::Identity);
    let still = |drop: bool| {
        Trainer::new(Sgd::default().lr(0.0), Loss::SoftmaxCrossEntropy)
            .batch_size(8)
            .batch_order(BatchOrder::InOrder)
            .epochs(2)
            .drop_last(drop)
    };
    let first_40: Vec<usize> = (0..40).collect();
    let kept = data.select(&first_40).unwrap();
    for (drop, steps, measured) in [(true, 5, &kept), (false, 6, &data)] {
        let mut model = Mlp::new(backend, &spec, Init::XavierUniform, 2).unwrap();
        let history = still(drop).fit(backend, &mut model, &data, None).unwrap();
        let record = history.epochs[1];
        assert_eq!(record.step, 2 * steps, "{name} drop_last {drop}");
        let want = still(drop)
            .evaluate(backend, &model, measured)
            .unwrap()
            .loss;
        assert!(
            (record.loss - want).abs() <= 1e-6 * want,
            "{name} drop_last {drop}: the epoch's loss {} is not the mean over {} samples ({want})",
            record.loss,
            measured.len()
        );
    }
    // 2 epochs of 5 steps fit a one-cycle of 10 updates only when the last batch is dropped.
    let cycle = LrSchedule::one_cycle(OneCycle::new(10).without_momentum_cycle());
    let mut model = Mlp::new(backend, &spec, Init::XavierUniform, 2).unwrap();
    let err = still(false)
        .schedule(cycle.clone())
        .fit(backend, &mut model, &data, None);
    let err = err.unwrap_err().to_string();
    assert!(err.contains("takes 12"), "{name}: {err}");
    (still(true).schedule(cycle))
        .fit(backend, &mut model, &data, None)
        .unwrap();
    // A batch norm needs two rows a batch: 41 = 5 × 8 + 1.
    let layers = || -> Vec<Box<dyn steepest::Layer<B>>> {
        vec![
            Box::new(steepest::Linear::new(2, 8)),
            Box::new(steepest::nn::BatchNorm::new(8)),
            Box::new(steepest::Linear::new(8, 2)),
        ]
    };
    let train = |drop: bool| {
        let mut model = steepest::Sequential::new(backend, layers(), Init::default(), 1).unwrap();
        let trainer = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy)
            .batch_size(8)
            .drop_last(drop);
        trainer.fit(backend, &mut model, &data, None).map(|_| ())
    };
    // Refused before training (`bad_settings.rs` has the whole message).
    let err = train(false).unwrap_err().to_string();
    assert!(
        err.contains("the last batch of each epoch would have 1 row"),
        "{name}: {err}"
    );
    train(true).unwrap();
}

#[test]
fn dropping_the_last_batch_on_both_backends() {
    dropping_the_last_batch(&CpuBackend, "cpu");
    dropping_the_last_batch(gpu(), "gpu");
}

#[test]
fn free_running_loss_curves_agree() {
    let (train, val) = data::spirals(300, 0.05, 1).unwrap().split(0.2, 1).unwrap();
    let spec = MlpSpec::new(2)
        .layer(24, Activation::Tanh)
        .layer(2, Activation::Identity);
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
        .batch_size(32)
        .epochs(6)
        .monitor(true);
    let g = gpu();
    let mut cpu_model = Mlp::new(&CpuBackend, &spec, Init::default(), 2).unwrap();
    let mut gpu_model = Mlp::new(g, &spec, Init::default(), 2).unwrap();
    let cpu = trainer
        .fit(&CpuBackend, &mut cpu_model, &train, Some(&val))
        .unwrap();
    let gpu_history = trainer.fit(g, &mut gpu_model, &train, Some(&val)).unwrap();
    assert_eq!(cpu.epochs.len(), 6);
    assert!(
        cpu.epochs[5].loss < cpu.epochs[0].loss,
        "the CPU run did not learn: {cpu:?}"
    );
    for (c, gr) in cpu.epochs.iter().zip(&gpu_history.epochs) {
        let close = |a: f64, b: f64| (a - b).abs() <= 0.02 * b.abs() + 1e-4;
        assert!(
            close(gr.loss, c.loss),
            "epoch {}: loss {} (GPU) vs {} (CPU)",
            c.epoch,
            gr.loss,
            c.loss
        );
        let (gv, cv) = (gr.val_loss.unwrap(), c.val_loss.unwrap());
        assert!(close(gv, cv), "epoch {}: val loss {gv} vs {cv}", c.epoch);
        let (gn, cn) = (gr.grad_norm.unwrap(), c.grad_norm.unwrap());
        assert!(
            close(gn, cn) || (gn - cn).abs() < 0.05 * cn,
            "epoch {}: ‖g‖ {gn} vs {cn}",
            c.epoch
        );
        assert!(gr.update_ratio.unwrap() > 0.0);
        assert_eq!(gr.lr, c.lr);
    }
}

#[test]
fn an_epoch_without_logging_waits_at_most_once_and_submits_once_per_step() {
    let (train, val) = data::moons(500, 0.1, 2).unwrap().split(0.2, 2).unwrap();
    let spec = MlpSpec::new(2)
        .layer(16, Activation::Relu)
        .layer(1, Activation::Identity);
    let g = &common::own_gpu();
    let mut model = Mlp::new(g, &spec, Init::HeUniform, 1).unwrap();
    let epochs = 4;
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::BinaryCrossEntropyWithLogits)
        .batch_size(64)
        .epochs(epochs)
        .monitor(true);
    let ctx = g.context();
    let (waits, submits) = (ctx.waits(), ctx.submits());
    let history = trainer.fit(g, &mut model, &train, Some(&val)).unwrap();
    let waits = ctx.waits() - waits;
    let submits = ctx.submits() - submits;
    let steps = history.last().unwrap().step;
    assert_eq!(steps, epochs as u64 * 400u64.div_ceil(64));
    assert!(waits <= epochs as u64, "{waits} waits in {epochs} epochs");
    // One submit per step; the epoch ends add the validation pass and the totals reset.
    assert!(
        submits <= steps + 2 * epochs as u64 + 2,
        "{submits} submits for {steps} steps"
    );
}

/// Steps grouped into fewer submits (`steps_per_submit`) compute the same values, bit for
/// bit, through logged steps, epoch ends, validation passes and the monitor; only the submits
/// are fewer.
#[test]
fn steps_grouped_into_fewer_submits_train_the_same_bits() {
    let (train, val) = data::moons(500, 0.1, 2).unwrap().split(0.2, 2).unwrap();
    let spec = MlpSpec::new(2)
        .layer(16, Activation::Relu)
        .layer(1, Activation::Identity);
    let mut runs = Vec::new();
    for every in [1, 4] {
        let g = common::own_gpu();
        let mut model = Mlp::new(&g, &spec, Init::HeUniform, 1).unwrap();
        let trainer = Trainer::new(Adam::default().lr(0.01), Loss::BinaryCrossEntropyWithLogits)
            .batch_size(64)
            .epochs(3)
            .monitor(true)
            .log_every(5)
            .steps_per_submit(every);
        let submits = g.context().submits();
        let history = trainer.fit(&g, &mut model, &train, Some(&val)).unwrap();
        let submits = g.context().submits() - submits;
        let params = model.parameters_flat(&g).unwrap();
        runs.push((params, history, submits));
    }
    let (one, four) = (&runs[0], &runs[1]);
    assert!(
        common::bit_identical(&one.0, &four.0),
        "the parameters differ"
    );
    assert_eq!(one.1, four.1, "the histories differ");
    assert_eq!(one.1.epochs.len(), 3);
    // 21 steps: every step submits, or only those the logged steps (5, 10, 15, 20), the epoch
    // ends and every 4th step reach first.
    assert!(four.2 < one.2, "{} submits grouped, {} not", four.2, one.2);
}

/// Every `steps_per_submit`-th step submits, counting from the run's first; a readback submits
/// what is pending first.
#[test]
fn a_group_of_steps_is_submitted_when_its_last_is_recorded_or_something_reads_back() {
    let data = data::moons(640, 0.1, 3).unwrap();
    let spec = MlpSpec::new(2)
        .layer(8, Activation::Tanh)
        .layer(1, Activation::Identity);
    let g = common::own_gpu();
    let ctx = g.context();
    let mut model = Mlp::new(&g, &spec, Init::HeUniform, 1).unwrap();
    let trainer = Trainer::new(Sgd::default().lr(0.1), Loss::BinaryCrossEntropyWithLogits)
        .batch_size(32)
        .steps_per_submit(4);
    let mut session = Session::new(&trainer, &g, &mut model, &data, None).unwrap();
    ctx.wait().unwrap();
    let (submits, waits) = (ctx.submits(), ctx.waits());
    for _ in 0..10 {
        session.step().unwrap();
    }
    assert_eq!(ctx.submits() - submits, 2, "steps 4 and 8 submit");
    assert!(session.last_batch_loss().unwrap().is_finite());
    assert_eq!(
        ctx.submits() - submits,
        3,
        "the readback submits steps 9 and 10"
    );
    assert_eq!(ctx.waits() - waits, 1);
}

#[test]
fn logging_reads_back_every_n_steps() {
    let data = data::linear(64, &[1.0, 2.0], 0.5, 0.0, 1).unwrap();
    let spec = MlpSpec::new(2).layer(1, Activation::Identity);
    let g = &common::own_gpu();
    let mut model = Mlp::new(g, &spec, Init::default(), 1).unwrap();
    let trainer = Trainer::new(Sgd::default().lr(0.1), Loss::MeanSquaredError)
        .batch_size(8)
        .epochs(2)
        .log_every(3);
    let waits = g.context().waits();
    let history = trainer.fit(g, &mut model, &data, None).unwrap();
    let steps: Vec<u64> = history.steps.iter().map(|s| s.step).collect();
    assert_eq!(steps, vec![3, 6, 9, 12, 15]);
    assert_eq!(g.context().waits() - waits, 5 + 2);
    assert!(
        history
            .steps
            .iter()
            .all(|s| s.loss.is_finite() && s.lr == 0.1)
    );
}

/// Least squares by gradient descent recovers the generating line, on `backend`.
fn least_squares_recovers_the_line<B: Backend>(backend: &B) {
    let data = data::linear(200, &[2.0, -3.0], 0.5, 0.01, 9).unwrap();
    let spec = MlpSpec::new(2).layer(1, Activation::Identity);
    let mut model = Mlp::new(backend, &spec, Init::default(), 3).unwrap();
    let history = Trainer::new(Sgd::default().lr(0.5), Loss::MeanSquaredError)
        .full_batch()
        .epochs(200)
        .fit(backend, &mut model, &data, None)
        .unwrap();
    let p = model.parameters_flat(backend).unwrap();
    assert!(
        (p[0] - 2.0).abs() < 0.01 && (p[1] + 3.0).abs() < 0.01 && (p[2] - 0.5).abs() < 0.01,
        "{p:?}"
    );
    assert!(history.last().unwrap().loss < 2e-4);
}

#[test]
fn least_squares_on_both_backends() {
    least_squares_recovers_the_line(&CpuBackend);
    least_squares_recovers_the_line(gpu());
}

fn regression_model<B: Backend>(backend: &B) -> (Dataset, Mlp<B>) {
    let data = data::linear(120, &[1.5, -0.5], 0.25, 0.01, 4).unwrap();
    let model = Mlp::new(
        backend,
        &MlpSpec::new(2).layer(1, Activation::Identity),
        Init::default(),
        8,
    )
    .unwrap();
    (data, model)
}

/// `Trainer::evaluate` reports what the validation pass reports for the same data, bit for
/// bit (the same chunks: 1 300 rows take two), for a classification and a regression loss.
fn evaluation_is_the_validation_pass<B: Backend>(backend: &B) {
    for (loss, outputs) in [(Loss::SoftmaxCrossEntropy, 3), (Loss::MeanSquaredError, 2)] {
        let train = dataset(loss, outputs);
        let held_out = match loss {
            Loss::SoftmaxCrossEntropy => {
                data::blobs(1300, &[[1.0, 1.0], [-1.0, 0.5], [0.0, -1.0]], 0.6, 8).unwrap()
            }
            _ => {
                let base = data::linear(1300, &[0.7, -1.3], 0.2, 0.05, 8).unwrap();
                let y = ndarray::Array2::from_shape_fn((1300, 2), |(r, c)| {
                    base.y()[[r, 0]] * (c as f32 + 1.0)
                });
                Dataset::regression(base.x().clone(), y).unwrap()
            }
        };
        let spec = MlpSpec::new(2)
            .layer(8, Activation::Tanh)
            .layer(outputs, Activation::Identity);
        let mut model = Mlp::new(backend, &spec, Init::default(), 2).unwrap();
        let trainer = Trainer::new(Adam::default().lr(0.01), loss)
            .batch_size(32)
            .epochs(3);
        let history = trainer
            .fit(backend, &mut model, &train, Some(&held_out))
            .unwrap();
        let last = history.last().unwrap();
        let evaluation = trainer.evaluate(backend, &model, &held_out).unwrap();
        assert_eq!(evaluation.samples, 1300);
        assert_eq!(Some(evaluation.loss), last.val_loss, "{loss:?}");
        assert_eq!(evaluation.accuracy, last.val_accuracy, "{loss:?}");
        assert_eq!(evaluation.accuracy.is_some(), loss.has_accuracy());
        // Data the model cannot take, or targets the loss cannot, are refused by name.
        let wide = data::linear(10, &[1.0, 2.0, 3.0], 0.0, 0.0, 1).unwrap();
        let err = trainer.evaluate(backend, &model, &wide).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Data {
                    op: "Trainer::evaluate",
                    ..
                }
            ) && err.to_string().contains("3 features, the model takes 2"),
            "{err}"
        );
    }
}

#[test]
fn evaluation_reports_what_the_validation_pass_reports() {
    evaluation_is_the_validation_pass(&CpuBackend);
    evaluation_is_the_validation_pass(gpu());
}

#[test]
fn stopping_rules() {
    let g = gpu();
    // Gradient-norm tolerance: full-batch descent on a convex problem gets there.
    let (data, mut model) = regression_model(g);
    let history = Trainer::new(Sgd::default().lr(0.5), Loss::MeanSquaredError)
        .full_batch()
        .epochs(1000)
        .stop_when_grad_norm_below(1e-3)
        .fit(g, &mut model, &data, None)
        .unwrap();
    let last = history.last().unwrap();
    assert!(
        matches!(history.stop, StopReason::GradientTolerance { grad_norm } if grad_norm < 1e-3)
    );
    assert!(last.epoch < 1000 && last.grad_norm.unwrap() < 1e-3);

    // Plateau: with a zero learning rate nothing improves after the first epoch (beyond the
    // rounding of summing the same losses in another order).
    let (data, mut model) = regression_model(g);
    let history = Trainer::new(Sgd::default().lr(0.0), Loss::MeanSquaredError)
        .batch_size(30)
        .epochs(50)
        .stop_on_plateau(3, 1e-6)
        .fit(g, &mut model, &data, None)
        .unwrap();
    assert!(
        matches!(history.stop, StopReason::Plateau { .. }),
        "{:?}",
        history.stop
    );
    assert_eq!(history.epochs.len(), 4);

    // Max epochs.
    let (data, mut model) = regression_model(&CpuBackend);
    let history = Trainer::new(Sgd::default().lr(0.1), Loss::MeanSquaredError)
        .epochs(3)
        .fit(&CpuBackend, &mut model, &data, None)
        .unwrap();
    assert_eq!(history.stop, StopReason::MaxEpochs);
    assert_eq!(history.epochs.len(), 3);
}

/// A far too large rate diverges; the error names the step and the model keeps the last good
/// parameters.
fn divergence_is_an_error<B: Backend>(backend: &B) {
    let (data, mut model) = regression_model(backend);
    let before = model.parameters_flat(backend).unwrap();
    let result = Trainer::new(Sgd::default().lr(100.0), Loss::MeanSquaredError)
        .batch_size(10)
        .epochs(50)
        .log_every(1)
        .fit(backend, &mut model, &data, None);
    match result {
        Err(Error::Diverged { step, loss, .. }) => {
            assert!(step >= 1 && !loss.is_finite(), "step {step}, loss {loss}");
        }
        other => panic!("expected divergence, got {other:?}"),
    }
    let after = model.parameters_flat(backend).unwrap();
    assert!(after.iter().all(|v| v.is_finite()));
    // Divergence came within the first epoch, so the last good parameters are the initial ones.
    assert_eq!(after, before);

    // Runaway growth past the bound counts too, before any overflow.
    let (data, mut model) = regression_model(backend);
    let result = Trainer::new(Sgd::default().lr(3.0), Loss::MeanSquaredError)
        .full_batch()
        .epochs(100)
        .diverge_above(100.0)
        .fit(backend, &mut model, &data, None);
    assert!(
        matches!(result, Err(Error::Diverged { loss, .. }) if loss.is_finite()),
        "{result:?}"
    );
}

#[test]
fn divergence_on_both_backends() {
    divergence_is_an_error(&CpuBackend);
    divergence_is_an_error(gpu());
}

#[test]
fn line_search_minimises_least_squares() {
    line_search_on(&CpuBackend);
    line_search_on(gpu());
}

fn line_search_on<B: Backend>(backend: &B) {
    let (data, mut model) = regression_model(backend);
    let search = LineSearch {
        iterations: 60,
        grad_tolerance: 1e-4,
        ..LineSearch::default()
    };
    let history = search
        .run(backend, &mut model, &data, Loss::MeanSquaredError)
        .unwrap();
    // Armijo: every accepted step decreased the loss.
    for pair in history.epochs.windows(2) {
        assert!(pair[1].loss < pair[0].loss, "{:?}", pair);
        assert!(pair[0].lr > 0.0 && pair[0].lr <= 1.0);
    }
    let p = model.parameters_flat(backend).unwrap();
    assert!(
        (p[0] - 1.5).abs() < 0.01 && (p[1] + 0.5).abs() < 0.01 && (p[2] - 0.25).abs() < 0.01,
        "{p:?}"
    );
    assert!(!matches!(history.stop, StopReason::Running));
}

/// With class weights the line search minimises the weighted mean loss: its first record is
/// the trainer's weighted evaluation of the starting model (which the unweighted one is not),
/// and every accepted step lowers it.
fn weighted_line_search_on<B: Backend>(backend: &B) {
    let data = data::blobs(90, &[[1.0, 1.0], [-1.0, 0.5], [0.0, -1.0]], 0.9, 5).unwrap();
    let spec = MlpSpec::new(2)
        .layer(8, Activation::Tanh)
        .layer(3, Activation::Identity);
    let mut model = Mlp::new(backend, &spec, Init::default(), 6).unwrap();
    let weights = vec![0.5, 3.0, 1.0];
    let evaluate = |model: &Mlp<B>, weights: Option<&Vec<f32>>| {
        let trainer = Trainer::new(Sgd::default(), Loss::SoftmaxCrossEntropy);
        let trainer = match weights {
            Some(w) => trainer.class_weights(w.clone()),
            None => trainer,
        };
        trainer.evaluate(backend, model, &data).unwrap().loss
    };
    let (weighted, plain) = (evaluate(&model, Some(&weights)), evaluate(&model, None));
    let search = LineSearch {
        iterations: 20,
        ..LineSearch::default()
    }
    .class_weights(weights.clone());
    let history = search
        .run(backend, &mut model, &data, Loss::SoftmaxCrossEntropy)
        .unwrap();
    let first = history.epochs[0].loss;
    assert!(
        (first - weighted).abs() <= 1e-6 * weighted,
        "{first} against {weighted}"
    );
    assert!(
        (weighted - plain).abs() > 1e-3,
        "the weights change the loss"
    );
    for pair in history.epochs.windows(2) {
        assert!(pair[1].loss < pair[0].loss, "{pair:?}");
    }
    let last = evaluate(&model, Some(&weights));
    assert!(last < 0.8 * weighted, "{weighted} → {last}");
}

#[test]
fn a_line_search_minimises_the_weighted_loss() {
    weighted_line_search_on(&CpuBackend);
    weighted_line_search_on(gpu());
}

#[test]
fn lr_finder_suggests_a_rate_that_trains() {
    let g = gpu();
    let (data, mut model) = regression_model(g);
    let before = model.parameters_flat(g).unwrap();
    let trainer = Trainer::new(Sgd::default(), Loss::MeanSquaredError).batch_size(16);
    let finder = LrFinder {
        min_lr: 1e-5,
        max_lr: 100.0,
        steps: 80,
        ..LrFinder::default()
    };
    let result = finder.run(g, &mut model, &trainer, &data).unwrap();
    assert_eq!(
        model.parameters_flat(g).unwrap(),
        before,
        "the finder must restore the model"
    );
    assert!(result.lrs.windows(2).all(|w| w[1] > w[0]));
    // It stopped early: the loss blew up well before 100.
    assert!(result.lrs.len() < 80, "swept {} rates", result.lrs.len());
    assert!(
        (1e-3..=2.0).contains(&result.suggested),
        "suggested {}",
        result.suggested
    );
    // The suggestion trains.
    let history = Trainer::new(Sgd::default().lr(result.suggested), Loss::MeanSquaredError)
        .batch_size(16)
        .epochs(20)
        .fit(g, &mut model, &data, None)
        .unwrap();
    assert!(history.last().unwrap().loss < 0.01 * history.epochs[0].loss.max(1e-3) + 1e-3);
}

#[test]
fn bad_settings_are_errors_before_training() {
    let (data, mut model) = regression_model(&CpuBackend);
    let before = model.parameters_flat(&CpuBackend).unwrap();
    let fit = |trainer: Trainer, model: &mut Mlp<CpuBackend>| {
        trainer.fit(&CpuBackend, model, &data, None)
    };
    let mse = |t: Trainer| t;
    for (trainer, what) in [
        (
            mse(Trainer::new(Sgd::default(), Loss::MeanSquaredError).batch_size(0)),
            "batch size 0",
        ),
        (
            Trainer::new(Sgd::default(), Loss::MeanSquaredError).batch_size(121),
            "batch larger than the data",
        ),
        (
            Trainer::new(Sgd::default(), Loss::SoftmaxCrossEntropy),
            "cross-entropy on regression targets",
        ),
        (
            Trainer::new(Sgd::default(), Loss::MeanSquaredError).epochs(0),
            "0 epochs",
        ),
    ] {
        assert!(
            matches!(fit(trainer, &mut model), Err(Error::Data { .. })),
            "{what}"
        );
    }
    assert!(matches!(
        fit(
            Trainer::new(Sgd::default().lr(-1.0), Loss::MeanSquaredError),
            &mut model
        ),
        Err(Error::InvalidHyperparameter { .. })
    ));
    assert_eq!(model.parameters_flat(&CpuBackend).unwrap(), before);
}

/// A run under a one-cycle schedule of exactly its length: each epoch ends at the rate the
/// schedule gives its last update, the momentum cycles with it, and the loss falls.
fn one_cycle_run<B: Backend>(backend: &B) {
    let (data, mut model) = regression_model(backend);
    // 120 samples in batches of 16: 8 updates an epoch, 40 in 5 epochs.
    let schedule = LrSchedule::one_cycle(OneCycle::new(40));
    let history = Trainer::new(Adam::default().lr(0.2), Loss::MeanSquaredError)
        .batch_size(16)
        .epochs(5)
        .schedule(schedule.clone())
        .fit(backend, &mut model, &data, None)
        .unwrap();
    let rates: Vec<f64> = history.epochs.iter().map(|r| r.lr).collect();
    let want: Vec<f64> = history
        .epochs
        .iter()
        .map(|r| schedule.lr_at(0.2, r.step - 1))
        .collect();
    assert_eq!(rates, want);
    assert_eq!(history.last().unwrap().step, 40);
    assert!(rates[1] > rates[0] && rates[4] < 1e-5, "{rates:?}");
    let (first, last) = (history.epochs[0].loss, history.last().unwrap().loss);
    assert!(last < first / 10.0, "{first} → {last}");
}

#[test]
fn one_cycle_runs_on_both_backends() {
    one_cycle_run(&CpuBackend);
    one_cycle_run(gpu());
}

/// With class weights, `Trainer::evaluate` (one chunk here) reports the weighted mean
/// Σ w_label·(lse − x_label) / Σ w_label over the data, from the model's own logits, on both
/// backends; the validation pass of a run reports the same for its last epoch's parameters.
#[test]
fn evaluation_with_class_weights_is_the_weighted_mean() {
    let data = dataset(Loss::SoftmaxCrossEntropy, 3);
    let weights = vec![0.5f32, 2.0, 1.25];
    let spec = MlpSpec::new(2)
        .layer(8, Activation::Tanh)
        .layer(3, Activation::Identity);
    fn check<B: Backend>(backend: &B, data: &Dataset, spec: &MlpSpec, weights: &[f32]) {
        let trainer = Trainer::new(Adam::default().lr(0.05), Loss::SoftmaxCrossEntropy)
            .class_weights(weights.to_vec())
            .batch_size(150)
            .epochs(3);
        let mut model = Mlp::new(backend, spec, Init::default(), 4).unwrap();
        let history = trainer.fit(backend, &mut model, data, Some(data)).unwrap();
        let logits = model.predict(backend, data.x().view()).unwrap();
        let labels = data.labels().unwrap();
        let (mut sum, mut total) = (0.0f64, 0.0f64);
        for (row, &label) in logits.rows().into_iter().zip(&labels) {
            let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let lse = f64::from(m)
                + row
                    .iter()
                    .map(|&v| f64::from(v - m).exp())
                    .sum::<f64>()
                    .ln();
            let w = f64::from(weights[label]);
            sum += w * (lse - f64::from(row[label]));
            total += w;
        }
        let want = sum / total;
        let got = trainer.evaluate(backend, &model, data).unwrap().loss;
        assert!(
            (got - want).abs() <= 1e-5 * want,
            "evaluate: {got}, the weighted mean {want}"
        );
        let last = history.epochs.last().unwrap().val_loss.unwrap();
        assert!(
            (last - want).abs() <= 1e-5 * want,
            "validation: {last}, the weighted mean {want}"
        );
    }
    check(&CpuBackend, &data, &spec, &weights);
    check(gpu(), &data, &spec, &weights);
}
