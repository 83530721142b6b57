// embedding.wgsl: an embedding lookup and its gradients. The input x holds, in one of its
// columns, an index per row stored as f32 (exact up to 2²⁴); the output is the row's other
// columns, in order, then the table row the index names.
//
// Immediate data: Params { rows, inputs, column, vocab, dim, a_offset, b_offset, out_offset,
//                          padding } (padding 0xffffffff: none)
// Bindings (group 0, shared by the entry points):
//   0 a:    storage r   array<f32>  forward, table_grad*: x (rows × inputs); input_grad: ∂loss/∂y
//   1 b:    storage r   array<f32>  forward: the table (vocab × dim); table_grad*: ∂loss/∂y
//                                   (rows × (inputs − 1 + dim)); input_grad, table_zero: unread
//   2 out:  storage rw  array<f32>  forward: y; table_*: ∂loss/∂table; input_grad: ∂loss/∂x
// Dispatch: forward, input_grad and table_zero (G, 1, 1) workgroups of 256, each invocation
// striding through the output's elements; table_grad (G, 1, 1) workgroups of 64 striding
// through (table row, block of 64 columns) pairs, an invocation a column; table_grad_rows
// likewise through (batch row, block of 64 columns) pairs, after table_zero.
//
// Two ways to the same table gradient, the host picking by cost: table_grad scans the batch
// once for every table row (vocab × rows index reads), for tables no larger than the batch;
// table_grad_rows, for larger ones, zeroes the table and then lets the first row naming each
// value sum it (rows² at most, whatever the vocabulary). Both add the same terms in the same
// order, from 0.0: their bits are the same.
//
// An index names a row when it is an integer in [0, vocab): the host checks data before it
// reaches a kernel; an index that does not (from a batch given on the device) gives a row of
// NaN forward and no gradient.
// forward:     y[r, j] = x[r, j < column ? j : j + 1] for j < inputs − 1,
//              y[r, inputs − 1 + e] = table[x[r, column], e]
// table_grad:  ∂table[v, e] = Σ over r in order with x[r, column] = v of ∂y[r, inputs − 1 + e]
//              (0 for a row no index names and for the padding row, PyTorch's padding_idx;
//              the CPU twin sums in the same order)
// input_grad:  ∂x[r, c] = ∂y[r, c < column ? c : c − 1], 0 at c = column (an index has none)
//
// Bounds: every index is below rows · inputs (a), rows · outputs (b) or vocab · dim (out),
// which the host has checked against the bound views; a table row comes from an index that
// names_row admits (< vocab).

const WORKGROUP: u32 = 256u;
const ROW_WORKGROUP: u32 = 64u;

struct Params {
    rows: u32,
    inputs: u32,
    column: u32,
    vocab: u32,
    dim: u32,
    a_offset: u32,
    b_offset: u32,
    out_offset: u32,
    padding: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Whether `v` names a row of the table (vocab ≤ 2²⁴, exact in f32); false for NaN.
fn names_row(v: f32) -> bool {
    return v >= 0.0 && v < f32(params.vocab) && v == floor(v);
}

// The index in row `r` of x (binding a, in the entry points that bind x there).
fn index_at(r: u32) -> f32 {
    return a[params.a_offset + r * params.inputs + params.column];
}

// A table row's columns, ∂y's last dim of a batch row, come in blocks of ROW_WORKGROUP: a
// workgroup item each in table_grad and table_grad_rows.
fn column_blocks() -> u32 {
    return (params.dim + ROW_WORKGROUP - 1u) / ROW_WORKGROUP;
}

@compute @workgroup_size(256, 1, 1)
fn forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let others = params.inputs - 1u;
    let outputs = others + params.dim;
    let len = params.rows * outputs;
    for (var i = gid.x; i < len; i += groups.x * WORKGROUP) {
        let r = i / outputs;
        let j = i % outputs;
        let row = params.a_offset + r * params.inputs;
        var value: f32;
        if (j < others) {
            value = a[row + select(j, j + 1u, j >= params.column)];
        } else {
            let index = index_at(r);
            value = bitcast<f32>(0x7fc00000u);
            if (names_row(index)) {
                value = b[params.b_offset + u32(index) * params.dim + (j - others)];
            }
        }
        out[params.out_offset + i] = value;
    }
}

// Table row v's gradient at column e: ∂y's column others + e summed over the batch rows from
// `first` on whose index names row v, in row order from 0.0 (both table-gradient kernels sum
// this way, so they give the same bits).
fn value_grad(v: u32, first: u32, e: u32, others: u32, outputs: u32) -> f32 {
    var sum = 0.0;
    for (var r = first; r < params.rows; r++) {
        let index = index_at(r);
        if (names_row(index) && u32(index) == v) {
            sum += b[params.b_offset + r * outputs + others + e];
        }
    }
    return sum;
}

@compute @workgroup_size(64, 1, 1)
fn table_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let others = params.inputs - 1u;
    let outputs = others + params.dim;
    let blocks = column_blocks();
    for (var item = wg.x; item < params.vocab * blocks; item += groups.x) {
        let v = item / blocks;
        let e = (item % blocks) * ROW_WORKGROUP + lid;
        var sum = 0.0;
        if (e < params.dim && v != params.padding) {
            sum = value_grad(v, 0u, e, others, outputs);
        }
        if (e < params.dim) {
            out[params.out_offset + v * params.dim + e] = sum;
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn table_zero(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let len = params.vocab * params.dim;
    for (var i = gid.x; i < len; i += groups.x * WORKGROUP) {
        out[params.out_offset + i] = 0.0;
    }
}

// The table gradient by batch row, over a zeroed table: the row holding the first index of
// each value writes that value's sum; every later row naming it, and every row naming none,
// writes nothing.
@compute @workgroup_size(64, 1, 1)
fn table_grad_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let others = params.inputs - 1u;
    let outputs = others + params.dim;
    let blocks = column_blocks();
    for (var item = wg.x; item < params.rows * blocks; item += groups.x) {
        let r = item / blocks;
        let e = (item % blocks) * ROW_WORKGROUP + lid;
        let index = index_at(r);
        if (e >= params.dim || !names_row(index) || u32(index) == params.padding) {
            continue;
        }
        // An earlier row with the same index (an exact integer: equal as f32 means the same
        // table row) has summed this one already.
        var first = true;
        for (var q = 0u; q < r; q++) {
            if (index_at(q) == index) {
                first = false;
                break;
            }
        }
        if (!first) {
            continue;
        }
        // table_grad's sum for this value: the rows before r name other values.
        let v = u32(index);
        out[params.out_offset + v * params.dim + e] = value_grad(v, r, e, others, outputs);
    }
}

@compute @workgroup_size(256, 1, 1)
fn input_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let outputs = params.inputs - 1u + params.dim;
    let len = params.rows * params.inputs;
    for (var i = gid.x; i < len; i += groups.x * WORKGROUP) {
        let r = i / params.inputs;
        let c = i % params.inputs;
        var value = 0.0;
        if (c != params.column) {
            value = a[params.a_offset + r * outputs + select(c, c - 1u, c > params.column)];
        }
        out[params.out_offset + i] = value;
    }
}
