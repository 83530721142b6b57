//! Op sites: the bind group of each (shader file, bound buffer ranges) combination an op has
//! recorded, built once and reused, so a steady training step creates no wgpu object. A call's
//! own values (sizes, offsets, a batch's start row) travel as immediate data recorded with the
//! dispatch, so nothing is written to a buffer either.
//!
//! Bind groups hold their buffers alive, so a `GpuBuffer` that is dropped retires its id, and
//! the sites that bind it go at the next lookup.

use std::collections::HashSet;

use super::context::{GpuContext, lock};
use super::fingerprint::{Fingerprint, KeyMap};
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

/// What identifies a site: the shader file and each binding's (buffer id, offset, size).
struct SiteKey {
    shader: &'static str,
    bindings: Vec<(u64, u64, Option<u64>)>,
}

impl SiteKey {
    fn fingerprint(shader: &str, bindings: &[Bind<'_>]) -> u64 {
        bindings
            .iter()
            .fold(Fingerprint::new().str(shader), |f, b| {
                f.word(b.id)
                    .word(b.offset)
                    .word(b.size.map_or(u64::MAX, |s| s))
            })
            .finish()
    }

    fn matches(&self, shader: &str, bindings: &[Bind<'_>]) -> bool {
        self.shader == shader
            && self.bindings.len() == bindings.len()
            && self
                .bindings
                .iter()
                .zip(bindings)
                .all(|(&key, b)| key == (b.id, b.offset, b.size))
    }
}

struct Site {
    key: SiteKey,
    group: wgpu::BindGroup,
}

/// The sites of one context, by fingerprint (see [`SiteKey::fingerprint`]); a list in case
/// two keys share one.
#[derive(Default)]
pub(crate) struct SiteCache {
    sites: KeyMap<u64, Vec<Site>>,
}

impl SiteCache {
    /// Number of sites kept (each one bind group).
    pub fn len(&self) -> usize {
        self.sites.values().map(Vec::len).sum()
    }
}

/// One dispatch of a recorded op: a pipeline and its workgroup counts.
pub(crate) struct Dispatch<'a> {
    pub pipeline: &'a wgpu::ComputePipeline,
    pub groups: [u32; 3],
}

/// One op's share of a recording: `dispatches` (pipelines of `kernel`'s shader file, run in
/// order) with `kernel.groups` bind groups and `immediates` as each dispatch's immediate
/// data. `bindings` holds each group's bindings in turn (binding `i` of group `g` is
/// `bindings[g · n + i]`, `n` the kernel's bindings a group), and each group is a site of its
/// own.
pub(crate) struct Step<'a> {
    pub kernel: &'a Kernel,
    pub immediates: &'a [u8],
    pub bindings: &'a [Bind<'a>],
    pub dispatches: &'a [Dispatch<'a>],
}

impl Step<'_> {
    /// Fails unless the step brings what its kernel takes: `groups` groups of its bindings and
    /// its immediate data's size.
    fn check(&self, op: &'static str) -> Result<()> {
        let kernel = self.kernel;
        let per_group = kernel.bindings.len();
        let mismatch = |got: usize, what: &str, takes: String| {
            Err(crate::error::Error::Gpu {
                op,
                message: format!("{got} {what} for {}, which takes {takes}", kernel.shader),
            })
        };
        if self.bindings.len() != per_group * kernel.groups as usize {
            return mismatch(
                self.bindings.len(),
                "bindings",
                format!("{} groups of {per_group}", kernel.groups),
            );
        }
        if self.immediates.len() != kernel.immediate_size as usize {
            return mismatch(
                self.immediates.len(),
                "bytes of immediate data",
                kernel.immediate_size.to_string(),
            );
        }
        Ok(())
    }
}

impl GpuContext {
    /// Records one op's dispatches (see [`Step`]).
    pub(crate) fn dispatch(
        &self,
        op: &'static str,
        kernel: &Kernel,
        immediates: &[u8],
        bindings: &[Bind<'_>],
        dispatches: &[Dispatch<'_>],
    ) -> Result<()> {
        self.dispatch_steps(
            op,
            &[Step {
                kernel,
                immediates,
                bindings,
                dispatches,
            }],
        )
    }

    /// Records `steps` in order, with nothing from another thread between them: how an op
    /// whose steps pass values through the shared scratch (a matmul's transposed operands)
    /// keeps them its own.
    pub(crate) fn dispatch_steps(&self, op: &'static str, steps: &[Step<'_>]) -> Result<()> {
        // Up to three bind groups (a product and its two transposes, a copy's two) without
        // allocating; more (a sum over an arena larger than one binding, a part at a time) in
        // a vector.
        let mut few: [Option<wgpu::BindGroup>; 3] = Default::default();
        let mut many = Vec::new();
        let count: usize = steps.iter().map(|s| s.kernel.groups as usize).sum();
        let groups: &mut [Option<wgpu::BindGroup>] = match count {
            n if n <= few.len() => &mut few,
            n => {
                many.resize(n, None);
                &mut many
            }
        };
        steps.iter().try_for_each(|step| step.check(op))?;
        let mut slots = groups.iter_mut();
        for step in steps {
            let per_group = step.kernel.bindings.len().max(1);
            for (bindings, slot) in step.bindings.chunks(per_group).zip(&mut slots) {
                *slot = Some(self.site_group(step.kernel, bindings)?);
            }
        }
        self.count_dispatches(steps.iter().map(|s| s.dispatches.len()).sum());
        self.record_ops(|recording| {
            let mut groups = groups.iter().flatten();
            for step in steps {
                let pass = &mut *recording.pass;
                for (index, group) in (0..step.kernel.groups).zip(&mut groups) {
                    pass.set_bind_group(index, group, &[]);
                }
                for d in step.dispatches {
                    // Set after each pipeline change: a new pipeline may not keep earlier data.
                    pass.set_pipeline(d.pipeline);
                    pass.set_immediates(0, step.immediates);
                    pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
                }
                // Profiled under the op's name, or each step's kernel where there are several.
                recording.ended(match steps.len() {
                    1 => op,
                    _ => step.kernel.entry,
                });
            }
        })
    }

    /// The bind group of `kernel` over `bindings`: the op site's, built on first use.
    fn site_group(&self, kernel: &Kernel, bindings: &[Bind<'_>]) -> Result<wgpu::BindGroup> {
        let mut sites = lock(&self.sites);
        let retired = std::mem::take(&mut *lock(&self.retired));
        if !retired.is_empty() {
            let retired: HashSet<u64> = retired.into_iter().collect();
            for list in sites.sites.values_mut() {
                list.retain(|site| !site.key.bindings.iter().any(|b| retired.contains(&b.0)));
            }
            sites.sites.retain(|_, list| !list.is_empty());
        }
        let fingerprint = SiteKey::fingerprint(kernel.shader, bindings);
        let list = sites.sites.entry(fingerprint).or_default();
        if let Some(site) = list
            .iter()
            .find(|site| site.key.matches(kernel.shader, bindings))
        {
            return Ok(site.group.clone());
        }
        let resources = bindings
            .iter()
            .map(|b| {
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: b.offset,
                    size: b.size.and_then(wgpu::BufferSize::new),
                })
            })
            .collect();
        let group = self.bind_group(kernel, resources)?;
        list.push(Site {
            key: SiteKey {
                shader: kernel.shader,
                bindings: bindings.iter().map(|b| (b.id, b.offset, b.size)).collect(),
            },
            group: group.clone(),
        });
        Ok(group)
    }

    /// Number of op sites kept (for tests: it stops growing once a training loop is steady,
    /// and shrinks when the buffers they bind are dropped).
    #[doc(hidden)]
    pub fn site_count(&self) -> usize {
        lock(&self.sites).len()
    }
}
