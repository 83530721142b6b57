// gather.wgsl: gather rows of a matrix by index (a mini-batch from the uploaded dataset).
//
// Immediate data: Params { rows, cols, start, out_offset, src_offset }
// Bindings (group 0):
//   0 src:     storage r   array<f32>  the source matrix, row-major, `cols` wide, from src_offset
//   1 indices: storage r   array<u32>  source row of output row r is indices[start + r]
//   2 out:     storage rw  array<f32>  rows × cols from element out_offset on
// Dispatch: (G, 1, 1) workgroups of 256, G ≤ 4096, each invocation striding through the
// rows·cols output elements (consecutive invocations copy consecutive columns: coalesced).
//
// Formula: out[r, c] = src[indices[start + r], c]

const WORKGROUP: u32 = 256u;

struct Params {
    rows: u32,
    cols: u32,
    start: u32,
    out_offset: u32,
    src_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

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
