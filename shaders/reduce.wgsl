// reduce.wgsl: deterministic reductions (fixed grid, fixed tree, fixed final order).
//
// Immediate data: Params { rows, cols, in_offset, out_offset, block_rows, row_blocks,
//                          partial_base }
// Bindings (group 0):
//   0 input:    storage r   array<f32>  rows × cols (row-major) from element in_offset on
//   1 out:      storage rw  array<f32>  written from element out_offset on
//   2 partials: storage rw  array<f32>  column sums per row block, or one per workgroup of
//                                       `sum_squares`
//
// Entry points and dispatch:
//   column_sum         out[c] = Σ_r input[r, c] (the bias gradient of a linear layer), in two
//                      passes when the rows span several blocks of `block_rows`: workgroups of
//                      64 columns × 4 lanes, (⌈cols/64⌉ capped, row_blocks, 1) of them, each
//                      lane summing every 4th row of its block in order, the 4 lanes then added
//                      in order; with one block the total goes straight to out, else to
//                      partials[block · cols + c]
//   column_sum_finish  out[c] = Σ_block partials[block · cols + c] in block order.
//                      (G, 1, 1) workgroups of 256, each invocation striding over columns.
//                      `matmul.wgsl`'s BIAS_GRAD and `linear_backward.wgsl` sum a linear
//                      layer's bias gradient in exactly this order (they must change
//                      together: tests compare their bits).
//   sum_squares  partials[partial_base + w] = Σ x² over the elements that workgroup w's
//                invocations visit (`rows·cols` elements, invocation i visits i, i + 256·G,
//                …), summed by a fixed tree. (G, 1, 1) with G ≤ 256.
//   finish_sum   out[0] = Σ_w partials[w] over every partial bound, by one workgroup in a
//                fixed order. (1, 1, 1).
// The one sum of squares: `Backend::sum_squares_into` (an arena in one range) and the
// optimizer's gradient clipping (an arena in chunks, each chunk's partials from its own base,
// one `finish_sum` over them all) both run these two kernels.

const WORKGROUP: u32 = 256u;

const COLUMN_BLOCK: u32 = 64u;  // columns per workgroup of `column_sum`
const ROW_LANES: u32 = 4u;      // lanes per column, each summing every 4th row

struct Params {
    rows: u32,
    cols: u32,
    in_offset: u32,
    out_offset: u32,
    block_rows: u32,    // rows per block of `column_sum` (a multiple of 4)
    row_blocks: u32,    // ⌈rows / block_rows⌉
    partial_base: u32,  // where `sum_squares` writes its workgroups' partials
    other_offset: u32,  // unused here: the host's `Params` serves reduce_terms.wgsl too
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

var<workgroup> lanes: array<f32, 256>;  // [lane · COLUMN_BLOCK + column]

@compute @workgroup_size(64, 4, 1)
fn column_sum(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let row_begin = wg.y * params.block_rows;
    let row_end = min(row_begin + params.block_rows, params.rows);
    let column_blocks = (params.cols + COLUMN_BLOCK - 1u) / COLUMN_BLOCK;
    for (var block = wg.x; block < column_blocks; block += groups.x) {
        let c = block * COLUMN_BLOCK + lid.x;
        var acc = 0.0;
        if (c < params.cols) {
            for (var r = row_begin + lid.y; r < row_end; r += ROW_LANES) {
                acc += input[params.in_offset + r * params.cols + c];
            }
        }
        lanes[lid.y * COLUMN_BLOCK + lid.x] = acc;
        workgroupBarrier();
        if (lid.y == 0u && c < params.cols) {
            var total = lanes[lid.x];
            for (var lane = 1u; lane < ROW_LANES; lane++) {
                total += lanes[lane * COLUMN_BLOCK + lid.x];
            }
            if (params.row_blocks == 1u) {
                out[params.out_offset + c] = total;
            } else {
                partials[wg.y * params.cols + c] = total;
            }
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256, 1, 1)
fn column_sum_finish(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var c = gid.x; c < params.cols; c += groups.x * WORKGROUP) {
        var acc = 0.0;
        for (var block = 0u; block < params.row_blocks; block++) {
            acc += partials[block * params.cols + c];
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
        partials[params.partial_base + wg.x] = total;
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
