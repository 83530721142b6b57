//! `DropoutDraw`: what one dropout mask is drawn from, shared by both backends' kernels.

use crate::error::{Error, Result};

/// One dropout mask's parameters: the drop probability and the key the counter-based draw
/// hashes each element's index with (from the layer's seed and the step, so the mask of a
/// step is the same on every backend and after a resume).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutDraw {
    /// The probability of dropping an element, in [0, 1).
    pub p: f32,
    /// The draw's key.
    pub key: u64,
}

impl DropoutDraw {
    /// The draw of step `step` of a layer seeded with `seed`.
    pub fn new(p: f32, seed: u64, step: u64) -> Self {
        Self {
            p,
            key: splitmix64(seed ^ splitmix64(step)),
        }
    }

    /// Checks `p`.
    pub fn validate(self, op: &'static str) -> Result<()> {
        if (0.0..1.0).contains(&self.p) {
            return Ok(());
        }
        Err(Error::Shape {
            op,
            detail: format!("p = {}: the drop probability must be in [0, 1)", self.p),
        })
    }

    /// (key0, key1, threshold, scale) as the kernels use them: keep an element when its hash
    /// is at least `threshold` = p · 2³², and scale kept ones by 1 / (1 − p).
    pub(crate) fn kernel_params(self) -> (u32, u32, u32, f32) {
        let threshold = (f64::from(self.p) * 4_294_967_296.0)
            .round()
            .min(4_294_967_295.0) as u32;
        let scale = (1.0 / (1.0 - f64::from(self.p))) as f32;
        (self.key as u32, (self.key >> 32) as u32, threshold, scale)
    }

    /// Element `i`'s mask value: 0 or the scale (the kernel's formula).
    pub(crate) fn mask(self, i: u32) -> f32 {
        let (key0, key1, threshold, scale) = self.kernel_params();
        let h = pcg(pcg(i ^ key0).wrapping_add(key1));
        if h >= threshold { scale } else { 0.0 }
    }
}

/// The PCG output permutation of `v`, as `shaders/dropout.wgsl`'s `hash`.
fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// SplitMix64's finaliser: a well-mixed 64-bit key from a seed and a step.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
