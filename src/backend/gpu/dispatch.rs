//! Recording a one-dimensional kernel: checks shared by the ops, workgroup counts, and the
//! call into the context's op sites (a cached uniform and bind group per site).

use super::GpuMatrix;
use super::context::GpuContext;
use super::kernel::Kernel;
use super::sites::{Bind, Dispatch};
use crate::backend::Matrix;
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

/// Checks that each matrix can be bound on this device (see [`bound`]) and that every element
/// index of its binding fits the kernels' 32-bit arithmetic.
pub(crate) fn check_bindings(
    ctx: &GpuContext,
    op: &'static str,
    matrices: &[&GpuMatrix],
) -> Result<()> {
    matrices
        .iter()
        .try_for_each(|m| bound(ctx, op, &[m]).map(|_| ()))
}

/// The part of a buffer an op binds for some views of it, and the element where that part
/// starts: a kernel indexes each view from its offset less `base`.
#[derive(Clone, Copy)]
pub(crate) struct Bound<'a> {
    pub bind: Bind<'a>,
    pub base: usize,
}

impl Bound<'_> {
    /// `view`'s first element counted from the bound part's start, as the kernel's index.
    pub fn offset(&self, op: &'static str, what: &str, view: &GpuMatrix) -> Result<u32> {
        to_u32(op, what, view.offset().saturating_sub(self.base))
    }
}

/// The offset of an optional view in its binding (see [`Bound::offset`]), 0 without one.
pub(crate) fn offset_in(
    op: &'static str,
    what: &str,
    view: Option<(Bound<'_>, &GpuMatrix)>,
) -> Result<u32> {
    view.map_or(Ok(0), |(bound, view)| bound.offset(op, what, view))
}

/// How an op binds `views` (views of one buffer, at least one). A buffer that fits one storage
/// binding is bound whole, so every op over it shares one bind group and indexes views by their
/// own offsets (`base` 0): every buffer but an arena larger than the device's
/// `max_storage_buffer_binding_size`. Of such a buffer, an op binds a window that holds all of
/// `views`: one of a grid of windows of the largest aligned binding, each starting half a
/// window after the last (so views close to each other, such as a layer's weight and bias,
/// share one, and its bind group), else one starting at the views' first element. Fails when
/// `views` span more than one binding holds, or another context made the buffer.
pub(crate) fn bound<'a>(
    ctx: &GpuContext,
    op: &'static str,
    views: &[&'a GpuMatrix],
) -> Result<Bound<'a>> {
    let Some(first) = views.first() else {
        return Err(Error::Gpu {
            op,
            message: "a binding of no view".into(),
        });
    };
    let buffer = first.buffer();
    buffer.check_context(ctx, op)?;
    if views.iter().any(|v| v.buffer().raw() != buffer.raw()) {
        return Err(Error::Gpu {
            op,
            message: "one binding of views of different buffers".into(),
        });
    }
    let limits = ctx.limits();
    let limit = limits.max_storage_buffer_binding_size;
    let size = buffer.size_bytes();
    if size <= limit {
        to_u32(op, "buffer elements", buffer.len())?;
        return Ok(Bound {
            bind: buffer.bind(),
            base: 0,
        });
    }
    // Bytes, each view's end rounded up to whole 16-byte blocks (vec4 loads read them).
    let start = views
        .iter()
        .map(|v| v.offset() as u64 * 4)
        .min()
        .unwrap_or(0);
    let end = views
        .iter()
        .map(|v| {
            let (rows, cols) = v.shape();
            ((v.offset() + rows * cols) as u64 * 4).next_multiple_of(16)
        })
        .max()
        .unwrap_or(0)
        .min(size);
    let align = u64::from(limits.min_storage_buffer_offset_alignment).max(16);
    let window = limit / align * align;
    let stride = (window / 2 / align * align).max(align);
    let on_grid = start / stride * stride;
    let (offset, len) = if end <= on_grid + window {
        (on_grid, window.min(size - on_grid))
    } else {
        let own = start / align * align;
        (own, end - own)
    };
    if len > limit {
        return Err(Error::BufferTooLarge {
            op,
            label: buffer.label().to_string(),
            bytes: end - start,
            limit,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    to_u32(op, "bound elements", (len / 4) as usize)?;
    Ok(Bound {
        bind: buffer.bind_range((offset / 4) as usize, (len / 4) as usize),
        base: (offset / 4) as usize,
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

/// Records `entries` (entry points of one shader file, run in order) with `values` as their
/// immediate data and `bindings` in their bind groups (see [`super::sites::Step`]).
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
