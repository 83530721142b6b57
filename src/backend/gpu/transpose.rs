//! Host side of `shaders/transpose.wgsl`: `gpu::transpose`.

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{bound, check_bindings, check_no_alias, folded_grid, to_u32};
use super::kernel::{Binding, Kernel};
use super::sites::{Bind, Dispatch, Step};
use crate::backend::{Matrix, transpose_dims};
use crate::error::Result;

const TRANSPOSE: Kernel = Kernel {
    shader: "transpose.wgsl",
    source: include_str!("../../../shaders/transpose.wgsl"),
    entry: "transpose",
    bindings: &[Binding::ReadOnly, Binding::ReadWrite],
    immediate_size: size_of::<Params>() as u32,
};

/// The same file's whole-vec4 entry point, for shapes and offsets in multiples of 4.
const TRANSPOSE_VEC4: Kernel = Kernel {
    entry: "transpose_vec4",
    ..TRANSPOSE
};

/// The source tile each workgroup of `transpose` moves is `TILE × TILE`.
const TILE: usize = 32;

/// The source tile each workgroup of `transpose_vec4` moves is `TILE_VEC4 × TILE_VEC4`.
const TILE_VEC4: usize = 64;

/// The shader's `Params`, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    src_offset: u32,
    out_offset: u32,
    tiles_c: u32,
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
    let (bindings, dispatch) = (planned.bindings(), [planned.dispatch()]);
    ctx.dispatch_steps("transpose", &[planned.step(&bindings, &dispatch)])
}

/// A checked transpose, to record alone or as one [`Step`] of a longer recording.
pub(crate) struct Planned<'a> {
    src: Bind<'a>,
    out: Bind<'a>,
    kernel: &'static Kernel,
    params: Params,
    pipeline: wgpu::ComputePipeline,
    groups: [u32; 3],
}

impl<'a> Planned<'a> {
    /// Checks `out ← srcᵀ` and builds its pipeline and values.
    pub(crate) fn new(ctx: &GpuContext, src: &'a GpuMatrix, out: &'a GpuMatrix) -> Result<Self> {
        let op = "transpose";
        transpose_dims(op, src.shape(), out.shape())?;
        check_bindings(ctx, op, &[src, out])?;
        check_no_alias(op, out, &[src])?;
        let (rows, cols) = src.shape();
        let (sb, ob) = (bound(ctx, op, &[src])?, bound(ctx, op, &[out])?);
        // Whole vec4s where every row of both starts on a 16-byte boundary (both buffers are
        // allocated in multiples of 16 bytes).
        let vec4 = [rows, cols, src.offset(), out.offset()]
            .iter()
            .all(|n| n % 4 == 0);
        let (kernel, tile) = if vec4 {
            (&TRANSPOSE_VEC4, TILE_VEC4)
        } else {
            (&TRANSPOSE, TILE)
        };
        let tiles_c = cols.div_ceil(tile);
        let tiles = rows.div_ceil(tile).saturating_mul(tiles_c);
        let [groups_x, groups_y] = folded_grid(ctx, op, tiles, || format!("{rows}×{cols}"))?;
        Ok(Self {
            src: sb.bind,
            out: ob.bind,
            kernel,
            params: Params {
                rows: to_u32(op, "rows", rows)?,
                cols: to_u32(op, "cols", cols)?,
                src_offset: sb.offset(op, "source offset", src)?,
                out_offset: ob.offset(op, "output offset", out)?,
                tiles_c: to_u32(op, "tile columns", tiles_c)?,
                tiles: to_u32(op, "tiles", tiles)?,
                groups_x,
                _pad: 0,
            },
            pipeline: ctx.pipeline(kernel, &[])?,
            groups: [groups_x, groups_y, 1],
        })
    }

    /// The buffers it binds.
    pub(crate) fn bindings(&self) -> [Bind<'a>; 2] {
        [self.src, self.out]
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
            immediates: bytemuck::bytes_of(&self.params),
            bindings,
            dispatches: dispatch,
        }
    }
}
