//! `GpuOptimizer`: host side of `shaders/optim.wgsl`. One dispatch per chunk updates the whole
//! arena; an arena over the device's storage-binding limit is split into aligned chunks. With
//! parameter groups, each chunk is one dispatch per group present in it, over that group's
//! blocks of the chunk (however many tensors it holds there).

use std::sync::Arc;

use super::GpuBuffer;
use super::context::GpuContext;
use super::kernel::{Binding, Kernel};
use super::optim_layout::{Layout, alignment, max_chunk_len};
use crate::error::{Error, Result};
use crate::optim::{ArenaGroup, OptimizerConfig, OptimizerCore, StepScalars, UpdateRule};

const UPDATE: Kernel = Kernel {
    shader: "optim.wgsl",
    source: include_str!("../../../shaders/optim.wgsl"),
    entry: "update",
    bindings: &[
        Binding::Uniform,
        Binding::ReadWrite,
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadOnly,
    ],
    groups: 1,
    immediate_size: size_of::<StepScalars>() as u32,
};
const FINALIZE: Kernel = Kernel {
    entry: "finalize",
    ..UPDATE
};

/// The `stats` slot `finalize` writes: the monitoring sums (slot 0 holds the clipping norm²,
/// written by `reduce.wgsl`'s `finish_sum`).
const MONITOR_SLOT: f64 = 1.0;

/// Bind groups for one (parameters, gradients) pair, one per piece, kept while the caller
/// passes the same buffers.
#[derive(Debug)]
struct Bound {
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    groups: Vec<wgpu::BindGroup>,
    /// Per run of trained parameters, the bind group of its Σg² (`reduce.wgsl`'s layout), and
    /// of their total.
    squares: Vec<wgpu::BindGroup>,
    squares_total: wgpu::BindGroup,
}

/// An optimizer over a parameter arena in a GPU buffer, with its state in GPU buffers of the
/// same length. Each step is one submit and does not wait for the GPU (unless the host is
/// further ahead than [`crate::GpuOptions::max_dispatches_in_flight`]).
///
/// Gradients are read, never written: clipping applies to the gradient as the update reads it.
#[derive(Debug)]
pub struct GpuOptimizer {
    pub(super) ctx: Arc<GpuContext>,
    pub(crate) core: OptimizerCore,
    pub(super) slots: [Option<GpuBuffer<f32>>; 3],
    /// Bound where a slot is unused; one each so no two writable bindings alias.
    placeholders: [wgpu::Buffer; 3],
    layout: Layout,
    /// Elements per binding chunk at most.
    chunk_len: usize,
    /// `stats` in the shader: two vec4 (clip norm², monitoring sums).
    pub(super) stats: GpuBuffer<f32>,
    bound: Option<Bound>,
    /// Whether the last step filled the monitoring sums.
    pub(super) monitored: bool,
}

fn kernel_overrides(rule: &UpdateRule, monitor: bool, grouped: bool) -> Vec<(&'static str, f64)> {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    vec![
        ("ALGORITHM", f64::from(rule.algorithm as u32)),
        ("MAXIMIZE", flag(rule.maximize)),
        ("L2", flag(rule.l2)),
        ("DECOUPLED", flag(rule.decoupled)),
        ("MOMENTUM", flag(rule.momentum)),
        ("NESTEROV", flag(rule.nesterov)),
        ("CENTERED", flag(rule.centered)),
        ("AMSGRAD", flag(rule.amsgrad)),
        ("CLIP_NORM", flag(rule.clip_norm)),
        ("CLIP_VALUE", flag(rule.clip_value)),
        ("MONITOR", flag(monitor)),
        ("GROUPED", flag(grouped)),
    ]
}

impl GpuOptimizer {
    /// An optimizer for an arena of `len` parameters on `ctx`'s device; fails on invalid
    /// hyperparameters or when the state does not fit on the device.
    pub fn new(
        ctx: &Arc<GpuContext>,
        config: impl Into<OptimizerConfig>,
        len: usize,
    ) -> Result<Self> {
        let core = OptimizerCore::new(config.into(), len)?;
        let name = core.config.name();
        let mut slots: [Option<GpuBuffer<f32>>; 3] = Default::default();
        let slot_names = core.slot_names().into_iter();
        for ((slot, state_name), initial) in slots
            .iter_mut()
            .zip(slot_names)
            .zip(core.initial_state_values())
        {
            if let Some(state_name) = state_name {
                let buffer = GpuBuffer::zeros(ctx, &format!("{name} {state_name}"), len)?;
                if initial != 0.0 {
                    buffer.fill(ctx, initial)?;
                }
                *slot = Some(buffer);
            }
        }
        let op = "create optimizer";
        let placeholder = |i: usize| {
            ctx.create_buffer(
                op,
                &wgpu::BufferDescriptor {
                    label: Some(&format!("{name} unused slot {i}")),
                    size: 16,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                },
            )
        };
        let placeholders = [placeholder(0)?, placeholder(1)?, placeholder(2)?];
        let stats = GpuBuffer::zeros(ctx, &format!("{name} stats"), 8)?;
        let chunk_len = max_chunk_len(ctx);
        let layout = Layout::new(ctx, &core, chunk_len)?;
        Ok(Self {
            ctx: Arc::clone(ctx),
            core,
            slots,
            placeholders,
            layout,
            chunk_len,
            stats,
            bound: None,
            monitored: false,
        })
    }

    /// Processes the arena in chunks of at most `len` elements (rounded up to the device's
    /// offset alignment) instead of the largest the device allows. Chunking is automatic; this
    /// exists so tests can exercise many chunks on small arenas.
    #[doc(hidden)]
    pub fn with_chunk_len(mut self, len: usize) -> Result<Self> {
        let len = len
            .max(1)
            .next_multiple_of(alignment(&self.ctx))
            .min(max_chunk_len(&self.ctx));
        self.layout = Layout::new(&self.ctx, &self.core, len)?;
        self.chunk_len = len;
        self.bound = None;
        Ok(self)
    }

    /// Trains the arena's `groups` with their own learning rate and weight decay (or not at all:
    /// a frozen group) from the next
    /// update on ([`ArenaGroup`]); the rest keeps this optimizer's settings. Each range must
    /// start and end at a multiple of the device's storage offset alignment (in elements: a
    /// [`GpuArena`](super::GpuArena)'s tensors start there) or at the arena's end. Fails,
    /// changing nothing, on a bad setting, a range outside the arena or in two groups, or a
    /// misaligned range.
    pub fn with_groups(mut self, groups: Vec<ArenaGroup>) -> Result<Self> {
        let mut core = self.core.clone();
        core.set_groups(groups)?;
        let align = alignment(&self.ctx);
        let len = self.core.len;
        if let Some(bad) = core
            .groups
            .iter()
            .flat_map(|g| &g.ranges)
            .find(|r| r.start % align != 0 || (r.end % align != 0 && r.end != len))
        {
            return Err(Error::Data {
                op: "GpuOptimizer::with_groups",
                detail: format!(
                    "range {bad:?} does not start and end at multiples of {align} elements (the \
                     device's storage offset alignment) or the arena's end ({len})"
                ),
            });
        }
        self.layout = Layout::new(&self.ctx, &core, self.chunk_len)?;
        self.core = core;
        self.bound = None;
        Ok(self)
    }

    /// Number of chunks the arena is processed in.
    pub fn chunk_count(&self) -> usize {
        self.layout.chunks.len()
    }

    /// Number of update dispatches a step records: one per chunk, or with parameter groups
    /// one per group present in each chunk.
    pub fn piece_count(&self) -> usize {
        self.layout.pieces.len()
    }

    /// Applies one update to `params` from `grads` (GPU buffers of the arena's length) in one
    /// submit, without waiting for it (see [`GpuContext::flush`]). Work recorded earlier on
    /// the context goes in the same submit.
    pub fn step(&mut self, params: &mut GpuBuffer<f32>, grads: &GpuBuffer<f32>) -> Result<()> {
        self.record_step(params, grads)?;
        self.ctx.flush()
    }

    /// Records one update into the context's pending work (a training step records its whole
    /// forward and backward pass beside it and submits once).
    pub(crate) fn record_step(
        &mut self,
        params: &GpuBuffer<f32>,
        grads: &GpuBuffer<f32>,
    ) -> Result<()> {
        let op = "optimizer step";
        params.check_context(&self.ctx, op)?;
        grads.check_context(&self.ctx, op)?;
        self.core.check_lengths(params.len(), grads.len())?;
        if params.raw() == grads.raw() {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "parameters and gradients are the same buffer {:?}",
                    params.label()
                ),
            });
        }
        let step = self.core.next_step()?;
        let rule = self.core.rule();
        let monitor = self.core.monitor;
        // Each group's pipeline (its branches) and scalars; without groups, the optimizer's.
        // A frozen group has no piece, so it needs neither.
        let updates = self
            .core
            .group_steps(step)?
            .into_iter()
            .map(|update| {
                let Some((rule, scalars)) = update else {
                    return Ok(None);
                };
                let overrides = kernel_overrides(&rule, monitor, self.layout.grouped);
                let pipeline = self.ctx.pipeline(&UPDATE, &overrides)?;
                Ok(Some((pipeline, scalars)))
            })
            .collect::<Result<Vec<_>>>()?;
        let clip = match rule.clip_norm {
            true => Some((
                self.ctx.pipeline(&super::reduce::SUM_SQUARES, &[])?,
                self.ctx.pipeline(&super::reduce::FINISH_SUM, &[])?,
            )),
            false => None,
        };
        let finalize_monitor = match monitor {
            true => Some(self.ctx.pipeline(&FINALIZE, &[("SLOT", MONITOR_SLOT)])?),
            false => None,
        };
        self.bind(params, grads)?;
        let Some(bound) = &self.bound else {
            return Err(Error::Gpu {
                op,
                message: "bind groups missing after binding".into(),
            });
        };
        // Each piece's pipeline and scalars: its group's.
        let piece_updates = self
            .layout
            .pieces
            .iter()
            .map(|piece| {
                updates
                    .get(piece.group)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| Error::Gpu {
                        op,
                        message: format!(
                            "a piece of chunk {} is in group {} of {}, which is frozen or absent",
                            piece.chunk,
                            piece.group,
                            updates.len()
                        ),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        // This step's scalars travel with its dispatches as immediate data, so steps recorded
        // into one submit each see their own (`finalize` reads none of them).
        let immediates = bytemuck::bytes_of(&piece_updates[0].1);
        let (runs, pieces) = (&self.layout.square_runs, &self.layout.pieces);
        // The update per piece; with clipping, Σg² per run and its finalize first.
        self.ctx.count_dispatches(
            pieces.len()
                + usize::from(clip.is_some()) * (runs.len() + 1)
                + usize::from(finalize_monitor.is_some()),
        );
        self.ctx.record_ops(|recording| {
            let pass = &mut *recording.pass;
            let run_pieces = |pass: &mut wgpu::ComputePass| {
                let mut current = None;
                let each = pieces.iter().zip(&bound.groups).zip(&piece_updates);
                for ((piece, bind_group), (pipeline, scalars)) in each {
                    if current != Some(piece.group) {
                        pass.set_pipeline(pipeline);
                        pass.set_immediates(0, bytemuck::bytes_of(scalars));
                        current = Some(piece.group);
                    }
                    pass.set_bind_group(0, bind_group, &[]);
                    pass.dispatch_workgroups(piece.groups, 1, 1);
                }
            };
            let finalize = |pass: &mut wgpu::ComputePass, pipeline: &wgpu::ComputePipeline| {
                pass.set_pipeline(pipeline);
                pass.set_immediates(0, immediates);
                pass.set_bind_group(0, &bound.groups[0], &[]);
                pass.dispatch_workgroups(1, 1, 1);
            };
            // The norm must be complete before any chunk is updated: wgpu orders the storage
            // accesses of successive dispatches. Σg² is the one sum of squares (reduce.wgsl),
            // each run's partials from its own base, then one sum of them into stats[0].
            if let Some((sum_squares, finish)) = &clip {
                pass.set_pipeline(sum_squares);
                for (run, group) in runs.iter().zip(&bound.squares) {
                    let params = super::reduce::Params {
                        rows: 1,
                        cols: run.len as u32,
                        partial_base: run.base,
                        ..Default::default()
                    };
                    pass.set_immediates(0, bytemuck::bytes_of(&params));
                    pass.set_bind_group(0, group, &[]);
                    pass.dispatch_workgroups(run.groups, 1, 1);
                }
                pass.set_pipeline(finish);
                pass.set_immediates(0, bytemuck::bytes_of(&super::reduce::Params::default()));
                pass.set_bind_group(0, &bound.squares_total, &[]);
                pass.dispatch_workgroups(1, 1, 1);
                recording.ended("gradient clipping");
            }
            run_pieces(&mut *recording.pass);
            if let Some(finalize_monitor) = &finalize_monitor {
                finalize(&mut *recording.pass, finalize_monitor);
            }
            recording.ended("optimizer step");
        })?;
        self.core.finish_step(step);
        self.monitored = monitor;
        Ok(())
    }

    /// Builds the per-chunk bind groups for (`params`, `grads`) unless they are already built.
    fn bind(&mut self, params: &GpuBuffer<f32>, grads: &GpuBuffer<f32>) -> Result<()> {
        if self
            .bound
            .as_ref()
            .is_some_and(|b| &b.params == params.raw() && &b.grads == grads.raw())
        {
            return Ok(());
        }
        let groups = self
            .layout
            .pieces
            .iter()
            .map(|piece| {
                // Bound as vec4s: the chunk rounded up to 4 elements, which stays inside the
                // buffer (allocations are rounded to 16 bytes) and covers only zero padding.
                let chunk = &self.layout.chunks[piece.chunk];
                let (start, len) = (chunk.start, chunk.len.next_multiple_of(4));
                let slot = |i: usize| match &self.slots[i] {
                    Some(buffer) => buffer.range_binding(start, len),
                    None => self.placeholders[i].as_entire_binding(),
                };
                self.ctx.bind_group(
                    &UPDATE,
                    vec![
                        piece.uniform.as_entire_binding(),
                        params.range_binding(start, len),
                        grads.range_binding(start, len),
                        slot(0),
                        slot(1),
                        slot(2),
                        self.stats.raw().as_entire_binding(),
                        self.layout.partials.as_entire_binding(),
                        self.layout.blocks.raw().as_entire_binding(),
                    ],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        // Σg² per run through `reduce.wgsl`: (input, out, partials), then the total.
        let square_partials = self
            .layout
            .square_runs
            .iter()
            .map(|r| r.groups as u64)
            .sum::<u64>();
        let partials = |size: u64| {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.layout.partials,
                offset: 0,
                size: wgpu::BufferSize::new(size * 4),
            })
        };
        let squares = self
            .layout
            .square_runs
            .iter()
            .map(|run| {
                self.ctx.bind_group(
                    &super::reduce::SUM_SQUARES,
                    vec![
                        grads.range_binding(run.start, run.len.next_multiple_of(4)),
                        self.stats.raw().as_entire_binding(),
                        self.layout.partials.as_entire_binding(),
                    ],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        // `finish_sum` sums every partial bound: bind exactly the chunks' partials.
        let squares_total = self.ctx.bind_group(
            &super::reduce::FINISH_SUM,
            vec![
                grads.range_binding(0, self.layout.chunks[0].len.next_multiple_of(4)),
                self.stats.raw().as_entire_binding(),
                partials(square_partials),
            ],
        )?;
        self.bound = Some(Bound {
            params: params.raw().clone(),
            grads: grads.raw().clone(),
            groups,
            squares,
            squares_total,
        });
        Ok(())
    }
}

crate::optim::common_optimizer_methods!(GpuOptimizer);

// Every adapter steepest opens offers at least this much immediate data.
const _: () = assert!(size_of::<StepScalars>() as u32 <= super::context::MIN_IMMEDIATE_SIZE);
