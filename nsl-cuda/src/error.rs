//! [`CudaError`]: why the CUDA backend could not start or allocate.

use std::fmt;

use crate::launch::MAX_ELEMS;

/// `CUresult` codes named in messages (from `cuda.h`).
#[allow(dead_code)] // some are only used with the `cuda` feature
pub(crate) mod code {
    pub const OUT_OF_MEMORY: u32 = 2;
    pub const NOT_INITIALIZED: u32 = 3;
    pub const STUB_LIBRARY: u32 = 34;
    pub const INSUFFICIENT_DRIVER: u32 = 35;
    pub const NO_DEVICE: u32 = 100;
    pub const NO_BINARY_FOR_GPU: u32 = 209;
    pub const INVALID_PTX: u32 = 218;
    pub const UNSUPPORTED_PTX_VERSION: u32 = 222;
}

/// A CUDA driver error code with the driver's name and description of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverError {
    /// The `CUresult` value, e.g. 100 for `CUDA_ERROR_NO_DEVICE`.
    pub code: u32,
    /// `NAME: description` as reported by `cuGetErrorName` / `cuGetErrorString`.
    pub message: String,
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (CUresult {})", self.message, self.code)
    }
}

/// Why the CUDA backend could not start or allocate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CudaError {
    /// No usable NVIDIA GPU (or no driver for one).
    NoDevice { detail: String },
    /// A driver call failed.
    Driver { what: String, error: DriverError },
    /// The driver could not load (JIT-compile) a kernel file's PTX.
    PtxLoad { file: &'static str, arch: &'static str, error: DriverError, log: String },
    /// A kernel named in the Rust sources is missing from its PTX (a build mismatch).
    MissingKernel { file: &'static str, kernel: &'static str, error: DriverError },
    /// The device is out of memory.
    OutOfMemory { bytes: usize, error: DriverError },
    /// A buffer of more elements than the kernels can index ([`MAX_ELEMS`]).
    TooLarge { elems: usize },
}

const NO_DEVICE: &str =
    "no CUDA-capable device is detected: build without --features cuda or run on a machine with an NVIDIA GPU";

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaError::NoDevice { detail } => write!(f, "{NO_DEVICE} ({detail})"),
            CudaError::Driver { what, error } => write!(f, "CUDA driver error while {what}: {error}"),
            CudaError::PtxLoad { file, arch, error, log } => {
                write!(f, "could not load the PTX of {file} (compiled by nvcc for -arch={arch}): {error}")?;
                match error.code {
                    code::UNSUPPORTED_PTX_VERSION => write!(
                        f,
                        "; the NVIDIA driver is older than the CUDA toolkit that compiled the kernels: update the \
                         driver or build with an older toolkit"
                    )?,
                    code::NO_BINARY_FOR_GPU | code::INVALID_PTX => write!(
                        f,
                        "; the GPU may be older than {arch}: rebuild with NSL_CUDA_ARCH set to its compute \
                         capability (e.g. NSL_CUDA_ARCH=compute_70)"
                    )?,
                    _ => {}
                }
                if !log.is_empty() {
                    write!(f, "\nJIT log:\n{log}")?;
                }
                Ok(())
            }
            CudaError::MissingKernel { file, kernel, error } => write!(
                f,
                "kernel {kernel} not found in the PTX of {file} (stale build? run cargo clean -p nsl-cuda): {error}"
            ),
            CudaError::OutOfMemory { bytes, error } => write!(
                f,
                "CUDA out of memory: could not allocate {bytes} bytes ({:.1} MiB): {error}",
                *bytes as f64 / (1u64 << 20) as f64
            ),
            CudaError::TooLarge { elems } => {
                write!(f, "a buffer of {elems} elements is larger than nsl-cuda supports ({MAX_ELEMS} elements)")
            }
        }
    }
}

impl std::error::Error for CudaError {}

impl CudaError {
    /// This error as the backend-independent [`nsl_core::BackendError`] of `op`.
    pub fn in_op(self, op: &str) -> nsl_core::BackendError {
        match self {
            CudaError::OutOfMemory { .. } | CudaError::TooLarge { .. } => {
                nsl_core::BackendError::OutOfMemory { op: op.into(), message: self.to_string() }
            }
            _ => nsl_core::BackendError::Device { op: op.into(), message: self.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_cause() {
        let e = CudaError::NoDevice { detail: "cuInit: CUDA_ERROR_NO_DEVICE".into() };
        assert!(e.to_string().starts_with("no CUDA-capable device is detected: build without --features cuda"));
        let oom = CudaError::OutOfMemory {
            bytes: 3 << 30,
            error: DriverError { code: code::OUT_OF_MEMORY, message: "CUDA_ERROR_OUT_OF_MEMORY".into() },
        };
        assert!(oom.to_string().contains("3221225472 bytes (3072.0 MiB)"), "{oom}");
        let ptx = CudaError::PtxLoad {
            file: "kernels/gemm.cu",
            arch: "compute_80",
            error: DriverError {
                code: code::UNSUPPORTED_PTX_VERSION,
                message: "CUDA_ERROR_UNSUPPORTED_PTX_VERSION".into(),
            },
            log: String::new(),
        };
        let s = ptx.to_string();
        assert!(s.contains("kernels/gemm.cu") && s.contains("compute_80") && s.contains("driver is older"), "{s}");
    }
}
