//! Kernels as data (a shader file, an entry point, its bindings) and the context's caches of
//! what is built from them once: shader modules, layouts and pipelines.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::context::{GpuContext, lock};
use super::fingerprint::{Fingerprint, KeyMap};
use crate::error::{Error, Result};

/// A compute kernel: one entry point of one built-in WGSL file and its binding layout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kernel {
    /// The file name under `shaders/`, also the cache key and the name in errors.
    pub shader: &'static str,
    /// The WGSL source (embedded with `include_str!`).
    pub source: &'static str,
    /// The `@compute` entry point.
    pub entry: &'static str,
    /// Binding `i` of each group is `bindings[i]`.
    pub bindings: &'static [Binding],
    /// Bind groups, each laid out as `bindings`: 1 for every kernel but one that binds each
    /// buffer in a group of its own (the arena copy), so that a buffer's bind group serves
    /// whichever other buffer it meets, in either role.
    pub groups: u32,
    /// Bytes of the shader's immediate data (its per-dispatch `Params`; WGSL
    /// `var<immediate>`), the same for every entry point of the file.
    pub immediate_size: u32,
}

/// The kind of one binding in a kernel's group 0 (public as
/// [`KernelBinding`](super::KernelBinding)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// A uniform buffer.
    Uniform,
    /// A read-only storage buffer.
    ReadOnly,
    /// A read-write storage buffer.
    ReadWrite,
}

/// A compute pipeline a context has built for the crate's own kernels, with everything needed
/// to compile it again outside wgpu: its WGSL, entry point, bindings, immediate data and the
/// override constants it was specialised with. `gpu_report --sections kernels` compiles each
/// one on the driver again to read what it made of it (registers, spills, instructions).
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltKernel {
    /// The file name under `shaders/`.
    pub shader: &'static str,
    /// The file's WGSL source.
    pub source: &'static str,
    /// The `@compute` entry point.
    pub entry: &'static str,
    /// Binding `i` of each group is `bindings[i]`.
    pub bindings: &'static [Binding],
    /// Bind groups (descriptor sets), each laid out as `bindings`.
    pub groups: u32,
    /// Bytes of immediate data (push constants) the pipeline layout declares.
    pub immediate_size: u32,
    /// The override constants, by name, as wgpu received them.
    pub overrides: Vec<(&'static str, f64)>,
    /// Whether the module was compiled with wgpu's runtime bounds checks
    /// ([`GpuOptions::shader_checks`](super::GpuOptions::shader_checks)).
    pub checked: bool,
}

impl BuiltKernel {
    /// The value the pipeline gave override constant `name`, if it set one.
    pub fn override_value(&self, name: &str) -> Option<f64> {
        self.overrides
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, value)| value)
    }
}

/// A pipeline's cache key: the kernel (its shader and entry point are the key; the rest is
/// kept for [`GpuContext::built_kernels`]) and override constants as (name, value bits).
struct PipelineKey {
    kernel: Kernel,
    overrides: Vec<(&'static str, u64)>,
}

impl PipelineKey {
    /// Over the shader, entry point and override values only: a call site passes the same
    /// names in the same order every time, and [`PipelineKey::matches`] compares them.
    fn fingerprint(kernel: &Kernel, overrides: &[(&'static str, f64)]) -> u64 {
        overrides
            .iter()
            .fold(
                Fingerprint::new().str(kernel.shader).str(kernel.entry),
                |f, (_, value)| f.word(value.to_bits()),
            )
            .finish()
    }

    fn matches(&self, kernel: &Kernel, overrides: &[(&'static str, f64)]) -> bool {
        same(self.kernel.shader, kernel.shader)
            && same(self.kernel.entry, kernel.entry)
            && self.overrides.len() == overrides.len()
            && self
                .overrides
                .iter()
                .zip(overrides)
                .all(|((n, bits), (name, value))| *bits == value.to_bits() && same(n, name))
    }
}

/// Whether two names are equal, comparing addresses first: a call site's literals are the
/// same every time.
fn same(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

/// What the context builds once and keeps: compiled modules, layouts, pipelines.
#[derive(Default)]
pub(crate) struct KernelCache {
    shaders: HashMap<String, wgpu::ShaderModule>,
    layouts: HashMap<&'static str, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    /// By fingerprint (see [`PipelineKey::fingerprint`]); a list in case two keys share one.
    pipelines: KeyMap<u64, Vec<(PipelineKey, wgpu::ComputePipeline)>>,
}

impl KernelCache {
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.values().map(Vec::len).sum()
    }

    /// Every pipeline built, as [`BuiltKernel`]s (`checked`: the context's setting), ordered
    /// by shader, entry point and overrides so that listings compare from run to run.
    pub fn built(&self, checked: bool) -> Vec<BuiltKernel> {
        let mut built: Vec<BuiltKernel> = self
            .pipelines
            .values()
            .flatten()
            .map(|(key, _)| BuiltKernel {
                shader: key.kernel.shader,
                source: key.kernel.source,
                entry: key.kernel.entry,
                bindings: key.kernel.bindings,
                groups: key.kernel.groups,
                immediate_size: key.kernel.immediate_size,
                overrides: key
                    .overrides
                    .iter()
                    .map(|&(name, bits)| (name, f64::from_bits(bits)))
                    .collect(),
                checked,
            })
            .collect();
        built.sort_by(|a, b| {
            (a.shader, a.entry).cmp(&(b.shader, b.entry)).then_with(|| {
                a.overrides
                    .partial_cmp(&b.overrides)
                    .unwrap_or(Ordering::Equal)
            })
        });
        built
    }
}

impl GpuContext {
    /// Compiles WGSL (cached by `name`) with wgpu's runtime bounds checks, returning validation
    /// failures as [`Error::Shader`].
    ///
    /// Applications that bring their own kernels can use this to get the same error handling.
    pub fn shader_module(&self, name: &str, source: &str) -> Result<wgpu::ShaderModule> {
        self.module(name, source, false)
    }

    /// A compiled module, cached. The crate's own shader files (`internal`) are trusted (no
    /// runtime bounds checks) unless [`super::GpuOptions::shader_checks`] asks for them; an
    /// application's are always checked, and cached apart from the crate's.
    fn module(&self, name: &str, source: &str, internal: bool) -> Result<wgpu::ShaderModule> {
        let checked = !internal || self.options.shader_checks;
        let key = if internal {
            format!("steepest/{name}")
        } else {
            name.to_string()
        };
        if let Some(module) = lock(&self.kernels).shaders.get(&key) {
            return Ok(module.clone());
        }
        let descriptor = wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        let module = self
            .scoped("compile shader", || {
                if checked {
                    self.device.create_shader_module(descriptor)
                } else {
                    // SAFETY: only the crate's own shaders get here, and each of them stays
                    // inside its bindings on its own: every array index is either guarded by
                    // the extents in its immediate data (rows, cols, len, offsets) or bounded
                    // by a workgroup array's declared size, and every loop is bounded by those
                    // extents. The one specialisation without edge guards (the matmul's
                    // `ALL_INSIDE`) is built only for shapes with no edges (`Tiling::fills`,
                    // operands vec4-aligned), where every index it forms is inside. The host
                    // checks each extent, offset and binding range against the buffers it
                    // binds before it records (`matmul_dims`, `gather_dims`,
                    // `GpuMatrix::view`, `check_binding`, the arena layouts), so the extents a
                    // kernel sees describe memory inside its bindings. The differential tests
                    // surround every output with canaries to catch a write outside it, and
                    // run in both modes in CI.
                    unsafe {
                        self.device.create_shader_module_trusted(
                            descriptor,
                            wgpu::ShaderRuntimeChecks::unchecked(),
                        )
                    }
                }
            })
            .map_err(|e| Error::Shader {
                name: name.to_string(),
                message: e.to_string(),
            })?;
        self.count_shader_module();
        lock(&self.kernels).shaders.insert(key, module.clone());
        Ok(module)
    }

    /// The bind group and pipeline layouts of `kernel`'s shader file (one per file: every entry
    /// point of a file shares its bindings); the pipeline layout has `kernel.groups` groups of
    /// that one bind group layout.
    pub(crate) fn layout(&self, kernel: &Kernel) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        lock(&self.kernels)
            .layouts
            .entry(kernel.shader)
            .or_insert_with(|| {
                let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
                    .bindings
                    .iter()
                    .enumerate()
                    .map(|(i, binding)| wgpu::BindGroupLayoutEntry {
                        binding: i as u32,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: match binding {
                                Binding::Uniform => wgpu::BufferBindingType::Uniform,
                                Binding::ReadOnly => {
                                    wgpu::BufferBindingType::Storage { read_only: true }
                                }
                                Binding::ReadWrite => {
                                    wgpu::BufferBindingType::Storage { read_only: false }
                                }
                            },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    })
                    .collect();
                let group =
                    self.device
                        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                            label: Some(kernel.shader),
                            entries: &entries,
                        });
                let pipeline =
                    self.device
                        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                            label: Some(kernel.shader),
                            bind_group_layouts: &vec![Some(&group); kernel.groups as usize],
                            immediate_size: kernel.immediate_size,
                        });
                (group, pipeline)
            })
            .clone()
    }

    /// The pipeline for `kernel` specialised by `overrides`, built on first use and cached by
    /// (shader, entry point, override constants).
    pub(crate) fn pipeline(
        &self,
        kernel: &Kernel,
        overrides: &[(&'static str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let fingerprint = PipelineKey::fingerprint(kernel, overrides);
        if let Some((_, pipeline)) = lock(&self.kernels)
            .pipelines
            .get(&fingerprint)
            .and_then(|list| list.iter().find(|(key, _)| key.matches(kernel, overrides)))
        {
            return Ok(pipeline.clone());
        }
        let module = self.module(kernel.shader, kernel.source, true)?;
        let (_, layout) = self.layout(kernel);
        let label = format!("{}:{} {:?}", kernel.shader, kernel.entry, overrides);
        let pipeline = self
            .scoped("build pipeline", || {
                self.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&label),
                        layout: Some(&layout),
                        module: &module,
                        entry_point: Some(kernel.entry),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: overrides,
                            ..Default::default()
                        },
                        cache: None,
                    })
            })
            .map_err(|e| Error::Shader {
                name: label.clone(),
                message: e.to_string(),
            })?;
        self.count_pipeline();
        let key = PipelineKey {
            kernel: *kernel,
            overrides: overrides
                .iter()
                .map(|(name, value)| (*name, value.to_bits()))
                .collect(),
        };
        let mut kernels = lock(&self.kernels);
        let list = kernels.pipelines.entry(fingerprint).or_default();
        // Another thread may have built the same pipeline meanwhile: keep one.
        if let Some((_, built)) = list.iter().find(|(key, _)| key.matches(kernel, overrides)) {
            return Ok(built.clone());
        }
        list.push((key, pipeline.clone()));
        Ok(pipeline)
    }
}
