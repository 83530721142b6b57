//! Differential tests of the layers' kernels (nonlinearity, layer norm, batch norm, dropout,
//! embedding, add) against their CPU twins, over random and awkward shapes, with fresh data
//! per case, outputs NaN-poisoned inside and canary-guarded around, and inputs placed inside
//! their buffers.

mod common;

use common::{assert_close, gpu, placed, random_matrix, rng, tolerance};
use ndarray::Array2;
use proptest::prelude::*;
use rand::RngExt;
use steepest::backend::DropoutDraw;
use steepest::backend::cpu;
use steepest::{Backend, CpuBackend, Nonlinearity};

/// Rows and columns the named cases cover: 1, workgroup edges and their neighbours.
const AWKWARD: [usize; 6] = [1, 3, 63, 65, 257, 300];

fn check_nonlinearity(rows: usize, cols: usize, function: Nonlinearity, seed: u64) {
    let mut r = rng(seed);
    let x = random_matrix(&mut r, rows, cols, 6.0);
    let g = random_matrix(&mut r, rows, cols, 2.0);
    let mut y = Array2::zeros((rows, cols));
    cpu::nonlinearity(function, x.view(), &mut y).unwrap();
    let mut dx = Array2::zeros((rows, cols));
    cpu::nonlinearity_backward(function, x.view(), g.view(), &mut dx).unwrap();

    let gpu_x = placed(&x, (seed % 5) as usize);
    let out = common::guarded(rows, cols, 3);
    let grad = common::guarded(rows, cols, 1);
    let (mut out_m, mut grad_m) = (out.matrix.clone(), grad.matrix.clone());
    gpu()
        .nonlinearity_into(function, &gpu_x, &mut out_m)
        .unwrap();
    gpu()
        .nonlinearity_backward(function, &gpu_x, &placed(&g, 2), &mut grad_m)
        .unwrap();
    let what = format!("{function:?} {rows}×{cols} seed={seed}");
    // exp and the polynomial differ by a few ulps between the shader and Rust's libm.
    assert_close(
        &format!("forward {what}"),
        &gpu().download(&out_m).unwrap(),
        &y,
        &tolerance(&y, 1e-5, 1e-6),
    );
    // Where a derivative crosses zero (GELU's near x ≈ −0.75) its two terms cancel, so their
    // few-ulp differences are judged against the incoming gradient, not the small result.
    assert_close(
        &format!("backward {what}"),
        &gpu().download(&grad_m).unwrap(),
        &dx,
        &(tolerance(&dx, 1e-5, 1e-6) + g.mapv(|v| 4e-6 * v.abs())),
    );
    out.assert_untouched("nonlinearity");
    grad.assert_untouched("nonlinearity_backward");
}

/// Batch norm's three kernels (the batch's statistics, the normalisation with them, the
/// backward pass with and without ∂x) on views inside guarded buffers, against the CPU twins,
/// which sum in the kernels' order: within a few ulps, nothing written outside the views.
fn check_batch_norm(rows: usize, cols: usize, seed: u64) {
    let mut r = rng(seed);
    let x = random_matrix(&mut r, rows, cols, 3.0).mapv(|v| v + 0.5);
    let gamma = random_matrix(&mut r, 1, cols, 2.0);
    let beta = random_matrix(&mut r, 1, cols, 1.0);
    let dy = random_matrix(&mut r, rows, cols, 1.0);
    let eps = 1e-5;
    let vector = || Array2::<f32>::zeros((1, cols));
    let (mut mean, mut var, mut unbiased) = (vector(), vector(), vector());
    cpu::batch_norm_stats(x.view(), &mut mean, &mut var, &mut unbiased).unwrap();
    let mut y = Array2::zeros((rows, cols));
    cpu::batch_norm(
        x.view(),
        mean.view(),
        var.view(),
        gamma.view(),
        beta.view(),
        eps,
        &mut y,
    )
    .unwrap();
    let (mut dgamma, mut dbeta, mut dx) = (vector(), vector(), Array2::zeros((rows, cols)));
    cpu::batch_norm_backward(
        x.view(),
        mean.view(),
        var.view(),
        gamma.view(),
        eps,
        dy.view(),
        (&mut dgamma, &mut dbeta),
        Some(&mut dx),
    )
    .unwrap();

    let b = gpu();
    let gpu_x = placed(&x, 1);
    let outs = [(1, cols, 3), (1, cols, 1), (1, cols, 2), (rows, cols, 2)]
        .map(|(r, c, before)| common::guarded(r, c, before));
    let [mean_out, var_out, unbiased_out, y_out] = &outs;
    let (mut m, mut v, mut u, mut yy) = (
        mean_out.matrix.clone(),
        var_out.matrix.clone(),
        unbiased_out.matrix.clone(),
        y_out.matrix.clone(),
    );
    b.batch_norm_stats(&gpu_x, &mut m, &mut v, &mut u).unwrap();
    let (gpu_gamma, gpu_beta) = (placed(&gamma, 2), placed(&beta, 3));
    b.batch_norm_into(&gpu_x, (&m, &v), &gpu_gamma, &gpu_beta, eps, &mut yy)
        .unwrap();
    let grads = [(1, cols, 2), (1, cols, 4), (rows, cols, 1)]
        .map(|(r, c, before)| common::guarded(r, c, before));
    let [dgamma_out, dbeta_out, dx_out] = &grads;
    let (mut dg, mut db, mut dxm) = (
        dgamma_out.matrix.clone(),
        dbeta_out.matrix.clone(),
        dx_out.matrix.clone(),
    );
    let gpu_dy = placed(&dy, 3);
    b.batch_norm_backward(
        &gpu_x,
        (&m, &v),
        &gpu_gamma,
        eps,
        &gpu_dy,
        (&mut dg, &mut db),
        Some(&mut dxm),
    )
    .unwrap();
    let what = format!("{rows}×{cols} seed={seed}");
    // Sums over `rows` terms in the same order; the GPU may fuse a multiply and an add.
    let scale = 64.0 * (rows as f32).sqrt() * f32::EPSILON;
    for (name, got, want) in [
        ("mean", &m, &mean),
        ("variance", &v, &var),
        ("unbiased variance", &u, &unbiased),
        ("output", &yy, &y),
        ("∂γ", &dg, &dgamma),
        ("∂β", &db, &dbeta),
        ("∂x", &dxm, &dx),
    ] {
        let got = b.download(got).unwrap();
        let tol = tolerance(want, scale, scale * 4.0);
        assert_close(&format!("batch_norm {name} {what}"), &got, want, &tol);
    }
    for (out, name) in outs
        .iter()
        .chain(&grads)
        .zip(["mean", "var", "unbiased", "y", "∂γ", "∂β", "∂x"])
    {
        out.assert_untouched(&format!("batch_norm {name} {what}"));
    }
    // Without ∂x (the model's first layer): the sums alone, the same.
    let (mut dg2, mut db2) = (b.zeros(1, cols).unwrap(), b.zeros(1, cols).unwrap());
    b.batch_norm_backward(
        &gpu_x,
        (&m, &v),
        &gpu_gamma,
        eps,
        &gpu_dy,
        (&mut dg2, &mut db2),
        None,
    )
    .unwrap();
    assert_eq!(
        b.download(&dg2).unwrap(),
        b.download(&dg).unwrap(),
        "{what}"
    );
    assert_eq!(
        b.download(&db2).unwrap(),
        b.download(&db).unwrap(),
        "{what}"
    );
}

#[test]
fn batch_norm_at_awkward_shapes() {
    for (i, &rows) in AWKWARD.iter().enumerate().filter(|(_, r)| **r >= 2) {
        let cols = AWKWARD[(i + 3) % AWKWARD.len()];
        check_batch_norm(rows, cols, i as u64);
    }
    // A batch of one row has no variance: refused on both backends, writing nothing.
    let x = Array2::from_elem((1, 3), 1.0f32);
    let mut cpu_out = Array2::from_elem((1, 3), -7.0f32);
    let (mut a, mut b) = (cpu_out.clone(), cpu_out.clone());
    let err = cpu::batch_norm_stats(x.view(), &mut cpu_out, &mut a, &mut b).unwrap_err();
    assert!(err.to_string().contains("batch of 1 row"), "{err}");
    assert_eq!(cpu_out, Array2::from_elem((1, 3), -7.0));
    let g = gpu();
    let (mut m, mut v, mut u) = (
        g.zeros(1, 3).unwrap(),
        g.zeros(1, 3).unwrap(),
        g.zeros(1, 3).unwrap(),
    );
    let err = g
        .batch_norm_stats(&placed(&x, 0), &mut m, &mut v, &mut u)
        .unwrap_err();
    assert!(err.to_string().contains("batch of 1 row"), "{err}");
}

/// The layer norm's kernels, or with `rms` the RMS norm's (the same kernels without the mean
/// and the shift), against their CPU twins.
fn check_layer_norm(rows: usize, cols: usize, seed: u64, rms: bool) {
    let name = if rms { "rms_norm" } else { "layer_norm" };
    let mut r = rng(seed);
    let x = random_matrix(&mut r, rows, cols, 3.0);
    let gamma = random_matrix(&mut r, 1, cols, 2.0);
    let beta = random_matrix(&mut r, 1, cols, 1.0);
    let g = random_matrix(&mut r, rows, cols, 1.0);
    let eps = if rms { f32::EPSILON } else { 1e-5 };
    let (mut stats, mut y) = (Array2::zeros((rows, 2)), Array2::zeros((rows, cols)));
    let (mut dx, mut prod) = (Array2::zeros((rows, cols)), Array2::zeros((rows, cols)));
    let (xv, gv) = (x.view(), gamma.view());
    if rms {
        cpu::rms_norm(xv, gv, eps, &mut stats, &mut y).unwrap();
        cpu::rms_norm_backward(xv, gv, g.view(), stats.view(), &mut dx, &mut prod).unwrap();
    } else {
        cpu::layer_norm(xv, gv, beta.view(), eps, &mut stats, &mut y).unwrap();
        cpu::layer_norm_backward(xv, gv, g.view(), stats.view(), &mut dx, &mut prod).unwrap();
    }

    let b = gpu();
    let gpu_x = placed(&x, 1);
    let gpu_gamma = placed(&gamma, 2);
    let stats_out = common::guarded(rows, 2, 5);
    let y_out = common::guarded(rows, cols, 2);
    let spare = common::guarded(rows, cols, 4);
    let (mut s_m, mut y_m, mut spare_m) = (
        stats_out.matrix.clone(),
        y_out.matrix.clone(),
        spare.matrix.clone(),
    );
    let (gx, gg) = (&gpu_x, &gpu_gamma);
    if rms {
        b.rms_norm_into(gx, gg, eps, &mut s_m, &mut y_m, &mut spare_m)
    } else {
        let beta = placed(&beta, 3);
        b.layer_norm_into(gx, gg, &beta, eps, &mut s_m, &mut y_m, &mut spare_m)
    }
    .unwrap();
    let dx_out = common::guarded(rows, cols, 1);
    let (mut dx_m, mut prod_m) = (dx_out.matrix.clone(), spare.matrix.clone());
    let grad = placed(&g, 1);
    if rms {
        b.rms_norm_backward(gx, gg, &grad, &s_m, &mut dx_m, &mut prod_m)
    } else {
        b.layer_norm_backward(gx, gg, &grad, &s_m, &mut dx_m, &mut prod_m)
    }
    .unwrap();
    let what = format!("{rows}×{cols} seed={seed}");
    // Sums over `cols` terms in another order: errors grow like √cols ulps of the terms.
    let scale = 16.0 * (cols as f32).sqrt() * f32::EPSILON;
    assert_close(
        &format!("{name} stats {what}"),
        &b.download(&s_m).unwrap(),
        &stats,
        &tolerance(&stats, scale, scale * 3.0),
    );
    assert_close(
        &format!("{name} {what}"),
        &b.download(&y_m).unwrap(),
        &y,
        &tolerance(&y, scale, scale * 6.0),
    );
    assert_close(
        &format!("{name}_backward dx {what}"),
        &b.download(&dx_m).unwrap(),
        &dx,
        &tolerance(&dx, scale * 4.0, scale * 20.0),
    );
    assert_close(
        &format!("{name}_backward prod {what}"),
        &b.download(&prod_m).unwrap(),
        &prod,
        &tolerance(&prod, scale, scale * 3.0),
    );
    stats_out.assert_untouched(&format!("{name} stats"));
    y_out.assert_untouched(name);
    dx_out.assert_untouched(&format!("{name}_backward"));
    spare.assert_untouched(&format!("{name}_backward prod"));
}

fn check_dropout(rows: usize, cols: usize, p: f32, seed: u64) {
    let mut r = rng(seed);
    let x = random_matrix(&mut r, rows, cols, 3.0);
    let g = random_matrix(&mut r, rows, cols, 3.0);
    let draw = DropoutDraw::new(p, seed, seed / 3);
    let (mut mask, mut y) = (Array2::zeros((rows, cols)), Array2::zeros((rows, cols)));
    cpu::dropout(draw, x.view(), &mut mask, &mut y).unwrap();
    let mut dx = Array2::zeros((rows, cols));
    cpu::dropout_backward(g.view(), mask.view(), &mut dx).unwrap();

    let b = gpu();
    let mask_out = common::guarded(rows, cols, 2);
    let y_out = common::guarded(rows, cols, 3);
    let dx_out = common::guarded(rows, cols, 1);
    let (mut m, mut y_m, mut dx_m) = (
        mask_out.matrix.clone(),
        y_out.matrix.clone(),
        dx_out.matrix.clone(),
    );
    b.dropout_into(draw, &placed(&x, 1), &mut m, &mut y_m)
        .unwrap();
    b.dropout_backward(&placed(&g, 2), &m, &mut dx_m).unwrap();
    // The draw is integer arithmetic and the products are single roundings: exact.
    let what = format!("p={p} {rows}×{cols} seed={seed}");
    assert_eq!(b.download(&m).unwrap(), mask, "dropout mask {what}");
    assert_eq!(b.download(&y_m).unwrap(), y, "dropout {what}");
    assert_eq!(b.download(&dx_m).unwrap(), dx, "dropout_backward {what}");
    mask_out.assert_untouched("dropout mask");
    y_out.assert_untouched("dropout");
    dx_out.assert_untouched("dropout_backward");
}

/// The gated linear unit's kernels over `half`-wide halves on views inside guarded buffers
/// against the CPU twins. `exp` may round differently on the GPU: within a few ulps.
fn check_glu(rows: usize, half: usize, seed: u64) {
    let mut r = rng(seed);
    let x = random_matrix(&mut r, rows, 2 * half, 4.0);
    let g = random_matrix(&mut r, rows, half, 2.0);
    let mut y = Array2::zeros((rows, half));
    cpu::glu(x.view(), &mut y).unwrap();
    let mut dx = Array2::zeros((rows, 2 * half));
    cpu::glu_backward(x.view(), g.view(), &mut dx).unwrap();

    let b = gpu();
    let y_out = common::guarded(rows, half, 3);
    let dx_out = common::guarded(rows, 2 * half, 1);
    let (mut y_m, mut dx_m) = (y_out.matrix.clone(), dx_out.matrix.clone());
    let gpu_x = placed(&x, 2);
    b.glu_into(&gpu_x, &mut y_m).unwrap();
    b.glu_backward(&gpu_x, &placed(&g, 1), &mut dx_m).unwrap();
    let what = format!("{rows}×(2·{half}) seed={seed}");
    let ulps = 8.0 * f32::EPSILON;
    assert_close(
        &format!("glu {what}"),
        &b.download(&y_m).unwrap(),
        &y,
        &tolerance(&y, ulps, ulps),
    );
    assert_close(
        &format!("glu_backward {what}"),
        &b.download(&dx_m).unwrap(),
        &dx,
        &tolerance(&dx, ulps, ulps),
    );
    y_out.assert_untouched("glu");
    dx_out.assert_untouched("glu_backward");
    // An odd width has no halves; an output of the wrong width is refused; nothing is written.
    let odd = placed(&random_matrix(&mut r, rows, 2 * half + 1, 1.0), 0);
    let err = b.glu_into(&odd, &mut y_m).unwrap_err().to_string();
    assert!(err.contains("even number of columns"), "{err}");
    let mut wide = b.zeros(rows, half + 1).unwrap();
    assert!(b.glu_into(&gpu_x, &mut wide).is_err());
    assert!(
        CpuBackend
            .glu_into(&x, &mut Array2::zeros((rows, half + 1)))
            .is_err()
    );
    y_out.assert_untouched("glu after refusals");
}

fn check_add(rows: usize, cols: usize, seed: u64) {
    let mut r = rng(seed);
    let a = random_matrix(&mut r, rows, cols, 3.0);
    let c = random_matrix(&mut r, rows, cols, 3.0);
    let mut expected = Array2::zeros((rows, cols));
    cpu::add(a.view(), c.view(), &mut expected).unwrap();
    let out = common::guarded(rows, cols, 2);
    let mut m = out.matrix.clone();
    gpu()
        .add_into(&placed(&a, 1), &placed(&c, 3), &mut m)
        .unwrap();
    assert_eq!(gpu().download(&m).unwrap(), expected, "add {rows}×{cols}");
    out.assert_untouched("add");
}

/// The embedding's three kernels (lookup, table gradient, input gradient) on views inside
/// guarded buffers against the CPU twins: `vocab` rows, the index in column `column` of
/// `inputs`, about one row in eight naming no row (NaN, negative, past the end, a fraction),
/// which gives NaN forward and nothing to the table. The table gradient sums in the CPU's
/// order and the rest are copies: bit for bit.
fn check_embedding(
    rows: usize,
    (inputs, column): (usize, usize),
    vocab: usize,
    dim: usize,
    seed: u64,
) {
    let mut r = rng(seed);
    let mut x = random_matrix(&mut r, rows, inputs, 3.0);
    for row in 0..rows {
        let pick = r.random_range(0..vocab + vocab.div_ceil(7));
        x[[row, column]] = match pick.checked_sub(vocab) {
            None => pick as f32,
            Some(k) => [f32::NAN, -1.0, vocab as f32, 0.5][k % 4],
        };
    }
    let table = random_matrix(&mut r, vocab, dim, 2.0);
    let outputs = inputs - 1 + dim;
    let g = random_matrix(&mut r, rows, outputs, 1.0);
    let mut y = Array2::zeros((rows, outputs));
    cpu::embedding(x.view(), column, table.view(), &mut y).unwrap();
    let (mut dtable, mut dx) = (Array2::zeros((vocab, dim)), Array2::zeros((rows, inputs)));
    // Every other case with a padding row, which gets no gradient.
    let padding = (seed % 2 == 1).then_some(seed as usize % vocab);
    cpu::embedding_backward(
        x.view(),
        (column, padding),
        g.view(),
        Some(&mut dtable),
        Some(&mut dx),
    )
    .unwrap();
    if let Some(p) = padding {
        assert!(dtable.row(p).iter().all(|&v| v == 0.0));
    }

    let b = gpu();
    let (gpu_x, gpu_g) = (placed(&x, 3), placed(&g, 1));
    let outs = [(rows, outputs, 2), (vocab, dim, 3), (rows, inputs, 1)]
        .map(|(r, c, before)| common::guarded(r, c, before));
    let [y_out, dtable_out, dx_out] = &outs;
    let (mut ym, mut dtm, mut dxm) = (
        y_out.matrix.clone(),
        dtable_out.matrix.clone(),
        dx_out.matrix.clone(),
    );
    b.embedding_into(&gpu_x, column, &placed(&table, 2), &mut ym)
        .unwrap();
    b.embedding_backward(
        &gpu_x,
        (column, padding),
        &gpu_g,
        Some(&mut dtm),
        Some(&mut dxm),
    )
    .unwrap();
    let what = format!(
        "{rows}×{inputs} column {column}, table {vocab}×{dim}, padding {padding:?}, seed={seed}"
    );
    let bits = |m: &Array2<f32>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (name, got, want) in [
        ("embedding", &ym, &y),
        ("table gradient", &dtm, &dtable),
        ("input gradient", &dxm, &dx),
    ] {
        assert_eq!(bits(&b.download(got).unwrap()), bits(want), "{name} {what}");
    }
    y_out.assert_untouched("embedding");
    dtable_out.assert_untouched("embedding table gradient");
    dx_out.assert_untouched("embedding input gradient");
}

#[test]
fn embedding_at_awkward_shapes() {
    for (i, &rows) in AWKWARD.iter().enumerate() {
        let dim = AWKWARD[(i + 1) % AWKWARD.len()];
        let vocab = [1, 2, 7, 65, 300, 1000][i];
        check_embedding(rows, (3, i % 3), vocab, dim, i as u64);
        check_embedding(rows, (1, 0), vocab, dim.min(70), i as u64 + 50);
    }
}

/// The table gradient scans the batch once per table row where the table is no larger than
/// the batch (`table_grad`), and otherwise zeroes the table and sums each value from its
/// first row (`table_zero`, `table_grad_rows`: work in the batch's size, not the
/// vocabulary's). A batch of 40 rows into 10 000 values takes the second way, into 40 the
/// first; `check_embedding` holds both to the CPU's bits.
#[test]
fn the_table_gradient_scans_the_smaller_of_batch_and_table() {
    for (vocab, rows, entries) in [
        (10_000, 40, ["table_zero", "table_grad_rows"].as_slice()),
        (40, 40, ["table_grad"].as_slice()),
    ] {
        let b = common::own_gpu();
        let mut r = rng(vocab as u64);
        // Twelve values spread over the table, each named by a few rows.
        let mut x = Array2::zeros((rows, 1));
        for row in 0..rows {
            x[[row, 0]] = (r.random_range(0..vocab.min(12)) * (vocab / 12).max(1)) as f32;
        }
        let g = random_matrix(&mut r, rows, 5, 1.0);
        let mut want = Array2::zeros((vocab, 5));
        cpu::embedding_backward(x.view(), (0, None), g.view(), Some(&mut want), None).unwrap();
        let mut got = b.zeros(vocab, 5).unwrap();
        b.fill(&mut got, f32::NAN).unwrap();
        let (gx, gg) = (b.upload(x.view()).unwrap(), b.upload(g.view()).unwrap());
        b.embedding_backward(&gx, (0, None), &gg, Some(&mut got), None)
            .unwrap();
        let bits = |m: &Array2<f32>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&b.download(&got).unwrap()),
            bits(&want),
            "vocab {vocab}"
        );
        let mut built: Vec<_> = (b.context().built_kernels().into_iter())
            .filter(|k| k.shader == "embedding.wgsl")
            .map(|k| k.entry)
            .collect();
        built.sort_unstable();
        let mut entries = entries.to_vec();
        entries.sort_unstable();
        assert_eq!(built, entries, "vocab {vocab}, {rows} rows");
    }
}

#[test]
fn nonlinearities_at_awkward_shapes() {
    for (i, &rows) in AWKWARD.iter().enumerate() {
        let cols = AWKWARD[(i + 2) % AWKWARD.len()];
        let others = [
            Nonlinearity::LeakyRelu { slope: 0.2 },
            Nonlinearity::Elu { alpha: 0.5 },
            Nonlinearity::Softplus {
                beta: 2.0,
                threshold: 5.0,
            },
            Nonlinearity::Hardtanh {
                min_val: -2.0,
                max_val: 0.5,
            },
            Nonlinearity::Celu { alpha: 0.5 },
        ];
        for function in Nonlinearity::ALL.into_iter().chain(others) {
            check_nonlinearity(rows, cols, function, i as u64);
        }
    }
}

#[test]
fn layer_and_rms_norms_at_awkward_shapes() {
    for (i, &rows) in AWKWARD.iter().enumerate() {
        for &cols in &[1, 7, 64, 65, 300] {
            check_layer_norm(rows, cols, (i * 7 + cols) as u64, false);
            check_layer_norm(rows, cols, (i * 11 + cols) as u64, true);
        }
    }
}

#[test]
fn glu_at_awkward_shapes() {
    for (i, &rows) in AWKWARD.iter().enumerate() {
        for &half in &[1, 2, 63, 65, 150] {
            check_glu(rows, half, (i * 13 + half) as u64);
        }
    }
}

#[test]
fn dropout_at_awkward_shapes() {
    for (i, &rows) in AWKWARD.iter().enumerate() {
        for p in [0.0, 0.1, 0.5, 0.9] {
            check_dropout(rows, AWKWARD[(i + 1) % AWKWARD.len()], p, i as u64 + 11);
        }
    }
}

#[test]
fn add_at_awkward_shapes() {
    for (i, &rows) in AWKWARD.iter().enumerate() {
        check_add(rows, AWKWARD[(i + 3) % AWKWARD.len()], i as u64);
    }
}

#[test]
fn dropout_masks_follow_p_and_differ_by_step_and_seed() {
    let x = Array2::from_elem((100, 100), 1.0f32);
    let mask_of = |draw: DropoutDraw| {
        let (mut mask, mut y) = (Array2::zeros((100, 100)), Array2::zeros((100, 100)));
        cpu::dropout(draw, x.view(), &mut mask, &mut y).unwrap();
        mask
    };
    let base = mask_of(DropoutDraw::new(0.3, 7, 1));
    let dropped = base.iter().filter(|&&m| m == 0.0).count() as f64 / 1e4;
    // 10,000 Bernoulli(0.3) draws: σ ≈ 0.0046, so 0.27..0.33 is over 6σ.
    assert!(
        (0.27..0.33).contains(&dropped),
        "dropped fraction {dropped}"
    );
    let kept = base.iter().find(|&&m| m != 0.0).copied().unwrap();
    assert!(
        (kept - 1.0 / 0.7).abs() < 1e-6,
        "kept elements scaled by {kept}"
    );
    assert_eq!(
        base,
        mask_of(DropoutDraw::new(0.3, 7, 1)),
        "same step, same mask"
    );
    assert_ne!(
        base,
        mask_of(DropoutDraw::new(0.3, 7, 2)),
        "next step, new mask"
    );
    assert_ne!(
        base,
        mask_of(DropoutDraw::new(0.3, 8, 1)),
        "other seed, other mask"
    );
    let (mut mask, mut y) = (Array2::zeros((2, 2)), Array2::zeros((2, 2)));
    let err = cpu::dropout(
        DropoutDraw::new(1.0, 0, 0),
        x.slice(ndarray::s![..2, ..2]),
        &mut mask,
        &mut y,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("p = 1") && err.contains("[0, 1)"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn nonlinearities_match_cpu(rows in 1usize..80, cols in 1usize..80, f in 0usize..Nonlinearity::ALL.len(), seed: u64) {
        check_nonlinearity(rows, cols, Nonlinearity::ALL[f], seed);
    }

    #[test]
    fn batch_norm_matches_cpu(rows in 2usize..200, cols in 1usize..70, seed: u64) {
        check_batch_norm(rows, cols, seed);
    }

    #[test]
    fn layer_norm_matches_cpu(rows in 1usize..40, cols in 1usize..200, seed: u64) {
        check_layer_norm(rows, cols, seed, false);
    }

    #[test]
    fn glu_matches_cpu(rows in 1usize..80, half in 1usize..160, seed: u64) {
        check_glu(rows, half, seed);
    }

    #[test]
    fn rms_norm_matches_cpu(rows in 1usize..40, cols in 1usize..200, seed: u64) {
        check_layer_norm(rows, cols, seed, true);
    }

    #[test]
    fn embedding_matches_cpu(rows in 1usize..120, inputs in 1usize..6, column in 0usize..6, vocab in 1usize..200, dim in 1usize..140, seed: u64) {
        check_embedding(rows, (inputs, column % inputs), vocab, dim, seed);
    }

    #[test]
    fn dropout_matches_cpu(rows in 1usize..60, cols in 1usize..60, p in 0.0f32..0.95, seed: u64) {
        check_dropout(rows, cols, p, seed);
    }
}
