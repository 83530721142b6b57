//! Kernel timings, opt-in ([`crate::GpuOptions::profile`]): a GPU timestamp where each compute
//! pass begins and after every op recorded into it, resolved into the submit and read back
//! right after it, so the time between two stamps is the op's share of the GPU's time (its
//! wait behind the op before, its launch and its run). Reading the stamps waits for every
//! submit: a profiled run shows where a step's GPU time goes, not how fast steps follow each
//! other.

use super::context::GpuContext;
use crate::error::{Error, Result};

/// Timestamps one submit may hold; a recording that might pass this submits what is pending
/// first.
const CAPACITY: u32 = 4096;
/// The most stamps one recording writes: where a pass begins, and after each of at most three
/// steps of an op (a product and its two transposes) or the optimizer's clipping and update.
const MAX_STAMPS_PER_RECORDING: usize = 4;

/// The GPU time one kind of op took, summed over its runs since the last
/// [`GpuContext::take_kernel_times`].
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The op (`matmul`, `linear_backward`, `loss`, `optimizer step`, …); the steps of an op
    /// recorded in several (a product whose operands are transposed first) each under their
    /// kernel's entry point (`transpose`, `matmul`); an application's own kernels under the
    /// name it gave [`GpuContext::record_compute_as`], or as `application kernels`.
    pub op: &'static str,
    /// Times it ran.
    pub runs: u64,
    /// Microseconds of GPU time, summed over its runs.
    pub gpu_us: f64,
}

/// One submit's stamps, in order: the op that ended at each, `None` where a pass began.
pub(crate) struct Stamps(Vec<Option<&'static str>>);

/// The query set and buffers of a context's timestamps, and what they have measured.
pub(crate) struct Profiler {
    queries: wgpu::QuerySet,
    /// Where the pending submit's stamps are resolved, then copied to `readback`.
    resolved: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
    /// The pending submit's stamps in order: the op that ended at each, `None` where a pass
    /// began.
    stamps: Vec<Option<&'static str>>,
    totals: Vec<KernelTime>,
}

impl Profiler {
    /// The query set and buffers, on a device created with [`Profiler::FEATURES`].
    pub(crate) fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let bytes = u64::from(CAPACITY) * 8;
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Self {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("steepest kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: CAPACITY,
            }),
            resolved: buffer(
                "steepest resolved timestamps",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "steepest timestamp readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            period_ns: f64::from(queue.get_timestamp_period()),
            stamps: Vec::new(),
            totals: Vec::new(),
        }
    }

    /// The features a profiled device needs.
    pub(crate) const FEATURES: wgpu::Features =
        wgpu::Features::TIMESTAMP_QUERY.union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);

    /// Whether one more recording's stamps still fit this submit.
    pub(crate) fn has_room(&self) -> bool {
        self.stamps.len() + MAX_STAMPS_PER_RECORDING <= CAPACITY as usize
    }

    /// Writes a stamp into `pass`: where it began (`None`) or where `op` ended.
    pub(crate) fn stamp(
        &mut self,
        pass: &mut wgpu::ComputePass<'static>,
        op: Option<&'static str>,
    ) {
        if self.stamps.len() < CAPACITY as usize {
            // Below CAPACITY, a u32.
            pass.write_timestamp(&self.queries, self.stamps.len() as u32);
            self.stamps.push(op);
        }
    }

    /// Records the resolve of this submit's stamps and their copy to the readback buffer into
    /// `encoder` (its pass ended), and hands the stamps over to [`Profiler::read`]: `None`
    /// where there are none.
    pub(crate) fn resolve(&mut self, encoder: &mut wgpu::CommandEncoder) -> Option<Stamps> {
        if self.stamps.is_empty() {
            return None;
        }
        // At most CAPACITY, a u32.
        let count = self.stamps.len() as u32;
        encoder.resolve_query_set(&self.queries, 0..count, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.readback, 0, u64::from(count) * 8);
        Some(Stamps(std::mem::take(&mut self.stamps)))
    }

    /// Waits for submission `index`, reads its `stamps` and adds each op's time to the totals.
    pub(crate) fn read(
        &mut self,
        ctx: &GpuContext,
        index: wgpu::SubmissionIndex,
        Stamps(stamps): Stamps,
    ) -> Result<()> {
        let failed = |message: String| Error::Readback {
            label: "kernel timestamps".into(),
            message,
        };
        let bytes = stamps.len() as u64 * 8;
        let slice = self.readback.slice(..bytes);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            // The receiver waits below; a failed send only means it is gone.
            let _ = sender.send(result);
        });
        ctx.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| failed(e.to_string()))?;
        receiver
            .recv()
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(e.to_string()))?;
        let ticks: Vec<u64> = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| failed(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&view)
        };
        self.readback.unmap();
        // Each op's stamp follows the stamp before it in the same pass (a pass begins with one).
        for (i, op) in stamps.iter().enumerate().skip(1) {
            let (Some(op), Some(&end), Some(&begin)) = (op, ticks.get(i), ticks.get(i - 1)) else {
                continue;
            };
            let gpu_us = end.saturating_sub(begin) as f64 * self.period_ns / 1e3;
            match self.totals.iter_mut().find(|t| t.op == *op) {
                Some(total) => {
                    total.runs += 1;
                    total.gpu_us += gpu_us;
                }
                None => self.totals.push(KernelTime {
                    op,
                    runs: 1,
                    gpu_us,
                }),
            }
        }
        Ok(())
    }

    /// The totals so far, in the order the ops first ran, and a fresh start.
    pub(crate) fn take_totals(&mut self) -> Vec<KernelTime> {
        std::mem::take(&mut self.totals)
    }
}

impl GpuContext {
    /// With [`GpuOptions::profile`](crate::GpuOptions::profile): the GPU time of each kind of
    /// op since the last call (or since the context opened), in the order they first ran, and
    /// a fresh start. What is pending is submitted (and timed) first. Without profiling it is
    /// an error saying how to turn it on.
    pub fn take_kernel_times(&self) -> Result<Vec<KernelTime>> {
        let Some(profiler) = &self.profiler else {
            return Err(Error::Gpu {
                op: "take_kernel_times",
                message: "profiling is off: open the context with GpuOptions::profile \
                          (or STEEPEST_PROFILE=1)"
                    .into(),
            });
        };
        self.flush()?;
        Ok(super::context::lock(profiler).take_totals())
    }
}
