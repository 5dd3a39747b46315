//! nsl-core's backend conformance suite on the CUDA backend (every op against its `f64`
//! reference, every backward against finite differences, every fused op against its composed
//! reference). With `--features cuda` on a machine without a GPU each test prints why it
//! skipped and passes; with `--features emulate` the kernels run on the CPU emulator.
#![cfg(any(feature = "cuda", feature = "emulate"))]

mod common;

nsl_core::conformance_suite!(optional common::device("conformance"));
