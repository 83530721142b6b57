//! The GPU matmul on named cases against the CPU reference (sizes, K dwarfing M and N, every
//! fused activation and bias, views at offsets, huge inputs, bad shapes and aliasing, the fused
//! backward product), and the reference against a plain triple loop.

mod common;

use common::matmul::check;
use common::{assert_close, gpu, guarded, matmul_tolerance, random_matrix, rng};
use ndarray::Array2;
use steepest::backend::cpu;
use steepest::{
    Activation, Arena, Backend, CpuBackend, GpuBuffer, GpuMatrix, LinearLink, Matmul, Matrix,
};

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
                            other => panic!("no reference written for {other:?}"),
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

/// Every placement of the output and of the activation output (for the fused derivative),
/// their rows on 16-byte boundaries or not, gives the same bits, close to the CPU's, and leaves
/// everything around the output as it was.
#[test]
fn aligned_and_unaligned_outputs_get_the_same_bits() {
    let gpu = gpu();
    let mut r = rng(97);
    // N a multiple of 4 and not; K short, so unsplit.
    for (m, n, k) in [(70, 68, 40), (33, 66, 24), (130, 132, 16)] {
        let a = random_matrix(&mut r, m, k, 1.0);
        let b = random_matrix(&mut r, k, n, 1.0);
        let bias = random_matrix(&mut r, 1, n, 1.0);
        let output = random_matrix(&mut r, m, n, 3.0).mapv(|x| Activation::Tanh.apply(x));
        let (ga, gb, gbias) = (
            gpu.upload(a.view()).unwrap(),
            gpu.upload(b.view()).unwrap(),
            gpu.upload(bias.view()).unwrap(),
        );
        let tolerance = |bias: Option<&Array2<f32>>, activation| {
            let (a, b) = (a.mapv(f32::abs), b.mapv(f32::abs));
            matmul_tolerance(a.view(), b.view(), bias.map(|v| v.view()), k, activation)
        };
        // Each case at each placement (output offset, activation output offset): the bits of
        // the first, close to the CPU's, nothing around the output touched.
        let same_everywhere =
            |what: &str,
             expected: &Array2<f32>,
             tol: &Array2<f32>,
             placements: &[(usize, usize)],
             record: &dyn Fn(&mut GpuMatrix, usize)| {
                let mut first: Option<Array2<f32>> = None;
                for &(before, output_at) in placements {
                    let out = guarded(m, n, before);
                    record(&mut out.matrix.clone(), output_at);
                    let actual = gpu.download(&out.matrix).unwrap();
                    let what =
                        format!("{m}×{n}×{k} {what}, output at {before}, act_out at {output_at}");
                    out.assert_untouched(&what);
                    assert_close(&what, &actual, expected, tol);
                    let first = first.get_or_insert_with(|| actual.clone());
                    assert!(
                        common::bit_identical(first.iter(), actual.iter()),
                        "{what}: other bits"
                    );
                }
            };

        let spec = Matmul::nn().activation(Activation::Sigmoid);
        let mut expected = Array2::zeros((m, n));
        cpu::matmul(spec, a.view(), b.view(), Some(bias.view()), &mut expected).unwrap();
        same_everywhere(
            "forward",
            &expected,
            &tolerance(Some(&bias), spec.activation),
            &[(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0)],
            &|out, _| gpu.matmul_into(spec, &ga, &gb, Some(&gbias), out).unwrap(),
        );

        CpuBackend
            .matmul_activation_backward_into(
                Matmul::nn(),
                &a,
                &b,
                Activation::Tanh,
                &output,
                &mut expected,
            )
            .unwrap();
        same_everywhere(
            "backward",
            &expected,
            // |act'| ≤ 1 for every activation: the product's tolerance bounds the result's.
            &(tolerance(None, Activation::Identity) + 1e-7),
            &[(0, 0), (4, 8), (0, 1), (3, 0), (2, 6), (5, 3)],
            &|out, output_at| {
                let output = common::placed(&output, output_at);
                gpu.matmul_activation_backward_into(
                    Matmul::nn(),
                    &ga,
                    &gb,
                    Activation::Tanh,
                    &output,
                    out,
                )
                .unwrap()
            },
        );
    }
}

/// `linear_grads` records only the matmul's dispatches where both gradients are views of one
/// buffer and the batch is at most 512 rows, and the matmul's and the column sum's otherwise, with the same
/// values either way; it refuses overlapping gradients and gradients that alias an input,
/// changing nothing.
#[test]
fn linear_grads_fuse_where_they_can_and_refuse_overlaps() {
    let gpu = common::own_gpu();
    let ctx = gpu.context();
    let mut r = rng(77);
    for (rows, fused) in [(1, true), (300, true), (512, true), (513, false)] {
        let delta = random_matrix(&mut r, rows, 6, 1.0);
        let input = random_matrix(&mut r, rows, 5, 1.0);
        let (g_delta, g_input) = (
            gpu.upload(delta.view()).unwrap(),
            gpu.upload(input.view()).unwrap(),
        );
        let arena = gpu.arena("grads", &[(6, 5), (1, 6)]).unwrap();
        let [mut w, mut b] = [0, 1].map(|i| arena.tensors()[i].clone());
        let mut w_apart = gpu.zeros(6, 5).unwrap();
        let mut b_apart = gpu.zeros(1, 6).unwrap();
        let before = ctx.counters().dispatches;
        gpu.linear_grads_into(&g_delta, &g_input, &mut w, &mut b)
            .unwrap();
        let one_buffer = ctx.counters().dispatches - before;
        let before = ctx.counters().dispatches;
        gpu.linear_grads_into(&g_delta, &g_input, &mut w_apart, &mut b_apart)
            .unwrap();
        let two_buffers = ctx.counters().dispatches - before;
        // Apart: the matmul's dispatches (two when it splits K), then the column sum's (two
        // passes past 64 rows). Fused: the matmul's alone.
        assert!(two_buffers >= 2, "{rows} rows, gradients in two buffers");
        match fused {
            true => assert!(
                one_buffer < two_buffers && one_buffer <= 2,
                "{rows} rows: {one_buffer} dispatches fused, {two_buffers} apart"
            ),
            false => assert_eq!(one_buffer, two_buffers, "{rows} rows"),
        }
        let mut expected = (Array2::zeros((6, 5)), Array2::zeros((1, 6)));
        CpuBackend
            .linear_grads_into(&delta, &input, &mut expected.0, &mut expected.1)
            .unwrap();
        for (what, actual, expected) in [
            ("weight", gpu.download(&w).unwrap(), &expected.0),
            ("bias", gpu.download(&b).unwrap(), &expected.1),
            ("weight apart", gpu.download(&w_apart).unwrap(), &expected.0),
            ("bias apart", gpu.download(&b_apart).unwrap(), &expected.1),
        ] {
            let diff = common::max_abs_diff(&actual, expected);
            assert!(diff < 1e-5, "{rows} rows, {what}: off by {diff}");
        }
    }

    // Overlapping gradients, and a gradient in an input's buffer: refused, nothing written.
    let ones = Array2::<f32>::ones((4, 3));
    let delta = gpu.upload(ones.view()).unwrap();
    let input = gpu.upload(ones.view()).unwrap();
    let shared = GpuBuffer::<f32>::zeros(ctx, "shared", 16).unwrap();
    let mut w = GpuMatrix::view(shared.clone(), 0, 3, 3).unwrap();
    let mut b = GpuMatrix::view(shared.clone(), 8, 1, 3).unwrap();
    let err = gpu
        .linear_grads_into(&delta, &input, &mut w, &mut b)
        .unwrap_err();
    assert!(err.to_string().contains("overlaps"), "{err}");
    let mut in_delta = GpuMatrix::view(delta.buffer().clone(), 0, 1, 3).unwrap();
    let err = gpu
        .linear_grads_into(&delta, &input, &mut gpu.zeros(3, 3).unwrap(), &mut in_delta)
        .unwrap_err();
    assert!(err.to_string().contains("is also an input"), "{err}");
    assert_eq!(
        shared.read(ctx).unwrap(),
        vec![0.0; 16],
        "the gradients were written"
    );
    assert_eq!(gpu.download(&delta).unwrap(), ones, "the input was changed");
}

/// A small layer's backward pass is one dispatch (weight, bias and input gradients), a layer
/// past the one kernel's limits or with its gradients in two buffers the separate ops'; bad
/// shapes and an output that aliases an input are refused before anything is written.
#[test]
fn linear_backward_is_one_dispatch_for_a_small_layer_and_refuses_bad_input() {
    let gpu = common::own_gpu();
    let ctx = gpu.context();
    let mut r = rng(78);
    let mut dispatches = |rows: usize, outputs: usize, inputs: usize, one_buffer: bool| {
        let delta = gpu
            .upload(random_matrix(&mut r, rows, outputs, 1.0).view())
            .unwrap();
        let input = gpu
            .upload(random_matrix(&mut r, rows, inputs, 1.0).view())
            .unwrap();
        let weight = gpu
            .upload(random_matrix(&mut r, outputs, inputs, 1.0).view())
            .unwrap();
        let arena = gpu
            .arena("grads", &[(outputs, inputs), (1, outputs)])
            .unwrap();
        let (mut w, mut b) = match one_buffer {
            true => (arena.tensors()[0].clone(), arena.tensors()[1].clone()),
            false => (
                gpu.zeros(outputs, inputs).unwrap(),
                gpu.zeros(1, outputs).unwrap(),
            ),
        };
        let mut below = gpu.zeros(rows, inputs).unwrap();
        let before = ctx.counters().dispatches;
        gpu.linear_backward_into(
            &delta,
            &input,
            &weight,
            (&mut w, &mut b),
            Some((Activation::Relu, &input, &mut below)),
        )
        .unwrap();
        ctx.counters().dispatches - before
    };
    assert_eq!(dispatches(16, 8, 5, true), 1, "a small layer");
    assert_eq!(dispatches(64, 64, 64, true), 1, "2-64-64-2's middle layer");
    assert_eq!(dispatches(128, 10, 256, true), 1, "784-256-10's top layer");
    assert!(dispatches(16, 8, 5, false) >= 3, "gradients in two buffers");
    assert!(dispatches(129, 8, 5, true) >= 2, "past 128 rows");
    assert!(dispatches(16, 257, 5, true) >= 2, "past 256 outputs");
    assert!(
        dispatches(128, 256, 65, true) >= 2,
        "a product past 2²¹ multiply-adds"
    );

    let ones = Array2::<f32>::ones((4, 3));
    let delta = gpu.upload(ones.view()).unwrap();
    let input = gpu.upload(ones.view()).unwrap();
    let weight = gpu.upload(Array2::<f32>::ones((3, 3)).view()).unwrap();
    let arena = gpu.arena("grads", &[(3, 3), (1, 3)]).unwrap();
    let (mut w, mut b) = (arena.tensors()[0].clone(), arena.tensors()[1].clone());
    // Each refused before anything is recorded: (the activation output, the gradient below,
    // what the error says).
    let refusals = [
        // A gradient below of the wrong shape.
        (&input, gpu.zeros(3, 3).unwrap(), "gradient below is 3×3"),
        // The gradient below written into the layer's own input.
        (&delta, input.clone(), "is also an input"),
        // The gradient below written over the weight gradient.
        (
            &input,
            GpuMatrix::view(w.buffer().clone(), w.offset(), 4, 3).unwrap(),
            "overlaps",
        ),
    ];
    for (act_out, mut below, words) in refusals {
        let err = gpu
            .linear_backward_into(
                &delta,
                &input,
                &weight,
                (&mut w, &mut b),
                Some((Activation::Tanh, act_out, &mut below)),
            )
            .unwrap_err();
        assert!(err.to_string().contains(words), "{err}");
    }
    assert_eq!(
        gpu.read_arena(&arena).unwrap(),
        vec![0.0; 12],
        "gradients written"
    );
    assert_eq!(gpu.download(&input).unwrap(), ones, "the input was changed");
}

/// Two or three small links of a chain run in one dispatch (their parameters in one buffer, as
/// in a model's arena), longer chains in one dispatch per three, and links past the kernel's
/// limits, or with parameters in separate buffers, as products; bad shapes and outputs that
/// alias what the chain reads are refused before anything is written, on both backends alike.
#[test]
fn linear_chain_is_one_dispatch_for_small_links_and_refuses_bad_input() {
    let gpu = common::own_gpu();
    let ctx = gpu.context();
    let mut r = rng(79);
    let mut dispatches = |rows: usize, widths: &[usize], one_buffer: bool| {
        let x = gpu
            .upload(random_matrix(&mut r, rows, widths[0], 1.0).view())
            .unwrap();
        let shapes: Vec<(usize, usize)> = widths
            .windows(2)
            .flat_map(|w| [(w[1], w[0]), (1, w[1])])
            .collect();
        let arena = gpu.arena("parameters", &shapes).unwrap();
        let params: Vec<GpuMatrix> = match one_buffer {
            true => arena.tensors().to_vec(),
            false => shapes
                .iter()
                .map(|&(r, c)| gpu.zeros(r, c).unwrap())
                .collect(),
        };
        let links: Vec<LinearLink<'_, GpuMatrix>> = params
            .chunks(2)
            .map(|p| LinearLink {
                weight: &p[0],
                bias: &p[1],
                activation: Activation::Relu,
            })
            .collect();
        let mut outputs: Vec<GpuMatrix> = widths[1..]
            .iter()
            .map(|&w| gpu.zeros(rows, w).unwrap())
            .collect();
        let before = ctx.counters().dispatches;
        gpu.linear_chain_into(&x, &links, &mut outputs).unwrap();
        ctx.counters().dispatches - before
    };
    assert_eq!(dispatches(64, &[2, 64, 64, 2], true), 1, "2-64-64-2");
    assert_eq!(
        dispatches(16, &[5, 8], true),
        1,
        "a single link: its product"
    );
    assert_eq!(
        dispatches(16, &[5, 8, 3, 9, 4], true),
        2,
        "four links: three, then one"
    );
    assert_eq!(
        dispatches(16, &[5, 8, 3, 9, 4, 4], true),
        2,
        "five: three, then two"
    );
    assert_eq!(
        dispatches(16, &[5, 8, 3], false),
        2,
        "parameters in separate buffers"
    );
    let wide_product = dispatches(16, &[300, 8], true);
    assert_eq!(
        dispatches(16, &[300, 8, 3, 9], true),
        wide_product + 1,
        "past 256 inputs, then two"
    );
    assert_eq!(
        dispatches(513, &[64, 64, 64, 64], true),
        3,
        "products past 2²¹ multiply-adds"
    );

    let ones = Array2::<f32>::ones((4, 3));
    let x = gpu.upload(ones.view()).unwrap();
    let arena = gpu
        .arena("parameters", &[(3, 3), (1, 3), (2, 3), (1, 2)])
        .unwrap();
    let p = arena.tensors();
    let cpu_p: Vec<Array2<f32>> = p.iter().map(|m| gpu.download(m).unwrap()).collect();
    fn links<'a, M>(p: &'a [M], order: &[usize]) -> Vec<LinearLink<'a, M>> {
        order
            .iter()
            .map(|&l| LinearLink {
                weight: &p[2 * l],
                bias: &p[2 * l + 1],
                activation: Activation::Tanh,
            })
            .collect()
    }
    let poisoned = |rows, cols| {
        gpu.upload(Array2::from_elem((rows, cols), 9.0).view())
            .unwrap()
    };
    // (the links by index, the outputs, what the error says, whether the CPU refuses it too:
    // it has no buffers to alias).
    let refusals: [(&[usize], Vec<GpuMatrix>, &str, bool); 6] = [
        (&[], vec![], "0 links and 0 outputs", true),
        (&[0, 1], vec![poisoned(4, 3)], "2 links and 1 outputs", true),
        (
            &[1, 0],
            vec![poisoned(4, 2), poisoned(4, 3)],
            "link 1's weight is 3×3, expected 3×2 after an input of 4×2",
            true,
        ),
        (
            &[0, 1],
            vec![poisoned(4, 3), poisoned(3, 2)],
            "link 1's output is 3×2, expected 4×2",
            true,
        ),
        // The second output written into the chain's input.
        (
            &[0, 1],
            vec![
                poisoned(4, 3),
                GpuMatrix::view(x.buffer().clone(), 0, 4, 2).unwrap(),
            ],
            "is also an input",
            false,
        ),
        // The first output written over the second link's weight.
        (
            &[0, 1],
            vec![
                GpuMatrix::view(p[2].buffer().clone(), 0, 4, 3).unwrap(),
                poisoned(4, 2),
            ],
            "is also an input",
            false,
        ),
    ];
    for (order, mut outputs, words, on_cpu) in refusals {
        let before: Vec<Array2<f32>> = outputs.iter().map(|o| gpu.download(o).unwrap()).collect();
        let err = gpu
            .linear_chain_into(&x, &links(p, order), &mut outputs)
            .unwrap_err();
        assert!(err.to_string().contains(words), "{err}");
        assert!(err.to_string().contains("linear_chain"), "{err}");
        for (out, was) in outputs.iter().zip(&before) {
            assert_eq!(
                &gpu.download(out).unwrap(),
                was,
                "{words}: an output was written"
            );
        }
        if on_cpu {
            let mut cpu_outputs: Vec<Array2<f32>> =
                outputs.iter().map(|o| Array2::zeros(o.shape())).collect();
            let cpu_err = CpuBackend
                .linear_chain_into(&ones, &links(&cpu_p, order), &mut cpu_outputs)
                .unwrap_err();
            assert_eq!(cpu_err.to_string(), err.to_string(), "the backends differ");
        }
    }
    assert_eq!(gpu.download(&x).unwrap(), ones, "the input was changed");
    assert_eq!(
        gpu.read_arena(&arena).unwrap(),
        vec![0.0; 9 + 3 + 6 + 2],
        "the parameters were changed"
    );
}
