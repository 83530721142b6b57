// linear_backward.wgsl: a small linear layer's whole backward pass in one dispatch, from δ
// (∂/∂ the layer's pre-activation output) and the layer's input x and weight W:
//   weight_grad = δᵀ · x                       (outputs × inputs)
//   bias_grad   = Σ_rows δ                     (1 × outputs)
//   grad_below  = (δ · W) ⊙ act'(output below)  (rows × inputs; only with HAS_BELOW)
// each summed in exactly the order of the kernels it stands for, so the result is bit for bit
// theirs: the products as `matmul.wgsl` sums an unsplit K (one fma per k in order, from 0.0,
// K padded with zeros to a multiple of 8), the bias gradient in `reduce.wgsl`'s `column_sum`
// order (as `matmul.wgsl`'s BIAS_GRAD), the derivative by `activation.wgsl` (prepended). The host
// uses it only where those kernels would not split K, and only for small layers: each output is
// one invocation's serial loop.
//
// Immediate data: Params (below); sizes and element offsets
// Bindings (group 0):
//   0 delta:        storage, read  array<f32>  δ: rows × outputs (from delta_offset)
//   1 input:        storage, read  array<vec4<f32>>  x: rows × inputs
//   2 weight:       storage, read  array<vec4<f32>>  W: outputs × inputs
//   3 below_output: storage, read  array<f32>  HAS_BELOW: rows × inputs, the output of the
//                                              activation DERIVATIVE_OF below
//   4 grads:        storage, rw    array<f32>  weight_grad and bias_grad, each from its offset
//   5 grad_below:   storage, rw    array<f32>  HAS_BELOW: rows × inputs
//
// Dispatch: (G, 1, 1) workgroups of 64. Each invocation computes four neighbouring elements
// of a row (columns 4q..4q + 3, so a row of x or W is read as vec4s, with VEC4 whole): ids
// enumerate the weight gradient's quads (o · ⌈inputs/4⌉ + q), then the bias gradient's
// elements (o, one each), then the gradient below's quads (r · ⌈inputs/4⌉ + q); ids past the
// last return at once.
//
// Bounds: every index is an offset plus a row below rows (or outputs) times a row length plus
// a column below it, each checked against the extents in `params`, which the host has checked
// against the bound buffers; the per-invocation row arrays are indexed below K_STEP, their
// length.

override HAS_BELOW: bool = false;
// inputs, and x's and W's element offsets, are multiples of 4: their rows load as whole vec4s.
override VEC4: bool = false;
override DERIVATIVE_OF: u32 = 0u;  // activation code: 0 identity, 1 ReLU, 2 sigmoid, 3 tanh
const WORKGROUP: u32 = 64u;
const K_STEP: u32 = 8u;  // matmul.wgsl's K slice: its products run K up to a multiple of it

struct Params {
    rows: u32,
    inputs: u32,
    outputs: u32,
    delta_offset: u32,
    input_offset: u32,
    weight_offset: u32,
    below_offset: u32,
    weight_grad_offset: u32,
    bias_grad_offset: u32,
    grad_below_offset: u32,
    sum_block_rows: u32,  // column_sum's rows per block
    _pad: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> delta: array<f32>;
@group(0) @binding(1) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> below_output: array<f32>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_below: array<f32>;

// x[r, 4q..4q + 4] and W[o, 4q..4q + 4], zero past the row's end.
fn input4(r: u32, q: u32) -> vec4<f32> {
    let base = params.input_offset + r * params.inputs + 4u * q;
    if (VEC4) {
        return input[base >> 2u];
    }
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if (4u * q + j < params.inputs) {
            v[j] = input[(base + j) >> 2u][(base + j) & 3u];
        }
    }
    return v;
}

fn weight4(o: u32, q: u32) -> vec4<f32> {
    let base = params.weight_offset + o * params.inputs + 4u * q;
    if (VEC4) {
        return weight[base >> 2u];
    }
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if (4u * q + j < params.inputs) {
            v[j] = weight[(base + j) >> 2u][(base + j) & 3u];
        }
    }
    return v;
}

// The two products, each element as matmul.wgsl sums it (one fma per k, in order, from 0.0,
// K padded with zeros to a multiple of K_STEP): with `over_rows`, the weight gradient's
// Σ_r δ[r, o] · x[r, 4q..4q + 4] for o = `fixed` (its TN product); without, the gradient
// below's Σ_o δ[r, o] · W[o, 4q..4q + 4] for r = `fixed` (its NN product). A serial sum is
// latency-bound on a GPU: K_STEP terms are loaded before any is added, so their loads overlap.
fn serial_sum(over_rows: bool, fixed: u32, q: u32) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    let k = select(params.outputs, params.rows, over_rows);
    let k_end = (k + K_STEP - 1u) / K_STEP * K_STEP;
    for (var k0 = 0u; k0 < k_end; k0 += K_STEP) {
        var d: array<f32, K_STEP>;
        var v: array<vec4<f32>, K_STEP>;
        for (var j = 0u; j < K_STEP; j++) {
            let kk = k0 + j;
            if (kk < k) {
                if (over_rows) {
                    d[j] = delta[params.delta_offset + kk * params.outputs + fixed];
                    v[j] = input4(kk, q);
                } else {
                    d[j] = delta[params.delta_offset + fixed * params.outputs + kk];
                    v[j] = weight4(kk, q);
                }
            }
        }
        for (var j = 0u; j < K_STEP; j++) {
            acc = fma(vec4<f32>(d[j]), v[j], acc);
        }
    }
    return acc;
}

// Σ_r δ[r, o] in column_sum's order (see reduce.wgsl and matmul.wgsl's `bias_grad`).
fn bias_grad(o: u32) -> f32 {
    let blocks = (params.rows + params.sum_block_rows - 1u) / params.sum_block_rows;
    var total = 0.0;
    for (var block = 0u; block < blocks; block++) {
        let begin = block * params.sum_block_rows;
        let end = min(begin + params.sum_block_rows, params.rows);
        // Lane l sums rows begin + l, begin + l + 4, … from 0.0; then the lanes in order.
        var lanes = vec4<f32>(0.0);
        for (var r = begin; r < end; r += 4u) {
            var row = vec4<f32>(0.0);
            for (var lane = 0u; lane < 4u; lane++) {
                if (r + lane < end) {
                    row[lane] = delta[params.delta_offset + (r + lane) * params.outputs + o];
                }
            }
            let valid = vec4<u32>(r) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(end);
            lanes = select(lanes, lanes + row, valid);
        }
        let block_total = ((lanes.x + lanes.y) + lanes.z) + lanes.w;
        if (blocks == 1u) {
            total = block_total;
        } else {
            total += block_total;
        }
    }
    return total;
}

@compute @workgroup_size(WORKGROUP, 1, 1)
fn linear_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.x;
    let quads = (params.inputs + 3u) / 4u;
    let weight_quads = params.outputs * quads;
    if (id < weight_quads) {
        let o = id / quads;
        let q = id % quads;
        let v = serial_sum(true, o, q);
        let base = params.weight_grad_offset + o * params.inputs + 4u * q;
        for (var j = 0u; j < 4u; j++) {
            if (4u * q + j < params.inputs) {
                grads[base + j] = v[j];
            }
        }
        return;
    }
    let o = id - weight_quads;
    if (o < params.outputs) {
        grads[params.bias_grad_offset + o] = bias_grad(o);
        return;
    }
    let e = o - params.outputs;
    if (HAS_BELOW && e < params.rows * quads) {
        let r = e / quads;
        let q = e % quads;
        let v = serial_sum(false, r, q);
        let base = r * params.inputs + 4u * q;
        for (var j = 0u; j < 4u; j++) {
            if (4u * q + j < params.inputs) {
                let below = below_output[params.below_offset + base + j];
                grad_below[params.grad_below_offset + base + j] =
                    v[j] * derivative_from_output(DERIVATIVE_OF, below);
            }
        }
    }
}
