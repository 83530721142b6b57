// dropout.wgsl: inverted dropout with a counter-based random draw, so a mask is a pure
// function of (key, element index): the same on every backend, every run, and after a resume.
//
// Immediate data: Params { len, in_offset, mask_offset, out_offset, key0, key1, threshold,
//                          scale }
// Bindings (group 0, shared by both entry points):
//   0 input:  storage r   array<f32>  forward: x; backward: ∂loss/∂y
//   1 mask:   storage rw  array<f32>  per element 0 or scale; written forward, read backward
//   2 out:    storage rw  array<f32>  forward: y; backward: ∂loss/∂x
// Dispatch: (G, 1, 1) workgroups of 256, G ≤ 4096, each invocation striding through `len`.
//
// forward:   h = hash(hash(i ^ key0) + key1); keep = h ≥ threshold (threshold = p · 2³²);
//            mask[i] = keep ? scale : 0 (scale = 1 / (1 − p)); out[i] = input[i] · mask[i]
// backward:  out[i] = input[i] · mask[i]
// hash is the PCG output permutation (u32 arithmetic wraps, identically on the CPU twin).

const WORKGROUP: u32 = 256u;

struct Params {
    len: u32,
    in_offset: u32,
    mask_offset: u32,
    out_offset: u32,
    key0: u32,
    key1: u32,
    threshold: u32,
    scale: f32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

@compute @workgroup_size(256, 1, 1)
fn forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var i = gid.x; i < params.len; i += groups.x * WORKGROUP) {
        let h = hash(hash(i ^ params.key0) + params.key1);
        let m = select(0.0, params.scale, h >= params.threshold);
        mask[params.mask_offset + i] = m;
        out[params.out_offset + i] = input[params.in_offset + i] * m;
    }
}

@compute @workgroup_size(256, 1, 1)
fn backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var i = gid.x; i < params.len; i += groups.x * WORKGROUP) {
        out[params.out_offset + i] = input[params.in_offset + i] * mask[params.mask_offset + i];
    }
}
