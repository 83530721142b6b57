// optim.wgsl: fused optimizer updates over a parameter arena, and the reductions they need.
//
// Immediate data: Step, this update's scalars, computed on the host (StepScalars).
// Bindings (group 0), one bind group per chunk of the arena (a chunk is the largest aligned
// range one storage binding may cover; small arenas are one chunk), and with parameter groups
// one per (chunk, group) present in it:
//   0 chunk:    uniform Chunk: index of this dispatch's first workgroup partial, and with
//               GROUPED the group's blocks in `blocks` (first, count)
//   1 params:   storage rw  array<vec4<f32>>  θ, this chunk, its length rounded up to 4 (the
//               rounding lands in the buffer's zero padding, which every update keeps zero)
//   2 grads:    storage r   array<vec4<f32>>  g, same range
//   3..5 slot0..slot2: storage rw array<vec4<f32>>  optimizer state, same range:
//         SGD          slot0 momentum_buffer
//         RMSprop      slot0 square_avg, slot1 momentum_buffer, slot2 grad_avg
//         Adam(W)      slot0 exp_avg, slot1 exp_avg_sq, slot2 max_exp_avg_sq
//         Adagrad      slot0 sum
//         Adadelta     slot0 square_avg, slot1 acc_delta
//         Adamax       slot0 exp_avg, slot1 exp_inf
//         NAdam, RAdam slot0 exp_avg, slot1 exp_avg_sq
//         Rprop        slot0 prev, slot1 step_size
//         ASGD         slot0 ax
//   6 stats:    storage rw  array<vec4<f32>, 2>: [0].x = Σg² for clipping (written before the
//               update by reduce.wgsl's sum_squares and finish_sum, the one sum of squares),
//               [1] = (Σg², Σθ², ΣΔθ², 0)
//   7 partials: storage rw  array<vec4<f32>>: one per workgroup of every dispatch
//   8 blocks:   storage r   array<vec2<u32>>: with GROUPED, the chunk's ranges each group owns
//               cut into blocks of at most BLOCK vec4s, as [start, end) in vec4s of the chunk
//               (the host checks each lies in it)
// Dispatch: `update` with (G, 1, 1) workgroups of 256 per chunk, G ≤ 2048, each invocation
// striding through the chunk four elements (one vec4) at a time, so each load moves 16 bytes;
// with GROUPED, one dispatch per group in the chunk, with that group's Step, each workgroup
// taking the group's blocks in turn (a block table, as PyTorch's multi-tensor apply keeps, so
// no invocation searches for its element); `finalize` with (1, 1, 1) after all chunks.
//
// Reductions are deterministic: a fixed grid, a fixed-order tree in workgroup memory, then one
// workgroup summing the partials in index order.
//
// Update rules (PyTorch's, element by element, in PyTorch's operation order; g is the raw
// gradient, first scaled by min(1, max_norm / (‖g‖ + 1e-6)) and/or clamped, then negated if
// MAXIMIZE; AdamW (and NAdam, RAdam with decoupled decay) first decays θ ← θ·(1 − γλ); L2 adds
// λθ to g):
//   SGD      b ← first ? g : b·μ + (1 − τ)·g;  g ← nesterov ? g + μ·b : b;  θ ← θ + (−γ)·g
//   RMSprop  v ← v·α + ((1 − α)·g)·g;  centered: ḡ ← lerp(ḡ, g, 1 − α), d ← √(v − ḡ·ḡ) + ε,
//            else d ← √v + ε;  momentum: b ← b·μ + g/d, θ ← θ + (−γ)·b;  else θ ← θ + ((−γ)·g)/d
//   Adam     m ← lerp(m, g, 1 − β1);  v ← v·β2 + ((1 − β2)·g)·g;  amsgrad: v̂ ← max(v̂, v), use v̂;
//            θ ← θ + ((−γ/(1 − β1^t))·m) / (√v / √(1 − β2^t) + ε)
//   Adagrad  s ← s + g·g;  θ ← θ + ((−γ/(1 + (t − 1)·lr_decay))·g) / (√s + ε)
//   Adadelta v ← v·ρ + ((1 − ρ)·g)·g;  δ ← (√(u + ε) / √(v + ε))·g;  u ← u·ρ + ((1 − ρ)·δ)·δ;
//            θ ← θ + (−γ)·δ
//   Adamax   m ← lerp(m, g, 1 − β1);  u ← max(u·β2, |g| + ε);  θ ← θ + ((−γ/(1 − β1^t))·m) / u
//   NAdam    m, v as Adam;  d ← √(v / (1 − β2^t)) + ε;  θ ← θ + (−c_g·g) / d;  θ ← θ + (−c_m·m) / d
//            with c_g = γ(1 − μ_t)/(1 − Π_{s≤t} μ_s), c_m = γμ_{t+1}/(1 − Π_{s≤t+1} μ_s) (host)
//   Rprop    f ← η+ where g·p > 0, η− where g·p < 0, else 1;  s ← clamp(s·f, s_min, s_max)
//            (s from γ on the first update);  g ← 0 where g·p < 0;  p ← g;  θ ← θ + (−sign(g))·s
//   RAdam    m, v as Adam;  x ← (m / (1 − β1^t))·γ;  if r_t > 0 (ρ_t > 5):
//            θ ← θ − (x·(√(1 − β2^t) / (√v + ε)))·r_t, else θ ← θ − x
//   ASGD     θ ← θ·(1 − λη_t);  θ ← θ + (−η_t)·g;  ax ← μ_t = 1 ? θ : ax + (θ − ax)·μ_t
//            (η_t, μ_t from the host: `step_size`, `momentum`)

// 0 SGD, 1 RMSprop, 2 Adam/AdamW, 3 Adagrad, 4 Adadelta, 5 Adamax, 6 NAdam, 7 RAdam, 8 Rprop,
// 9 ASGD
override ALGORITHM: u32 = 0u;
override MAXIMIZE: bool = false;
override L2: bool = false;
override DECOUPLED: bool = false;
override MOMENTUM: bool = false;
override NESTEROV: bool = false;
override CENTERED: bool = false;
override AMSGRAD: bool = false;
override CLIP_NORM: bool = false;
override CLIP_VALUE: bool = false;
override MONITOR: bool = false;
override GROUPED: bool = false;  // the dispatch updates its group's blocks, not the whole chunk
override SLOT: u32 = 0u;       // which stats entry `finalize` writes

const WORKGROUP: u32 = 256u;

struct Step {
    lr: f32,
    weight_decay: f32,
    momentum: f32,              // SGD, RMSprop: μ; ASGD: the average's weight μ_t
    one_minus_dampening: f32,
    one_minus_beta1: f32,
    beta2: f32,                 // RMSprop: α; Adadelta: ρ
    one_minus_beta2: f32,       // RMSprop: 1 − α; Adadelta: 1 − ρ
    eps: f32,
    step_size: f32,             // Adam, Adamax: γ/(1 − β1^t); Adagrad: γ/(1 + (t − 1)·lr_decay);
                                // NAdam: c_g; ASGD: η_t
    bias_correction2_sqrt: f32,
    decay_factor: f32,          // decoupled decay (AdamW, NAdam, RAdam): 1 − γλ; ASGD: 1 − λη_t
    first_step: u32,
    max_norm: f32,
    max_value: f32,
    bias_correction1: f32,      // RAdam: 1 − β1^t
    bias_correction2: f32,      // NAdam: 1 − β2^t
    momentum_step_size: f32,    // NAdam: c_m
    rectification: f32,         // RAdam: r_t, 0 while ρ_t ≤ 5
    eta_minus: f32,             // Rprop: η−
    eta_plus: f32,              // Rprop: η+
    step_size_min: f32,         // Rprop
    step_size_max: f32,         // Rprop
    _pad0: u32,
    _pad1: u32,
}

struct Chunk {
    partial_base: u32,
    block_first: u32,           // GROUPED: this group's first block in `blocks`
    block_count: u32,           // GROUPED: and how many
    _pad0: u32,
}

var<immediate> step: Step;
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> slot0: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> slot1: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> slot2: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> stats: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> blocks: array<vec2<u32>>;

var<workgroup> sums: array<vec4<f32>, WORKGROUP>;

// torch.lerp's formula, including its switch at weight 0.5 (it keeps both ends exact).
fn lerp(start: vec4<f32>, end: vec4<f32>, weight: f32) -> vec4<f32> {
    if (weight < 0.5) {
        return start + weight * (end - start);
    }
    return end - (end - start) * (1.0 - weight);
}

// Sums `value` over the workgroup in a fixed tree order; the result is valid in invocation 0.
fn workgroup_sum(lid: u32, value: vec4<f32>) -> vec4<f32> {
    sums[lid] = value;
    workgroupBarrier();
    for (var width = WORKGROUP / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            sums[lid] += sums[lid + width];
        }
        workgroupBarrier();
    }
    return sums[0];
}

struct Moments {
    m: vec4<f32>,
    v: vec4<f32>,
}

// The Adam family's moments of elements 4i..4i+4, updated in slot0 and slot1 and returned:
// m ← lerp(m, g, 1 − β1), v ← v·β2 + ((1 − β2)·g)·g.
fn moments(i: u32, g: vec4<f32>) -> Moments {
    let m = lerp(slot0[i], g, step.one_minus_beta1);
    slot0[i] = m;
    let v = slot1[i] * step.beta2 + (step.one_minus_beta2 * g) * g;
    slot1[i] = v;
    return Moments(m, v);
}

// The new θ of elements 4i..4i+4 (each component on its own, as the formulas above); updates
// their state. `g` is already clipped.
fn update_element(i: u32, g_in: vec4<f32>) -> vec4<f32> {
    var g = g_in;
    if (MAXIMIZE) {
        g = -g;
    }
    var theta = params[i];
    if (DECOUPLED) {
        theta = theta * step.decay_factor;
    }
    if (L2) {
        g = g + step.weight_decay * theta;
    }
    switch ALGORITHM {
        case 0u: {
            if (MOMENTUM) {
                var b = g;
                if (step.first_step == 0u) {
                    b = slot0[i] * step.momentum + step.one_minus_dampening * g;
                }
                slot0[i] = b;
                if (NESTEROV) {
                    g = g + step.momentum * b;
                } else {
                    g = b;
                }
            }
            theta = theta + (-step.lr) * g;
        }
        case 1u: {
            let v = slot0[i] * step.beta2 + (step.one_minus_beta2 * g) * g;
            slot0[i] = v;
            var d: vec4<f32>;
            if (CENTERED) {
                let mean = lerp(slot2[i], g, step.one_minus_beta2);
                slot2[i] = mean;
                d = sqrt(v - mean * mean) + step.eps;
            } else {
                d = sqrt(v) + step.eps;
            }
            if (MOMENTUM) {
                let b = slot1[i] * step.momentum + g / d;
                slot1[i] = b;
                theta = theta + (-step.lr) * b;
            } else {
                theta = theta + ((-step.lr) * g) / d;
            }
        }
        case 2u: {
            let moment = moments(i, g);
            let m = moment.m;
            var v = moment.v;
            if (AMSGRAD) {
                v = max(slot2[i], v);
                slot2[i] = v;
            }
            let denom = sqrt(v) / step.bias_correction2_sqrt + step.eps;
            theta = theta + ((-step.step_size) * m) / denom;
        }
        case 3u: {
            let s = slot0[i] + g * g;
            slot0[i] = s;
            theta = theta + ((-step.step_size) * g) / (sqrt(s) + step.eps);
        }
        case 4u: {
            let v = slot0[i] * step.beta2 + (step.one_minus_beta2 * g) * g;
            slot0[i] = v;
            let u = slot1[i];
            let delta = sqrt(u + step.eps) / sqrt(v + step.eps) * g;
            slot1[i] = u * step.beta2 + (step.one_minus_beta2 * delta) * delta;
            theta = theta + (-step.lr) * delta;
        }
        case 5u: {
            let m = lerp(slot0[i], g, step.one_minus_beta1);
            slot0[i] = m;
            let u = max(slot1[i] * step.beta2, abs(g) + step.eps);
            slot1[i] = u;
            theta = theta + ((-step.step_size) * m) / u;
        }
        case 6u: {
            let moment = moments(i, g);
            let denom = sqrt(moment.v / step.bias_correction2) + step.eps;
            theta = theta + ((-step.step_size) * g) / denom;
            theta = theta + ((-step.momentum_step_size) * moment.m) / denom;
        }
        case 7u: {
            let moment = moments(i, g);
            let x = moment.m / step.bias_correction1 * step.lr;
            if (step.rectification > 0.0) {
                let adaptive = step.bias_correction2_sqrt / (sqrt(moment.v) + step.eps);
                theta = theta - x * adaptive * step.rectification;
            } else {
                theta = theta - x;
            }
        }
        case 8u: {
            let product = g * slot0[i];
            var factor = select(vec4<f32>(1.0), vec4<f32>(step.eta_plus), product > vec4<f32>(0.0));
            factor = select(factor, vec4<f32>(step.eta_minus), product < vec4<f32>(0.0));
            var size = slot1[i];
            if (step.first_step == 1u) {
                size = vec4<f32>(step.lr);
            }
            size = min(max(size * factor, vec4<f32>(step.step_size_min)), vec4<f32>(step.step_size_max));
            slot1[i] = size;
            let kept = select(g, vec4<f32>(0.0), product < vec4<f32>(0.0));
            slot0[i] = kept;
            theta = theta + (-sign(kept)) * size;
        }
        case 9u: {
            theta = theta * step.decay_factor;
            theta = theta + (-step.step_size) * g;
            if (step.momentum == 1.0) {
                slot0[i] = theta;
            } else {
                let ax = slot0[i];
                slot0[i] = ax + (theta - ax) * step.momentum;
            }
        }
        default: {
            // No algorithm has another code: poison the parameters rather than pick one.
            theta = vec4<f32>(bitcast<f32>(0x7fc00000u));
        }
    }
    return theta;
}

@compute @workgroup_size(256, 1, 1)
fn update(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = arrayLength(&params);
    var scale = 1.0;
    if (CLIP_NORM) {
        scale = min(1.0, step.max_norm / (sqrt(stats[0].x) + 1e-6));
    }
    var monitored = vec4<f32>(0.0);
    if (GROUPED) {
        let last = min(chunk.block_first + chunk.block_count, arrayLength(&blocks));
        for (var b = chunk.block_first + wg.x; b < last; b += groups.x) {
            let block = blocks[b];
            let end = min(block.y, n);
            for (var i = block.x + lid; i < end; i += WORKGROUP) {
                let element_sums = update_at(i, scale);
                if (MONITOR) {
                    monitored += element_sums;
                }
            }
        }
    } else {
        for (var i = wg.x * WORKGROUP + lid; i < n; i += groups.x * WORKGROUP) {
            let element_sums = update_at(i, scale);
            if (MONITOR) {
                monitored += element_sums;
            }
        }
    }
    if (MONITOR) {
        let total = workgroup_sum(lid, monitored);
        if (lid == 0u) {
            partials[chunk.partial_base + wg.x] = total;
        }
    }
}

// Updates the four elements at vec4 `i` (i < arrayLength(&params)) from their gradient,
// scaled by `scale` (clipping by norm) and clamped; returns their (Σg², Σθ², ΣΔθ², 0) when
// monitoring, zeros otherwise.
fn update_at(i: u32, scale: f32) -> vec4<f32> {
    let raw = grads[i];
    var g = raw;
    if (CLIP_NORM) {
        g = g * scale;
    }
    if (CLIP_VALUE) {
        g = clamp(g, vec4<f32>(-step.max_value), vec4<f32>(step.max_value));
    }
    let before = params[i];
    let after = update_element(i, g);
    params[i] = after;
    if (MONITOR) {
        let delta = after - before;
        return vec4<f32>(dot(raw, raw), dot(before, before), dot(delta, delta), 0.0);
    }
    return vec4<f32>(0.0);
}

// stats[SLOT] ← Σ partials, in index order per invocation, then the tree.
@compute @workgroup_size(256, 1, 1)
fn finalize(@builtin(local_invocation_index) lid: u32) {
    var acc = vec4<f32>(0.0);
    for (var i = lid; i < arrayLength(&partials); i += WORKGROUP) {
        acc += partials[i];
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        stats[SLOT] = total;
    }
}
