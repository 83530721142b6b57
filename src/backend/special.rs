//! The special functions the nonlinearities are built from, in the forms
//! `shaders/nonlinearity.wgsl` computes too: `expm1` and `log1p` accurate near 0, a softplus
//! that never overflows, a tanh finite everywhere, and erf by Abramowitz & Stegun.

/// Below this magnitude `expm1` and `log1p` take their Taylor series (five terms: a relative
/// error under 1e-11), which keeps the digits of a tiny argument that `e^x − 1` and
/// `ln(1 + u)` lose. No cancellation trick (Kahan's, Goldberg's): GPU compilers simplify
/// `(1 + u) − 1` to `u` and the drivers' `log` is a few 1e-8 off near 1.
const SERIES_BELOW: f32 = 0.01;

/// `e^x − 1`, accurate near 0 as PyTorch's `expm1` (the kernels compute the same).
pub(super) fn expm1(x: f32) -> f32 {
    if x.abs() < SERIES_BELOW {
        x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x / 120.0))))
    } else {
        x.exp() - 1.0
    }
}

/// `ln(1 + u)` for u ≥ 0, accurate near 0 as PyTorch's `log1p` (the kernels compute the
/// same).
pub(super) fn log1p(u: f32) -> f32 {
    if u < SERIES_BELOW {
        u * (1.0 - u * (0.5 - u * (1.0 / 3.0 - u * (0.25 - u / 5.0))))
    } else {
        (1.0 + u).ln()
    }
}

/// `ln(1 + e^x)` as `max(x, 0) + ln(1 + e^−|x|)`: finite for every finite x.
pub(super) fn softplus(x: f32) -> f32 {
    x.max(0.0) + log1p((-x.abs()).exp())
}

/// `tanh(x)` as the kernels compute it, finite everywhere (some drivers' built-in is NaN for
/// large |x|): `sign(x) · (1 − e) / (1 + e)` with `e = e^−2|x|`, whose `1 + tanh` keeps its
/// digits near −1 (GELU's tanh form differentiates there); below |x| = 1/2, `−m / (2 + m)`
/// with `m = expm1(−2|x|)`, where `1 − e` would keep only the error of `exp` (Mish multiplies
/// it by a large x).
pub(super) fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let t = if a < 0.5 {
        let m = expm1(-2.0 * a);
        -m / (2.0 + m)
    } else {
        let e = (-2.0 * a).exp();
        (1.0 - e) / (1.0 + e)
    };
    t.copysign(x)
}

/// The error function by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, under
/// f32's resolution near ±1), the formula `shaders/nonlinearity.wgsl` uses too; Rust's
/// standard library has no stable `erf`.
pub(super) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * (-a * a).exp()).copysign(x)
}
