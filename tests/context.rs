//! The GPU context: adapter selection, limits, the pipeline cache, and errors through scopes.

mod common;

use common::gpu;
use ndarray::Array2;
use steepest::wgpu;
use steepest::{Activation, Backend, Error, GpuContext, GpuOptions, Matmul};

#[test]
fn exposes_the_adapter_name_and_backend() {
    let ctx = gpu().context();
    assert!(!ctx.adapter_name().is_empty());
    assert_eq!(ctx.adapter_info().name, ctx.adapter_name());
    assert_eq!(ctx.backend(), ctx.adapter_info().backend);
    assert!(gpu().describe().contains(ctx.adapter_name()));
}

#[test]
fn device_gets_the_adapters_real_limits() {
    let ctx = gpu().context();
    // Open the same adapter directly and compare: the device must carry its full limits.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    let same = adapters
        .into_iter()
        .find(|a| a.get_info() == *ctx.adapter_info())
        .expect("the context's adapter is enumerable");
    assert_eq!(*ctx.limits(), same.limits());
    assert_eq!(ctx.device().limits(), same.limits());
}

#[test]
fn a_missing_adapter_is_an_error_that_names_the_fix() {
    let options = GpuOptions {
        adapter_name: Some("no adapter is called this".into()),
        ..GpuOptions::default()
    };
    let err = GpuContext::with_options(&options).unwrap_err();
    assert!(matches!(err, Error::NoAdapter { .. }), "{err:?}");
    // `fn main() -> steepest::Result<()>` prints the error's Debug form: it is the message.
    assert_eq!(format!("{err:?}"), err.to_string());
    let message = err.to_string();
    for needle in [
        "mesa-vulkan-drivers",
        "CpuBackend",
        "no adapter is called this",
    ] {
        assert!(
            message.contains(needle),
            "message lacks {needle:?}: {message}"
        );
    }

    // Same when the backend filter leaves nothing to search.
    let options = GpuOptions {
        backends: wgpu::Backends::empty(),
        ..GpuOptions::default()
    };
    assert!(matches!(
        GpuContext::with_options(&options),
        Err(Error::NoAdapter { .. })
    ));
}

#[test]
fn an_adapter_name_filter_selects_by_substring() {
    let name = gpu().context().adapter_name().to_string();
    let fragment: String = name.chars().take(4).collect::<String>().to_uppercase();
    let options = GpuOptions {
        adapter_name: Some(fragment),
        ..GpuOptions::default()
    };
    let ctx = GpuContext::with_options(&options).unwrap();
    assert_eq!(ctx.adapter_name(), name);
}

#[test]
fn options_follow_wgpus_environment_variables() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(
        GpuOptions::from_vars(vars(&[])).unwrap(),
        GpuOptions::default()
    );
    assert!(
        !GpuOptions::default().shader_checks,
        "kernels are trusted by default"
    );
    let options = GpuOptions::from_vars(vars(&[
        ("WGPU_BACKEND", "vulkan,metal"),
        ("WGPU_ADAPTER_NAME", "llvmpipe"),
        ("WGPU_POWER_PREF", "low"),
        ("STEEPEST_SHADER_CHECKS", "1"),
        ("STEEPEST_MAX_DISPATCHES_IN_FLIGHT", " 64 "),
        ("STEEPEST_PROFILE", "yes"),
        ("STEEPEST_SPIN_WAIT", "on"),
        ("STEEPEST_MAX_STORAGE_BINDING", "1048576"),
    ]))
    .unwrap();
    assert_eq!(options.max_storage_binding, Some(1 << 20));
    assert_eq!(GpuOptions::default().max_storage_binding, None);
    assert!(options.shader_checks);
    assert!(options.profile);
    assert!(!GpuOptions::default().profile, "no profiling by default");
    assert!(options.spin_wait);
    assert!(!GpuOptions::default().spin_wait, "waits sleep by default");
    assert_eq!(options.max_dispatches_in_flight, 64);
    assert_eq!(
        GpuOptions::default().max_dispatches_in_flight,
        steepest::backend::gpu::DEFAULT_MAX_DISPATCHES_IN_FLIGHT
    );
    assert_eq!(
        options.backends,
        wgpu::Backends::VULKAN | wgpu::Backends::METAL
    );
    assert_eq!(options.adapter_name.as_deref(), Some("llvmpipe"));
    assert_eq!(options.power_preference, wgpu::PowerPreference::LowPower);
    let options = GpuOptions::from_vars(vars(&[
        ("WGPU_POWER_PREF", "none"),
        ("WGPU_BACKEND", "dx12"),
        ("STEEPEST_SHADER_CHECKS", "off"),
    ]))
    .unwrap();
    assert!(!options.shader_checks);
    // A value that is set but not understood is an error naming the variable, the value and
    // what is accepted; never a silent default.
    for (variable, value, accepted) in [
        ("WGPU_BACKEND", "nonsense", "vulkan"),
        ("WGPU_POWER_PREF", "fastest", "high, low or none"),
        ("STEEPEST_SHADER_CHECKS", "maybe", "1, true"),
        ("STEEPEST_PROFILE", "sometimes", "0, false"),
        ("STEEPEST_SPIN_WAIT", "fast", "1, true"),
        ("STEEPEST_MAX_DISPATCHES_IN_FLIGHT", "-1", "0 or more"),
        ("STEEPEST_MAX_DISPATCHES_IN_FLIGHT", "lots", "whole number"),
        ("STEEPEST_MAX_STORAGE_BINDING", "1024", "65536 or more"),
        (
            "STEEPEST_MAX_STORAGE_BINDING",
            "big",
            "whole number of bytes",
        ),
    ] {
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(vec![(variable, value)].into_boxed_slice());
        let message = GpuOptions::from_vars(vars(pairs)).unwrap_err().to_string();
        for part in [variable, value, accepted] {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
    }
    assert_eq!(options.power_preference, wgpu::PowerPreference::None);
    assert_eq!(options.backends, wgpu::Backends::DX12);
}

#[test]
fn pipelines_are_built_once_per_specialisation() {
    // A private context, so other tests' pipelines do not disturb the count.
    let gpu = steepest::GpuBackend::with_context(GpuContext::new().unwrap());
    let a = gpu.upload(Array2::<f32>::ones((5, 6)).view()).unwrap();
    let b = gpu.upload(Array2::<f32>::ones((6, 7)).view()).unwrap();
    assert_eq!(gpu.context().pipeline_count(), 0);
    gpu.matmul(Matmul::nn(), &a, &b, None).unwrap();
    gpu.matmul(Matmul::nn(), &a, &b, None).unwrap();
    assert_eq!(
        gpu.context().pipeline_count(),
        1,
        "the same specialisation was rebuilt"
    );
    gpu.matmul(Matmul::nn().activation(Activation::Relu), &a, &b, None)
        .unwrap();
    assert_eq!(
        gpu.context().pipeline_count(),
        2,
        "a new activation needs its own pipeline"
    );
}

#[test]
fn built_kernels_list_each_pipeline_with_its_source_and_overrides() {
    let gpu = steepest::GpuBackend::with_context(GpuContext::new().unwrap());
    assert!(gpu.context().built_kernels().is_empty());
    let a = gpu.upload(Array2::<f32>::ones((5, 6)).view()).unwrap();
    let w = gpu.upload(Array2::<f32>::ones((7, 6)).view()).unwrap();
    let bias = gpu.upload(Array2::<f32>::ones((1, 7)).view()).unwrap();
    gpu.matmul(Matmul::nt(), &a, &w, None).unwrap();
    gpu.matmul(
        Matmul::nt().activation(Activation::Relu),
        &a,
        &w,
        Some(&bias),
    )
    .unwrap();
    let built = gpu.context().built_kernels();
    assert_eq!(built.len(), gpu.context().pipeline_count());
    assert_eq!(built.len(), 2, "{built:#?}");
    let value = |k: &steepest::backend::gpu::BuiltKernel, name: &str| {
        k.override_value(name)
            .unwrap_or_else(|| panic!("{name} missing from {:?}", k.overrides))
    };
    for kernel in &built {
        assert_eq!((kernel.shader, kernel.entry), ("matmul.wgsl", "matmul"));
        assert!(kernel.source.contains("fn matmul("));
        assert_eq!(value(kernel, "TRANS_B"), 1.0);
        assert!(kernel.immediate_size > 0);
        assert!(
            kernel
                .bindings
                .contains(&steepest::backend::gpu::KernelBinding::ReadWrite)
        );
        assert_eq!(kernel.checked, gpu.context().options().shader_checks);
    }
    // Listed in a stable order: by overrides, the plain product before the fused one.
    let fused: Vec<f64> = built.iter().map(|k| value(k, "HAS_BIAS")).collect();
    assert_eq!(fused, [0.0, 1.0]);
    assert_eq!(value(&built[1], "ACTIVATION"), 1.0);
    assert_eq!(built, gpu.context().built_kernels());
}

#[test]
fn invalid_wgsl_is_a_shader_error_naming_the_shader() {
    let ctx = gpu().context();
    let err = ctx.shader_module("broken.wgsl", "fn f( {").unwrap_err();
    match &err {
        Error::Shader { name, message } => {
            assert_eq!(name, "broken.wgsl");
            assert!(!message.is_empty());
        }
        other => panic!("expected Error::Shader, got {other:?}"),
    }
    // Parses, but fails validation (a type error): caught by the validation scope too.
    let err = ctx
        .shader_module(
            "mistyped.wgsl",
            "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }",
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Shader { ref name, .. } if name == "mistyped.wgsl"),
        "{err:?}"
    );
    // The context is still usable afterwards.
    let ok = ctx.shader_module("fine.wgsl", "@compute @workgroup_size(1) fn main() {}");
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn spinning_waits_end_with_the_work_done() {
    use rand::SeedableRng;
    gpu(); // fails with the message that names the fix when there is no adapter
    let open = |spin_wait| {
        let options = GpuOptions {
            spin_wait,
            ..GpuOptions::from_env().unwrap()
        };
        steepest::GpuBackend::with_context(GpuContext::with_options(&options).unwrap())
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let a = common::random_matrix(&mut rng, 256, 1024, 1.0);
    let b = common::random_matrix(&mut rng, 1024, 256, 1.0);
    let mut products = Vec::new();
    for spin_wait in [true, false] {
        let g = open(spin_wait);
        let ctx = g.context();
        assert_eq!(ctx.options().spin_wait, spin_wait);
        // A wait with nothing submitted returns.
        ctx.wait().unwrap();
        let (ga, gb) = (g.upload(a.view()).unwrap(), g.upload(b.view()).unwrap());
        let before = ctx.counters();
        // Recorded, then read back at once (a product still running on lavapipe when the
        // wait begins, so a spinning wait polls): the readback's wait covers the product and the
        // copy after it; then a wait with nothing left in flight.
        let product = g
            .download(&g.matmul(Matmul::nn(), &ga, &gb, None).unwrap())
            .unwrap();
        ctx.wait().unwrap();
        assert_eq!(
            ctx.counters().waits - before.waits,
            2,
            "spin_wait {spin_wait}"
        );
        products.push(product);
    }
    let expected = a.dot(&b);
    for (product, spin_wait) in products.iter().zip([true, false]) {
        let worst = common::max_abs_diff(product, &expected);
        assert!(worst < 1e-3, "spin_wait {spin_wait}: off by {worst}");
    }
    assert!(common::bit_identical(&products[0], &products[1]));
}

#[test]
fn waits_are_counted() {
    let gpu = gpu();
    let ctx = gpu.context();
    let before = ctx.waits();
    ctx.wait().unwrap();
    let m = gpu.upload(Array2::<f32>::ones((2, 2)).view()).unwrap();
    gpu.download(&m).unwrap();
    // Other tests share the context and may wait concurrently: at least our two happened.
    assert!(ctx.waits() >= before + 2);
}
