// copy.wgsl: dst ← src, 128 bits at a time, over a range of two buffers: an arena's copy. The
// words are copied as u32, so every bit pattern (NaN payloads, subnormals) arrives unchanged.
//
// Immediate data: Params { len, src_offset, dst_offset }, all in vec4s (16 bytes)
// Bindings: each buffer in a group of its own, both groups of one layout, so that one bind
// group per arena (per binding window of it) serves it as source or destination alike:
//   group 0, binding 0  src: storage rw  array<vec4<u32>>  read from vec4 src_offset on
//                                                          (never written: read-write only
//                                                          to share the layout)
//   group 1, binding 0  dst: storage rw  array<vec4<u32>>  written from vec4 dst_offset on
// Every buffer is a whole number of vec4s long (its size is rounded up to 16 bytes) and every
// binding window starts on one, so an arena's last partial vec4 is copied whole: the words
// past its end are the buffer's padding, outside every tensor.
// Dispatch: (G, 1, 1) workgroups of 256, G ≤ 4096, each invocation striding through `len`
// vec4s, four independent loads at a time (a copy has no other work to hide their latency
// behind); the host keeps each offset + len below 2^30, so no index here wraps.

const WORKGROUP: u32 = 256u;

struct Params {
    len: u32,
    src_offset: u32,
    dst_offset: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read_write> src: array<vec4<u32>>;
@group(1) @binding(0) var<storage, read_write> dst: array<vec4<u32>>;

@compute @workgroup_size(256, 1, 1)
fn copy_vec4s(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let stride = groups.x * WORKGROUP;
    let s = params.src_offset;
    let d = params.dst_offset;
    var i = gid.x;
    for (; i + 3u * stride < params.len; i += 4u * stride) {
        let a = src[s + i];
        let b = src[s + i + stride];
        let c = src[s + i + 2u * stride];
        let e = src[s + i + 3u * stride];
        dst[d + i] = a;
        dst[d + i + stride] = b;
        dst[d + i + 2u * stride] = c;
        dst[d + i + 3u * stride] = e;
    }
    for (; i < params.len; i += stride) {
        dst[d + i] = src[s + i];
    }
}
