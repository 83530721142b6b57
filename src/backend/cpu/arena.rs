//! `CpuArena`: a model's tensors on the host, one array each; and the host allocation every
//! CPU matrix comes from.

use ndarray::Array2;

use crate::backend::{Arena, Matrix, arena_len, same_shape};
use crate::error::Result;

impl Matrix for Array2<f32> {
    fn shape(&self) -> (usize, usize) {
        self.dim()
    }
}

/// A model's tensors on the host, one array each.
#[derive(Clone, Debug)]
pub struct CpuArena {
    tensors: Vec<Array2<f32>>,
}

impl Arena for CpuArena {
    type Matrix = Array2<f32>;
    fn tensors(&self) -> &[Array2<f32>] {
        &self.tensors
    }
    fn tensors_mut(&mut self) -> &mut [Array2<f32>] {
        &mut self.tensors
    }
    fn offsets(&self) -> Vec<usize> {
        self.tensors
            .iter()
            .scan(0, |at, t| {
                let start = *at;
                *at += t.len();
                Some(start)
            })
            .collect()
    }
    fn storage_len(&self) -> usize {
        self.len()
    }
}

impl CpuArena {
    /// An arena of zeroed tensors of these (rows, cols) shapes, in host memory.
    pub(super) fn zeroed(shapes: &[(usize, usize)]) -> Result<Self> {
        let tensors = shapes
            .iter()
            .map(|&(rows, cols)| host_zeros("arena", rows, cols))
            .collect::<Result<_>>()?;
        Ok(Self { tensors })
    }

    /// Every tensor's values, in order.
    pub(super) fn flatten(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len());
        self.flatten_into(&mut out);
        out
    }

    /// Appends every tensor's values, in order, to `out`.
    pub(crate) fn flatten_into(&self, out: &mut Vec<f32>) {
        for t in &self.tensors {
            match t.as_slice() {
                Some(values) => out.extend_from_slice(values),
                None => out.extend(t.iter()),
            }
        }
    }

    /// Overwrites the tensors from `values` (laid out as `flatten` gives them).
    pub(crate) fn assign(&mut self, values: &[f32]) {
        let mut at = 0;
        for t in &mut self.tensors {
            let n = t.len();
            let Some(values) = values.get(at..at + n) else {
                return;
            };
            match t.as_slice_mut() {
                Some(dst) => dst.copy_from_slice(values),
                None => t.iter_mut().zip(values).for_each(|(t, &v)| *t = v),
            }
            at += n;
        }
    }

    /// Copies `src`'s values in, tensor by tensor, once every shape is seen to match.
    pub(super) fn copy_from(&mut self, src: &CpuArena) -> Result<()> {
        arena_len("copy arena", self.len(), src.len())?;
        for (d, s) in self.tensors.iter().zip(&src.tensors) {
            same_shape("copy arena", s.dim(), d.dim())?;
        }
        for (d, s) in self.tensors.iter_mut().zip(&src.tensors) {
            d.assign(s);
        }
        Ok(())
    }
}

/// RAM plus swap in bytes, from `/proc/meminfo` (Linux; `None` elsewhere or if unreadable),
/// read once.
fn host_memory_bytes() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib = |key: &str| -> Option<u64> {
            info.lines()
                .find(|l| l.starts_with(key))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        Some((kib("MemTotal:")? + kib("SwapTotal:").unwrap_or(0)).saturating_mul(1024))
    })
}

/// A `rows × cols` matrix of zeros in host memory, or an error naming `op` when the size
/// overflows or the memory cannot be had (instead of an abort).
pub(super) fn host_zeros(op: &'static str, rows: usize, cols: usize) -> Result<Array2<f32>> {
    let too_large = |detail: String| crate::error::Error::Shape { op, detail };
    let len = rows
        .checked_mul(cols)
        .filter(|&n| n <= isize::MAX as usize / size_of::<f32>())
        .ok_or_else(|| too_large(format!("{rows}×{cols} elements overflow the address space")))?;
    let bytes = len.saturating_mul(size_of::<f32>()) as u64;
    // Where the kernel overcommits memory, an allocation larger than the machine succeeds and
    // the process is killed when it is touched: refuse what RAM and swap together cannot hold.
    if let Some(total) = host_memory_bytes()
        && bytes > total
    {
        return Err(too_large(format!(
            "{rows}×{cols} f32 ({bytes} bytes) do not fit in host memory ({total} bytes \
             of RAM and swap)"
        )));
    }
    let mut values: Vec<f32> = Vec::new();
    values.try_reserve_exact(len).map_err(|e| {
        too_large(format!(
            "{rows}×{cols} f32 ({bytes} bytes) do not fit in host memory: {e}"
        ))
    })?;
    values.resize(len, 0.0);
    Array2::from_shape_vec((rows, cols), values).map_err(|e| too_large(e.to_string()))
}
