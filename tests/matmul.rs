//! Differential tests of the GPU matmul against the CPU reference over random shapes and
//! every tiling (named cases are in `matmul_cases.rs`).

mod common;

use common::matmul::{
    check, check_linear_backward, check_linear_backward_frozen_weight, check_linear_chain,
    check_linear_grads, check_tiled, tilings,
};
use common::{CANARY, gpu, guarded, own_gpu, random_matrix, rng};
use ndarray::Array2;
use proptest::prelude::*;
use steepest::backend::gpu::{GpuBackend, GpuMatrix, Tile, Tiling, matmul_tiled};
use steepest::{Activation, Arena, Backend, Matmul};

fn tiling_strategy() -> impl Strategy<Value = (usize, usize, bool)> {
    (0..Tile::ALL.len(), 1usize..=6, any::<bool>())
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
    fn linear_grads_match_cpu_and_the_separate_ops_on_random_shapes(
        rows in 1usize..=600, outputs in 1usize..=300, inputs in 1usize..=300,
        seed in any::<u64>(),
    ) {
        check_linear_grads(rows, outputs, inputs, None, seed);
    }

    #[test]
    fn linear_backward_matches_cpu_and_the_separate_ops_on_random_shapes(
        rows in 1usize..=160, outputs in 1usize..=300, inputs in 1usize..=100,
        below in proptest::option::of(0..Activation::ALL.len()), seed in any::<u64>(),
    ) {
        check_linear_backward(rows, outputs, inputs, below.map(|a| Activation::ALL[a]), seed);
    }

    #[test]
    fn linear_chain_matches_cpu_and_the_separate_products_on_random_shapes(
        rows in 1usize..=200,
        widths in proptest::collection::vec(1usize..=300, 3..=6),
        activations in proptest::collection::vec(0..Activation::ALL.len(), 5),
        seed in any::<u64>(),
    ) {
        let activations: Vec<Activation> =
            activations.iter().map(|&a| Activation::ALL[a]).collect();
        check_linear_chain(rows, &widths, &activations[..widths.len() - 1], seed);
    }

    #[test]
    fn every_tiling_matches_cpu_on_random_shapes(
        m in 1usize..=300, n in 1usize..=300, k in 1usize..=300,
        spec in spec_strategy(), (tile, splits, pretranspose) in tiling_strategy(),
        with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let tiling = Tiling::split(Tile::ALL[tile], k, splits);
        let tiling = Tiling { pretranspose: pretranspose && tiling.splits == 1, ..tiling };
        check_tiled(m, n, k, spec, Some(tiling), with_bias, seed);
    }
}

/// The bias gradient summed in the weight gradient's dispatch, with every tiling (each tile
/// and K split), at the edges of the tiles, of a workgroup's invocations, of the column sum's
/// 64-row blocks and of the fused path's 512 rows.
#[test]
fn every_tiling_of_linear_grads_matches_on_awkward_shapes() {
    let shapes = [
        (1, 1, 1),
        (3, 7, 9),
        (64, 65, 17),
        (65, 257, 63),
        (128, 33, 130),
        (300, 9, 17),
        (512, 65, 5),
        (513, 5, 3),
    ];
    let mut case = 0u64;
    for (rows, outputs, inputs) in shapes {
        for tiling in tilings(rows) {
            check_linear_grads(rows, outputs, inputs, Some(tiling), 900 + case);
            case += 1;
        }
    }
}

/// A linear layer's backward pass in one kernel (and, past its limits of 128 rows, 256 outputs
/// or a product's size, as separate ops) at the edges of a workgroup, of K's 8-wide padding, of
/// the column sum's blocks, with every activation below and none.
#[test]
fn linear_backward_matches_on_awkward_shapes() {
    let shapes = [
        (1, 1, 1),
        (3, 7, 9),
        (8, 64, 65),
        (64, 65, 17),
        (65, 9, 63),
        (128, 256, 64),
        (128, 257, 3),
        (129, 5, 3),
        (100, 200, 120),
    ];
    let mut case = 0u64;
    for (rows, outputs, inputs) in shapes {
        for below in [None].into_iter().chain(Activation::ALL.map(Some)) {
            check_linear_backward(rows, outputs, inputs, below, 1300 + case);
            case += 1;
        }
    }
}

/// A linear layer's backward pass with its weight frozen, its bias trained (BitFit) or frozen
/// too, on both sides of the one-kernel limits (128 rows, 256 outputs), with no layer below
/// and with two activations.
#[test]
fn linear_backward_with_a_frozen_weight_matches_on_awkward_shapes() {
    let shapes = [
        (1, 1, 1),
        (3, 7, 9),
        (64, 65, 17),
        (128, 256, 64),
        (128, 257, 3),
        (129, 5, 3),
        (100, 300, 120),
    ];
    let mut case = 0u64;
    for shape in shapes {
        for below in [None, Some(Activation::Relu), Some(Activation::Tanh)] {
            for bias_trained in [true, false] {
                check_linear_backward_frozen_weight(shape, below, bias_trained, 1700 + case);
                case += 1;
            }
        }
    }
}

/// Linear chains at the edges of the one kernel: a workgroup's 64 invocations and its rows,
/// widths around 4 (whole vec4s or not) and K's 8-wide padding, the 256-wide and 2²¹ limits
/// (links past them run as products, between fused ones), chains longer than one dispatch
/// takes, and every activation.
#[test]
fn linear_chain_matches_on_awkward_shapes() {
    let cases: [(usize, &[usize]); 10] = [
        (1, &[1, 1, 1]),
        (64, &[2, 64, 64, 2]),
        (3, &[7, 9, 5]),
        (65, &[17, 65, 63, 3]),
        (129, &[8, 16, 4, 12]),
        (32, &[256, 256, 256]),
        (33, &[256, 256, 256]),
        (5, &[3, 257, 5, 6, 2]),
        (7, &[4, 8, 12, 16, 20, 24, 28]),
        (300, &[64, 64, 64, 1]),
    ];
    for (case, (rows, widths)) in cases.into_iter().enumerate() {
        let activations: Vec<Activation> = (0..widths.len() - 1)
            .map(|l| Activation::ALL[(case + l) % Activation::ALL.len()])
            .collect();
        check_linear_chain(rows, widths, &activations, 1700 + case as u64);
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

/// The bits of `spec` over `operands` (a, b, bias) with `tiling` whole and then transposed
/// first, and the dispatches the transposed-first product recorded.
fn direct_and_staged_bits(
    gpu: &GpuBackend,
    spec: Matmul,
    tiling: Tiling,
    (a, b, bias): (&GpuMatrix, &GpuMatrix, Option<&GpuMatrix>),
    (m, n): (usize, usize),
) -> ([Array2<u32>; 2], u64) {
    let ctx = gpu.context();
    let staged = Tiling {
        pretranspose: true,
        ..tiling
    };
    let mut dispatches = 0;
    let bits = [tiling, staged].map(|tiling| {
        let out = gpu.zeros(m, n).unwrap();
        ctx.flush().unwrap();
        let before = ctx.counters().dispatches;
        matmul_tiled(ctx, spec, Some(tiling), a, b, bias, &out).unwrap();
        dispatches = ctx.counters().dispatches - before;
        gpu.download(&out).unwrap().mapv(f32::to_bits)
    });
    (bits, dispatches)
}

/// Transposing the K-contiguous operands first changes where the kernel reads them, not what
/// it sums or in what order: the products are bit for bit the same, in all four forms.
#[test]
fn a_pretransposed_product_is_the_same_bits() {
    let gpu = gpu();
    let mut r = rng(77);
    for (i, (m, n, k)) in [(37, 70, 45), (128, 64, 300), (5, 257, 9)]
        .into_iter()
        .enumerate()
    {
        for (j, spec) in [Matmul::nn(), Matmul::nt(), Matmul::tn(), Matmul::tt()]
            .into_iter()
            .enumerate()
        {
            let spec = spec.activation(Activation::ALL[(i + j) % Activation::ALL.len()]);
            let a_shape = if spec.trans_a { (k, m) } else { (m, k) };
            let b_shape = if spec.trans_b { (n, k) } else { (k, n) };
            let a = gpu
                .upload(random_matrix(&mut r, a_shape.0, a_shape.1, 2.0).view())
                .unwrap();
            let b = gpu
                .upload(random_matrix(&mut r, b_shape.0, b_shape.1, 2.0).view())
                .unwrap();
            let bias = gpu.upload(random_matrix(&mut r, 1, n, 1.0).view()).unwrap();
            for tile in Tile::ALL {
                let operands = (&a, &b, Some(&bias));
                let ([direct, staged], _) =
                    direct_and_staged_bits(gpu, spec, Tiling::whole(tile, k), operands, (m, n));
                assert_eq!(direct, staged, "{m}×{n}×{k} {spec:?} {tile:?}");
            }
        }
    }
}

/// An NT product transposed first moves both operands in one dispatch where both move whole
/// vec4s (`transpose_vec4_pair`: two dispatches in all, with the product), and one at a time
/// where either cannot (three); the pair gives the bits of two separate transposes.
#[test]
fn an_nt_product_transposes_both_operands_in_one_dispatch() {
    // A context of its own: the shared one counts other tests' dispatches too.
    let gpu = own_gpu();
    let ctx = gpu.context();
    let mut r = rng(78);
    for ((m, n, k), dispatches) in [((128, 64, 300), 2), ((36, 68, 45), 3), ((8, 12, 16), 2)] {
        let a = gpu.upload(random_matrix(&mut r, m, k, 2.0).view()).unwrap();
        let b = gpu.upload(random_matrix(&mut r, n, k, 2.0).view()).unwrap();
        let tiling = Tiling::whole(Tile::Small, k);
        let ([direct, staged], ran) =
            direct_and_staged_bits(&gpu, Matmul::nt(), tiling, (&a, &b, None), (m, n));
        assert_eq!(ran, dispatches, "{m}×{n}×{k}: dispatches");
        assert_eq!(direct, staged, "{m}×{n}×{k}");
    }
    assert!(
        ctx.built_kernels()
            .iter()
            .any(|k| k.shader == "transpose.wgsl" && k.entry == "transpose_vec4_pair"),
        "no transpose_vec4_pair pipeline was built"
    );
}

/// A product whose tiles its output fills exactly, with whole K steps and aligned operands, runs
/// the kernel compiled without edge checks (`ALL_INSIDE`): it must give the bits of the kernel
/// with them (the same operands placed one element off, so their rows load element by
/// element), stay close to the CPU and write nothing outside its output. Every tile, every
/// tiling of it (whole, split, pretransposed), all four forms, the fused epilogue and the
/// fused activation derivative.
#[test]
fn a_product_that_fills_its_tiles_gets_the_bits_of_the_edge_checked_kernel() {
    let gpu = gpu();
    let ctx = gpu.context();
    let mut r = rng(91);
    let forms = [Matmul::nn(), Matmul::nt(), Matmul::tn(), Matmul::tt()];
    let mut case = 0usize;
    for tile in Tile::ALL {
        let (m, n, k) = (2 * tile.rows(), tile.cols(), 64);
        for tiling in tilings(k) {
            let spec = forms[case % 4].activation(Activation::ALL[case % Activation::ALL.len()]);
            let with_bias = case % 3 != 2;
            case += 1;
            let a_shape = if spec.trans_a { (k, m) } else { (m, k) };
            let b_shape = if spec.trans_b { (n, k) } else { (k, n) };
            let a = random_matrix(&mut r, a_shape.0, a_shape.1, 1.0);
            let b = random_matrix(&mut r, b_shape.0, b_shape.1, 1.0);
            let bias = random_matrix(&mut r, 1, n, 1.0);
            let mut expected = Array2::zeros((m, n));
            steepest::backend::cpu::matmul(
                spec,
                a.view(),
                b.view(),
                with_bias.then(|| bias.view()),
                &mut expected,
            )
            .unwrap();
            let tol = common::matmul_tolerance(
                (if spec.trans_a {
                    a.t().mapv(f32::abs)
                } else {
                    a.mapv(f32::abs)
                })
                .view(),
                (if spec.trans_b {
                    b.t().mapv(f32::abs)
                } else {
                    b.mapv(f32::abs)
                })
                .view(),
                with_bias.then(|| bias.view()),
                k,
                spec.activation,
            );
            let gbias = gpu.upload(bias.view()).unwrap();
            let mut results = Vec::new();
            for offset in [0, 1] {
                let (ga, gb) = (common::placed(&a, offset), common::placed(&b, offset));
                let out = guarded(m, n, 4);
                let what = format!("{m}×{n}×{k} {spec:?} {tiling:?} operands at {offset}");
                matmul_tiled(
                    ctx,
                    spec,
                    Some(tiling),
                    &ga,
                    &gb,
                    with_bias.then_some(&gbias),
                    &out.matrix,
                )
                .unwrap();
                out.assert_untouched(&what);
                let actual = gpu.download(&out.matrix).unwrap();
                common::assert_close(&what, &actual, &expected, &tol);
                results.push(actual);
            }
            assert!(
                common::bit_identical(results[0].iter(), results[1].iter()),
                "{m}×{n}×{k} {spec:?} {tiling:?}: other bits without edge checks"
            );
        }
        // The fused activation derivative (a layer's input gradient), with the shape's own
        // tiling (a tile the output fills whichever it is).
        let (a, b) = (
            random_matrix(&mut r, m, k, 1.0),
            random_matrix(&mut r, k, n, 1.0),
        );
        let output = common::placed(&random_matrix(&mut r, m, n, 1.0).mapv(|x| x.max(0.0)), 0);
        let mut results = Vec::new();
        for offset in [0, 1] {
            let out = guarded(m, n, 0);
            steepest::backend::gpu::matmul_activation_backward(
                ctx,
                Matmul::nn(),
                &common::placed(&a, offset),
                &common::placed(&b, offset),
                Activation::Relu,
                &output,
                &out.matrix,
            )
            .unwrap();
            out.assert_untouched(&format!("{m}×{n}×{k} derivative, operands at {offset}"));
            results.push(gpu.download(&out.matrix).unwrap());
        }
        assert!(
            common::bit_identical(results[0].iter(), results[1].iter()),
            "{m}×{n}×{k}: the fused derivative's bits differ without edge checks"
        );
        // The weight gradient with the bias gradient summed in its dispatch, every tiling.
        for (i, tiling) in tilings(k).into_iter().enumerate() {
            check_linear_grads(k, m, n, Some(tiling), 950 + 10 * case as u64 + i as u64);
        }
    }
    // The aligned placements did run the edge-free kernel, for every tile.
    let value = |kernel: &steepest::backend::gpu::BuiltKernel, name: &str| {
        kernel.override_value(name).unwrap_or(f64::NAN)
    };
    let edge_free_tiles: Vec<(f64, f64)> = ctx
        .built_kernels()
        .iter()
        .filter(|kernel| kernel.entry == "matmul" && value(kernel, "ALL_INSIDE") == 1.0)
        .map(|kernel| {
            (
                4.0 * value(kernel, "WG_Y") * value(kernel, "GROUPS_M"),
                4.0 * value(kernel, "WG_X") * value(kernel, "GROUPS_N"),
            )
        })
        .collect();
    for tile in Tile::ALL {
        assert!(
            edge_free_tiles.contains(&(tile.rows() as f64, tile.cols() as f64)),
            "no edge-free pipeline was built for {tile:?}: {edge_free_tiles:?}"
        );
    }
}

/// Only the operands a product's form stores K-contiguous are transposed: a TN product asked
/// to pretranspose takes no scratch, an NN one takes room for op(A) and a TT one for op(B).
#[test]
fn pretransposing_takes_scratch_only_for_the_operands_it_transposes() {
    let g = common::own_gpu();
    let ctx = g.context();
    let (m, n, k) = (40, 24, 16);
    let mut r = rng(5);
    let mut upload = |rows, cols| {
        g.upload(random_matrix(&mut r, rows, cols, 1.0).view())
            .unwrap()
    };
    let (a_mk, a_km, b_kn, b_nk) = (upload(m, k), upload(k, m), upload(k, n), upload(n, k));
    let out = g.zeros(m, n).unwrap();
    let tiling = Tiling {
        pretranspose: true,
        ..Tiling::whole(Tile::Small, k)
    };
    let before = ctx.counters().buffers_created;
    matmul_tiled(ctx, Matmul::tn(), Some(tiling), &a_km, &b_kn, None, &out).unwrap();
    assert_eq!(ctx.counters().buffers_created, before, "TN took scratch");
    matmul_tiled(ctx, Matmul::nn(), Some(tiling), &a_mk, &b_kn, None, &out).unwrap();
    assert_eq!(
        ctx.counters().buffers_created,
        before + 1,
        "NN took no scratch"
    );
    // op(B) alone (16×24) fits what op(A) took (16×40): nothing new.
    matmul_tiled(ctx, Matmul::tt(), Some(tiling), &a_km, &b_nk, None, &out).unwrap();
    assert_eq!(ctx.counters().buffers_created, before + 1);
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
            pretranspose: false,
        }, // covers 16 of 40
        Tiling {
            tile: Tile::Small,
            splits: 3,
            k_per_split: 36,
            pretranspose: false,
        }, // an empty third slice
        Tiling {
            tile: Tile::Small,
            splits: 2,
            k_per_split: 20,
            pretranspose: false,
        }, // not a multiple of 8
        Tiling {
            tile: Tile::Small,
            splits: 0,
            k_per_split: 40,
            pretranspose: false,
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
