// layer_norm.wgsl: layer normalisation over each row's `cols` features (PyTorch's
// nn.LayerNorm(cols) with its affine gain γ and shift β), forward and backward; with CENTERED
// false, root-mean-square normalisation (nn.RMSNorm(cols) with its gain γ: no mean taken out,
// no shift).
//
// Immediate data: Params { rows, cols, x_offset, gamma_offset, third_offset, stats_offset,
//                          out_offset, prod_offset, eps }
// Bindings (group 0, shared by both entry points):
//   0 x:      storage r   array<f32>  rows × cols, the layer's input
//   1 gamma:  storage r   array<f32>  cols
//   2 third:  storage r   array<f32>  forward: β (cols; not read unless CENTERED); backward:
//                                     ∂loss/∂y (rows × cols)
//   3 stats:  storage rw  array<f32>  rows × 2: (mean, 1/σ) per row (mean 0 unless CENTERED),
//                                     written forward, read back
//   4 out:    storage rw  array<f32>  forward: y; backward: ∂loss/∂x (rows × cols)
//   5 prod:   storage rw  array<f32>  backward: g ⊙ x̂ (rows × cols), whose column sums are
//                                     ∂loss/∂γ; untouched forward
// Dispatch: (G, 1, 1) workgroups of 64, G ≤ 4096, one workgroup per row (striding over rows).
//
// Per row, with n = cols, biased variance and x̂ = (x − mean) / σ, σ = sqrt(var + eps):
//   forward   mean = Σx / n; var = Σ(x − mean)² / n; y = x̂ · γ + β
//   backward  h = g · γ; dx = (h − Σh / n − x̂ · Σ(h · x̂) / n) / σ; prod = g · x̂
// and without CENTERED, mean = 0 (var is then the mean square) and neither β nor Σh / n:
//   forward   y = x̂ · γ; backward dx = (h − x̂ · Σ(h · x̂) / n) / σ
// Each sum is a fixed strided order per invocation, then a fixed tree: deterministic.

override CENTERED: bool = true;

const WORKGROUP: u32 = 64u;

struct Params {
    rows: u32,
    cols: u32,
    x_offset: u32,
    gamma_offset: u32,
    third_offset: u32,
    stats_offset: u32,
    out_offset: u32,
    prod_offset: u32,
    eps: f32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> third: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> prod: array<f32>;

var<workgroup> partial: array<vec2<f32>, WORKGROUP>;

// The workgroup's sum of each invocation's `value`, in a fixed tree; every invocation gets it.
fn workgroup_sum(lid: u32, value: vec2<f32>) -> vec2<f32> {
    partial[lid] = value;
    workgroupBarrier();
    for (var width = WORKGROUP / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            partial[lid] += partial[lid + width];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64, 1, 1)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = f32(params.cols);
    for (var r = wid.x; r < params.rows; r += groups.x) {
        let row = params.x_offset + r * params.cols;
        var mean = 0.0;
        if (CENTERED) {
            var s = 0.0;
            for (var c = lid; c < params.cols; c += WORKGROUP) {
                s += x[row + c];
            }
            mean = workgroup_sum(lid, vec2<f32>(s, 0.0)).x / n;
        }
        var q = 0.0;
        for (var c = lid; c < params.cols; c += WORKGROUP) {
            let d = x[row + c] - mean;
            q += d * d;
        }
        let variance = workgroup_sum(lid, vec2<f32>(q, 0.0)).x / n;
        let rstd = 1.0 / sqrt(variance + params.eps);
        let o = params.out_offset + r * params.cols;
        for (var c = lid; c < params.cols; c += WORKGROUP) {
            let xhat = (x[row + c] - mean) * rstd;
            var y = xhat * gamma[params.gamma_offset + c];
            if (CENTERED) {
                y += third[params.third_offset + c];
            }
            out[o + c] = y;
        }
        if (lid == 0u) {
            stats[params.stats_offset + 2u * r] = mean;
            stats[params.stats_offset + 2u * r + 1u] = rstd;
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = f32(params.cols);
    for (var r = wid.x; r < params.rows; r += groups.x) {
        let row = params.x_offset + r * params.cols;
        let grow = params.third_offset + r * params.cols;
        let mean = stats[params.stats_offset + 2u * r];
        let rstd = stats[params.stats_offset + 2u * r + 1u];
        var sums = vec2<f32>(0.0);
        for (var c = lid; c < params.cols; c += WORKGROUP) {
            let xhat = (x[row + c] - mean) * rstd;
            let h = third[grow + c] * gamma[params.gamma_offset + c];
            sums += vec2<f32>(h, h * xhat);
        }
        let total = workgroup_sum(lid, sums) / n;
        let o = params.out_offset + r * params.cols;
        let p = params.prod_offset + r * params.cols;
        for (var c = lid; c < params.cols; c += WORKGROUP) {
            let xhat = (x[row + c] - mean) * rstd;
            let g = third[grow + c];
            let h = g * gamma[params.gamma_offset + c];
            var centered = h;
            if (CENTERED) {
                centered -= total.x;
            }
            out[o + c] = (centered - xhat * total.y) * rstd;
            prod[p + c] = g * xhat;
        }
    }
}
