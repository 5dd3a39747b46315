//! [`BackendError`]: why a backend's device failed.

use std::fmt;

/// A device failure: an allocation the device had no room for, a failed driver call or kernel
/// launch, or a fault found when the device was synchronised.
///
/// Ops do not return it (their arguments were checked, and a synchronous backend cannot fail).
/// An asynchronous backend records its **first** failure, skips every later kernel, hands out
/// placeholder buffers of the asked-for lengths, and returns the failure from every later
/// [`Backend::status`](super::Backend::status) — CUDA's own model of sticky errors, so one
/// check per training step (after the loss is read) catches a failure anywhere in that step,
/// before a wrong value is used or a checkpoint is written. The backend is unusable afterwards:
/// make a new one (a run resumes from its last checkpoint).
///
/// ```
/// use nsl_core::BackendError;
///
/// let e = BackendError::OutOfMemory { op: "conv2d".into(), message: "536870912 bytes".into() };
/// assert!(e.to_string().contains("--batch-size"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// The device had no room for a buffer `op` needed.
    OutOfMemory { op: String, message: String },
    /// Any other device failure during `op` (driver call, kernel launch, asynchronous fault).
    Device { op: String, message: String },
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::OutOfMemory { op, message } => write!(
                f,
                "the device ran out of memory in {op} ({message}): use a smaller --batch-size or --width, or free \
                 the GPU's memory from other programs; a run continues from its last checkpoint with --resume"
            ),
            BackendError::Device { op, message } => write!(
                f,
                "the device failed in {op}: {message}. The results since the last check are lost; a run continues \
                 from its last checkpoint with --resume"
            ),
        }
    }
}

impl std::error::Error for BackendError {}
