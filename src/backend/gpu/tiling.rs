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
    /// 64×64 per workgroup of 16×16 (4×4 each).
    Medium,
    /// 32×32 per workgroup of 8×8 (4×4 each): many workgroups for small outputs.
    Small,
}

impl Tile {
    /// Every tile, largest first.
    pub const ALL: [Tile; 3] = [Tile::Large, Tile::Medium, Tile::Small];

    /// (invocations along N, along M, 4×4 blocks per invocation along M, along N).
    pub(crate) const fn geometry(self) -> (u32, u32, u32, u32) {
        match self {
            Tile::Large => (16, 16, 2, 2),
            Tile::Medium => (16, 16, 1, 1),
            Tile::Small => (8, 8, 1, 1),
        }
    }

    /// Whether two slices are staged at once.
    pub(crate) const fn double_buffered(self) -> bool {
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
            let threads = wg_x * wg_y;
            // Each invocation stages at most one vec4 of each 8-deep slice.
            assert!(8 * wg_y * groups_m <= threads, "{tile:?}");
            assert!(8 * wg_x * groups_n <= threads, "{tile:?}");
            // The accumulator holds 2×2 blocks of 4×4.
            assert!(groups_m <= 2 && groups_n <= 2);
            // Two staged slices must fit the workgroup arrays too.
            let slices = if tile.double_buffered() { 2 } else { 1 };
            assert!(slices * 8 * wg_y * groups_m <= 512, "{tile:?}");
            assert!(slices * 8 * wg_x * groups_n <= 512, "{tile:?}");
        }
    }
}
