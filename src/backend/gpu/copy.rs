//! Host side of `shaders/copy.wgsl`: an arena copied onto another of its layout by a kernel,
//! the twin of [`CpuBackend::copy_arena`](crate::CpuBackend).
//!
//! Why a kernel and not wgpu's `copy_buffer_to_buffer`: on an H200 through Vulkan that command
//! moved 824 GB/s (read + write) where PyTorch's copy kernel moves 4 068 and this crate's
//! element-wise kernels 3 000–3 860, and the arenas' copies (the last good parameters every
//! epoch, the best ones kept, L-BFGS's and the line search's every iteration) are whole
//! models. Each arena is bound in a bind group of its own (the kernel's two groups share one
//! layout), so an arena's bind group serves every copy to or from it: the first copy in either
//! direction builds what the other reuses, and a run's last restore creates nothing.

use super::context::GpuContext;
use super::dispatch::{Entry, bound, record, striding_groups, to_u32};
use super::kernel::{Binding, Kernel};
use super::{GpuArena, arena_ops};
use crate::backend::Matrix;
use crate::error::{Error, Result};

const COPY_WORDS: Kernel = Kernel {
    shader: "copy.wgsl",
    source: include_str!("../../../shaders/copy.wgsl"),
    entry: "copy_words",
    bindings: &[Binding::ReadWrite],
    groups: 2,
    immediate_size: size_of::<Params>() as u32,
};

/// The shader's `Params` (in 32-bit words).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    src_offset: u32,
    dst_offset: u32,
}

/// The kernel's indices stay below this (each offset + len), so none of its strided sums
/// wraps a u32.
const MAX_WORDS: usize = 1 << 31;

/// Words an invocation copies per round (the shader's four loads in flight).
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
            let len = s.shape().0 * s.shape().1;
            let src_offset = sb.offset(op, "source offset", s)?;
            let dst_offset = db.offset(op, "destination offset", d)?;
            let end = len + src_offset.max(dst_offset) as usize;
            if end >= MAX_WORDS {
                return Err(Error::Shape {
                    op,
                    detail: format!(
                        "a piece of {len} words at offset {} reaches word {end}, past the \
                         kernel's {MAX_WORDS}",
                        src_offset.max(dst_offset)
                    ),
                });
            }
            let params = Params {
                len: to_u32(op, "words", len)?,
                src_offset,
                dst_offset,
            };
            Ok((
                params,
                [sb.bind, db.bind],
                striding_groups(len.div_ceil(UNROLL)),
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
                kernel: &COPY_WORDS,
                overrides: &[],
                groups: [*groups, 1, 1],
            }],
        )?;
    }
    Ok(())
}
