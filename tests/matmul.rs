//! Differential tests of the GPU matmul against the CPU reference, and of the reference
//! against a plain triple loop.

mod common;

use common::{CANARY, assert_close, gpu, guarded, matmul_tolerance, random_matrix, rng};
use ndarray::Array2;
use proptest::prelude::*;
use steepest::backend::cpu;
use steepest::backend::gpu::{Tile, Tiling, matmul_tiled};
use steepest::{Activation, Arena, Backend, CpuBackend, GpuBuffer, GpuMatrix, Matmul, Matrix};

/// One GPU-vs-CPU comparison with the tiling chosen for the shape.
fn check(m: usize, n: usize, k: usize, spec: Matmul, with_bias: bool, seed: u64) {
    check_tiled(m, n, k, spec, None, with_bias, seed);
}

/// Every tiling a test forces: each tile whole, and each tile with K cut into 2 and 5 slices
/// (fewer where K is short).
fn tilings(k: usize) -> Vec<Tiling> {
    Tile::ALL
        .into_iter()
        .flat_map(|tile| {
            [1, 2, 5]
                .into_iter()
                .map(move |splits| Tiling::split(tile, k, splits))
        })
        .collect()
}

/// One GPU-vs-CPU comparison: fresh data from `seed`, the GPU output poisoned with NaN inside
/// and canaries around it (checked afterwards), with `tiling` (or the shape's own).
fn check_tiled(
    m: usize,
    n: usize,
    k: usize,
    spec: Matmul,
    tiling: Option<Tiling>,
    with_bias: bool,
    seed: u64,
) {
    let mut rng = rng(seed);
    // Magnitudes vary per case so the tolerance's scaling by the operands is exercised.
    let scale_a = [0.01, 1.0, 30.0][(seed % 3) as usize];
    let scale_b = [1.0, 0.1, 4.0][(seed / 3 % 3) as usize];
    let a_shape = if spec.trans_a { (k, m) } else { (m, k) };
    let b_shape = if spec.trans_b { (n, k) } else { (k, n) };
    let a = random_matrix(&mut rng, a_shape.0, a_shape.1, scale_a);
    let b = random_matrix(&mut rng, b_shape.0, b_shape.1, scale_b);
    let bias = with_bias.then(|| random_matrix(&mut rng, 1, n, 2.0));

    let mut expected = Array2::zeros((m, n));
    cpu::matmul(
        spec,
        a.view(),
        b.view(),
        bias.as_ref().map(|v| v.view()),
        &mut expected,
    )
    .unwrap();

    let gpu = gpu();
    let (ga, gb) = (gpu.upload(a.view()).unwrap(), gpu.upload(b.view()).unwrap());
    let gbias = bias.as_ref().map(|v| gpu.upload(v.view()).unwrap());
    let out = guarded(m, n, (seed % 67) as usize);
    matmul_tiled(
        gpu.context(),
        spec,
        tiling,
        &ga,
        &gb,
        gbias.as_ref(),
        &out.matrix,
    )
    .unwrap();
    let actual = gpu.download(&out.matrix).unwrap();

    let abs_a = if spec.trans_a {
        a.t().mapv(f32::abs)
    } else {
        a.mapv(f32::abs)
    };
    let abs_b = if spec.trans_b {
        b.t().mapv(f32::abs)
    } else {
        b.mapv(f32::abs)
    };
    let tol = matmul_tolerance(
        abs_a.view(),
        abs_b.view(),
        bias.as_ref().map(|v| v.view()),
        k,
        spec.activation,
    );
    let what = format!("{m}×{n}×{k} {spec:?} {tiling:?} bias={with_bias} seed={seed}");
    assert_close(&what, &actual, &expected, &tol);
    out.assert_untouched(&what);
}

fn tiling_strategy() -> impl Strategy<Value = (usize, usize)> {
    (0..Tile::ALL.len(), 1usize..=6)
}

fn spec_strategy() -> impl Strategy<Value = Matmul> {
    (any::<bool>(), any::<bool>(), 0..Activation::ALL.len()).prop_map(|(trans_a, trans_b, act)| {
        Matmul {
            trans_a,
            trans_b,
            activation: Activation::ALL[act],
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn gpu_matches_cpu_on_random_shapes(
        m in 1usize..=300, n in 1usize..=300, k in 1usize..=300,
        spec in spec_strategy(), with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        check(m, n, k, spec, with_bias, seed);
    }

    #[test]
    fn every_tiling_matches_cpu_on_random_shapes(
        m in 1usize..=300, n in 1usize..=300, k in 1usize..=300,
        spec in spec_strategy(), (tile, splits) in tiling_strategy(),
        with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let tiling = Tiling::split(Tile::ALL[tile], k, splits);
        check_tiled(m, n, k, spec, Some(tiling), with_bias, seed);
    }
}

#[test]
fn every_tiling_matches_cpu_on_awkward_shapes() {
    // Edges of every tile size (32, 64, 128) and K around the 8-wide step, all transpose forms,
    // with the fused bias and each activation.
    let shapes = [
        (1, 1, 1),
        (3, 7, 9),
        (33, 65, 17),
        (65, 129, 63),
        (129, 31, 100),
    ];
    let specs = [Matmul::nn(), Matmul::nt(), Matmul::tn(), Matmul::tt()];
    let mut case = 0u64;
    for (m, n, k) in shapes {
        for tiling in tilings(k) {
            let spec = specs[case as usize % 4].activation(Activation::ALL[case as usize % 4]);
            check_tiled(
                m,
                n,
                k,
                spec,
                Some(tiling),
                !case.is_multiple_of(3),
                500 + case,
            );
            case += 1;
        }
    }
}

#[test]
fn the_mlps_own_shapes_use_their_chosen_tilings_correctly() {
    // The bench models' forward and backward products (scaled down where they are large),
    // with the tiling the library picks for each.
    for (i, (m, n, k, spec)) in [
        (128, 256, 784, Matmul::nt().activation(Activation::Relu)),
        (256, 784, 128, Matmul::tn()),
        (128, 784, 256, Matmul::nn()),
        (64, 2, 64, Matmul::nt()),
        (64, 64, 2, Matmul::nt().activation(Activation::Relu)),
    ]
    .into_iter()
    .enumerate()
    {
        check(m, n, k, spec, spec.trans_b, 700 + i as u64);
    }
}

#[test]
fn a_tiling_that_does_not_cover_k_is_refused() {
    let gpu = gpu();
    let a = gpu.upload(Array2::<f32>::ones((4, 40)).view()).unwrap();
    let b = gpu.upload(Array2::<f32>::ones((40, 4)).view()).unwrap();
    let out = guarded(4, 4, 3);
    for bad in [
        Tiling {
            tile: Tile::Small,
            splits: 2,
            k_per_split: 8,
        }, // covers 16 of 40
        Tiling {
            tile: Tile::Small,
            splits: 3,
            k_per_split: 36,
        }, // an empty third slice
        Tiling {
            tile: Tile::Small,
            splits: 2,
            k_per_split: 20,
        }, // not a multiple of 8
        Tiling {
            tile: Tile::Small,
            splits: 0,
            k_per_split: 40,
        },
    ] {
        let err = matmul_tiled(
            gpu.context(),
            Matmul::nn(),
            Some(bad),
            &a,
            &b,
            None,
            &out.matrix,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("matmul") && err.contains("K = 40"), "{err}");
    }
    let rows = gpu.download(&out.matrix).unwrap();
    assert!(rows.iter().all(|v| v.is_nan()), "a refused call wrote");
    out.assert_untouched("refused tilings");
}

/// An output that is one tensor of an arena: its neighbours (and the zero gaps between
/// tensors) must come through every tiling untouched.
#[test]
fn matmul_into_an_arena_view_leaves_its_neighbours_alone() {
    let gpu = gpu();
    let ctx = gpu.context();
    let mut r = rng(41);
    let (m, n, k) = (37, 70, 45);
    let shapes = [(3, 5), (m, n), (2, 9)];
    let mut arena = gpu.arena("guarded arena", &shapes).unwrap();
    let total: usize = shapes.iter().map(|(r, c)| r * c).sum();
    gpu.write_arena(&mut arena, &vec![CANARY; total]).unwrap();
    let before = arena.buffer().read(ctx).unwrap();
    let a = random_matrix(&mut r, m, k, 1.0);
    let b = random_matrix(&mut r, n, k, 1.0);
    let (ga, gb) = (gpu.upload(a.view()).unwrap(), gpu.upload(b.view()).unwrap());
    let view = arena.tensors()[1].clone();
    let start = view.offset();
    for tiling in tilings(k) {
        matmul_tiled(ctx, Matmul::nt(), Some(tiling), &ga, &gb, None, &view).unwrap();
        let after = arena.buffer().read(ctx).unwrap();
        for (i, (x, y)) in before.iter().zip(&after).enumerate() {
            if i < start || i >= start + m * n {
                assert_eq!(x.to_bits(), y.to_bits(), "{tiling:?} wrote element {i}");
            }
        }
    }
}

#[test]
fn gpu_matches_cpu_on_named_sizes() {
    // Cubes on either side of every power-of-two tile edge, for all transpose forms.
    for (i, size) in [1, 3, 7, 63, 65, 257].into_iter().enumerate() {
        for (j, spec) in [Matmul::nn(), Matmul::nt(), Matmul::tn(), Matmul::tt()]
            .into_iter()
            .enumerate()
        {
            check(size, size, size, spec, i % 2 == 0, (i * 4 + j) as u64);
        }
    }
}

#[test]
fn gpu_matches_cpu_when_k_dwarfs_m_and_n() {
    for (j, spec) in [Matmul::nn(), Matmul::nt(), Matmul::tn()]
        .into_iter()
        .enumerate()
    {
        check(3, 5, 20_001, spec, true, 100 + j as u64);
        check(
            65,
            2,
            4_099,
            spec.activation(Activation::Tanh),
            false,
            200 + j as u64,
        );
    }
}

#[test]
fn every_activation_and_bias_is_fused() {
    for (i, activation) in Activation::ALL.into_iter().enumerate() {
        check(
            130,
            129,
            33,
            Matmul::nn().activation(activation),
            true,
            300 + i as u64,
        );
        check(
            17,
            200,
            9,
            Matmul::nt().activation(activation),
            true,
            310 + i as u64,
        );
    }
}

/// Views that start at an element offset: multiples of 4 take the vec4 path, others the scalar.
#[test]
fn gpu_matmul_reads_and_writes_views_at_offsets() {
    let gpu = gpu();
    let ctx = gpu.context();
    let mut r = rng(7);
    for (offset, (m, n, k)) in [
        (0usize, (64, 68, 36)),
        (4, (64, 68, 36)),
        (3, (33, 9, 70)),
        (1, (5, 130, 12)),
    ] {
        let a = random_matrix(&mut r, m, k, 1.0);
        let b = random_matrix(&mut r, k, n, 1.0);
        let bias = random_matrix(&mut r, 1, n, 1.0);
        let mut expected = Array2::zeros((m, n));
        cpu::matmul(
            Matmul::nn(),
            a.view(),
            b.view(),
            Some(bias.view()),
            &mut expected,
        )
        .unwrap();

        // Pad each operand with `offset` garbage values in front and some behind.
        let padded = |x: &Array2<f32>, label: &str| {
            let mut data = vec![1e30f32; offset];
            data.extend(x.iter());
            data.extend([1e30f32; 5]);
            let buffer = GpuBuffer::from_slice(ctx, label, &data).unwrap();
            GpuMatrix::view(buffer, offset, x.nrows(), x.ncols()).unwrap()
        };
        let (ga, gb, gbias) = (padded(&a, "a"), padded(&b, "b"), padded(&bias, "bias"));
        let out_buffer =
            GpuBuffer::from_slice(ctx, "out", &vec![f32::NAN; offset + m * n + 3]).unwrap();
        let mut out = GpuMatrix::view(out_buffer.clone(), offset, m, n).unwrap();
        gpu.matmul_into(Matmul::nn(), &ga, &gb, Some(&gbias), &mut out)
            .unwrap();

        let all = out_buffer.read(ctx).unwrap();
        assert!(
            all[..offset].iter().all(|v| v.is_nan()),
            "offset {offset}: wrote before the view"
        );
        assert!(
            all[offset + m * n..].iter().all(|v| v.is_nan()),
            "offset {offset}: wrote past the view"
        );
        let actual = gpu.download(&out).unwrap();
        let tol = common::matmul_tolerance(
            a.mapv(f32::abs).view(),
            b.mapv(f32::abs).view(),
            Some(bias.view()),
            k,
            Activation::Identity,
        );
        assert_close(&format!("offset {offset}"), &actual, &expected, &tol);
    }
}

/// The oracle itself, against the definition written out as loops in f64.
#[test]
fn cpu_matmul_matches_the_definition() {
    let mut r = rng(11);
    for (m, n, k) in [(1, 1, 1), (3, 5, 7), (8, 2, 9)] {
        for spec in [Matmul::nn(), Matmul::nt(), Matmul::tn(), Matmul::tt()] {
            for activation in Activation::ALL {
                let spec = spec.activation(activation);
                let a = random_matrix(
                    &mut r,
                    if spec.trans_a { k } else { m },
                    if spec.trans_a { m } else { k },
                    2.0,
                );
                let b = random_matrix(
                    &mut r,
                    if spec.trans_b { n } else { k },
                    if spec.trans_b { k } else { n },
                    2.0,
                );
                let bias = random_matrix(&mut r, 1, n, 2.0);
                let mut out = Array2::from_elem((m, n), f32::NAN);
                cpu::matmul(spec, a.view(), b.view(), Some(bias.view()), &mut out).unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let mut sum = f64::from(bias[[0, j]]);
                        for p in 0..k {
                            let x = if spec.trans_a { a[[p, i]] } else { a[[i, p]] };
                            let y = if spec.trans_b { b[[j, p]] } else { b[[p, j]] };
                            sum += f64::from(x) * f64::from(y);
                        }
                        let want = match activation {
                            Activation::Identity => sum,
                            Activation::Relu => sum.max(0.0),
                            Activation::Sigmoid => 1.0 / (1.0 + (-sum).exp()),
                            Activation::Tanh => sum.tanh(),
                        };
                        let got = f64::from(out[[i, j]]);
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "{spec:?} ({i},{j}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn sigmoid_and_tanh_stay_finite_for_huge_inputs() {
    let gpu = gpu();
    let a = ndarray::array![[1.0f32], [-1.0], [0.0]];
    let b = ndarray::array![[1e6f32, -1e6, 100.0, -100.0, 1e-4]];
    for activation in [Activation::Sigmoid, Activation::Tanh] {
        let spec = Matmul::nn().activation(activation);
        let out = gpu
            .matmul(
                spec,
                &gpu.upload(a.view()).unwrap(),
                &gpu.upload(b.view()).unwrap(),
                None,
            )
            .unwrap();
        let actual = gpu.download(&out).unwrap();
        let expected = CpuBackend.matmul(spec, &a, &b, None).unwrap();
        assert!(
            actual.iter().all(|v| v.is_finite()),
            "{activation:?}: {actual}"
        );
        assert_close(
            &format!("{activation:?}"),
            &actual,
            &expected,
            &Array2::from_elem(expected.dim(), 2e-6),
        );
    }
}

#[test]
fn both_backends_reject_mismatched_shapes_alike() {
    let gpu = gpu();
    let a = Array2::<f32>::zeros((3, 4));
    let b = Array2::<f32>::zeros((5, 6));
    let cpu_err = CpuBackend
        .matmul(Matmul::nn(), &a, &b, None)
        .unwrap_err()
        .to_string();
    let gpu_err = gpu
        .matmul(
            Matmul::nn(),
            &gpu.upload(a.view()).unwrap(),
            &gpu.upload(b.view()).unwrap(),
            None,
        )
        .unwrap_err()
        .to_string();
    assert_eq!(cpu_err, gpu_err);
    assert!(
        cpu_err.contains("matmul") && cpu_err.contains("3×4") && cpu_err.contains("5×6"),
        "{cpu_err}"
    );

    // A bias that is not 1×N, and an output of the wrong shape.
    let (x, w) = (Array2::<f32>::zeros((2, 3)), Array2::<f32>::zeros((3, 4)));
    let bad_bias = Array2::<f32>::zeros((4, 1));
    let err = CpuBackend
        .matmul(Matmul::nn(), &x, &w, Some(&bad_bias))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bias is 4×1, expected 1×4"), "{err}");
    let mut wrong_out = gpu.zeros(3, 3).unwrap();
    let err = gpu
        .matmul_into(
            Matmul::nn(),
            &gpu.upload(x.view()).unwrap(),
            &gpu.upload(w.view()).unwrap(),
            None,
            &mut wrong_out,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("output is 3×3, expected 2×4"), "{err}");
    assert_eq!(wrong_out.shape(), (3, 3));
}

#[test]
fn output_may_not_alias_an_input() {
    let gpu = gpu();
    let mut a = gpu.upload(Array2::<f32>::ones((4, 4)).view()).unwrap();
    let b = gpu.upload(Array2::<f32>::ones((4, 4)).view()).unwrap();
    let alias = a.clone();
    let err = gpu
        .matmul_into(Matmul::nn(), &alias, &b, None, &mut a)
        .unwrap_err();
    assert!(err.to_string().contains("is also an input"), "{err}");
    assert_eq!(
        gpu.download(&a).unwrap(),
        Array2::<f32>::ones((4, 4)),
        "the input was changed"
    );
}

/// The backward pass's fused `(δ · W) ⊙ act'(output)` against the CPU twin (a matmul, then
/// the activation's backward), for every activation, with and without a K split.
#[test]
fn fused_activation_backward_matches_cpu() {
    let gpu = gpu();
    let mut r = rng(91);
    let mut case = 0u64;
    for (m, n, k) in [(1, 1, 1), (7, 65, 33), (64, 130, 9), (5, 40, 900)] {
        for activation in Activation::ALL {
            let delta = random_matrix(&mut r, m, k, 1.0);
            let weight = random_matrix(&mut r, k, n, 1.0);
            let pre = random_matrix(&mut r, m, n, 3.0);
            let output = pre.mapv(|x| activation.apply(x));
            let mut expected = Array2::zeros((m, n));
            CpuBackend
                .matmul_activation_backward_into(
                    Matmul::nn(),
                    &delta,
                    &weight,
                    activation,
                    &output,
                    &mut expected,
                )
                .unwrap();
            let out = guarded(m, n, (case % 7) as usize);
            gpu.matmul_activation_backward_into(
                Matmul::nn(),
                &gpu.upload(delta.view()).unwrap(),
                &gpu.upload(weight.view()).unwrap(),
                activation,
                &gpu.upload(output.view()).unwrap(),
                &mut out.matrix.clone(),
            )
            .unwrap();
            let actual = gpu.download(&out.matrix).unwrap();
            // |act'| ≤ 1 for every activation, so the product's tolerance bounds the result's.
            let tol = matmul_tolerance(
                delta.mapv(f32::abs).view(),
                weight.mapv(f32::abs).view(),
                None,
                k,
                Activation::Identity,
            ) + 1e-7;
            let what = format!("{m}×{n}×{k} {activation:?}");
            assert_close(&what, &actual, &expected, &tol);
            out.assert_untouched(&what);
            case += 1;
        }
    }
    // The product's own activation must be identity, and the output may not alias.
    let x = gpu.upload(Array2::<f32>::ones((2, 2)).view()).unwrap();
    let mut y = gpu.zeros(2, 2).unwrap();
    assert!(
        gpu.matmul_activation_backward_into(
            Matmul::nn().activation(Activation::Relu),
            &x,
            &x,
            Activation::Relu,
            &x,
            &mut y
        )
        .is_err()
    );
    let mut alias = y.clone();
    assert!(
        gpu.matmul_activation_backward_into(Matmul::nn(), &x, &x, Activation::Tanh, &y, &mut alias)
            .is_err()
    );
}
