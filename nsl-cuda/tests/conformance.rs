//! nsl-core's backend conformance suite on the CUDA backend (every op against its `f64`
//! reference, every backward against finite differences, every fused op against its composed
//! reference). With `--features cuda` on a machine without a GPU each test prints why it
//! skipped and passes; with `--features emulate` the kernels run on the CPU emulator.
#![cfg(any(feature = "cuda", feature = "emulate"))]

use std::io::Write;

use nsl_cuda::{Cuda, CudaError};

/// The device, or `None` after printing the skip line when there is no GPU.
fn device() -> Option<Cuda> {
    match Cuda::new() {
        Ok(be) => Some(be),
        Err(e @ CudaError::NoDevice { .. }) => {
            // Written to the stderr handle (not eprintln!) so libtest's capture does not hide it.
            let _ = writeln!(std::io::stderr(), "skipped: no CUDA device ({e}) [conformance]");
            None
        }
        Err(e) => panic!("conformance: the CUDA backend failed to start: {e}"),
    }
}

nsl_core::conformance_suite!(optional device());
