//! `--sections kernels`: what the driver made of each kernel this report runs (registers,
//! spills, instructions, as the driver reports them), one line per pipeline.
//!
//! wgpu gives no way to ask a driver about a pipeline it built, so this compiles each one
//! again beside it: the same WGSL and override constants (`GpuContext::built_kernels`),
//! turned into SPIR-V by naga with the options wgpu 30's Vulkan backend uses (runtime checks
//! off for the crate's trusted kernels, workgroup memory zeroed by the driver where it can),
//! on a Vulkan device of the same adapter with the same robustness features enabled, and
//! created with `VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR`
//! (`VK_KHR_pipeline_executable_properties`). On an NVIDIA GPU the register count says how
//! many workgroups fit on a compute unit at once, which no timing shows directly.

use std::ffi::CStr;
use std::path::Path;

use ash::vk;
use ndarray::Array2;
use steepest::backend::gpu::{BuiltKernel, KernelBinding};
use steepest::wgpu::AdapterInfo;
use steepest::{Activation, Backend, Dataset, Init, Matmul, Mlp, MlpSpec, Session};

use super::{Report, chosen_tiling, tiling_label};

/// What the driver says of one compiled pipeline: its statistics as (name, value), and its
/// internal representations (as it names them: assembly, intermediate code) as (name, bytes).
#[derive(Default)]
struct Compiled {
    statistics: Vec<(String, String)>,
    representations: Vec<(String, Vec<u8>)>,
}

/// Runs its closure when dropped: how each Vulkan object made for one pipeline is destroyed
/// on every path out.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// NVIDIA's PCI vendor id: the occupancy estimate below uses its compute units' limits.
const NVIDIA: u32 = 0x10de;

impl Report {
    /// Builds every pipeline the timed sections run, by running each of their products once
    /// and one step of each training row's model (nothing timed).
    fn build_every_pipeline(&mut self) -> steepest::Result<()> {
        let mut products = self.square_products();
        products.extend(self.layer_products());
        for product in products {
            let (a, b) = (product.a, product.b);
            let (m, n, k) = product.mnk();
            let mut out = self.gpu.zeros(m, n)?;
            let (a, b) = (self.gpu.zeros(a.0, a.1)?, self.gpu.zeros(b.0, b.1)?);
            self.gpu.matmul_into(product.spec, &a, &b, None, &mut out)?;
            self.gpu.context().wait()?;
            // Which `kernel` line below is this product's: its tile (WG_X, WG_Y, GROUPS_M,
            // GROUPS_N there), K split and layout (pretransposed: TRANS_A=1 TRANS_B=0).
            let tiling = chosen_tiling(self.gpu.context(), (m, n, k));
            println!(
                "kernel_product {} {}",
                product.key,
                tiling_label(product.spec, tiling)
            );
        }
        let (m, k, n) = self.linear_layer();
        let (x, w, bias) = (
            self.gpu.zeros(m, k)?,
            self.gpu.zeros(n, k)?,
            self.gpu.zeros(1, n)?,
        );
        let mut out = self.gpu.zeros(m, n)?;
        let spec = Matmul::nt().activation(Activation::Relu);
        self.gpu.matmul_into(spec, &x, &w, Some(&bias), &mut out)?;
        for row in self.models() {
            let (widths, batch) = (row.widths, row.batch * row.accumulate);
            let classes = widths[widths.len() - 1];
            let x = Array2::<f32>::zeros((2 * batch, widths[0]));
            let labels: Vec<usize> = (0..2 * batch).map(|i| i % classes).collect();
            let data = Dataset::classification(x, &labels, classes)?;
            let trainer = super::row_trainer(row.grouped)
                .batch_size(row.batch)
                .accumulate_grad_batches(row.accumulate)
                .steps_per_submit(row.per_submit);
            let spec = MlpSpec::stack(widths, Activation::Relu);
            let mut model = Mlp::new(&self.gpu, &spec, Init::HeUniform, 1)?;
            let mut session = Session::new(&trainer, &self.gpu, &mut model, &data, None)?;
            session.step()?;
        }
        self.gpu.context().wait()
    }
}

/// Prints one `kernel` line per pipeline the timed sections build; with `ir_dir`, writes the
/// driver's internal representations of each there (created if missing).
pub(super) fn kernels(report: &mut Report, ir_dir: Option<&Path>) -> Result<(), String> {
    let info = report.gpu.context().adapter_info().clone();
    if info.backend != steepest::wgpu::Backend::Vulkan {
        println!(
            "note kernels: reading what a driver compiled needs a Vulkan adapter; this is {:?}, \
             so there is nothing to report",
            info.backend
        );
        return Ok(());
    }
    report.build_every_pipeline().map_err(|e| e.to_string())?;
    let built = report.gpu.context().built_kernels();
    // SAFETY: `Driver::open` loads the system's Vulkan loader, as wgpu itself did.
    let driver = unsafe { Driver::open(&info)? };
    if driver.executables.is_none() {
        println!(
            "note kernels: {} does not offer VK_KHR_pipeline_executable_properties: each \
             pipeline is compiled again, but the driver says nothing about it",
            info.name
        );
    }
    println!(
        "note kernels: {} pipelines, compiled again with SPIR-V {}.{}, workgroup memory zeroed \
         {}, robustBufferAccess2 {}",
        built.len(),
        driver.device.lang_version.0,
        driver.device.lang_version.1,
        if driver.device.zero_init_native {
            "by the driver"
        } else {
            "by the shader"
        },
        if driver.device.robust2 { "on" } else { "off" },
    );
    if let Some(dir) = ir_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("kernels: {}: {e}", dir.display()))?;
    }
    for (number, kernel) in built.iter().enumerate() {
        let line = driver.describe(kernel, ir_dir.map(|dir| (dir, number)))?;
        println!("kernel {line}");
    }
    Ok(())
}

/// A Vulkan device on the report's adapter, opened to read pipeline statistics.
struct Driver {
    _entry: ash::Entry,
    instance: ash::Instance,
    device: OpenedDevice,
    /// `None` where the driver offers no statistics (`VK_KHR_pipeline_executable_properties`):
    /// the pipelines are still compiled, which checks the rest of the way.
    executables: Option<ash::khr::pipeline_executable_properties::Device>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: every object made on the device was destroyed where it was made, and
        // nothing else holds the device or the instance.
        unsafe {
            self.device.raw.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}

/// The device [`Driver::open_device`] opened, and what it enabled.
struct OpenedDevice {
    raw: ash::Device,
    /// The PCI vendor id.
    vendor: u32,
    /// The SPIR-V version wgpu writes for this device's Vulkan version.
    lang_version: (u8, u8),
    /// `shaderZeroInitializeWorkgroupMemory` is on: naga leaves the zeroing to the driver.
    zero_init_native: bool,
    /// `robustBufferAccess2` is on, as wgpu enables it where offered.
    robust2: bool,
    /// `VK_KHR_pipeline_executable_properties` is on.
    statistics: bool,
}

fn vk_error(what: &str) -> impl Fn(vk::Result) -> String + '_ {
    move |e| format!("kernels: {what}: {e}")
}

impl Driver {
    /// Opens the physical device behind `info`, with pipeline statistics enabled where the
    /// driver offers them.
    ///
    /// # Safety
    /// Loads the Vulkan loader and calls into the driver.
    unsafe fn open(info: &AdapterInfo) -> Result<Driver, String> {
        let entry = unsafe { ash::Entry::load() }.map_err(|e| format!("kernels: {e}"))?;
        let loader_version = unsafe { entry.try_enumerate_instance_version() }
            .map_err(vk_error("instance version"))?
            .unwrap_or(vk::API_VERSION_1_0);
        let app = vk::ApplicationInfo::default()
            .application_name(c"steepest gpu_report")
            .api_version(loader_version.min(vk::API_VERSION_1_3));
        let instance = unsafe {
            entry.create_instance(
                &vk::InstanceCreateInfo::default().application_info(&app),
                None,
            )
        }
        .map_err(vk_error("create instance"))?;
        match unsafe { Self::open_device(&instance, info) } {
            Ok(device) => {
                let executables = device.statistics.then(|| {
                    ash::khr::pipeline_executable_properties::Device::new(&instance, &device.raw)
                });
                Ok(Driver {
                    _entry: entry,
                    instance,
                    device,
                    executables,
                })
            }
            Err(e) => {
                unsafe { instance.destroy_instance(None) };
                Err(e)
            }
        }
    }

    /// Opens the device behind `info` with what wgpu enables that changes how kernels compile
    /// (robust buffer access, zeroed workgroup memory), and statistics where offered.
    ///
    /// # Safety
    /// `instance` is alive.
    unsafe fn open_device(
        instance: &ash::Instance,
        info: &AdapterInfo,
    ) -> Result<OpenedDevice, String> {
        let physical = unsafe { instance.enumerate_physical_devices() }
            .map_err(vk_error("enumerate devices"))?
            .into_iter()
            .find(|&p| {
                let props = unsafe { instance.get_physical_device_properties(p) };
                props.vendor_id == info.vendor
                    && props.device_id == info.device
                    && props
                        .device_name_as_c_str()
                        .is_ok_and(|n| n.to_string_lossy() == info.name)
            })
            .ok_or_else(|| format!("kernels: no Vulkan device is {} here", info.name))?;
        let props = unsafe { instance.get_physical_device_properties(physical) };
        let extensions = unsafe { instance.enumerate_device_extension_properties(physical) }
            .map_err(vk_error("device extensions"))?;
        let offers = |name: &CStr| {
            extensions
                .iter()
                .any(|e| e.extension_name_as_c_str().is_ok_and(|n| n == name))
        };
        let statistics = offers(ash::khr::pipeline_executable_properties::NAME);
        let api = props.api_version.min(vk::API_VERSION_1_3);
        let lang_version = match (vk::api_version_major(api), vk::api_version_minor(api)) {
            (1, 0) => (1, 0),
            (1, 1) => (1, 3),
            (1, 2) => (1, 5),
            _ => (1, 6),
        };
        // What the device offers of what wgpu enables (robustness, zeroed workgroup memory).
        let has_robustness2 = offers(ash::ext::robustness2::NAME);
        let has_zero_init =
            api >= vk::API_VERSION_1_3 || offers(ash::khr::zero_initialize_workgroup_memory::NAME);
        let mut robustness2 = vk::PhysicalDeviceRobustness2FeaturesEXT::default();
        let mut zero_init = vk::PhysicalDeviceZeroInitializeWorkgroupMemoryFeatures::default();
        let mut offered = vk::PhysicalDeviceFeatures2::default();
        if has_robustness2 {
            offered = offered.push_next(&mut robustness2);
        }
        if has_zero_init {
            offered = offered.push_next(&mut zero_init);
        }
        unsafe { instance.get_physical_device_features2(physical, &mut offered) };
        let robust_buffer_access = offered.features.robust_buffer_access;
        let robust2 = has_robustness2 && robustness2.robust_buffer_access2 == vk::TRUE;
        let zero_init_native =
            has_zero_init && zero_init.shader_zero_initialize_workgroup_memory == vk::TRUE;

        let family = unsafe { instance.get_physical_device_queue_family_properties(physical) }
            .iter()
            .position(|f| f.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .ok_or("kernels: the device has no compute queue")?;
        let priorities = [1.0];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(family as u32)
            .queue_priorities(&priorities)];
        let mut names = Vec::new();
        if statistics {
            names.push(ash::khr::pipeline_executable_properties::NAME.as_ptr());
        }
        if robust2 {
            names.push(ash::ext::robustness2::NAME.as_ptr());
        }
        if zero_init_native && api < vk::API_VERSION_1_3 {
            names.push(ash::khr::zero_initialize_workgroup_memory::NAME.as_ptr());
        }
        let mut enable_statistics =
            vk::PhysicalDevicePipelineExecutablePropertiesFeaturesKHR::default()
                .pipeline_executable_info(true);
        let mut enable_robustness2 =
            vk::PhysicalDeviceRobustness2FeaturesEXT::default().robust_buffer_access2(robust2);
        let mut enable_zero_init =
            vk::PhysicalDeviceZeroInitializeWorkgroupMemoryFeatures::default()
                .shader_zero_initialize_workgroup_memory(zero_init_native);
        let mut features = vk::PhysicalDeviceFeatures2::default().features(
            vk::PhysicalDeviceFeatures::default()
                .robust_buffer_access(robust_buffer_access == vk::TRUE),
        );
        if statistics {
            features = features.push_next(&mut enable_statistics);
        }
        if robust2 {
            features = features.push_next(&mut enable_robustness2);
        }
        if zero_init_native {
            features = features.push_next(&mut enable_zero_init);
        }
        let create = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queues)
            .enabled_extension_names(&names)
            .push_next(&mut features);
        let raw = unsafe { instance.create_device(physical, &create, None) }
            .map_err(vk_error("create device"))?;
        Ok(OpenedDevice {
            raw,
            vendor: props.vendor_id,
            lang_version,
            zero_init_native,
            robust2,
            statistics,
        })
    }

    /// One line for `kernel`: its specialisation, workgroup, and the driver's statistics;
    /// with `ir_dir` (a folder, and the kernel's number in the listing), the driver's internal
    /// representations written there, one file each.
    fn describe(
        &self,
        kernel: &BuiltKernel,
        ir_dir: Option<(&Path, usize)>,
    ) -> Result<String, String> {
        let module = naga::front::wgsl::parse_str(kernel.source).map_err(|e| {
            format!(
                "kernels: {}: {}",
                kernel.shader,
                e.emit_to_string(kernel.source)
            )
        })?;
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::IMMEDIATES,
        )
        .validate(&module)
        .map_err(|e| {
            format!(
                "kernels: {}: {}",
                kernel.shader,
                e.emit_to_string(kernel.source)
            )
        })?;
        let mut constants = naga::back::PipelineConstants::default();
        for &(name, value) in &kernel.overrides {
            constants.insert(name.to_string(), value);
        }
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((naga::ShaderStage::Compute, kernel.entry)),
            &constants,
        )
        .map_err(|e| format!("kernels: {}: {e}", kernel.shader))?;
        let threads: u32 = module
            .entry_points
            .iter()
            .find(|e| e.name == kernel.entry)
            .map(|e| e.workgroup_size.iter().product())
            .ok_or_else(|| format!("kernels: {} has no {}", kernel.shader, kernel.entry))?;
        let mut layouter = naga::proc::Layouter::default();
        layouter
            .update(module.to_ctx())
            .map_err(|e| format!("kernels: {}: {e}", kernel.shader))?;
        let shared: u32 = module
            .global_variables
            .iter()
            .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
            .map(|(_, g)| layouter[g.ty].size)
            .sum();
        let spirv = naga::back::spv::write_vec(&module, &info, &self.spirv_options(kernel), None)
            .map_err(|e| format!("kernels: {}: {e}", kernel.shader))?;
        let compiled = unsafe { self.compile(kernel, &spirv) }?;
        let statistics = &compiled.statistics;

        let overrides: Vec<String> = kernel
            .overrides
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let mut line = format!(
            "{}:{} [{}] threads {threads}, workgroup memory {shared} B",
            kernel.shader.trim_end_matches(".wgsl"),
            kernel.entry,
            overrides.join(" ")
        );
        for (name, value) in statistics {
            line.push_str(&format!("; {name} {value}"));
        }
        for (name, data) in &compiled.representations {
            line.push_str(&format!(
                "; internal representation {name:?} ({} B)",
                data.len()
            ));
            if let Some((dir, number)) = ir_dir {
                let file = dir.join(format!(
                    "{number:03}_{}_{}_{}.txt",
                    kernel.shader.trim_end_matches(".wgsl"),
                    kernel.entry,
                    name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                ));
                std::fs::write(&file, data)
                    .map_err(|e| format!("kernels: {}: {e}", file.display()))?;
                line.push_str(&format!(" in {}", file.display()));
            }
        }
        if self.device.vendor == NVIDIA
            && let Some(registers) = statistics
                .iter()
                .find(|(name, _)| name.to_lowercase().contains("register"))
                .and_then(|(_, value)| value.parse::<u32>().ok())
        {
            line.push_str(&format!(
                "; ≈{} workgroups per SM (Hopper's 64K registers, 2048 threads, 228 KiB shared)",
                nvidia_workgroups_per_sm(registers, threads, shared)
            ));
        }
        Ok(line)
    }

    /// naga's SPIR-V options as wgpu 30's Vulkan backend sets them for this pipeline.
    fn spirv_options(&self, kernel: &BuiltKernel) -> naga::back::spv::Options<'static> {
        use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
        let checked = kernel.checked;
        let unchecked = BoundsCheckPolicy::Unchecked;
        naga::back::spv::Options {
            lang_version: self.device.lang_version,
            flags: naga::back::spv::WriterFlags::LABEL_VARYINGS
                | naga::back::spv::WriterFlags::FORCE_POINT_SIZE,
            fake_missing_bindings: false,
            // As wgpu maps a pipeline layout's bindings: group g's in order, in set g.
            binding_map: (0..kernel.groups)
                .flat_map(|group| {
                    (0..kernel.bindings.len() as u32).map(move |binding| {
                        (
                            naga::ResourceBinding { group, binding },
                            naga::back::spv::BindingInfo {
                                descriptor_set: group,
                                binding,
                                binding_array_size: None,
                            },
                        )
                    })
                })
                .collect(),
            capabilities: None,
            bounds_check_policies: if checked {
                BoundsCheckPolicies {
                    index: BoundsCheckPolicy::Restrict,
                    buffer: if self.device.robust2 {
                        unchecked
                    } else {
                        BoundsCheckPolicy::Restrict
                    },
                    image_load: BoundsCheckPolicy::Restrict,
                    binding_array: unchecked,
                }
            } else {
                BoundsCheckPolicies {
                    index: unchecked,
                    buffer: unchecked,
                    image_load: unchecked,
                    binding_array: unchecked,
                }
            },
            zero_initialize_workgroup_memory: if self.device.zero_init_native {
                naga::back::spv::ZeroInitializeWorkgroupMemoryMode::Native
            } else {
                naga::back::spv::ZeroInitializeWorkgroupMemoryMode::Polyfill
            },
            force_loop_bounding: checked,
            emit_int_div_checks: checked,
            ..naga::back::spv::Options::default()
        }
    }

    /// Creates `kernel`'s pipeline from `spirv` and reads what the driver says of it.
    ///
    /// # Safety
    /// `spirv` is valid SPIR-V for `kernel`'s bindings and immediate data.
    unsafe fn compile(&self, kernel: &BuiltKernel, spirv: &[u32]) -> Result<Compiled, String> {
        let device = &self.device.raw;
        let bindings: Vec<vk::DescriptorSetLayoutBinding> = kernel
            .bindings
            .iter()
            .enumerate()
            .map(|(i, binding)| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(i as u32)
                    .descriptor_type(match binding {
                        KernelBinding::Uniform => vk::DescriptorType::UNIFORM_BUFFER,
                        _ => vk::DescriptorType::STORAGE_BUFFER,
                    })
                    .descriptor_count(1)
                    .stage_flags(vk::ShaderStageFlags::COMPUTE)
            })
            .collect();
        // Each object is destroyed when its guard drops, on every path (in reverse order).
        let set_layout = unsafe {
            device.create_descriptor_set_layout(
                &vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings),
                None,
            )
        }
        .map_err(vk_error("descriptor set layout"))?;
        let _set_layout =
            OnDrop(|| unsafe { device.destroy_descriptor_set_layout(set_layout, None) });
        let ranges = [vk::PushConstantRange::default()
            .stage_flags(vk::ShaderStageFlags::COMPUTE)
            .size(kernel.immediate_size)];
        // Every group of a kernel has the one layout.
        let set_layouts = vec![set_layout; kernel.groups as usize];
        let layout_info = vk::PipelineLayoutCreateInfo::default().set_layouts(&set_layouts);
        let layout_info = match kernel.immediate_size {
            0 => layout_info,
            _ => layout_info.push_constant_ranges(&ranges),
        };
        let layout = unsafe { device.create_pipeline_layout(&layout_info, None) }
            .map_err(vk_error("pipeline layout"))?;
        let _layout = OnDrop(|| unsafe { device.destroy_pipeline_layout(layout, None) });
        let module = unsafe {
            device.create_shader_module(&vk::ShaderModuleCreateInfo::default().code(spirv), None)
        }
        .map_err(vk_error("shader module"))?;
        let _module = OnDrop(|| unsafe { device.destroy_shader_module(module, None) });
        let entry = std::ffi::CString::new(kernel.entry).map_err(|e| e.to_string())?;
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module)
            .name(&entry);
        let flags = match self.executables {
            Some(_) => {
                vk::PipelineCreateFlags::CAPTURE_STATISTICS_KHR
                    | vk::PipelineCreateFlags::CAPTURE_INTERNAL_REPRESENTATIONS_KHR
            }
            None => vk::PipelineCreateFlags::empty(),
        };
        let create = [vk::ComputePipelineCreateInfo::default()
            .flags(flags)
            .stage(stage)
            .layout(layout)];
        let pipeline =
            unsafe { device.create_compute_pipelines(vk::PipelineCache::null(), &create, None) }
                .map_err(|(_, e)| vk_error("create pipeline")(e))?
                .into_iter()
                .next()
                .ok_or("kernels: the driver made no pipeline")?;
        let _pipeline = OnDrop(|| unsafe { device.destroy_pipeline(pipeline, None) });
        unsafe { self.read_executables(pipeline) }
    }

    /// What the driver says of every executable of `pipeline` (a compute pipeline has one).
    ///
    /// # Safety
    /// `pipeline` was created on this device with statistics and internal representations
    /// captured.
    unsafe fn read_executables(&self, pipeline: vk::Pipeline) -> Result<Compiled, String> {
        let mut compiled = Compiled::default();
        let Some(reader) = &self.executables else {
            return Ok(compiled);
        };
        let executables = unsafe {
            reader.get_pipeline_executable_properties(
                &vk::PipelineInfoKHR::default().pipeline(pipeline),
            )
        }
        .map_err(vk_error("executables"))?;
        for index in 0..executables.len() as u32 {
            let info = vk::PipelineExecutableInfoKHR::default()
                .pipeline(pipeline)
                .executable_index(index);
            let statistics = unsafe { reader.get_pipeline_executable_statistics(&info) }
                .map_err(vk_error("statistics"))?;
            for statistic in statistics {
                let name = statistic
                    .name_as_c_str()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // SAFETY: `format` says which member of the union the driver wrote.
                let value = unsafe {
                    match statistic.format {
                        vk::PipelineExecutableStatisticFormatKHR::BOOL32 => {
                            (statistic.value.b32 == vk::TRUE).to_string()
                        }
                        vk::PipelineExecutableStatisticFormatKHR::INT64 => {
                            statistic.value.i64.to_string()
                        }
                        vk::PipelineExecutableStatisticFormatKHR::UINT64 => {
                            statistic.value.u64.to_string()
                        }
                        vk::PipelineExecutableStatisticFormatKHR::FLOAT64 => {
                            format!("{:.3}", statistic.value.f64)
                        }
                        other => format!("{other:?}"),
                    }
                };
                compiled.statistics.push((name, value));
            }
            // The statistics matter most: a driver that will not hand its representations
            // over still has them printed, with why beside them.
            match unsafe { internal_representations(reader, &info) } {
                Ok(found) => compiled.representations.extend(found),
                Err(e) => compiled
                    .statistics
                    .push(("internal representations".into(), e)),
            }
        }
        Ok(compiled)
    }
}

/// The internal representations of executable `info` (name, bytes; text without its final
/// NUL): asked for their sizes first, then for their contents.
///
/// # Safety
/// `info` names an executable of a pipeline created on `reader`'s device with internal
/// representations captured.
unsafe fn internal_representations(
    reader: &ash::khr::pipeline_executable_properties::Device,
    info: &vk::PipelineExecutableInfoKHR<'_>,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let read = reader
        .fp()
        .get_pipeline_executable_internal_representations_khr;
    let mut count = 0u32;
    unsafe { read(reader.device(), info, &mut count, std::ptr::null_mut()) }
        .result()
        .map_err(vk_error("internal representations"))?;
    let mut found =
        vec![vk::PipelineExecutableInternalRepresentationKHR::default(); count as usize];
    // With `p_data` null, each `data_size` comes back: the bytes to make room for.
    unsafe { read(reader.device(), info, &mut count, found.as_mut_ptr()) }
        .result()
        .map_err(vk_error("internal representation sizes"))?;
    let mut contents: Vec<Vec<u8>> = found.iter().map(|r| vec![0u8; r.data_size]).collect();
    for (representation, bytes) in found.iter_mut().zip(&mut contents) {
        representation.p_data = bytes.as_mut_ptr().cast();
    }
    // VK_INCOMPLETE: a representation larger than its size said; what fitted is kept.
    match unsafe { read(reader.device(), info, &mut count, found.as_mut_ptr()) } {
        vk::Result::SUCCESS | vk::Result::INCOMPLETE => {}
        e => return Err(vk_error("internal representation contents")(e)),
    }
    Ok(found
        .iter()
        .zip(contents)
        .map(|(representation, mut bytes)| {
            if representation.is_text == vk::TRUE && bytes.last() == Some(&0) {
                bytes.pop();
            }
            let name = representation
                .name_as_c_str()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, bytes)
        })
        .collect())
}

/// Workgroups of `threads` invocations using `registers` registers each and `shared` bytes
/// of workgroup memory that fit on one compute unit of an NVIDIA Hopper GPU (65 536
/// registers allocated 256 per warp, 2 048 threads, 32 workgroups, 228 KiB of shared memory
/// with 1 KiB reserved per workgroup): an estimate, as CUDA's occupancy calculator makes it.
fn nvidia_workgroups_per_sm(registers: u32, threads: u32, shared: u32) -> u32 {
    let warps = threads.div_ceil(32).max(1);
    let per_warp = (registers.max(1) * 32).div_ceil(256) * 256;
    let by_registers = 65_536 / (per_warp * warps);
    let by_threads = 2048 / (warps * 32);
    let by_shared = (228 * 1024) / (shared + 1024);
    by_registers.min(by_threads).min(by_shared).min(32)
}

#[cfg(test)]
mod tests {
    use super::nvidia_workgroups_per_sm;

    #[test]
    fn occupancy_follows_registers_threads_and_shared_memory() {
        // 256 threads at 128 registers fill half the register file each.
        assert_eq!(nvidia_workgroups_per_sm(128, 256, 16384), 2);
        assert_eq!(nvidia_workgroups_per_sm(129, 256, 16384), 1);
        assert_eq!(nvidia_workgroups_per_sm(32, 64, 0), 32);
        assert_eq!(nvidia_workgroups_per_sm(32, 1024, 0), 2);
        assert_eq!(nvidia_workgroups_per_sm(16, 64, 100 * 1024), 2);
    }
}
