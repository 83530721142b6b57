// linear_chain.wgsl: the forward pass of two or three consecutive small linear layers in one
// dispatch,
//   h₀ = x,   h_{l+1} = act_l(h_l · W_lᵀ + b_l)   written to out_l,
// each element summed as `matmul.wgsl` sums an unsplit K (one fma per k in order, from 0.0, K
// padded with zeros to a multiple of 8) and finished as its epilogue finishes it (the bias
// added, then `activation.wgsl`'s activation, prepended by the host), so every output is bit for bit the separate products'. The host
// uses it only where those products would not split K. Rows are independent all the way up
// the chain: a workgroup takes ROWS rows through every layer, reading its own outputs of layer l
// back (after a storage barrier) as layer l + 1's inputs, and never another workgroup's.
//
// Immediate data: Params (below); the batch's rows, widths and element offsets
// Bindings (group 0):
//   0 input:   storage, read  array<vec4<f32>>  x: rows × inputs (from input_offset)
//   1 weights: storage, read  array<vec4<f32>>  every link's W_l (outputs_l × its inputs) and b_l
//                                               (outputs_l), each from its offset
//   2 out0:    storage, rw    array<vec4<f32>>  h₁: rows × outputs₀ (from link 0's output_offset)
//   3 out1:    storage, rw    array<vec4<f32>>  h₂
//   4 out2:    storage, rw    array<vec4<f32>>  h₃ (LINKS = 3 only)
// Element i of a binding is b[i / 4][i % 4].
//
// Dispatch: (X, Y, 1) workgroups of 64, the flat id wg.y · X + wg.x taking rows
// id · ROWS .. id · ROWS + ROWS (rows past the batch are skipped). In each layer, invocation
// t = b · ⌈outputs / 4⌉ + q computes outputs 4q..4q + 3 of the workgroup's rows 4b..4b + 3 (the
// host keeps ROWS / 4 · QUADS ≤ 64): sixteen sums, each its own chain of fmas. The workgroup
// stages STAGE columns of K at a time in workgroup memory, that slice of W and of its rows'
// inputs, each transposed so that an invocation reads four outputs' weights, or four rows'
// inputs, as one vec4; then each invocation adds the slice's terms to its sums.
//
// Bounds: every global index is an offset plus a row below `rows` (or below a link's outputs)
// times a row length plus a column below it, each checked against the extents in `params`,
// which the host has checked against the bound buffers; a whole-vec4 load covers elements
// base..base + 3 with base a multiple of 4 and base + 3 inside the row (rows load whole only
// where their length and offset are multiples of 4). Workgroup indices: kk < STAGE,
// o / 4 < ⌈outputs / 4⌉ ≤ QUADS and row / 4 < ROWS / 4 (the host sets QUADS from the widest
// layer, ROWS a multiple of 4); the sums' array is indexed below 4.

override LINKS: u32 = 2u;  // 2 or 3
override ROWS: u32 = 4u;   // rows per workgroup, a multiple of 4
override QUADS: u32 = 1u;  // vec4s across the widest layer's outputs: ⌈outputs / 4⌉ ≤ 64
// K staged at a time: a multiple of K_STEP, as deep as the device's workgroup memory allows
// (the host's choice), so that a small layer's weights load in one round trip.
override STAGE: u32 = 8u;
// Activation codes (0 identity, 1 ReLU, 2 sigmoid, 3 tanh: the host's), one per link.
override ACT0: u32 = 0u;
override ACT1: u32 = 0u;
override ACT2: u32 = 0u;
const WORKGROUP: u32 = 64u;
const K_STEP: u32 = 8u;  // matmul.wgsl's K slice: its products run K up to a multiple of it

// One link: its outputs and where its weight, bias and output start.
struct Link {
    outputs: u32,
    weight_offset: u32,
    bias_offset: u32,
    output_offset: u32,
}

struct Params {
    rows: u32,
    inputs: u32,
    input_offset: u32,
    _pad: u32,
    link0: Link,
    link1: Link,
    link2: Link,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> weights: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out0: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out1: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out2: array<vec4<f32>>;

// STAGE columns of K of the layer being computed, staged by the whole workgroup so that each
// global load is shared: W's slice, [kk · QUADS + q] holding W[4q..4q + 3, k0 + kk], and its
// rows' inputs, [kk · ROWS / 4 + b] holding in[row0 + 4b..row0 + 4b + 3, k0 + kk].
var<workgroup> w_slice: array<vec4<f32>, STAGE * QUADS>;
var<workgroup> x_slice: array<vec4<f32>, STAGE * ROWS / 4u>;

fn link(l: u32) -> Link {
    switch l {
        case 0u: { return params.link0; }
        case 1u: { return params.link1; }
        default: { return params.link2; }
    }
}

fn activation(l: u32) -> u32 {
    switch l {
        case 0u: { return ACT0; }
        case 1u: { return ACT1; }
        default: { return ACT2; }
    }
}

// Layer l's input: x for the first layer, else the output of the layer before. The vec4 from
// element i (a multiple of 4), and element i alone: an output row's neighbours may be another
// workgroup's rows, written while this one reads, so a partial row is read element by element.
fn input_vec4(l: u32, i: u32) -> vec4<f32> {
    switch l {
        case 0u: { return input[i >> 2u]; }
        case 1u: { return out0[i >> 2u]; }
        default: { return out1[i >> 2u]; }
    }
}

fn input_at(l: u32, i: u32) -> f32 {
    switch l {
        case 0u: { return input[i >> 2u][i & 3u]; }
        case 1u: { return out0[i >> 2u][i & 3u]; }
        default: { return out1[i >> 2u][i & 3u]; }
    }
}

// Four elements of layer l's input from element `base` of its binding, `count` of them
// (≤ 4) inside the row, zero past them: one vec4 load where `whole`.
fn input4(l: u32, base: u32, count: u32, whole: bool) -> vec4<f32> {
    if (whole && count == 4u) {
        return input_vec4(l, base);
    }
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if (j < count) {
            v[j] = input_at(l, base + j);
        }
    }
    return v;
}

fn weights4(base: u32, count: u32, whole: bool) -> vec4<f32> {
    if (whole && count == 4u) {
        return weights[base >> 2u];
    }
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if (j < count) {
            v[j] = weights[(base + j) >> 2u][(base + j) & 3u];
        }
    }
    return v;
}

// How many of the four elements from column kh of a K-long row exist (0 past its end).
fn in_row(k: u32, kh: u32) -> u32 {
    return select(0u, min(4u, k - kh), kh < k);
}

fn store(l: u32, i: u32, x: f32) {
    switch l {
        case 0u: { out0[i >> 2u][i & 3u] = x; }
        case 1u: { out1[i >> 2u][i & 3u] = x; }
        default: { out2[i >> 2u][i & 3u] = x; }
    }
}

// Layer l over the workgroup's rows (row0 onwards), its input K wide. Called with a constant
// l, so that every choice of binding below is made when the kernel is compiled.
fn layer(l: u32, row0: u32, t: u32, k: u32) {
    let lk = link(l);
    let quads = (lk.outputs + 3u) / 4u;
    // Where layer l's input rows start in their binding, and whether they (and W's rows) load
    // as whole vec4s.
    let in_offset = select(link(l - 1u).output_offset, params.input_offset, l == 0u);
    let in_whole = k % 4u == 0u && in_offset % 4u == 0u;
    let w_whole = k % 4u == 0u && lk.weight_offset % 4u == 0u;
    // This invocation's item: outputs 4q..4q + 3 of the workgroup's rows 4b..4b + 3 (the host
    // keeps ROWS / 4 · QUADS ≤ WORKGROUP, so one item each covers the layer).
    let b = t / quads;
    let q = t % quads;
    let has_item = t < ROWS / 4u * quads && row0 + 4u * b < params.rows;
    // acc[i]: the four outputs of row 4b + i.
    var acc: array<vec4<f32>, 4>;
    // The loop's bounds are the same for the whole workgroup, so its barriers are reached in
    // uniform control flow.
    let k_end = (k + K_STEP - 1u) / K_STEP * K_STEP;
    for (var k0 = 0u; k0 < k_end; k0 += STAGE) {
        // Stage W[o, k0..k0 + STAGE] for every o below 4 · quads (zero past K and past the
        // outputs, so the padded fmas add 0·0 as the matmul's do); neighbouring invocations
        // load neighbouring vec4s of a row.
        for (var u = t; u < quads * STAGE; u += WORKGROUP) {
            let o = u / (STAGE / 4u);
            let c = u % (STAGE / 4u);
            let kh = k0 + 4u * c;
            var w = vec4<f32>(0.0);
            if (o < lk.outputs) {
                w = weights4(lk.weight_offset + o * k + kh, in_row(k, kh), w_whole);
            }
            for (var e = 0u; e < 4u; e++) {
                w_slice[(4u * c + e) * QUADS + o / 4u][o % 4u] = w[e];
            }
        }
        // And the workgroup's rows of the layer's input, in[row, k0..k0 + STAGE] (zero past
        // the batch).
        for (var u = t; u < ROWS * STAGE / 4u; u += WORKGROUP) {
            let rr = u / (STAGE / 4u);
            let c = u % (STAGE / 4u);
            let kh = k0 + 4u * c;
            var x = vec4<f32>(0.0);
            if (row0 + rr < params.rows) {
                x = input4(l, in_offset + (row0 + rr) * k + kh, in_row(k, kh), in_whole);
            }
            for (var e = 0u; e < 4u; e++) {
                x_slice[(4u * c + e) * (ROWS / 4u) + rr / 4u][rr % 4u] = x[e];
            }
        }
        workgroupBarrier();
        // K runs to a multiple of K_STEP, not of STAGE: the matmul pads no further.
        let depth = min(STAGE, k_end - k0);
        if (has_item) {
            for (var kk = 0u; kk < depth; kk++) {
                let x = x_slice[kk * (ROWS / 4u) + b];
                let w = w_slice[kk * QUADS + q];
                for (var i = 0u; i < 4u; i++) {
                    acc[i] = fma(vec4<f32>(x[i]), w, acc[i]);
                }
            }
        }
        workgroupBarrier();
    }
    if (has_item) {
        var bias = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            if (4u * q + j < lk.outputs) {
                let i = lk.bias_offset + 4u * q + j;
                bias[j] = weights[i >> 2u][i & 3u];
            }
        }
        for (var i = 0u; i < 4u; i++) {
            let row = row0 + 4u * b + i;
            if (row >= params.rows) {
                break;
            }
            let v = activate(activation(l), acc[i] + bias);
            let base = lk.output_offset + row * lk.outputs + 4u * q;
            for (var j = 0u; j < 4u; j++) {
                if (4u * q + j < lk.outputs) {
                    store(l, base + j, v[j]);
                }
            }
        }
    }
}

@compute @workgroup_size(WORKGROUP, 1, 1)
fn linear_chain(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let row0 = (wg.y * groups.x + wg.x) * ROWS;
    layer(0u, row0, t, params.inputs);
    // Each barrier publishes this workgroup's outputs of a layer as the next one's inputs.
    storageBarrier();
    layer(1u, row0, t, params.link0.outputs);
    if (LINKS == 3u) {
        storageBarrier();
        layer(2u, row0, t, params.link1.outputs);
    }
}
