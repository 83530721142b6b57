//! How a `GpuOptimizer` cuts its arena into dispatches: binding chunks, and in each one update
//! dispatch (with parameter groups one per group present in it, whose workgroups take the
//! group's blocks from a table built once) and one Σg² for clipping per run of trained
//! parameters (a frozen group has neither); and the partial sums they share. Built when the
//! optimizer is (or its chunking or groups change), never per step.

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

/// One bound range of the arena: a binding of the update's pieces in it.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) start: usize,
    pub(super) len: usize,
}

/// One range of clipping's Σg² (`reduce.wgsl`'s `sum_squares`, one dispatch): a run of
/// trained parameters inside one chunk (the whole chunk when nothing is frozen).
#[derive(Debug)]
pub(super) struct SquareRun {
    /// Where it starts in the arena (a chunk's start or a group's range's end: aligned).
    pub(super) start: usize,
    pub(super) len: usize,
    /// Workgroups and first partial of its dispatch.
    pub(super) groups: u32,
    pub(super) base: u32,
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
/// blocks, clipping's runs and the partial sums they share. A frozen group has no piece and
/// no run.
#[derive(Debug)]
pub(super) struct Layout {
    /// Whether the optimizer has parameter groups: the kernel runs `GROUPED`, over blocks.
    pub(super) grouped: bool,
    pub(super) chunks: Vec<Chunk>,
    pub(super) pieces: Vec<Piece>,
    pub(super) square_runs: Vec<SquareRun>,
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
        let mut square_runs: Vec<SquareRun> = Vec::new();
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
            let chunk = chunks.len();
            chunks.push(Chunk {
                start,
                len: end - start,
            });
            // Clipping's runs: the chunk's trained segments, neighbours merged. Their partials
            // share the buffer (as f32s, before the update writes its own): ⌈n/256⌉ ≤
            // 4·⌈n/1024⌉ for a run of n, and the pieces over it have at least ⌈n/1024⌉
            // workgroups between them, so they always fit (checked below).
            let runs_from = square_runs.len();
            for segment in core.trained_segments() {
                let (from, to) = (segment.range.start.max(start), segment.range.end.min(end));
                if from >= to {
                    continue;
                }
                match square_runs[runs_from..].last_mut() {
                    Some(run) if run.start + run.len == from => run.len = to - run.start,
                    _ => square_runs.push(SquareRun {
                        start: from,
                        len: to - from,
                        groups: 0,
                        base: 0,
                    }),
                }
            }
            for run in &mut square_runs[runs_from..] {
                let groups = run
                    .len
                    .div_ceil(WORKGROUP)
                    .clamp(1, super::reduce::SUM_GROUPS);
                (run.groups, run.base) = (groups as u32, square_base as u32);
                square_base += groups;
            }
            for group in (0..group_count).filter(|&g| core.trains(g)) {
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
        if pieces.is_empty() {
            return Err(Error::Data {
                op,
                detail: "every parameter is frozen: the update has nothing to train".into(),
            });
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
            square_runs,
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
