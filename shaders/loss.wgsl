// loss.wgsl: loss forward and backward fused (the per-row loss, its gradient with respect to the
// logits, and a correct-prediction count), then a deterministic total.
//
// Immediate data: Params (below)
// Bindings (group 0):
//   0 logits:   storage r   array<f32>  rows × cols from element logits_offset on
//   1 targets:  storage r   array<f32>  rows × cols, or rows × 1 class indices (CE, LOSS 2 and 6)
//   2 grad:     storage rw  array<f32>  rows × cols from grad_offset on (written if WRITE_GRAD)
//   3 row_sums: storage rw  array<vec2<f32>>  per row: (loss, correct), scratch; with
//               WEIGHTED and several workgroups, one more: (rows / W, 0) (`loss_weight`)
//   4 totals:   storage rw  array<f32>  from totals_offset on
//   5 weights:  storage r   array<f32>  with WEIGHTED, the K class weights from
//               weights_offset on (CE, LOSS 2 and 6); otherwise any buffer, unread
// Dispatch: `loss_rows` (G, 1, 1) workgroups of 256, G ≤ 4096, one invocation per row
// (striding), after `loss_weight` (1, 1, 1) with WEIGHTED; then `loss_total` (1, 1, 1). For a batch of at most ONE_PASS_ROWS rows the host
// dispatches `loss_one_pass` (1, 1, 1) instead: the same rows summed in the same order by the
// same invocations, without the round trip through row_sums (one dispatch fewer per step).
//
// Per row, with x the logits and t the targets (means are PyTorch's reduction='mean'):
//   MSE (LOSS 0)   loss = Σ_c (x − t)² / cols;   ∂/∂x = 2(x − t) · scale,  scale = 1/(rows·cols)
//   BCE (LOSS 1)   loss = Σ_c [max(x, 0) − x·t + log(1 + e^−|x|)] / cols  (never overflows);
//                  ∂/∂x = (σ(x) − t) · scale, scale = 1/(rows·cols);
//                  correct = Σ_c [(x > 0) = (t > 0.5)] / cols
//   BCE weighted (LOSS 7), p = `threshold` (pos_weight), w = 1 + (p − 1)·t:
//                  loss = Σ_c [(1 − t)·x + w·(log(1 + e^−|x|) + max(−x, 0))] / cols;
//                  ∂/∂x = (w·σ(x) − p·t) · scale, scale = 1/(rows·cols); correct as BCE
//   CE  (LOSS 2)   m = max x, lse = m + log Σ_c e^(x_c − m), loss = lse − x_label;
//                  ∂/∂x_c = (e^(x_c − m) / Σ − [c = label]) · scale, scale = 1/rows;
//                  correct = [first argmax = label]
//   CE smoothed (LOSS 6), ε = `threshold`, K = cols: the target 1 − ε on the label and ε/K on
//                  every class: loss = (1 − ε)(lse − x_label) + ε(lse − Σ_c x_c / K);
//                  ∂/∂x_c = (e^(x_c − m) / Σ − ((1 − ε)[c = label] + ε/K)) · scale, scale = 1/rows;
//                  correct as CE
//   With d = x − t, scale = 1/(rows·cols), per element (loss term; ∂/∂x = slope · scale):
//   L1        (LOSS 3)  |d|;                               slope sign(d) (0 at 0)
//   Huber     (LOSS 4)  |d| < δ ? d²/2 : δ(|d| − δ/2);     slope |d| < δ ? d : δ·sign(d)
//   SmoothL1  (LOSS 5)  |d| < β ? d²/(2β) : |d| − β/2;     slope |d| < β ? d/β : sign(d)
//   (δ and β arrive as `threshold`). MSE's term is d², its slope 2d. An unknown code gives NaN.
//   The host computes `scale`; its `rows` are the update's: the batch's own, or more where the
//   batch is one of several whose gradients one update sums (gradient accumulation).
//   Class weights (WEIGHTED, CE only; PyTorch's CrossEntropyLoss(weight=w), reduction='mean'):
//   the batch's mean is over W = Σ_rows w_label, each row's loss
//   w_label·(lse − x_label) (smoothed: (1 − ε)·w_label·(lse − x_label) + (ε/K)·Σ_c w_c·(lse − x_c)),
//   ∂/∂x_c = w_label·(p_c − [c = label]) (smoothed: (1 − ε)·w_label·(p_c − [c = label])
//   + (ε/K)·(p_c·Σ_k w_k − w_c)), both times rows/W (the gradient also times `scale`): a
//   batch's sums hold rows × its weighted mean, as an unweighted batch's hold rows × its mean.
// `loss_total` sums the rows in index order (each invocation a fixed stride, then a fixed tree)
// and sets totals[slot] = Σ loss, totals[slot+1] = Σ correct (adds to them where `first` is
// 0: a later batch of the same update), and adds both to totals[slot+2], totals[slot+3] (the
// running sums of an epoch).

override LOSS: u32 = 0u;
override WRITE_GRAD: bool = true;
override WEIGHTED: bool = false;

const WORKGROUP: u32 = 256u;

struct Params {
    rows: u32,
    cols: u32,
    logits_offset: u32,
    targets_offset: u32,
    grad_offset: u32,
    totals_offset: u32,
    scale: f32,
    threshold: f32,
    // 1: the batch is its update's first, and sets totals[slot], totals[slot+1]; 0: it adds.
    first: u32,
    weights_offset: u32,
    _pad0: u32,
    _pad1: u32,
}

var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_sums: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> totals: array<f32>;
@group(0) @binding(5) var<storage, read> weights: array<f32>;

var<workgroup> sums: array<vec2<f32>, WORKGROUP>;

fn sigmoid(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn set_grad(i: u32, value: f32) {
    if (WRITE_GRAD) {
        grad[params.grad_offset + i] = value;
    }
}

fn not_a_number() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// (loss term, slope) of a regression loss at d = x − t.
fn regression_term(d: f32) -> vec2<f32> {
    let a = abs(d);
    let h = params.threshold;
    switch LOSS {
        case 0u: { return vec2<f32>(d * d, 2.0 * d); }
        case 3u: { return vec2<f32>(a, sign(d)); }
        case 4u: {
            if (a < h) {
                return vec2<f32>(0.5 * d * d, d);
            }
            return vec2<f32>(h * (a - 0.5 * h), h * sign(d));
        }
        case 5u: {
            if (a < h) {
                return vec2<f32>(0.5 * d * d / h, d / h);
            }
            return vec2<f32>(a - 0.5 * h, sign(d));
        }
        default: { return vec2<f32>(not_a_number()); }
    }
}

// (loss, correct) of row r of an elementwise loss (all but cross-entropy); writes its gradient.
fn elementwise_row(r: u32) -> vec2<f32> {
    var loss = 0.0;
    var correct = 0.0;
    for (var c = 0u; c < params.cols; c++) {
        let i = r * params.cols + c;
        let x = logits[params.logits_offset + i];
        let t = targets[params.targets_offset + i];
        if (LOSS == 1u) {
            loss += max(x, 0.0) - x * t + log(1.0 + exp(-abs(x)));
            correct += select(0.0, 1.0, (x > 0.0) == (t > 0.5));
            set_grad(i, (sigmoid(x) - t) * params.scale);
        } else if (LOSS == 7u) {
            let p = params.threshold;
            let w = 1.0 + (p - 1.0) * t;
            loss += (1.0 - t) * x + w * (log(1.0 + exp(-abs(x))) + max(-x, 0.0));
            correct += select(0.0, 1.0, (x > 0.0) == (t > 0.5));
            set_grad(i, (w * sigmoid(x) - p * t) * params.scale);
        } else {
            let term = regression_term(x - t);
            loss += term.x;
            set_grad(i, term.y * params.scale);
        }
    }
    let cols = f32(params.cols);
    return vec2<f32>(loss / cols, correct / cols);
}

// Class `c`'s weight (1 without WEIGHTED).
fn class_weight(c: u32) -> f32 {
    if (WEIGHTED) {
        return weights[params.weights_offset + min(c, params.cols - 1u)];
    }
    return 1.0;
}

// Row r's (loss, correct) and gradient; `norm` is rows / W with WEIGHTED (1 without).
fn cross_entropy_row(r: u32, norm: f32) -> vec2<f32> {
    let base = params.logits_offset + r * params.cols;
    let label = u32(targets[params.targets_offset + r]);
    var m = logits[base];
    var argmax = 0u;
    for (var c = 1u; c < params.cols; c++) {
        let x = logits[base + c];
        if (x > m) {
            m = x;
            argmax = c;
        }
    }
    var total = 0.0;
    for (var c = 0u; c < params.cols; c++) {
        total += exp(logits[base + c] - m);
    }
    let lse = m + log(total);
    let picked = logits[base + min(label, params.cols - 1u)];
    let correct = select(0.0, 1.0, argmax == label);
    if (WEIGHTED) {
        let loss = weighted_cross_entropy_row(r, vec3<f32>(m, total, lse), label, norm);
        return vec2<f32>(loss, correct);
    }
    if (LOSS == 6u) {
        let e = params.threshold;
        let spread = e / f32(params.cols);
        var sum = 0.0;
        for (var c = 0u; c < params.cols; c++) {
            let x = logits[base + c];
            sum += x;
            if (WRITE_GRAD) {
                let p = exp(x - m) / total;
                let wanted = select(spread, (1.0 - e) + spread, c == label);
                set_grad(r * params.cols + c, (p - wanted) * params.scale);
            }
        }
        let mean = sum / f32(params.cols);
        return vec2<f32>((1.0 - e) * (lse - picked) + e * (lse - mean), correct);
    }
    if (WRITE_GRAD) {
        for (var c = 0u; c < params.cols; c++) {
            let p = exp(logits[base + c] - m) / total;
            set_grad(r * params.cols + c, (p - select(0.0, 1.0, c == label)) * params.scale);
        }
    }
    return vec2<f32>(lse - picked, correct);
}

// A cross-entropy row's loss with class weights, times `norm`, and its gradient (the formulas
// above), from the row's (max m, Σ e^(x − m), lse) as `cross_entropy_row` found them.
fn weighted_cross_entropy_row(r: u32, row: vec3<f32>, label: u32, norm: f32) -> f32 {
    let base = params.logits_offset + r * params.cols;
    let m = row.x;
    let total = row.y;
    let lse = row.z;
    let w_label = class_weight(label);
    let picked = logits[base + min(label, params.cols - 1u)];
    var e = 0.0;
    if (LOSS == 6u) {
        e = params.threshold;
    }
    let spread = e / f32(params.cols);
    // Σ_c w_c and Σ_c w_c·x_c, for the smoothing's share.
    var weight_sum = 0.0;
    var weighted_x = 0.0;
    if (LOSS == 6u) {
        for (var c = 0u; c < params.cols; c++) {
            let w = class_weight(c);
            weight_sum += w;
            weighted_x += w * logits[base + c];
        }
    }
    if (WRITE_GRAD) {
        for (var c = 0u; c < params.cols; c++) {
            let p = exp(logits[base + c] - m) / total;
            var g = (1.0 - e) * w_label * (p - select(0.0, 1.0, c == label));
            if (LOSS == 6u) {
                g += spread * (p * weight_sum - class_weight(c));
            }
            set_grad(r * params.cols + c, g * params.scale * norm);
        }
    }
    var loss = (1.0 - e) * w_label * (lse - picked);
    if (LOSS == 6u) {
        loss += spread * (weight_sum * lse - weighted_x);
    }
    return loss * norm;
}

// rows / W, W the batch's weight Σ_rows w_label, summed by invocation `lid`'s rows in order
// and then the tree (as the totals are), into `sums`; every invocation gets it.
fn batch_norm_of_weights(lid: u32) -> f32 {
    var w = 0.0;
    for (var r = lid; r < params.rows; r += WORKGROUP) {
        w += class_weight(u32(targets[params.targets_offset + r]));
    }
    sums[lid] = vec2<f32>(w, 0.0);
    workgroupBarrier();
    for (var width = WORKGROUP / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            sums[lid] += sums[lid + width];
        }
        workgroupBarrier();
    }
    let norm = f32(params.rows) / sums[0].x;
    workgroupBarrier();
    return norm;
}

@compute @workgroup_size(256, 1, 1)
fn loss_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    var norm = 1.0;
    if (WEIGHTED) {
        norm = row_sums[params.rows].x;
    }
    for (var r = gid.x; r < params.rows; r += groups.x * WORKGROUP) {
        if (LOSS == 2u || LOSS == 6u) {
            row_sums[r] = cross_entropy_row(r, norm);
        } else {
            row_sums[r] = elementwise_row(r);
        }
    }
}

// Invocation `lid`'s rows (lid, lid + 256, …) summed in order, the tree over the workgroup,
// and the totals written: the end of both `loss_total` and `loss_one_pass`.
fn finish_total(lid: u32, acc: vec2<f32>) {
    sums[lid] = acc;
    workgroupBarrier();
    for (var width = WORKGROUP / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            sums[lid] += sums[lid + width];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let at = params.totals_offset;
        if (params.first != 0u) {
            totals[at] = sums[0].x;
            totals[at + 1u] = sums[0].y;
        } else {
            totals[at] += sums[0].x;
            totals[at + 1u] += sums[0].y;
        }
        totals[at + 2u] += sums[0].x;
        totals[at + 3u] += sums[0].y;
    }
}

@compute @workgroup_size(256, 1, 1)
fn loss_total(@builtin(local_invocation_index) lid: u32) {
    var acc = vec2<f32>(0.0);
    for (var r = lid; r < params.rows; r += WORKGROUP) {
        acc += row_sums[r];
    }
    finish_total(lid, acc);
}

// With WEIGHTED, before `loss_rows`: rows / W into row_sums[rows].
@compute @workgroup_size(256, 1, 1)
fn loss_weight(@builtin(local_invocation_index) lid: u32) {
    let norm = batch_norm_of_weights(lid);
    if (lid == 0u) {
        row_sums[params.rows] = vec2<f32>(norm, 0.0);
    }
}

@compute @workgroup_size(256, 1, 1)
fn loss_one_pass(@builtin(local_invocation_index) lid: u32) {
    var norm = 1.0;
    if (WEIGHTED) {
        norm = batch_norm_of_weights(lid);
    }
    var acc = vec2<f32>(0.0);
    for (var r = lid; r < params.rows; r += WORKGROUP) {
        if (LOSS == 2u || LOSS == 6u) {
            acc += cross_entropy_row(r, norm);
        } else {
            acc += elementwise_row(r);
        }
    }
    finish_total(lid, acc);
}
