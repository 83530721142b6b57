//! Differential tests of the training kernels (gathers, transpose, activation backward, axpy,
//! lerp, column sum, sum of squares, the fused losses) against their CPU twins, over random and awkward shapes,
//! with fresh data per case, NaN-poisoned outputs and views that start inside their buffers.

mod common;

use common::{assert_close, gpu, placed, random_matrix, rng, tolerance};
use ndarray::Array2;
use proptest::prelude::*;
use rand::RngExt;
use steepest::backend::cpu;
use steepest::{Activation, Arena, Backend, CpuBackend, GpuMatrix, Loss, LossShare};

/// Rows and columns the named cases cover: 1, tile edges and their neighbours, and sizes
/// that are multiples of nothing.
const AWKWARD: [usize; 7] = [1, 3, 7, 63, 65, 257, 300];

/// A `rows × cols` GPU matrix at element `offset` of a buffer, NaN inside the view and
/// canaries around it (`offset` in front, a deep band behind), so a test can check nothing
/// outside the view was written.
fn poisoned(rows: usize, cols: usize, offset: usize) -> (GpuMatrix, common::Guarded) {
    let guarded = common::guarded(rows, cols, offset);
    (guarded.matrix.clone(), guarded)
}

/// Asserts the canaries around a poisoned view survived.
fn assert_untouched(what: &str, guard: &common::Guarded, _offset: usize, _len: usize) {
    guard.assert_untouched(what);
}

fn check_gather(src_rows: usize, cols: usize, out_rows: usize, seed: u64) {
    let mut r = rng(seed);
    let src = random_matrix(&mut r, src_rows, cols, 5.0);
    let start = r.random_range(0..4usize);
    let indices: Vec<u32> = (0..start + out_rows)
        .map(|_| r.random_range(0..src_rows as u32))
        .collect();
    let mut expected = Array2::zeros((out_rows, cols));
    cpu::gather_rows(src.view(), &indices, start, &mut expected).unwrap();

    let g = gpu();
    let offset = (seed % 5) as usize;
    let (mut out, buffer) = poisoned(out_rows, cols, offset);
    let indices = g.upload_indices(&indices).unwrap();
    g.gather_rows_into(&placed(&src, offset), &indices, start, &mut out)
        .unwrap();
    // A gather copies: the result is exact.
    assert_eq!(g.download(&out).unwrap(), expected, "gather seed={seed}");
    assert_untouched("gather", &buffer, offset, out_rows * cols);
}

/// A batch's inputs and targets gathered in one kernel per shard: the data split into 1 to 4
/// shards of consecutive rows (each pair placed inside its own buffers), against the CPU's
/// gather from the data whole and from the same shards; both outputs poisoned and guarded.
fn check_gather_batch(src_rows: usize, cols: usize, y_cols: usize, out_rows: usize, seed: u64) {
    let mut r = rng(seed);
    let x = random_matrix(&mut r, src_rows, cols, 5.0);
    let y = random_matrix(&mut r, src_rows, y_cols, 2.0);
    let start = r.random_range(0..4usize);
    let indices: Vec<u32> = (0..start + out_rows)
        .map(|_| r.random_range(0..src_rows as u32))
        .collect();
    let mut expected_x = Array2::zeros((out_rows, cols));
    let mut expected_y = Array2::zeros((out_rows, y_cols));
    cpu::gather_batch(
        &[(x.view(), y.view())],
        &indices,
        start,
        (&mut expected_x, &mut expected_y),
    )
    .unwrap();
    // Where the shards begin: row 0, then up to three distinct cuts inside the data.
    let mut cuts: Vec<usize> = (0..seed % 4)
        .filter(|_| src_rows > 1)
        .map(|_| r.random_range(1..src_rows))
        .collect();
    cuts.push(0);
    cuts.sort_unstable();
    cuts.dedup();
    let ends: Vec<usize> = cuts.iter().skip(1).copied().chain([src_rows]).collect();
    let ranges: Vec<_> = cuts.iter().zip(&ends).map(|(&a, &b)| a..b).collect();
    let host_shards: Vec<_> = ranges
        .iter()
        .map(|rows| {
            (
                x.slice(ndarray::s![rows.clone(), ..]),
                y.slice(ndarray::s![rows.clone(), ..]),
            )
        })
        .collect();
    let (mut cpu_x, mut cpu_y) = (
        Array2::zeros((out_rows, cols)),
        Array2::zeros((out_rows, y_cols)),
    );
    cpu::gather_batch(&host_shards, &indices, start, (&mut cpu_x, &mut cpu_y)).unwrap();
    let what =
        format!("gather_batch {src_rows}×({cols}, {y_cols}) in shards {ranges:?} seed={seed}");
    assert_eq!(
        (&cpu_x, &cpu_y),
        (&expected_x, &expected_y),
        "{what}: CPU shards"
    );

    let g = gpu();
    let offset = (seed % 5) as usize;
    let (mut x_out, x_guard) = poisoned(out_rows, cols, offset);
    let (mut y_out, y_guard) = poisoned(out_rows, y_cols, offset + 2);
    let indices = g.upload_indices(&indices).unwrap();
    let shards: Vec<_> = host_shards
        .iter()
        .enumerate()
        .map(|(i, (x, y))| {
            (
                placed(&x.to_owned(), offset + i),
                placed(&y.to_owned(), offset + i + 1),
            )
        })
        .collect();
    let shard_refs: Vec<_> = shards.iter().map(|(x, y)| (x, y)).collect();
    g.gather_batch_into(&shard_refs, &indices, start, (&mut x_out, &mut y_out))
        .unwrap();
    assert_eq!(g.download(&x_out).unwrap(), expected_x, "{what}: inputs");
    assert_eq!(g.download(&y_out).unwrap(), expected_y, "{what}: targets");
    assert_untouched(&what, &x_guard, offset, out_rows * cols);
    assert_untouched(&what, &y_guard, offset + 2, out_rows * y_cols);
}

fn check_transpose(rows: usize, cols: usize, seed: u64) {
    // The source one element after the output's offset: never both on 16-byte boundaries, so
    // the element-wise kernel runs.
    let offset = (seed % 5) as usize;
    check_transpose_at(rows, cols, (offset + 1, offset), seed);
}

/// `transpose` of a random `rows × cols` source placed at element `offsets.0` of its buffer
/// into a poisoned, canary-guarded output at element `offsets.1` of its own.
fn check_transpose_at(rows: usize, cols: usize, offsets: (usize, usize), seed: u64) {
    let mut r = rng(seed);
    let src = random_matrix(&mut r, rows, cols, 5.0);
    let mut expected = Array2::zeros((cols, rows));
    cpu::transpose(src.view(), &mut expected).unwrap();

    let g = gpu();
    let (out, buffer) = poisoned(cols, rows, offsets.1);
    steepest::backend::gpu::transpose(g.context(), &placed(&src, offsets.0), &out).unwrap();
    let what = format!("transpose {rows}×{cols} at {offsets:?} seed={seed}");
    // A transpose moves values: the result is exact.
    assert_eq!(g.download(&out).unwrap(), expected, "{what}");
    assert_untouched(&what, &buffer, offsets.1, rows * cols);
    // Which kernel moved them: whole vec4s exactly where every row starts on 16 bytes.
    let vec4 = [rows, cols, offsets.0, offsets.1]
        .iter()
        .all(|n| n % 4 == 0);
    let entry = if vec4 { "transpose_vec4" } else { "transpose" };
    assert!(
        g.context()
            .built_kernels()
            .iter()
            .any(|k| k.shader == "transpose.wgsl" && k.entry == entry),
        "{what}: no {entry} pipeline was built"
    );
}

fn check_activation_backward(rows: usize, cols: usize, activation: Activation, seed: u64) {
    let mut r = rng(seed);
    let pre = random_matrix(&mut r, rows, cols, 4.0);
    let output = pre.mapv(|x| activation.apply(x));
    let grad = random_matrix(&mut r, rows, cols, 3.0);
    let mut expected = grad.clone();
    cpu::activation_backward(activation, output.view(), &mut expected).unwrap();

    let g = gpu();
    let offset = (seed % 3) as usize * 4 + 1;
    let (mut gpu_grad, buffer) = poisoned(rows, cols, offset);
    gpu_grad
        .buffer()
        .write(g.context(), offset, grad.as_slice().unwrap())
        .unwrap();
    g.activation_backward(activation, &placed(&output, 2), &mut gpu_grad)
        .unwrap();
    let actual = g.download(&gpu_grad).unwrap();
    assert_close(
        &format!("activation_backward {activation:?} {rows}×{cols} seed={seed}"),
        &actual,
        &expected,
        &tolerance(&expected, 1e-6, 1e-7),
    );
    assert_untouched("activation_backward", &buffer, offset, rows * cols);
}

fn check_column_sum(rows: usize, cols: usize, seed: u64) {
    let mut r = rng(seed);
    let m = random_matrix(&mut r, rows, cols, 2.0);
    let mut expected = Array2::zeros((1, cols));
    cpu::column_sum(m.view(), &mut expected).unwrap();

    let g = gpu();
    let offset = (seed % 7) as usize;
    let (mut out, buffer) = poisoned(1, cols, offset);
    g.column_sum_into(&placed(&m, offset + 1), &mut out)
        .unwrap();
    let actual = g.download(&out).unwrap();
    // Each column is a sum of `rows` terms of size ≤ 2 in another order.
    let tol = Array2::from_elem((1, cols), 4.0 * rows as f32 * 2.0 * f32::EPSILON);
    assert_close(
        &format!("column_sum {rows}×{cols} seed={seed}"),
        &actual,
        &expected,
        &tol,
    );
    assert_untouched("column_sum", &buffer, offset, cols);
}

/// The weights `lerp` is checked at: its ends and the point where its form changes, weights
/// near them, and one drawn from [-1.5, 2.5] (an extrapolation either side).
fn lerp_weight(r: &mut rand::rngs::StdRng, seed: u64) -> f32 {
    match seed % 7 {
        0 => 0.0,
        1 => 1.0,
        2 => 0.5,
        3 => 0.001,
        4 => 0.999,
        5 => 0.499_999_97,
        _ => r.random_range(-1.5..2.5f32),
    }
}

/// `y ← lerp(y, end, w)` on a view inside a guarded buffer, against the CPU twin: within an
/// ulp of the larger operand (the GPU may fuse the multiply and add), exactly `y` at weight 0
/// and exactly `end` at weight 1, nothing written outside the view.
fn check_lerp(rows: usize, cols: usize, seed: u64) {
    let mut r = rng(seed);
    let start = random_matrix(&mut r, rows, cols, 4.0);
    let end = random_matrix(&mut r, rows, cols, 4.0);
    let weight = lerp_weight(&mut r, seed);
    let mut expected = start.clone();
    cpu::lerp(weight, end.view(), &mut expected).unwrap();
    let g = gpu();
    let offset = (seed % 4) as usize;
    let (mut y, buffer) = poisoned(rows, cols, offset);
    g.write(&mut y, start.view()).unwrap();
    steepest::backend::gpu::lerp(g.context(), weight, &placed(&end, 3), &y).unwrap();
    let actual = g.download(&y).unwrap();
    let what = format!("lerp {rows}×{cols} weight {weight} seed={seed}");
    match weight {
        0.0 => assert_eq!(actual, start, "{what}"),
        1.0 => assert_eq!(actual, end, "{what}"),
        _ => {
            let scale = 1.0 + weight.abs().max((1.0 - weight).abs());
            let tol = start.mapv(|s| 4.0 * f32::EPSILON * s.abs().max(4.0) * scale);
            assert_close(&what, &actual, &expected, &tol);
        }
    }
    assert_untouched(&what, &buffer, offset, rows * cols);
}

/// `y ← alpha · x` on a view inside a guarded buffer, against the CPU twin: bit for bit (one
/// rounded product each), nothing written outside the view.
fn check_scale(rows: usize, cols: usize, seed: u64) {
    let mut r = rng(seed);
    let x = random_matrix(&mut r, rows, cols, 4.0);
    let alpha = match seed % 3 {
        0 => -1.0,
        _ => r.random_range(-3.0..3.0f32),
    };
    let mut expected = Array2::from_elem((rows, cols), f32::NAN);
    cpu::scale(alpha, x.view(), &mut expected).unwrap();
    let g = gpu();
    let offset = (seed % 4) as usize;
    let (y, buffer) = poisoned(rows, cols, offset);
    steepest::backend::gpu::scale(g.context(), alpha, &placed(&x, 2), &y).unwrap();
    let what = format!("scale {rows}×{cols} by {alpha} seed={seed}");
    assert_eq!(g.download(&y).unwrap(), expected, "{what}");
    assert_untouched(&what, &buffer, offset, rows * cols);
}

/// `copy_into` a view inside a poisoned buffer from a view inside another: the values exactly,
/// nothing around the view written; a copy within one buffer, or of another shape, refused on
/// both backends with nothing written.
fn check_copy((rows, cols): (usize, usize), seed: u64) {
    let mut r = rng(seed);
    let x = random_matrix(&mut r, rows, cols, 4.0);
    let g = gpu();
    let offset = (seed % 5) as usize;
    let (mut y, buffer) = poisoned(rows, cols, offset);
    let source = placed(&x, 3);
    g.copy_into(&source, &mut y).unwrap();
    let what = format!("copy {rows}×{cols} seed={seed}");
    assert_eq!(g.download(&y).unwrap(), x, "{what}");
    assert_untouched(&what, &buffer, offset, rows * cols);
    let mut same = source.clone();
    let err = g.copy_into(&source, &mut same).unwrap_err().to_string();
    assert!(err.contains("also an input"), "{err}");
    let (mut other, _) = poisoned(rows + 1, cols, 0);
    assert!(g.copy_into(&source, &mut other).is_err());
    assert!(g.download(&other).unwrap().iter().all(|v| v.is_nan()));
    let mut wrong = Array2::zeros((rows + 1, cols));
    assert!(CpuBackend.copy_into(&x, &mut wrong).is_err());
    let mut host = Array2::zeros((rows, cols));
    CpuBackend.copy_into(&x, &mut host).unwrap();
    assert_eq!(host, x);
}

/// Σ x·y, Σ |x| and max |x| over arenas of `shapes` on both backends, into one slot of a
/// poisoned totals row whose other slots stay as they were: the sums within f32 rounding of
/// the CPU's f64 sums (relative to Σ|terms|), the maximum exactly; a NaN anywhere makes the
/// maximum NaN.
fn check_arena_reductions(shapes: &[(usize, usize)], seed: u64) {
    let mut r = rng(seed);
    let len: usize = shapes.iter().map(|(a, b)| a * b).sum();
    let x: Vec<f32> = (0..len).map(|_| r.random_range(-3.0..3.0f32)).collect();
    let y: Vec<f32> = (0..len).map(|_| r.random_range(-3.0..3.0f32)).collect();
    let g = gpu();
    let (mut cx, mut cy) = (
        CpuBackend.arena("x", shapes).unwrap(),
        CpuBackend.arena("y", shapes).unwrap(),
    );
    CpuBackend.write_arena(&mut cx, &x).unwrap();
    CpuBackend.write_arena(&mut cy, &y).unwrap();
    let (mut gx, mut gy) = (g.arena("x", shapes).unwrap(), g.arena("y", shapes).unwrap());
    g.write_arena(&mut gx, &x).unwrap();
    g.write_arena(&mut gy, &y).unwrap();
    let slot = 1 + (seed % 3) as usize;
    let poison = Array2::from_shape_fn((1, 5), |(_, i)| -(i as f32) - 0.5);
    let what = format!("{shapes:?} seed={seed}");
    // (name, scale of the terms, the CPU's value, the GPU's value)
    type Run<'a> =
        &'a dyn Fn(&mut dyn FnMut(&mut Array2<f32>), &mut dyn FnMut(&mut GpuMatrix)) -> (f32, f32);
    let run: Run<'_> = &|cpu_op, gpu_op| {
        let mut c = poison.clone();
        cpu_op(&mut c);
        let mut gm = g.upload(poison.view()).unwrap();
        gpu_op(&mut gm);
        let got = g.download(&gm).unwrap();
        for i in (0..5).filter(|&i| i != slot) {
            assert_eq!(got[[0, i]], poison[[0, i]], "{what}: slot {i} written");
            assert_eq!(c[[0, i]], poison[[0, i]], "{what}: CPU slot {i} written");
        }
        (c[[0, slot]], got[[0, slot]])
    };
    let abs_dot: f32 = x.iter().zip(&y).map(|(a, b)| (a * b).abs()).sum();
    let (e, a) = run(
        &mut |t| CpuBackend.dot_into(&cx, &cy, t, slot).unwrap(),
        &mut |t| g.dot_into(&gx, &gy, t, slot).unwrap(),
    );
    assert!(
        (a - e).abs() <= 1e-6 * abs_dot + 1e-6,
        "{what}: dot {a} vs {e}"
    );
    let abs_sum: f32 = x.iter().map(|v| v.abs()).sum();
    let (e, a) = run(
        &mut |t| CpuBackend.sum_abs_into(&cx, t, slot).unwrap(),
        &mut |t| g.sum_abs_into(&gx, t, slot).unwrap(),
    );
    assert!(
        (a - e).abs() <= 1e-6 * abs_sum + 1e-6,
        "{what}: sum |x| {a} vs {e}"
    );
    let (e, a) = run(
        &mut |t| CpuBackend.max_abs_into(&cx, t, slot).unwrap(),
        &mut |t| g.max_abs_into(&gx, t, slot).unwrap(),
    );
    assert_eq!(a, e, "{what}: max |x|");
    assert_eq!(e, x.iter().fold(0.0f32, |m, v| m.max(v.abs())), "{what}");
    // One NaN, anywhere: the maximum is NaN on both backends.
    let mut with_nan = x.clone();
    with_nan[(seed % len as u64) as usize] = f32::NAN;
    CpuBackend.write_arena(&mut cx, &with_nan).unwrap();
    g.write_arena(&mut gx, &with_nan).unwrap();
    let (e, a) = run(
        &mut |t| CpuBackend.max_abs_into(&cx, t, slot).unwrap(),
        &mut |t| g.max_abs_into(&gx, t, slot).unwrap(),
    );
    assert!(
        a.is_nan() && e.is_nan(),
        "{what}: max |x| with a NaN: {a}, {e}"
    );
}

/// Targets for `loss`: values like the logits (MSE), probabilities (BCE) or class indices (CE).
fn targets(loss: Loss, rows: usize, cols: usize, r: &mut rand::rngs::StdRng) -> Array2<f32> {
    match loss {
        _ if loss.is_binary() => {
            Array2::from_shape_fn((rows, cols), |_| r.random_range(0.0..=1.0f32))
        }
        _ if loss.takes_class_indices() => {
            Array2::from_shape_fn((rows, 1), |_| r.random_range(0..cols) as f32)
        }
        _ => random_matrix(r, rows, cols, 3.0),
    }
}

fn check_loss(loss: Loss, rows: usize, cols: usize, seed: u64) {
    let mut r = rng(seed);
    // Large logits exercise the stable forms (log-sum-exp, the BCE rewrite).
    let scale = [1.0, 10.0, 80.0][(seed % 3) as usize];
    let logits = random_matrix(&mut r, rows, cols, scale);
    let t = targets(loss, rows, cols, &mut r);
    // A whole step, or one share of a larger one (gradient accumulation), first or later.
    let share = match (seed / 3) % 3 {
        0 => LossShare::whole(rows),
        more => LossShare {
            update_rows: rows + r.random_range(0..3 * rows),
            first: more == 1,
        },
    };
    // Class weights for the cross-entropies on odd seeds, one of them 0 where there are three.
    let weights = (loss.takes_class_indices() && seed % 2 == 1).then(|| {
        Array2::from_shape_fn((1, cols), |(_, c)| match c {
            2 => 0.0,
            _ => r.random_range(0.1..3.0f32),
        })
    });
    // rows / W times the largest weight: how far weighing scales a gradient up.
    let weighing = weights.as_ref().map_or(1.0, |w| {
        let total: f32 = t.iter().map(|&l| w[[0, l as usize]]).sum();
        w.iter().fold(0.0f32, |m, &v| m.max(v)) * rows as f32 / total
    });
    let mut expected_grad = Array2::zeros((rows, cols));
    let (loss_sum, correct) = cpu::loss(
        loss,
        logits.view(),
        t.view(),
        (Some(&mut expected_grad), share),
        weights.as_ref().map(|w| w.view()),
    )
    .unwrap();

    let g = gpu();
    let offset = (seed % 4) as usize;
    let (mut grad, buffer) = poisoned(rows, cols, offset);
    let mut totals = g.upload(Array2::from_elem((1, 6), 0.5f32).view()).unwrap();
    g.loss_into(
        loss,
        &placed(&logits, 3),
        &placed(&t, offset),
        Some(&mut grad),
        share,
        weights.map(|w| g.upload(w.view()).unwrap()).as_ref(),
        &mut totals,
        1,
    )
    .unwrap();
    let what = format!("{loss:?} {rows}×{cols} scale={scale} {share:?} seed={seed}");
    let actual = g.download(&grad).unwrap();
    // Each gradient is a difference scaled to the step's mean (by 1/rows for CE,
    // 1/(rows·cols) otherwise, the step's rows): a probability less its target for the
    // cross-entropies, a logit less its target for the others. One f32 rounding of that
    // difference is worth up to ε times its larger operand, which no relative tolerance
    // covers where it cancels (a probability within a few ε of its target 1, as logits of
    // ±80 give): allow four such roundings.
    let count = if loss.takes_class_indices() {
        share.update_rows
    } else {
        share.update_rows * cols
    };
    let operands = match loss {
        _ if loss.has_accuracy() => 1.0,
        _ => logits.iter().chain(&t).fold(1.0f32, |m, x| m.max(x.abs())),
    };
    let rounding = 4.0 * f32::EPSILON * operands * weighing / count as f32;
    assert_close(
        &format!("{what} gradient"),
        &actual,
        &expected_grad,
        &tolerance(&expected_grad, 1e-4, 1e-6 / (rows * cols) as f32 + rounding),
    );
    assert_untouched(&what, &buffer, offset, rows * cols);
    let totals = g.download(&totals).unwrap();
    let loss_tol = 1e-5 * loss_sum.abs() as f32 + 1e-5 * rows as f32;
    // The step's sums are set by its first batch and added to by the others; the epoch's
    // (slots 3 and 4) are always added to.
    let before = if share.first { 0.0 } else { 0.5 };
    for (slot, want) in [(1, loss_sum as f32 + before), (3, loss_sum as f32 + 0.5)] {
        assert!(
            (totals[[0, slot]] - want).abs() <= loss_tol,
            "{what}: totals[{slot}] = {}, expected {want}",
            totals[[0, slot]]
        );
    }
    // Counts are exact for CE; BCE's per-row fractions are sums of k/cols.
    for (slot, want) in [(2, correct as f32 + before), (4, correct as f32 + 0.5)] {
        assert!(
            (totals[[0, slot]] - want).abs() <= 1e-4 * rows as f32,
            "{what}: correct count totals[{slot}] = {}, expected {want}",
            totals[[0, slot]]
        );
    }
    assert_eq!(totals[[0, 0]], 0.5, "{what}: slot before the range written");
    assert_eq!(totals[[0, 5]], 0.5, "{what}: slot after the range written");
}

const LOSSES: [Loss; 8] = [
    Loss::MeanSquaredError,
    Loss::BinaryCrossEntropyWithLogits,
    Loss::BinaryCrossEntropyWithLogitsWeighted { pos_weight: 2.5 },
    Loss::SoftmaxCrossEntropy,
    Loss::SoftmaxCrossEntropySmoothed { smoothing: 0.2 },
    Loss::L1,
    Loss::Huber { delta: 1.5 },
    Loss::SmoothL1 { beta: 0.25 },
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn gather_matches_cpu(src_rows in 1usize..=300, cols in 1usize..=70, out_rows in 1usize..=300, seed: u64) {
        check_gather(src_rows, cols, out_rows, seed);
    }

    #[test]
    fn gather_batch_matches_cpu(src_rows in 1usize..=300, cols in 1usize..=70, y_cols in 1usize..=12, out_rows in 1usize..=300, seed: u64) {
        check_gather_batch(src_rows, cols, y_cols, out_rows, seed);
    }

    #[test]
    fn transpose_matches_cpu(rows in 1usize..=300, cols in 1usize..=300, seed: u64) {
        check_transpose(rows, cols, seed);
    }

    #[test]
    fn transpose_in_whole_vec4s_matches_cpu(rows in 1usize..=80, cols in 1usize..=80, src_at in 0usize..3, out_at in 0usize..3, seed: u64) {
        check_transpose_at(4 * rows, 4 * cols, (4 * src_at, 4 * out_at), seed);
    }

    #[test]
    fn activation_backward_matches_cpu(rows in 1usize..=300, cols in 1usize..=300, act in 0..4usize, seed: u64) {
        check_activation_backward(rows, cols, Activation::ALL[act], seed);
    }

    #[test]
    fn copy_arena_matches_cpu(shapes in prop::collection::vec((1usize..=300, 1usize..=300), 1..5), seed: u64) {
        check_copy_arena(&shapes, seed);
    }

    #[test]
    fn lerp_matches_cpu(rows in 1usize..=300, cols in 1usize..=300, seed: u64) {
        check_lerp(rows, cols, seed);
    }

    #[test]
    fn scale_matches_cpu(rows in 1usize..=300, cols in 1usize..=300, seed: u64) {
        check_scale(rows, cols, seed);
    }

    #[test]
    fn arena_reductions_match_cpu(shapes in proptest::collection::vec((1usize..=70, 1usize..=70), 1..5), seed: u64) {
        check_arena_reductions(&shapes, seed);
    }

    #[test]
    fn column_sum_matches_cpu(rows in 1usize..=300, cols in 1usize..=300, seed: u64) {
        check_column_sum(rows, cols, seed);
    }

    #[test]
    fn loss_matches_cpu(loss in 0..LOSSES.len(), rows in 1usize..=300, cols in 1usize..=40, seed: u64) {
        let cols = if LOSSES[loss].takes_class_indices() { cols.max(2) } else { cols };
        check_loss(LOSSES[loss], rows, cols, seed);
    }
}

#[test]
fn awkward_sizes_match_cpu() {
    let mut seed = 1000;
    for &rows in &AWKWARD {
        for &cols in &[1usize, 3, 65, 257] {
            seed += 1;
            check_gather(rows, cols, rows, seed);
            check_gather_batch(rows, cols, 1 + cols % 3, rows, seed);
            check_transpose(rows, cols, seed);
            check_transpose(cols, rows, seed + 7);
            // Whole vec4s: the tile's edges (64) fall inside and past these.
            check_transpose_at(4 * rows, 4 * cols, (4, 8), seed);
            check_activation_backward(rows, cols, Activation::ALL[seed as usize % 4], seed);
            check_column_sum(rows, cols, seed);
            check_lerp(rows, cols, seed);
            check_scale(rows, cols, seed);
            check_copy((rows, cols), seed);
            check_arena_reductions(&[(rows, cols), (1, cols)], seed);
            for loss in LOSSES {
                let cols = if loss.takes_class_indices() {
                    cols.max(2)
                } else {
                    cols
                };
                check_loss(loss, rows, cols.min(65), seed);
            }
        }
    }
    // Batches around the one-pass loss's limit (4096 rows) take both paths; a tall column sum
    // spans many row blocks.
    for (i, rows) in [4096usize, 4097, 9001].into_iter().enumerate() {
        for loss in LOSSES {
            check_loss(loss, rows, 3, 2000 + i as u64);
        }
        check_column_sum(rows, 5, 2100 + i as u64);
    }
}

/// Values of every kind a copy must carry bit for bit: random bit patterns (NaNs with
/// payloads, subnormals, infinities and zeros of both signs among them) and ordinary numbers.
fn any_bits(r: &mut rand::rngs::StdRng, len: usize) -> Vec<f32> {
    const SPECIAL: [u32; 8] = [
        0x7fc0_1234, // a quiet NaN with a payload
        0xffa0_0001, // a signalling NaN, negative
        0x0000_0001, // the smallest subnormal
        0x8000_0003, // a negative subnormal
        0x8000_0000, // −0
        0x7f80_0000, // +∞
        0xff80_0000, // −∞
        0x3f80_0000, // 1
    ];
    (0..len)
        .map(|_| match r.random_range(0..4u32) {
            0 => f32::from_bits(SPECIAL[r.random_range(0..SPECIAL.len())]),
            1 => f32::from_bits(r.random()),
            _ => r.random_range(-3.0..3.0f32),
        })
        .collect()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// `copy_arena` against its CPU twin over arenas of `shapes`: every bit arrives, the whole
/// destination buffer (its gaps included) is written over poison, and the source and an arena
/// allocated beside them keep theirs.
fn check_copy_arena(shapes: &[(usize, usize)], seed: u64) {
    let g = gpu();
    let ctx = g.context();
    let mut r = rng(seed);
    let len: usize = shapes.iter().map(|(a, b)| a * b).sum();
    let (values, others) = (any_bits(&mut r, len), any_bits(&mut r, len));

    let mut cx = CpuBackend.arena("x", shapes).unwrap();
    let mut cy = CpuBackend.arena("y", shapes).unwrap();
    CpuBackend.write_arena(&mut cx, &values).unwrap();
    CpuBackend.copy_arena(&cx, &mut cy).unwrap();

    let mut gx = g.arena("x", shapes).unwrap();
    let mut gy = g.arena("y", shapes).unwrap();
    let mut bystander = g.arena("bystander", shapes).unwrap();
    g.write_arena(&mut gx, &values).unwrap();
    g.write_arena(&mut bystander, &others).unwrap();
    let storage = gy.buffer().len();
    let poison = vec![f32::from_bits(0x7fbf_dead); storage];
    gy.buffer().write(ctx, 0, &poison).unwrap();
    g.copy_arena(&gx, &mut gy).unwrap();

    let expected = CpuBackend.read_arena(&cy).unwrap();
    assert_eq!(
        bits(&expected),
        bits(&values),
        "the CPU twin copies every bit"
    );
    assert_eq!(
        bits(&g.read_arena(&gy).unwrap()),
        bits(&expected),
        "{shapes:?}"
    );
    assert_eq!(
        bits(&gy.buffer().read(ctx).unwrap()),
        bits(&gx.buffer().read(ctx).unwrap()),
        "the whole buffer, gaps included, of {shapes:?}"
    );
    assert_eq!(
        bits(&g.read_arena(&gx).unwrap()),
        bits(&values),
        "the source"
    );
    assert_eq!(
        bits(&g.read_arena(&bystander).unwrap()),
        bits(&others),
        "a bystander"
    );
}

/// Sizes around the kernel's vec4s (a last partial one), its unrolled round (four strides of
/// 256 invocations a workgroup, which one round covers until the 4096 workgroups run out) and
/// past that limit, where each invocation loops over several rounds and a tail; and an arena
/// copied onto itself.
#[test]
fn copy_arena_edges() {
    // The invocations of 4096 workgroups: the stride once the workgroups are capped, which
    // 4 · 2^20 vec4s reach. With 7 · 2^20 + 301 (117 MB, inside lavapipe's binding), the
    // first 301 invocations take two rounds and the rest a round and three strides of tail.
    let stride = 256 * 4096;
    for (i, words) in [
        1usize,
        3,
        4,
        5,
        4095,
        4096,
        4097,
        4 * (7 * stride + 300) + 3,
    ]
    .into_iter()
    .enumerate()
    {
        check_copy_arena(&[(1, words)], 300 + i as u64);
    }
    check_copy_arena(&[(1, 1), (1, 1), (7, 3)], 310);
    // A clone shares its buffer: it holds the values already, and the copy records nothing.
    let g = gpu();
    let mut x = g.arena("x", &[(3, 5)]).unwrap();
    g.write_arena(&mut x, &[1.5; 15]).unwrap();
    let mut same = x.clone();
    g.copy_arena(&x, &mut same).unwrap();
    assert_eq!(g.read_arena(&same).unwrap(), vec![1.5; 15]);
    // Another layout is refused, and the destination keeps its values.
    let mut other = g.arena("other", &[(5, 3)]).unwrap();
    g.write_arena(&mut other, &[-1.0; 15]).unwrap();
    let err = g.copy_arena(&x, &mut other).unwrap_err();
    assert!(err.to_string().contains("copy arena"), "{err}");
    assert_eq!(g.read_arena(&other).unwrap(), vec![-1.0; 15]);
}

/// An arena's bind group serves every copy to or from it (the kernel binds each arena in a
/// group of its own): copying back, or onto a third arena, builds at most that arena's. A copy
/// is one dispatch, not a copy command (which would end the compute pass).
#[test]
fn copies_build_one_bind_group_per_arena() {
    let g = &common::own_gpu();
    let ctx = g.context();
    let shapes = [(5, 7), (1, 3)];
    let mut a = g.arena("a", &shapes).unwrap();
    let mut b = g.arena("b", &shapes).unwrap();
    let mut c = g.arena("c", &shapes).unwrap();
    g.write_arena(&mut a, &[2.0; 38]).unwrap();
    g.copy_arena(&a, &mut b).unwrap(); // the pipeline and a's and b's groups
    let before = ctx.counters();
    g.copy_arena(&b, &mut a).unwrap();
    g.copy_arena(&a, &mut b).unwrap();
    let after = ctx.counters();
    assert_eq!(after.bind_groups_created, before.bind_groups_created);
    assert_eq!(after.dispatches - before.dispatches, 2);
    assert_eq!(after.copies, before.copies, "no copy command");
    g.copy_arena(&b, &mut c).unwrap();
    assert_eq!(
        ctx.counters().bind_groups_created,
        after.bind_groups_created + 1
    );
    assert_eq!(g.read_arena(&c).unwrap(), vec![2.0; 38]);
}

#[test]
fn arena_ops_match_cpu() {
    let shapes = [(1, 1), (7, 3), (1, 65), (63, 5)];
    let g = gpu();
    for seed in 0..4u64 {
        let mut r = rng(seed);
        let len: usize = shapes.iter().map(|(a, b)| a * b).sum();
        let x: Vec<f32> = (0..len).map(|_| r.random_range(-2.0..2.0f32)).collect();
        let y: Vec<f32> = (0..len).map(|_| r.random_range(-2.0..2.0f32)).collect();
        let alpha = r.random_range(-1.5..1.5f32);

        let mut cx = CpuBackend.arena("x", &shapes).unwrap();
        let mut cy = CpuBackend.arena("y", &shapes).unwrap();
        CpuBackend.write_arena(&mut cx, &x).unwrap();
        CpuBackend.write_arena(&mut cy, &y).unwrap();
        CpuBackend.axpy_arena(alpha, &cx, &mut cy).unwrap();
        let mut ctotals = Array2::zeros((1, 2));
        CpuBackend.sum_squares_into(&cy, &mut ctotals, 1).unwrap();

        let mut gx = g.arena("x", &shapes).unwrap();
        let mut gy = g.arena("y", &shapes).unwrap();
        g.write_arena(&mut gx, &x).unwrap();
        g.write_arena(&mut gy, &y).unwrap();
        g.axpy_arena(alpha, &gx, &mut gy).unwrap();
        let mut gtotals = g
            .upload(Array2::from_elem((1, 2), f32::NAN).view())
            .unwrap();
        g.sum_squares_into(&gy, &mut gtotals, 1).unwrap();

        let expected = CpuBackend.read_arena(&cy).unwrap();
        let actual = g.read_arena(&gy).unwrap();
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            assert!(
                (a - e).abs() <= 1e-6 * e.abs() + 1e-7,
                "axpy element {i}: {a} vs {e}"
            );
        }
        let (a, e) = (g.download(&gtotals).unwrap()[[0, 1]], ctotals[[0, 1]]);
        assert!((a - e).abs() <= 1e-5 * e, "sum of squares {a} vs {e}");

        // The copy is exact and leaves the layout's gaps alone.
        let mut gz = g.arena("z", &shapes).unwrap();
        g.copy_arena(&gy, &mut gz).unwrap();
        assert_eq!(g.read_arena(&gz).unwrap(), actual);
        assert_eq!(gz.tensors().len(), shapes.len());

        // lerp over every tensor of the arena, as an average of the parameters is updated.
        let weight = lerp_weight(&mut r, seed);
        CpuBackend.lerp_arena(weight, &cx, &mut cy).unwrap();
        g.lerp_arena(weight, &gx, &mut gy).unwrap();
        let expected = CpuBackend.read_arena(&cy).unwrap();
        let actual = g.read_arena(&gy).unwrap();
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            assert!(
                (a - e).abs() <= 4.0 * f32::EPSILON * e.abs().max(4.0) * 3.5,
                "lerp element {i} at weight {weight}: {a} vs {e}"
            );
        }
        // A weight that is not finite is refused on both backends, changing nothing.
        for backend_err in [
            CpuBackend.lerp_arena(f32::NAN, &cx, &mut cy).unwrap_err(),
            g.lerp_arena(f32::INFINITY, &gx, &mut gy).unwrap_err(),
        ] {
            assert!(
                backend_err.to_string().contains("lerp")
                    && backend_err.to_string().contains("finite"),
                "{backend_err}"
            );
        }
        assert_eq!(CpuBackend.read_arena(&cy).unwrap(), expected);
        assert_eq!(g.read_arena(&gy).unwrap(), actual);
    }
}

#[test]
fn bad_shapes_are_errors_on_both_backends() {
    let g = gpu();
    let a = Array2::<f32>::zeros((4, 3));
    let wrong = Array2::<f32>::zeros((4, 2));
    let mut cpu_out = wrong.clone();
    assert!(matches!(
        CpuBackend.activation_backward(Activation::Relu, &a, &mut cpu_out),
        Err(steepest::Error::Shape {
            op: "activation_backward",
            ..
        })
    ));
    let mut gpu_out = g.upload(wrong.view()).unwrap();
    assert!(matches!(
        g.activation_backward(Activation::Relu, &g.upload(a.view()).unwrap(), &mut gpu_out),
        Err(steepest::Error::Shape {
            op: "activation_backward",
            ..
        })
    ));
    // Out-of-range gather indices are caught on the host before anything runs.
    let idx = g.upload_indices(&[0, 9]).unwrap();
    let mut out = g.zeros(2, 3).unwrap();
    assert!(matches!(
        g.gather_rows_into(&g.upload(a.view()).unwrap(), &idx, 0, &mut out),
        Err(steepest::Error::Shape {
            op: "gather_rows",
            ..
        })
    ));
    // A batch gather with one bad index writes neither output.
    let (mut x_out, x_guard) = poisoned(2, 3, 1);
    let (mut y_out, y_guard) = poisoned(2, 2, 0);
    let x = g.upload(a.view()).unwrap();
    let y = g.upload(Array2::<f32>::zeros((4, 2)).view()).unwrap();
    assert!(matches!(
        g.gather_batch_into(&[(&x, &y)], &idx, 0, (&mut x_out, &mut y_out)),
        Err(steepest::Error::Shape {
            op: "gather_batch",
            ..
        })
    ));
    // Nor does one from shards whose rows together do not reach the index (4 + 4 ≤ 9), one
    // whose shard has inputs and targets of different rows, or one from no shard at all.
    let short_y = g.upload(Array2::<f32>::zeros((3, 2)).view()).unwrap();
    let refusals: [&[(&GpuMatrix, &GpuMatrix)]; 3] =
        [&[(&x, &y), (&x, &y)], &[(&x, &y), (&x, &short_y)], &[]];
    for shards in refusals {
        let err = g
            .gather_batch_into(shards, &idx, 0, (&mut x_out, &mut y_out))
            .unwrap_err();
        assert!(
            matches!(
                err,
                steepest::Error::Shape {
                    op: "gather_batch",
                    ..
                }
            ),
            "{err}"
        );
    }
    for (out, guard) in [(&x_out, &x_guard), (&y_out, &y_guard)] {
        assert!(g.download(out).unwrap().iter().all(|v| v.is_nan()));
        guard.assert_untouched("refused gather_batch");
    }
    // Class labels out of range are an error on the CPU (the dataset checks them for the GPU).
    let logits = Array2::<f32>::zeros((2, 3));
    let labels = ndarray::array![[0.0f32], [3.0]];
    assert!(matches!(
        cpu::loss(
            Loss::SoftmaxCrossEntropy,
            logits.view(),
            labels.view(),
            (None, LossShare::whole(2)),
            None
        ),
        Err(steepest::Error::Label {
            row: 1,
            classes: 3,
            ..
        })
    ));
    // A batch that is a share of a step with fewer rows than its own is refused by both
    // backends, writing nothing.
    let share = LossShare {
        update_rows: 4,
        first: false,
    };
    let (logits, targets) = (Array2::<f32>::zeros((5, 2)), Array2::<f32>::zeros((5, 2)));
    let mut grad = Array2::from_elem((5, 2), f32::NAN);
    let mut totals = Array2::from_elem((1, 4), 0.5f32);
    let cpu_err = CpuBackend
        .loss_into(
            Loss::MeanSquaredError,
            &logits,
            &targets,
            Some(&mut grad),
            share,
            None,
            &mut totals,
            0,
        )
        .unwrap_err();
    assert!(grad.iter().all(|v| v.is_nan()) && totals.iter().all(|&v| v == 0.5));
    let (mut grad, buffer) = poisoned(5, 2, 1);
    let mut totals = g.upload(Array2::from_elem((1, 4), 0.5f32).view()).unwrap();
    let gpu_err = g
        .loss_into(
            Loss::MeanSquaredError,
            &placed(&logits, 2),
            &placed(&targets, 3),
            Some(&mut grad),
            share,
            None,
            &mut totals,
            0,
        )
        .unwrap_err();
    assert_eq!(cpu_err.to_string(), gpu_err.to_string());
    assert!(
        gpu_err.to_string().contains("5 rows") && gpu_err.to_string().contains("the 4"),
        "{gpu_err}"
    );
    assert!(g.download(&grad).unwrap().iter().all(|v| v.is_nan()));
    assert_untouched("refused loss share", &buffer, 1, 10);
    assert!(g.download(&totals).unwrap().iter().all(|&v| v == 0.5));
}

/// A case CI drew: logits of ±80 over 10 classes leave some rows' target probability within
/// an ulp or two of 1, so their gradient (p − 1)/rows is all rounding (it once missed a
/// tolerance below one ulp of 1 by 13%).
#[test]
fn a_near_certain_class_gradient_is_within_rounding() {
    check_loss(Loss::SoftmaxCrossEntropy, 256, 10, 4363555704602172089);
}
