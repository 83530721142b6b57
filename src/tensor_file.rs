//! The safetensors files steepest reads and writes: f32 tensors and metadata, encoded and
//! decoded, and saved atomically (a temporary file per save, locked while it is written, fsync,
//! rename, the directory synced; temporaries left by killed processes removed).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

/// One f32 tensor: name, shape, values in row-major order.
pub(crate) type Tensor = (String, Vec<usize>, Vec<f32>);

/// A safetensors file's f32 tensors and metadata.
pub(crate) struct File {
    pub tensors: Vec<Tensor>,
    pub metadata: HashMap<String, String>,
}

pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

impl File {
    /// The tensor called `name` with exactly `shape`.
    pub fn take(&self, path: &Path, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let Some((_, found, values)) = self.tensors.iter().find(|(n, _, _)| n == name) else {
            return Err(corrupt(path, format!("tensor {name} is missing")));
        };
        if found != shape {
            return Err(corrupt(
                path,
                format!("tensor {name} has shape {found:?}, expected {shape:?}"),
            ));
        }
        Ok(values)
    }

    /// The metadata entry `key`.
    pub fn meta(&self, path: &Path, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| corrupt(path, format!("metadata {key:?} is missing")))
    }

    /// The metadata entry `key` as an integer.
    pub fn meta_u64(&self, path: &Path, key: &str) -> Result<u64> {
        let text = self.meta(path, key)?;
        text.parse().map_err(|_| {
            corrupt(
                path,
                format!("metadata {key:?} = {text:?} is not an integer"),
            )
        })
    }
}

/// The file's bytes: tensors in the order given, metadata in the header's `__metadata__`.
pub(crate) fn encode(
    path: &Path,
    tensors: &[Tensor],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|view| (name.as_str(), view))
                .map_err(|e| corrupt(path, format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| corrupt(path, format!("cannot encode: {e}")))
}

/// The suffix of the batch-norm counter PyTorch keeps as an I64 scalar: it counts only for a
/// momentum of `None`, which no layer of the crate takes, so files PyTorch writes load
/// without it (and PyTorch loads files without it).
const BATCH_COUNTER: &str = ".num_batches_tracked";

/// Parses safetensors bytes, keeping every F32 tensor; any other dtype is an error, but for
/// PyTorch's batch-norm counters, which are left out.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<File> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| corrupt(path, format!("not a safetensors file: {e}")))?;
    let parsed = SafeTensors::deserialize(bytes)
        .map_err(|e| corrupt(path, format!("not a safetensors file: {e}")))?;
    let mut tensors = Vec::new();
    for (name, view) in parsed.tensors() {
        if view.dtype() == Dtype::I64 && name.ends_with(BATCH_COUNTER) {
            continue;
        }
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(
                path,
                format!("tensor {name} is {:?}; only F32 is supported", view.dtype()),
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.push((name, view.shape().to_vec(), values));
    }
    Ok(File {
        tensors,
        metadata: header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old file or the new
/// one: a temporary file beside it, flushed to disk, renamed over it, the directory synced.
pub(crate) fn write_atomic(op: &'static str, path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| Error::Io {
        op,
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("the path names no file")))?;
    // One temporary name per save (process, then a counter): threads saving to the same path
    // never write into each other's file; the last rename wins, whole.
    static SAVES: AtomicU64 = AtomicU64::new(0);
    let prefix = format!("{}.tmp-", name.to_string_lossy());
    let pid = std::process::id();
    let tmp = path.with_file_name(format!(
        "{prefix}{pid}-{}",
        SAVES.fetch_add(1, Ordering::Relaxed)
    ));
    remove_stale_temporaries(path, &prefix, pid);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        // Held until the rename (the handle lives to the end of this closure) and released by
        // the system if the process dies: another process's cleanup can tell a save in flight
        // from a temporary left by a killed one. A file system without locks saves all the
        // same; its temporaries are then never taken for stale ones.
        let _ = file.try_lock();
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory entry is.
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Removes temporaries of earlier saves of `path` left by killed processes. This process's own
/// are in flight in other threads and stay; another process's stays while its lock is held
/// (that process is still writing it) and, for a moment after it appears, before its writer
/// has locked it. Best effort: what cannot be listed, locked or removed is left alone.
fn remove_stale_temporaries(path: &Path, prefix: &str, pid: u32) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let ours = format!("{prefix}{pid}-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && !name.starts_with(&ours) && abandoned(&entry.path()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// How long a new temporary is left alone whatever its lock says: its writer creates it and
/// then locks it, and a cleanup between the two must not take it for abandoned.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether no process is writing the temporary at `path`: older than [`LOCK_GRACE`], and its
/// lock free (a killed writer's lock went with it). Whatever cannot be read says no.
fn abandoned(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let old = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age >= LOCK_GRACE);
    // The lock taken here, if any, goes when `file` does, before the removal.
    old && file.try_lock().is_ok()
}

/// Reads a file whole, naming it and `op` in the error.
pub(crate) fn read(op: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io {
        op,
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
