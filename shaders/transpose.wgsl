// transpose.wgsl: out = srcᵀ, f32, row-major (a matmul operand laid out so the kernel stages
// it without transposing; see matmul.rs).
//
// Immediate data: Params { rows, cols, src_offset, out_offset, tiles_c, tiles, groups_x }
// Bindings (group 0):
//   0 src: storage r   array<vec4<f32>>  rows × cols from element src_offset; element i is
//                                        src[i / 4][i % 4]
//   1 out: storage rw  array<vec4<f32>>  cols × rows from element out_offset, every element
//                                        written
// Entry points and dispatch: the flat workgroup id wg.y · groups_x + wg.x enumerates tile
// rows, then tile columns (folded into two dimensions to stay under the per-dimension limit);
// ids past the last tile return at once.
//   transpose       any shape and offsets: one workgroup of 32 × 8 invocations per 32 × 32
//                   tile of src. Each invocation moves four elements in and four out through a
//                   32 × 33 workgroup tile (the extra column puts a tile column's 32 elements
//                   in 32 different banks), so both the global reads and the global writes run
//                   along rows: coalesced.
//   transpose_vec4  rows, cols and both offsets multiples of 4 (the host checks): one
//                   workgroup of 256 invocations per 64 × 64 tile of src, each moving the 4 × 4
//                   block at rows 4·(t / 16).., columns 4·(t % 16).. of it (t its index in the
//                   workgroup) as four vec4 loads along src's rows, transposed in registers
//                   into four vec4 stores along out's rows. A memory-bound kernel moving 16
//                   bytes per access issues a quarter of the scalar one's loads and stores;
//                   sixteen neighbouring invocations read 256 contiguous bytes of a src row,
//                   and each store fills a whole 32-byte sector of an out row.
//
// Formula: out[c, r] = src[r, c]
//
// Bounds: r < rows and c < cols are checked before every global access (transpose_vec4: of a
// block's first row and column; with rows and cols multiples of 4 and blocks starting on
// multiples of 4, the block's last row and column are then inside too, and every vec4 index
// is (a multiple of 4) / 4); the host has checked both extents against the bound buffers;
// the workgroup index is below 32 · 33.

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
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;

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
            let i = params.src_offset + r * params.cols + c;
            tile[tr * PITCH + lid.x] = src[i >> 2u][i & 3u];
        }
    }
    workgroupBarrier();
    // Output row c0 + tc holds source column c0 + tc: read it down the tile's column.
    for (var i = 0u; i < 4u; i++) {
        let tc = lid.y + 8u * i;
        let c = c0 + tc;
        let r = r0 + lid.x;
        if (r < params.rows && c < params.cols) {
            // One element alone: a store to one component writes that element only.
            let i = params.out_offset + c * params.rows + r;
            out[i >> 2u][i & 3u] = tile[lid.x * PITCH + tc];
        }
    }
}

const TILE4: u32 = 64u;

@compute @workgroup_size(256, 1, 1)
fn transpose_vec4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let id = wg.y * params.groups_x + wg.x;
    if (id >= params.tiles) {
        return;
    }
    let r = (id / params.tiles_c) * TILE4 + 4u * (t / 16u);
    let c = (id % params.tiles_c) * TILE4 + 4u * (t % 16u);
    if (r >= params.rows || c >= params.cols) {
        return;
    }
    var block: array<vec4<f32>, 4>;  // rows r..r + 3, columns c..c + 3 of src
    for (var i = 0u; i < 4u; i++) {
        block[i] = src[(params.src_offset + (r + i) * params.cols + c) >> 2u];
    }
    for (var j = 0u; j < 4u; j++) {
        let column = vec4<f32>(block[0][j], block[1][j], block[2][j], block[3][j]);
        out[(params.out_offset + (c + j) * params.rows + r) >> 2u] = column;
    }
}
