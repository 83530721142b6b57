//! The GPU context: the device opened with the adapter's real limits, and what it holds (the
//! caches, the pending work, the reused memory, the error slots). Recording and submitting
//! live in `pending.rs`; error capture and counted creation in `scopes.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::GpuBuffer;
use super::counters::Counters;
use super::fingerprint::KeyMap;
use super::in_flight::InFlight;
use super::kernel::{BuiltKernel, KernelCache};
use super::options::{GpuOptions, choose_adapter};
use super::pending::Pending;
use super::profile::Profiler;
use super::sites::SiteCache;
use crate::error::{Error, Result};

/// The immediate data every kernel may use (its largest `Params`, the optimizer's step
/// scalars); Vulkan guarantees 128 bytes, and wgpu 30 offers 128 on DX12 and 4096 on Metal.
pub(crate) const MIN_IMMEDIATE_SIZE: u32 = 96;

/// Everything a GPU op needs: device, queue, limits and the caches. Cheap to share (`Arc`).
pub struct GpuContext {
    /// Unique per context in this process: every buffer remembers its context's.
    pub(crate) id: u64,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    pub(crate) options: GpuOptions,
    /// Shader modules, layouts and pipelines, each built once.
    pub(crate) kernels: Mutex<KernelCache>,
    /// The tiling [`super::Tiling::choose`] picked for each matmul shape (M, N, K) seen, so a
    /// training step looks its products' tilings up instead of running the cost model (one
    /// small entry per distinct shape).
    pub(crate) tilings: Mutex<KeyMap<(usize, usize, usize), super::Tiling>>,
    /// Uniforms and bind groups of the op sites recorded so far, reused while their buffers
    /// live (see `sites.rs`).
    pub(crate) sites: Mutex<SiteCache>,
    /// Ids of `GpuBuffer`s dropped since the site cache last looked: their sites go.
    pub(crate) retired: Arc<Mutex<Vec<u64>>>,
    pub(crate) counters: Counters,
    /// Work recorded by ops but not yet submitted: a training step records every kernel here
    /// and submits once (see [`GpuContext::flush`]).
    pub(super) pending: Mutex<Option<Pending>>,
    /// Submissions the host has not seen finish, and the bound on them (see `in_flight.rs`).
    pub(super) in_flight: Mutex<InFlight>,
    /// The readback staging buffer, grown on demand and reused (see `memory.rs`).
    pub(crate) staging: Mutex<Option<wgpu::Buffer>>,
    /// Scratch for partial sums (split-K matmuls, column sums, per-row losses) and transposed
    /// matmul operands, grown on demand and reused; ops recorded into one submit run in order,
    /// so they can share it.
    pub(crate) scratch: Mutex<Option<GpuBuffer<f32>>>,
    /// Set by wgpu's device-lost callback; every later op fails with it.
    pub(super) lost: Arc<Mutex<Option<String>>>,
    /// Errors that escaped every error scope (wgpu would otherwise panic on them).
    pub(super) uncaptured: Arc<Mutex<Option<super::scopes::Uncaptured>>>,
    /// Bound where a kernel's optional read-only input is absent (e.g. no bias).
    pub(crate) placeholder: wgpu::Buffer,
    /// Bound where a kernel's optional writable binding is unused (it may not alias the
    /// read-only placeholder in one bind group).
    pub(crate) placeholder_rw: wgpu::Buffer,
    /// With [`GpuOptions::profile`]: the timestamps of the pending work and the times so far
    /// (see `profile.rs`).
    pub(super) profiler: Option<Mutex<Profiler>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated (each update is
    // one insert), so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GpuContext {
    /// Opens the adapter chosen by the environment (see [`GpuOptions::from_env`]).
    pub fn new() -> Result<Arc<Self>> {
        Self::with_options(&GpuOptions::from_env()?)
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
        let mut limits = adapter.limits();
        if let Some(cap) = options.max_storage_binding {
            if cap < super::options::MIN_STORAGE_BINDING {
                return Err(Error::RequestDevice {
                    adapter: info.name.clone(),
                    message: format!(
                        "GpuOptions::max_storage_binding = {cap} bytes is under the least \
                         steepest takes ({} bytes)",
                        super::options::MIN_STORAGE_BINDING
                    ),
                });
            }
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(cap);
        }
        // Kernels take their per-dispatch values as immediate data (push constants), so a
        // step writes no uniform buffers; every Vulkan, Metal and DX12 adapter has them.
        if !adapter.features().contains(wgpu::Features::IMMEDIATES)
            || limits.max_immediate_size < MIN_IMMEDIATE_SIZE
        {
            return Err(Error::RequestDevice {
                adapter: info.name.clone(),
                message: format!(
                    "steepest needs immediate data (push constants) of at least \
                     {MIN_IMMEDIATE_SIZE} bytes; this adapter offers {} bytes{}",
                    limits.max_immediate_size,
                    if adapter.features().contains(wgpu::Features::IMMEDIATES) {
                        ""
                    } else {
                        " and not the IMMEDIATES feature"
                    }
                ),
            });
        }
        let profile_features = match options.profile {
            true => Profiler::FEATURES,
            false => wgpu::Features::empty(),
        };
        if !adapter.features().contains(profile_features) {
            return Err(Error::RequestDevice {
                adapter: info.name.clone(),
                message: format!(
                    "profiling (GpuOptions::profile, STEEPEST_PROFILE) needs timestamps inside \
                     compute passes; this adapter lacks {:?}",
                    profile_features.difference(adapter.features())
                ),
            });
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("steepest device"),
                required_features: wgpu::Features::IMMEDIATES | profile_features,
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
            lock(&uncaptured_slot).get_or_insert_with(|| error.into());
        }));

        let placeholder = |label| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        let (placeholder, placeholder_rw) = (
            placeholder("steepest placeholder binding"),
            placeholder("steepest writable placeholder binding"),
        );
        let profiler = options
            .profile
            .then(|| Mutex::new(Profiler::new(&device, &queue)));
        let counters = Counters::default();
        // The placeholders, and the profiler's resolve and readback buffers.
        let buffers = 2 + 2 * u64::from(options.profile);
        counters.buffers.store(buffers, Ordering::Relaxed);

        static NEXT_CONTEXT: AtomicU64 = AtomicU64::new(1);
        Ok(Arc::new(Self {
            id: NEXT_CONTEXT.fetch_add(1, Ordering::Relaxed),
            device,
            queue,
            info,
            limits,
            options: options.clone(),
            kernels: Mutex::default(),
            tilings: Mutex::default(),
            sites: Mutex::default(),
            retired: Arc::default(),
            counters,
            pending: Mutex::default(),
            in_flight: Mutex::default(),
            staging: Mutex::default(),
            scratch: Mutex::default(),
            lost,
            uncaptured,
            placeholder,
            placeholder_rw,
            profiler,
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

    /// The adapter and API in one line, as [`Backend::describe`](crate::Backend::describe)
    /// gives it: `gpu (llvmpipe (LLVM 15.0.6, 256 bits), Vulkan)`.
    pub fn describe(&self) -> String {
        format!("gpu ({}, {:?})", self.info.name, self.info.backend)
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

    /// The options the context was opened with.
    pub fn options(&self) -> &GpuOptions {
        &self.options
    }

    /// GPU buffers alive on this device now (wgpu's own count): a long run that holds steady
    /// here leaks nothing.
    pub fn live_buffers(&self) -> isize {
        self.device.get_internal_counters().hal.buffers.read()
    }

    /// Number of compute pipelines built so far (each is built once and cached).
    pub fn pipeline_count(&self) -> usize {
        lock(&self.kernels).pipeline_count()
    }

    /// The crate's kernels this context has built a pipeline for, one entry per pipeline
    /// (shader, entry point and override constants), in a stable order: which
    /// specialisations a workload runs, and the sources to compile them again outside wgpu.
    pub fn built_kernels(&self) -> Vec<BuiltKernel> {
        lock(&self.kernels).built(self.options.shader_checks)
    }
}
