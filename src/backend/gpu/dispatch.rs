//! Recording a kernel: its uniform, its bind group and its dispatches, in the pending work.

use wgpu::util::DeviceExt;

use super::GpuMatrix;
use super::context::{GpuContext, Kernel};
use crate::error::{Error, Result};

/// Invocations per workgroup of the one-dimensional kernels (`WORKGROUP` in their shaders).
pub(crate) const WORKGROUP: usize = 256;

/// Workgroups at most for a striding one-dimensional kernel: enough to fill a large GPU, far
/// below every device's per-dimension limit (each invocation loops over the rest).
const MAX_STRIDING_GROUPS: usize = 4096;

/// Workgroups for a striding kernel over `items` items.
pub(crate) fn striding_groups(items: usize) -> u32 {
    items.div_ceil(WORKGROUP).clamp(1, MAX_STRIDING_GROUPS) as u32
}

/// `value` as a kernel's 32-bit index, or an error naming what did not fit.
pub(crate) fn to_u32(op: &'static str, what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Shape {
        op,
        detail: format!("{what} = {value} does not fit the kernel's 32-bit indices"),
    })
}

/// Checks that each matrix's whole buffer can be bound on this device.
pub(crate) fn check_bindings(
    ctx: &GpuContext,
    op: &'static str,
    matrices: &[&GpuMatrix],
) -> Result<()> {
    matrices
        .iter()
        .try_for_each(|m| m.buffer().check_binding(ctx, op))
}

/// One dispatch of a kernel: the kernel, its override constants, its workgroup count.
pub(crate) struct Dispatch<'a> {
    pub kernel: &'a Kernel,
    pub overrides: &'a [(&'static str, f64)],
    pub groups: u32,
}

/// Records `dispatches` (entry points of one shader file, run in order) with one uniform and
/// one bind group: binding 0 is `uniform`, binding `i + 1` is `resources[i]`.
pub(crate) fn record(
    ctx: &GpuContext,
    op: &'static str,
    uniform: &[u8],
    resources: Vec<wgpu::BindingResource<'_>>,
    dispatches: &[Dispatch<'_>],
) -> Result<()> {
    let Some(first) = dispatches.first() else {
        return Ok(());
    };
    let pipelines = dispatches
        .iter()
        .map(|d| ctx.pipeline(d.kernel, d.overrides))
        .collect::<Result<Vec<_>>>()?;
    ctx.record(op, |encoder| {
        let uniform = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(op),
                contents: uniform,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![uniform.as_entire_binding()];
        entries.extend(resources);
        let group = ctx.bind_group(first.kernel, entries);
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(op),
            timestamp_writes: None,
        });
        pass.set_bind_group(0, &group, &[]);
        for (dispatch, pipeline) in dispatches.iter().zip(&pipelines) {
            pass.set_pipeline(pipeline);
            pass.dispatch_workgroups(dispatch.groups, 1, 1);
        }
    })
}
