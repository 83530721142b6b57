// glu.wgsl: the gated linear unit over each row's two halves (PyTorch's nn.GLU(dim=-1)),
// forward and backward.
//
// Immediate data: Params { rows, half, x_offset, grad_offset, out_offset }
// Bindings (group 0, shared by both entry points):
//   0 x:        storage r   array<f32>  rows × 2·half, the layer's input, from x_offset: each
//                                       row's first half a, its second half b
//   1 grad_out: storage r   array<f32>  rows × half, ∂loss/∂output from grad_offset (backward
//                                       only; the forward pass binds x here again)
//   2 out:      storage rw  array<f32>  forward: rows × half; backward: rows × 2·half (∂loss/∂a
//                                       then ∂loss/∂b in each row), from out_offset
// Dispatch: (G, 1, 1) workgroups of 256, G ≤ 4096, each invocation striding through the
// rows × half outputs (r, j); the backward one writes both of an output's input gradients.
//
// Formulas (PyTorch's, in its order): s = σ(b); forward y = a · s; backward ∂a = s · g,
// ∂b = (1 − s) · s · a · g.
//
// Bounds: r < rows and j < half, so every index is below rows · 2·half (x, the backward's
// out) or rows · half (grad_out, the forward's out) past its offset, which the host has
// checked against the bound views.

const WORKGROUP: u32 = 256u;

struct Params {
    rows: u32,
    half: u32,
    x_offset: u32,
    grad_offset: u32,
    out_offset: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// σ(v), never exponentiating a positive number (no overflow for any v): the CPU twin's
// `sigmoid`.
fn gate(v: f32) -> f32 {
    if (v >= 0.0) {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

@compute @workgroup_size(256, 1, 1)
fn forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let len = params.rows * params.half;
    for (var i = gid.x; i < len; i += groups.x * WORKGROUP) {
        let r = i / params.half;
        let j = i % params.half;
        let a_at = params.x_offset + r * 2u * params.half + j;
        out[params.out_offset + i] = x[a_at] * gate(x[a_at + params.half]);
    }
}

@compute @workgroup_size(256, 1, 1)
fn backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let len = params.rows * params.half;
    for (var i = gid.x; i < len; i += groups.x * WORKGROUP) {
        let r = i / params.half;
        let j = i % params.half;
        let a_at = params.x_offset + r * 2u * params.half + j;
        let a = x[a_at];
        let s = gate(x[a_at + params.half]);
        let g = grad_out[params.grad_offset + i];
        let d_at = params.out_offset + r * 2u * params.half + j;
        out[d_at] = s * g;
        out[d_at + params.half] = (1.0 - s) * s * a * g;
    }
}
