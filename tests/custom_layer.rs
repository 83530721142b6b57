//! A layer defined outside the crate, as an application would: `Scale`, a learned gain per
//! feature (`y = x ⊙ s`), with its own WGSL kernel recorded through the public context on
//! the GPU and a plain ndarray twin on the CPU. A model containing it trains in lockstep on
//! both backends, and on the GPU its steps still create nothing and submit once.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;

use common::own_gpu;
use ndarray::{Array2, Axis};
use rand::rngs::StdRng;
use steepest::nn::{Backward, Forward, Layer, ParamSpec, Sequential};
use steepest::{
    Activation, Adam, Backend, CpuBackend, Dataset, GpuBackend, GpuMatrix, Init, Linear, Loss,
    Session, Trainer,
};

const SCALE_WGSL: &str = r#"
// y = x ⊙ s (forward); dx = g ⊙ s and prod = g ⊙ x (backward). s is one gain per column.
struct Params { len: u32, cols: u32, x: u32, s: u32, g: u32, out: u32, prod: u32, _pad: u32 }
var<immediate> params: Params;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> prod: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i < params.len) {
        out[params.out + i] = x[params.x + i] * s[params.s + i % params.cols];
    }
}

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i < params.len) {
        let grad = g[params.g + i];
        out[params.out + i] = grad * s[params.s + i % params.cols];
        prod[params.prod + i] = grad * x[params.x + i];
    }
}
"#;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    cols: u32,
    x: u32,
    s: u32,
    g: u32,
    out: u32,
    prod: u32,
    _pad: u32,
}

/// What the GPU side builds once: the two pipelines, their layout, and a bind group per set
/// of buffers seen (a training loop sees the same few again and again).
struct GpuParts {
    forward: wgpu::ComputePipeline,
    backward: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    groups: HashMap<Vec<wgpu::Buffer>, wgpu::BindGroup>,
}

/// A learned gain per feature, initially 1 (a parameter named `weight`, as PyTorch would
/// name it).
#[derive(Debug)]
struct Scale {
    width: usize,
    gpu: Mutex<Option<GpuParts>>,
}

impl std::fmt::Debug for GpuParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GpuParts")
    }
}

impl Scale {
    fn new(width: usize) -> Self {
        Self {
            width,
            gpu: Mutex::new(None),
        }
    }

    /// Records `entry` (0 forward, 1 backward) over `[x, s, g, out, prod]`.
    fn dispatch(&self, backend: &GpuBackend, entry: usize, m: [&GpuMatrix; 5]) {
        let ctx = backend.context();
        let mut parts = self.gpu.lock().unwrap();
        let parts = parts.get_or_insert_with(|| {
            let module = ctx.shader_module("scale.wgsl", SCALE_WGSL).unwrap();
            let device = ctx.device();
            let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            };
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("scale"),
                entries: &[
                    storage(0, true),
                    storage(1, true),
                    storage(2, true),
                    storage(3, false),
                    storage(4, false),
                ],
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("scale"),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: size_of::<Params>() as u32,
            });
            let pipeline = |entry| {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            };
            GpuParts {
                forward: pipeline("forward"),
                backward: pipeline("backward"),
                layout,
                groups: HashMap::new(),
            }
        });
        let key: Vec<wgpu::Buffer> = m.iter().map(|m| m.buffer().raw().clone()).collect();
        let layout = &parts.layout;
        let group = parts.groups.entry(key).or_insert_with(|| {
            let entries: Vec<wgpu::BindGroupEntry> = m
                .iter()
                .enumerate()
                .map(|(i, m)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: m.buffer().raw().as_entire_binding(),
                })
                .collect();
            ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("scale"),
                layout,
                entries: &entries,
            })
        });
        let (rows, cols) = steepest::Matrix::shape(m[3]);
        let params = Params {
            len: (rows * cols) as u32,
            cols: cols as u32,
            x: m[0].offset() as u32,
            s: m[1].offset() as u32,
            g: m[2].offset() as u32,
            out: m[3].offset() as u32,
            prod: m[4].offset() as u32,
            _pad: 0,
        };
        let pipeline = if entry == 0 {
            &parts.forward
        } else {
            &parts.backward
        };
        ctx.record_compute(|pass| {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &*group, &[]);
            pass.set_immediates(0, bytemuck::bytes_of(&params));
            pass.dispatch_workgroups((rows * cols).div_ceil(64) as u32, 1, 1);
        })
        .unwrap();
    }
}

/// What both backends' impls share: shapes, the parameter, its initial value.
macro_rules! scale_common {
    () => {
        fn describe(&self) -> String {
            format!("scale({})", self.width)
        }
        fn inputs(&self) -> usize {
            self.width
        }
        fn outputs(&self) -> usize {
            self.width
        }
        fn parameters(&self) -> Vec<ParamSpec> {
            vec![ParamSpec::vector("weight", self.width)]
        }
        fn initial_values(&self, _: Init, _: &mut StdRng) -> Vec<f32> {
            vec![1.0; self.width]
        }
        fn saved_shapes(&self, rows: usize) -> Vec<(usize, usize)> {
            vec![(rows, self.width), (rows, self.width)] // g ⊙ x, and a spare ∂x
        }
    };
}

impl Layer<GpuBackend> for Scale {
    scale_common!();

    fn forward(&self, backend: &GpuBackend, pass: Forward<'_, GpuBackend>) -> steepest::Result<()> {
        let [prod, _] = pass.saved else {
            unreachable!()
        };
        let x = pass.input;
        self.dispatch(backend, 0, [x, &pass.params[0], x, pass.output, prod]);
        Ok(())
    }

    fn backward(
        &self,
        backend: &GpuBackend,
        pass: Backward<'_, GpuBackend>,
    ) -> steepest::Result<()> {
        let [prod, spare] = pass.saved else {
            unreachable!()
        };
        let s = &pass.params[0];
        match pass.grad_input {
            Some(mut below) => {
                self.dispatch(
                    backend,
                    1,
                    [pass.input, s, pass.grad_output, below.grad, prod],
                );
                below.apply_activation(backend)?;
            }
            None => self.dispatch(backend, 1, [pass.input, s, pass.grad_output, spare, prod]),
        }
        backend.column_sum_into(prod, &mut pass.grad_params[0])
    }
}

impl Layer<CpuBackend> for Scale {
    scale_common!();

    fn forward(&self, _: &CpuBackend, pass: Forward<'_, CpuBackend>) -> steepest::Result<()> {
        pass.output.assign(&(pass.input * &pass.params[0]));
        Ok(())
    }

    fn backward(
        &self,
        backend: &CpuBackend,
        pass: Backward<'_, CpuBackend>,
    ) -> steepest::Result<()> {
        let s = &pass.params[0];
        pass.grad_params[0].assign(
            &(pass.grad_output * pass.input)
                .sum_axis(Axis(0))
                .insert_axis(Axis(0)),
        );
        if let Some(mut below) = pass.grad_input {
            below.grad.assign(&(pass.grad_output * s));
            below.apply_activation(backend)?;
        }
        Ok(())
    }
}

fn model<B: Backend>(backend: &B) -> Sequential<B>
where
    Scale: Layer<B>,
{
    let layers: Vec<Box<dyn Layer<B>>> = vec![
        Box::new(Linear::new(2, 16).with_activation(Activation::Tanh)),
        Box::new(Scale::new(16)),
        Box::new(Linear::new(16, 1)),
    ];
    Sequential::new(backend, layers, Init::default(), 4).unwrap()
}

fn data() -> Dataset {
    let x = Array2::from_shape_fn((96, 2), |(i, j)| ((i * 5 + j * 11) % 17) as f32 / 8.0 - 1.0);
    let y = Array2::from_shape_fn((96, 1), |(i, _)| (2.0 * x[[i, 0]]).sin() * x[[i, 1]]);
    Dataset::regression(x, y).unwrap()
}

#[test]
fn a_custom_layer_trains_in_lockstep_on_both_backends() {
    let gpu = own_gpu();
    let (mut on_cpu, mut on_gpu) = (model(&CpuBackend), model(&gpu));
    assert_eq!(
        on_cpu.tensor_names()[2],
        "1.weight",
        "the layer's own parameter name"
    );
    let trainer = Trainer::new(Adam::default().lr(0.02), Loss::MeanSquaredError)
        .batch_size(32)
        .epochs(5);
    let a = trainer
        .fit(&CpuBackend, &mut on_cpu, &data(), None)
        .unwrap();
    let b = trainer.fit(&gpu, &mut on_gpu, &data(), None).unwrap();
    let (p, q) = (
        on_cpu.parameters_flat(&CpuBackend).unwrap(),
        on_gpu.parameters_flat(&gpu).unwrap(),
    );
    let worst = common::max_abs_diff(&p, &q);
    assert!(
        worst < 1e-4,
        "parameters differ by up to {worst} after 15 steps"
    );
    // The gains moved: the custom layer's gradient reached the optimizer.
    assert!(
        p[2 * 16 + 16..2 * 16 + 32]
            .iter()
            .any(|&s| (s - 1.0).abs() > 1e-3)
    );
    let (first, last) = (a.epochs[0].loss, a.epochs[4].loss);
    assert!(last < first, "the loss falls: {first} → {last}");
    assert!((b.epochs[4].loss - last).abs() < 1e-4 * last.max(1.0));
}

#[test]
fn a_custom_layer_keeps_the_step_free_of_creations_and_one_submit() {
    let gpu = own_gpu();
    let mut net = model(&gpu);
    let trainer = Trainer::new(Adam::default(), Loss::MeanSquaredError).batch_size(32);
    let data = data();
    let mut session = Session::new(&trainer, &gpu, &mut net, &data, None).unwrap();
    for _ in 0..4 {
        session.step().unwrap(); // first steps build pipelines and bind groups
    }
    let before = gpu.context().counters();
    for _ in 0..12 {
        session.step().unwrap();
    }
    let after = gpu.context().counters();
    assert_eq!(after.buffers_created, before.buffers_created);
    assert_eq!(after.bind_groups_created, before.bind_groups_created);
    assert_eq!(after.submits - before.submits, 12, "one submit per step");
}
