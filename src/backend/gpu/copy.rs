//! Host side of `shaders/copy.wgsl`: an arena copied onto another of its layout by a kernel,
//! 16 bytes at a time, the twin of [`CpuBackend::copy_arena`](crate::CpuBackend).
//!
//! Why a kernel and not wgpu's `copy_buffer_to_buffer`: on an H200 through Vulkan that command
//! moved 824 GB/s (read + write) where PyTorch's copy kernel moves 4 068 and this crate's
//! element-wise kernels 3 000–3 860, and the arenas' copies (the last good parameters every
//! epoch, the best ones kept, L-BFGS's and the line search's every iteration) are whole
//! models. Each arena is bound in a bind group of its own (the kernel's two groups share one
//! layout), so an arena's bind group serves every copy to or from it: the first copy in either
//! direction builds what the other reuses, and a run's last restore creates nothing.

use super::context::GpuContext;
use super::dispatch::{Bound, Entry, bound, record, striding_groups, to_u32};
use super::kernel::{Binding, Kernel};
use super::{GpuArena, GpuMatrix, arena_ops};
use crate::backend::Matrix;
use crate::error::{Error, Result};

const COPY_VEC4S: Kernel = Kernel {
    shader: "copy.wgsl",
    source: include_str!("../../../shaders/copy.wgsl"),
    entry: "copy_vec4s",
    bindings: &[Binding::ReadWrite],
    groups: 2,
    immediate_size: size_of::<Params>() as u32,
};

/// The shader's `Params` (in vec4s).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    src_offset: u32,
    dst_offset: u32,
}

/// The kernel's indices stay below this (each offset + len, in vec4s), so none of its
/// strided sums (at most four strides of 2^20 past it) wraps a u32.
const MAX_VEC4S: usize = 1 << 30;

/// Vec4s an invocation copies per round (the shader's four loads in flight).
const UNROLL: usize = 4;

/// `dst ← src` over whole arenas of one layout, bit for bit (gaps included: zeros in both), a
/// binding's worth at a time; every piece is checked before any is recorded. Arenas that share
/// their buffer (clones of one) already hold the same values: nothing is recorded.
pub(super) fn copy_arena(ctx: &GpuContext, src: &GpuArena, dst: &mut GpuArena) -> Result<()> {
    let op = "copy arena";
    arena_ops::check_layouts(op, src, dst)?;
    src.buffer().check_context(ctx, op)?;
    dst.buffer().check_context(ctx, op)?;
    if src.buffer().raw() == dst.buffer().raw() {
        return Ok(());
    }
    let (from, to) = (src.as_rows(ctx)?, dst.as_rows(ctx)?);
    // The same layout: the same pieces.
    let pieces = from
        .iter()
        .zip(&to)
        .map(|(s, d)| {
            let (sb, db) = (bound(ctx, op, &[s])?, bound(ctx, op, &[d])?);
            let vec4s = (s.shape().0 * s.shape().1).div_ceil(4);
            let params = Params {
                len: to_u32(op, "vec4s", vec4s)?,
                src_offset: vec4_offset(op, (sb, s), vec4s)?,
                dst_offset: vec4_offset(op, (db, d), vec4s)?,
            };
            Ok((
                params,
                [sb.bind, db.bind],
                striding_groups(vec4s.div_ceil(UNROLL)),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    for (params, bindings, groups) in &pieces {
        if params.len == 0 {
            continue;
        }
        record(
            ctx,
            op,
            bytemuck::bytes_of(params),
            bindings,
            &[Entry {
                kernel: &COPY_VEC4S,
                overrides: &[],
                groups: [*groups, 1, 1],
            }],
        )?;
    }
    Ok(())
}

/// The vec4 where `piece` starts in its binding, once it is checked that the piece starts on
/// a vec4 and that its `vec4s` (its last one whole) lie inside the binding: a buffer is a
/// whole number of vec4s and its windows start on one, so they always do.
fn vec4_offset(
    op: &'static str,
    (bound, piece): (Bound<'_>, &GpuMatrix),
    vec4s: usize,
) -> Result<u32> {
    let words = bound.offset(op, "offset", piece)? as usize;
    let bytes = bound.bind.size.unwrap_or(piece.buffer().size_bytes());
    let end = (words / 4).saturating_add(vec4s);
    if !words.is_multiple_of(4) || end.saturating_mul(16) as u64 > bytes || end >= MAX_VEC4S {
        return Err(Error::Gpu {
            op,
            message: format!(
                "a piece of {vec4s} vec4s at word {words} of a binding of {bytes} bytes: not \
                 whole vec4s inside it"
            ),
        });
    }
    Ok((words / 4) as u32)
}
