// reduce_terms.wgsl: deterministic reductions of an elementwise term over an arena's piece
// (fixed grid, fixed tree, fixed final order), as `reduce.wgsl`'s `sum_squares` and
// `finish_sum` visit and sum their elements.
//
// Immediate data: Params, as `reduce.wgsl`'s (the host shares the struct): rows, cols,
// in_offset, out_offset, partial_base and other_offset are read here.
// Bindings (group 0):
//   0 input:    storage r   array<f32>  rows × cols from element in_offset on
//   1 out:      storage rw  array<f32>  written at element out_offset
//   2 partials: storage rw  array<f32>  one per workgroup of `reduce_terms`
//   3 other:    storage r   array<f32>  the second factor of x·other from other_offset on (a
//                                       placeholder for the other terms)
//
// Entry points and dispatch:
//   reduce_terms   partials[partial_base + w] = the COMBINE of TERM over the elements that
//                  workgroup w's invocations visit (invocation i visits i, i + 256·G, …),
//                  combined by a fixed tree. (G, 1, 1) with G ≤ 256.
//   finish_reduce  out[0] = the COMBINE of every partial bound, by one workgroup in a fixed
//                  order. (1, 1, 1).
// TERM: 0 |x|, 1 x·other. COMBINE: 0 sum, 1 max (NaN where any element is NaN, tested by the
// bits, which no compiler folds away). `Backend::dot_into`, `sum_abs_into` and
// `max_abs_into` run these two. An unknown code gives NaN, never a formula picked silently.

override TERM: u32 = 0u;
override COMBINE: u32 = 0u;

const WORKGROUP: u32 = 256u;

struct Params {
    rows: u32,
    cols: u32,
    in_offset: u32,
    out_offset: u32,
    block_rows: u32,    // unused here
    row_blocks: u32,    // unused here
    partial_base: u32,  // where `reduce_terms` writes its workgroups' partials
    other_offset: u32,  // where `other` starts
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read> other: array<f32>;

var<workgroup> terms: array<f32, WORKGROUP>;

fn not_a_number() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn combine(a: f32, b: f32) -> f32 {
    switch COMBINE {
        case 0u: { return a + b; }
        case 1u: { return select(max(a, b), not_a_number(), is_nan(a) || is_nan(b)); }
        default: { return not_a_number(); }
    }
}

// Combines `value` over the workgroup in a fixed tree order; the result is valid in
// invocation 0.
fn workgroup_combine(lid: u32, value: f32) -> f32 {
    terms[lid] = value;
    workgroupBarrier();
    for (var width = WORKGROUP / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            terms[lid] = combine(terms[lid], terms[lid + width]);
        }
        workgroupBarrier();
    }
    return terms[0];
}

fn term(i: u32) -> f32 {
    let v = input[params.in_offset + i];
    switch TERM {
        case 0u: { return abs(v); }
        case 1u: { return v * other[params.other_offset + i]; }
        default: { return not_a_number(); }
    }
}

@compute @workgroup_size(256, 1, 1)
fn reduce_terms(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = params.rows * params.cols;
    var acc = 0.0;
    for (var i = wg.x * WORKGROUP + lid; i < n; i += groups.x * WORKGROUP) {
        acc = combine(acc, term(i));
    }
    let total = workgroup_combine(lid, acc);
    if (lid == 0u) {
        partials[params.partial_base + wg.x] = total;
    }
}

@compute @workgroup_size(256, 1, 1)
fn finish_reduce(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < arrayLength(&partials); i += WORKGROUP) {
        acc = combine(acc, partials[i]);
    }
    let total = workgroup_combine(lid, acc);
    if (lid == 0u) {
        out[params.out_offset] = total;
    }
}
