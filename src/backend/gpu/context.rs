//! The GPU context: adapter choice, the device with the adapter's real limits, error capture
//! through error scopes, and the shader and pipeline caches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result};

/// How to choose an adapter. [`GpuOptions::from_env`] reads wgpu's environment conventions.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuOptions {
    /// Backends to search (`WGPU_BACKEND`, e.g. `vulkan` or `vulkan,metal`).
    pub backends: wgpu::Backends,
    /// Pick the first adapter whose name contains this, case-insensitively (`WGPU_ADAPTER_NAME`).
    pub adapter_name: Option<String>,
    /// Which kind of adapter to prefer (`WGPU_POWER_PREF`: `high`, `low` or `none`).
    pub power_preference: wgpu::PowerPreference,
}

impl Default for GpuOptions {
    /// The primary backends (Vulkan, Metal, DX12), any adapter name, the fastest adapter.
    fn default() -> Self {
        Self {
            backends: wgpu::Backends::PRIMARY,
            adapter_name: None,
            power_preference: wgpu::PowerPreference::HighPerformance,
        }
    }
}

impl GpuOptions {
    /// The defaults, overridden by `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF`.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`GpuOptions::from_env`] over any variable lookup (so it can be tested without the
    /// process environment). Unknown power preferences keep the default.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut options = Self::default();
        if let Some(list) = var("WGPU_BACKEND").filter(|s| !s.trim().is_empty()) {
            options.backends = wgpu::Backends::from_comma_list(&list);
        }
        options.adapter_name = var("WGPU_ADAPTER_NAME").filter(|s| !s.trim().is_empty());
        if let Some(pref) = var("WGPU_POWER_PREF") {
            match pref.to_lowercase().as_str() {
                "high" => options.power_preference = wgpu::PowerPreference::HighPerformance,
                "low" => options.power_preference = wgpu::PowerPreference::LowPower,
                "none" => options.power_preference = wgpu::PowerPreference::None,
                other => log::warn!("ignoring unknown WGPU_POWER_PREF {other:?}"),
            }
        }
        options
    }
}

/// Ranks adapters for `preference`; lower is better. Software adapters always come last, so a
/// real GPU wins over lavapipe whenever both are installed.
fn adapter_rank(device_type: wgpu::DeviceType, preference: wgpu::PowerPreference) -> u8 {
    use wgpu::DeviceType::*;
    match (preference, device_type) {
        (_, Cpu) => 4,
        (wgpu::PowerPreference::HighPerformance, DiscreteGpu) => 0,
        (wgpu::PowerPreference::HighPerformance, IntegratedGpu) => 1,
        (wgpu::PowerPreference::LowPower, IntegratedGpu) => 0,
        (wgpu::PowerPreference::LowPower, DiscreteGpu) => 1,
        (wgpu::PowerPreference::None, _) => 0,
        (_, VirtualGpu) => 2,
        (_, _) => 3,
    }
}

/// Picks the adapter index from (name, type) pairs: the name filter first, then the ranking;
/// ties keep the enumeration order.
pub(crate) fn choose_adapter(
    adapters: &[(String, wgpu::DeviceType)],
    options: &GpuOptions,
) -> Option<usize> {
    let wanted = options.adapter_name.as_ref().map(|n| n.to_lowercase());
    adapters
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| {
            wanted
                .as_ref()
                .is_none_or(|w| name.to_lowercase().contains(w))
        })
        .min_by_key(|(i, (_, ty))| (adapter_rank(*ty, options.power_preference), *i))
        .map(|(i, _)| i)
}

/// A compute kernel: one entry point of one built-in WGSL file and its binding layout.
#[derive(Debug)]
pub(crate) struct Kernel {
    /// The file name under `shaders/`, also the cache key and the name in errors.
    pub shader: &'static str,
    /// The WGSL source (embedded with `include_str!`).
    pub source: &'static str,
    /// The `@compute` entry point.
    pub entry: &'static str,
    /// Binding `i` of group 0 is `bindings[i]`.
    pub bindings: &'static [Binding],
}

/// The kind of one binding in a kernel's group 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    Uniform,
    ReadOnly,
    ReadWrite,
}

/// Override constants as (name, value); values are stored as bit patterns so they can be keys.
type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// Everything a GPU op needs: device, queue, limits and the caches. Cheap to share (`Arc`).
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    shaders: Mutex<HashMap<String, wgpu::ShaderModule>>,
    layouts: Mutex<HashMap<&'static str, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    /// Blocking waits on the GPU so far: a training loop's budget is counted against this.
    waits: AtomicU64,
    /// Submits so far (a recorder can tell whether its earlier work has been submitted).
    submits: AtomicU64,
    /// Work recorded by ops but not yet submitted: a training step records every kernel here
    /// and submits once (see [`GpuContext::flush`]).
    pending: Mutex<Option<wgpu::CommandEncoder>>,
    /// Set by wgpu's device-lost callback; every later op fails with it.
    lost: Arc<Mutex<Option<String>>>,
    /// Errors that escaped every error scope (wgpu would otherwise panic on them).
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Bound where a kernel's optional input is absent (e.g. no bias).
    pub(crate) placeholder: wgpu::Buffer,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated (each update is
    // one insert), so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GpuContext {
    /// Opens the adapter chosen by the environment (see [`GpuOptions::from_env`]).
    pub fn new() -> Result<Arc<Self>> {
        Self::with_options(&GpuOptions::from_env())
    }

    /// Opens the adapter chosen by `options`, requesting the adapter's full limits.
    pub fn with_options(options: &GpuOptions) -> Result<Arc<Self>> {
        pollster::block_on(Self::open(options))
    }

    async fn open(options: &GpuOptions) -> Result<Arc<Self>> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        descriptor.backends = options.backends;
        let instance = wgpu::Instance::new(descriptor);
        let mut adapters = instance.enumerate_adapters(options.backends).await;
        let described: Vec<(String, wgpu::DeviceType)> = adapters
            .iter()
            .map(|a| {
                let info = a.get_info();
                (info.name, info.device_type)
            })
            .collect();
        let Some(index) = choose_adapter(&described, options) else {
            return Err(Error::NoAdapter {
                backends: format!("{:?}", options.backends),
                adapter_name: options.adapter_name.clone(),
                seen: described
                    .iter()
                    .zip(&adapters)
                    .map(|((name, _), a)| format!("{name} ({:?})", a.get_info().backend))
                    .collect(),
            });
        };
        let adapter = adapters.swap_remove(index);
        let info = adapter.get_info();
        log::info!(
            "using adapter {} ({:?}, {:?})",
            info.name,
            info.backend,
            info.device_type
        );

        // wgpu's defaults are WebGPU's portable minimums (128 MiB bindings, 16 KiB workgroup
        // memory); asking for the adapter's own limits is what lets big arenas and tiles fit.
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("steepest device"),
                required_limits: limits.clone(),
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice {
                adapter: info.name.clone(),
                message: e.to_string(),
            })?;

        let lost = Arc::new(Mutex::new(None));
        let lost_flag = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            log::error!("GPU device lost ({reason:?}): {message}");
            *lock(&lost_flag) = Some(format!("{reason:?}: {message}"));
        });
        let uncaptured = Arc::new(Mutex::new(None));
        let uncaptured_slot = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            log::error!("uncaptured GPU error: {error}");
            lock(&uncaptured_slot).get_or_insert_with(|| error.to_string());
        }));

        let placeholder = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("steepest placeholder binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });

        Ok(Arc::new(Self {
            device,
            queue,
            info,
            limits,
            shaders: Mutex::default(),
            layouts: Mutex::default(),
            pipelines: Mutex::default(),
            waits: AtomicU64::new(0),
            submits: AtomicU64::new(0),
            pending: Mutex::default(),
            lost,
            uncaptured,
            placeholder,
        }))
    }

    /// The adapter's name, e.g. `NVIDIA H100` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn adapter_name(&self) -> &str {
        &self.info.name
    }

    /// The graphics API in use (Vulkan, Metal, DX12, GL).
    pub fn backend(&self) -> wgpu::Backend {
        self.info.backend
    }

    /// Everything wgpu knows about the adapter.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The limits the device was created with: the adapter's own, not wgpu's defaults.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The wgpu device, for applications that bring their own kernels.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// How many times the host has blocked on the GPU through this context.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// GPU buffers alive on this device now (wgpu's own count): a long run that holds steady
    /// here leaks nothing.
    pub fn live_buffers(&self) -> isize {
        self.device.get_internal_counters().hal.buffers.read()
    }

    /// Number of compute pipelines built so far (each is built once and cached).
    pub fn pipeline_count(&self) -> usize {
        lock(&self.pipelines).len()
    }

    /// Submits so far (every [`GpuContext::flush`] that had work counts one).
    pub fn submits(&self) -> u64 {
        self.submits.load(Ordering::Relaxed)
    }

    /// Records work into the pending command encoder (created on first use), inside error
    /// scopes. Nothing runs until the next [`GpuContext::flush`], which readback, host writes
    /// and waits do first, so recorded work is always ordered before them.
    pub(crate) fn record<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut wgpu::CommandEncoder) -> T,
    ) -> Result<T> {
        let mut pending = lock(&self.pending);
        let encoder = pending.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("steepest pending work"),
                })
        });
        self.scoped(op, || f(encoder))
    }

    /// Submits the recorded work, if any, in one submit; does not wait for it.
    pub fn flush(&self) -> Result<()> {
        // The lock is held through the submit: another thread's flush that finds nothing
        // pending must not go on (to a readback, say) before this submit is in the queue.
        let mut pending = lock(&self.pending);
        let Some(encoder) = pending.take() else {
            return Ok(());
        };
        self.scoped("submit", || self.queue.submit([encoder.finish()]))?;
        self.submits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Blocks until every recorded and submitted command has finished; counts as one wait.
    pub fn wait(&self) -> Result<()> {
        self.flush()?;
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu {
                op: "wait",
                message: e.to_string(),
            })?;
        self.check_health()
    }

    /// Fails if the device was lost or an error escaped the error scopes.
    pub(crate) fn check_health(&self) -> Result<()> {
        if let Some(message) = lock(&self.lost).clone() {
            return Err(Error::DeviceLost { message });
        }
        if let Some(message) = lock(&self.uncaptured).take() {
            return Err(Error::Gpu {
                op: "earlier GPU work",
                message,
            });
        }
        Ok(())
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes and turns anything
    /// they caught into an [`Error`] naming `op`.
    pub(crate) fn scoped<T>(&self, op: &'static str, f: impl FnOnce() -> T) -> Result<T> {
        self.check_health()?;
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        // Scopes pop innermost first. On native backends the futures are already resolved.
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(memory.pop()),
            pollster::block_on(internal.pop()),
        ];
        match errors.into_iter().flatten().next() {
            None => Ok(value),
            Some(wgpu::Error::OutOfMemory { .. }) => Err(Error::OutOfMemory {
                op,
                message: "the device has no memory left".into(),
            }),
            Some(error) => Err(Error::Gpu {
                op,
                message: error.to_string(),
            }),
        }
    }

    /// Compiles WGSL (cached by `name`), returning validation failures as [`Error::Shader`].
    ///
    /// Applications that bring their own kernels can use this to get the same error handling.
    pub fn shader_module(&self, name: &str, source: &str) -> Result<wgpu::ShaderModule> {
        if let Some(module) = lock(&self.shaders).get(name) {
            return Ok(module.clone());
        }
        let module = self
            .scoped("compile shader", || {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(name),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    })
            })
            .map_err(|e| Error::Shader {
                name: name.to_string(),
                message: e.to_string(),
            })?;
        lock(&self.shaders).insert(name.to_string(), module.clone());
        Ok(module)
    }

    /// The bind group and pipeline layouts of `kernel`'s shader file (one per file: every entry
    /// point of a file shares its bindings).
    pub(crate) fn layout(&self, kernel: &Kernel) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        lock(&self.layouts)
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
                            bind_group_layouts: &[Some(&group)],
                            immediate_size: 0,
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
        let key: PipelineKey = (
            kernel.shader,
            kernel.entry,
            overrides
                .iter()
                .map(|(name, value)| (*name, value.to_bits()))
                .collect(),
        );
        if let Some(pipeline) = lock(&self.pipelines).get(&key) {
            return Ok(pipeline.clone());
        }
        let module = self.shader_module(kernel.shader, kernel.source)?;
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
        lock(&self.pipelines).insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// A bind group for `kernel`: binding `i` ← `resources[i]`.
    pub(crate) fn bind_group(
        &self,
        kernel: &Kernel,
        resources: Vec<wgpu::BindingResource<'_>>,
    ) -> wgpu::BindGroup {
        let (layout, _) = self.layout(kernel);
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.shader),
            layout: &layout,
            entries: &entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::DeviceType::*;
    use wgpu::PowerPreference as Pref;

    fn adapters() -> Vec<(String, wgpu::DeviceType)> {
        vec![
            ("llvmpipe (LLVM 15)".into(), Cpu),
            ("Intel UHD".into(), IntegratedGpu),
            ("NVIDIA H100".into(), DiscreteGpu),
        ]
    }

    fn options(power_preference: Pref, adapter_name: Option<&str>) -> GpuOptions {
        GpuOptions {
            adapter_name: adapter_name.map(str::to_string),
            power_preference,
            ..GpuOptions::default()
        }
    }

    #[test]
    fn power_preference_ranks_adapters_and_software_comes_last() {
        assert_eq!(
            choose_adapter(&adapters(), &options(Pref::HighPerformance, None)),
            Some(2)
        );
        assert_eq!(
            choose_adapter(&adapters(), &options(Pref::LowPower, None)),
            Some(1)
        );
        // No preference: first enumerated hardware adapter.
        assert_eq!(
            choose_adapter(&adapters(), &options(Pref::None, None)),
            Some(1)
        );
        assert_eq!(
            choose_adapter(&adapters()[..1], &options(Pref::HighPerformance, None)),
            Some(0)
        );
        assert_eq!(
            choose_adapter(&[], &options(Pref::HighPerformance, None)),
            None
        );
    }

    #[test]
    fn the_name_filter_wins_over_the_ranking() {
        assert_eq!(
            choose_adapter(
                &adapters(),
                &options(Pref::HighPerformance, Some("LLVMpipe"))
            ),
            Some(0)
        );
        assert_eq!(
            choose_adapter(&adapters(), &options(Pref::HighPerformance, Some("radeon"))),
            None
        );
    }
}
