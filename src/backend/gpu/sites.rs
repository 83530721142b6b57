//! Op sites: the uniform buffer and bind group of each (shader file, bound buffer ranges)
//! combination an op has recorded, built once and reused, so a steady training step creates no
//! wgpu object. A site's per-call values (sizes, offsets, a batch's start row) go into its
//! uniform with one `queue.write_buffer`, only when they changed.
//!
//! A queued write lands before the next submit, so a site already recorded into the pending
//! work is flushed before its uniform is rewritten: each recorded dispatch sees the values it
//! was recorded with. Sites hold their buffers alive through the bind group, so a `GpuBuffer`
//! that is dropped retires its id, and the sites that bind it go at the next lookup.

use std::collections::{HashMap, HashSet};

use super::context::{GpuContext, lock};
use super::kernel::Kernel;
use crate::error::Result;

/// One buffer range bound by an op: the buffer's id (see `GpuBuffer::id`), the buffer, and the
/// bound range in bytes (`None`: to the end).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bind<'a> {
    pub id: u64,
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub size: Option<u64>,
}

/// Ids 0 and 1 are the context's placeholders, which live as long as it does.
pub(crate) const PLACEHOLDER_ID: u64 = 0;
pub(crate) const PLACEHOLDER_RW_ID: u64 = 1;

impl GpuContext {
    /// The read-only placeholder, bound where an optional input is absent.
    pub(crate) fn placeholder_bind(&self) -> Bind<'_> {
        Bind {
            id: PLACEHOLDER_ID,
            buffer: &self.placeholder,
            offset: 0,
            size: None,
        }
    }

    /// The writable placeholder, bound where an optional output is unused.
    pub(crate) fn placeholder_rw_bind(&self) -> Bind<'_> {
        Bind {
            id: PLACEHOLDER_RW_ID,
            buffer: &self.placeholder_rw,
            offset: 0,
            size: None,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SiteKey {
    shader: &'static str,
    bindings: Vec<(u64, u64, Option<u64>)>,
}

struct Site {
    uniform: wgpu::Buffer,
    /// What the uniform holds (as last written).
    values: Vec<u8>,
    group: wgpu::BindGroup,
    /// `ctx.submits()` when last recorded: equal to the current count while that work is
    /// still pending.
    recorded_at: Option<u64>,
}

/// The sites of one context.
#[derive(Default)]
pub(crate) struct SiteCache {
    sites: HashMap<SiteKey, Site>,
}

impl SiteCache {
    /// Number of sites kept (each one uniform buffer and one bind group).
    pub fn len(&self) -> usize {
        self.sites.len()
    }
}

/// One dispatch of a recorded op: a pipeline and its workgroup counts.
pub(crate) struct Dispatch<'a> {
    pub pipeline: &'a wgpu::ComputePipeline,
    pub groups: [u32; 3],
}

impl GpuContext {
    /// Records `dispatches` (pipelines of `kernel`'s shader file, run in order) with one bind
    /// group: binding 0 is a uniform holding `values`, binding `i + 1` is `bindings[i]`.
    pub(crate) fn dispatch(
        &self,
        op: &'static str,
        kernel: &Kernel,
        values: &[u8],
        bindings: &[Bind<'_>],
        dispatches: &[Dispatch<'_>],
    ) -> Result<()> {
        let mut sites = lock(&self.sites);
        let retired = std::mem::take(&mut *lock(&self.retired));
        if !retired.is_empty() {
            let retired: HashSet<u64> = retired.into_iter().collect();
            sites
                .sites
                .retain(|key, _| !key.bindings.iter().any(|b| retired.contains(&b.0)));
        }
        let key = SiteKey {
            shader: kernel.shader,
            bindings: bindings.iter().map(|b| (b.id, b.offset, b.size)).collect(),
        };
        if !sites.sites.contains_key(&key) {
            let uniform = self.create_uniform(op, values)?;
            let mut resources = vec![uniform.as_entire_binding()];
            resources.extend(bindings.iter().map(|b| {
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: b.offset,
                    size: b.size.and_then(wgpu::BufferSize::new),
                })
            }));
            let group = self.bind_group(kernel, resources)?;
            sites.sites.insert(
                key.clone(),
                Site {
                    uniform,
                    values: values.to_vec(),
                    group,
                    recorded_at: None,
                },
            );
        }
        let Some(site) = sites.sites.get_mut(&key) else {
            return Err(crate::error::Error::Gpu {
                op,
                message: "op site missing right after it was built".into(),
            });
        };
        if site.values != values {
            if site.recorded_at == Some(self.submits()) {
                self.flush()?;
            }
            self.check_health()?;
            self.queue.write_buffer(&site.uniform, 0, values);
            site.values.clear();
            site.values.extend_from_slice(values);
        }
        self.record_pass(|pass| {
            pass.set_bind_group(0, &site.group, &[]);
            for d in dispatches {
                pass.set_pipeline(d.pipeline);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
        })?;
        site.recorded_at = Some(self.submits());
        Ok(())
    }

    /// Number of op sites kept (for tests: it stops growing once a training loop is steady,
    /// and shrinks when the buffers they bind are dropped).
    #[doc(hidden)]
    pub fn site_count(&self) -> usize {
        lock(&self.sites).len()
    }
}
