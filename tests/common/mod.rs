//! Shared test helpers: the one GPU backend of a test binary, random data, and tolerances.
#![allow(dead_code)] // each test binary uses a different subset

pub mod bad;
pub mod checkpoint_run;
pub mod lockstep;
pub mod matmul;
pub mod rules;
pub mod setups;
pub mod torch_fixture;

use std::sync::OnceLock;

use ndarray::{Array2, ArrayView2, Zip};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use steepest::{Activation, GpuBackend, GpuBuffer, GpuCounters, GpuMatrix};

/// The GPU backend shared by every test of this binary.
///
/// Without an adapter this panics with the library's own message, which names the fix:
/// a GPU test never passes (or skips) silently.
pub fn gpu() -> &'static GpuBackend {
    static GPU: OnceLock<Result<GpuBackend, String>> = OnceLock::new();
    match GPU.get_or_init(|| GpuBackend::new().map_err(|e| e.to_string())) {
        Ok(gpu) => gpu,
        Err(message) => panic!(
            "GPU tests need a GPU adapter: {message}\n\
             (CI installs lavapipe itself: see .ci/run)"
        ),
    }
}

/// Buffers, bind groups and pipelines a context created between two readings of its counters.
pub fn created(before: GpuCounters, after: GpuCounters) -> (u64, u64, u64) {
    (
        after.buffers_created - before.buffers_created,
        after.bind_groups_created - before.bind_groups_created,
        after.pipelines_created - before.pipelines_created,
    )
}

/// A GPU backend of its own (its own device), for tests that count waits or submits, which
/// the shared one would mix with other tests running in parallel.
pub fn own_gpu() -> GpuBackend {
    gpu(); // fails with the message that names the fix when there is no adapter
    GpuBackend::new().expect("a second device on the same adapter")
}

/// `rows × cols` values uniform in [-scale, scale], different for every seed.
pub fn random_matrix(rng: &mut StdRng, rows: usize, cols: usize, scale: f32) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-scale..=scale))
}

/// A seeded generator (the seed comes from proptest, so each case gets fresh data).
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// f32 unit roundoff.
pub const UNIT_ROUNDOFF: f32 = f32::EPSILON / 2.0;

/// Elementwise tolerance for a matmul result computed in a different summation order.
///
/// A dot product of K terms accumulated in f32 is off by at most about `K·u·Σ|a||b|`; for
/// errors that do not all push the same way the typical error grows like √K, so the bound used
/// is `8·√K·u·(|A|·|B|)ᵢⱼ`, scaled by the operands' magnitudes element by element. The bias
/// adds one rounding of its own size, and the activations (1-Lipschitz) differ between the
/// shader's formula and Rust's libm by a few ulps of a value that is at most 1 in size, hence the
/// absolute 2e-6.
pub fn matmul_tolerance(
    abs_a: ArrayView2<f32>,
    abs_b: ArrayView2<f32>,
    bias: Option<ArrayView2<f32>>,
    k: usize,
    activation: Activation,
) -> Array2<f32> {
    let magnitude = abs_a.dot(&abs_b);
    let mut tol = magnitude.mapv(|s| 8.0 * (k as f32).sqrt() * UNIT_ROUNDOFF * s);
    if let Some(bias) = bias {
        tol += &bias.row(0).mapv(|b| 4.0 * UNIT_ROUNDOFF * b.abs());
    }
    if activation != Activation::Identity {
        tol.mapv_inplace(|t| t + 2e-6);
    }
    tol
}

/// Asserts `actual` is within `tol` of `expected` everywhere (NaN never is), naming the element
/// that misses by the largest factor.
pub fn assert_close(what: &str, actual: &Array2<f32>, expected: &Array2<f32>, tol: &Array2<f32>) {
    assert_eq!(actual.dim(), expected.dim(), "{what}: shape");
    let mut worst: Option<((usize, usize), f32)> = None;
    Zip::indexed(actual)
        .and(expected)
        .and(tol)
        .for_each(|index, &a, &e, &t| {
            let err = (a - e).abs();
            // NaN compares false with everything, so it is named explicitly as the worst miss.
            let miss = if err.is_nan() { f32::INFINITY } else { err / t };
            if (err.is_nan() || err > t) && worst.is_none_or(|(_, m)| miss > m) {
                worst = Some((index, miss));
            }
        });
    if let Some(((i, j), _)) = worst {
        panic!(
            "{what}: element ({i}, {j}) is {}, expected {} ± {}",
            actual[[i, j]],
            expected[[i, j]],
            tol[[i, j]]
        );
    }
}

/// Resident memory of this process, from /proc (Linux).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Written around every output a differential test gives a kernel and checked bit for bit
/// afterwards: a finite value no kernel computes by accident (a NaN guard would miss a stray
/// write of NaN).
pub const CANARY: f32 = -7.654_321e29;

/// A GPU output view with guard bands of [`CANARY`] on both sides and NaN inside (so every
/// element the kernel should write is checked, and any it should not is caught).
pub struct Guarded {
    pub matrix: GpuMatrix,
    buffer: GpuBuffer<f32>,
    before: usize,
    len: usize,
}

/// A guarded `rows × cols` output starting `before` elements into its buffer, with a band
/// behind it deeper than a whole 128-row tile of overrun.
pub fn guarded(rows: usize, cols: usize, before: usize) -> Guarded {
    let len = rows * cols;
    let after = 128 * cols + 300;
    let mut data = vec![CANARY; before];
    data.extend(std::iter::repeat_n(f32::NAN, len));
    data.extend(std::iter::repeat_n(CANARY, after));
    let buffer = GpuBuffer::from_slice(gpu().context(), "guarded output", &data).unwrap();
    Guarded {
        matrix: GpuMatrix::view(buffer.clone(), before, rows, cols).unwrap(),
        buffer,
        before,
        len,
    }
}

impl Guarded {
    /// Asserts every canary is still there, naming the first one that changed.
    pub fn assert_untouched(&self, what: &str) {
        let all = self.buffer.read(gpu().context()).unwrap();
        let end = self.before + self.len;
        for (i, v) in all.iter().enumerate() {
            if (i < self.before || i >= end) && v.to_bits() != CANARY.to_bits() {
                let place = if i < self.before {
                    format!("{} elements before the view", self.before - i)
                } else {
                    format!("{} elements past the view", i - end + 1)
                };
                panic!("{what}: wrote {v} {place}");
            }
        }
    }
}

/// `host` uploaded at element `offset` of a buffer with garbage around it: an input view that
/// starts inside its buffer.
pub fn placed(host: &Array2<f32>, offset: usize) -> GpuMatrix {
    let mut data = vec![1e30f32; offset];
    data.extend(host.iter());
    data.extend([1e30f32; 3]);
    let buffer = GpuBuffer::from_slice(gpu().context(), "input", &data).unwrap();
    GpuMatrix::view(buffer, offset, host.nrows(), host.ncols()).unwrap()
}

/// The largest elementwise |a − b| of two equally long runs of values.
pub fn max_abs_diff<'a>(
    a: impl IntoIterator<Item = &'a f32>,
    b: impl IntoIterator<Item = &'a f32>,
) -> f32 {
    a.into_iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Whether two runs of values are equally long and hold the same bits, element for element.
pub fn bit_identical<'a, X, Y>(x: X, y: Y) -> bool
where
    X: IntoIterator<Item = &'a f32>,
    X::IntoIter: ExactSizeIterator,
    Y: IntoIterator<Item = &'a f32>,
    Y::IntoIter: ExactSizeIterator,
{
    let (x, y) = (x.into_iter(), y.into_iter());
    x.len() == y.len() && x.zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
}

/// An elementwise tolerance: `rel` of each expected value's size plus `abs`.
pub fn tolerance(expected: &Array2<f32>, rel: f32, abs: f32) -> Array2<f32> {
    expected.mapv(|e| rel * e.abs() + abs)
}

/// A safetensors file as PyTorch's `save_file(module.state_dict(), …)` writes one: F32
/// tensors `(name, shape, values)`, no metadata.
pub fn bare_safetensors(tensors: &[(&str, &[usize], &[f32])]) -> Vec<u8> {
    let (mut entries, mut at) = (Vec::new(), 0);
    for (name, shape, values) in tensors {
        let end = at + 4 * values.len();
        entries.push(format!(
            r#""{name}":{{"dtype":"F32","shape":{shape:?},"data_offsets":[{at},{end}]}}"#
        ));
        at = end;
    }
    let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header);
    for (_, _, values) in tensors {
        file.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    file
}
