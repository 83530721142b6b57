// reduce.wgsl: deterministic reductions (fixed grid, fixed tree, fixed final order).
//
// Immediate data: Params { rows, cols, in_offset, out_offset }
// Bindings (group 0):
//   0 input:    storage r   array<f32>  rows × cols (row-major) from element in_offset on
//   1 out:      storage rw  array<f32>  written from element out_offset on
//   2 partials: storage rw  array<f32>  one per workgroup of `sum_squares`
//
// Entry points and dispatch:
//   column_sum   out[c] = Σ_r input[r, c], summed over r in order by one invocation per column
//                (the bias gradient of a linear layer). (G, 1, 1) workgroups of 256, G ≤ 4096,
//                each invocation striding through the columns.
//   sum_squares  partials[w] = Σ x² over the elements that workgroup w's invocations visit
//                (`rows·cols` elements, invocation i visits i, i + 256·G, …), summed by a fixed
//                tree. (G, 1, 1) with G = arrayLength(partials) ≤ 256.
//   finish_sum   out[0] = Σ_w partials[w], by one workgroup in a fixed order. (1, 1, 1).

const WORKGROUP: u32 = 256u;

struct Params {
    rows: u32,
    cols: u32,
    in_offset: u32,
    out_offset: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

var<workgroup> sums: array<f32, WORKGROUP>;

// Sums `value` over the workgroup in a fixed tree order; the result is valid in invocation 0.
fn workgroup_sum(lid: u32, value: f32) -> f32 {
    sums[lid] = value;
    workgroupBarrier();
    for (var width = WORKGROUP / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            sums[lid] += sums[lid + width];
        }
        workgroupBarrier();
    }
    return sums[0];
}

@compute @workgroup_size(256, 1, 1)
fn column_sum(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var c = gid.x; c < params.cols; c += groups.x * WORKGROUP) {
        var acc = 0.0;
        for (var r = 0u; r < params.rows; r++) {
            acc += input[params.in_offset + r * params.cols + c];
        }
        out[params.out_offset + c] = acc;
    }
}

@compute @workgroup_size(256, 1, 1)
fn sum_squares(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = params.rows * params.cols;
    var acc = 0.0;
    for (var i = wg.x * WORKGROUP + lid; i < n; i += groups.x * WORKGROUP) {
        let v = input[params.in_offset + i];
        acc += v * v;
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        partials[wg.x] = total;
    }
}

@compute @workgroup_size(256, 1, 1)
fn finish_sum(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < arrayLength(&partials); i += WORKGROUP) {
        acc += partials[i];
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        out[params.out_offset] = total;
    }
}
