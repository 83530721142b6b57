// elementwise.wgsl: one-pass elementwise kernels over a range of a buffer.
//
// Immediate data: Params { len, x_offset, y_offset, alpha, z_offset }
// Bindings (group 0, shared by the entry points):
//   0 x:      storage r   array<f32>  read from element x_offset on
//   1 z:      storage r   array<f32>  read from element z_offset on (`add` only; the others
//                                     bind x here again)
//   2 y:      storage rw  array<f32>  written from element y_offset on
// Dispatch: (G, 1, 1) workgroups of 256, G ≤ 4096, each invocation striding through `len`
// elements, so any length fits the device's workgroup-count limit.
//
// Entry points:
//   activation_backward  y[i] ← y[i] · act'(x[i]), where x holds the activation's OUTPUT a:
//                        identity 1, relu [a > 0], sigmoid a(1 − a), tanh 1 − a²
//                        (the gradient through act, computed from what the forward pass kept,
//                        by `activation.wgsl`, which the host prepends to this file)
//   axpy                 y[i] ← y[i] + alpha · x[i]
//   lerp                 y[i] ← y[i] + alpha · (x[i] − y[i]) for |alpha| < 0.5, else
//                        x[i] − (x[i] − y[i]) · (1 − alpha): PyTorch's `lerp(y, x, alpha)`, in
//                        its two forms (each exact at its own end: alpha 0 gives y, 1 gives x)
//   add                  y[i] ← x[i] + z[i]
//   scale                y[i] ← alpha · x[i]
// An unknown ACTIVATION code gives NaN, never a formula picked silently.

override ACTIVATION: u32 = 0u; // 0 identity, 1 relu, 2 sigmoid, 3 tanh

const WORKGROUP: u32 = 256u;

struct Params {
    len: u32,
    x_offset: u32,
    y_offset: u32,
    alpha: f32,
    z_offset: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn activation_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var i = gid.x; i < params.len; i += groups.x * WORKGROUP) {
        let yi = params.y_offset + i;
        y[yi] = y[yi] * derivative_from_output(ACTIVATION, x[params.x_offset + i]);
    }
}

@compute @workgroup_size(256, 1, 1)
fn lerp(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let w = params.alpha;
    let small = abs(w) < 0.5;
    for (var i = gid.x; i < params.len; i += groups.x * WORKGROUP) {
        let yi = params.y_offset + i;
        let start = y[yi];
        let end = x[params.x_offset + i];
        y[yi] = select(end - (end - start) * (1.0 - w), start + w * (end - start), small);
    }
}

@compute @workgroup_size(256, 1, 1)
fn axpy(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var i = gid.x; i < params.len; i += groups.x * WORKGROUP) {
        let yi = params.y_offset + i;
        y[yi] = y[yi] + params.alpha * x[params.x_offset + i];
    }
}

@compute @workgroup_size(256, 1, 1)
fn scale(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var i = gid.x; i < params.len; i += groups.x * WORKGROUP) {
        y[params.y_offset + i] = params.alpha * x[params.x_offset + i];
    }
}

@compute @workgroup_size(256, 1, 1)
fn add(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var i = gid.x; i < params.len; i += groups.x * WORKGROUP) {
        y[params.y_offset + i] = x[params.x_offset + i] + z[params.z_offset + i];
    }
}
