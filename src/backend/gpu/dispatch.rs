//! Recording a one-dimensional kernel: checks shared by the ops, workgroup counts, and the
//! call into the context's op sites (a cached uniform and bind group per site).

use super::GpuMatrix;
use super::context::GpuContext;
use super::kernel::Kernel;
use super::sites::{Bind, Dispatch};
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

/// `workgroups` folded into a two-dimensional grid `[x, y]` within the device's
/// per-dimension limit (the kernel takes its flat id as wg.y · x + wg.x and returns at once
/// past the last); `work` names what needed them in the error.
pub(crate) fn folded_grid(
    ctx: &GpuContext,
    op: &'static str,
    workgroups: usize,
    work: impl FnOnce() -> String,
) -> Result<[u32; 2]> {
    let limit = ctx.limits().max_compute_workgroups_per_dimension.max(1) as usize;
    let x = workgroups.clamp(1, limit);
    let y = workgroups.div_ceil(x);
    if y > limit {
        return Err(Error::Shape {
            op,
            detail: format!(
                "{} needs {workgroups} workgroups, more than this device dispatches ({limit}²)",
                work()
            ),
        });
    }
    // Both are at most the limit, a u32.
    Ok([x as u32, y as u32])
}

/// `value` as a kernel's 32-bit index, or an error naming what did not fit.
pub(crate) fn to_u32(op: &'static str, what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Shape {
        op,
        detail: format!("{what} = {value} does not fit the kernel's 32-bit indices"),
    })
}

/// Checks that each matrix's whole buffer can be bound on this device and that every element
/// index of it fits the kernels' 32-bit arithmetic.
pub(crate) fn check_bindings(
    ctx: &GpuContext,
    op: &'static str,
    matrices: &[&GpuMatrix],
) -> Result<()> {
    matrices.iter().try_for_each(|m| {
        m.buffer().check_binding(ctx, op)?;
        to_u32(op, "buffer elements", m.buffer().len()).map(|_| ())
    })
}

/// Fails when `output` shares a buffer with any of `inputs`: a kernel may not read a buffer it
/// writes (wgpu rejects the aliasing at submit, where it would cost other work).
pub(crate) fn check_no_alias(
    op: &'static str,
    output: &GpuMatrix,
    inputs: &[&GpuMatrix],
) -> Result<()> {
    match inputs
        .iter()
        .find(|m| m.buffer().raw() == output.buffer().raw())
    {
        Some(_) => Err(Error::Shape {
            op,
            detail: format!(
                "output buffer {:?} is also an input; write to a separate buffer",
                output.buffer().label()
            ),
        }),
        None => Ok(()),
    }
}

/// One entry point of a kernel: its override constants and workgroup counts.
pub(crate) struct Entry<'a> {
    pub kernel: &'a Kernel,
    pub overrides: &'a [(&'static str, f64)],
    pub groups: [u32; 3],
}

/// Records `entries` (entry points of one shader file, run in order) with one uniform and
/// one bind group: binding 0 is the uniform holding `values`, binding `i + 1` is
/// `bindings[i]`.
pub(crate) fn record(
    ctx: &GpuContext,
    op: &'static str,
    values: &[u8],
    bindings: &[Bind<'_>],
    entries: &[Entry<'_>],
) -> Result<()> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    if let [only] = entries {
        // The common case, without allocating.
        let pipeline = ctx.pipeline(only.kernel, only.overrides)?;
        let dispatch = Dispatch {
            pipeline: &pipeline,
            groups: only.groups,
        };
        return ctx.dispatch(
            op,
            only.kernel,
            values,
            bindings,
            std::slice::from_ref(&dispatch),
        );
    }
    let pipelines = entries
        .iter()
        .map(|e| ctx.pipeline(e.kernel, e.overrides))
        .collect::<Result<Vec<_>>>()?;
    let dispatches: Vec<Dispatch<'_>> = entries
        .iter()
        .zip(&pipelines)
        .map(|(e, pipeline)| Dispatch {
            pipeline,
            groups: e.groups,
        })
        .collect();
    ctx.dispatch(op, first.kernel, values, bindings, &dispatches)
}
