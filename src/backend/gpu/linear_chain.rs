//! The forward pass of linear layers in a chain on the GPU: `gpu::linear_chain`, the host side
//! of `shaders/linear_chain.wgsl` (two or three small layers in one dispatch), the twin of
//! [`Backend::linear_chain_into`](crate::Backend::linear_chain_into)'s default (a product per
//! layer).

use super::GpuMatrix;
use super::context::GpuContext;
use super::dispatch::{Entry, bound, check_bindings, check_no_alias, folded_grid, record, to_u32};
use super::kernel::{Binding, Kernel};
use super::matmul::{chosen_tiling, matmul};
use crate::backend::{LinearLink, Matmul, Matrix, linear_chain_dims};
use crate::error::Result;

const LINEAR_CHAIN: Kernel = Kernel {
    shader: "linear_chain.wgsl",
    source: concat!(
        include_str!("../../../shaders/activation.wgsl"),
        include_str!("../../../shaders/linear_chain.wgsl")
    ),
    entry: "linear_chain",
    bindings: &[
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::ReadWrite,
    ],
    groups: 1,
    immediate_size: size_of::<Params>() as u32,
};

/// Invocations per workgroup (`WORKGROUP` in the shader).
const WORKGROUP: usize = 64;

/// Links one dispatch runs at most: what the immediate data has room for.
const MAX_LINKS: usize = 3;

/// A link joins a chain when it has at most this many inputs and outputs (a row's outputs, four
/// to an invocation, must fit one workgroup)…
const MAX_WIDTH: usize = 256;
/// …and its product has at most this many multiply-adds: beyond that the tiled matmul, with
/// more workgroups and more sums to each, should be the faster kernel (the limit is the one-
/// kernel backward's; where the two cross on a GPU is unmeasured).
const MAX_PRODUCT: usize = 1 << 21;

/// One link's part of the shader's `Params`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct LinkParams {
    outputs: u32,
    weight_offset: u32,
    bias_offset: u32,
    output_offset: u32,
}

/// The shader's `Params`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    inputs: u32,
    input_offset: u32,
    _pad: u32,
    links: [LinkParams; MAX_LINKS],
}

// Every adapter steepest opens offers at least this much immediate data.
const _: () = assert!(size_of::<Params>() as u32 <= super::context::MIN_IMMEDIATE_SIZE);

/// The forward pass of linear layers in a chain: `outputs[l] ← act_l(h_l · W_lᵀ + b_l)` with
/// `h₀ = input` and `h_{l+1} = outputs[l]`. The twin of
/// [`Backend::linear_chain_into`](crate::Backend::linear_chain_into)'s default (a product per
/// link) and bit for bit the GPU's products: two or three consecutive small links (at most 256
/// inputs and outputs, products of at most 2²¹ multiply-adds, weights and biases in one buffer,
/// outputs in buffers of their own) run in one dispatch that sums every element in the
/// product's order; any other link runs as its product. Checks the whole chain before
/// recording anything.
pub fn linear_chain(
    ctx: &GpuContext,
    input: &GpuMatrix,
    links: &[LinearLink<'_, GpuMatrix>],
    outputs: &[GpuMatrix],
) -> Result<()> {
    let op = "linear_chain";
    linear_chain_dims(
        input.shape(),
        links.iter().map(|l| (l.weight.shape(), l.bias.shape())),
        outputs.iter().map(Matrix::shape),
    )?;
    check_bindings(ctx, op, &[input])?;
    for (l, (link, out)) in links.iter().zip(outputs).enumerate() {
        check_bindings(ctx, op, &[link.weight, link.bias, out])?;
        // What link l reads: the chain's input, its own parameters and the layer below's
        // output; and no output may overwrite a parameter a later link reads.
        check_no_alias(op, out, &[input])?;
        if let Some(below) = l.checked_sub(1).and_then(|b| outputs.get(b)) {
            check_no_alias(op, out, &[below])?;
        }
        for other in links {
            check_no_alias(op, out, &[other.weight, other.bias])?;
        }
    }

    let rows = input.shape().0;
    let mut l = 0;
    while let Some(link) = links.get(l) {
        let x = l
            .checked_sub(1)
            .and_then(|b| outputs.get(b))
            .unwrap_or(input);
        if let Some(plan) = plan(ctx, rows, x, &links[l..], &outputs[l..]) {
            let end = l + plan.links;
            record_links(ctx, &plan, x, &links[l..end], &outputs[l..end])?;
            l = end;
        } else {
            let spec = Matmul::nt().activation(link.activation);
            matmul(ctx, spec, x, link.weight, Some(link.bias), &outputs[l])?;
            l += 1;
        }
    }
    Ok(())
}

/// How the chain kernel runs the first of `links` (with input `x`): how many, and the
/// workgroups' shape.
struct Plan {
    /// Links in the dispatch, two or three.
    links: usize,
    /// Rows a workgroup takes through them (`ROWS`).
    rows_per_group: usize,
    /// Vec4s across the widest one's outputs (`QUADS`).
    quads: usize,
    /// Columns of K staged at a time (`STAGE`).
    stage: usize,
}

/// The dispatch that runs the longest run of at most [`MAX_LINKS`] small links from the first
/// of `links` (input `x`) whose weights and biases share the first's buffer and whose outputs
/// are each in a buffer of its own (and not `x`'s); `None` where that is fewer than two links,
/// or their rows need more workgroups than the grid holds (millions), or not even one K step
/// fits workgroup memory: those links run as products.
fn plan(
    ctx: &GpuContext,
    rows: usize,
    x: &GpuMatrix,
    links: &[LinearLink<'_, GpuMatrix>],
    outputs: &[GpuMatrix],
) -> Option<Plan> {
    let weights = links.first()?.weight.buffer().raw();
    // Every link's weight and bias, in the one binding the kernel reads them through.
    let mut parameters: [&GpuMatrix; 2 * MAX_LINKS] = [links.first()?.weight; 2 * MAX_LINKS];
    let mut count = 0;
    let (mut widest, mut deepest) = (1, 1);
    for (l, (link, out)) in links.iter().zip(outputs).take(MAX_LINKS).enumerate() {
        let (features, inputs) = link.weight.shape();
        let apart = out.buffer().raw() != x.buffer().raw()
            && outputs[..l]
                .iter()
                .all(|o| o.buffer().raw() != out.buffer().raw());
        let fits = small(rows, features, inputs)
            && link.weight.buffer().raw() == weights
            && link.bias.buffer().raw() == weights
            && {
                parameters[2 * l] = link.weight;
                parameters[2 * l + 1] = link.bias;
                bound(ctx, "linear_chain", &parameters[..2 * l + 2]).is_ok()
            }
            && apart
            // The kernel sums each element over all of K, as an unsplit product does.
            && chosen_tiling(ctx, (rows, features, inputs)).splits == 1;
        if !fits {
            break;
        }
        count += 1;
        widest = widest.max(features);
        deepest = deepest.max(inputs);
    }
    if count < 2 {
        return None;
    }
    let limits = ctx.limits();
    let grid_limit = limits.max_compute_workgroups_per_dimension.max(1) as usize;
    let rows_per_group = rows_per_workgroup(widest);
    if rows.div_ceil(rows_per_group).div_ceil(grid_limit) > grid_limit {
        return None;
    }
    let memory = limits.max_compute_workgroup_storage_size as usize;
    Some(Plan {
        links: count,
        rows_per_group,
        quads: widest.div_ceil(4),
        stage: stage_depth(memory, widest, rows_per_group, deepest)?,
    })
}

/// Whether a link of `outputs × inputs` over `rows` rows is small enough for the chain kernel.
fn small(rows: usize, outputs: usize, inputs: usize) -> bool {
    outputs <= MAX_WIDTH
        && inputs <= MAX_WIDTH
        && rows
            .checked_mul(outputs)
            .and_then(|n| n.checked_mul(inputs))
            .is_some_and(|n| n <= MAX_PRODUCT)
}

/// Rows a workgroup takes through the chain, a multiple of 4 (each invocation computes four
/// outputs of four rows): enough blocks of four rows that the widest layer's items fill its
/// invocations, at most 64 rows.
fn rows_per_workgroup(widest: usize) -> usize {
    4 * (WORKGROUP / widest.div_ceil(4).max(1)).clamp(1, 16)
}

/// Columns of K the kernel stages at a time (`STAGE`): the deepest of 64, 32, 16 and 8 (a
/// multiple of the matmul's 8-wide K step) whose slices of W (`widest` outputs) and of the
/// inputs (`rows` rows) fit `memory` bytes of workgroup memory, and no deeper than the deepest
/// layer needs; `None` when not even 8 fit. Deeper stages load a small layer's weights in
/// fewer round trips.
fn stage_depth(memory: usize, widest: usize, rows: usize, deepest: usize) -> Option<usize> {
    let per_column = 16 * widest.div_ceil(4) + 4 * rows;
    let needed = deepest.div_ceil(8) * 8;
    [64, 32, 16, 8]
        .into_iter()
        .filter(|&stage| stage == 8 || stage / 2 < needed)
        .find(|&stage| stage * per_column <= memory)
}

/// Records `links` (those `plan` counted) as one dispatch shaped by `plan`.
fn record_links(
    ctx: &GpuContext,
    plan: &Plan,
    x: &GpuMatrix,
    links: &[LinearLink<'_, GpuMatrix>],
    outputs: &[GpuMatrix],
) -> Result<()> {
    let op = "linear_chain";
    let (rows, inputs) = x.shape();
    let xb = bound(ctx, op, &[x])?;
    // Weights and biases share one binding (checked by `plan`); arrays, not vectors: this
    // runs every step of a small model.
    let count = links.len().min(MAX_LINKS);
    let mut parameters = [x; 2 * MAX_LINKS];
    for (l, link) in links.iter().take(count).enumerate() {
        (parameters[2 * l], parameters[2 * l + 1]) = (link.weight, link.bias);
    }
    let wb = bound(ctx, op, &parameters[..2 * count])?;
    let mut out_b = [None; MAX_LINKS];
    for (slot, out) in out_b.iter_mut().zip(outputs.iter().take(count)) {
        *slot = Some(bound(ctx, op, &[out])?);
    }
    let mut params = Params {
        rows: to_u32(op, "rows", rows)?,
        inputs: to_u32(op, "inputs", inputs)?,
        input_offset: xb.offset(op, "input offset", x)?,
        ..Params::default()
    };
    let mut activations = [0.0; MAX_LINKS];
    for (l, ((link, out), ob)) in links
        .iter()
        .zip(outputs)
        .zip(out_b.iter().flatten())
        .enumerate()
    {
        params.links[l] = LinkParams {
            outputs: to_u32(op, "outputs", link.weight.shape().0)?,
            weight_offset: wb.offset(op, "weight offset", link.weight)?,
            bias_offset: wb.offset(op, "bias offset", link.bias)?,
            output_offset: ob.offset(op, "output offset", out)?,
        };
        activations[l] = f64::from(link.activation.shader_code());
    }
    let [groups_x, groups_y] = folded_grid(ctx, op, rows.div_ceil(plan.rows_per_group), || {
        format!("a chain over {rows} rows")
    })?;
    let overrides = [
        ("LINKS", plan.links as f64),
        ("ROWS", plan.rows_per_group as f64),
        ("QUADS", plan.quads as f64),
        ("STAGE", plan.stage as f64),
        ("ACT0", activations[0]),
        ("ACT1", activations[1]),
        ("ACT2", activations[2]),
    ];
    let out = |l: usize| {
        out_b[l]
            .as_ref()
            .map_or(ctx.placeholder_rw_bind(), |o| o.bind)
    };
    record(
        ctx,
        op,
        bytemuck::bytes_of(&params),
        &[xb.bind, wb.bind, out(0), out(1), out(2)],
        &[Entry {
            kernel: &LINEAR_CHAIN,
            overrides: &overrides,
            groups: [groups_x, groups_y, 1],
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::{rows_per_workgroup, small, stage_depth};

    #[test]
    fn a_workgroup_takes_enough_rows_to_fill_its_invocations() {
        // 2-64-64-2: sixteen items of four outputs per block of four rows, four blocks.
        assert_eq!(rows_per_workgroup(64), 16);
        assert_eq!(rows_per_workgroup(65), 12);
        assert_eq!(rows_per_workgroup(256), 4);
        assert_eq!(rows_per_workgroup(1000), 4);
        // Narrow layers: at most 64 rows.
        assert_eq!(rows_per_workgroup(16), 64);
        assert_eq!(rows_per_workgroup(2), 64);
        assert_eq!(rows_per_workgroup(1), 64);
    }

    #[test]
    fn the_stage_is_as_deep_as_memory_and_the_deepest_layer_allow() {
        // 2-64-64-2 (sixteen rows a workgroup): a 64-deep stage is 20 KiB.
        assert_eq!(stage_depth(48 * 1024, 64, 16, 64), Some(64));
        assert_eq!(stage_depth(16 * 1024, 64, 16, 64), Some(32));
        // No deeper than K needs: K = 2 pads to 8, K = 20 to 24.
        assert_eq!(stage_depth(48 * 1024, 64, 16, 2), Some(8));
        assert_eq!(stage_depth(48 * 1024, 64, 16, 20), Some(32));
        assert_eq!(stage_depth(48 * 1024, 64, 16, 17), Some(32));
        assert_eq!(stage_depth(48 * 1024, 64, 16, 16), Some(16));
        // 256 wide (four rows): a KiB a column of K.
        assert_eq!(stage_depth(16 * 1024, 256, 4, 256), Some(8));
        assert_eq!(stage_depth(48 * 1024, 256, 4, 256), Some(32));
        assert_eq!(stage_depth(64 * 1024, 256, 4, 256), Some(32));
        // Not even eight columns.
        assert_eq!(stage_depth(8 * 1024, 256, 4, 256), None);
    }

    #[test]
    fn small_links_are_at_most_256_wide_and_2_to_the_21_multiply_adds() {
        assert!(small(64, 64, 64));
        assert!(small(128, 256, 64));
        assert!(!small(128, 256, 65));
        assert!(!small(1, 257, 1));
        assert!(!small(1, 1, 257));
        assert!(!small(usize::MAX, 2, 2));
    }
}
