//! Host side of `shaders/transpose.wgsl`: `gpu::transpose`.

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{bound, check_bindings, check_no_alias, folded_grid, to_u32};
use super::kernel::{Binding, Kernel};
use super::sites::{Bind, Dispatch, Step};
use crate::backend::{Matrix, transpose_dims};
use crate::error::{Error, Result};

const TRANSPOSE: Kernel = Kernel {
    shader: "transpose.wgsl",
    source: include_str!("../../../shaders/transpose.wgsl"),
    entry: "transpose",
    // 2 and 3: `transpose_vec4_pair`'s second job (placeholders for the other entry points).
    bindings: &[
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadOnly,
        Binding::ReadWrite,
    ],
    groups: 1,
    immediate_size: size_of::<Jobs>() as u32,
};

/// The same file's whole-vec4 entry point, for shapes and offsets in multiples of 4.
const TRANSPOSE_VEC4: Kernel = Kernel {
    entry: "transpose_vec4",
    ..TRANSPOSE
};

/// Two whole-vec4 transposes in one dispatch.
const TRANSPOSE_VEC4_PAIR: Kernel = Kernel {
    entry: "transpose_vec4_pair",
    ..TRANSPOSE
};

/// The source tile each workgroup of `transpose` moves is `TILE × TILE`.
const TILE: usize = 32;

/// The source tile each workgroup of `transpose_vec4` (and `_pair`) moves is
/// `TILE_VEC4 × TILE_VEC4`.
const TILE_VEC4: usize = 64;

/// The shader's `Jobs`, field for field: `[job 0's, job 1's]` (one job leaves the second
/// halves zero).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Jobs {
    rows: [u32; 2],
    cols: [u32; 2],
    src_offset: [u32; 2],
    out_offset: [u32; 2],
    tiles_c: [u32; 2],
    tiles0: u32,
    tiles: u32,
    groups_x: u32,
    _pad: u32,
}

/// `out ← srcᵀ` on the GPU: the twin of [`crate::backend::cpu::transpose`]. `out` must be
/// `cols × rows` of the `rows × cols` source and must not overlap it. Shapes and offsets in
/// multiples of 4 move whole vec4s (`transpose_vec4`); others, one element at a time.
///
/// Records into the context's pending work (see [`GpuContext::flush`]).
pub fn transpose(ctx: &GpuContext, src: &GpuMatrix, out: &GpuMatrix) -> Result<()> {
    let planned = Planned::new(ctx, src, out)?;
    let (bindings, dispatch) = (planned.bindings(ctx), [planned.dispatch()]);
    ctx.dispatch_steps("transpose", &[planned.step(&bindings, &dispatch)])
}

/// One checked transpose's extents and bindings.
struct Job<'a> {
    src: Bind<'a>,
    out: Bind<'a>,
    rows: usize,
    cols: usize,
    src_offset: u32,
    out_offset: u32,
}

impl<'a> Job<'a> {
    fn new(ctx: &GpuContext, src: &'a GpuMatrix, out: &'a GpuMatrix) -> Result<Self> {
        let op = "transpose";
        transpose_dims(op, src.shape(), out.shape())?;
        check_bindings(ctx, op, &[src, out])?;
        check_no_alias(op, out, &[src])?;
        let (rows, cols) = src.shape();
        let (sb, ob) = (bound(ctx, op, &[src])?, bound(ctx, op, &[out])?);
        Ok(Self {
            src: sb.bind,
            out: ob.bind,
            rows,
            cols,
            src_offset: sb.offset(op, "source offset", src)?,
            out_offset: ob.offset(op, "output offset", out)?,
        })
    }

    /// Whether it moves whole vec4s: every row of both starts on a 16-byte boundary (both
    /// buffers are allocated in multiples of 16 bytes).
    fn vec4(&self) -> bool {
        let offsets = [self.src_offset as usize, self.out_offset as usize];
        [self.rows, self.cols]
            .iter()
            .chain(&offsets)
            .all(|n| n % 4 == 0)
    }

    /// Puts its extents in half `i` of `jobs`; returns its tile count for tiles `tile × tile`.
    fn fill(&self, jobs: &mut Jobs, i: usize, tile: usize) -> Result<usize> {
        let op = "transpose";
        let tiles_c = self.cols.div_ceil(tile);
        jobs.rows[i] = to_u32(op, "rows", self.rows)?;
        jobs.cols[i] = to_u32(op, "cols", self.cols)?;
        jobs.src_offset[i] = self.src_offset;
        jobs.out_offset[i] = self.out_offset;
        jobs.tiles_c[i] = to_u32(op, "tile columns", tiles_c)?;
        Ok(self.rows.div_ceil(tile).saturating_mul(tiles_c))
    }
}

/// A checked transpose (or two in one dispatch), to record alone or as one [`Step`] of a
/// longer recording.
pub(crate) struct Planned<'a> {
    first: Job<'a>,
    second: Option<Job<'a>>,
    kernel: &'static Kernel,
    jobs: Jobs,
    pipeline: wgpu::ComputePipeline,
    groups: [u32; 3],
}

impl<'a> Planned<'a> {
    /// Checks `out ← srcᵀ` and builds its pipeline and values.
    pub(crate) fn new(ctx: &GpuContext, src: &'a GpuMatrix, out: &'a GpuMatrix) -> Result<Self> {
        let job = Job::new(ctx, src, out)?;
        let (kernel, tile) = if job.vec4() {
            (&TRANSPOSE_VEC4, TILE_VEC4)
        } else {
            (&TRANSPOSE, TILE)
        };
        Self::build(ctx, kernel, tile, job, None)
    }

    /// Both `out0 ← src0ᵀ` and `out1 ← src1ᵀ` in one dispatch where both move whole vec4s
    /// (`None` where either does not: record them one at a time). Neither output may overlap
    /// the other or either source.
    pub(crate) fn pair(
        ctx: &GpuContext,
        (src0, out0): (&'a GpuMatrix, &'a GpuMatrix),
        (src1, out1): (&'a GpuMatrix, &'a GpuMatrix),
    ) -> Result<Option<Self>> {
        let op = "transpose";
        let (first, second) = (Job::new(ctx, src0, out0)?, Job::new(ctx, src1, out1)?);
        check_no_alias(op, out0, &[src1])?;
        check_no_alias(op, out1, &[src0])?;
        // Two views of one scratch buffer, never sharing an element.
        let span = |m: &GpuMatrix| {
            let (rows, cols) = m.shape();
            m.offset()..m.offset().saturating_add(rows.saturating_mul(cols))
        };
        let (s0, s1) = (span(out0), span(out1));
        if out0.buffer().raw() == out1.buffer().raw() && s0.start < s1.end && s1.start < s0.end {
            return Err(Error::Shape {
                op,
                detail: format!("the two outputs overlap (elements {s0:?} and {s1:?})"),
            });
        }
        if !(first.vec4() && second.vec4()) {
            return Ok(None);
        }
        Self::build(ctx, &TRANSPOSE_VEC4_PAIR, TILE_VEC4, first, Some(second)).map(Some)
    }

    fn build(
        ctx: &GpuContext,
        kernel: &'static Kernel,
        tile: usize,
        first: Job<'a>,
        second: Option<Job<'a>>,
    ) -> Result<Self> {
        let op = "transpose";
        let mut jobs = Jobs::default();
        let tiles0 = first.fill(&mut jobs, 0, tile)?;
        let tiles1 = match &second {
            Some(job) => job.fill(&mut jobs, 1, tile)?,
            None => 0,
        };
        let tiles = tiles0.saturating_add(tiles1);
        let [groups_x, groups_y] = folded_grid(ctx, op, tiles, || {
            format!("{}×{} and {tiles1} more tiles", first.rows, first.cols)
        })?;
        jobs.tiles0 = to_u32(op, "tiles", tiles0)?;
        jobs.tiles = to_u32(op, "tiles", tiles)?;
        jobs.groups_x = groups_x;
        Ok(Self {
            first,
            second,
            kernel,
            jobs,
            pipeline: ctx.pipeline(kernel, &[])?,
            groups: [groups_x, groups_y, 1],
        })
    }

    /// The buffers it binds: each job's source and output (placeholders for a second where
    /// there is none).
    pub(crate) fn bindings(&self, ctx: &'a GpuContext) -> [Bind<'a>; 4] {
        let second = self.second.as_ref();
        [
            self.first.src,
            self.first.out,
            second.map_or(ctx.placeholder_bind(), |j| j.src),
            second.map_or(ctx.placeholder_rw_bind(), |j| j.out),
        ]
    }

    /// Its one dispatch.
    pub(crate) fn dispatch(&self) -> Dispatch<'_> {
        Dispatch {
            pipeline: &self.pipeline,
            groups: self.groups,
        }
    }

    /// The step recording it, over its [`Planned::bindings`] and [`Planned::dispatch`].
    pub(crate) fn step<'s>(
        &'s self,
        bindings: &'s [Bind<'s>],
        dispatch: &'s [Dispatch<'s>],
    ) -> Step<'s> {
        Step {
            kernel: self.kernel,
            immediates: bytemuck::bytes_of(&self.jobs),
            bindings,
            dispatches: dispatch,
        }
    }
}
