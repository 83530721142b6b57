// activation.wgsl: the activations a kernel fuses, by the host's code (0 identity, 1 ReLU,
// 2 sigmoid, 3 tanh: `Activation::code`), and their derivatives from the activation's output.
// Not a kernel: the host prepends this file to every shader that applies them (matmul,
// linear_chain, linear_backward, elementwise), so fused and separate kernels compute the same
// bits from one definition. An unknown code gives NaN, never a formula picked silently.
//
// Called with an override constant as `code`, so each kernel specialisation compiles to its
// one formula.

fn activate(code: u32, x: vec4<f32>) -> vec4<f32> {
    switch code {
        case 1u: {
            return max(x, vec4<f32>(0.0));
        }
        case 2u: {
            // Never exponentiates a positive number, so no overflow for any x.
            let e = exp(-abs(x));
            return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= vec4<f32>(0.0));
        }
        case 3u: {
            // Built-in tanh is NaN for large |x| on some drivers; this form is finite everywhere.
            let e = exp(-2.0 * abs(x));
            return sign(x) * (1.0 - e) / (1.0 + e);
        }
        case 0u: {
            return x;
        }
        default: {
            return vec4<f32>(bitcast<f32>(0x7fc00000u));
        }
    }
}

// act'(·) of activation `code` from its output a: identity 1, ReLU [a > 0], sigmoid a(1 − a),
// tanh 1 − a².
fn derivative_from_output(code: u32, a: f32) -> f32 {
    switch code {
        case 1u: { return select(0.0, 1.0, a > 0.0); }
        case 2u: { return a * (1.0 - a); }
        case 0u: { return 1.0; }
        case 3u: { return 1.0 - a * a; }
        default: { return bitcast<f32>(0x7fc00000u); }
    }
}
