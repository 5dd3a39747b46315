//! What the CUDA test crates share: opening the device or skipping.

use std::io::Write;

use nsl_cuda::{Cuda, CudaError};

/// The device, or `None` after printing the skip line `skipped: no CUDA device (…) [test]` when
/// there is no GPU; any other start-up failure fails `test`.
pub fn device(test: &str) -> Option<Cuda> {
    match Cuda::new() {
        Ok(be) => Some(be),
        Err(e @ CudaError::NoDevice { .. }) => {
            // Written to the stderr handle (not eprintln!) so libtest's capture does not hide it.
            let _ = writeln!(std::io::stderr(), "skipped: no CUDA device ({e}) [{test}]");
            None
        }
        Err(e) => panic!("{test}: the CUDA backend failed to start: {e}"),
    }
}
