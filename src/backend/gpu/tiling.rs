//! How a matmul is cut into workgroups: the tiles the kernel offers, the K split, and the pure
//! cost model that picks them per shape.

use crate::error::{Error, Result};

/// A workgroup's share of the output: its tile, and how the invocations divide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tile {
    /// 128×128 outputs per workgroup of 16×16 invocations (8×8 each): the most reuse per load,
    /// for outputs with enough tiles to fill the GPU. Two staging buffers: the next K slice is
    /// staged while the current one is multiplied, one barrier per K step instead of two
    /// (11–13% faster than one buffer for TN products on an H200, the same for NN and NT).
    Large,
    /// 128×64 per workgroup of 8×16 (8×8 each, double-buffered): the large tile's reuse per
    /// invocation in half the outputs, so mid-sized products get twice the workgroups. On an
    /// H200 it was the fastest of twelve tilings at the 1024-wide MLP's products (measured
    /// 2026-11-26, `gpu_report --tilings`); wider per-invocation blocks (8×16, 16×8) and
    /// 16-deep K slices were all slower at every size.
    Tall,
    /// 64×64 per workgroup of 16×16 (4×4 each).
    Medium,
    /// 32×32 per workgroup of 8×8 (4×4 each): many workgroups for small outputs.
    Small,
}

/// How the kernel runs one tile: its invocations, the 4×4 blocks each accumulates and whether
/// it stages the next K slice while multiplying the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileShape {
    /// Invocations along N.
    pub wg_x: u32,
    /// Invocations along M.
    pub wg_y: u32,
    /// 4×4 blocks per invocation along M (1 or 2).
    pub groups_m: u32,
    /// 4×4 blocks per invocation along N (1 or 2).
    pub groups_n: u32,
    /// Two staging buffers.
    pub double_buffer: bool,
}

impl Tile {
    /// Every tile, largest first.
    pub const ALL: [Tile; 4] = [Tile::Large, Tile::Tall, Tile::Medium, Tile::Small];

    /// The kernel configuration of this tile.
    pub(crate) const fn shape(self) -> TileShape {
        let (wg_x, wg_y, groups_m, groups_n, double_buffer) = match self {
            Tile::Large => (16, 16, 2, 2, true),
            Tile::Tall => (8, 16, 2, 2, true),
            Tile::Medium => (16, 16, 1, 1, false),
            Tile::Small => (8, 8, 1, 1, false),
        };
        TileShape {
            wg_x,
            wg_y,
            groups_m,
            groups_n,
            double_buffer,
        }
    }

    /// Output rows per tile.
    pub const fn rows(self) -> usize {
        let s = self.shape();
        (4 * s.wg_y * s.groups_m) as usize
    }

    /// Output columns per tile.
    pub const fn cols(self) -> usize {
        let s = self.shape();
        (4 * s.wg_x * s.groups_n) as usize
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
    /// Whether operands stored K-contiguous (A without `trans_a`, B with `trans_b`) are first
    /// transposed into the context's scratch memory, so the kernel stages both operands
    /// without transposing them (on an H200 the TN form ran 20–25% faster than NN and NT at
    /// 2048–8192). The sums are the same, in the same order: the result is bit for bit the
    /// one without. Only without a K split.
    pub pretranspose: bool,
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
/// The share of a product's time that staging a K-contiguous operand costs (NN and NT against
/// TN at 2048–8192 on an H200: 18–22%), which transposing it first saves.
const PRETRANSPOSE_GAIN: f64 = 0.18;
/// Elements a pretransposed product's scratch may need beyond its operands: op(B) starts at
/// the next multiple of a binding's offset alignment (at most 256 bytes on every adapter).
const PRETRANSPOSE_ALIGN_SLACK: usize = 64;
/// Fixed cost of one transpose dispatch, in µs.
const TRANSPOSE_COST_US: f64 = 6.0;
/// Bytes per µs a transpose moves (read and written).
const TRANSPOSE_BYTES_PER_US: f64 = 2.5e6;

impl Tile {
    /// (FLOP/µs one workgroup of this tile reaches alone on a compute unit, FLOP/µs a unit
    /// reaches at most however many it runs), measured on an H200 through Vulkan: a large
    /// tile reuses each load the most, a small one keeps the most units busy.
    fn rates(self) -> (f64, f64) {
        match self {
            Tile::Large => (210e3, 290e3),
            // From the 1024-wide MLP's products, where one or two workgroups of it ran per
            // unit (1024×1024×512: 128 of them in 50 µs; Medium's 256 in 64 µs).
            Tile::Tall => (170e3, 250e3),
            Tile::Medium => (66e3, 200e3),
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
            pretranspose: false,
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
            pretranspose: false,
        }
    }

    /// The tiling for an `m × n` output over `k`: a pure function of the shape (so a shape
    /// always sums in the same order), the fastest by [`Tiling::estimate_us`] among every tile
    /// with K whole or cut into 2, 4, 8 or 16 slices of at least 64, as far as `max_partials`
    /// (the elements a partial-sum buffer may hold) allows. Ties keep the fewer slices and the
    /// larger tile. An unsplit product is [`Tiling::pretranspose`]d where transposing both
    /// operands would cost less than the staging it saves and both fit `max_partials`.
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
        let (mut tiling, time) = best;
        // Both operands are counted, whichever of them the product's form transposes.
        let operands = m.saturating_mul(k).saturating_add(k.saturating_mul(n));
        let cost = 2.0 * TRANSPOSE_COST_US + 8.0 * operands as f64 / TRANSPOSE_BYTES_PER_US;
        tiling.pretranspose = tiling.splits == 1
            && PRETRANSPOSE_GAIN * time > cost
            // (with room for the second operand's aligned start)
            && operands.saturating_add(PRETRANSPOSE_ALIGN_SLACK) <= max_partials;
        tiling
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

    /// Whether an `m × n` output over `k` fills this tiling exactly: every tile inside the
    /// output, every K slice a non-empty whole number of the kernel's 8-wide K steps. With
    /// both operands' rows on 16-byte boundaries, every tile then loads its slices and stores
    /// its outputs without edge checks (`matmul.wgsl`'s `ALL_INSIDE`).
    pub(crate) fn fills(&self, m: usize, n: usize, k: usize) -> bool {
        let slices_whole = self.splits == 1 || self.k_per_split.is_multiple_of(8);
        m > 0
            && n > 0
            && k > 0
            && m.is_multiple_of(self.tile.rows())
            && n.is_multiple_of(self.tile.cols())
            && k.is_multiple_of(8)
            && slices_whole
    }
}

/// A tiling given by the caller, checked against the shape.
pub(crate) fn check_tiling(
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
    let whole_if_pretransposed = !tiling.pretranspose || tiling.splits == 1;
    let fits = tiling.splits == 1
        || tiling
            .splits
            .checked_mul(outputs)
            .is_some_and(|p| p <= max_partials);
    if slices_cover_k && aligned && fits && whole_if_pretransposed {
        Ok(tiling)
    } else {
        Err(Error::Shape {
            op,
            detail: format!(
                "tiling {tiling:?} does not fit K = {k} with {outputs} outputs (slices must \
                 each be non-empty, multiples of 8 when split, cover K, and their partial \
                 sums fit {max_partials} elements; a pretransposed product is not split)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_LIMIT: usize = usize::MAX;

    #[test]
    fn an_output_fills_its_tiles_only_with_whole_tiles_and_k_steps() {
        let large = Tiling::whole(Tile::Large, 4096);
        assert!(large.fills(4096, 4096, 4096));
        assert!(large.fills(1024, 128, 4096));
        assert!(!large.fills(1024, 64, 4096), "a half tile of columns");
        assert!(!large.fills(1000, 128, 4096), "a partial tile of rows");
        assert!(!large.fills(128, 128, 0), "no K");
        assert!(!large.fills(0, 128, 64), "no rows");
        let small = Tiling::whole(Tile::Small, 20);
        assert!(small.fills(32, 64, 16));
        assert!(!small.fills(32, 64, 20), "K not whole 8-wide steps");
        // Split K: slices of 16 (whole steps) over K = 64, and one that would end mid-step.
        assert!(Tiling::split(Tile::Small, 64, 4).fills(32, 32, 64));
        assert!(!Tiling::split(Tile::Small, 60, 4).fills(32, 32, 60));
        // The tall tile is 128 × 64: its rows and columns are not interchangeable.
        let tall = Tiling::whole(Tile::Tall, 8);
        assert!(tall.fills(128, 64, 8));
        assert!(!tall.fills(64, 128, 8));
    }

    /// (M, N, K) and the tiling that measured fastest among all tried on an H200
    /// (`gpu_report --tilings`, 2026-11-26, among Large, Tall, Medium, Small and eight other
    /// configurations since dropped), for the bench models' products.
    const MEASURED_BEST: [((usize, usize, usize), Tile, usize); 6] = [
        ((128, 256, 784), Tile::Small, 8),
        ((256, 784, 128), Tile::Small, 1),
        ((128, 784, 256), Tile::Small, 4),
        ((512, 1024, 1024), Tile::Tall, 4),
        ((1024, 1024, 512), Tile::Tall, 1),
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
    fn large_outputs_get_the_large_tile_unsplit_and_pretransposed() {
        for (m, n, k) in [(4096, 4096, 4096), (8192, 8192, 8192), (2048, 2048, 2048)] {
            let expected = Tiling {
                pretranspose: true,
                ..Tiling::whole(Tile::Large, k)
            };
            assert_eq!(Tiling::choose(m, n, k, NO_LIMIT), expected, "{m}×{n}×{k}");
        }
    }

    #[test]
    fn small_products_are_not_pretransposed() {
        // The 784- and 1024-wide MLPs' products: a transpose costs more than it saves.
        for (m, n, k) in [
            (128, 256, 784),
            (128, 784, 256),
            (512, 1024, 1024),
            (64, 64, 2),
        ] {
            let t = Tiling::choose(m, n, k, NO_LIMIT);
            assert!(!t.pretranspose, "{m}×{n}×{k}: {t:?}");
        }
    }

    #[test]
    fn no_pretranspose_when_the_scratch_cannot_hold_the_operands() {
        let (m, n, k) = (4096, 4096, 4096);
        let t = Tiling::choose(m, n, k, 2 * m * k - 1);
        assert!(!t.pretranspose, "{t:?}");
        assert!(Tiling::choose(m, n, k, 2 * m * k + 64).pretranspose);
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
            let s = tile.shape();
            let threads = s.wg_x * s.wg_y;
            // Each invocation stages at most four vec4s of each 8-deep slice.
            assert!(8 * s.wg_y * s.groups_m <= 4 * threads, "{tile:?}");
            assert!(8 * s.wg_x * s.groups_n <= 4 * threads, "{tile:?}");
            // The accumulator holds up to 2×2 blocks of 4×4.
            assert!((1..=2).contains(&s.groups_m) && (1..=2).contains(&s.groups_n));
            // The staged slices fit the workgroup memory every adapter has (16 KiB).
            let slices = if s.double_buffer { 2 } else { 1 };
            let bytes = slices * 16 * 8 * (s.wg_y * s.groups_m + s.wg_x * s.groups_n);
            assert!(bytes <= 16384, "{tile:?}: {bytes} bytes");
        }
    }
}
