// batch_norm.wgsl: batch normalisation over each column (feature) of a rows × cols batch
// (PyTorch's nn.BatchNorm1d(cols) with its affine gain γ and shift β): the batch's statistics,
// the normalisation, and the backward pass.
//
// Immediate data: Params { rows, cols, x_offset, mean_offset, var_offset, third_offset,
//                          fourth_offset, out_offset, out2_offset, out3_offset, eps }
// Bindings (group 0, shared by every entry point):
//   0 x:       storage r   array<f32>  rows × cols, the layer's input
//   1 mean:    storage r   array<f32>  cols: the mean normalised by (the batch's, or running)
//   2 var:     storage r   array<f32>  cols: the variance normalised by
//   3 third:   storage r   array<f32>  normalize, backward_input: γ (cols); backward_sums: dy
//   4 fourth:  storage r   array<f32>  normalize: β (cols); backward_input: dy (rows × cols)
//   5 out:     storage rw  array<f32>  stats: the mean; normalize: y; backward_sums: the sum;
//                                      backward_input: ∂loss/∂x
//   6 out2:    storage rw  array<f32>  stats: the biased variance
//   7 out3:    storage rw  array<f32>  stats: the unbiased variance (× rows / (rows − 1))
// Dispatch: (G, 1, 1) workgroups of 64, G ≤ 4096, one invocation per column (striding over
// columns); each walks its column's rows in order, so every sum has one fixed order.
//
// Per column, with n = rows, σ = sqrt(var + eps) and x̂ = (x − mean) / σ:
//   stats           mean = Σx / n; var = Σ(x − mean)² / n; unbiased = var · n / (n − 1)
//   normalize       y = x̂ · γ + β
//   backward_sums   SUM 0: Σ dy (∂loss/∂β); SUM 1: Σ dy · x̂ (∂loss/∂γ)
//   backward_input  dx = γ / σ · (dy − Σdy / n − x̂ · Σ(dy · x̂) / n)
// An unknown SUM code gives NaN, never a sum picked silently.

override SUM: u32 = 0u;

const WORKGROUP: u32 = 64u;

struct Params {
    rows: u32,
    cols: u32,
    x_offset: u32,
    mean_offset: u32,
    var_offset: u32,
    third_offset: u32,
    fourth_offset: u32,
    out_offset: u32,
    out2_offset: u32,
    out3_offset: u32,
    eps: f32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> mean: array<f32>;
@group(0) @binding(2) var<storage, read> var_: array<f32>;
@group(0) @binding(3) var<storage, read> third: array<f32>;
@group(0) @binding(4) var<storage, read> fourth: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> out2: array<f32>;
@group(0) @binding(7) var<storage, read_write> out3: array<f32>;

fn at(r: u32, c: u32) -> u32 {
    return r * params.cols + c;
}

fn inverse_std(c: u32) -> f32 {
    return 1.0 / sqrt(var_[params.var_offset + c] + params.eps);
}

// x̂ of element i, whose column's mean is m and 1/σ is s.
fn x_hat(i: u32, m: f32, s: f32) -> f32 {
    return (x[params.x_offset + i] - m) * s;
}

@compute @workgroup_size(64, 1, 1)
fn stats(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let n = f32(params.rows);
    for (var c = gid.x; c < params.cols; c += groups.x * WORKGROUP) {
        var sum = 0.0;
        for (var r = 0u; r < params.rows; r++) {
            sum += x[params.x_offset + at(r, c)];
        }
        let m = sum / n;
        var squares = 0.0;
        for (var r = 0u; r < params.rows; r++) {
            let d = x[params.x_offset + at(r, c)] - m;
            squares += d * d;
        }
        let v = squares / n;
        out[params.out_offset + c] = m;
        out2[params.out2_offset + c] = v;
        out3[params.out3_offset + c] = squares / (n - 1.0);
    }
}

@compute @workgroup_size(64, 1, 1)
fn normalize(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var c = gid.x; c < params.cols; c += groups.x * WORKGROUP) {
        let m = mean[params.mean_offset + c];
        let s = inverse_std(c);
        let g = third[params.third_offset + c];
        let b = fourth[params.fourth_offset + c];
        for (var r = 0u; r < params.rows; r++) {
            let i = at(r, c);
            out[params.out_offset + i] = (x[params.x_offset + i] - m) * s * g + b;
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn backward_sums(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var c = gid.x; c < params.cols; c += groups.x * WORKGROUP) {
        let m = mean[params.mean_offset + c];
        let s = inverse_std(c);
        var sum = 0.0;
        for (var r = 0u; r < params.rows; r++) {
            let i = at(r, c);
            let dy = third[params.third_offset + i];
            switch SUM {
                case 0u: { sum += dy; }
                case 1u: { sum += dy * x_hat(i, m, s); }
                default: { sum = bitcast<f32>(0x7fc00000u); }
            }
        }
        out[params.out_offset + c] = sum;
    }
}

@compute @workgroup_size(64, 1, 1)
fn backward_input(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let n = f32(params.rows);
    for (var c = gid.x; c < params.cols; c += groups.x * WORKGROUP) {
        let m = mean[params.mean_offset + c];
        let s = inverse_std(c);
        var sum_dy = 0.0;
        var sum_dy_xhat = 0.0;
        for (var r = 0u; r < params.rows; r++) {
            let i = at(r, c);
            let dy = fourth[params.fourth_offset + i];
            sum_dy += dy;
            sum_dy_xhat += dy * x_hat(i, m, s);
        }
        let scale = third[params.third_offset + c] * s;
        let mean_dy = sum_dy / n;
        let mean_dy_xhat = sum_dy_xhat / n;
        for (var r = 0u; r < params.rows; r++) {
            let i = at(r, c);
            out[params.out_offset + i] = scale * (fourth[params.fourth_offset + i] - mean_dy - x_hat(i, m, s) * mean_dy_xhat);
        }
    }
}
