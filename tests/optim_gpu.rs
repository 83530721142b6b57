//! Differential tests: every optimizer and option combination on the GPU against the CPU
//! reference, over awkward arena sizes, many chunks, and an arena larger than lavapipe's
//! 128 MiB storage-binding limit.

mod common;

use common::{gpu, rng};
use rand::RngExt;
use rand::rngs::StdRng;
use steepest::optim::{ArenaGroup, GroupSettings, OneCycle};
use steepest::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Asgd, Clip, CpuOptimizer, Error, GpuBuffer,
    GpuOptimizer, LrSchedule, NAdam, OptimizerConfig, RAdam, RmsProp, Rprop, Sgd,
};

/// Every option combination of every optimizer, at learning rate `lr`.
fn all_configs(lr: f64) -> Vec<OptimizerConfig> {
    let mut configs = Vec::new();
    for wd in [0.0, 0.05] {
        for maximize in [false, true] {
            for (momentum, dampening, nesterov) in [
                (0.0, 0.0, false),
                (0.9, 0.0, false),
                (0.9, 0.2, false),
                (0.9, 0.0, true),
            ] {
                configs.push(
                    Sgd {
                        lr,
                        momentum,
                        dampening,
                        weight_decay: wd,
                        nesterov,
                        maximize,
                    }
                    .into(),
                );
            }
            for momentum in [0.0, 0.8] {
                for centered in [false, true] {
                    configs.push(
                        RmsProp {
                            lr,
                            alpha: 0.95,
                            eps: 1e-8,
                            weight_decay: wd,
                            momentum,
                            centered,
                            maximize,
                        }
                        .into(),
                    );
                }
            }
            for amsgrad in [false, true] {
                configs.push(
                    Adam {
                        lr,
                        betas: (0.9, 0.99),
                        eps: 1e-8,
                        weight_decay: wd,
                        amsgrad,
                        maximize,
                    }
                    .into(),
                );
                configs.push(
                    AdamW {
                        lr,
                        betas: (0.9, 0.99),
                        eps: 1e-8,
                        weight_decay: wd,
                        amsgrad,
                        maximize,
                    }
                    .into(),
                );
            }
            configs.push(
                Adadelta {
                    lr: lr * 10.0,
                    rho: 0.9,
                    eps: 1e-6,
                    weight_decay: wd,
                    maximize,
                }
                .into(),
            );
            configs.push(
                Adamax {
                    lr,
                    betas: (0.9, 0.99),
                    eps: 1e-8,
                    weight_decay: wd,
                    maximize,
                }
                .into(),
            );
            for decoupled_weight_decay in [false, true] {
                configs.push(
                    NAdam {
                        lr,
                        betas: (0.9, 0.99),
                        eps: 1e-8,
                        weight_decay: wd,
                        momentum_decay: 4e-3,
                        decoupled_weight_decay,
                        maximize,
                    }
                    .into(),
                );
                // β2 = 0.9: the first steps unrectified, the rest rectified.
                configs.push(
                    RAdam {
                        lr,
                        betas: (0.9, 0.9),
                        eps: 1e-8,
                        weight_decay: wd,
                        decoupled_weight_decay,
                        maximize,
                    }
                    .into(),
                );
            }
            // t0 = 2: the average copies θ for two updates, then averages.
            configs.push(
                Asgd {
                    lr,
                    lambd: 0.01,
                    alpha: 0.75,
                    t0: 2.0,
                    weight_decay: wd,
                    maximize,
                }
                .into(),
            );
            configs.push(
                Rprop {
                    lr,
                    etas: (0.5, 1.2),
                    step_sizes: (1e-6, 50.0),
                    maximize,
                }
                .into(),
            );
            for (lr_decay, init) in [(0.0, 0.0), (0.01, 0.1)] {
                configs.push(
                    Adagrad {
                        lr,
                        lr_decay,
                        weight_decay: wd,
                        initial_accumulator_value: init,
                        eps: 1e-10,
                        maximize,
                    }
                    .into(),
                );
            }
        }
    }
    configs
}

fn random_vec(rng: &mut StdRng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-scale..=scale)).collect()
}

/// Random gradients in ±3 for `params`, none of whose decayed gradient g ± λ·θ (for any λ in
/// `decays`, either sign: maximizing negates g) lies within 0.01 of zero. Where it nearly
/// cancels, θ's update is all rounding: the GPU may fuse λ·θ + g into one multiply-add where
/// the CPU rounds twice, and with RMSprop's or Adam's ε-sized denominator that half-ulp of
/// λ·θ moved θ 4e-6 in one step on an H200 (g = -5.2e-6 from 0.0778 - 0.05·1.5568): a
/// difference of rounding, not of formula, which no fixed tolerance should have to absorb.
fn random_grads(rng: &mut StdRng, params: &[f32], decays: &[f32]) -> Vec<f32> {
    let mut grads = random_vec(rng, params.len(), 3.0);
    for (g, &theta) in grads.iter_mut().zip(params) {
        // Each nudge moves |g| 0.1 past one decay's 0.02-wide band; a few always suffice.
        for _ in 0..=decays.len() {
            if decays
                .iter()
                .all(|d| (g.abs() - (d * theta).abs()).abs() >= 0.01)
            {
                break;
            }
            *g += 0.1f32.copysign(*g);
        }
    }
    grads
}

/// Elementwise closeness after `steps` updates: each update rounds θ and its state a few times
/// in f32 (and the GPU may fuse multiply-adds the CPU rounds twice), so the bound grows with
/// the step count, relative to the values' size; 1e-6 absolute covers values crossing zero.
fn assert_close_after(what: &str, steps: usize, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let tol = 1e-6 + steps as f32 * 8.0 * f32::EPSILON * c.abs().max(1.0);
        assert!(
            (g - c).abs() <= tol,
            "{what}: element {i}: gpu {g}, cpu {c} (±{tol})"
        );
    }
}

/// Runs `config` on both backends for `steps` updates with the same fresh random gradients,
/// comparing parameters and state after the first and the last.
fn differential(
    config: OptimizerConfig,
    len: usize,
    steps: usize,
    clip: Clip,
    chunk: Option<usize>,
    seed: u64,
) {
    differential_grouped(config, len, steps, clip, chunk, Vec::new(), seed);
}

/// [`differential`] with parameter groups.
fn differential_grouped(
    config: OptimizerConfig,
    len: usize,
    steps: usize,
    clip: Clip,
    chunk: Option<usize>,
    groups: Vec<ArenaGroup>,
    seed: u64,
) {
    let gpu = gpu();
    let ctx = gpu.context();
    let mut r = rng(seed);
    let mut cpu_opt = CpuOptimizer::new(config, len)
        .unwrap()
        .with_clip(clip)
        .unwrap()
        .with_monitoring(true)
        .with_groups(groups.clone())
        .unwrap();
    let mut gpu_opt = GpuOptimizer::new(ctx, config, len)
        .unwrap()
        .with_clip(clip)
        .unwrap()
        .with_monitoring(true);
    if let Some(chunk) = chunk {
        gpu_opt = gpu_opt.with_chunk_len(chunk).unwrap();
        assert!(gpu_opt.chunk_count() > 1, "the chunked run has one chunk");
    }
    let grouped = !groups.is_empty();
    // Every weight decay some element may get: the optimizer's and its groups'.
    let decays: Vec<f32> = std::iter::once(config.weight_decay())
        .chain(groups.iter().flat_map(|g| {
            let own = g.settings.optimizer.map(|o| o.weight_decay());
            g.settings.weight_decay.into_iter().chain(own)
        }))
        .map(|d| d as f32)
        .collect();
    let frozen: Vec<_> = (groups.iter().filter(|g| g.settings.frozen))
        .flat_map(|g| g.ranges.clone())
        .collect();
    gpu_opt = gpu_opt.with_groups(groups).unwrap();
    if grouped && frozen.is_empty() {
        assert!(
            gpu_opt.piece_count() > gpu_opt.chunk_count(),
            "the groups split no chunk"
        );
    }
    let mut cpu_params = random_vec(&mut r, len, 2.0);
    let (start_params, start_state) = (cpu_params.clone(), gpu_opt.state().unwrap());
    let mut gpu_params = GpuBuffer::from_slice(ctx, "params", &cpu_params).unwrap();
    let mut grads_buffer = GpuBuffer::from_slice(ctx, "grads", &vec![0.0f32; len]).unwrap();
    let what = format!("{config:?} len={len} clip={clip:?} chunk={chunk:?} grouped={grouped}");
    for step in 1..=steps {
        let grads = random_grads(&mut r, &cpu_params, &decays);
        grads_buffer.write(ctx, 0, &grads).unwrap();
        cpu_opt.step(&mut cpu_params, &grads).unwrap();
        gpu_opt.step(&mut gpu_params, &grads_buffer).unwrap();
        if step == 1 || step == steps {
            let what = format!("{what} after {step}");
            assert_close_after(&what, step, &gpu_params.read(ctx).unwrap(), &cpu_params);
            let (gpu_state, cpu_state) = (gpu_opt.state().unwrap(), cpu_opt.state());
            assert_eq!(gpu_state.step, cpu_state.step);
            for ((name, g), (_, c)) in gpu_state.buffers.iter().zip(&cpu_state.buffers) {
                assert_close_after(&format!("{what}: {name}"), step, g, c);
            }
            let (gs, cs) = (gpu_opt.stats().unwrap().unwrap(), cpu_opt.stats().unwrap());
            for (name, g, c) in [
                ("grad norm", gs.grad_norm, cs.grad_norm),
                ("param norm", gs.param_norm, cs.param_norm),
                ("update norm", gs.update_norm, cs.update_norm),
            ] {
                assert!(
                    (g - c).abs() <= 1e-4 * c.abs() + 1e-6,
                    "{what}: {name}: gpu {g}, cpu {c}"
                );
            }
            assert_eq!(
                grads_buffer.read(ctx).unwrap(),
                grads,
                "{what}: the gradients were modified"
            );
        }
    }
    // Frozen ranges: parameters and state bit for bit as they started, on the GPU.
    let (params, state) = (gpu_params.read(ctx).unwrap(), gpu_opt.state().unwrap());
    for range in &frozen {
        let what = format!("{what}: frozen range {range:?}");
        assert_eq!(
            params[range.clone()],
            start_params[range.clone()],
            "{what} moved"
        );
        for ((name, now), (_, start)) in state.buffers.iter().zip(&start_state.buffers) {
            assert_eq!(
                now[range.clone()],
                start[range.clone()],
                "{what}: {name} changed"
            );
        }
    }
    // Swapping buffers re-binds correctly.
    let mut other = GpuBuffer::from_slice(ctx, "other params", &cpu_params).unwrap();
    let grads = random_grads(&mut r, &cpu_params, &decays);
    grads_buffer = GpuBuffer::from_slice(ctx, "other grads", &grads).unwrap();
    cpu_opt.step(&mut cpu_params, &grads).unwrap();
    gpu_opt.step(&mut other, &grads_buffer).unwrap();
    assert_close_after(
        &format!("{what} rebound"),
        steps + 1,
        &other.read(ctx).unwrap(),
        &cpu_params,
    );
}

#[test]
fn every_optimizer_matches_the_cpu_over_1_and_50_steps() {
    let mut seed = 0;
    for lr in [1e-3, 0.5] {
        for config in all_configs(lr) {
            for len in [1, 3, 1023, 1025] {
                seed += 1;
                // The long runs on the smallest arenas; one update everywhere else keeps CI quick.
                let steps = if len <= 3 { 50 } else { 1 };
                differential(config, len, steps, Clip::default(), None, seed);
            }
            differential(config, 1025, 50, Clip::default(), None, seed + 1000);
        }
    }
}

#[test]
fn clipping_matches_the_cpu_including_across_chunks() {
    let clips = [
        Clip {
            max_norm: Some(1.0),
            max_value: None,
        },
        Clip {
            max_norm: None,
            max_value: Some(0.5),
        },
        Clip {
            max_norm: Some(5.0),
            max_value: Some(1.0),
        },
        Clip {
            max_norm: Some(1e6),
            max_value: None,
        },
    ];
    for (i, clip) in clips.into_iter().enumerate() {
        for config in [
            Sgd::default().lr(0.1).momentum(0.9).into(),
            Adam::default().lr(0.01).into(),
        ] {
            differential(config, 1025, 5, clip, None, 50 + i as u64);
            // 64-element chunks: 17 chunks, so the norm and the monitoring sums cross chunks.
            differential(config, 1025, 5, clip, Some(64), 60 + i as u64);
        }
    }
}

#[test]
// Groups of one range are meant, not a misspelt `vec![0; n]`.
#[allow(clippy::single_range_in_vec_init)]
fn grouped_updates_match_the_cpu_for_every_optimizer() {
    // Group ranges start and end at the device's offset alignment (as a GPU arena's tensors
    // do) or the arena's end; the chunks, three alignments long, end inside them.
    let ctx = gpu().context();
    let align = (ctx.limits().min_storage_buffer_offset_alignment as usize).max(16) / 4;
    let len = 10 * align + 3;
    let groups = vec![
        ArenaGroup {
            ranges: vec![align..4 * align, 6 * align..7 * align],
            settings: GroupSettings {
                lr_scale: 0.5,
                weight_decay: Some(0.0),
                ..GroupSettings::default()
            },
        },
        ArenaGroup {
            ranges: vec![8 * align..len],
            settings: GroupSettings {
                lr_scale: 2.0,
                weight_decay: Some(0.1),
                ..GroupSettings::default()
            },
        },
    ];
    let clip = Clip {
        max_norm: Some(5.0),
        max_value: None,
    };
    let configs = all_configs(0.01)
        .into_iter()
        .filter(|c| !matches!(c, OptimizerConfig::Rprop(_)));
    let mut own_configs = 0;
    // A third of the configurations, and every one of the newest kind.
    let picked = configs
        .enumerate()
        .filter(|(i, c)| i % 3 == 0 || matches!(c, OptimizerConfig::Asgd(_)));
    for (i, config) in picked {
        let seed = 900 + i as u64;
        differential_grouped(config, len, 3, clip, Some(3 * align), groups.clone(), seed);
        differential_grouped(config, len, 2, Clip::default(), None, groups.clone(), seed);
        // Group 0 with hyperparameters of its own: the first other configuration of the
        // optimizer's kind that keeps its state buffers (momentum, betas, ε, maximize, …).
        let own = all_configs(0.01).into_iter().find(|&other| {
            let settings = GroupSettings {
                optimizer: Some(other),
                ..GroupSettings::default()
            };
            let group = vec![ArenaGroup {
                ranges: vec![0..4],
                settings,
            }];
            other != config
                && CpuOptimizer::new(config, 8)
                    .unwrap()
                    .with_groups(group)
                    .is_ok()
        });
        let mut own_groups = groups.clone();
        own_groups[0].settings.optimizer = own;
        if own.is_some() {
            differential_grouped(config, len, 3, clip, Some(3 * align), own_groups, seed + 50);
            own_configs += 1;
        }
    }
    assert!(
        own_configs >= 10,
        "{own_configs} optimizers had a group of their kind"
    );
    // Groups of many blocks (1024 elements each): 2 100 blocks in group 1, more than the
    // 2048 workgroups of its dispatch, so workgroups take a second block in turn; the rest
    // in blocks of group 0 on both sides of it, one ending with the arena's odd tail. No
    // decay here: among two million elements, a few have a clipped gradient that nearly
    // cancels the decay term, and Adam's first step, g / (|g| + ε), then turns the last
    // bits of the clip scale (which the backends sum in different orders) into visible
    // differences (8e-6 on an H200). The small arena above checks decay with clipping.
    let len = 2100 * 1024 + 2 * 64 * align + 3;
    let big = vec![ArenaGroup {
        ranges: vec![64 * align..64 * align + 2100 * 1024],
        settings: GroupSettings {
            lr_scale: 0.25,
            weight_decay: Some(0.0),
            ..GroupSettings::default()
        },
    }];
    let adam: OptimizerConfig = Adam::default().lr(0.01).into();
    differential_grouped(adam, len, 2, clip, None, big, 950);
}

#[test]
// Groups of one range are meant, not a misspelt `vec![0; n]`.
#[allow(clippy::single_range_in_vec_init)]
fn frozen_groups_match_the_cpu_and_stay_as_they_were() {
    // A frozen group at the arena's start and end (its odd tail included) and in a chunk's
    // middle, beside a group of its own rate: clipping's norm (the gradient's is about 20×
    // max_norm, so every step clips) and the monitoring sums leave the frozen ranges out.
    let ctx = gpu().context();
    let align = (ctx.limits().min_storage_buffer_offset_alignment as usize).max(16) / 4;
    let len = 10 * align + 3;
    let frozen = GroupSettings {
        frozen: true,
        ..GroupSettings::default()
    };
    let groups = vec![
        ArenaGroup {
            ranges: vec![0..align, 4 * align..5 * align, 8 * align..len],
            settings: frozen,
        },
        ArenaGroup {
            ranges: vec![2 * align..4 * align],
            settings: GroupSettings {
                lr_scale: 0.5,
                ..GroupSettings::default()
            },
        },
    ];
    let clip = Clip {
        max_norm: Some(2.0),
        max_value: None,
    };
    let mut rprop_runs = 0;
    // Half the configurations, and every Rprop one.
    let picked = all_configs(0.01)
        .into_iter()
        .enumerate()
        .filter(|(i, c)| i % 2 == 0 || matches!(c, OptimizerConfig::Rprop(_)));
    for (i, config) in picked {
        let seed = 970 + i as u64;
        // Rprop takes frozen groups only.
        let groups = match config {
            OptimizerConfig::Rprop(_) => {
                rprop_runs += 1;
                groups[..1].to_vec()
            }
            _ => groups.clone(),
        };
        differential_grouped(config, len, 3, clip, Some(3 * align), groups.clone(), seed);
        differential_grouped(config, len, 2, Clip::default(), None, groups, seed);
    }
    assert!(rprop_runs > 0, "no Rprop configuration was run");
}

#[test]
fn chunked_updates_match_for_every_optimizer() {
    for (i, config) in all_configs(0.01).into_iter().enumerate().step_by(3) {
        differential(config, 1000, 3, Clip::default(), Some(100), 700 + i as u64);
    }
}

#[test]
fn an_arena_over_the_storage_binding_limit_is_processed_in_chunks() {
    let gpu = gpu();
    let ctx = gpu.context();
    let limit = ctx.limits().max_storage_buffer_binding_size;
    // Five floats more than one binding may hold (on lavapipe: 128 MiB + 20 bytes).
    let len = usize::try_from(limit / 4).unwrap() + 5;
    let config: OptimizerConfig = Adam::default().lr(0.01).amsgrad(true).into();
    let clip = Clip {
        max_norm: Some(100.0),
        max_value: None,
    };
    let mut cpu_opt = CpuOptimizer::new(config, len)
        .unwrap()
        .with_clip(clip)
        .unwrap()
        .with_monitoring(true);
    let mut gpu_opt = GpuOptimizer::new(ctx, config, len)
        .unwrap()
        .with_clip(clip)
        .unwrap()
        .with_monitoring(true);
    assert!(
        gpu_opt.chunk_count() >= 2,
        "{len} parameters fit one binding of {limit} bytes"
    );

    let mut cpu_params: Vec<f32> = (0..len)
        .map(|i| ((i % 1000) as f32 - 500.0) / 250.0)
        .collect();
    let mut gpu_params = GpuBuffer::from_slice(ctx, "big params", &cpu_params).unwrap();
    for step in 0..2 {
        let grads: Vec<f32> = (0..len)
            .map(|i| (((i * 7 + step * 13) % 997) as f32 - 498.0) / 300.0)
            .collect();
        let grads_buffer = GpuBuffer::from_slice(ctx, "big grads", &grads).unwrap();
        cpu_opt.step(&mut cpu_params, &grads).unwrap();
        gpu_opt.step(&mut gpu_params, &grads_buffer).unwrap();
    }
    let actual = gpu_params.read(ctx).unwrap();
    assert_close_after("big arena", 2, &actual, &cpu_params);
    // The elements on each side of the chunk boundary, and the very last one, moved.
    let boundary = len - 5;
    for i in [0, boundary - 1, boundary, len - 1] {
        assert_ne!(
            actual[i],
            ((i % 1000) as f32 - 500.0) / 250.0,
            "element {i} was not updated"
        );
    }
    let (gs, cs) = (gpu_opt.stats().unwrap().unwrap(), cpu_opt.stats().unwrap());
    assert!(
        (gs.grad_norm - cs.grad_norm).abs() <= 1e-4 * cs.grad_norm,
        "{gs:?} vs {cs:?}"
    );
    assert!(
        (gs.update_norm - cs.update_norm).abs() <= 1e-3 * cs.update_norm,
        "{gs:?} vs {cs:?}"
    );
}

#[test]
fn gpu_state_reads_out_restores_and_crosses_backends() {
    let gpu = gpu();
    let ctx = gpu.context();
    let len = 300;
    let config: OptimizerConfig = RmsProp::default().momentum(0.5).centered(true).into();
    let mut r = rng(99);
    let grads: Vec<Vec<f32>> = (0..8).map(|_| random_vec(&mut r, len, 1.0)).collect();
    let start = random_vec(&mut r, len, 1.0);
    let grad_buffers: Vec<GpuBuffer<f32>> = grads
        .iter()
        .map(|g| GpuBuffer::from_slice(ctx, "g", g).unwrap())
        .collect();

    let mut straight = GpuOptimizer::new(ctx, config, len).unwrap();
    let mut straight_params = GpuBuffer::from_slice(ctx, "p", &start).unwrap();
    for g in &grad_buffers {
        straight.step(&mut straight_params, g).unwrap();
    }

    // Four steps on the CPU, state moved to a fresh GPU optimizer, four more on the GPU.
    let mut cpu_opt = CpuOptimizer::new(config, len).unwrap();
    let mut params = start.clone();
    for g in &grads[..4] {
        cpu_opt.step(&mut params, g).unwrap();
    }
    let mut resumed = GpuOptimizer::new(ctx, config, len).unwrap();
    resumed.load_state(&cpu_opt.state()).unwrap();
    assert_eq!(resumed.steps(), 4);
    let mut resumed_params = GpuBuffer::from_slice(ctx, "p", &params).unwrap();
    for g in &grad_buffers[4..] {
        resumed.step(&mut resumed_params, g).unwrap();
    }
    assert_close_after(
        "resumed",
        8,
        &resumed_params.read(ctx).unwrap(),
        &straight_params.read(ctx).unwrap(),
    );

    // A state for another optimizer is refused and changes nothing.
    let before = resumed.state().unwrap();
    let foreign = CpuOptimizer::new(Adam::default(), len).unwrap().state();
    assert!(matches!(
        resumed.load_state(&foreign),
        Err(Error::State { .. })
    ));
    assert_eq!(resumed.state().unwrap(), before);
}

#[test]
fn gpu_steps_reject_bad_buffers_without_touching_anything() {
    let gpu = gpu();
    let ctx = gpu.context();
    let mut opt = GpuOptimizer::new(ctx, Sgd::default().lr(0.1).momentum(0.9), 4).unwrap();
    let mut params = GpuBuffer::from_slice(ctx, "p", &[1.0f32; 4]).unwrap();
    let short = GpuBuffer::from_slice(ctx, "g", &[1.0f32; 3]).unwrap();
    assert!(matches!(
        opt.step(&mut params, &short),
        Err(Error::Length {
            expected: 4,
            actual: 3,
            ..
        })
    ));
    let alias = params.clone();
    assert!(matches!(
        opt.step(&mut params, &alias),
        Err(Error::Shape { .. })
    ));
    assert_eq!(params.read(ctx).unwrap(), vec![1.0; 4]);
    assert_eq!(opt.steps(), 0);
    assert!(matches!(
        GpuOptimizer::new(ctx, Adam::default().eps(-1.0), 4),
        Err(Error::InvalidHyperparameter { .. })
    ));
}

#[test]
fn gpu_schedule_and_worked_example() {
    let gpu = gpu();
    let ctx = gpu.context();
    // f(θ) = θ² from 5 with lr 1.5 diverges: −10, 20, −40.
    let mut opt = GpuOptimizer::new(ctx, Sgd::default().lr(1.5), 1).unwrap();
    let mut theta = GpuBuffer::from_slice(ctx, "θ", &[5.0f32]).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let value = theta.read(ctx).unwrap()[0];
        let grad = GpuBuffer::from_slice(ctx, "∇", &[2.0 * value]).unwrap();
        opt.step(&mut theta, &grad).unwrap();
        seen.push(theta.read(ctx).unwrap()[0]);
    }
    assert_eq!(seen, vec![-10.0, 20.0, -40.0]);

    // A schedule changes the GPU's rate exactly as the CPU's.
    let schedule = LrSchedule::cosine(6, 0.0).with_warmup(2);
    differential_with_schedule(schedule);
    // So do warm restarts, and a one-cycle schedule with its β1.
    differential_with_schedule(LrSchedule::cosine_warm_restarts(2, 2, 0.01));
    differential_with_schedule(LrSchedule::one_cycle(OneCycle::new(10)));
}

fn differential_with_schedule(schedule: LrSchedule) {
    let gpu = gpu();
    let ctx = gpu.context();
    let config = Adam::default().lr(0.1);
    let mut cpu_opt = CpuOptimizer::new(config, 10)
        .unwrap()
        .with_schedule(schedule.clone())
        .unwrap();
    let mut gpu_opt = GpuOptimizer::new(ctx, config, 10)
        .unwrap()
        .with_schedule(schedule)
        .unwrap();
    let mut cpu_params = vec![1.0f32; 10];
    let mut gpu_params = GpuBuffer::from_slice(ctx, "p", &cpu_params).unwrap();
    let grads: Vec<f32> = (0..10).map(|i| i as f32 - 4.5).collect();
    let grads_buffer = GpuBuffer::from_slice(ctx, "g", &grads).unwrap();
    for update in 1..=10 {
        assert_eq!(gpu_opt.lr_at(update), cpu_opt.lr_at(update));
        cpu_opt.step(&mut cpu_params, &grads).unwrap();
        gpu_opt.step(&mut gpu_params, &grads_buffer).unwrap();
    }
    assert_close_after("scheduled", 10, &gpu_params.read(ctx).unwrap(), &cpu_params);
}

/// NAdam keeps a running product of its momentum coefficients beside its buffers (PyTorch's
/// `mu_product`), which a saved state does not hold: a resumed optimizer rebuilds it from the
/// step count and the schedule, and continues bit for bit on the CPU and as closely as ever
/// on the GPU, with a constant β1 and with a one-cycle schedule's.
#[test]
fn nadam_resumes_with_its_momentum_product() {
    let ctx = gpu().context();
    let len = 40;
    let mut r = rng(7);
    let grads: Vec<Vec<f32>> = (0..12).map(|_| random_vec(&mut r, len, 1.0)).collect();
    let start = random_vec(&mut r, len, 1.0);
    for schedule in [
        LrSchedule::constant(),
        LrSchedule::one_cycle(OneCycle::new(12)),
    ] {
        let nadam = || {
            CpuOptimizer::new(NAdam::default().lr(0.01), len)
                .unwrap()
                .with_schedule(schedule.clone())
                .unwrap()
        };
        let mut straight = nadam();
        let mut straight_params = start.clone();
        for g in &grads {
            straight.step(&mut straight_params, g).unwrap();
        }
        let mut first = nadam();
        let mut params = start.clone();
        for g in &grads[..5] {
            first.step(&mut params, g).unwrap();
        }
        let mut resumed = nadam();
        resumed.load_state(&first.state()).unwrap();
        let mut resumed_params = params.clone();
        for g in &grads[5..] {
            resumed.step(&mut resumed_params, g).unwrap();
        }
        assert_eq!(
            resumed_params, straight_params,
            "{schedule:?}: resumed on the CPU"
        );

        let mut on_gpu = GpuOptimizer::new(ctx, NAdam::default().lr(0.01), len)
            .unwrap()
            .with_schedule(schedule.clone())
            .unwrap();
        on_gpu.load_state(&first.state()).unwrap();
        let mut gpu_params = GpuBuffer::from_slice(ctx, "p", &params).unwrap();
        for g in &grads[5..] {
            let g = GpuBuffer::from_slice(ctx, "g", g).unwrap();
            on_gpu.step(&mut gpu_params, &g).unwrap();
        }
        assert_close_after(
            &format!("{schedule:?}: resumed on the GPU"),
            12,
            &gpu_params.read(ctx).unwrap(),
            &straight_params,
        );
    }
}
