//! The crate's one error type: every failure names the operation and the values involved.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `steepest`.
///
/// Variants carry the operation (`op`) and the offending values so that a message alone is
/// enough to find the cause. No library path panics: each failure arrives here instead.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No GPU adapter matched the request.
    #[error(
        "no GPU adapter found (backends: {backends}{name_filter}; adapters seen: {seen}). \
         Install a Vulkan driver (on Debian/Ubuntu: `apt-get install mesa-vulkan-drivers` gives \
         the lavapipe software adapter), unset or correct WGPU_BACKEND / WGPU_ADAPTER_NAME, or \
         use the CPU backend (`CpuBackend`)",
        name_filter = adapter_name.as_ref().map(|n| format!(", WGPU_ADAPTER_NAME contains {n:?}")).unwrap_or_default(),
        seen = if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
    )]
    NoAdapter {
        /// The backends that were searched, as wgpu names them.
        backends: String,
        /// The adapter-name filter that was applied, if any.
        adapter_name: Option<String>,
        /// Names of every adapter that was found before filtering.
        seen: Vec<String>,
    },

    /// An environment variable or option has a value the library does not accept.
    #[error("{variable} = {value:?} is not accepted; use one of: {accepted}")]
    Config {
        /// The variable or option, e.g. `WGPU_BACKEND`.
        variable: &'static str,
        /// The value given.
        value: String,
        /// The values that are accepted.
        accepted: &'static str,
    },

    /// A buffer, model, arena or optimizer was used with a GPU context other than the one
    /// that created it (each context is its own device).
    #[error(
        "{op}: buffer {label:?} belongs to another GPU context; use buffers, models and \
         optimizers with the backend (or context) that created them"
    )]
    WrongContext {
        /// The operation.
        op: &'static str,
        /// The buffer's label.
        label: String,
    },

    /// The adapter refused to create a device.
    #[error("adapter {adapter:?} could not create a device: {message}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's explanation.
        message: String,
    },

    /// A WGSL shader failed to parse or validate.
    #[error("shader {name:?} is invalid: {message}")]
    Shader {
        /// The shader's name (its file name for built-in kernels).
        name: String,
        /// The compiler's message.
        message: String,
    },

    /// wgpu reported a validation or internal error while running `op`.
    #[error("GPU error in {op}: {message}")]
    Gpu {
        /// The operation that was running.
        op: &'static str,
        /// wgpu's description of the error.
        message: String,
    },

    /// The device ran out of memory while running `op`.
    #[error("GPU out of memory in {op}: {message}")]
    OutOfMemory {
        /// The operation that was running.
        op: &'static str,
        /// wgpu's description of the error.
        message: String,
    },

    /// The GPU device was lost (driver reset, device removed); the context must be recreated.
    #[error("GPU device lost: {message}")]
    DeviceLost {
        /// The driver's reason.
        message: String,
    },

    /// A buffer of zero elements was requested; GPU buffers cannot be empty.
    #[error("{op}: buffer {label:?} would be empty (0 elements)")]
    EmptyBuffer {
        /// The operation that was asked for the buffer.
        op: &'static str,
        /// The buffer's label.
        label: String,
    },

    /// A buffer or binding would exceed one of the device's limits.
    #[error(
        "{op}: buffer {label:?} needs {bytes} bytes, over the device's {limit_name} of {limit} bytes"
    )]
    BufferTooLarge {
        /// The operation that was asked for the buffer.
        op: &'static str,
        /// The buffer's label.
        label: String,
        /// Bytes needed.
        bytes: u64,
        /// The limit in bytes.
        limit: u64,
        /// Which limit (`max_buffer_size`, `max_storage_buffer_binding_size`).
        limit_name: &'static str,
    },

    /// Operand shapes do not fit together.
    #[error("{op}: shape mismatch: {detail}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// What was expected and what was given.
        detail: String,
    },

    /// Host data does not have the length the operation needs.
    #[error("{op}: expected {expected} elements, got {actual}")]
    Length {
        /// The operation.
        op: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements given.
        actual: usize,
    },

    /// An optimizer or schedule hyperparameter is out of range.
    #[error("{optimizer}: invalid {name} = {value}: {rule}")]
    InvalidHyperparameter {
        /// The optimizer (or schedule, or learning-rate rule) being built.
        optimizer: &'static str,
        /// The hyperparameter, by PyTorch's argument name.
        name: String,
        /// The value given.
        value: f64,
        /// What it must satisfy.
        rule: String,
    },

    /// Saved optimizer state does not fit the optimizer it is loaded into.
    #[error("{optimizer}: cannot load state: {detail}")]
    State {
        /// The optimizer receiving the state.
        optimizer: &'static str,
        /// What does not match.
        detail: String,
    },

    /// A class label is not an integer in `0..classes`.
    #[error("class label {label} in row {row} is not an integer in 0..{classes}")]
    Label {
        /// The row holding it.
        row: usize,
        /// The label as given.
        label: f32,
        /// Number of classes the model predicts.
        classes: usize,
    },

    /// Training diverged: the loss became NaN or infinite or grew past the configured bound,
    /// or the parameters themselves stopped being finite.
    #[error("training diverged at step {step} (epoch {epoch}): {reason}")]
    Diverged {
        /// The optimizer step after which it was found (1-based).
        step: u64,
        /// The epoch it belongs to (1-based).
        epoch: usize,
        /// The last loss measured.
        loss: f64,
        /// What was seen, e.g. `loss = inf` or `Σθ² = NaN after the epoch's last update`.
        reason: String,
    },

    /// A dataset or training setting is unusable.
    #[error("{op}: {detail}")]
    Data {
        /// The operation (`Dataset::new`, `Trainer::fit`, …).
        op: &'static str,
        /// What is wrong, with the values.
        detail: String,
    },

    /// Writing or reading a file failed.
    #[error("{op}: {path}: {message}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: String,
        /// The system's message.
        message: String,
    },

    /// A checkpoint or model file is unreadable, corrupted, or made for another model or
    /// optimizer. (The message names the file, not which of the two it is: a model file read
    /// as a checkpoint, or the other way round, fails here too.)
    #[error("{path}: {detail}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },

    /// Reading a buffer back to the host failed.
    #[error("reading back buffer {label:?} failed: {message}")]
    Readback {
        /// The buffer's label.
        label: String,
        /// What went wrong.
        message: String,
    },
}

/// `Debug` prints the message (the `Display` form): `fn main() -> steepest::Result<()>` reports
/// an error through `Debug`, and the user should read what went wrong and how to fix it, not
/// the variant's fields.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Shapes print as `3×4`, the way the messages want them.
pub(crate) struct Dims(pub usize, pub usize);

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}", self.0, self.1)
    }
}
