//! Host side of `shaders/matmul.wgsl`: checks, the tile configuration for the shape, and
//! dispatch (with a fixed-order reduction when K is split).

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{check_bindings, check_no_alias, striding_groups, to_u32};
use super::kernel::{Binding, Kernel};
use super::sites::Dispatch;
use crate::backend::{Activation, Matmul, Matrix, matmul_dims};
use crate::error::{Error, Result};

const MATMUL: Kernel = Kernel {
    shader: "matmul.wgsl",
    source: include_str!("../../../shaders/matmul.wgsl"),
    entry: "matmul",
    bindings: &[
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadOnly,
    ],
    immediate_size: size_of::<Params>() as u32,
};
const MATMUL_REDUCE: Kernel = Kernel {
    entry: "matmul_reduce",
    ..MATMUL
};

/// A workgroup's share of the output: its tile, and how the invocations divide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tile {
    /// 128×128 outputs per workgroup of 16×16 invocations (8×8 each): the most reuse per load,
    /// for outputs with enough tiles to fill the GPU. Two staging buffers: the next K slice is
    /// staged while the current one is multiplied, one barrier per K step instead of two
    /// (11–13% faster than one buffer for TN products on an H200, the same for NN and NT).
    Large,
    /// 64×64 per workgroup of 16×16 (4×4 each).
    Medium,
    /// 32×32 per workgroup of 8×8 (4×4 each): many workgroups for small outputs.
    Small,
}

impl Tile {
    /// Every tile, largest first.
    pub const ALL: [Tile; 3] = [Tile::Large, Tile::Medium, Tile::Small];

    /// (invocations along N, along M, 4×4 blocks per invocation along M, along N).
    const fn geometry(self) -> (u32, u32, u32, u32) {
        match self {
            Tile::Large => (16, 16, 2, 2),
            Tile::Medium => (16, 16, 1, 1),
            Tile::Small => (8, 8, 1, 1),
        }
    }

    /// K per staged slice. (The kernel can stage 16 deep; that measured 10–15% slower on an
    /// H200 at every large shape, and so did staging transposed operands as 4×4 blocks, so no
    /// tile uses either.)
    const fn k_step(self) -> u32 {
        8
    }

    /// Whether two slices are staged at once.
    const fn double_buffered(self) -> bool {
        matches!(self, Tile::Large)
    }

    /// Output rows per tile.
    pub const fn rows(self) -> usize {
        let (_, wg_y, groups_m, _) = self.geometry();
        (4 * wg_y * groups_m) as usize
    }

    /// Output columns per tile.
    pub const fn cols(self) -> usize {
        let (wg_x, _, _, groups_n) = self.geometry();
        (4 * wg_x * groups_n) as usize
    }

    /// Tiles covering an `m × n` output.
    pub fn count(self, m: usize, n: usize) -> usize {
        m.div_ceil(self.rows())
            .saturating_mul(n.div_ceil(self.cols()))
    }
}

/// How one matmul is cut into workgroups: the tile, and K split into `splits` slices of
/// `k_per_split` (the slices' partial products summed afterwards in slice order, so the result
/// does not depend on timing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tiling {
    /// The output tile per workgroup.
    pub tile: Tile,
    /// K slices (1: no split).
    pub splits: usize,
    /// K per slice: a multiple of 8 (the kernel's K step), or K itself without a split.
    pub k_per_split: usize,
}

/// Compute units the cost model fills: an H100 or H200 has 132. A smaller GPU is filled
/// sooner, so the model's choice errs towards more workgroups there, which costs little.
const UNITS: f64 = 132.0;
/// The fewest K values a slice gets: below this, summing partials costs more than it brings.
const MIN_K_PER_SPLIT: usize = 64;
/// K slices tried: 1, 2, 4, 8, 16.
const MAX_SPLITS: usize = 16;
/// Fixed cost of the split's reduction pass, in µs (a dependent dispatch).
const SPLIT_COST_US: f64 = 8.0;
/// Bytes per µs the reduction moves (partials written and read, the output written).
const REDUCE_BYTES_PER_US: f64 = 1.5e6;

impl Tile {
    /// (FLOP/µs one workgroup of this tile reaches alone on a compute unit, FLOP/µs a unit
    /// reaches at most however many it runs), measured on an H200 through Vulkan: a large
    /// tile reuses each load the most, a small one keeps the most units busy.
    fn rates(self) -> (f64, f64) {
        match self {
            Tile::Large => (210e3, 290e3),
            // Not yet measured apart from Large: rated just below it, so it is never chosen
            // over it until a measurement says otherwise.
            Tile::Medium => (84e3, 200e3),
            Tile::Small => (24e3, 120e3),
        }
    }
}

impl Tiling {
    /// One slice of `tile` over all of K.
    pub fn whole(tile: Tile, k: usize) -> Self {
        Self {
            tile,
            splits: 1,
            k_per_split: k,
        }
    }

    /// `tile` with K cut into at most `splits` slices of a multiple of 8 each (fewer when K is
    /// short: every slice is non-empty).
    pub fn split(tile: Tile, k: usize, splits: usize) -> Self {
        let splits = splits.clamp(1, k.div_ceil(8).max(1));
        if splits == 1 {
            return Self::whole(tile, k);
        }
        let k_per_split = k.div_ceil(splits).next_multiple_of(8);
        Self {
            tile,
            splits: k.div_ceil(k_per_split),
            k_per_split,
        }
    }

    /// The tiling for an `m × n` output over `k`: a pure function of the shape (so a shape
    /// always sums in the same order), the fastest by [`Tiling::estimate_us`] among every tile
    /// with K whole or cut into 2, 4, 8 or 16 slices of at least 64, as far as `max_partials`
    /// (the elements a partial-sum buffer may hold) allows. Ties keep the fewer slices and the
    /// larger tile.
    pub fn choose(m: usize, n: usize, k: usize, max_partials: usize) -> Self {
        let mut best = (Self::whole(Tile::Large, k), f64::INFINITY);
        for tile in Tile::ALL {
            for splits in (0..).map(|p| 1usize << p).take_while(|&s| s <= MAX_SPLITS) {
                let tiling = Self::split(tile, k, splits);
                let fits = tiling.splits == 1
                    || (tiling.k_per_split >= MIN_K_PER_SPLIT
                        && m.saturating_mul(n).saturating_mul(tiling.splits) <= max_partials);
                if !fits {
                    continue;
                }
                let time = tiling.estimate_us(m, n);
                if time < best.1 {
                    best = (tiling, time);
                }
            }
        }
        best.0
    }

    /// The cost model behind [`Tiling::choose`], in µs on a 132-unit GPU: the workgroups are
    /// spread over the units, each unit's share runs at its tile's rate for that many
    /// workgroups at once, and a split adds its reduction pass.
    pub fn estimate_us(&self, m: usize, n: usize) -> f64 {
        let per_unit = (self.workgroups(m, n) as f64 / UNITS).ceil().max(1.0);
        let flops = 2.0 * (self.tile.rows() * self.tile.cols() * self.k_per_split) as f64;
        let (single, cap) = self.tile.rates();
        let compute = per_unit * flops / (per_unit * single).min(cap);
        if self.splits == 1 {
            return compute;
        }
        let bytes = ((2 * self.splits + 1) * m * n * 4) as f64;
        compute + SPLIT_COST_US + bytes / REDUCE_BYTES_PER_US
    }

    /// Workgroups of the main dispatch.
    pub fn workgroups(&self, m: usize, n: usize) -> usize {
        self.tile.count(m, n).saturating_mul(self.splits)
    }
}

/// The shader's `Params`, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_offset: u32,
    b_offset: u32,
    bias_offset: u32,
    c_offset: u32,
    tiles_n: u32,
    tiles: u32,
    k_per_split: u32,
    splits: u32,
    groups_x: u32,
    act_offset: u32,
    _pad: [u32; 3],
}

// Every adapter steepest opens offers at least this much immediate data.
const _: () = assert!(size_of::<Params>() as u32 <= super::context::MIN_IMMEDIATE_SIZE);

/// `out ← act(op(a) · op(b) + bias)` on the GPU: the twin of [`crate::backend::cpu::matmul`],
/// with the tiling [`Tiling::choose`] picks for the shape.
///
/// Records into the context's pending work (see [`GpuContext::flush`]).
pub fn matmul(
    ctx: &GpuContext,
    spec: Matmul,
    a: &GpuMatrix,
    b: &GpuMatrix,
    bias: Option<&GpuMatrix>,
    out: &GpuMatrix,
) -> Result<()> {
    matmul_tiled(ctx, spec, None, a, b, bias, out)
}

/// [`matmul`] with the tiling given (`None`: chosen from the shape). Every tiling computes the
/// same product; this exists to compare and test them.
pub fn matmul_tiled(
    ctx: &GpuContext,
    spec: Matmul,
    tiling: Option<Tiling>,
    a: &GpuMatrix,
    b: &GpuMatrix,
    bias: Option<&GpuMatrix>,
    out: &GpuMatrix,
) -> Result<()> {
    record("matmul", ctx, spec, tiling, (a, b, bias), None, out)
}

/// `out ← (op(a) · op(b)) ⊙ act'(·)` where `output` (shaped as `out`) is what `activation`
/// produced: the gradient through a layer's weights and the activation below it in one
/// kernel, the twin of a [`crate::backend::cpu::matmul`] followed by
/// [`crate::backend::cpu::activation_backward`]. `spec`'s own activation must be identity.
pub fn matmul_activation_backward(
    ctx: &GpuContext,
    spec: Matmul,
    a: &GpuMatrix,
    b: &GpuMatrix,
    activation: Activation,
    output: &GpuMatrix,
    out: &GpuMatrix,
) -> Result<()> {
    let op = "matmul_activation_backward";
    if spec.activation != Activation::Identity {
        return Err(Error::Shape {
            op,
            detail: format!(
                "the product's own activation must be identity, not {:?}",
                spec.activation
            ),
        });
    }
    crate::backend::same_shape(op, output.shape(), out.shape())?;
    record(
        op,
        ctx,
        spec,
        None,
        (a, b, None),
        Some((activation, output)),
        out,
    )
}

/// Records one product: checks, tiling, the pipelines and the dispatch.
fn record(
    op: &'static str,
    ctx: &GpuContext,
    spec: Matmul,
    tiling: Option<Tiling>,
    (a, b, bias): (&GpuMatrix, &GpuMatrix, Option<&GpuMatrix>),
    derivative: Option<(Activation, &GpuMatrix)>,
    out: &GpuMatrix,
) -> Result<()> {
    let dims = matmul_dims(
        spec,
        a.shape(),
        b.shape(),
        bias.map(Matrix::shape),
        out.shape(),
    )?;
    let inputs: Vec<&GpuMatrix> = [Some(a), Some(b), bias, derivative.map(|d| d.1)]
        .into_iter()
        .flatten()
        .collect();
    check_no_alias(op, out, &inputs)?;
    check_bindings(ctx, op, &inputs)?;
    check_bindings(ctx, op, &[out])?;
    let (m, n, k) = (dims.m, dims.n, dims.k);
    let outputs = to_u32(op, "M·N", m.saturating_mul(n))? as usize;
    let max_partials = usize::try_from(ctx.limits().max_storage_buffer_binding_size / 4)
        .unwrap_or(usize::MAX)
        .min(u32::MAX as usize);
    let tiling = match tiling {
        Some(t) => check_tiling(op, t, k, outputs, max_partials)?,
        None => Tiling::choose(m, n, k, max_partials),
    };
    let split = tiling.splits > 1;

    // The grid, folded into two dimensions within the device's per-dimension limit.
    let limit = ctx.limits().max_compute_workgroups_per_dimension.max(1) as usize;
    let workgroups = tiling.workgroups(m, n);
    let groups_x = workgroups.min(limit);
    let groups_y = workgroups.div_ceil(groups_x);
    if groups_y > limit {
        return Err(Error::Shape {
            op,
            detail: format!(
                "{m}×{n} over K = {k} needs {workgroups} workgroups, more than this device \
                 dispatches ({limit}²)"
            ),
        });
    }
    let params = Params {
        m: to_u32(op, "M", m)?,
        n: to_u32(op, "N", n)?,
        k: to_u32(op, "K", k)?,
        a_offset: to_u32(op, "a offset", a.offset())?,
        b_offset: to_u32(op, "b offset", b.offset())?,
        bias_offset: to_u32(op, "bias offset", bias.map_or(0, GpuMatrix::offset))?,
        c_offset: to_u32(op, "output offset", out.offset())?,
        tiles_n: to_u32(op, "tile columns", n.div_ceil(tiling.tile.cols()))?,
        tiles: to_u32(op, "tiles", tiling.tile.count(m, n))?,
        k_per_split: to_u32(op, "K per slice", tiling.k_per_split)?,
        splits: to_u32(op, "K slices", tiling.splits)?,
        groups_x: groups_x as u32,
        act_offset: to_u32(
            op,
            "activation output offset",
            derivative.map_or(0, |d| d.1.offset()),
        )?,
        _pad: [0; 3],
    };

    // A whole vec4 load needs the stored rows to start on 16-byte boundaries.
    let vec4_ok = |m: &GpuMatrix| m.shape().1.is_multiple_of(4) && m.offset().is_multiple_of(4);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let (wg_x, wg_y, groups_m, groups_n) = tiling.tile.geometry();
    let epilogue = [
        ("HAS_BIAS", flag(bias.is_some())),
        ("ACTIVATION", f64::from(spec.activation.shader_code())),
        ("SPLIT", flag(split)),
        ("DERIVATIVE", flag(derivative.is_some())),
        (
            "DERIVATIVE_OF",
            f64::from(derivative.map_or(0, |d| d.0.shader_code())),
        ),
    ];
    let mut overrides = vec![
        ("TRANS_A", flag(spec.trans_a)),
        ("TRANS_B", flag(spec.trans_b)),
        ("A_VEC4", flag(vec4_ok(a))),
        ("B_VEC4", flag(vec4_ok(b))),
        ("WG_X", f64::from(wg_x)),
        ("WG_Y", f64::from(wg_y)),
        ("GROUPS_M", f64::from(groups_m)),
        ("GROUPS_N", f64::from(groups_n)),
        ("K_STEP", f64::from(tiling.tile.k_step())),
        ("DOUBLE_BUFFER", flag(tiling.tile.double_buffered())),
    ];
    overrides.extend(epilogue);
    let main = ctx.pipeline(&MATMUL, &overrides)?;
    let reduce = match split {
        true => Some(ctx.pipeline(&MATMUL_REDUCE, &epilogue)?),
        false => None,
    };
    let partials = match split {
        true => Some(ctx.scratch(tiling.splits * outputs)?),
        false => None,
    };
    let mut dispatches = vec![Dispatch {
        pipeline: &main,
        groups: [groups_x as u32, groups_y as u32, 1],
    }];
    if let Some(reduce) = &reduce {
        dispatches.push(Dispatch {
            pipeline: reduce,
            groups: [striding_groups(outputs), 1, 1],
        });
    }
    ctx.dispatch(
        op,
        &MATMUL,
        bytemuck::bytes_of(&params),
        &[
            a.buffer().bind(),
            b.buffer().bind(),
            bias.map_or(ctx.placeholder_bind(), |m| m.buffer().bind()),
            out.buffer().bind(),
            match &partials {
                Some(p) => p.bind_range(0, tiling.splits * outputs),
                None => ctx.placeholder_rw_bind(),
            },
            derivative.map_or(ctx.placeholder_bind(), |d| d.1.buffer().bind()),
        ],
        &dispatches,
    )
}

/// A tiling given by the caller, checked against the shape.
fn check_tiling(
    op: &'static str,
    tiling: Tiling,
    k: usize,
    outputs: usize,
    max_partials: usize,
) -> Result<Tiling> {
    let slices_cover_k = tiling.splits >= 1
        && tiling.k_per_split >= 1
        && tiling
            .splits
            .checked_mul(tiling.k_per_split)
            .is_some_and(|c| c >= k)
        && (tiling.splits - 1) * tiling.k_per_split < k;
    let aligned = tiling.splits == 1 || tiling.k_per_split.is_multiple_of(8);
    let fits = tiling.splits == 1
        || tiling
            .splits
            .checked_mul(outputs)
            .is_some_and(|p| p <= max_partials);
    if slices_cover_k && aligned && fits {
        Ok(tiling)
    } else {
        Err(Error::Shape {
            op,
            detail: format!(
                "tiling {tiling:?} does not fit K = {k} with {outputs} outputs (slices must \
                 each be non-empty, multiples of 8 when split, cover K, and their partial \
                 sums fit {max_partials} elements)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_LIMIT: usize = usize::MAX;

    /// (M, N, K) and the tiling that measured fastest among all tried on an H200
    /// (`gpu_report --tilings`, 2026-11-26), for the bench models' products.
    const MEASURED_BEST: [((usize, usize, usize), Tile, usize); 6] = [
        ((128, 256, 784), Tile::Small, 8),
        ((256, 784, 128), Tile::Small, 1),
        ((128, 784, 256), Tile::Small, 4),
        ((512, 1024, 1024), Tile::Large, 4),
        ((1024, 1024, 512), Tile::Medium, 1),
        ((1024, 4096, 4096), Tile::Large, 1),
    ];

    #[test]
    fn the_model_picks_what_measured_fastest() {
        for ((m, n, k), tile, splits) in MEASURED_BEST {
            let t = Tiling::choose(m, n, k, NO_LIMIT);
            assert_eq!((t.tile, t.splits), (tile, splits), "{m}×{n}×{k}: {t:?}");
        }
    }

    #[test]
    fn large_outputs_get_the_large_tile_and_no_split() {
        for (m, n, k) in [(4096, 4096, 4096), (8192, 8192, 8192), (2048, 2048, 2048)] {
            assert_eq!(
                Tiling::choose(m, n, k, NO_LIMIT),
                Tiling::whole(Tile::Large, k),
                "{m}×{n}×{k}"
            );
        }
    }

    #[test]
    fn tiny_products_are_not_split() {
        // The bench's 2-64-64-2 model: K of 2 or 64 leaves nothing to split.
        for (m, n, k) in [(64, 64, 2), (64, 2, 64), (64, 64, 64), (1, 1, 1)] {
            assert_eq!(Tiling::choose(m, n, k, NO_LIMIT).splits, 1, "{m}×{n}×{k}");
        }
    }

    #[test]
    fn a_small_output_over_a_long_k_splits_it() {
        let t = Tiling::choose(10, 10, 1 << 20, NO_LIMIT);
        assert_eq!(t.splits, MAX_SPLITS);
        assert!(t.k_per_split.is_multiple_of(8) && t.k_per_split >= MIN_K_PER_SPLIT);
    }

    #[test]
    fn the_split_respects_the_partial_buffer() {
        let t = Tiling::choose(128, 256, 784, 2 * 128 * 256);
        assert!(t.splits <= 2, "{t:?}");
        let t = Tiling::choose(128, 256, 784, 128 * 256);
        assert_eq!(t.splits, 1, "{t:?}");
    }

    #[test]
    fn slices_cover_k_exactly_once() {
        for k in [1, 7, 8, 9, 63, 64, 65, 200, 784, 1000, 4097] {
            for splits in 1..20 {
                let t = Tiling::split(Tile::Small, k, splits);
                assert!(
                    t.splits >= 1 && t.splits <= splits.max(1),
                    "{k} {splits} {t:?}"
                );
                assert!(t.splits * t.k_per_split >= k, "{k} {splits} {t:?}");
                assert!(
                    (t.splits - 1) * t.k_per_split < k,
                    "empty slice: {k} {splits} {t:?}"
                );
                assert!(t.splits == 1 || t.k_per_split.is_multiple_of(8), "{t:?}");
                assert!(check_tiling("t", t, k, 1, NO_LIMIT).is_ok());
            }
        }
    }

    #[test]
    fn every_tile_fits_the_kernel() {
        for tile in Tile::ALL {
            let (wg_x, wg_y, groups_m, groups_n) = tile.geometry();
            let (k_step, threads) = (tile.k_step(), wg_x * wg_y);
            let loads = k_step / 8;
            assert!(k_step == 8 || k_step == 16, "{tile:?}");
            // Each invocation stages at most `loads` vec4s of each slice.
            assert!(k_step * wg_y * groups_m <= loads * threads, "{tile:?}");
            assert!(k_step * wg_x * groups_n <= loads * threads, "{tile:?}");
            // Workgroup arrays hold 512 vec4; the accumulator 16; the staging registers 2.
            assert!(k_step * wg_y * groups_m <= 512 && k_step * wg_x * groups_n <= 512);
            assert!(groups_m <= 2 && groups_n <= 2 && loads <= 2);
            // Two staged slices must fit the workgroup arrays too.
            let slices = if tile.double_buffered() { 2 } else { 1 };
            assert!(slices * k_step * wg_y * groups_m <= 512, "{tile:?}");
            assert!(slices * k_step * wg_x * groups_n <= 512, "{tile:?}");
        }
    }
}
