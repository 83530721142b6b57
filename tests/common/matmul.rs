//! The matmul differential check both matmul test files run: fresh data, a poisoned and
//! guarded GPU output, every tiling or the shape's own.

use ndarray::Array2;
use steepest::backend::cpu;
use steepest::backend::gpu::{Tile, Tiling, matmul_tiled};
use steepest::{Backend, Matmul};

use super::{assert_close, gpu, guarded, matmul_tolerance, random_matrix, rng};

/// One GPU-vs-CPU comparison with the tiling chosen for the shape.
pub fn check(m: usize, n: usize, k: usize, spec: Matmul, with_bias: bool, seed: u64) {
    check_tiled(m, n, k, spec, None, with_bias, seed);
}

/// Every tiling a test forces: each tile whole, whole with its K-contiguous operands
/// transposed first, and with K cut into 2 and 5 slices (fewer where K is short).
pub fn tilings(k: usize) -> Vec<Tiling> {
    Tile::ALL
        .into_iter()
        .flat_map(|tile| {
            let pretransposed = Tiling {
                pretranspose: true,
                ..Tiling::whole(tile, k)
            };
            [1, 2, 5]
                .into_iter()
                .map(move |splits| Tiling::split(tile, k, splits))
                .chain([pretransposed])
        })
        .collect()
}

/// One GPU-vs-CPU comparison: fresh data from `seed`, the GPU output poisoned with NaN inside
/// and canaries around it (checked afterwards), with `tiling` (or the shape's own).
pub fn check_tiled(
    m: usize,
    n: usize,
    k: usize,
    spec: Matmul,
    tiling: Option<Tiling>,
    with_bias: bool,
    seed: u64,
) {
    let mut rng = rng(seed);
    // Magnitudes vary per case so the tolerance's scaling by the operands is exercised.
    let scale_a = [0.01, 1.0, 30.0][(seed % 3) as usize];
    let scale_b = [1.0, 0.1, 4.0][(seed / 3 % 3) as usize];
    let a_shape = if spec.trans_a { (k, m) } else { (m, k) };
    let b_shape = if spec.trans_b { (n, k) } else { (k, n) };
    let a = random_matrix(&mut rng, a_shape.0, a_shape.1, scale_a);
    let b = random_matrix(&mut rng, b_shape.0, b_shape.1, scale_b);
    let bias = with_bias.then(|| random_matrix(&mut rng, 1, n, 2.0));

    let mut expected = Array2::zeros((m, n));
    cpu::matmul(
        spec,
        a.view(),
        b.view(),
        bias.as_ref().map(|v| v.view()),
        &mut expected,
    )
    .unwrap();

    let gpu = gpu();
    let (ga, gb) = (gpu.upload(a.view()).unwrap(), gpu.upload(b.view()).unwrap());
    let gbias = bias.as_ref().map(|v| gpu.upload(v.view()).unwrap());
    let out = guarded(m, n, (seed % 67) as usize);
    matmul_tiled(
        gpu.context(),
        spec,
        tiling,
        &ga,
        &gb,
        gbias.as_ref(),
        &out.matrix,
    )
    .unwrap();
    let actual = gpu.download(&out.matrix).unwrap();

    let abs_a = if spec.trans_a {
        a.t().mapv(f32::abs)
    } else {
        a.mapv(f32::abs)
    };
    let abs_b = if spec.trans_b {
        b.t().mapv(f32::abs)
    } else {
        b.mapv(f32::abs)
    };
    let tol = matmul_tolerance(
        abs_a.view(),
        abs_b.view(),
        bias.as_ref().map(|v| v.view()),
        k,
        spec.activation,
    );
    let what = format!("{m}×{n}×{k} {spec:?} {tiling:?} bias={with_bias} seed={seed}");
    assert_close(&what, &actual, &expected, &tol);
    out.assert_untouched(&what);
}
