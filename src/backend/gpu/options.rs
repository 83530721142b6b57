//! `GpuOptions`: which adapter to open and how to compile the crate's kernels, from wgpu's
//! environment conventions or set by hand; and the adapter ranking that applies them.

use crate::error::{Error, Result};

/// How to choose an adapter and compile kernels. [`GpuOptions::from_env`] reads the
/// environment.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuOptions {
    /// Backends to search (`WGPU_BACKEND`, e.g. `vulkan` or `vulkan,metal`).
    pub backends: wgpu::Backends,
    /// Pick the first adapter whose name contains this, case-insensitively (`WGPU_ADAPTER_NAME`).
    pub adapter_name: Option<String>,
    /// Which kind of adapter to prefer (`WGPU_POWER_PREF`: `high`, `low` or `none`).
    pub power_preference: wgpu::PowerPreference,
    /// Compile the crate's own kernels with wgpu's runtime bounds checks
    /// (`STEEPEST_SHADER_CHECKS=1`). Off by default: every kernel guards its own edges and the
    /// host checks every extent, offset and binding before it records, and the checks cost
    /// about 20× in the matmul's inner loop on a real GPU. Turn them on to debug a kernel: an
    /// out-of-bounds access then reads zero or is dropped instead of touching other memory.
    /// Shaders an application compiles through [`crate::GpuContext::shader_module`] are always
    /// checked.
    pub shader_checks: bool,
    /// How many dispatches may be submitted and not yet finished before a submit waits
    /// (`STEEPEST_MAX_DISPATCHES_IN_FLIGHT`; default [`DEFAULT_MAX_DISPATCHES_IN_FLIGHT`]).
    /// Steps never wait for the GPU while it keeps up; when the host runs further ahead than
    /// this, a submit waits until the oldest work has finished and half the bound is left
    /// queued, so the GPU stays busy while the memory that submitted work holds (command
    /// pools, recorded commands, wgpu's tracking) stays bounded. The newest submission is
    /// never waited for: 0 keeps one submission in flight. Each such wait counts in
    /// [`crate::GpuCounters::throttles`].
    pub max_dispatches_in_flight: u64,
    /// Time every op on the GPU (`STEEPEST_PROFILE=1`; off by default): a timestamp after each
    /// op, read back after each submit, so every submit waits for the GPU. Read the times with
    /// [`crate::GpuContext::take_kernel_times`]. Needs an adapter that writes timestamps inside
    /// compute passes (Vulkan, DX12 and Metal on Apple silicon do); opening a context with it
    /// elsewhere fails, naming what is missing.
    pub profile: bool,
    /// Wait for the GPU by asking wgpu, again and again, whether the work is done, the thread
    /// yielding between asks (`STEEPEST_SPIN_WAIT=1`; off by default), instead of sleeping in
    /// the driver until the GPU signals. Every [`crate::GpuContext::wait`] and readback then
    /// returns as soon as the work ends, at the cost of a CPU core kept busy while it waits
    /// (CUDA's default is alike). Training steps never wait, so it shortens readbacks,
    /// predictions and the end of a run, not steps. Whether waking from the driver's sleep
    /// costs enough to matter depends on the driver and the host (BENCHMARKS.md, twelfth
    /// session: on an H200, runs of three products took 190–340 µs longer on the host's clock
    /// than on the GPU's).
    pub spin_wait: bool,
    /// Open the device with storage bindings of at most this many bytes, below what the
    /// adapter offers (`STEEPEST_MAX_STORAGE_BINDING`; default `None`: the adapter's own, 2 GiB
    /// on an H200, 128 MiB on lavapipe). A program then meets the limits of a smaller device
    /// here: datasets uploaded in shards, parameter arenas bound a window at a time, batches
    /// refused that one binding cannot hold. At least [`MIN_STORAGE_BINDING`].
    pub max_storage_binding: Option<u64>,
}

/// The smallest [`GpuOptions::max_storage_binding`]: 64 KiB.
pub const MIN_STORAGE_BINDING: u64 = 64 << 10;

/// [`GpuOptions::max_dispatches_in_flight`]'s default: about the kernels CUDA queues before a
/// launch blocks, and over a hundred steps of a small MLP.
pub const DEFAULT_MAX_DISPATCHES_IN_FLIGHT: u64 = 1024;

impl Default for GpuOptions {
    /// The primary backends (Vulkan, Metal, DX12), any adapter name, the fastest adapter,
    /// trusted kernels, [`DEFAULT_MAX_DISPATCHES_IN_FLIGHT`], no profiling, waits that sleep.
    fn default() -> Self {
        Self {
            backends: wgpu::Backends::PRIMARY,
            adapter_name: None,
            power_preference: wgpu::PowerPreference::HighPerformance,
            shader_checks: false,
            max_dispatches_in_flight: DEFAULT_MAX_DISPATCHES_IN_FLIGHT,
            profile: false,
            spin_wait: false,
            max_storage_binding: None,
        }
    }
}

/// The values `WGPU_BACKEND` accepts, for error messages.
const BACKENDS: &str =
    "vulkan, metal, dx12, gl, webgpu, primary, secondary or all (comma-separated)";

impl GpuOptions {
    /// The defaults, overridden by `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`,
    /// `STEEPEST_SHADER_CHECKS`, `STEEPEST_MAX_DISPATCHES_IN_FLIGHT`, `STEEPEST_PROFILE`,
    /// `STEEPEST_SPIN_WAIT` and `STEEPEST_MAX_STORAGE_BINDING`. A value that is set but not
    /// understood is an error naming it.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`GpuOptions::from_env`] over any variable lookup (so it can be tested without the
    /// process environment).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut options = Self::default();
        let set = |name: &str| var(name).filter(|s| !s.trim().is_empty());
        if let Some(list) = set("WGPU_BACKEND") {
            options.backends = parse_backends(&list)?;
        }
        options.adapter_name = set("WGPU_ADAPTER_NAME");
        if let Some(pref) = set("WGPU_POWER_PREF") {
            options.power_preference = match pref.trim().to_lowercase().as_str() {
                "high" => wgpu::PowerPreference::HighPerformance,
                "low" => wgpu::PowerPreference::LowPower,
                "none" => wgpu::PowerPreference::None,
                _ => {
                    return Err(Error::Config {
                        variable: "WGPU_POWER_PREF",
                        value: pref,
                        accepted: "high, low or none",
                    });
                }
            };
        }
        if let Some(checks) = set("STEEPEST_SHADER_CHECKS") {
            options.shader_checks = switch("STEEPEST_SHADER_CHECKS", checks)?;
        }
        if let Some(profile) = set("STEEPEST_PROFILE") {
            options.profile = switch("STEEPEST_PROFILE", profile)?;
        }
        if let Some(spin) = set("STEEPEST_SPIN_WAIT") {
            options.spin_wait = switch("STEEPEST_SPIN_WAIT", spin)?;
        }
        if let Some(bound) = set("STEEPEST_MAX_DISPATCHES_IN_FLIGHT") {
            options.max_dispatches_in_flight = bound.trim().parse().map_err(|_| Error::Config {
                variable: "STEEPEST_MAX_DISPATCHES_IN_FLIGHT",
                value: bound,
                accepted: "a whole number of dispatches, 0 or more",
            })?;
        }
        if let Some(bytes) = set("STEEPEST_MAX_STORAGE_BINDING") {
            let parsed = bytes.trim().parse().ok();
            options.max_storage_binding = Some(
                parsed
                    .filter(|&b| b >= MIN_STORAGE_BINDING)
                    .ok_or(Error::Config {
                        variable: "STEEPEST_MAX_STORAGE_BINDING",
                        value: bytes,
                        accepted: "a whole number of bytes, 65536 or more",
                    })?,
            );
        }
        Ok(options)
    }
}

/// An on/off variable's value.
fn switch(variable: &'static str, value: String) -> Result<bool> {
    match value.trim().to_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(Error::Config {
            variable,
            value,
            accepted: "1, true, on, yes (on) or 0, false, off, no (off)",
        }),
    }
}

/// `WGPU_BACKEND`'s comma list; every name must be one wgpu knows.
fn parse_backends(list: &str) -> Result<wgpu::Backends> {
    let mut backends = wgpu::Backends::empty();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let one = match name.to_lowercase().as_str() {
            "primary" => wgpu::Backends::PRIMARY,
            "secondary" => wgpu::Backends::SECONDARY,
            "all" => wgpu::Backends::all(),
            other => wgpu::Backends::from_comma_list(other),
        };
        if one.is_empty() {
            return Err(Error::Config {
                variable: "WGPU_BACKEND",
                value: list.to_string(),
                accepted: BACKENDS,
            });
        }
        backends |= one;
    }
    Ok(backends)
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

    #[test]
    fn backend_lists_are_checked_name_by_name() {
        assert_eq!(
            parse_backends("Vulkan, metal").unwrap(),
            wgpu::Backends::VULKAN | wgpu::Backends::METAL
        );
        assert_eq!(parse_backends("primary").unwrap(), wgpu::Backends::PRIMARY);
        let err = parse_backends("vulkan,nonsense").unwrap_err().to_string();
        assert!(
            err.contains("WGPU_BACKEND") && err.contains("nonsense"),
            "{err}"
        );
        assert!(err.contains("vulkan, metal, dx12"), "{err}");
    }
}
