// nonlinearity.wgsl: the activation layers' elementwise functions and their gradients,
// with derivatives taken from the layer's INPUT (GELU and SiLU need it).
//
// Immediate data: Params { len, x_offset, out_offset, grad_offset, p0, p1 } (p0, p1: the
// function's parameters)
// Bindings (group 0, shared by both entry points):
//   0 x:        storage r   array<f32>  the layer's input, from element x_offset on
//   1 grad_out: storage r   array<f32>  ∂loss/∂output from grad_offset on (backward only; the
//                                       forward pass binds x here again)
//   2 out:      storage rw  array<f32>  f(x), or ∂loss/∂input, from out_offset on
// Dispatch: (G, 1, 1) workgroups of 256, G ≤ 4096, each invocation striding through `len`.
//
// Entry points:
//   forward   out[i] ← f(x[i])
//   backward  out[i] ← grad_out[i] · f'(x[i])
//
// FUNCTION (the host's `Nonlinearity::shader_code`), formulas as PyTorch's modules:
//   0 relu        max(x, 0);                      f' = [x > 0]
//   1 leaky_relu  x > 0 ? x : slope·x;            f' = x > 0 ? 1 : slope
//   2 gelu        x/2 (1 + erf(x/√2));            f' = Φ(x) + x φ(x)
//   3 gelu_tanh   x/2 (1 + tanh(u)), u = √(2/π)(x + 0.044715 x³)
//                                                 f' = (1 + t)/2 + x/2 (1 − t²) u'
//   4 silu        x σ(x);                         f' = σ(x)(1 + x(1 − σ(x)))
//   5 tanh        tanh(x);                        f' = 1 − tanh²(x)
//   6 sigmoid     σ(x);                           f' = σ(x)(1 − σ(x))
//   7 elu         x > 0 ? x : p0·expm1(x);        f' = x > 0 ? 1 : p0·eˣ   (p0 = α)
//   8 selu        λ(x > 0 ? x : α·expm1(x));      f' = λ(x > 0 ? 1 : α·eˣ)
//   9 softplus    βx > p1 ? x : sp(βx)/β;         f' = βx > p1 ? 1 : σ(βx) (p0 = β, p1 = threshold)
//  10 mish        x·tanh(sp(x));                  f' = t + x·σ(x)(1 − t²), t = tanh(sp(x))
//  11 hardswish   x·clamp(x + 3, 0, 6)/6;         f' = x < −3 ? 0 : x ≤ 3 ? x/3 + 1/2 : 1
//  12 hardtanh    x ≤ p0 ? p0 : x ≥ p1 ? p1 : x;  f' = p0 < x < p1 ? 1 : 0  (relu6: p0 = 0, p1 = 6)
//  13 hardsigmoid clamp(x + 3, 0, 6)/6;           f' = −3 < x < 3 ? 1/6 : 0
//  14 softsign    x/(1 + |x|);                    f' = 1/(1 + |x|)²
//  15 log_sigmoid min(x, 0) − log1p(e^−|x|);      f' = x < 0 ? 1 − z/(1 + z) : z/(1 + z), z = e^−|x|
//  16 celu        x > 0 ? x : p0·expm1(x/p0);     f' = x > 0 ? 1 : e^(x/p0)   (p0 = α)
// where sp(x) = max(x, 0) + log1p(e^−|x|), and expm1 and log1p take their series near 0 (the
// CPU twins compute the same).
// Any other code yields NaN, never a formula picked silently.

override FUNCTION: u32 = 0u;

const WORKGROUP: u32 = 256u;
const SQRT_2_OVER_PI: f32 = 0.7978846;
const GELU_CUBIC: f32 = 0.044715;
const INV_SQRT_2PI: f32 = 0.3989423;
const FRAC_1_SQRT_2: f32 = 0.70710677;
const SELU_SCALE: f32 = 1.050701;
const SELU_ALPHA: f32 = 1.6732632;

struct Params {
    len: u32,
    x_offset: u32,
    out_offset: u32,
    grad_offset: u32,
    p0: f32,
    p1: f32,
}

var<immediate> params: Params;

fn not_a_number() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

fn sigmoid(x: f32) -> f32 {
    // Never exponentiates a positive number, so no overflow for any x.
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}


// Abramowitz & Stegun 7.1.26, |error| < 1.5e-7 (the CPU twin uses the same formula).
fn erf(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.2548296 + t * (-0.28449674 + t * (1.4214138 + t * (-1.453152 + t * 1.0614054))));
    return sign(x) * (1.0 - poly * exp(-a * a));
}

// Below this magnitude expm1 and log1p take five terms of their Taylor series (relative error
// under 1e-11). No cancellation trick (Kahan's, Goldberg's): compilers simplify (1 + u) − 1 to
// u, and drivers' log is a few 1e-8 off near 1.
const SERIES_BELOW: f32 = 0.01;

// e^x − 1, accurate near 0.
fn expm1(x: f32) -> f32 {
    if (abs(x) < SERIES_BELOW) {
        return x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x / 120.0))));
    }
    return exp(x) - 1.0;
}

// Built-in tanh is NaN for large |x| on some drivers; this form is finite everywhere, keeps
// 1 + tanh's digits near −1, and below |x| = 1/2 goes through expm1 (1 − e^−2|x| would keep
// only exp's error there).
fn tanh_finite(x: f32) -> f32 {
    let a = abs(x);
    if (a < 0.5) {
        let m = expm1(-2.0 * a);
        return sign(x) * (-m / (2.0 + m));
    }
    let e = exp(-2.0 * a);
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// ln(1 + u) for u ≥ 0, accurate near 0.
fn log1p(u: f32) -> f32 {
    if (u < SERIES_BELOW) {
        return u * (1.0 - u * (0.5 - u * (1.0 / 3.0 - u * (0.25 - u / 5.0))));
    }
    return log(1.0 + u);
}

// ln(1 + eˣ), finite for every finite x.
fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log1p(exp(-abs(x)));
}

fn gelu_inner(x: f32) -> f32 {
    let c = clamp(x, -20.0, 20.0);
    return SQRT_2_OVER_PI * (c + GELU_CUBIC * c * c * c);
}

fn apply(x: f32) -> f32 {
    switch FUNCTION {
        case 0u: { return max(x, 0.0); }
        case 1u: { return select(params.p0 * x, x, x > 0.0); }
        case 2u: { return 0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2)); }
        case 3u: { return 0.5 * x * (1.0 + tanh_finite(gelu_inner(x))); }
        case 4u: { return x * sigmoid(x); }
        case 5u: { return tanh_finite(x); }
        case 6u: { return sigmoid(x); }
        case 7u: { return select(params.p0 * expm1(x), x, x > 0.0); }
        case 8u: { return select(SELU_SCALE * (SELU_ALPHA * expm1(x)), SELU_SCALE * x, x > 0.0); }
        case 9u: {
            let bx = params.p0 * x;
            return select(softplus(bx) / params.p0, x, bx > params.p1);
        }
        case 10u: { return x * tanh_finite(softplus(x)); }
        case 11u: { return x * clamp(x + 3.0, 0.0, 6.0) / 6.0; }
        case 12u: { return select(select(x, params.p1, x >= params.p1), params.p0, x <= params.p0); }
        case 13u: { return clamp(x + 3.0, 0.0, 6.0) / 6.0; }
        case 14u: { return x / (1.0 + abs(x)); }
        case 15u: { return min(x, 0.0) - log1p(exp(-abs(x))); }
        case 16u: { return select(params.p0 * expm1(x / params.p0), x, x > 0.0); }
        default: { return not_a_number(); }
    }
}

fn derivative(x: f32) -> f32 {
    switch FUNCTION {
        case 0u: { return select(0.0, 1.0, x > 0.0); }
        case 1u: { return select(params.p0, 1.0, x > 0.0); }
        case 2u: {
            let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
            return cdf + x * INV_SQRT_2PI * exp(-0.5 * x * x);
        }
        case 3u: {
            let t = tanh_finite(gelu_inner(x));
            let inner_derivative = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * inner_derivative;
        }
        case 4u: {
            let s = sigmoid(x);
            return s * (1.0 + x * (1.0 - s));
        }
        case 5u: {
            let t = tanh_finite(x);
            return 1.0 - t * t;
        }
        case 6u: {
            let s = sigmoid(x);
            return s * (1.0 - s);
        }
        case 7u: { return select(params.p0 * exp(x), 1.0, x > 0.0); }
        case 8u: { return select(SELU_SCALE * SELU_ALPHA * exp(x), SELU_SCALE, x > 0.0); }
        case 9u: {
            let bx = params.p0 * x;
            return select(sigmoid(bx), 1.0, bx > params.p1);
        }
        case 10u: {
            let t = tanh_finite(softplus(x));
            return t + x * sigmoid(x) * (1.0 - t * t);
        }
        case 11u: {
            if (x < -3.0) {
                return 0.0;
            }
            return select(1.0, x / 3.0 + 0.5, x <= 3.0);
        }
        case 12u: { return select(0.0, 1.0, x > params.p0 && x < params.p1); }
        case 13u: { return select(0.0, 1.0 / 6.0, x > -3.0 && x < 3.0); }
        case 14u: {
            let b = 1.0 + abs(x);
            return 1.0 / (b * b);
        }
        case 15u: {
            let z = exp(-abs(x));
            return select(z / (1.0 + z), 1.0 - z / (1.0 + z), x < 0.0);
        }
        case 16u: { return select(exp(x / params.p0), 1.0, x > 0.0); }
        default: { return not_a_number(); }
    }
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var i = gid.x; i < params.len; i += groups.x * WORKGROUP) {
        out[params.out_offset + i] = apply(x[params.x_offset + i]);
    }
}

@compute @workgroup_size(256, 1, 1)
fn backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var i = gid.x; i < params.len; i += groups.x * WORKGROUP) {
        let g = grad_out[params.grad_offset + i];
        out[params.out_offset + i] = g * derivative(x[params.x_offset + i]);
    }
}
