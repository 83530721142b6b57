//! How a `GpuOptimizer` cuts its arena into dispatches: binding chunks (clipping's Σg² and
//! the update), and with parameter groups one update dispatch per group present in a chunk,
//! whose workgroups take the group's blocks from a table built once; and the partial sums
//! they share. Built when the optimizer is (or its chunking or groups change), never per step.

use super::GpuBuffer;
use super::context::GpuContext;
use crate::error::{Error, Result};
use crate::optim::OptimizerCore;

/// Invocations per workgroup (`WORKGROUP` in the shader).
const WORKGROUP: usize = 256;
/// Workgroups per dispatch at most: enough to fill a large GPU, few enough that the partials
/// stay small. Each invocation strides through the chunk (a workgroup through its blocks), so
/// any length is covered.
const MAX_GROUPS: usize = 2048;
/// A parameter group's ranges are cut into blocks of at most this many vec4s (one an
/// invocation), which the workgroups of its dispatch take in turn: a range of `n` elements is
/// at least ⌈n/1024⌉ blocks, as many as the ungrouped kernel's workgroups, so the partial sums
/// of both (and clipping's, ≤ 4 per such block) fit the same buffer.
const BLOCK: usize = WORKGROUP;
/// Elements per chunk at most, so every index fits the kernel's u32 arithmetic with room to
/// spare.
const MAX_CHUNK: usize = 1 << 30;

/// One bound range of the arena: a binding of clipping's Σg² and of the update's pieces in it.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) start: usize,
    pub(super) len: usize,
    /// Workgroups and first partial of this chunk's Σg² (`reduce.wgsl`'s `sum_squares`).
    pub(super) square_groups: u32,
    pub(super) square_base: u32,
}

/// One update dispatch: one parameter group's blocks of one chunk (the whole chunk without
/// groups).
#[derive(Debug)]
pub(super) struct Piece {
    /// The chunk (index into `Layout::chunks`).
    pub(super) chunk: usize,
    /// Workgroups of its dispatch.
    pub(super) groups: u32,
    /// The parameter group (0: the optimizer's own settings).
    pub(super) group: usize,
    /// The shader's `Chunk` uniform: the index of this piece's first partial and its blocks.
    pub(super) uniform: wgpu::Buffer,
}

/// What the update dispatches over: binding chunks, the pieces of the update, the groups'
/// blocks and the partial sums they share.
#[derive(Debug)]
pub(super) struct Layout {
    /// Whether the optimizer has parameter groups: the kernel runs `GROUPED`, over blocks.
    pub(super) grouped: bool,
    pub(super) chunks: Vec<Chunk>,
    pub(super) pieces: Vec<Piece>,
    /// `blocks` in the shader: each piece's blocks of its chunk, [start, end) in vec4s.
    pub(super) blocks: GpuBuffer<u32>,
    pub(super) partials: wgpu::Buffer,
}

impl Layout {
    /// Splits `core`'s arena into binding chunks of at most `chunk_len` elements, each into
    /// one piece per parameter group present in it (its ranges of the chunk cut into blocks
    /// in the block table), and allocates their partials. The groups' segments start at
    /// multiples of 4 elements (the offset alignment), so every range but the arena's last is
    /// whole vec4s.
    pub(super) fn new(ctx: &GpuContext, core: &OptimizerCore, chunk_len: usize) -> Result<Layout> {
        let (len, segments) = (core.len, &core.segments);
        let grouped = !core.groups.is_empty();
        let op = "create optimizer";
        let mut chunks = Vec::new();
        let mut pieces = Vec::new();
        let mut blocks: Vec<[u32; 2]> = Vec::new();
        let mut partial_base = 0usize;
        let mut square_base = 0usize;
        let group_count = segments.iter().map(|s| s.group + 1).max().unwrap_or(1);
        let vec4s = |elements: usize| -> Result<u32> {
            u32::try_from(elements.div_ceil(4)).map_err(|_| Error::Gpu {
                op,
                message: format!("{elements} elements of a chunk overflow u32 vec4 indices"),
            })
        };
        for start in (0..len).step_by(chunk_len.max(1)) {
            let end = start + chunk_len.min(len - start);
            // The clipping norm's partials share the buffer (as f32s, before the update writes
            // its own): ⌈len/256⌉ ≤ 4·⌈len/1024⌉ per chunk, and its pieces have at least
            // ⌈len/1024⌉ workgroups between them, so they always fit (checked below).
            let square_groups = (end - start)
                .div_ceil(WORKGROUP)
                .clamp(1, super::reduce::SUM_GROUPS);
            let chunk = chunks.len();
            chunks.push(Chunk {
                start,
                len: end - start,
                square_groups: square_groups as u32,
                square_base: square_base as u32,
            });
            square_base += square_groups;
            for group in 0..group_count {
                let first = blocks.len();
                let mut elements = 0;
                for segment in segments.iter().filter(|s| s.group == group) {
                    let (from, to) = (segment.range.start.max(start), segment.range.end.min(end));
                    if from < to {
                        let (from4, to4) = (vec4s(from - start)?, vec4s(to - start)?);
                        let cut = (from4..to4).step_by(BLOCK);
                        blocks.extend(cut.map(|b| [b, to4.min(b.saturating_add(BLOCK as u32))]));
                        elements += to - from;
                    }
                }
                if elements == 0 {
                    continue;
                }
                // The ungrouped kernel strides through the chunk four elements at a time; the
                // grouped one gives each workgroup whole blocks.
                let count = blocks.len() - first;
                let groups = match grouped {
                    false => elements.div_ceil(4 * WORKGROUP),
                    true => count,
                }
                .min(MAX_GROUPS);
                let uniform = ctx.create_uniform(
                    "optimizer chunk",
                    bytemuck::cast_slice(&[partial_base as u32, first as u32, count as u32, 0]),
                )?;
                pieces.push(Piece {
                    chunk,
                    groups: groups as u32,
                    group,
                    uniform,
                });
                partial_base += groups;
            }
        }
        if square_base > 4 * partial_base {
            return Err(Error::Gpu {
                op,
                message: format!(
                    "{square_base} partial sums of squares do not fit {partial_base} vec4s"
                ),
            });
        }
        // Sized exactly: `finalize` sums every partial the buffer holds.
        let partials = ctx.create_buffer(
            op,
            &wgpu::BufferDescriptor {
                label: Some("optimizer partial sums"),
                size: (partial_base * 16) as u64,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            },
        )?;
        let blocks =
            GpuBuffer::<u32>::from_slice(ctx, "optimizer group blocks", blocks.as_flattened())?;
        Ok(Layout {
            grouped,
            chunks,
            pieces,
            blocks,
            partials,
        })
    }
}

/// The device's storage offset alignment in elements (at least 4, one vec4): where a binding
/// of part of the arena, so a chunk or a parameter group's range, may start.
pub(super) fn alignment(ctx: &GpuContext) -> usize {
    (ctx.limits().min_storage_buffer_offset_alignment as usize).max(16) / 4
}

/// The largest chunk one storage binding may cover: a multiple of the offset alignment.
pub(super) fn max_chunk_len(ctx: &GpuContext) -> usize {
    let align = alignment(ctx) as u64 * 4;
    let bytes = ctx.limits().max_storage_buffer_binding_size / align * align;
    usize::try_from(bytes / 4)
        .unwrap_or(MAX_CHUNK)
        .min(MAX_CHUNK)
}
