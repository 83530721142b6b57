// gather.wgsl: gather rows of a matrix by index (a mini-batch from the uploaded dataset), or of
// two matrices by the same indices at once (a batch's inputs and targets, in one dispatch).
//
// Immediate data: Params { rows, cols, start, out_offset, src_offset,
//                          y_cols, y_src_offset, y_out_offset, first_row, shard_rows }
// Bindings (group 0):
//   0 src:     storage r   array<f32>  the source matrix, row-major, `cols` wide, from src_offset
//   1 indices: storage r   array<u32>  source row of output row r is indices[start + r]
//   2 out:     storage rw  array<f32>  rows × cols from element out_offset on
//   3 y_src:   storage r   array<f32>  gather_batch only: the second source, `y_cols` wide,
//                                      from y_src_offset
//   4 y_out:   storage rw  array<f32>  gather_batch only: rows × y_cols from y_out_offset on
// Entry points and dispatch: (G, 1, 1) workgroups of 256, G ≤ 4096, each invocation striding
// through the output elements (consecutive invocations copy consecutive columns: coalesced):
//   gather_rows   the rows·cols elements of out
//   gather_batch  the rows·cols elements of out, then the rows·y_cols of y_out. The sources
//                 hold one shard of the data: its rows first_row .. first_row + shard_rows
//                 (a dataset over the binding limit is held in several, one dispatch each).
//                 Output rows whose index falls outside the shard are left as they are.
//
// Formula: out[r, c] = src[indices[start + r], c]; gather_batch, where
// first_row ≤ i = indices[start + r] < first_row + shard_rows:
// out[r, c] = src[i − first_row, c], y_out[r, c] = y_src[i − first_row, c]
//
// Bounds: r < rows, c < cols (y_cols) by construction of the element index; a shard's source
// row i − first_row < shard_rows by the check before the read; the host has checked every
// index against the source's rows (gather_batch: against the rows of all shards together) and
// every extent against the bound buffers.

const WORKGROUP: u32 = 256u;

struct Params {
    rows: u32,
    cols: u32,
    start: u32,
    out_offset: u32,
    src_offset: u32,
    y_cols: u32,
    y_src_offset: u32,
    y_out_offset: u32,
    first_row: u32,  // gather_batch: the shard's first row of the data
    shard_rows: u32, // gather_batch: the shard's rows
    _pad0: u32,
    _pad1: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> y_src: array<f32>;
@group(0) @binding(4) var<storage, read_write> y_out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn gather_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let total = params.rows * params.cols;
    for (var e = gid.x; e < total; e += groups.x * WORKGROUP) {
        let r = e / params.cols;
        let c = e - r * params.cols;
        let source_row = indices[params.start + r];
        out[params.out_offset + e] = src[params.src_offset + source_row * params.cols + c];
    }
}

@compute @workgroup_size(256, 1, 1)
fn gather_batch(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let x_total = params.rows * params.cols;
    let total = x_total + params.rows * params.y_cols;
    for (var e = gid.x; e < total; e += groups.x * WORKGROUP) {
        if (e < x_total) {
            let r = e / params.cols;
            let c = e - r * params.cols;
            let index = indices[params.start + r];
            if (index >= params.first_row && index - params.first_row < params.shard_rows) {
                let source_row = index - params.first_row;
                out[params.out_offset + e] =
                    src[params.src_offset + source_row * params.cols + c];
            }
        } else {
            let f = e - x_total;
            let r = f / params.y_cols;
            let c = f - r * params.y_cols;
            let index = indices[params.start + r];
            if (index >= params.first_row && index - params.first_row < params.shard_rows) {
                let source_row = index - params.first_row;
                y_out[params.y_out_offset + f] =
                    y_src[params.y_src_offset + source_row * params.y_cols + c];
            }
        }
    }
}
