//! A device opened with storage bindings of 64 KiB (`GpuOptions::max_storage_binding`), so
//! that small models meet what large ones meet on any device: a parameter arena larger than
//! one binding, bound a window at a time by every op (linear layers, the linear chain,
//! LayerNorm, GELU, dropout, a residual block), summed and updated in pieces; data in shards;
//! views placed far into buffers larger than a binding. Each against the CPU backend.

mod common;

use std::sync::OnceLock;

use common::lockstep::step_both;
use common::{random_matrix, rng};
use ndarray::Array2;
use steepest::backend::cpu;
use steepest::nn::{Dropout, Elementwise, Layer, LayerNorm, Residual, Sequential};
use steepest::{
    Activation, Adam, Backend, CpuBackend, Dataset, GpuBackend, GpuBuffer, GpuContext, GpuMatrix,
    GpuOptions, Init, LineSearch, Linear, Loss, Matmul, Mlp, MlpSpec, Nonlinearity, Session, Sgd,
    Trainer, data,
};

/// The storage bindings this file's device is opened with: 16 Ki f32.
const BINDING: u64 = steepest::backend::gpu::MIN_STORAGE_BINDING;

/// The capped GPU backend shared by this file's tests.
fn small() -> &'static GpuBackend {
    static SMALL: OnceLock<GpuBackend> = OnceLock::new();
    SMALL.get_or_init(|| {
        common::gpu(); // fails with the message that names the fix when there is no adapter
        let options = GpuOptions {
            max_storage_binding: Some(BINDING),
            ..GpuOptions::from_env().unwrap()
        };
        GpuBackend::with_context(GpuContext::with_options(&options).unwrap())
    })
}

/// Four wide layers (each weight 8 100 values, under half a binding) and twenty narrow ones
/// (the linear chain's kind): both models' arenas are larger than one binding.
fn specs() -> [MlpSpec; 2] {
    let wide = MlpSpec::stack(&[2, 90, 90, 90, 90, 3], Activation::Relu);
    let mut narrow = MlpSpec::new(2);
    for _ in 0..20 {
        narrow = narrow.layer(32, Activation::Tanh);
    }
    [wide, narrow.layer(3, Activation::Identity)]
}

fn blobs() -> Dataset {
    data::blobs(200, &[[1.0, 1.0], [-1.0, 0.5], [0.0, -1.0]], 0.6, 3).unwrap()
}

#[test]
fn the_device_has_the_bindings_it_was_asked_for() {
    let g = small();
    assert_eq!(
        g.context().limits().max_storage_buffer_binding_size,
        BINDING
    );
    assert_eq!(g.max_matrix_elements() as u64, BINDING / 4);
    let wrong = GpuOptions {
        max_storage_binding: Some(BINDING - 1),
        ..GpuOptions::from_env().unwrap()
    };
    let err = GpuContext::with_options(&wrong).unwrap_err();
    assert!(err.to_string().contains("max_storage_binding"), "{err}");
}

/// Steps both backends from the same parameters each step, as `tests/train.rs` does: every op
/// of the step (the products, the fused bias gradients, the chain, the update in pieces) reads
/// and writes its tensors through windows of the arena.
#[test]
fn models_over_one_binding_step_like_the_cpu() {
    let g = small();
    let data = blobs();
    let trainer = Trainer::new(
        Sgd::default().lr(0.05).momentum(0.9),
        Loss::SoftmaxCrossEntropy,
    )
    .batch_size(32)
    .monitor(true)
    .seed(7)
    // Steps of two batches (their gradients summed over the arena's windows) and a moving
    // average of the parameters (updated a window at a time).
    .accumulate_grad_batches(2)
    .ema(0.5);
    for spec in specs() {
        let mut cpu_model = Mlp::new(&CpuBackend, &spec, Init::XavierUniform, 5).unwrap();
        let mut gpu_model = Mlp::new(g, &spec, Init::XavierUniform, 5).unwrap();
        let bytes = 4 * gpu_model.parameter_count() as u64;
        assert!(
            bytes > BINDING,
            "{bytes} bytes of parameters fit one binding"
        );
        let mut cpu = Session::new(&trainer, &CpuBackend, &mut cpu_model, &data, None).unwrap();
        let mut gpu = Session::new(&trainer, g, &mut gpu_model, &data, None).unwrap();
        for step in 1..=4 {
            let what = format!("{}: step {step}", cpu.model().architecture());
            step_both(&mut cpu, (g, &mut gpu), &what);
        }
        let (c_avg, g_avg) = (
            cpu.averaged_parameters().unwrap().unwrap(),
            gpu.averaged_parameters().unwrap().unwrap(),
        );
        for (i, (c, gv)) in c_avg.iter().zip(&g_avg).enumerate() {
            assert!(
                (c - gv).abs() <= 1e-4 * c.abs().max(1.0),
                "averaged parameter {i}: CPU {c}, GPU {gv}"
            );
        }
        // The epoch's end reads the monitoring sums (the update in pieces).
        let (c, gr) = (cpu.run_epoch().unwrap(), gpu.run_epoch().unwrap());
        let (c_norm, g_norm) = (c.grad_norm.unwrap(), gr.grad_norm.unwrap());
        assert!(
            (c_norm - g_norm).abs() <= 1e-3 * c_norm,
            "{c_norm} {g_norm}"
        );
        drop((cpu, gpu));
        let x = random_matrix(&mut rng(3), 50, 2, 1.0);
        let (p_cpu, p_gpu) = (
            cpu_model.predict(&CpuBackend, x.view()).unwrap(),
            gpu_model.predict(g, x.view()).unwrap(),
        );
        let gap = (&p_cpu - &p_gpu).iter().fold(0f32, |m, d| m.max(d.abs()));
        let scale = p_cpu.iter().fold(1f32, |m, v| m.max(v.abs()));
        assert!(
            gap <= 1e-3 * scale,
            "predictions differ by {gap}: GPU {p_gpu}, CPU {p_cpu}"
        );
    }
}

/// A dataset over one binding (4 000 × 64 values; a binding holds 256 of its rows) is kept
/// in shards: its steps match the CPU's in lockstep, whichever shards a batch's rows are in,
/// and so does the validation pass over all of it.
#[test]
fn a_dataset_over_one_binding_trains_in_shards() {
    let g = small();
    let features = 64;
    let rows = 4000;
    assert!(rows * features > g.max_matrix_elements());
    let hash = |i: usize, j: usize| (i as u64 * 2_654_435_761 + j as u64 * 40_503) % 65_521;
    let x = Array2::from_shape_fn((rows, features), |(i, j)| {
        hash(i, j) as f32 / 65_521.0 - 0.5
    });
    let labels: Vec<usize> = (0..rows)
        .map(|i| (hash(i, features) % 2) as usize)
        .collect();
    let data = Dataset::classification(x, &labels, 2).unwrap();
    let spec = MlpSpec::new(features)
        .layer(16, Activation::Relu)
        .layer(2, Activation::Identity);
    let trainer = Trainer::new(
        Sgd::default().lr(0.05).momentum(0.9),
        Loss::SoftmaxCrossEntropy,
    )
    .batch_size(128)
    .seed(3);
    let mut cpu_model = Mlp::new(&CpuBackend, &spec, Init::HeUniform, 5).unwrap();
    let mut gpu_model = Mlp::new(g, &spec, Init::HeUniform, 5).unwrap();
    let mut cpu = Session::new(&trainer, &CpuBackend, &mut cpu_model, &data, Some(&data)).unwrap();
    let mut gpu = Session::new(&trainer, g, &mut gpu_model, &data, Some(&data)).unwrap();
    for step in 1..=4 {
        step_both(&mut cpu, (g, &mut gpu), &format!("step {step}"));
    }
    let (cpu_epoch, gpu_epoch) = (cpu.run_epoch().unwrap(), gpu.run_epoch().unwrap());
    let (Some(cpu_val), Some(gpu_val)) = (cpu_epoch.val_loss, gpu_epoch.val_loss) else {
        panic!("no validation loss: {cpu_epoch:?} {gpu_epoch:?}");
    };
    assert!(
        (cpu_val - gpu_val).abs() <= 1e-3 * cpu_val.abs(),
        "validation loss {gpu_val} on the GPU, {cpu_val} on the CPU"
    );
    drop((cpu, gpu));
    // Evaluated with a full-batch trainer: 4 000 rows do not fit one binding, nor do 1 024;
    // the chunks halve until they do.
    let full = trainer.clone().full_batch();
    let on_cpu = full.evaluate(&CpuBackend, &cpu_model, &data).unwrap();
    let on_gpu = full.evaluate(g, &gpu_model, &data).unwrap();
    assert!(
        (on_cpu.loss - on_gpu.loss).abs() <= 1e-3 * on_cpu.loss.abs(),
        "evaluated {on_gpu:?} on the GPU, {on_cpu:?} on the CPU"
    );
    assert_eq!(on_gpu.samples, rows);
}

/// A residual block with LayerNorm, GELU and dropout, and a LayerNorm after it: their
/// kernels read γ and β, and write their gradients, through windows of arenas over one
/// binding (the CPU draws the same dropout masks).
#[test]
fn layers_beyond_linear_over_one_binding_step_like_the_cpu() {
    let g = small();
    let width = 90;
    fn net<B: Backend>(backend: &B, width: usize) -> Sequential<B> {
        let block: Vec<Box<dyn Layer<B>>> = vec![
            Box::new(LayerNorm::new(width)),
            Box::new(Linear::new(width, width)),
            Box::new(Elementwise::new(width, Nonlinearity::Gelu)),
            Box::new(Dropout::new(width, 0.2, 3)),
            Box::new(Linear::new(width, width)),
        ];
        let layers: Vec<Box<dyn Layer<B>>> = vec![
            Box::new(Linear::new(2, width)),
            Box::new(Residual::new(block).unwrap()),
            Box::new(LayerNorm::new(width)),
            Box::new(Linear::new(width, 3)),
        ];
        Sequential::new(backend, layers, Init::default(), 5).unwrap()
    }
    let (mut cpu_model, mut gpu_model) = (net(&CpuBackend, width), net(g, width));
    assert!(4 * gpu_model.parameter_count() as u64 > BINDING);
    let data = blobs();
    let trainer = Trainer::new(Adam::default().lr(0.01), Loss::SoftmaxCrossEntropy)
        .batch_size(32)
        .seed(4);
    let mut cpu = Session::new(&trainer, &CpuBackend, &mut cpu_model, &data, None).unwrap();
    let mut gpu = Session::new(&trainer, g, &mut gpu_model, &data, None).unwrap();
    for step in 1..=4 {
        step_both(&mut cpu, (g, &mut gpu), &format!("residual step {step}"));
    }
}

/// Steady epochs on data in shards and an arena in windows create nothing: each shard's and
/// each window's bind group is built once, in the warm-up.
#[test]
fn steady_epochs_over_shards_and_windows_create_nothing() {
    common::gpu();
    // A device of its own: the counters see this test's work alone.
    let options = GpuOptions {
        max_storage_binding: Some(BINDING),
        ..GpuOptions::from_env().unwrap()
    };
    let g = &GpuBackend::with_context(GpuContext::with_options(&options).unwrap());
    let ctx = g.context();
    let x = random_matrix(&mut rng(11), 4000, 64, 1.0);
    let labels: Vec<usize> = (0..4000).map(|i| i % 3).collect();
    let data = Dataset::classification(x, &labels, 3).unwrap();
    let spec = MlpSpec::stack(&[64, 90, 90, 90, 3], Activation::Relu);
    let mut model = Mlp::new(g, &spec, Init::HeUniform, 3).unwrap();
    assert!(4 * model.parameter_count() as u64 > BINDING);
    let trainer = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy).batch_size(128);
    let mut session = Session::new(&trainer, g, &mut model, &data, Some(&data)).unwrap();
    for _ in 0..2 {
        session.run_epoch().unwrap();
    }
    let (before, sites) = (ctx.counters(), ctx.site_count());
    for _ in 0..3 {
        session.run_epoch().unwrap();
    }
    let after = ctx.counters();
    assert_eq!(
        common::created(before, after),
        (0, 0, 0),
        "steady epochs created GPU objects: {before:?} → {after:?}"
    );
    assert_eq!(ctx.site_count(), sites);
    assert_eq!(after.waits - before.waits, 3, "one wait an epoch");
}

/// The line search's sums of squares and steps over the whole arena run a binding at a time.
#[test]
fn a_line_search_over_one_binding_descends_like_the_cpu() {
    let g = small();
    // Full batches of 150 rows: 150 × 90 activations fit one binding.
    let data = data::blobs(150, &[[1.0, 1.0], [-1.0, 0.5], [0.0, -1.0]], 0.6, 3).unwrap();
    let [wide, _] = specs();
    let search = LineSearch {
        iterations: 3,
        ..Default::default()
    };
    let mut cpu_model = Mlp::new(&CpuBackend, &wide, Init::XavierUniform, 2).unwrap();
    let mut gpu_model = Mlp::new(g, &wide, Init::XavierUniform, 2).unwrap();
    let c = search
        .run(
            &CpuBackend,
            &mut cpu_model,
            &data,
            Loss::SoftmaxCrossEntropy,
        )
        .unwrap();
    let gr = search
        .run(g, &mut gpu_model, &data, Loss::SoftmaxCrossEntropy)
        .unwrap();
    assert_eq!(c.epochs.len(), gr.epochs.len());
    for (c, gr) in c.epochs.iter().zip(&gr.epochs) {
        let (cn, gn) = (c.grad_norm.unwrap(), gr.grad_norm.unwrap());
        assert!(
            (c.loss - gr.loss).abs() <= 1e-4 * c.loss.abs().max(1.0),
            "{c:?} {gr:?}"
        );
        assert!((cn - gn).abs() <= 1e-3 * cn, "{c:?} {gr:?}");
        assert_eq!(c.lr, gr.lr, "the accepted step differs: {c:?} {gr:?}");
    }
}

/// Views of one buffer three bindings long: the product reads its operands, bias and writes
/// its output each in a window of its own (one of them across a grid line), the weight
/// gradient and its bias gradient share one, and nothing outside the outputs changes.
#[test]
fn kernels_reach_views_anywhere_in_a_buffer_over_one_binding() {
    let g = small();
    let window = (BINDING / 4) as usize;
    let len = 3 * window;
    let values: Vec<f32> = (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let buffer = GpuBuffer::from_slice(g.context(), "three bindings", &values).unwrap();
    let view = |offset: usize, rows: usize, cols: usize| {
        GpuMatrix::view(buffer.clone(), offset, rows, cols).unwrap()
    };
    let host = |m: &GpuMatrix| g.download(m).unwrap();
    // x (48×40) in the first window, W (30×40) across the line at 1½ windows, b near the end.
    let x = view(100, 48, 40);
    let w = view(window + window / 2 - 600, 30, 40);
    let b = view(len - 64, 1, 30);
    let mut out = g.zeros(48, 30).unwrap();
    let spec = Matmul::nt().activation(Activation::Tanh);
    g.matmul_into(spec, &x, &w, Some(&b), &mut out).unwrap();
    let mut expected = Array2::zeros((48, 30));
    cpu::matmul(
        spec,
        host(&x).view(),
        host(&w).view(),
        Some(host(&b).view()),
        &mut expected,
    )
    .unwrap();
    let gap = (&host(&out) - &expected)
        .iter()
        .fold(0f32, |m, d| m.max(d.abs()));
    assert!(gap <= 1e-5, "the product is {gap} off");

    // Gradients written into the far windows of a buffer of canaries.
    let canary = 7.25f32;
    let grads = GpuBuffer::from_slice(g.context(), "gradients", &vec![canary; len]).unwrap();
    let (wg_at, bg_at) = (2 * window + 128, 2 * window + 128 + 30 * 40 + 64);
    let mut weight_grad = GpuMatrix::view(grads.clone(), wg_at, 30, 40).unwrap();
    let mut bias_grad = GpuMatrix::view(grads.clone(), bg_at, 1, 30).unwrap();
    let delta = view(window - 700, 48, 30);
    g.linear_grads_into(&delta, &x, &mut weight_grad, &mut bias_grad)
        .unwrap();
    let (d, xs) = (host(&delta), host(&x));
    let mut expected_w = Array2::zeros((30, 40));
    cpu::matmul(Matmul::tn(), d.view(), xs.view(), None, &mut expected_w).unwrap();
    let mut expected_b = Array2::zeros((1, 30));
    cpu::column_sum(d.view(), &mut expected_b).unwrap();
    let gap = (&host(&weight_grad) - &expected_w)
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    assert!(gap <= 1e-4, "the weight gradient is {gap} off");
    let gap = (&host(&bias_grad) - &expected_b)
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    assert!(gap <= 1e-4, "the bias gradient is {gap} off");
    let all = grads.read(g.context()).unwrap();
    for (i, v) in all.iter().enumerate() {
        let inside = (wg_at..wg_at + 1200).contains(&i) || (bg_at..bg_at + 30).contains(&i);
        assert!(
            inside || *v == canary,
            "element {i} of the gradients' buffer became {v}"
        );
    }
    // A view no binding can hold is refused, naming the limit.
    let too_long = view(10, 1, window + 10);
    let mut sums = g.zeros(1, window + 10).unwrap();
    let err = g.matmul_into(Matmul::nn(), &view(0, 1, 1), &too_long, None, &mut sums);
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("max_storage_buffer_binding_size"),
        "a view longer than a binding was bound"
    );
}

/// The arena reductions (Σ x·y, Σ |x|, max |x|, Σ x²) and `scale` over an arena of three
/// bindings' worth of tensors, piece by piece, against the CPU: the sums within rounding, the
/// maximum and the scaled values exactly.
#[test]
fn arena_reductions_over_several_bindings_match_the_cpu() {
    let g = small();
    // 10 000 + 8 100 + 17 + 21 000 values: pieces of at most 16 Ki.
    let shapes = [(100, 100), (90, 90), (1, 17), (210, 100)];
    let len: usize = shapes.iter().map(|(r, c)| r * c).sum();
    let mut r = rng(17);
    let x = random_matrix(&mut r, 1, len, 2.0)
        .into_raw_vec_and_offset()
        .0;
    let y = random_matrix(&mut r, 1, len, 2.0)
        .into_raw_vec_and_offset()
        .0;
    let (mut cx, mut cy) = (
        CpuBackend.arena("x", &shapes).unwrap(),
        CpuBackend.arena("y", &shapes).unwrap(),
    );
    CpuBackend.write_arena(&mut cx, &x).unwrap();
    CpuBackend.write_arena(&mut cy, &y).unwrap();
    let (mut gx, mut gy) = (
        g.arena("x", &shapes).unwrap(),
        g.arena("y", &shapes).unwrap(),
    );
    g.write_arena(&mut gx, &x).unwrap();
    g.write_arena(&mut gy, &y).unwrap();
    assert!(
        len as u64 > 2 * BINDING / 4,
        "the arena spans three bindings"
    );
    let mut ct = Array2::zeros((1, 4));
    let mut gt = g.zeros(1, 4).unwrap();
    CpuBackend.dot_into(&cx, &cy, &mut ct, 0).unwrap();
    CpuBackend.sum_abs_into(&cx, &mut ct, 1).unwrap();
    CpuBackend.max_abs_into(&cx, &mut ct, 2).unwrap();
    CpuBackend.sum_squares_into(&cx, &mut ct, 3).unwrap();
    g.dot_into(&gx, &gy, &mut gt, 0).unwrap();
    g.sum_abs_into(&gx, &mut gt, 1).unwrap();
    g.max_abs_into(&gx, &mut gt, 2).unwrap();
    g.sum_squares_into(&gx, &mut gt, 3).unwrap();
    let got = g.download(&gt).unwrap();
    let abs_dot: f32 = x.iter().zip(&y).map(|(a, b)| (a * b).abs()).sum();
    let scales = [abs_dot, ct[[0, 1]], 0.0, ct[[0, 3]]];
    for (i, name) in ["dot", "sum |x|", "max |x|", "sum x²"]
        .into_iter()
        .enumerate()
    {
        let (a, e) = (got[[0, i]], ct[[0, i]]);
        assert!((a - e).abs() <= 1e-6 * scales[i], "{name}: {a} vs {e}");
    }
    CpuBackend.scale_arena(-0.75, &cx, &mut cy).unwrap();
    g.scale_arena(-0.75, &gx, &mut gy).unwrap();
    assert_eq!(
        g.read_arena(&gy).unwrap(),
        CpuBackend.read_arena(&cy).unwrap()
    );
    // A copy a window at a time reaches every element of every piece, and the source keeps
    // its values.
    let mut gz = g.arena("z", &shapes).unwrap();
    g.write_arena(&mut gz, &vec![f32::NAN; len]).unwrap();
    g.copy_arena(&gy, &mut gz).unwrap();
    let expected = CpuBackend.read_arena(&cy).unwrap();
    assert_eq!(g.read_arena(&gz).unwrap(), expected);
    assert_eq!(g.read_arena(&gy).unwrap(), expected);
}
