//! The matmul differential check both matmul test files run: fresh data, a poisoned and
//! guarded GPU output, every tiling or the shape's own.

use ndarray::Array2;
use steepest::backend::cpu;
use steepest::backend::gpu::{
    Tile, Tiling, linear_backward, linear_backward_frozen_weight, linear_chain, linear_grads_tiled,
    matmul_tiled,
};
use steepest::{Activation, Backend, CpuBackend, GpuBuffer, GpuMatrix, LinearLink, Matmul, Matrix};

use super::{CANARY, assert_close, gpu, guarded, matmul_tolerance, random_matrix, rng};

/// One GPU-vs-CPU comparison with the tiling chosen for the shape.
pub fn check(m: usize, n: usize, k: usize, spec: Matmul, with_bias: bool, seed: u64) {
    check_tiled(m, n, k, spec, None, with_bias, seed);
}

/// Every tiling a test forces: each tile whole, whole with its K-contiguous operands
/// transposed first, and with K cut into 2 and 5 slices (fewer where K is short).
pub fn tilings(k: usize) -> Vec<Tiling> {
    Tile::ALL
        .into_iter()
        .flat_map(|tile| {
            let pretransposed = Tiling {
                pretranspose: true,
                ..Tiling::whole(tile, k)
            };
            [1, 2, 5]
                .into_iter()
                .map(move |splits| Tiling::split(tile, k, splits))
                .chain([pretransposed])
        })
        .collect()
}

/// One GPU-vs-CPU comparison: fresh data from `seed`, the GPU output poisoned with NaN inside
/// and canaries around it (checked afterwards), with `tiling` (or the shape's own).
pub fn check_tiled(
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

/// A linear layer's parameter gradients (`linear_grads`: δᵀ·x and Σ_rows δ, the bias gradient
/// summed in the weight gradient's dispatch where the batch is short) against the CPU twin
/// (a matmul, then a column sum), and bit for bit against the two GPU ops run separately.
/// Both gradients are views of one buffer, as in a model's gradient arena (the bias before
/// or after the weight, as `seed` says), NaN inside and canaries everywhere else.
pub fn check_linear_grads(
    rows: usize,
    outputs: usize,
    inputs: usize,
    tiling: Option<Tiling>,
    seed: u64,
) {
    let mut rng = rng(seed);
    let scale = [0.01, 1.0, 30.0][(seed % 3) as usize];
    let mut delta = random_matrix(&mut rng, rows, outputs, scale);
    if seed % 4 == 3 {
        // −0.0s, and a first column of nothing else: the sums' bits must still be column_sum's.
        delta.indexed_iter_mut().for_each(|((r, c), v)| {
            if c == 0 || (r + c) % 3 == 0 {
                *v = -0.0;
            }
        });
    }
    let input = random_matrix(&mut rng, rows, inputs, 1.0);
    let mut weight = Array2::zeros((outputs, inputs));
    cpu::matmul(Matmul::tn(), delta.view(), input.view(), None, &mut weight).unwrap();
    let mut bias = Array2::zeros((1, outputs));
    cpu::column_sum(delta.view(), &mut bias).unwrap();

    let gpu = gpu();
    let ctx = gpu.context();
    let grads = GuardedGrads::new(outputs, inputs, seed);
    let (g_delta, g_input) = (
        super::placed(&delta, (seed % 5) as usize),
        gpu.upload(input.view()).unwrap(),
    );
    linear_grads_tiled(ctx, tiling, &g_delta, &g_input, &grads.weight, &grads.bias).unwrap();

    let what = format!("linear_grads {rows} rows, {inputs}→{outputs} {tiling:?} seed={seed}");
    let actual_w = gpu.download(&grads.weight).unwrap();
    let actual_b = gpu.download(&grads.bias).unwrap();
    let (w_tol, b_tol) = linear_grads_tolerance(&delta, &input, scale);
    assert_close(&format!("{what}: weight"), &actual_w, &weight, &w_tol);
    assert_close(&format!("{what}: bias"), &actual_b, &bias, &b_tol);
    grads.assert_untouched(&what);

    // The fusion changes no bit: the two ops on their own, with the same tiling.
    let separate_w = gpu.zeros(outputs, inputs).unwrap();
    let mut separate_b = gpu.zeros(1, outputs).unwrap();
    matmul_tiled(
        ctx,
        Matmul::tn(),
        tiling,
        &g_delta,
        &g_input,
        None,
        &separate_w,
    )
    .unwrap();
    gpu.column_sum_into(&g_delta, &mut separate_b).unwrap();
    assert!(
        same_bits(&actual_w, &gpu.download(&separate_w).unwrap()),
        "{what}: the weight gradient differs from matmul's"
    );
    assert!(
        same_bits(&actual_b, &gpu.download(&separate_b).unwrap()),
        "{what}: the bias gradient differs from column_sum's"
    );
}

/// Tolerances for a linear layer's weight gradient δᵀ·x (a product over the batch) and bias
/// gradient (each a sum of `rows` terms of size ≤ `scale`, in another order than the CPU's).
fn linear_grads_tolerance(
    delta: &Array2<f32>,
    input: &Array2<f32>,
    scale: f32,
) -> (Array2<f32>, Array2<f32>) {
    let (rows, outputs) = delta.dim();
    let weight = matmul_tolerance(
        delta.t().mapv(f32::abs).view(),
        input.mapv(f32::abs).view(),
        None,
        rows,
        Activation::Identity,
    );
    let bias = Array2::from_elem((1, outputs), 4.0 * rows as f32 * scale * f32::EPSILON);
    (weight, bias)
}

/// Whether two arrays hold the same bits, element for element.
pub fn same_bits(x: &Array2<f32>, y: &Array2<f32>) -> bool {
    x.dim() == y.dim() && super::bit_identical(x, y)
}

/// A linear layer's weight and bias gradients as views of one buffer, as in a model's
/// gradient arena: the bias before or after the weight (as `seed` says), NaN inside and
/// canaries everywhere else, deeper behind than a whole tile of overrun.
pub struct GuardedGrads {
    pub weight: GpuMatrix,
    pub bias: GpuMatrix,
    buffer: GpuBuffer<f32>,
}

impl GuardedGrads {
    pub fn new(outputs: usize, inputs: usize, seed: u64) -> Self {
        let (lead, gap) = ((seed % 13) as usize, (seed / 13 % 9) as usize);
        let (w_len, b_len) = (outputs * inputs, outputs);
        let bias_first = seed.is_multiple_of(2);
        let (first, second) = if bias_first {
            (b_len, w_len)
        } else {
            (w_len, b_len)
        };
        let tail = 128 * inputs.max(outputs) + 300;
        let mut data = vec![CANARY; lead];
        data.extend(std::iter::repeat_n(f32::NAN, first));
        data.extend(std::iter::repeat_n(CANARY, gap));
        data.extend(std::iter::repeat_n(f32::NAN, second));
        data.extend(std::iter::repeat_n(CANARY, tail));
        let buffer = GpuBuffer::from_slice(gpu().context(), "linear gradients", &data).unwrap();
        let (w_at, b_at) = match bias_first {
            true => (lead + b_len + gap, lead),
            false => (lead, lead + w_len + gap),
        };
        Self {
            weight: GpuMatrix::view(buffer.clone(), w_at, outputs, inputs).unwrap(),
            bias: GpuMatrix::view(buffer.clone(), b_at, 1, outputs).unwrap(),
            buffer,
        }
    }

    /// Asserts every element outside the two views is still a canary.
    pub fn assert_untouched(&self, what: &str) {
        let all = self.buffer.read(gpu().context()).unwrap();
        let span = |m: &GpuMatrix| m.offset()..m.offset() + m.shape().0 * m.shape().1;
        let (w, b) = (span(&self.weight), span(&self.bias));
        for (i, v) in all.iter().enumerate() {
            assert!(
                w.contains(&i) || b.contains(&i) || v.to_bits() == CANARY.to_bits(),
                "{what}: wrote {v} at element {i} outside both views"
            );
        }
    }
}

/// A linear layer's backward pass to check: fresh data from `seed` (δ at one of three scales,
/// the layer below's output as its activation leaves it, ReLU's zeros included), placed on the
/// GPU at awkward offsets, and the GPU's outputs NaN inside and guarded by canaries.
struct LayerCase {
    scale: f32,
    delta: Array2<f32>,
    input: Array2<f32>,
    weight: Array2<f32>,
    below: Option<(Activation, Array2<f32>)>,
    g_delta: GpuMatrix,
    g_input: GpuMatrix,
    g_weight: GpuMatrix,
    g_output: Option<GpuMatrix>,
    grads: GuardedGrads,
    grad_below: super::Guarded,
}

impl LayerCase {
    fn new(
        (rows, outputs, inputs): (usize, usize, usize),
        below: Option<Activation>,
        seed: u64,
    ) -> Self {
        let mut rng = rng(seed);
        let scale = [0.01, 1.0, 30.0][(seed % 3) as usize];
        let delta = random_matrix(&mut rng, rows, outputs, scale);
        let input = random_matrix(&mut rng, rows, inputs, 1.0);
        let weight = random_matrix(&mut rng, outputs, inputs, 1.0);
        let below = below.map(|act| {
            (
                act,
                random_matrix(&mut rng, rows, inputs, 3.0).mapv(|x| act.apply(x)),
            )
        });
        let g_output = below
            .as_ref()
            .map(|(_, m)| super::placed(m, (seed % 7) as usize));
        Self {
            scale,
            g_delta: super::placed(&delta, (seed % 5) as usize),
            g_input: super::placed(&input, (seed % 3) as usize),
            g_weight: gpu().upload(weight.view()).unwrap(),
            g_output,
            grads: GuardedGrads::new(outputs, inputs, seed),
            grad_below: guarded(rows, inputs, (seed % 11) as usize),
            delta,
            input,
            weight,
            below,
        }
    }

    /// The layer below for the CPU's ops, its gradient into `grad`.
    fn cpu_below<'a>(
        &'a self,
        grad: &'a mut Array2<f32>,
    ) -> Option<(Activation, &'a Array2<f32>, &'a mut Array2<f32>)> {
        self.below.as_ref().map(|(act, out)| (*act, out, grad))
    }

    /// The layer below for the GPU's ops, its gradient into the guarded output.
    fn gpu_below(&self) -> Option<(Activation, &GpuMatrix, &GpuMatrix)> {
        self.below
            .as_ref()
            .zip(self.g_output.as_ref())
            .map(|((act, _), out)| (*act, out, &self.grad_below.matrix))
    }

    /// The tolerances of the GPU's weight and bias gradients against the CPU's.
    fn grads_tolerance(&self) -> (Array2<f32>, Array2<f32>) {
        linear_grads_tolerance(&self.delta, &self.input, self.scale)
    }

    /// Every canary around the GPU's outputs still in place.
    fn assert_untouched(&self, what: &str) {
        self.grads.assert_untouched(what);
        self.grad_below.assert_untouched(what);
    }

    /// The GPU's bias gradient bit for bit the one `linear_grads` sums beside the weight's
    /// (column_sum's), each into a buffer of its own; the two gradients it computed.
    fn separate_grads(&self) -> (Array2<f32>, Array2<f32>) {
        let gpu = gpu();
        let (outputs, inputs) = self.weight.dim();
        let separate_w = gpu.zeros(outputs, inputs).unwrap();
        let separate_b = gpu.zeros(1, outputs).unwrap();
        let (d, x) = (&self.g_delta, &self.g_input);
        linear_grads_tiled(gpu.context(), None, d, x, &separate_w, &separate_b).unwrap();
        (
            gpu.download(&separate_w).unwrap(),
            gpu.download(&separate_b).unwrap(),
        )
    }

    /// The GPU's gradient passed down against `cpu_below`, and bit for bit against the GPU's
    /// product into the layer below with its activation's derivative.
    fn assert_passed_down(&self, what: &str, cpu_below: &Array2<f32>) {
        let (Some((act, _)), Some(g_out)) = (self.below.as_ref(), self.g_output.as_ref()) else {
            return;
        };
        let gpu = gpu();
        let actual = gpu.download(&self.grad_below.matrix).unwrap();
        // |act'| ≤ 1 for every activation, so the product's tolerance bounds the result's.
        let tol = matmul_tolerance(
            self.delta.mapv(f32::abs).view(),
            self.weight.mapv(f32::abs).view(),
            None,
            self.weight.dim().0,
            Activation::Identity,
        ) + 1e-7;
        assert_close(&format!("{what}: below"), &actual, cpu_below, &tol);
        let (rows, inputs) = actual.dim();
        let mut separate = gpu.zeros(rows, inputs).unwrap();
        let (d, w) = (&self.g_delta, &self.g_weight);
        match act {
            Activation::Identity => gpu.matmul_into(Matmul::nn(), d, w, None, &mut separate),
            _ => {
                gpu.matmul_activation_backward_into(Matmul::nn(), d, w, *act, g_out, &mut separate)
            }
        }
        .unwrap();
        assert!(
            same_bits(&actual, &gpu.download(&separate).unwrap()),
            "{what}: the gradient below differs from the product's"
        );
    }
}

/// A linear layer's whole backward pass (`linear_backward`: one kernel for a small layer)
/// against the CPU twin (the separate ops), and bit for bit against the GPU's separate ops
/// (`linear_grads`, then the product into the layer below with its activation's derivative),
/// every output poisoned and guarded. `below`: the activation of the layer below, if any.
pub fn check_linear_backward(
    rows: usize,
    outputs: usize,
    inputs: usize,
    below: Option<Activation>,
    seed: u64,
) {
    let case = LayerCase::new((rows, outputs, inputs), below, seed);
    let (mut cpu_w, mut cpu_b) = (
        Array2::zeros((outputs, inputs)),
        Array2::zeros((1, outputs)),
    );
    let mut cpu_below = Array2::zeros((rows, inputs));
    CpuBackend
        .linear_backward_into(
            &case.delta,
            &case.input,
            &case.weight,
            (&mut cpu_w, &mut cpu_b),
            case.cpu_below(&mut cpu_below),
        )
        .unwrap();

    let gpu = gpu();
    let grads = &case.grads;
    linear_backward(
        gpu.context(),
        &case.g_delta,
        &case.g_input,
        &case.g_weight,
        (&grads.weight, &grads.bias),
        case.gpu_below(),
    )
    .unwrap();

    let what =
        format!("linear_backward {rows} rows, {inputs}→{outputs}, below {below:?} seed={seed}");
    let actual_w = gpu.download(&grads.weight).unwrap();
    let actual_b = gpu.download(&grads.bias).unwrap();
    let (w_tol, b_tol) = case.grads_tolerance();
    assert_close(&format!("{what}: weight"), &actual_w, &cpu_w, &w_tol);
    assert_close(&format!("{what}: bias"), &actual_b, &cpu_b, &b_tol);
    case.assert_untouched(&what);
    let (separate_w, separate_b) = case.separate_grads();
    assert!(
        same_bits(&actual_w, &separate_w),
        "{what}: the weight gradient differs from matmul's"
    );
    assert!(
        same_bits(&actual_b, &separate_b),
        "{what}: the bias gradient differs from column_sum's"
    );
    case.assert_passed_down(&what, &cpu_below);
}

/// A linear layer's backward pass with its weight frozen
/// (`linear_backward_frozen_weight`), its bias trained or not: the bias gradient and the
/// gradient below against the CPU's twin (the default method: a column sum and the product)
/// and bit for bit against the GPU's whole backward pass; the outputs NaN inside and guarded
/// by canaries. The CPU leaves the weight gradient as it was, and so does the GPU wherever its
/// one small-layer kernel is not used (no bias gradient, or over 128 rows or 256 outputs); an
/// untrained bias's gradient is left as it was on both.
pub fn check_linear_backward_frozen_weight(
    (rows, outputs, inputs): (usize, usize, usize),
    below: Option<Activation>,
    bias_trained: bool,
    seed: u64,
) {
    let case = LayerCase::new((rows, outputs, inputs), below, seed);
    let what = format!(
        "linear_backward_frozen_weight {rows} rows, {inputs}→{outputs}, below {below:?}, \
         bias trained {bias_trained}, seed={seed}"
    );

    // The CPU: the twin, and its whole backward pass for the values.
    let untouched = 7.5f32;
    let mut cpu_w = Array2::from_elem((outputs, inputs), untouched);
    let mut cpu_b = Array2::from_elem((1, outputs), untouched);
    let mut cpu_below = Array2::zeros((rows, inputs));
    CpuBackend
        .linear_backward_frozen_weight_into(
            &case.delta,
            &case.input,
            &case.weight,
            (&mut cpu_w, bias_trained.then_some(&mut cpu_b)),
            case.cpu_below(&mut cpu_below),
        )
        .unwrap();
    assert!(
        cpu_w.iter().all(|&x| x == untouched),
        "{what}: the CPU wrote the frozen weight's gradient"
    );
    let (mut whole_w, mut whole_b) = (
        Array2::zeros((outputs, inputs)),
        Array2::zeros((1, outputs)),
    );
    let mut whole_below = Array2::zeros((rows, inputs));
    CpuBackend
        .linear_backward_into(
            &case.delta,
            &case.input,
            &case.weight,
            (&mut whole_w, &mut whole_b),
            case.cpu_below(&mut whole_below),
        )
        .unwrap();
    match bias_trained {
        true => assert!(
            same_bits(&cpu_b, &whole_b),
            "{what}: the CPU's bias gradient"
        ),
        false => assert!(
            cpu_b.iter().all(|&x| x == untouched),
            "{what}: the CPU wrote the frozen bias's gradient"
        ),
    }
    if below.is_some() {
        assert!(
            same_bits(&cpu_below, &whole_below),
            "{what}: the CPU's gradient below"
        );
    }

    let gpu = gpu();
    let grads = &case.grads;
    linear_backward_frozen_weight(
        gpu.context(),
        &case.g_delta,
        &case.g_input,
        &case.g_weight,
        (&grads.weight, bias_trained.then_some(&grads.bias)),
        case.gpu_below(),
    )
    .unwrap();
    case.assert_untouched(&what);
    let actual_w = gpu.download(&grads.weight).unwrap();
    if !bias_trained || rows > 128 || outputs > 256 {
        assert!(
            actual_w.iter().all(|x| x.is_nan()),
            "{what}: the GPU computed the frozen weight's gradient"
        );
    }
    let actual_b = gpu.download(&grads.bias).unwrap();
    if bias_trained {
        let (_, b_tol) = case.grads_tolerance();
        assert_close(&format!("{what}: bias"), &actual_b, &cpu_b, &b_tol);
        assert!(
            same_bits(&actual_b, &case.separate_grads().1),
            "{what}: the bias gradient differs from column_sum's"
        );
    } else {
        assert!(
            actual_b.iter().all(|x| x.is_nan()),
            "{what}: the GPU wrote the frozen bias's gradient"
        );
    }
    case.assert_passed_down(&what, &cpu_below);
}

/// The forward pass of a chain of linear layers (`linear_chain`: two or three small links in
/// one kernel, any other link as its product) over `rows` rows and the layer `widths`
/// (inputs first), each link's output against the CPU's product of the GPU's input to it,
/// and bit for bit against the GPU's products run link by link. The weights and biases are
/// views of one buffer at offsets `seed` varies (whole vec4s or not), the input starts at an
/// awkward offset, and every output is NaN inside and guarded by canaries.
pub fn check_linear_chain(rows: usize, widths: &[usize], activations: &[Activation], seed: u64) {
    let mut rng = rng(seed);
    let scale = [0.01, 1.0, 30.0][(seed % 3) as usize];
    let x = random_matrix(&mut rng, rows, widths[0], scale);
    let links: Vec<(Array2<f32>, Array2<f32>)> = widths
        .windows(2)
        .map(|w| {
            let weight = random_matrix(&mut rng, w[1], w[0], 1.0 / (w[0] as f32).sqrt());
            (weight, random_matrix(&mut rng, 1, w[1], 0.5))
        })
        .collect();

    // Every weight and bias in one buffer (as in a model's parameter arena), each after a gap
    // of 0–3 elements.
    let gpu = gpu();
    let ctx = gpu.context();
    let mut data = Vec::new();
    let mut place = |m: &Array2<f32>, gap: usize| {
        data.extend(std::iter::repeat_n(1e30f32, gap));
        let offset = data.len();
        data.extend(m.iter());
        (offset, m.dim())
    };
    let places: Vec<_> = links
        .iter()
        .enumerate()
        .map(|(l, (w, b))| {
            let gap = (seed as usize + l) % 4;
            (place(w, gap), place(b, gap / 2))
        })
        .collect();
    let params = GpuBuffer::from_slice(ctx, "parameters", &data).unwrap();
    let view = |(offset, (r, c)): (usize, (usize, usize))| {
        GpuMatrix::view(params.clone(), offset, r, c).unwrap()
    };
    let g_params: Vec<(GpuMatrix, GpuMatrix)> = places
        .into_iter()
        .map(|(w, b)| (view(w), view(b)))
        .collect();
    let g_links: Vec<LinearLink<'_, GpuMatrix>> = g_params
        .iter()
        .zip(activations)
        .map(|((weight, bias), &activation)| LinearLink {
            weight,
            bias,
            activation,
        })
        .collect();
    let g_x = super::placed(&x, (seed % 5) as usize);
    let outs: Vec<_> = widths[1..]
        .iter()
        .enumerate()
        .map(|(l, &w)| guarded(rows, w, (seed as usize + 3 * l) % 7))
        .collect();
    let g_outs: Vec<GpuMatrix> = outs.iter().map(|o| o.matrix.clone()).collect();
    linear_chain(ctx, &g_x, &g_links, &g_outs).unwrap();

    let what = format!("linear_chain {rows} rows, widths {widths:?}, {activations:?} seed={seed}");
    let mut below = x.clone();
    let mut separate_below = g_x.clone();
    for (l, ((weight, bias), link)) in links.iter().zip(&g_links).enumerate() {
        let actual = gpu.download(&outs[l].matrix).unwrap();
        let mut expected = Array2::zeros(actual.dim());
        let spec = Matmul::nt().activation(link.activation);
        cpu::matmul(
            spec,
            below.view(),
            weight.view(),
            Some(bias.view()),
            &mut expected,
        )
        .unwrap();
        let tol = matmul_tolerance(
            below.mapv(f32::abs).view(),
            weight.t().mapv(f32::abs).view(),
            Some(bias.view()),
            weight.ncols(),
            link.activation,
        );
        assert_close(&format!("{what}: link {l}"), &actual, &expected, &tol);
        outs[l].assert_untouched(&format!("{what}: link {l}"));

        // The GPU's own product, link by link from its own outputs: the same bits.
        let mut separate = gpu.zeros(rows, weight.nrows()).unwrap();
        gpu.matmul_into(
            spec,
            &separate_below,
            link.weight,
            Some(link.bias),
            &mut separate,
        )
        .unwrap();
        assert!(
            same_bits(&actual, &gpu.download(&separate).unwrap()),
            "{what}: link {l} differs from matmul's"
        );
        below = actual;
        separate_below = separate;
    }
}
