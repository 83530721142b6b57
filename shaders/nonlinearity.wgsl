// nonlinearity.wgsl: the activation layers' elementwise functions and their gradients,
// with derivatives taken from the layer's INPUT (GELU and SiLU need it).
//
// Immediate data: Params { len, x_offset, out_offset, grad_offset, slope }
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
// Any other code yields NaN, never a formula picked silently.

override FUNCTION: u32 = 0u;

const WORKGROUP: u32 = 256u;
const SQRT_2_OVER_PI: f32 = 0.7978846;
const GELU_CUBIC: f32 = 0.044715;
const INV_SQRT_2PI: f32 = 0.3989423;
const FRAC_1_SQRT_2: f32 = 0.70710677;

struct Params {
    len: u32,
    x_offset: u32,
    out_offset: u32,
    grad_offset: u32,
    slope: f32,
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

// Built-in tanh is NaN for large |x| on some drivers; this form is finite everywhere.
fn tanh_finite(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// Abramowitz & Stegun 7.1.26, |error| < 1.5e-7 (the CPU twin uses the same formula).
fn erf(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.2548296 + t * (-0.28449674 + t * (1.4214138 + t * (-1.453152 + t * 1.0614054))));
    return sign(x) * (1.0 - poly * exp(-a * a));
}

fn gelu_inner(x: f32) -> f32 {
    let c = clamp(x, -20.0, 20.0);
    return SQRT_2_OVER_PI * (c + GELU_CUBIC * c * c * c);
}

fn apply(x: f32) -> f32 {
    switch FUNCTION {
        case 0u: { return max(x, 0.0); }
        case 1u: { return select(params.slope * x, x, x > 0.0); }
        case 2u: { return 0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2)); }
        case 3u: { return 0.5 * x * (1.0 + tanh_finite(gelu_inner(x))); }
        case 4u: { return x * sigmoid(x); }
        case 5u: { return tanh_finite(x); }
        case 6u: { return sigmoid(x); }
        default: { return not_a_number(); }
    }
}

fn derivative(x: f32) -> f32 {
    switch FUNCTION {
        case 0u: { return select(0.0, 1.0, x > 0.0); }
        case 1u: { return select(params.slope, 1.0, x > 0.0); }
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
