// transpose.wgsl: out = srcᵀ, f32, row-major (a matmul operand laid out so the kernel stages
// it without transposing; see matmul.rs).
//
// Immediate data: Params { rows, cols, src_offset, out_offset, tiles_c, tiles, groups_x }
// Bindings (group 0):
//   0 src: storage r   array<f32>  rows × cols from element src_offset
//   1 out: storage rw  array<f32>  cols × rows from element out_offset, every element written
// Dispatch: one workgroup of 32 × 8 invocations per 32 × 32 tile of src; the flat workgroup id
// wg.y · groups_x + wg.x enumerates tile rows, then tile columns (folded into two dimensions
// to stay under the per-dimension limit); ids past the last tile return at once.
//
// Formula: out[c, r] = src[r, c]
//
// Each invocation moves four elements in and four out through a 32 × 33 workgroup tile (the
// extra column puts a tile column's 32 elements in 32 different banks), so both the global
// reads and the global writes run along rows: coalesced.
//
// Bounds: r < rows and c < cols are checked before every global access; the host has checked
// both extents against the bound buffers; the workgroup index is below 32 · 33.

const TILE: u32 = 32u;
const PITCH: u32 = 33u;

struct Params {
    rows: u32,
    cols: u32,
    src_offset: u32,
    out_offset: u32,
    tiles_c: u32,  // tile columns: ceil(cols / 32)
    tiles: u32,    // all tiles
    groups_x: u32, // workgroups along x in this dispatch
    _pad0: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

var<workgroup> tile: array<f32, 1056>;  // TILE × PITCH

@compute @workgroup_size(32, 8, 1)
fn transpose(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let id = wg.y * params.groups_x + wg.x;
    if (id >= params.tiles) {
        return;
    }
    let r0 = (id / params.tiles_c) * TILE;
    let c0 = (id % params.tiles_c) * TILE;
    for (var i = 0u; i < 4u; i++) {
        let tr = lid.y + 8u * i;
        let r = r0 + tr;
        let c = c0 + lid.x;
        if (r < params.rows && c < params.cols) {
            tile[tr * PITCH + lid.x] = src[params.src_offset + r * params.cols + c];
        }
    }
    workgroupBarrier();
    // Output row c0 + tc holds source column c0 + tc: read it down the tile's column.
    for (var i = 0u; i < 4u; i++) {
        let tc = lid.y + 8u * i;
        let c = c0 + tc;
        let r = r0 + lid.x;
        if (r < params.rows && c < params.cols) {
            out[params.out_offset + c * params.rows + r] = tile[lid.x * PITCH + tc];
        }
    }
}
