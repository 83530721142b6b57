// transpose.wgsl: out = srcᵀ, f32, row-major (a matmul operand laid out so the kernel stages
// it without transposing; see matmul.rs).
//
// Immediate data: Jobs { rows, cols, src_offset, out_offset, tiles_c (each a vec2: job 0's,
// job 1's), tiles0, tiles, groups_x }; one job reads the .x halves only.
// Bindings (group 0):
//   0 src: storage r   array<vec4<f32>>  rows × cols from element src_offset; element i is
//                                        src[i / 4][i % 4]
//   1 out: storage rw  array<vec4<f32>>  cols × rows from element out_offset, every element
//                                        written
//   2 src1, 3 out1                       transpose_vec4_pair's second job's (as 0 and 1);
//                                        placeholders for the other entry points
// Entry points and dispatch: the flat workgroup id wg.y · groups_x + wg.x enumerates tile
// rows, then tile columns (folded into two dimensions to stay under the per-dimension limit);
// ids past the last tile return at once.
//   transpose       any shape and offsets: one workgroup of 32 × 8 invocations per 32 × 32
//                   tile of src. Each invocation moves four elements in and four out through a
//                   32 × 33 workgroup tile (the extra column puts a tile column's 32 elements
//                   in 32 different banks), so both the global reads and the global writes run
//                   along rows: coalesced.
//   transpose_vec4  rows, cols and both offsets multiples of 4 (the host checks): one
//                   workgroup of 256 invocations per 64 × 64 tile of src. Invocation t loads
//                   the 4 × 4 block at block row t / 16, block column t % 16 of it as four vec4
//                   loads along src's rows (sixteen neighbouring invocations read 256
//                   contiguous bytes of a row), transposes it in registers and puts its four
//                   columns in workgroup memory; after a barrier it stores the vec4 at block
//                   row t % 16 of out rows 16·i + t / 16 (i < 4) of the tile from there,
//                   sixteen neighbouring invocations writing 256 contiguous bytes of an out
//                   row. Both sides move whole vec4s along rows: a quarter of the scalar
//                   kernel's accesses, and every global access coalesced.
//   transpose_vec4_pair  two such jobs in one dispatch (a pretransposed NT product's two
//                   operands): flat ids below tiles0 are job 0's tiles, the next job 1's. The
//                   smaller operand's tiles (the forward's batch) then stream beside the
//                   larger's instead of running as a partial wave of their own, with one
//                   barrier fewer between dispatches (the patch this came from ran the 4096
//                   model's forward 0.6% faster on an H200, twenty-fifth session).
//
// Formula: out[c, r] = src[r, c]
//
// Bounds: r < rows and c < cols are checked before every global access (transpose_vec4: of a
// block's first row and column; with rows and cols multiples of 4 and blocks starting on
// multiples of 4, the block's last row and column are then inside too, and every vec4 index
// is (a multiple of 4) / 4); the host has checked both extents against the bound buffers;
// workgroup indices are below 32 · 33 (`tile`) and 64 · 16 (`columns`: column < 64, slot
// q ^ x < 16 for q < 16, x < 8).

const TILE: u32 = 32u;
const PITCH: u32 = 33u;

struct Jobs {
    rows: vec2<u32>,
    cols: vec2<u32>,
    src_offset: vec2<u32>,
    out_offset: vec2<u32>,
    tiles_c: vec2<u32>,  // each job's tile columns: ceil(cols / tile width)
    tiles0: u32,         // job 0's tiles
    tiles: u32,          // all tiles
    groups_x: u32,       // workgroups along x in this dispatch
    _pad0: u32,
}

var<immediate> jobs: Jobs;
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> src1: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out1: array<vec4<f32>>;

var<workgroup> tile: array<f32, 1056>;  // TILE × PITCH

@compute @workgroup_size(32, 8, 1)
fn transpose(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let id = wg.y * jobs.groups_x + wg.x;
    if (id >= jobs.tiles) {
        return;
    }
    let r0 = (id / jobs.tiles_c.x) * TILE;
    let c0 = (id % jobs.tiles_c.x) * TILE;
    for (var i = 0u; i < 4u; i++) {
        let tr = lid.y + 8u * i;
        let r = r0 + tr;
        let c = c0 + lid.x;
        if (r < jobs.rows.x && c < jobs.cols.x) {
            let i = jobs.src_offset.x + r * jobs.cols.x + c;
            tile[tr * PITCH + lid.x] = src[i >> 2u][i & 3u];
        }
    }
    workgroupBarrier();
    // Output row c0 + tc holds source column c0 + tc: read it down the tile's column.
    for (var i = 0u; i < 4u; i++) {
        let tc = lid.y + 8u * i;
        let c = c0 + tc;
        let r = r0 + lid.x;
        if (r < jobs.rows.x && c < jobs.cols.x) {
            // One element alone: a store to one component writes that element only.
            let i = jobs.out_offset.x + c * jobs.rows.x + r;
            out[i >> 2u][i & 3u] = tile[lid.x * PITCH + tc];
        }
    }
}

const TILE4: u32 = 64u;
const BLOCKS4: u32 = 16u;  // 4 × 4 blocks along a side of the tile

// The tile's columns (out's rows), each as 16 vec4s of 4 source rows: [column · 16 + slot],
// the vec4 of block row q in slot q ^ ((column / 4) & 7). The XOR puts the vec4s that eight
// neighbouring invocations store (one column of eight blocks side by side) and those they
// load back (eight block rows of one column) in eight different 16-byte bank groups.
var<workgroup> columns: array<vec4<f32>, 1024>;  // TILE4 × BLOCKS4

// Moves tile `id` of job `job` (0: src → out, 1: src1 → out1). Called with a constant job,
// so each copy inlined reads one pair of bindings, without a branch per access.
fn move_tile_vec4(job: u32, id: u32, t: u32) {
    let rows = jobs.rows[job];
    let cols = jobs.cols[job];
    let r0 = (id / jobs.tiles_c[job]) * TILE4;
    let c0 = (id % jobs.tiles_c[job]) * TILE4;
    // Loads: the block at block row br, block column bc.
    let br = t / BLOCKS4;
    let bc = t % BLOCKS4;
    let r = r0 + 4u * br;
    let c = c0 + 4u * bc;
    if (r < rows && c < cols) {
        var block: array<vec4<f32>, 4>;  // rows r..r + 3, columns c..c + 3 of src
        for (var i = 0u; i < 4u; i++) {
            let at = (jobs.src_offset[job] + (r + i) * cols + c) >> 2u;
            if (job == 0u) {
                block[i] = src[at];
            } else {
                block[i] = src1[at];
            }
        }
        for (var j = 0u; j < 4u; j++) {
            let column = vec4<f32>(block[0][j], block[1][j], block[2][j], block[3][j]);
            columns[(4u * bc + j) * BLOCKS4 + (br ^ (bc & 7u))] = column;
        }
    }
    workgroupBarrier();
    // Stores: tile column (out row) 16·i + t / 16, block row t % 16, as loaded above by the
    // invocation whose block holds it (written there exactly when the checks below hold:
    // rows and cols are multiples of 4).
    let q = t % BLOCKS4;
    for (var i = 0u; i < 4u; i++) {
        let column = BLOCKS4 * i + t / BLOCKS4;
        let oc = c0 + column;
        let orr = r0 + 4u * q;
        if (oc < cols && orr < rows) {
            let v = columns[column * BLOCKS4 + (q ^ ((column / 4u) & 7u))];
            let at = (jobs.out_offset[job] + oc * rows + orr) >> 2u;
            if (job == 0u) {
                out[at] = v;
            } else {
                out1[at] = v;
            }
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn transpose_vec4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let id = wg.y * jobs.groups_x + wg.x;
    if (id >= jobs.tiles) {
        return;
    }
    move_tile_vec4(0u, id, t);
}

@compute @workgroup_size(256, 1, 1)
fn transpose_vec4_pair(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let id = wg.y * jobs.groups_x + wg.x;
    if (id >= jobs.tiles) {
        return;
    }
    // Uniform across the workgroup, so the barrier inside is reached by all or none.
    if (id < jobs.tiles0) {
        move_tile_vec4(0u, id, t);
    } else {
        move_tile_vec4(1u, id - jobs.tiles0, t);
    }
}
