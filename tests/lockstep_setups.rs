//! Random training setups (`common/setups.rs`), the GPU against the CPU step by step. Each
//! step starts both backends from the same parameters; the GPU's must move as the CPU's do,
//! and a setup or step one backend refuses the other must refuse with the same message. The
//! trained model then predicts and is evaluated alike on both. The same on batches of the
//! application's own, of random rows and sizes.

mod common;

use common::gpu;
use common::setups::{Part, dataset, draw_smooth, network};
use proptest::prelude::*;
use rand::RngExt;
use steepest::{Backend, CpuBackend, GpuBackend, Model, Session};

const STEPS: usize = 6;

/// Both results when both backends succeed; `None` when both fail, with one message (the case
/// then ends there); a failure on one backend alone fails the test.
fn alike<C, G>(what: &str, cpu: steepest::Result<C>, gpu: steepest::Result<G>) -> Option<(C, G)> {
    match (cpu, gpu) {
        (Ok(c), Ok(g)) => Some((c, g)),
        (Err(c), Err(g)) => {
            assert_eq!(c.to_string(), g.to_string(), "{what}: refused differently");
            None
        }
        (c, g) => panic!("{what}: CPU {:?}, GPU {:?}", c.err(), g.err()),
    }
}

fn lockstep(seed: u64) {
    let setup = draw_smooth(seed);
    let decay = setup.trainer.optimizer().weight_decay() as f32;
    let what = format!("seed {seed}: {setup:?}");
    let data = dataset(&setup);
    let g = gpu();
    let mut cpu_net = network(&CpuBackend, &setup).unwrap();
    let mut gpu_net = network(g, &setup).unwrap();
    let cpu = Session::new(&setup.trainer, &CpuBackend, &mut cpu_net, &data, None);
    let gpu_session = Session::new(&setup.trainer, g, &mut gpu_net, &data, None);
    let Some((mut cpu, mut gpu_session)) = alike(&what, cpu, gpu_session) else {
        return;
    };
    // The elements whose update rounding decided (`assert_moved_alike`).
    let mut decided = Vec::new();
    for step in 1..=STEPS {
        let start = cpu.model().network().parameters_flat(&CpuBackend).unwrap();
        let gpu_net = gpu_session.model_mut().network_mut();
        gpu_net.set_parameters_flat(g, &start).unwrap();
        let what = format!("{what}: step {step}");
        if alike(&what, cpu.step(), gpu_session.step()).is_none() {
            return;
        }
        assert_moved_alike(
            (&what, step),
            (&start, decay),
            (&cpu, &gpu_session),
            &mut decided,
        );
    }
    drop((cpu, gpu_session));
    // The trained model in evaluation mode (a batch norm's running statistics, no dropout),
    // from the same parameters and buffers: its predictions and its evaluation.
    let trained = cpu_net.parameters_flat(&CpuBackend).unwrap();
    gpu_net.set_parameters_flat(g, &trained).unwrap();
    let expected = cpu_net.predict(&CpuBackend, data.x().view()).unwrap();
    let actual = gpu_net.predict(g, data.x().view()).unwrap();
    // Loose enough for a row a layer norm finds nearly constant (its 1/σ multiplies the
    // backends' rounding: 4e-5 off once in 2 500 cases at 1e-4), tight against an evaluation
    // pass that trains (batch statistics, dropout), which moves outputs by far more.
    let tolerance = common::tolerance(&expected, 1e-3, 1e-4);
    common::assert_close(
        &format!("{what}: predictions"),
        &actual,
        &expected,
        &tolerance,
    );
    let cpu_eval = setup
        .trainer
        .evaluate(&CpuBackend, &cpu_net, &data)
        .unwrap();
    let gpu_eval = setup.trainer.evaluate(g, &gpu_net, &data).unwrap();
    let close = (gpu_eval.loss - cpu_eval.loss).abs() <= 1e-3 * cpu_eval.loss.abs() + 1e-6;
    assert!(
        close,
        "{what}: evaluated loss {gpu_eval:?} on the GPU, {cpu_eval:?} on the CPU"
    );
    // A sample whose top two logits tie to rounding may go either way.
    let (ga, ca) = (gpu_eval.accuracy, cpu_eval.accuracy);
    let one = 1.0 / data.len() as f64;
    assert!(
        ga.zip(ca)
            .map_or(ga == ca, |(ga, ca)| (ga - ca).abs() <= one + 1e-12),
        "{what}: evaluated accuracy {ga:?} on the GPU, {ca:?} on the CPU"
    );
}

/// The setup's trainer on batches of the application's own (`Session::for_batches`): random
/// rows of random sizes, a step each (a kth of one with accumulation), the GPU against the CPU.
fn lockstep_on_batches(seed: u64) {
    let setup = draw_smooth(seed);
    let decay = setup.trainer.optimizer().weight_decay() as f32;
    let what = format!("seed {seed} on batches: {setup:?}");
    let data = dataset(&setup);
    let g = gpu();
    let mut cpu_net = network(&CpuBackend, &setup).unwrap();
    let mut gpu_net = network(g, &setup).unwrap();
    let cpu = Session::for_batches(&setup.trainer, &CpuBackend, &mut cpu_net);
    let gpu_session = Session::for_batches(&setup.trainer, g, &mut gpu_net);
    let Some((mut cpu, mut gpu_session)) = alike(&what, cpu, gpu_session) else {
        return;
    };
    let mut rng = common::rng(seed);
    // A batch norm trains on 4 rows or more here (`common/setups.rs` says why).
    let normed = setup.parts.iter().any(|p| matches!(p, Part::BatchNorm));
    let least = if normed { 4 } else { 1 };
    // The elements whose update rounding decided (`assert_moved_alike`).
    let mut decided = Vec::new();
    for step in 1..=STEPS {
        let size = rng.random_range(least..=setup.rows / 2);
        let rows: Vec<usize> = (0..size).map(|_| rng.random_range(0..setup.rows)).collect();
        let batch = data.select(&rows).unwrap();
        let start = cpu.model().network().parameters_flat(&CpuBackend).unwrap();
        let gpu_net = gpu_session.model_mut().network_mut();
        gpu_net.set_parameters_flat(g, &start).unwrap();
        let (on_cpu, on_gpu) = (cpu.step_on_batch(&batch), gpu_session.step_on_batch(&batch));
        if alike(&format!("{what}: batch {step}"), on_cpu, on_gpu).is_none() {
            return;
        }
        assert_eq!(
            cpu.pending_batches(),
            gpu_session.pending_batches(),
            "{what}"
        );
        assert_moved_alike(
            (&what, step),
            (&start, decay),
            (&cpu, &gpu_session),
            &mut decided,
        );
    }
}

/// Asserts that every parameter moved alike on both backends in the step just taken from
/// `start` (`what` and `step` name the case).
fn assert_moved_alike<C: Model<CpuBackend>, G: Model<GpuBackend>>(
    (what, step): (&str, usize),
    (start, weight_decay): (&[f32], f32),
    (cpu, gpu_session): (&Session<'_, CpuBackend, C>, &Session<'_, GpuBackend, G>),
    decided: &mut Vec<bool>,
) {
    let g = gpu();
    let expected = cpu.model().network().parameters_flat(&CpuBackend).unwrap();
    let actual = gpu_session.model().network().parameters_flat(g).unwrap();
    let cpu_grads = CpuBackend
        .read_arena(cpu.model().network().gradients())
        .unwrap();
    let gpu_grads = g
        .read_arena(gpu_session.model().network().gradients())
        .unwrap();
    // An element whose update the two backends' rounding decides is not compared: where both
    // agree on its gradient to rounding but what the update divides is near zero (the terms of
    // the gradient's sum cancel, or it cancels the weight decay λθ added to it), an adaptive
    // optimizer scales that rounding up to a step of either size. A gradient one backend
    // loses or makes up does not agree to rounding.
    let largest = cpu_grads.iter().fold(0f32, |m, v| m.max(v.abs()));
    let decay = weight_decay;
    for (i, ((a, e), s)) in actual.iter().zip(&expected).zip(start).enumerate() {
        let tol = 2e-3 * (e - s).abs() + 1e-5 * e.abs().max(1.0);
        let (gg, cg) = (gpu_grads[i], cpu_grads[i]);
        let disagreement = (gg - cg).abs();
        let agree = disagreement <= 1e-5 * largest + 1e-4 * cg.abs();
        // The decayed gradient, either sign (`maximize` negates the gradient first), and what
        // its rounding (the backends', or the sum's own) can move it by.
        let effective = (cg + decay * s)
            .abs()
            .min((cg - decay * s).abs())
            .min(cg.abs());
        let noise = disagreement.max(1e-7 * (cg.abs() + (decay * s).abs()));
        // Once rounding decided an update, the optimizer's state for that element (its
        // moments, its step size) differs on the two backends from then on.
        decided.resize(actual.len(), false);
        decided[i] |= agree && effective <= 1e3 * noise;
        if (a - e).abs() > tol && !decided[i] {
            panic!(
                "{what}: step {step}: parameter {i} is {a} on the GPU, {e} on the CPU (from \
                 {s}); its last gradient {gg} on the GPU, {cg} on the CPU (the largest \
                 {largest})"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_setups_train_alike_on_both_backends(seed in any::<u64>()) {
        lockstep(seed);
    }

    #[test]
    fn random_setups_train_alike_on_batches_of_their_own(seed in any::<u64>()) {
        lockstep_on_batches(seed);
    }
}
