//! Random training setups (`common/setups.rs`), the GPU against the CPU step by step. Each
//! step starts both backends from the same parameters; the GPU's must move as the CPU's do,
//! and a setup or step one backend refuses the other must refuse with the same message. The
//! trained model then predicts and is evaluated alike on both.

mod common;

use common::gpu;
use common::setups::{dataset, draw, network};
use proptest::prelude::*;
use steepest::{Backend, CpuBackend, Model, Session};

const STEPS: usize = 6;

fn lockstep(seed: u64) {
    let setup = draw(seed);
    let what = format!("seed {seed}: {setup:?}");
    let data = dataset(&setup);
    let g = gpu();
    let mut cpu_net = network(&CpuBackend, &setup).unwrap();
    let mut gpu_net = network(g, &setup).unwrap();
    let cpu = Session::new(&setup.trainer, &CpuBackend, &mut cpu_net, &data, None);
    let gpu_session = Session::new(&setup.trainer, g, &mut gpu_net, &data, None);
    let (mut cpu, mut gpu_session) = match (cpu, gpu_session) {
        (Ok(c), Ok(gs)) => (c, gs),
        (Err(c), Err(gs)) => {
            assert_eq!(c.to_string(), gs.to_string(), "{what}: refused differently");
            return;
        }
        (c, gs) => panic!("{what}: CPU {:?}, GPU {:?}", c.err(), gs.err()),
    };
    for step in 1..=STEPS {
        let start = cpu.model().network().parameters_flat(&CpuBackend).unwrap();
        gpu_session
            .model_mut()
            .network_mut()
            .set_parameters_flat(g, &start)
            .unwrap();
        match (cpu.step(), gpu_session.step()) {
            (Ok(()), Ok(())) => {}
            (Err(c), Err(gs)) => {
                assert_eq!(
                    c.to_string(),
                    gs.to_string(),
                    "{what}: step {step} failed differently"
                );
                return;
            }
            (c, gs) => panic!("{what}: step {step}: CPU {c:?}, GPU {gs:?}"),
        }
        let expected = cpu.model().network().parameters_flat(&CpuBackend).unwrap();
        let actual = gpu_session.model().network().parameters_flat(g).unwrap();
        let cpu_grads = CpuBackend
            .read_arena(cpu.model().network().gradients())
            .unwrap();
        let gpu_grads = g
            .read_arena(gpu_session.model().network().gradients())
            .unwrap();
        // A gradient both backends put at rounding level (the terms of its sum cancel) is
        // rounding on each, which an adaptive optimizer scales up to a step of either sign:
        // its parameter's move is not compared. A gradient one backend loses or makes up is
        // not at rounding level on the other.
        let largest = cpu_grads.iter().fold(0f32, |m, v| m.max(v.abs()));
        let rounding = 1e-5 * largest;
        for (i, ((a, e), s)) in actual.iter().zip(&expected).zip(&start).enumerate() {
            let tol = 2e-3 * (e - s).abs() + 1e-5 * e.abs().max(1.0);
            let (gg, cg) = (gpu_grads[i], cpu_grads[i]);
            if (a - e).abs() > tol && !(gg.abs() <= rounding && cg.abs() <= rounding) {
                panic!(
                    "{what}: step {step}: parameter {i} is {a} on the GPU, {e} on the CPU (from \
                     {s}); its last gradient {gg} on the GPU, {cg} on the CPU (the largest \
                     {largest})"
                );
            }
        }
    }
    drop((cpu, gpu_session));
    // The trained model in evaluation mode (a batch norm's running statistics, no dropout),
    // from the same parameters and buffers: its predictions and its evaluation.
    let trained = cpu_net.parameters_flat(&CpuBackend).unwrap();
    gpu_net.set_parameters_flat(g, &trained).unwrap();
    let expected = cpu_net.predict(&CpuBackend, data.x().view()).unwrap();
    let actual = gpu_net.predict(g, data.x().view()).unwrap();
    let tolerance = common::tolerance(&expected, 1e-4, 1e-5);
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
    let close = (gpu_eval.loss - cpu_eval.loss).abs() <= 1e-4 * cpu_eval.loss.abs() + 1e-6;
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_setups_train_alike_on_both_backends(seed in any::<u64>()) {
        lockstep(seed);
    }
}
