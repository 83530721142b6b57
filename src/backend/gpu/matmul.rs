//! Host side of `shaders/matmul.wgsl`: checks, the tile configuration for the shape, and
//! dispatch (with a fixed-order reduction when K is split).

use super::GpuMatrix;
use super::context::{GpuContext, lock};
use super::dispatch::{
    bound, check_bindings, check_no_alias, folded_grid, offset_in, striding_groups, to_u32,
};
use super::kernel::{Binding, Kernel};
use super::reduce::column_sum_block_rows;
use super::sites::{Dispatch, Step};
use super::tiling::{Tiling, check_tiling};
use super::transpose::Planned;
use crate::backend::{Activation, Matmul, Matrix, column_sum_dims, matmul_dims};
use crate::error::{Error, Result};

const MATMUL: Kernel = Kernel {
    shader: "matmul.wgsl",
    source: concat!(
        include_str!("../../../shaders/activation.wgsl"),
        include_str!("../../../shaders/matmul.wgsl")
    ),
    entry: "matmul",
    bindings: &[
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadOnly,
    ],
    groups: 1,
    immediate_size: size_of::<Params>() as u32,
};
const MATMUL_REDUCE: Kernel = Kernel {
    entry: "matmul_reduce",
    ..MATMUL
};

/// The shader's `Params`, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_offset: u32,
    b_offset: u32,
    bias_offset: u32,
    c_offset: u32,
    tiles_n: u32,
    tiles: u32,
    k_per_split: u32,
    splits: u32,
    groups_x: u32,
    act_offset: u32,
    sums_offset: u32,
    sum_block_rows: u32,
    _pad: u32,
}

// Every adapter steepest opens offers at least this much immediate data.
const _: () = assert!(size_of::<Params>() as u32 <= super::context::MIN_IMMEDIATE_SIZE);

/// `out ← act(op(a) · op(b) + bias)` on the GPU: the twin of [`crate::backend::cpu::matmul`],
/// with the tiling [`Tiling::choose`] picks for the shape.
///
/// Records into the context's pending work (see [`GpuContext::flush`]).
pub fn matmul(
    ctx: &GpuContext,
    spec: Matmul,
    a: &GpuMatrix,
    b: &GpuMatrix,
    bias: Option<&GpuMatrix>,
    out: &GpuMatrix,
) -> Result<()> {
    matmul_tiled(ctx, spec, None, a, b, bias, out)
}

/// What a product's dispatch computes beside `act(op(a) · op(b) + bias)`.
#[derive(Clone, Copy, Default)]
pub(super) struct Fused<'a> {
    /// The result multiplied by act'(·) of this activation's output
    /// ([`matmul_activation_backward`]).
    pub derivative: Option<(Activation, &'a GpuMatrix)>,
    /// Σ_k op(A)[m, k] into this 1×M view of the output's buffer
    /// ([`super::linear_grads`]).
    pub bias_grad: Option<&'a GpuMatrix>,
}

/// [`matmul`] with the tiling given (`None`: chosen from the shape). Every tiling computes the
/// same product; this exists to compare and test them.
pub fn matmul_tiled(
    ctx: &GpuContext,
    spec: Matmul,
    tiling: Option<Tiling>,
    a: &GpuMatrix,
    b: &GpuMatrix,
    bias: Option<&GpuMatrix>,
    out: &GpuMatrix,
) -> Result<()> {
    record(
        "matmul",
        ctx,
        spec,
        tiling,
        (a, b, bias),
        Fused::default(),
        out,
    )
}

/// `out ← (op(a) · op(b)) ⊙ act'(·)` where `output` (shaped as `out`) is what `activation`
/// produced: the gradient through a layer's weights and the activation below it in one
/// kernel, the twin of a [`crate::backend::cpu::matmul`] followed by
/// [`crate::backend::cpu::activation_backward`]. `spec`'s own activation must be identity.
pub fn matmul_activation_backward(
    ctx: &GpuContext,
    spec: Matmul,
    a: &GpuMatrix,
    b: &GpuMatrix,
    activation: Activation,
    output: &GpuMatrix,
    out: &GpuMatrix,
) -> Result<()> {
    let op = "matmul_activation_backward";
    crate::backend::fused_backward_dims(spec, output.shape(), out.shape())?;
    record(
        op,
        ctx,
        spec,
        None,
        (a, b, None),
        Fused {
            derivative: Some((activation, output)),
            bias_grad: None,
        },
        out,
    )
}

/// The tiling [`Tiling::choose`] picks for an `m × n` product over `k` on this context,
/// looked up in the context's memo.
pub(super) fn chosen_tiling(ctx: &GpuContext, (m, n, k): (usize, usize, usize)) -> Tiling {
    *lock(&ctx.tilings)
        .entry((m, n, k))
        .or_insert_with(|| Tiling::choose(m, n, k, ctx.max_partials()))
}

/// Where the K-contiguous operands of an `m × n` over `k` product go when they are transposed
/// first (see [`Tiling::pretranspose`]): views of the context's scratch, K-major, for A
/// (without `trans_a`) and B (with `trans_b`), and the spec that multiplies them there. A
/// product with neither (TN) needs no scratch and gets none.
fn pretransposed(
    op: &'static str,
    ctx: &GpuContext,
    mut spec: Matmul,
    (m, n, k): (usize, usize, usize),
) -> Result<(Matmul, Option<GpuMatrix>, Option<GpuMatrix>)> {
    let (transpose_a, transpose_b) = (!spec.trans_a, spec.trans_b);
    if !transpose_a && !transpose_b {
        return Ok((spec, None, None));
    }
    // A multiple of 4 keeps op(B)'s rows on 16-byte boundaries, for vec4 loads.
    let align = (ctx.limits().min_storage_buffer_offset_alignment as usize / 4).max(4);
    let max = ctx.max_partials();
    let a_len = if transpose_a {
        m.checked_mul(k)
    } else {
        Some(0)
    };
    let b_start = a_len.and_then(|len| len.checked_next_multiple_of(align));
    let b_len = if transpose_b {
        k.checked_mul(n)
    } else {
        Some(0)
    };
    let fits = b_start
        .zip(b_len)
        .and_then(|(start, len)| start.checked_add(len))
        .filter(|&len| len <= max);
    let (Some(len), Some(b_start)) = (fits, b_start) else {
        return Err(Error::Shape {
            op,
            detail: format!(
                "{m}×{n} over K = {k} transposed first needs more scratch than one binding \
                 holds ({max} elements); use a tiling without pretranspose"
            ),
        });
    };
    let scratch = ctx.scratch(len)?;
    let a = match transpose_a {
        false => None,
        true => {
            spec.trans_a = true;
            Some(GpuMatrix::view(scratch.clone(), 0, k, m)?)
        }
    };
    let b = match transpose_b {
        false => None,
        true => {
            spec.trans_b = false;
            Some(GpuMatrix::view(scratch, b_start, k, n)?)
        }
    };
    Ok((spec, a, b))
}

/// Records one product: checks, tiling, the pipelines and the dispatch.
pub(super) fn record(
    op: &'static str,
    ctx: &GpuContext,
    spec: Matmul,
    tiling: Option<Tiling>,
    (a, b, bias): (&GpuMatrix, &GpuMatrix, Option<&GpuMatrix>),
    fused: Fused<'_>,
    out: &GpuMatrix,
) -> Result<()> {
    let Fused {
        derivative,
        bias_grad,
    } = fused;
    let dims = matmul_dims(
        spec,
        a.shape(),
        b.shape(),
        bias.map(Matrix::shape),
        out.shape(),
    )?;
    let mut inputs = [a; 4];
    let mut count = 2;
    for input in [bias, derivative.map(|d| d.1)].into_iter().flatten() {
        inputs[count] = input;
        count += 1;
    }
    let inputs = &inputs[..count];
    check_no_alias(op, out, inputs)?;
    check_bindings(ctx, op, inputs)?;
    check_bindings(ctx, op, &[out])?;
    let (m, n, k) = (dims.m, dims.n, dims.k);
    if let Some(sums) = bias_grad {
        // The sums read op(A) as stored K×M and go to the output's buffer.
        column_sum_dims(a.shape(), sums.shape())?;
        if !spec.trans_a || sums.buffer().raw() != out.buffer().raw() {
            return Err(Error::Gpu {
                op,
                message: "a fused bias gradient needs a transposed A and the output's buffer"
                    .into(),
            });
        }
    }
    let outputs = to_u32(op, "M·N", m.saturating_mul(n))? as usize;
    let max_partials = ctx.max_partials();
    let tiling = match tiling {
        Some(t) => check_tiling(op, t, k, outputs, max_partials)?,
        None => chosen_tiling(ctx, (m, n, k)),
    };
    // With pretranspose, the K-contiguous operands are transposed into scratch first, and
    // the product reads them there.
    let (spec, staged_a, staged_b) = match tiling.pretranspose {
        true => pretransposed(op, ctx, spec, (m, n, k))?,
        false => (spec, None, None),
    };
    // Both operands transposed (NT): one dispatch for the two where both move whole vec4s.
    let pair = match (&staged_a, &staged_b) {
        (Some(ta), Some(tb)) => Planned::pair(ctx, (a, ta), (b, tb))?,
        _ => None,
    };
    let (transpose_a, transpose_b) = match pair {
        Some(pair) => (Some(pair), None),
        None => (
            (staged_a.as_ref())
                .map(|t| Planned::new(ctx, a, t))
                .transpose()?,
            (staged_b.as_ref())
                .map(|t| Planned::new(ctx, b, t))
                .transpose()?,
        ),
    };
    let a = staged_a.as_ref().unwrap_or(a);
    let b = staged_b.as_ref().unwrap_or(b);
    let split = tiling.splits > 1;
    let shape = tiling.tile.shape();
    // With a bias gradient, one invocation per sum in workgroups after the product's.
    let sum_groups = match bias_grad {
        Some(_) => m.div_ceil((shape.wg_x * shape.wg_y) as usize),
        None => 0,
    };
    let sum_block_rows = match bias_grad {
        Some(_) => column_sum_block_rows(
            k,
            m,
            ctx.limits().max_compute_workgroups_per_dimension.max(1) as usize,
            max_partials,
        ),
        None => 0,
    };
    let workgroups = tiling.workgroups(m, n).saturating_add(sum_groups);
    let [groups_x, groups_y] =
        folded_grid(ctx, op, workgroups, || format!("{m}×{n} over K = {k}"))?;
    let (ab, bb) = (bound(ctx, op, &[a])?, bound(ctx, op, &[b])?);
    let bias_b = bias.map(|v| bound(ctx, op, &[v])).transpose()?;
    // The bias gradient's sums go to the output's binding.
    let cb = match bias_grad {
        Some(sums) => bound(ctx, op, &[out, sums])?,
        None => bound(ctx, op, &[out])?,
    };
    let act_b = derivative.map(|d| bound(ctx, op, &[d.1])).transpose()?;
    let params = Params {
        m: to_u32(op, "M", m)?,
        n: to_u32(op, "N", n)?,
        k: to_u32(op, "K", k)?,
        a_offset: ab.offset(op, "a offset", a)?,
        b_offset: bb.offset(op, "b offset", b)?,
        bias_offset: offset_in(op, "bias offset", bias_b.zip(bias))?,
        c_offset: cb.offset(op, "output offset", out)?,
        tiles_n: to_u32(op, "tile columns", n.div_ceil(tiling.tile.cols()))?,
        tiles: to_u32(op, "tiles", tiling.tile.count(m, n))?,
        k_per_split: to_u32(op, "K per slice", tiling.k_per_split)?,
        splits: to_u32(op, "K slices", tiling.splits)?,
        groups_x,
        act_offset: offset_in(
            op,
            "activation output offset",
            act_b.zip(derivative.map(|d| d.1)),
        )?,
        sums_offset: match bias_grad {
            Some(sums) => cb.offset(op, "bias gradient offset", sums)?,
            None => 0,
        },
        sum_block_rows: to_u32(op, "rows per block", sum_block_rows)?,
        _pad: 0,
    };

    // A whole vec4 load needs the stored rows to start on 16-byte boundaries.
    let vec4_ok = |m: &GpuMatrix| m.shape().1.is_multiple_of(4) && m.offset().is_multiple_of(4);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let epilogue = [
        ("HAS_BIAS", flag(bias.is_some())),
        ("ACTIVATION", f64::from(spec.activation.shader_code())),
        ("SPLIT", flag(split)),
        ("DERIVATIVE", flag(derivative.is_some())),
        (
            "DERIVATIVE_OF",
            f64::from(derivative.map_or(0, |d| d.0.shader_code())),
        ),
    ];
    let [e0, e1, e2, e3, e4] = epilogue;
    // No edge checks on the loads and stores where there are no edges.
    let all_inside = tiling.fills(m, n, k) && vec4_ok(a) && vec4_ok(b);
    let overrides = [
        ("TRANS_A", flag(spec.trans_a)),
        ("TRANS_B", flag(spec.trans_b)),
        ("A_VEC4", flag(vec4_ok(a))),
        ("B_VEC4", flag(vec4_ok(b))),
        ("WG_X", f64::from(shape.wg_x)),
        ("WG_Y", f64::from(shape.wg_y)),
        ("GROUPS_M", f64::from(shape.groups_m)),
        ("GROUPS_N", f64::from(shape.groups_n)),
        ("DOUBLE_BUFFER", flag(shape.double_buffer)),
        e0,
        e1,
        e2,
        e3,
        e4,
        ("BIAS_GRAD", flag(bias_grad.is_some())),
        ("ALL_INSIDE", flag(all_inside)),
    ];
    let main = ctx.pipeline(&MATMUL, &overrides)?;
    let reduce = match split {
        true => Some(ctx.pipeline(&MATMUL_REDUCE, &epilogue)?),
        false => None,
    };
    let partials = match split {
        true => Some(ctx.scratch(tiling.splits * outputs)?),
        false => None,
    };
    let product = Dispatch {
        pipeline: &main,
        groups: [groups_x, groups_y, 1],
    };
    let with_reduce;
    let dispatches = match &reduce {
        Some(reduce) => {
            with_reduce = [
                product,
                Dispatch {
                    pipeline: reduce,
                    groups: [striding_groups(outputs), 1, 1],
                },
            ];
            &with_reduce[..]
        }
        None => std::slice::from_ref(&product),
    };
    let bindings = [
        ab.bind,
        bb.bind,
        bias_b.map_or(ctx.placeholder_bind(), |v| v.bind),
        cb.bind,
        match &partials {
            Some(p) => p.bind_range(0, tiling.splits * outputs),
            None => ctx.placeholder_rw_bind(),
        },
        act_b.map_or(ctx.placeholder_bind(), |d| d.bind),
    ];
    let step = Step {
        kernel: &MATMUL,
        immediates: bytemuck::bytes_of(&params),
        bindings: &bindings,
        dispatches,
    };
    if transpose_a.is_none() && transpose_b.is_none() {
        return ctx.dispatch_steps(op, std::slice::from_ref(&step));
    }
    // The transposes and the product are recorded together: nothing else may use the scratch
    // between them.
    let transposes = [&transpose_a, &transpose_b]
        .map(|t| t.as_ref().map(|t| (t, t.bindings(ctx), [t.dispatch()])));
    let mut steps: Vec<Step<'_>> = transposes
        .iter()
        .flatten()
        .map(|(t, bindings, dispatch)| t.step(bindings, dispatch))
        .collect();
    steps.push(step);
    ctx.dispatch_steps(op, &steps)
}
