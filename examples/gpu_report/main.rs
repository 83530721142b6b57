//! The GPU report: how fast this adapter runs what training needs, one line per figure
//! (`key value unit (detail)`), so it pairs line by line with `benches/pytorch/gpu_report.py`
//! run on the same card.
//!
//! ```sh
//! cargo run --release --example gpu_report                  # everything, full sizes
//! cargo run --release --example gpu_report -- --quick       # small sizes (lavapipe, CI)
//! cargo run --release --example gpu_report -- --sections matmul,train --tilings
//! ```
//!
//! With `WGPU_BACKEND=noop WGPU_NOOP_BACKEND=1` (wgpu's noop backend, enabled for the
//! examples) nothing runs, and the `host` lines and the training rows' host µs measure
//! steepest's and wgpu-core's own share of a step, without a driver: the part of the host
//! time this crate controls, the same on any machine with this CPU.
//!
//! Sections: `matmul` (NN/NT/TN squares 1024–8192 and a fused linear layer), `shapes` (the
//! bench MLPs' own forward and backward products), `waves` (the large tile's rate over the
//! number of tiles and over K, in long runs), `copy` (buffer-to-buffer bandwidth, and the
//! transposes a pretransposed product runs first), `optim` (Adam, SGD with momentum, NAdam,
//! RAdam, Adamax and Adadelta over 1e8 parameters), `train` (one training step of each bench
//! MLP, and of the 4096 model with its step summed over four batches: samples/s, and the
//! host's time to record and submit a step), `host` (that host time taken apart: recording
//! one small op, and one submit; a small model's prediction with and without a kept
//! `Predictor`; and the GPU's time per dependent dispatch of small kernels), `kernels`
//! (what the driver compiled each pipeline of the other sections into: registers, spills,
//! instructions, where a Vulkan driver reports them; see `kernels.rs`). `--tilings`
//! also times every matmul tiling at each shape, to see what the shape-aware choice picked.
//! With `STEEPEST_PROFILE=1` (`GpuOptions::profile`), each product and training row also
//! prints its GPU time op by op (`profile_*` lines; every submit then waits for the GPU).

#[path = "../common/mod.rs"]
mod common;
mod kernels;

use std::time::Instant;

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use steepest::backend::gpu::{
    Tile, Tiling, linear_backward, linear_chain, matmul_tiled, transpose,
};
use steepest::optim::{ArenaGroup, GroupSettings};
use steepest::{
    Activation, Adadelta, Adam, AdamW, Adamax, Backend, Dataset, GpuBackend, GpuBuffer, GpuContext,
    GpuMatrix, GpuOptimizer, Init, LinearLink, Loss, Matmul, Mlp, MlpSpec, NAdam, OptimizerConfig,
    ParamGroup, RAdam, Session, Sgd, Trainer,
};

const SECTIONS: [&str; 8] = [
    "matmul", "shapes", "waves", "copy", "optim", "train", "host", "kernels",
];

struct Report {
    gpu: GpuBackend,
    quick: bool,
    tilings: bool,
    rng: StdRng,
}

/// Median seconds per call of `f`, over `reps` timed runs of `iters` calls each after one
/// warm-up call; the clock stops only after the GPU has finished.
fn time(
    gpu: &GpuBackend,
    iters: u32,
    mut f: impl FnMut() -> steepest::Result<()>,
) -> steepest::Result<f64> {
    let ctx = gpu.context();
    f()?;
    ctx.wait()?;
    let mut runs = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..iters {
            f()?;
        }
        ctx.wait()?;
        runs.push(start.elapsed().as_secs_f64() / f64::from(iters));
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[1])
}

/// Floating-point operations in one timed run of products: about 30 ms at the large tile's
/// 45 TFLOP/s on an H200, so a run's fixed costs (the submit, the GPU starting from idle, the
/// wait) weigh about 1%. In the 4096 model's training step (tenth session, H200) its five
/// large products took at most 757 µs each on average, where runs of three products a submit
/// timed them at 825: the step keeps the GPU busy, and long runs time what it sees.
const RUN_FLOPS: f64 = 1.35e12;

/// How many products of `flops` each make one timed run: about [`RUN_FLOPS`]' worth, at
/// least 3 and at most `most`.
fn products_per_run(flops: f64, most: u32) -> u32 {
    (RUN_FLOPS / flops).clamp(3.0, f64::from(most)) as u32
}

/// One product the report times: its key, form, and operands' stored shapes.
struct Product {
    key: String,
    spec: Matmul,
    a: (usize, usize),
    b: (usize, usize),
}

impl Product {
    /// (M, N, K) of `op(a)·op(b)`.
    fn mnk(&self) -> (usize, usize, usize) {
        let (m, k) = if self.spec.trans_a {
            (self.a.1, self.a.0)
        } else {
            self.a
        };
        let n = if self.spec.trans_b {
            self.b.0
        } else {
            self.b.1
        };
        (m, n, k)
    }
}

/// The tiling the library chooses for an `m × n` product over `k` on `ctx`'s adapter.
fn chosen_tiling(ctx: &GpuContext, (m, n, k): (usize, usize, usize)) -> Tiling {
    let limit = (ctx.limits().max_storage_buffer_binding_size / 4) as usize;
    Tiling::choose(m, n, k, limit)
}

/// How a product of form `spec` runs with `tiling`: "Large ×1 K slices, pretransposed".
fn tiling_label(spec: Matmul, tiling: Tiling) -> String {
    let transposes = tiling.pretranspose && (!spec.trans_a || spec.trans_b);
    format!(
        "{:?} ×{} K slices{}",
        tiling.tile,
        tiling.splits,
        if transposes { ", pretransposed" } else { "" }
    )
}

impl Report {
    fn random(&mut self, rows: usize, cols: usize) -> steepest::Result<GpuMatrix> {
        let host = Array2::from_shape_fn((rows, cols), |_| self.rng.random_range(-1.0f32..1.0));
        self.gpu.upload(host.view())
    }

    /// Times `out ← op(a)·op(b)` in long runs (and in runs of three, as reports before the
    /// twelfth session did) and prints one line (and one per tiling with `--tilings`).
    fn product(&mut self, product: &Product) -> steepest::Result<()> {
        let Product { key, spec, a, b } = product;
        let (spec, (m, n, k)) = (*spec, product.mnk());
        let (ga, gb) = (self.random(a.0, a.1)?, self.random(b.0, b.1)?);
        let out = self.gpu.zeros(m, n)?;
        let flops = 2.0 * (m * n * k) as f64;
        let iters = products_per_run(flops, 400);
        let iters = if self.quick { iters.min(5) } else { iters };
        let ctx = self.gpu.context().clone();
        let limit = (ctx.limits().max_storage_buffer_binding_size / 4) as usize;
        let chosen = chosen_tiling(&ctx, (m, n, k));
        let run = |tiling: Option<Tiling>, iters: u32| {
            time(&self.gpu, iters, || {
                matmul_tiled(&ctx, spec, tiling, &ga, &gb, None, &out)
            })
        };
        restart_kernel_times(&ctx)?;
        let dt = run(None, iters)?;
        // The warm-up call and three timed runs of `iters`.
        kernel_times(&ctx, key, 3 * u64::from(iters) + 1)?;
        let dt_of_three = if iters == 3 { dt } else { run(None, 3)? };
        println!(
            "{key} {:.1} GFLOP/s ({:.1} us, {}; {:.1} us in runs of 3)",
            flops / dt / 1e9,
            dt * 1e6,
            tiling_label(spec, chosen),
            dt_of_three * 1e6,
        );
        // Every tiling of a large product would take long at the slow ones: past 2048³ only
        // the large tiles, whole.
        if self.tilings {
            let small = flops <= 2.0 * 2048f64.powi(3);
            for tile in Tile::ALL.into_iter().filter(|t| small || t.rows() >= 128) {
                for splits in [1, 2, 4, 8].into_iter().filter(|&s| small || s == 1) {
                    let tiling = Tiling::split(tile, k, splits);
                    if splits > 1 && (tiling.splits == 1 || tiling.splits * m * n > limit) {
                        continue;
                    }
                    let dt = run(Some(tiling), iters)?;
                    println!(
                        "  {key}_{tile:?}_x{} {:.1} GFLOP/s ({:.1} us)",
                        tiling.splits,
                        flops / dt / 1e9,
                        dt * 1e6
                    );
                    // Whole, also with the K-contiguous operands transposed first.
                    if splits == 1 && (!spec.trans_a || spec.trans_b) {
                        let tiling = Tiling {
                            pretranspose: true,
                            ..tiling
                        };
                        let dt = run(Some(tiling), iters)?;
                        println!(
                            "  {key}_{tile:?}_x1_pretransposed {:.1} GFLOP/s ({:.1} us)",
                            flops / dt / 1e9,
                            dt * 1e6
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The square products' sizes (`matmul`).
    fn squares(&self) -> &'static [usize] {
        if self.quick {
            &[128, 256]
        } else {
            &[1024, 2048, 4096, 8192]
        }
    }

    /// (M, K, N) of the fused linear layer relu(x·wᵀ + b) (`matmul`).
    fn linear_layer(&self) -> (usize, usize, usize) {
        if self.quick {
            (64, 128, 128)
        } else {
            (512, 1024, 1024)
        }
    }

    /// (model, batch, fan-in, fan-out) of the layers whose products dominate each bench MLP
    /// (`shapes`).
    fn layers(&self) -> &'static [(&'static str, usize, usize, usize)] {
        if self.quick {
            &[("784", 128, 784, 256)]
        } else {
            &[
                ("784", 128, 784, 256),
                ("1024", 512, 1024, 1024),
                ("4096", 1024, 4096, 4096),
            ]
        }
    }

    /// The training rows (`train`): the small model also with four steps to a submit
    /// (`Trainer::steps_per_submit`), where the submit's fixed cost is most of a step's host
    /// time, the 784 model also with AdamW and its decay off for the biases (a parameter
    /// group: two update dispatches instead of one), and the 4096 model also with its steps
    /// of 1 024 samples summed over four batches of 256 (`Trainer::accumulate_grad_batches`).
    fn models(&self) -> &'static [TrainRow] {
        const fn row(widths: &'static [usize], batch: usize, steps: u32) -> TrainRow {
            TrainRow {
                widths,
                batch,
                steps,
                per_submit: 1,
                grouped: false,
                accumulate: 1,
            }
        }
        const QUICK: &[TrainRow] = &[
            row(&[784, 256, 10], 128, 5),
            row(&[784, 256, 10], 128, 5).grouped(),
            row(&[2, 64, 64, 2], 64, 48),
            row(&[2, 64, 64, 2], 64, 48).per_submit(4),
            row(&[2, 64, 64, 2], 16, 12).accumulate(4),
        ];
        const FULL: &[TrainRow] = &[
            row(&[784, 256, 10], 128, 300),
            row(&[784, 256, 10], 128, 300).grouped(),
            row(&[1024, 1024, 1024, 10], 512, 100),
            row(&[4096, 4096, 4096, 10], 1024, 20),
            row(&[4096, 4096, 4096, 10], 256, 20).accumulate(4),
            row(&[2, 64, 64, 2], 64, 500),
            row(&[2, 64, 64, 2], 64, 500).per_submit(4),
        ];
        if self.quick { QUICK } else { FULL }
    }

    /// The square products NN, NT and TN at each of [`Report::squares`] (`matmul`).
    fn square_products(&self) -> Vec<Product> {
        let mut products = Vec::new();
        for &size in self.squares() {
            for (name, spec) in [
                ("nn", Matmul::nn()),
                ("nt", Matmul::nt()),
                ("tn", Matmul::tn()),
            ] {
                products.push(Product {
                    key: format!("matmul_{name}_{size}"),
                    spec,
                    a: (size, size),
                    b: (size, size),
                });
            }
        }
        products
    }

    /// Each of [`Report::layers`]' forward y = x·wᵀ, weight gradient dW = δᵀ·x and input
    /// gradient dX = δ·W (`shapes`).
    fn layer_products(&self) -> Vec<Product> {
        let mut products = Vec::new();
        for &(model, batch, fan_in, fan_out) in self.layers() {
            products.extend([
                Product {
                    key: format!("shape_{model}_fwd_nt_{batch}x{fan_out}x{fan_in}"),
                    spec: Matmul::nt(),
                    a: (batch, fan_in),
                    b: (fan_out, fan_in),
                },
                Product {
                    key: format!("shape_{model}_dw_tn_{fan_out}x{fan_in}x{batch}"),
                    spec: Matmul::tn(),
                    a: (batch, fan_out),
                    b: (batch, fan_in),
                },
                Product {
                    key: format!("shape_{model}_dx_nn_{batch}x{fan_in}x{fan_out}"),
                    spec: Matmul::nn(),
                    a: (batch, fan_out),
                    b: (fan_out, fan_in),
                },
            ]);
        }
        products
    }

    fn matmul(&mut self) -> steepest::Result<()> {
        for product in self.square_products() {
            self.product(&product)?;
        }
        // A fused linear layer as the training step runs it: relu(x·wᵀ + b).
        let (m, k, n) = self.linear_layer();
        let (x, w, bias) = (self.random(m, k)?, self.random(n, k)?, self.random(1, n)?);
        let out = self.gpu.zeros(m, n)?;
        let spec = Matmul::nt().activation(Activation::Relu);
        let dt = time(&self.gpu, if self.quick { 5 } else { 200 }, || {
            self.gpu
                .matmul_into(spec, &x, &w, Some(&bias), &mut out.clone())
        })?;
        println!(
            "linear_relu_{m}x{k}x{n} {:.1} GFLOP/s ({:.1} us)",
            2.0 * (m * n * k) as f64 / dt / 1e9,
            dt * 1e6
        );
        Ok(())
    }

    fn shapes(&mut self) -> steepest::Result<()> {
        for product in self.layer_products() {
            self.product(&product)?;
        }
        Ok(())
    }

    /// (M, N, K) of the `waves` products: the 4096 model's forward and input-gradient shape
    /// (256 large tiles: two per unit on 124 of an H200's 132 units, one on the other 8), one
    /// full round (264 tiles), then 2, 4 and 8 times its tiles at the same K; that shape and
    /// the 4096³ one over K (the weight gradient's 4096×4096×1024 among them).
    fn wave_shapes(&self) -> Vec<(usize, usize, usize)> {
        let full = [
            (1024, 4096, 4096),
            (1024, 4224, 4096),
            (2048, 4096, 4096),
            (4096, 4096, 4096),
            (8192, 4096, 4096),
            (1024, 4096, 1024),
            (1024, 4096, 16384),
            (4096, 4096, 1024),
            (4096, 4096, 2048),
            (4096, 4096, 8192),
        ];
        let scale = if self.quick { 16 } else { 1 };
        full.iter()
            .map(|&(m, n, k)| (m / scale, n / scale, k / scale))
            .collect()
    }

    /// Where the large tile's rate changes with the shape (`waves`): TN products (both
    /// operands K-major, so nothing is transposed first), the large tile over all of K, in
    /// runs of about [`RUN_FLOPS`]; the first shape also with three products a run, as
    /// reports before the twelfth session timed `shapes`.
    /// On an H200 the 4096 model's products ran ~10% slower per tile and K step than 4096³
    /// did (tenth session); these rows tell whether the number of tiles, K or the length of
    /// a run explains it.
    fn waves(&mut self) -> steepest::Result<()> {
        let ctx = self.gpu.context().clone();
        for (i, (m, n, k)) in self.wave_shapes().into_iter().enumerate() {
            let (a, b) = (self.random(k, m)?, self.random(k, n)?);
            let out = self.gpu.zeros(m, n)?;
            let tiling = Tiling::whole(Tile::Large, k);
            let flops = 2.0 * (m * n * k) as f64;
            let long = products_per_run(flops, 200);
            let runs: &[u32] = match (self.quick, i) {
                (true, _) => &[2],
                (false, 0) => &[long, 3],
                (false, _) => &[long],
            };
            for &iters in runs {
                let dt = time(&self.gpu, iters, || {
                    matmul_tiled(&ctx, Matmul::tn(), Some(tiling), &a, &b, None, &out)
                })?;
                println!(
                    "waves_tn_{m}x{n}x{k}_x{iters} {:.1} GFLOP/s ({:.1} us, {} tiles, {iters} \
                     products a run)",
                    flops / dt / 1e9,
                    dt * 1e6,
                    Tile::Large.count(m, n),
                );
            }
        }
        Ok(())
    }

    fn parameters(&self) -> usize {
        if self.quick { 1_000_000 } else { 100_000_000 }
    }

    fn copy(&mut self) -> steepest::Result<()> {
        let ctx = self.gpu.context().clone();
        let len = self.parameters();
        let src = GpuBuffer::<f32>::zeros(&ctx, "copy source", len)?;
        let dst = GpuBuffer::<f32>::zeros(&ctx, "copy destination", len)?;
        src.fill(&ctx, 1.0)?;
        let bytes = src.size_bytes();
        let dt = time(&self.gpu, 20, || {
            let mut encoder =
                ctx.device()
                    .create_command_encoder(&steepest::wgpu::CommandEncoderDescriptor {
                        label: Some("copy"),
                    });
            encoder.copy_buffer_to_buffer(src.raw(), 0, dst.raw(), 0, bytes);
            ctx.queue().submit([encoder.finish()]);
            Ok(())
        })?;
        println!(
            "copy_{} {:.1} GB/s read+write ({:.3} ms)",
            label(len),
            2.0 * bytes as f64 / dt / 1e9,
            dt * 1e3
        );
        // The same bytes through the crate's arena copy (`copy.wgsl`, a binding's worth at a
        // time where one binding holds less): on an H200 the copy command above ran at a
        // fifth of PyTorch's copy, which is why arenas are copied by a kernel.
        let x = self.gpu.arena("copy arena source", &[(1, len)])?;
        let mut y = self.gpu.arena("copy arena destination", &[(1, len)])?;
        let dt = time(&self.gpu, 20, || self.gpu.copy_arena(&x, &mut y))?;
        println!(
            "copy_arena_{} {:.1} GB/s read+write ({:.3} ms, `copy_arena`: a kernel)",
            label(len),
            2.0 * bytes as f64 / dt / 1e9,
            dt * 1e3
        );
        // The transposes a pretransposed product runs first (the 4096 model's weight and
        // batch), against the copy above: what they cost is what that product pays; and the
        // element-wise kernel on the same shapes, against the whole-vec4 one they run.
        let shapes: &[(usize, usize)] = if self.quick {
            &[(256, 256)]
        } else {
            &[(4096, 4096), (1024, 4096)]
        };
        for &(rows, cols) in shapes {
            let src = self.random(rows, cols)?;
            let out = self.gpu.zeros(cols, rows)?;
            // The same source one element into its buffer: no row starts on 16 bytes, so the
            // element-wise kernel runs, the one these shapes used before `transpose_vec4`.
            let shifted = GpuBuffer::<f32>::zeros(&ctx, "shifted source", rows * cols + 1)?;
            let shifted = GpuMatrix::view(shifted, 1, rows, cols)?;
            for (suffix, src) in [("", &src), ("_elementwise", &shifted)] {
                let dt = time(&self.gpu, 20, || transpose(&ctx, src, &out))?;
                println!(
                    "transpose_{rows}x{cols}{suffix} {:.1} GB/s read+write ({:.1} us)",
                    8.0 * (rows * cols) as f64 / dt / 1e9,
                    dt * 1e6
                );
            }
        }
        Ok(())
    }

    fn optim(&mut self) -> steepest::Result<()> {
        let ctx = self.gpu.context().clone();
        let len = self.parameters();
        let grads: Vec<f32> = (0..len).map(|i| ((i % 101) as f32 - 50.0) * 1e-3).collect();
        let grads = GpuBuffer::from_slice(&ctx, "gradients", &grads)?;
        let mut params = GpuBuffer::from_slice(&ctx, "parameters", &vec![0.5f32; len])?;
        // Bytes each element moves: Adam reads θ, g, m, v and writes θ, m, v (and so do the
        // others with two state buffers); SGD with momentum reads θ, g, b and writes θ, b.
        let configs: [(&str, OptimizerConfig, f64); 6] = [
            ("adam", Adam::default().into(), 28.0),
            (
                "sgd_momentum",
                Sgd::default().lr(0.01).momentum(0.9).into(),
                20.0,
            ),
            ("nadam", NAdam::default().into(), 28.0),
            ("radam", RAdam::default().into(), 28.0),
            ("adamax", Adamax::default().into(), 28.0),
            ("adadelta", Adadelta::default().into(), 28.0),
        ];
        for (name, config, bytes) in configs {
            let mut optimizer = GpuOptimizer::new(&ctx, config, len)?;
            let dt = time(&self.gpu, 20, || optimizer.step(&mut params, &grads))?;
            println!(
                "optim_{name}_{} {:.1} GB/s ({:.3} ms/step, {} chunks)",
                label(len),
                bytes * len as f64 / dt / 1e9,
                dt * 1e3,
                optimizer.chunk_count()
            );
        }
        // Adam over the same arena laid out as a model of 100 tensors, every other one in a
        // parameter group at half the rate: the grouped kernel walks each group's 50 runs of
        // the arena (one dispatch per group and chunk), against the plain line above.
        let tensors = 100;
        let per = len / tensors / 64 * 64; // tensors start 256 bytes apart, as in an arena
        let end = |i: usize| if i + 1 == tensors { len } else { (i + 1) * per }; // the last: the rest
        let ranges = (1..tensors).step_by(2).map(|i| i * per..end(i)).collect();
        let group = ArenaGroup {
            ranges,
            settings: GroupSettings {
                lr_scale: 0.5,
                ..GroupSettings::default()
            },
        };
        let mut optimizer =
            GpuOptimizer::new(&ctx, Adam::default(), len)?.with_groups(vec![group])?;
        let dt = time(&self.gpu, 20, || optimizer.step(&mut params, &grads))?;
        println!(
            "optim_adam_groups_{} {:.1} GB/s ({:.3} ms/step, {} chunks, {} dispatches: two \
             groups of 50 tensors)",
            label(len),
            28.0 * len as f64 / dt / 1e9,
            dt * 1e3,
            optimizer.chunk_count(),
            optimizer.piece_count()
        );
        Ok(())
    }

    fn train(&mut self) -> steepest::Result<()> {
        let ctx = self.gpu.context().clone();
        for &row in self.models() {
            let TrainRow {
                widths,
                batch,
                steps: iters,
                per_submit: every,
                grouped,
                accumulate,
            } = row;
            let label = row.label();
            // Samples a step (over `accumulate` batches).
            let samples = batch * accumulate;
            // Enough samples that the timed steps never reach an epoch end (a readback).
            let n = (iters as usize * 3 + 8) * samples;
            let classes = widths[widths.len() - 1];
            let x = Array2::from_shape_fn((n, widths[0]), |_| self.rng.random_range(-1.0f32..1.0));
            let labels: Vec<usize> = (0..n).map(|_| self.rng.random_range(0..classes)).collect();
            let data = Dataset::classification(x, &labels, classes)?;
            let spec = MlpSpec::stack(widths, Activation::Relu);
            let trainer = row_trainer(grouped)
                .batch_size(batch)
                .accumulate_grad_batches(accumulate)
                .steps_per_submit(every);
            let mut model = Mlp::new(&self.gpu, &spec, Init::HeUniform, 1)?;
            let mut session = warmed_up(&self.gpu, &trainer, &mut model, &data, every)?;
            let mut total = Vec::new();
            // The time to record and submit the steps in a row, before their wait, as the
            // reference probe times it: where the GPU is the slower side, the in-flight bound
            // makes this the GPU's step time.
            let mut in_a_row = Vec::new();
            restart_kernel_times(&ctx)?;
            let before = ctx.counters();
            for _ in 0..3 {
                let start = Instant::now();
                for _ in 0..iters {
                    session.step()?;
                }
                in_a_row.push(start.elapsed().as_secs_f64() / f64::from(iters));
                ctx.wait()?;
                total.push(start.elapsed().as_secs_f64() / f64::from(iters));
            }
            in_a_row.sort_by(f64::total_cmp);
            let after = ctx.counters();
            let steps = 3 * u64::from(iters);
            kernel_times(&ctx, &format!("train_{label}"), steps)?;
            let per_step = (after.dispatches - before.dispatches) / steps;
            // The host's own time, in a fresh session (so its timed steps do not reach the
            // epoch end either), in bursts of whole groups of `every` steps, each ending with
            // its submit.
            drop(session);
            let mut session = warmed_up(&self.gpu, &trainer, &mut model, &data, every)?;
            let burst = (ctx.options().max_dispatches_in_flight / 2 / per_step.max(1)).max(every)
                / every
                * every;
            let host = host_in_bursts(&ctx, &mut session, iters, burst)?;
            let runs = total
                .iter()
                .map(|t| format!("{:.3}", t * 1e3))
                .collect::<Vec<_>>()
                .join(", ");
            total.sort_by(f64::total_cmp);
            println!(
                "train_{label}_host {:.1} us/step recorded+submitted (bursts of at most {burst} \
                 steps, the GPU caught up before each; {:.1} us/step for {iters} steps in a row)",
                host * 1e6,
                in_a_row[1] * 1e6
            );
            println!(
                "train_{label} {:.0} samples/s ({:.3} ms/step, median of {runs}; {:.2} \
                 submits/step, {per_step} dispatches/step, {} throttles, {} buffers and {} bind \
                 groups created in {steps} steps)",
                samples as f64 / total[1],
                total[1] * 1e3,
                (after.submits - before.submits) as f64 / steps as f64,
                after.throttles - before.throttles,
                after.buffers_created - before.buffers_created,
                after.bind_groups_created - before.bind_groups_created,
            );
        }
        Ok(())
    }
}

/// One training row of the report (`train`), an MLP of ReLU layers trained on random
/// classes; PyTorch's twin (`benches/pytorch/gpu_report.py`) trains the same.
#[derive(Clone, Copy)]
struct TrainRow {
    /// The layer widths, inputs first.
    widths: &'static [usize],
    /// Rows a batch.
    batch: usize,
    /// Steps timed a run.
    steps: u32,
    /// Steps a submit (`Trainer::steps_per_submit`).
    per_submit: u64,
    /// AdamW with its decay off for the 1-D parameters (a parameter group), else Adam.
    grouped: bool,
    /// Batches a step sums (`Trainer::accumulate_grad_batches`).
    accumulate: usize,
}

impl TrainRow {
    const fn per_submit(self, per_submit: u64) -> Self {
        Self { per_submit, ..self }
    }

    const fn grouped(self) -> Self {
        Self {
            grouped: true,
            ..self
        }
    }

    const fn accumulate(self, accumulate: usize) -> Self {
        Self { accumulate, ..self }
    }

    /// The name in the report's lines: widths, batch, then `_x{n}` for n steps a submit,
    /// `_acc{k}` for k batches a step, `_groups` with the parameter group.
    fn label(&self) -> String {
        let widths: Vec<String> = self.widths.iter().map(usize::to_string).collect();
        let mut label = format!("{}_b{}", widths.join("-"), self.batch);
        if self.per_submit > 1 {
            label += &format!("_x{}", self.per_submit);
        }
        if self.accumulate > 1 {
            label += &format!("_acc{}", self.accumulate);
        }
        if self.grouped {
            label += "_groups";
        }
        label
    }
}

/// The optimizer and loss of a training row: Adam, or with `grouped` AdamW with its decay
/// off for the 1-D parameters (PyTorch's twin builds the same groups).
fn row_trainer(grouped: bool) -> Trainer {
    match grouped {
        false => Trainer::new(Adam::default().lr(1e-3), Loss::SoftmaxCrossEntropy),
        true => Trainer::new(AdamW::default().lr(1e-3), Loss::SoftmaxCrossEntropy)
            .param_group(ParamGroup::one_dimensional().weight_decay(0.0)),
    }
}

impl Report {
    /// What a step's host time is made of, on ops too small for the GPU to matter: the time to
    /// record one op (many recorded, then one submit, the submit not counted) and the time of
    /// one submit of one op.
    fn host(&mut self) -> steepest::Result<()> {
        let ctx = self.gpu.context().clone();
        let (x, y) = (self.random(64, 64)?, self.random(64, 64)?);
        let mut out = self.gpu.zeros(64, 64)?;
        let ops = if self.quick { 200 } else { 2000 };
        type Op<'a> = Box<dyn FnMut(&mut GpuMatrix) -> steepest::Result<()> + 'a>;
        let gpu = &self.gpu;
        let kinds: [(&str, Op<'_>); 2] = [
            ("add", Box::new(|out| gpu.add_into(&x, &y, out))),
            (
                "matmul",
                Box::new(|out| gpu.matmul_into(Matmul::nt(), &x, &y, None, out)),
            ),
        ];
        for (name, mut op) in kinds {
            op(&mut out)?;
            ctx.wait()?;
            let mut record = Vec::new();
            let mut submit = [Vec::new(), Vec::new()];
            for _ in 0..3 {
                let start = Instant::now();
                for _ in 0..ops {
                    op(&mut out)?;
                }
                record.push(start.elapsed().as_secs_f64() / f64::from(ops));
                ctx.wait()?;
                // Submits of 1 and of 16 recorded ops, the GPU idle before each.
                for (times, per_submit) in submit.iter_mut().zip([1, 16]) {
                    let mut spent = 0.0;
                    for _ in 0..ops / 20 {
                        for _ in 0..per_submit {
                            op(&mut out)?;
                        }
                        let start = Instant::now();
                        ctx.flush()?;
                        spent += start.elapsed().as_secs_f64();
                        ctx.wait()?;
                    }
                    times.push(spent / f64::from(ops / 20));
                }
            }
            record.sort_by(f64::total_cmp);
            println!(
                "host_record_{name} {:.2} us/op recorded, not submitted",
                record[1] * 1e6
            );
            // A step's pattern: 15 ops and a submit, over and over, the GPU never waited for.
            let mut steady = Vec::new();
            for _ in 0..3 {
                let start = Instant::now();
                for _ in 0..ops / 15 {
                    for _ in 0..15 {
                        op(&mut out)?;
                    }
                    ctx.flush()?;
                }
                steady.push(start.elapsed().as_secs_f64() / f64::from(ops / 15));
                ctx.wait()?;
            }
            steady.sort_by(f64::total_cmp);
            println!(
                "host_steady_{name}_x15 {:.2} us per 15 ops and a submit, never waited for",
                steady[1] * 1e6
            );
            for (mut times, per_submit) in submit.into_iter().zip([1, 16]) {
                times.sort_by(f64::total_cmp);
                println!(
                    "host_submit_{name}_x{per_submit} {:.2} us/submit of {per_submit} recorded ops",
                    times[1] * 1e6
                );
            }
        }
        // One small op recorded, submitted and waited for, host to host: the submit, the
        // GPU's start and end, and the host seeing the end (woken by the driver, or polling
        // with `STEEPEST_SPIN_WAIT=1`).
        let mut trips = Vec::new();
        for _ in 0..ops / 10 {
            let start = Instant::now();
            self.gpu.add_into(&x, &y, &mut out)?;
            ctx.wait()?;
            trips.push(start.elapsed().as_secs_f64());
        }
        trips.sort_by(f64::total_cmp);
        println!(
            "host_roundtrip_add {:.1} us per op submitted and waited for, host to host \
             (median of {}; spin_wait={})",
            trips[trips.len() / 2] * 1e6,
            trips.len(),
            ctx.options().spin_wait
        );
        self.predictions()?;
        self.chains(ops)
    }

    /// One 64-row prediction of the small model, from host inputs to host outputs (a wait
    /// each): through `Sequential::predict`, which allocates its device memory on every call,
    /// and through a kept `Predictor`, which allocates nothing once warm.
    fn predictions(&mut self) -> steepest::Result<()> {
        let spec = MlpSpec::stack(&[2, 64, 64, 2], Activation::Relu);
        let model = Mlp::new(&self.gpu, &spec, Init::HeUniform, 1)?;
        let x = Array2::from_shape_fn((64, 2), |_| self.rng.random_range(-1.0f32..1.0));
        let calls = if self.quick { 20 } else { 500 };
        let mut predictor = model.predictor(64)?;
        let gpu = &self.gpu;
        print_calls(gpu, "predict", calls, || {
            model.predict(gpu, x.view()).map(drop)
        })?;
        print_calls(gpu, "predictor", calls, || {
            predictor.predict(gpu, &model, x.view()).map(drop)
        })?;
        Ok(())
    }

    /// The GPU's side of a small step: `ops` dispatches of one kernel, each writing the output
    /// the one before wrote (so each waits for it, as a step's kernels do), timed from the
    /// first recording to the GPU's end. A 64×64 product over K = 64 and over
    /// K = 512 (the small tile, whole: 8 and 64 K slices) tells a slice's latency apart from
    /// a dispatch's; a small layer's one-kernel backward is the other half of a small step,
    /// and three such layers' forward pass in one kernel (`linear_chain`) stands for three of
    /// the 64 × 64 × 64 products.
    fn chains(&mut self, ops: u32) -> steepest::Result<()> {
        let ctx = self.gpu.context().clone();
        let (x, y) = (self.random(64, 64)?, self.random(64, 64)?);
        let (wide, tall) = (self.random(64, 512)?, self.random(512, 64)?);
        let out = self.gpu.zeros(64, 64)?;
        // A 64-wide layer's backward at batch 64, its gradients in one buffer as in a model.
        let (below, grad_below) = (self.random(64, 64)?, self.gpu.zeros(64, 64)?);
        let grads = GpuBuffer::<f32>::zeros(&ctx, "gradients", 64 * 64 + 64)?;
        let weight_grad = GpuMatrix::view(grads.clone(), 0, 64, 64)?;
        let bias_grad = GpuMatrix::view(grads, 64 * 64, 1, 64)?;
        // Three 64-wide layers' forward pass at batch 64, their parameters in one buffer.
        let params = GpuBuffer::<f32>::zeros(&ctx, "parameters", 3 * (64 * 64 + 64))?;
        let views = (0..3)
            .map(|l| {
                let at = l * (64 * 64 + 64);
                let weight = GpuMatrix::view(params.clone(), at, 64, 64)?;
                Ok((
                    weight,
                    GpuMatrix::view(params.clone(), at + 64 * 64, 1, 64)?,
                ))
            })
            .collect::<steepest::Result<Vec<_>>>()?;
        let links: Vec<LinearLink<'_, GpuMatrix>> = views
            .iter()
            .map(|(weight, bias)| LinearLink {
                weight,
                bias,
                activation: Activation::Relu,
            })
            .collect();
        let chain_outputs = (0..3)
            .map(|_| self.gpu.zeros(64, 64))
            .collect::<steepest::Result<Vec<_>>>()?;
        let small = |k| Some(Tiling::whole(Tile::Small, k));
        type Op<'a> = Box<dyn FnMut() -> steepest::Result<()> + 'a>;
        let gpu = &self.gpu;
        let kinds: [(&str, Op<'_>); 5] = [
            (
                "add_64x64",
                Box::new(|| gpu.add_into(&x, &y, &mut out.clone())),
            ),
            (
                "matmul_64x64x64_small",
                Box::new(|| matmul_tiled(&ctx, Matmul::nn(), small(64), &x, &y, None, &out)),
            ),
            (
                "matmul_64x64x512_small",
                Box::new(|| matmul_tiled(&ctx, Matmul::nn(), small(512), &wide, &tall, None, &out)),
            ),
            (
                "linear_backward_64x64_b64",
                Box::new(|| {
                    linear_backward(
                        &ctx,
                        &x,
                        &y,
                        &y,
                        (&weight_grad, &bias_grad),
                        Some((Activation::Relu, &below, &grad_below)),
                    )
                }),
            ),
            (
                "linear_chain_3x64_b64",
                Box::new(|| linear_chain(&ctx, &x, &links, &chain_outputs)),
            ),
        ];
        // wgpu encodes a submit's commands when it is submitted, on the host: submitted in
        // chunks, the GPU runs one while the host records and encodes the next, so the time
        // per dispatch is the GPU's wherever the GPU is the slower side (compare the
        // `host_steady` lines: the host's own time per op).
        const CHUNK: u32 = 100;
        for (name, mut op) in kinds {
            op()?;
            ctx.wait()?;
            let mut runs = Vec::new();
            for _ in 0..3 {
                let start = Instant::now();
                for i in 1..=ops {
                    op()?;
                    if i % CHUNK == 0 {
                        ctx.flush()?;
                    }
                }
                ctx.wait()?;
                runs.push(start.elapsed().as_secs_f64() / f64::from(ops));
            }
            runs.sort_by(f64::total_cmp);
            println!(
                "gpu_chain_{name} {:.2} us per dependent dispatch ({ops} in submits of {CHUNK})",
                runs[1] * 1e6
            );
        }
        Ok(())
    }
}

/// A training session on `data`, past its first steps (whole groups of `every`, so each timed
/// group ends with its own submit), the GPU caught up.
/// Times `calls` calls of `call` (a 64-row prediction of the small model, named `name`) with
/// [`time`], after a warm-up call of its own, and counts what the timed calls created.
fn print_calls(
    gpu: &GpuBackend,
    name: &str,
    calls: u32,
    mut call: impl FnMut() -> steepest::Result<()>,
) -> steepest::Result<()> {
    call()?;
    let ctx = gpu.context();
    let before = ctx.counters();
    let dt = time(gpu, calls, &mut call)?;
    let after = ctx.counters();
    // `time` makes one call before its three timed runs.
    let per_call = |n: u64| n as f64 / f64::from(3 * calls + 1);
    println!(
        "host_{name}_2-64-64-2_b64 {:.1} us per 64-row prediction, host to host ({:.1} buffers \
         and {:.1} bind groups created per call)",
        dt * 1e6,
        per_call(after.buffers_created - before.buffers_created),
        per_call(after.bind_groups_created - before.bind_groups_created),
    );
    Ok(())
}

fn warmed_up<'a>(
    gpu: &'a GpuBackend,
    trainer: &'a Trainer,
    model: &'a mut Mlp<GpuBackend>,
    data: &'a Dataset,
    every: u64,
) -> steepest::Result<Session<'a, GpuBackend>> {
    let mut session = Session::new(trainer, gpu, model, data, None)?;
    for _ in 0..3u64.div_ceil(every) * every {
        session.step()?;
    }
    gpu.context().wait()?;
    Ok(session)
}

/// The host's own seconds per step: the median of three runs of `iters` steps, each timed in
/// bursts of at most `burst` steps with the GPU caught up before each. Bursts the in-flight
/// bound never reaches: where the GPU is slower than the host, timing the steps in a row would
/// time the GPU.
fn host_in_bursts(
    ctx: &GpuContext,
    session: &mut Session<'_, GpuBackend>,
    iters: u32,
    burst: u64,
) -> steepest::Result<f64> {
    let mut runs = Vec::new();
    for _ in 0..3 {
        let mut spent = 0.0;
        let mut done = 0;
        while done < iters {
            let start = Instant::now();
            for _ in 0..burst.min(u64::from(iters - done)) {
                session.step()?;
                done += 1;
            }
            spent += start.elapsed().as_secs_f64();
            ctx.wait()?;
        }
        runs.push(spent / f64::from(iters));
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[1])
}

/// With profiling on (`STEEPEST_PROFILE=1`), one line of the GPU time per `runs` of what was
/// timed since the last call, op by op; without, nothing.
fn kernel_times(ctx: &GpuContext, key: &str, runs: u64) -> steepest::Result<()> {
    if !ctx.options().profile {
        return Ok(());
    }
    let times = ctx.take_kernel_times()?;
    let runs = runs.max(1) as f64;
    let total: f64 = times.iter().map(|t| t.gpu_us).sum::<f64>() / runs;
    let ops: Vec<String> = times
        .iter()
        .map(|t| {
            format!(
                "{} {:.1} ({:.3}×)",
                t.op,
                t.gpu_us / runs,
                t.runs as f64 / runs
            )
        })
        .collect();
    println!(
        "profile_{key} {total:.1} us of GPU time: {}",
        ops.join(", ")
    );
    Ok(())
}

/// With profiling on, forgets the GPU times so far (what [`kernel_times`] prints next starts
/// here).
fn restart_kernel_times(ctx: &GpuContext) -> steepest::Result<()> {
    if ctx.options().profile {
        ctx.take_kernel_times()?;
    }
    Ok(())
}

/// `1e8` for 100 000 000, `1e6` for 1 000 000.
fn label(len: usize) -> String {
    format!("1e{}_f32", (len as f64).log10().round())
}

/// Time what training needs on this adapter, one `key value unit` line per figure.
#[derive(clap::Parser)]
struct Args {
    /// Comma-separated sections to run: matmul, shapes, waves, copy, optim, train, host,
    /// kernels [default: all].
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(SECTIONS))]
    sections: Vec<String>,
    /// Small sizes (lavapipe, CI).
    #[arg(long)]
    quick: bool,
    /// Also time every matmul tiling at each shape.
    #[arg(long)]
    tilings: bool,
    /// With the `kernels` section: write the driver's internal representations of each
    /// pipeline (where it gives any: assembly, intermediate code) into this folder.
    #[arg(long, value_name = "DIR")]
    ir_dir: Option<std::path::PathBuf>,
}

fn main() -> std::process::ExitCode {
    common::finish(run(<Args as clap::Parser>::parse()))
}

fn run(args: Args) -> Result<(), String> {
    let wanted: Vec<String> = if args.sections.is_empty() {
        SECTIONS.iter().map(|s| s.to_string()).collect()
    } else {
        args.sections
    };
    let gpu = GpuBackend::new().map_err(|e| e.to_string())?;
    let ctx = gpu.context();
    println!("adapter {}", steepest::Backend::describe(&gpu));
    println!(
        "options shader_checks={} spin_wait={} max_storage_binding={} \
         max_workgroups_per_dimension={}",
        ctx.options().shader_checks,
        ctx.options().spin_wait,
        ctx.limits().max_storage_buffer_binding_size,
        ctx.limits().max_compute_workgroups_per_dimension
    );
    if ctx.adapter_info().backend == steepest::wgpu::Backend::Noop {
        println!(
            "note wgpu's noop backend runs nothing: only the host lines (steepest's and \
             wgpu-core's own time, no driver) mean anything"
        );
    }
    if ctx.options().profile {
        println!(
            "note profiling (STEEPEST_PROFILE): every submit waits for the GPU, so throughput \
             and host lines are not the unprofiled ones; profile_* lines give GPU µs per call \
             or step, op by op (runs per call or step in brackets)"
        );
    }
    let mut report = Report {
        gpu,
        quick: args.quick,
        tilings: args.tilings,
        rng: StdRng::seed_from_u64(7),
    };
    for section in SECTIONS.iter().filter(|s| wanted.iter().any(|w| w == *s)) {
        let result = match *section {
            "matmul" => report.matmul(),
            "shapes" => report.shapes(),
            "waves" => report.waves(),
            "copy" => report.copy(),
            "optim" => report.optim(),
            "host" => report.host(),
            "train" => report.train(),
            _ => {
                kernels::kernels(&mut report, args.ir_dir.as_deref())?;
                continue;
            }
        };
        result.map_err(|e| format!("{section}: {e}"))?;
    }
    Ok(())
}
