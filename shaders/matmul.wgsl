// matmul.wgsl: C = act(op(A) · op(B) + bias), f32, row-major, op() optionally transposing.
//
// Bindings (group 0):
//   0 params: uniform Params (below); sizes and element offsets into each buffer
//   1 a:      storage, read  array<vec4<f32>>  A as stored: M×K, or K×M when TRANS_A
//   2 b:      storage, read  array<vec4<f32>>  B as stored: K×N, or N×K when TRANS_B
//   3 bias:   storage, read  array<f32>        N values, read only when HAS_BIAS
//   4 c:      storage, rw    array<f32>        C: M×N, every element overwritten
// Dispatch: (ceil(N / 128), ceil(M / 128), 1) workgroups of 16×16 invocations, in pieces of at
// most the device's per-dimension limit (row_tile_base, col_tile_base say which piece).
//
// Each workgroup computes one 128×128 tile of C. K advances 8 at a time: the 128×8 slice of
// op(A) and the 8×128 slice of op(B) are staged in workgroup memory, op(A)'s transposed so both
// are read as vec4 along the output's rows and columns. Each invocation accumulates an 8×8
// block of C in registers, as rows {4·ly + r, 64 + 4·ly + r} and columns {4·lx + j, 64 + 4·lx + j}
// of the tile, so that neighbouring invocations read neighbouring vec4s from workgroup memory.
// The next K-slice is loaded from global memory into registers while the current one is
// multiplied (one stage of prefetch). Out-of-range elements are loaded as zeros, so edge tiles
// need no special path; only the final store is masked.
//
// Global loads are vec4 when the stored row length and the element offset are multiples of 4
// (A_VEC4, B_VEC4, chosen by the host), else four masked scalar loads.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
// 0 identity, 1 ReLU, 2 sigmoid, 3 tanh (Activation::shader_code on the host).
override ACTIVATION: u32 = 0u;
override A_VEC4: bool = false;
override B_VEC4: bool = false;

const TILE: u32 = 128u;      // output rows and columns per workgroup
const HALF: u32 = 64u;       // an invocation's two row (column) groups are HALF apart
const TILE_K: u32 = 8u;      // K per stage
const TILE_VEC4: u32 = 32u;  // TILE / 4: vec4s per K-row of a staged slice

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_offset: u32,
    b_offset: u32,
    bias_offset: u32,
    c_offset: u32,
    row_tile_base: u32,   // first tile row and column of this dispatch: a grid wider than the
    col_tile_base: u32,   // device's per-dimension workgroup limit is dispatched in pieces
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// Staged slices, indexed [k * TILE_VEC4 + i / 4]: op(A)ᵀ (K-major) and op(B).
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

// Four consecutive elements of stored row `row`, columns `col..col + 4`, zero outside rows×cols.
fn load_a4(row: u32, col: u32, rows: u32, cols: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < rows) {
        let base = params.a_offset + row * cols + col;
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

fn load_b4(row: u32, col: u32, rows: u32, cols: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < rows) {
        let base = params.b_offset + row * cols + col;
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

// The 4 values invocation `t` (0..256) contributes to the op(A) slice at (row0, k0). Without
// TRANS_A they run along K (one stored row); with it, along M.
fn fetch_a(t: u32, row0: u32, k0: u32) -> vec4<f32> {
    if (TRANS_A) {
        return load_a4(k0 + t / TILE_VEC4, row0 + (t % TILE_VEC4) * 4u, params.k, params.m);
    }
    return load_a4(row0 + t / 2u, k0 + (t % 2u) * 4u, params.m, params.k);
}

// The 4 values invocation `t` contributes to the op(B) slice at (k0, col0): along N without
// TRANS_B, along K with it.
fn fetch_b(t: u32, k0: u32, col0: u32) -> vec4<f32> {
    if (TRANS_B) {
        return load_b4(col0 + t / 2u, k0 + (t % 2u) * 4u, params.n, params.k);
    }
    return load_b4(k0 + t / TILE_VEC4, col0 + (t % TILE_VEC4) * 4u, params.k, params.n);
}

fn stage_a(t: u32, v: vec4<f32>) {
    if (TRANS_A) {
        tile_a[t] = v;
    } else {
        // v holds K = 4·(t % 2) .. +4 of tile row t / 2: scatter into the K-major slice.
        let row = t / 2u;
        for (var j = 0u; j < 4u; j++) {
            tile_a[((t % 2u) * 4u + j) * TILE_VEC4 + row / 4u][row % 4u] = v[j];
        }
    }
}

fn stage_b(t: u32, v: vec4<f32>) {
    if (TRANS_B) {
        let col = t / 2u;
        for (var j = 0u; j < 4u; j++) {
            tile_b[((t % 2u) * 4u + j) * TILE_VEC4 + col / 4u][col % 4u] = v[j];
        }
    } else {
        tile_b[t] = v;
    }
}

fn activate(x: vec4<f32>) -> vec4<f32> {
    switch ACTIVATION {
        case 1u: {
            return max(x, vec4<f32>(0.0));
        }
        case 2u: {
            // Never exponentiates a positive number, so no overflow for any x.
            let e = exp(-abs(x));
            return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= vec4<f32>(0.0));
        }
        case 3u: {
            // Built-in tanh is NaN for large |x| on some drivers; this form is finite everywhere.
            let e = exp(-2.0 * abs(x));
            return sign(x) * (1.0 - e) / (1.0 + e);
        }
        default: {
            return x;
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = (wg.y + params.row_tile_base) * TILE;
    let col0 = (wg.x + params.col_tile_base) * TILE;
    let t = lid.y * 16u + lid.x;

    var acc: array<vec4<f32>, 16>;  // [(h * 4 + r) * 2 + w]: row group h, row r, column group w
    var next_a = fetch_a(t, row0, 0u);
    var next_b = fetch_b(t, 0u, col0);

    for (var k0 = 0u; k0 < params.k; k0 += TILE_K) {
        stage_a(t, next_a);
        stage_b(t, next_b);
        workgroupBarrier();
        if (k0 + TILE_K < params.k) {
            next_a = fetch_a(t, row0, k0 + TILE_K);
            next_b = fetch_b(t, k0 + TILE_K, col0);
        }
        for (var kk = 0u; kk < TILE_K; kk++) {
            let a_lo = tile_a[kk * TILE_VEC4 + lid.y];
            let a_hi = tile_a[kk * TILE_VEC4 + 16u + lid.y];
            let b_lo = tile_b[kk * TILE_VEC4 + lid.x];
            let b_hi = tile_b[kk * TILE_VEC4 + 16u + lid.x];
            for (var r = 0u; r < 4u; r++) {
                acc[r * 2u] = fma(vec4<f32>(a_lo[r]), b_lo, acc[r * 2u]);
                acc[r * 2u + 1u] = fma(vec4<f32>(a_lo[r]), b_hi, acc[r * 2u + 1u]);
                acc[8u + r * 2u] = fma(vec4<f32>(a_hi[r]), b_lo, acc[8u + r * 2u]);
                acc[8u + r * 2u + 1u] = fma(vec4<f32>(a_hi[r]), b_hi, acc[8u + r * 2u + 1u]);
            }
        }
        workgroupBarrier();
    }

    for (var h = 0u; h < 2u; h++) {
        for (var r = 0u; r < 4u; r++) {
            let row = row0 + h * HALF + lid.y * 4u + r;
            if (row >= params.m) {
                continue;
            }
            for (var w = 0u; w < 2u; w++) {
                let col = col0 + w * HALF + lid.x * 4u;
                var v = acc[(h * 4u + r) * 2u + w];
                if (HAS_BIAS) {
                    for (var j = 0u; j < 4u; j++) {
                        if (col + j < params.n) {
                            v[j] += bias[params.bias_offset + col + j];
                        }
                    }
                }
                v = activate(v);
                let base = params.c_offset + row * params.n + col;
                for (var j = 0u; j < 4u; j++) {
                    if (col + j < params.n) {
                        c[base + j] = v[j];
                    }
                }
            }
        }
    }
}
