// matmul.wgsl: C = act(op(A) · op(B) + bias), f32, row-major, op() optionally transposing.
//
// Immediate data: Params (below); sizes, element offsets, the tile grid and the K split
// Bindings (group 0):
//   0 a:        storage, read  array<vec4<f32>>  A as stored: M×K, or K×M when TRANS_A
//   1 b:        storage, read  array<vec4<f32>>  B as stored: K×N, or N×K when TRANS_B
//   2 bias:     storage, read  array<f32>        N values, read only when HAS_BIAS
//   3 c:        storage, rw    array<f32>        C: M×N from element c_offset, every element
//                                                overwritten (and, with BIAS_GRAD, M sums from
//                                                sums_offset)
//   4 partials: storage, rw    array<f32>        SPLIT only: splits × M × N partial products
//   5 act_out:  storage, read  array<f32>        DERIVATIVE only: M×N outputs of the activation
//                                                whose derivative multiplies C (from act_offset)
//
// Entry points and dispatch:
//   matmul         one workgroup of WG_X × WG_Y invocations per (tile, K slice). The flat
//                  workgroup id wg.y · groups_x + wg.x enumerates K slice, then tile row, then
//                  tile column (the grid is folded into two dimensions so it stays under the
//                  device's per-dimension limit); ids past the last one return at once.
//                  Without SPLIT it writes act(acc + bias) to C; with SPLIT, the slice's raw
//                  sums to partials[slice · M·N + row · N + col].
//   matmul_reduce  SPLIT only, after `matmul`: (G, 1, 1) workgroups of 256, each invocation
//                  striding over the M·N outputs: C = act(Σ_slice partials (in slice order) +
//                  bias). The order is fixed, so results are the same run to run.
//
// `linear_backward.wgsl` sums a small layer's products in this kernel's order for an unsplit
// K (one fma per k, from 0.0, K padded with zeros to a multiple of K_STEP) and multiplies the
// derivative as it does: they must change together (tests compare their bits).
//
// Tile configurations (override constants, chosen per call by the host from M, N, K): a tile
// is TILE_M × TILE_N with TILE_M = 4·WG_Y·GROUPS_M and TILE_N = 4·WG_X·GROUPS_N. Each
// invocation accumulates GROUPS_M × GROUPS_N blocks of 4×4 in registers, at rows
// h·4·WG_Y + 4·ly + r and columns w·4·WG_X + 4·lx + j of the tile, so neighbouring invocations
// read neighbouring vec4s of workgroup memory. K advances K_STEP = 8 at a time: the
// TILE_M×8 slice of op(A) (staged transposed, K-major) and the 8×TILE_N slice of op(B) sit
// in workgroup memory, each invocation loading LOADS_A and LOADS_B vec4s of them (at most 4:
// the host keeps 8·TILE/4 within four times the invocation count); the next
// slice is loaded into registers while the current one is multiplied (with DOUBLE_BUFFER, also
// staged into the other buffer). Out-of-range elements (past M, N, or the end of this K slice)
// load as zeros, so edge tiles need no special path; only the final store is masked.
//
// With DERIVATIVE, C is further multiplied element by element by act'(·) computed from act_out,
// the output of activation DERIVATIVE_OF (the backward pass's δ·W ⊙ act'(output below), fused):
// identity 1, ReLU [a > 0], sigmoid a(1 − a), tanh 1 − a² (`activation.wgsl`, which the host
// prepends to this file: `activate` and `derivative_from_output`).
//
// With BIAS_GRAD (TRANS_A only, op(A) = δᵀ with δ stored K×M: a linear layer's weight
// gradient δᵀ·x), ⌈M / THREADS⌉ workgroups past the product's (flat ids tiles · splits and
// on) also write each Σ_k op(A)[m, k], the layer's bias gradient, to c[sums_offset + m], one
// invocation per m. The sums are added in `reduce.wgsl`'s `column_sum` order (blocks of
// sum_block_rows rows; in each, four lanes each summing every 4th row from 0.0, then the lanes
// in order; with several blocks, their totals summed from 0.0 in block order), so the result
// is bit for bit column_sum's.
//
// Global loads are vec4 when the stored row length and the element offset are multiples of 4
// (A_VEC4, B_VEC4, chosen by the host), else four masked scalar loads. The epilogue reads
// the bias and act_out and stores C element by element. (Storing whole vec4s, with the bias
// loaded once per invocation, measured no faster on an H200 at any of the report's products,
// and its edge-checked form made the 4096 model's training step 4.5 times slower there, 19.6
// against 4.3 ms, all of it in the fused products.)
//
// Bounds: every global index is offset + row · stride + col with row and col checked against
// the extents in `params`, which the host has checked against the bound buffers (the
// `_inside` loads skip the checks only where the tile and the slice lie inside them; with
// ALL_INSIDE the host has checked that every tile lies inside M × N, both operands' rows
// start on 16-byte boundaries and every K slice is whole K_STEPs, so every row, column and
// K index a workgroup loads or stores is inside, unchecked); workgroup
// indices stay below BUFFERS · SLICE_A and BUFFERS · SLICE_B, the arrays' lengths (stage_a and
// stage_b skip v ≥ SLICE, and the multiply reads kk < K_STEP, h·WG_Y + ly < TM4,
// w·WG_X + lx < TN4); accumulator indices stay below 4 · GROUPS_M · GROUPS_N ≤ 16 and the
// per-invocation load and operand indices below 4 (the host keeps GROUPS_M, GROUPS_N ≤ 2
// and LOADS ≤ 4). `bias_grad` reads A at rows below K and columns below M, and writes
// c[sums_offset + m] for m < M, a 1×M view of c's buffer the host has checked.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
// 0 identity, 1 ReLU, 2 sigmoid, 3 tanh (the host's activation code; it never passes others).
override ACTIVATION: u32 = 0u;
override A_VEC4: bool = false;
override B_VEC4: bool = false;
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override GROUPS_M: u32 = 2u;   // 1 or 2
override GROUPS_N: u32 = 2u;   // 1 or 2
override SPLIT: bool = false;
// Two staging buffers: the next slice is staged into one while the other is multiplied, so
// each K step needs one barrier instead of two (the host allows it where two slices fit).
override DOUBLE_BUFFER: bool = false;
override DERIVATIVE: bool = false;
override DERIVATIVE_OF: u32 = 0u;  // activation code, as ACTIVATION
override BIAS_GRAD: bool = false;
// Every tile lies inside M × N, both operands load as whole vec4s (A_VEC4, B_VEC4) and every
// K slice is a non-empty whole number of K_STEPs: the host sets it only then. Every tile then
// loads its interior slices unchecked and the epilogue checks no row or column. The main loop
// keeps the edge-checked kernel's shape (a checked fetch for a slice that would end past
// k_end, never taken here): without it the driver compiled the loop into code 15–20% slower
// on an H200 (4096³: 36 against 43–45 TFLOP/s; 128 registers against 122).
override ALL_INSIDE: bool = false;

override TM4: u32 = WG_Y * GROUPS_M;  // vec4s across a tile's rows: TILE_M / 4
override TN4: u32 = WG_X * GROUPS_N;  // vec4s across a tile's columns: TILE_N / 4
override THREADS: u32 = WG_X * WG_Y;
const K_STEP: u32 = 8u;  // K per staged slice
const KQ: u32 = 2u;      // vec4s along K in a staged row: K_STEP / 4
override SLICE_A: u32 = K_STEP * TM4;  // vec4s in one staged slice of op(A)
override SLICE_B: u32 = K_STEP * TN4;
override LOADS_A: u32 = (SLICE_A + THREADS - 1u) / THREADS;  // vec4s each invocation stages
override LOADS_B: u32 = (SLICE_B + THREADS - 1u) / THREADS;
override BUFFERS: u32 = select(1u, 2u, DOUBLE_BUFFER);
override STAGE_A: u32 = BUFFERS * SLICE_A;
override STAGE_B: u32 = BUFFERS * SLICE_B;
const REDUCE_WORKGROUP: u32 = 256u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_offset: u32,
    b_offset: u32,
    bias_offset: u32,
    c_offset: u32,
    tiles_n: u32,        // tile columns
    tiles: u32,          // tiles per K slice: tile rows × tile columns
    k_per_split: u32,    // K per slice, a multiple of K_STEP
    splits: u32,         // K slices (1 without SPLIT)
    groups_x: u32,       // workgroups along x in this dispatch
    act_offset: u32,     // DERIVATIVE: element offset of act_out's M×N values
    sums_offset: u32,    // BIAS_GRAD: element offset in c of the M sums
    sum_block_rows: u32, // BIAS_GRAD: rows per block of the sums (column_sum's)
    _pad0: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read> act_out: array<f32>;

// Staged slices, indexed [buffer · SLICE_A + kk · TM4 + row / 4] (op(A)ᵀ, K-major) and
// likewise for op(B); sized for this configuration, so small tiles leave room for more
// workgroups per compute unit.
var<workgroup> tile_a: array<vec4<f32>, STAGE_A>;
var<workgroup> tile_b: array<vec4<f32>, STAGE_B>;

// Four consecutive elements of stored row `row`, columns `col..col + 4` of A (row length
// `stride`), zero where row ≥ rows or column ≥ cols.
fn load_a4(row: u32, col: u32, rows: u32, cols: u32, stride: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < rows) {
        let base = params.a_offset + row * stride + col;
        if (A_VEC4 && col + 3u < cols) {
            v = a[base >> 2u];
        } else {
            for (var j = 0u; j < 4u; j++) {
                if (col + j < cols) {
                    let i = base + j;
                    v[j] = a[i >> 2u][i & 3u];
                }
            }
        }
    }
    return v;
}

fn load_b4(row: u32, col: u32, rows: u32, cols: u32, stride: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < rows) {
        let base = params.b_offset + row * stride + col;
        if (B_VEC4 && col + 3u < cols) {
            v = b[base >> 2u];
        } else {
            for (var j = 0u; j < 4u; j++) {
                if (col + j < cols) {
                    let i = base + j;
                    v[j] = b[i >> 2u][i & 3u];
                }
            }
        }
    }
    return v;
}

// The vec4 number `v` of the op(A) slice at (row0, k0), K ending at k_end. Without TRANS_A
// the slice's vec4s run along K (one stored row); with it, along M.
fn fetch_a(v: u32, row0: u32, k0: u32, k_end: u32) -> vec4<f32> {
    if (v >= SLICE_A) {
        return vec4<f32>(0.0);
    }
    if (TRANS_A) {
        return load_a4(k0 + v / TM4, row0 + (v % TM4) * 4u, k_end, params.m, params.m);
    }
    return load_a4(row0 + v / KQ, k0 + (v % KQ) * 4u, params.m, k_end, params.k);
}

// The vec4 number `v` of the op(B) slice at (k0, col0): along N without TRANS_B, along K
// with it.
fn fetch_b(v: u32, k0: u32, col0: u32, k_end: u32) -> vec4<f32> {
    if (v >= SLICE_B) {
        return vec4<f32>(0.0);
    }
    if (TRANS_B) {
        return load_b4(col0 + v / KQ, k0 + (v % KQ) * 4u, params.n, k_end, params.k);
    }
    return load_b4(k0 + v / TN4, col0 + (v % TN4) * 4u, k_end, params.n, params.n);
}

// `fetch_a` and `fetch_b` without the edge checks, for a workgroup whose tile lies inside
// M × N with both operands loaded as whole vec4s (A_VEC4, B_VEC4) and a slice that ends
// inside the K slice (k0 + K_STEP ≤ k_end): every element they read then exists.
fn fetch_a_inside(v: u32, row0: u32, k0: u32) -> vec4<f32> {
    if (v >= SLICE_A) {
        return vec4<f32>(0.0);
    }
    if (TRANS_A) {
        return a[(params.a_offset + (k0 + v / TM4) * params.m + row0 + (v % TM4) * 4u) >> 2u];
    }
    return a[(params.a_offset + (row0 + v / KQ) * params.k + k0 + (v % KQ) * 4u) >> 2u];
}

fn fetch_b_inside(v: u32, k0: u32, col0: u32) -> vec4<f32> {
    if (v >= SLICE_B) {
        return vec4<f32>(0.0);
    }
    if (TRANS_B) {
        return b[(params.b_offset + (col0 + v / KQ) * params.k + k0 + (v % KQ) * 4u) >> 2u];
    }
    return b[(params.b_offset + (k0 + v / TN4) * params.n + col0 + (v % TN4) * 4u) >> 2u];
}

// Stages into buffer `buf` (0, or 1 with DOUBLE_BUFFER): each buffer holds one slice.
fn stage_a(buf: u32, v: u32, x: vec4<f32>) {
    let base = buf * SLICE_A;
    if (v >= SLICE_A) {
        return;
    }
    if (TRANS_A) {
        tile_a[base + v] = x;
    } else {
        // x holds K = 4·(v % KQ) .. +4 of tile row v / KQ: scatter into the K-major slice.
        let row = v / KQ;
        for (var j = 0u; j < 4u; j++) {
            tile_a[base + ((v % KQ) * 4u + j) * TM4 + row / 4u][row % 4u] = x[j];
        }
    }
}

fn stage_b(buf: u32, v: u32, x: vec4<f32>) {
    let base = buf * SLICE_B;
    if (v >= SLICE_B) {
        return;
    }
    if (TRANS_B) {
        let col = v / KQ;
        for (var j = 0u; j < 4u; j++) {
            tile_b[base + ((v % KQ) * 4u + j) * TN4 + col / 4u][col % 4u] = x[j];
        }
    } else {
        tile_b[base + v] = x;
    }
}

// BIAS_GRAD: Σ_k op(A)[m, k] for the m of invocation t of the extra workgroup `group`, in
// `column_sum`'s order (see the header). Every index is checked against M and K.
fn bias_grad(group: u32, t: u32) {
    let m = group * THREADS + t;
    if (m >= params.m) {
        return;
    }
    let blocks = (params.k + params.sum_block_rows - 1u) / params.sum_block_rows;
    var total = 0.0;
    for (var block = 0u; block < blocks; block++) {
        let begin = block * params.sum_block_rows;
        let end = min(begin + params.sum_block_rows, params.k);
        // lanes[l] sums rows begin + l, begin + l + 4, …. Sixteen rows are loaded before any
        // is added, so the loads overlap; a lane whose row is past the block keeps its sum
        // (selected, not added to, so nothing depends on how a driver treats x + 0.0).
        var lanes = vec4<f32>(0.0);
        for (var r = begin; r < end; r += 16u) {
            var rows: array<vec4<f32>, 4>;
            for (var j = 0u; j < 4u; j++) {
                for (var lane = 0u; lane < 4u; lane++) {
                    let row = r + 4u * j + lane;
                    if (row < end) {
                        let i = params.a_offset + row * params.m + m;
                        rows[j][lane] = a[i >> 2u][i & 3u];
                    }
                }
            }
            for (var j = 0u; j < 4u; j++) {
                let row = vec4<u32>(r + 4u * j) + vec4<u32>(0u, 1u, 2u, 3u);
                lanes = select(lanes, lanes + rows[j], row < vec4<u32>(end));
            }
        }
        let block_total = ((lanes.x + lanes.y) + lanes.z) + lanes.w;
        if (blocks == 1u) {
            total = block_total;
        } else {
            total += block_total;
        }
    }
    c[params.sums_offset + m] = total;
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let id = wg.y * params.groups_x + wg.x;
    if (BIAS_GRAD && TRANS_A && id >= params.tiles * params.splits) {
        bias_grad(id - params.tiles * params.splits, lid.y * WG_X + lid.x);
        return;
    }
    if (id >= params.tiles * params.splits) {
        return;
    }
    let slice = id / params.tiles;
    let tile = id % params.tiles;
    let row0 = (tile / params.tiles_n) * (4u * TM4);
    let col0 = (tile % params.tiles_n) * (4u * TN4);
    let k_begin = slice * params.k_per_split;
    let k_end = min(k_begin + params.k_per_split, params.k);
    let t = lid.y * WG_X + lid.x;

    // [(h · 4 + r) · GROUPS_N + w]: row group h, row r, column group w
    var acc: array<vec4<f32>, 16>;
    var next_a: array<vec4<f32>, 4>;
    var next_b: array<vec4<f32>, 4>;
    // Tiles inside M × N (most of a large product's) load interior slices unchecked; the
    // choice is the same for the whole workgroup, so it costs no divergence.
    let inside = ALL_INSIDE
        || (A_VEC4 && B_VEC4 && row0 + 4u * TM4 <= params.m && col0 + 4u * TN4 <= params.n);
    if (inside && k_begin + K_STEP <= k_end) {
        for (var i = 0u; i < LOADS_A; i++) {
            next_a[i] = fetch_a_inside(t + i * THREADS, row0, k_begin);
        }
        for (var i = 0u; i < LOADS_B; i++) {
            next_b[i] = fetch_b_inside(t + i * THREADS, k_begin, col0);
        }
    } else {
        for (var i = 0u; i < LOADS_A; i++) {
            next_a[i] = fetch_a(t + i * THREADS, row0, k_begin, k_end);
        }
        for (var i = 0u; i < LOADS_B; i++) {
            next_b[i] = fetch_b(t + i * THREADS, k_begin, col0, k_end);
        }
    }

    var buf = 0u;
    if (DOUBLE_BUFFER) {
        for (var i = 0u; i < LOADS_A; i++) {
            stage_a(0u, t + i * THREADS, next_a[i]);
        }
        for (var i = 0u; i < LOADS_B; i++) {
            stage_b(0u, t + i * THREADS, next_b[i]);
        }
        workgroupBarrier();
    }
    for (var k0 = k_begin; k0 < k_end; k0 += K_STEP) {
        let more = k0 + K_STEP < k_end;
        if (!DOUBLE_BUFFER) {
            for (var i = 0u; i < LOADS_A; i++) {
                stage_a(0u, t + i * THREADS, next_a[i]);
            }
            for (var i = 0u; i < LOADS_B; i++) {
                stage_b(0u, t + i * THREADS, next_b[i]);
            }
            workgroupBarrier();
        }
        if (inside && k0 + 2u * K_STEP <= k_end) {
            for (var i = 0u; i < LOADS_A; i++) {
                next_a[i] = fetch_a_inside(t + i * THREADS, row0, k0 + K_STEP);
            }
            for (var i = 0u; i < LOADS_B; i++) {
                next_b[i] = fetch_b_inside(t + i * THREADS, k0 + K_STEP, col0);
            }
        } else if (more) {
            for (var i = 0u; i < LOADS_A; i++) {
                next_a[i] = fetch_a(t + i * THREADS, row0, k0 + K_STEP, k_end);
            }
            for (var i = 0u; i < LOADS_B; i++) {
                next_b[i] = fetch_b(t + i * THREADS, k0 + K_STEP, col0, k_end);
            }
        }
        let base_a = buf * SLICE_A;
        let base_b = buf * SLICE_B;
        for (var kk = 0u; kk < K_STEP; kk++) {
            var bv: array<vec4<f32>, 2>;
            for (var w = 0u; w < GROUPS_N; w++) {
                bv[w] = tile_b[base_b + kk * TN4 + w * WG_X + lid.x];
            }
            for (var h = 0u; h < GROUPS_M; h++) {
                let av = tile_a[base_a + kk * TM4 + h * WG_Y + lid.y];
                for (var r = 0u; r < 4u; r++) {
                    for (var w = 0u; w < GROUPS_N; w++) {
                        let i = (h * 4u + r) * GROUPS_N + w;
                        acc[i] = fma(vec4<f32>(av[r]), bv[w], acc[i]);
                    }
                }
            }
        }
        if (DOUBLE_BUFFER) {
            // Nobody reads the other buffer in this step (the barrier ending the last step saw
            // to that), so the next slice goes there now, and one barrier publishes it.
            if (more) {
                for (var i = 0u; i < LOADS_A; i++) {
                    stage_a(1u - buf, t + i * THREADS, next_a[i]);
                }
                for (var i = 0u; i < LOADS_B; i++) {
                    stage_b(1u - buf, t + i * THREADS, next_b[i]);
                }
            }
            buf = 1u - buf;
        }
        workgroupBarrier();
    }

    let mn = params.m * params.n;
    for (var h = 0u; h < GROUPS_M; h++) {
        for (var r = 0u; r < 4u; r++) {
            let row = row0 + h * 4u * WG_Y + lid.y * 4u + r;
            if (!ALL_INSIDE && row >= params.m) {
                continue;
            }
            for (var w = 0u; w < GROUPS_N; w++) {
                let col = col0 + w * 4u * WG_X + lid.x * 4u;
                var v = acc[(h * 4u + r) * GROUPS_N + w];
                if (SPLIT) {
                    let base = slice * mn + row * params.n + col;
                    for (var j = 0u; j < 4u; j++) {
                        if (ALL_INSIDE || col + j < params.n) {
                            partials[base + j] = v[j];
                        }
                    }
                    continue;
                }
                if (HAS_BIAS) {
                    for (var j = 0u; j < 4u; j++) {
                        if (ALL_INSIDE || col + j < params.n) {
                            v[j] += bias[params.bias_offset + col + j];
                        }
                    }
                }
                v = activate(ACTIVATION, v);
                let at = row * params.n + col;
                for (var j = 0u; j < 4u; j++) {
                    if (ALL_INSIDE || col + j < params.n) {
                        var x = v[j];
                        if (DERIVATIVE) {
                            x *= derivative_from_output(DERIVATIVE_OF, act_out[params.act_offset + at + j]);
                        }
                        c[params.c_offset + at + j] = x;
                    }
                }
            }
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn matmul_reduce(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let mn = params.m * params.n;
    for (var e = gid.x; e < mn; e += groups.x * REDUCE_WORKGROUP) {
        var sum = 0.0;
        for (var s = 0u; s < params.splits; s++) {
            sum += partials[s * mn + e];
        }
        if (HAS_BIAS) {
            sum += bias[params.bias_offset + e % params.n];
        }
        var x = activate(ACTIVATION, vec4<f32>(sum)).x;
        if (DERIVATIVE) {
            x *= derivative_from_output(DERIVATIVE_OF, act_out[params.act_offset + e]);
        }
        c[params.c_offset + e] = x;
    }
}
